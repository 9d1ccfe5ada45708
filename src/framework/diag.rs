//! Diagnostics: the only way errors and warnings reach the Terraform user. Every layer below
//! returns typed errors; they become diagnostics here, at one boundary, with the attribute path
//! that lets Terraform underline the offending argument.

use std::fmt;

/// One step into a value: an attribute (or block) name, a map key, or a list index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathStep {
    Attribute(String),
    ElementKeyString(String),
    ElementKeyInt(i64),
}

/// Where in a configuration or state object a diagnostic or replacement applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AttributePath(pub Vec<PathStep>);

impl AttributePath {
    pub fn root() -> AttributePath {
        AttributePath(Vec::new())
    }

    /// A path to a top-level attribute.
    pub fn attr(name: &str) -> AttributePath {
        AttributePath(vec![PathStep::Attribute(name.to_string())])
    }

    pub fn attribute(&self, name: &str) -> AttributePath {
        self.with(PathStep::Attribute(name.to_string()))
    }

    pub fn index(&self, i: usize) -> AttributePath {
        self.with(PathStep::ElementKeyInt(i as i64))
    }

    pub fn key(&self, k: &str) -> AttributePath {
        self.with(PathStep::ElementKeyString(k.to_string()))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    fn with(&self, step: PathStep) -> AttributePath {
        let mut steps = self.0.clone();
        steps.push(step);
        AttributePath(steps)
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attribute(n) if i == 0 => f.write_str(n)?,
                PathStep::Attribute(n) => write!(f, ".{n}")?,
                PathStep::ElementKeyString(k) => write!(f, "[{k:?}]")?,
                PathStep::ElementKeyInt(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub attribute: Option<AttributePath>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            attribute: None,
        }
    }

    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            summary: summary.into(),
            detail: detail.into(),
            attribute: None,
        }
    }

    /// Anchors the diagnostic on an attribute so Terraform points at it in the configuration.
    pub fn at(mut self, path: AttributePath) -> Diagnostic {
        self.attribute = if path.is_root() { None } else { Some(path) };
        self
    }
}

/// An ordered collection of diagnostics, as every RPC answers with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics(Vec::new())
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(Diagnostic::error(summary, detail));
    }

    pub fn error_at(
        &mut self,
        path: AttributePath,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(Diagnostic::error(summary, detail).at(path));
    }

    pub fn warning_at(
        &mut self,
        path: AttributePath,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(Diagnostic::warning(summary, detail).at(path));
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_displays_like_terraform() {
        let p = AttributePath::attr("match")
            .index(0)
            .attribute("kinds")
            .key("x");
        assert_eq!(p.to_string(), "match[0].kinds[\"x\"]");
    }

    #[test]
    fn root_path_is_not_attached() {
        let d = Diagnostic::error("s", "d").at(AttributePath::root());
        assert!(d.attribute.is_none());
    }
}
