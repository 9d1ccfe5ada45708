//! Gatekeeper's path syntax for a mutator's `location` and its `pathTests[].subPath`.

/// One step of a `location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// An object field.
    Field(String),
    /// `[key: value]` (`value: None` is the `*` glob): a list element chosen by a key field.
    ListKey { key: String, value: Option<String> },
}

/// A parsed `location` (or `pathTests[].subPath`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub text: String,
    pub segments: Vec<Segment>,
}

impl Location {
    /// Gatekeeper's path syntax: `a.b[name: foo].c`, segments optionally quoted with `"` or `'`
    /// (for keys holding dots, such as label names), `*` as a list key value is a glob.
    pub fn parse(text: &str) -> Result<Location, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let mut segments = Vec::new();
        let skip_spaces = |i: &mut usize| {
            while *i < chars.len() && chars[*i] == ' ' {
                *i += 1;
            }
        };
        if chars.is_empty() {
            return Err("the location is empty".into());
        }
        loop {
            let (field, _) = read_token(&chars, &mut i, &['.', '['])?;
            if field.is_empty() {
                return Err(format!(
                    "empty path segment at character {} of {text:?}",
                    i + 1
                ));
            }
            segments.push(Segment::Field(field));
            while i < chars.len() && chars[i] == '[' {
                i += 1;
                skip_spaces(&mut i);
                let (key, _) = read_token(&chars, &mut i, &[':', ']'])?;
                let key = key.trim().to_string();
                if i >= chars.len() || chars[i] != ':' {
                    return Err(format!(
                        "list key in {text:?} needs the form [key: value], e.g. [name: *]"
                    ));
                }
                i += 1;
                skip_spaces(&mut i);
                let (value, quoted) = read_token(&chars, &mut i, &[']'])?;
                let value = if quoted {
                    value
                } else {
                    value.trim().to_string()
                };
                if i >= chars.len() || chars[i] != ']' {
                    return Err(format!("unclosed '[' in {text:?}"));
                }
                i += 1;
                if key.is_empty() || value.is_empty() {
                    return Err(format!(
                        "list key in {text:?} needs a key and a value, e.g. [name: *]"
                    ));
                }
                segments.push(Segment::ListKey {
                    key,
                    value: (quoted || value != "*").then_some(value),
                });
            }
            if i >= chars.len() {
                break;
            }
            if chars[i] != '.' {
                return Err(format!(
                    "unexpected {:?} at character {} of {text:?}",
                    chars[i],
                    i + 1
                ));
            }
            i += 1;
            if i >= chars.len() {
                return Err(format!("{text:?} ends with '.'"));
            }
        }
        Ok(Location {
            text: text.to_string(),
            segments,
        })
    }

    pub(super) fn starts_with_metadata(&self) -> bool {
        matches!(self.segments.first(), Some(Segment::Field(f)) if f == "metadata")
    }
}

/// Reads a bare or quoted token up to one of `stops`; returns it and whether it was quoted.
fn read_token(chars: &[char], i: &mut usize, stops: &[char]) -> Result<(String, bool), String> {
    let mut out = String::new();
    if *i < chars.len() && (chars[*i] == '"' || chars[*i] == '\'') {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' && *i + 1 < chars.len() {
                *i += 1;
            }
            out.push(chars[*i]);
            *i += 1;
        }
        if *i >= chars.len() {
            return Err(format!("unclosed quote {quote} in location"));
        }
        *i += 1;
        return Ok((out, true));
    }
    while *i < chars.len() && !stops.contains(&chars[*i]) {
        if chars[*i] == '"' || chars[*i] == '\'' || (chars[*i] == ']' && !stops.contains(&']')) {
            return Err(format!("unexpected {:?} in location", chars[*i]));
        }
        out.push(chars[*i]);
        *i += 1;
    }
    Ok((out, false))
}

/// `pathTests[].condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathCondition {
    MustExist,
    MustNotExist,
}

/// One path test, as the number of location segments its `subPath` covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTest {
    pub sub_path: String,
    pub depth: usize,
    pub condition: PathCondition,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let l = Location::parse(r#"spec.containers[name: *].env[name: "A.B"].value"#).unwrap();
        assert_eq!(
            l.segments,
            vec![
                Segment::Field("spec".into()),
                Segment::Field("containers".into()),
                Segment::ListKey {
                    key: "name".into(),
                    value: None
                },
                Segment::Field("env".into()),
                Segment::ListKey {
                    key: "name".into(),
                    value: Some("A.B".into())
                },
                Segment::Field("value".into()),
            ]
        );
        let q = Location::parse(r#"metadata.labels."app.kubernetes.io/name""#).unwrap();
        assert_eq!(
            q.segments[2],
            Segment::Field("app.kubernetes.io/name".into())
        );
        // A quoted "*" is a literal key value, not a glob.
        let lit = Location::parse(r#"a[name: "*"]"#).unwrap();
        assert_eq!(
            lit.segments[1],
            Segment::ListKey {
                key: "name".into(),
                value: Some("*".into())
            }
        );
        for bad in [
            "",
            "spec..x",
            "spec.",
            "spec[name]",
            "spec[name:x",
            "a[:x]",
            "[name:x]",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
