//! Builtins the provider registers on regorus so templates behave as under Gatekeeper: OPA's
//! `sprintf` (Go `fmt` semantics, including `%!v(MISSING)`), Gatekeeper's `external_data`, and
//! deprecated OPA builtins that Azure's templates still call.

use std::cell::RefCell;

use regorus::Value;
use serde_json::{json, Value as Json};

/// Answers of external data providers for the evaluation running on this thread:
/// provider -> key -> answer (`{"value": v}` or `{"error": "..."}`, or a bare value).
pub type ExternalData = serde_json::Map<String, Json>;

thread_local! {
    static EXTERNAL_DATA: RefCell<ExternalData> = RefCell::new(ExternalData::new());
}

/// Makes `answers` what `external_data` sees during evaluations on this thread.
pub(crate) fn set_external_data(answers: ExternalData) {
    EXTERNAL_DATA.with(|d| *d.borrow_mut() = answers);
}

/// One function Gatekeeper adds to Rego.
type Extension = fn(Vec<Value>) -> anyhow::Result<Value>;

/// Gatekeeper's additions to Rego with their arity; [`super::source`] checks calls against
/// these names too.
pub(crate) const EXTENSIONS: [(&str, u8, Extension); 5] = [
    ("re_match", 2, re_match),
    ("any", 1, any),
    ("all", 1, all),
    ("sprintf", 2, sprintf),
    ("external_data", 1, external_data),
];

pub(crate) fn register(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    for (name, arity, extension) in EXTENSIONS {
        engine.add_extension(name.to_string(), arity, Box::new(extension))?;
    }
    Ok(())
}

fn re_match(args: Vec<Value>) -> anyhow::Result<Value> {
    let (Some(pattern), Some(value)) = (args.first(), args.get(1)) else {
        anyhow::bail!("re_match expects 2 arguments");
    };
    let re = regex::Regex::new(pattern.as_string()?)?;
    Ok(Value::Bool(re.is_match(value.as_string()?)))
}

fn any(args: Vec<Value>) -> anyhow::Result<Value> {
    let found = collection_items(args.first())?.iter().any(is_true);
    Ok(Value::Bool(found))
}

fn all(args: Vec<Value>) -> anyhow::Result<Value> {
    let every = collection_items(args.first())?.iter().all(is_true);
    Ok(Value::Bool(every))
}

fn sprintf(args: Vec<Value>) -> anyhow::Result<Value> {
    let (Some(Value::String(format)), Some(list)) = (args.first(), args.get(1)) else {
        anyhow::bail!("sprintf: operand 1 must be string");
    };
    let Value::Array(list) = list else {
        anyhow::bail!("sprintf: operand 2 must be array");
    };
    let list: Vec<GoArg> = list.iter().map(GoArg::from_value).collect();
    Ok(Value::String(go_sprintf(format, &list).into()))
}

fn external_data(args: Vec<Value>) -> anyhow::Result<Value> {
    let request = serde_json::to_value(args.first().unwrap_or(&Value::Null))?;
    let answer = EXTERNAL_DATA.with(|d| external_data_response(&d.borrow(), &request));
    Ok(Value::from(answer))
}

/// Gatekeeper's `external_data` response for a request `{"provider": p, "keys": [...]}`.
pub fn external_data_response(answers: &ExternalData, request: &Json) -> Json {
    let provider = request.get("provider").and_then(Json::as_str).unwrap_or("");
    let keys: Vec<Json> = request
        .get("keys")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(Json::Object(table)) = answers.get(provider) else {
        return json!({
            "responses": [],
            "errors": [],
            "status_code": 400,
            "system_error": format!("failed to get external data provider {provider:?}: not configured"),
        });
    };
    let mut responses = Vec::new();
    let mut errors = Vec::new();
    for key in keys {
        let name = match &key {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        match table.get(&name) {
            Some(Json::Object(o)) if o.contains_key("error") => {
                errors.push(json!([key, o["error"]]));
            }
            Some(Json::Object(o)) if o.contains_key("value") => {
                responses.push(json!([key, o["value"]]));
            }
            Some(value) => responses.push(json!([key, value])),
            None => errors.push(json!([
                key,
                format!("no answer configured for key {name:?}")
            ])),
        }
    }
    json!({"responses": responses, "errors": errors, "status_code": 200, "system_error": ""})
}

fn is_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

fn collection_items(v: Option<&Value>) -> anyhow::Result<Vec<Value>> {
    match v {
        Some(Value::Array(a)) => Ok(a.iter().cloned().collect()),
        Some(Value::Set(s)) => Ok(s.iter().cloned().collect()),
        _ => anyhow::bail!("expected an array or a set"),
    }
}

/// A `sprintf` operand as OPA hands it to Go's `fmt`: integers as `int`, other numbers as
/// `float64`, strings as themselves, everything else as its Rego text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GoArg {
    Int(i64),
    Float(f64),
    Str(String),
}

impl GoArg {
    fn from_value(v: &Value) -> GoArg {
        match v {
            Value::String(s) => GoArg::Str(s.to_string()),
            Value::Number(_) => {
                let json = serde_json::to_value(v).unwrap_or(Json::Null);
                match (json.as_i64(), json.as_f64()) {
                    (Some(i), _) => GoArg::Int(i),
                    (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => GoArg::Int(f as i64),
                    (None, Some(f)) => GoArg::Float(f),
                    _ => GoArg::Str(json.to_string()),
                }
            }
            other => GoArg::Str(rego_text(other)),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            GoArg::Int(_) => "int",
            GoArg::Float(_) => "float64",
            GoArg::Str(_) => "string",
        }
    }

    fn plain(&self) -> String {
        match self {
            GoArg::Int(i) => i.to_string(),
            GoArg::Float(f) => go_float_g(*f, None),
            GoArg::Str(s) => s.clone(),
        }
    }
}

/// OPA's text of a value (`ast.Value.String()`): JSON-like, `", "` separators, sets in braces.
fn rego_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => go_quote(s),
        Value::Number(_) => serde_json::to_value(v)
            .map(|j| j.to_string())
            .unwrap_or_default(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(rego_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Set(s) if s.is_empty() => "set()".into(),
        Value::Set(s) => format!(
            "{{{}}}",
            s.iter().map(rego_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", rego_text(k), rego_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Undefined => "undefined".into(),
    }
}

/// Go's `strconv.Quote` for the characters templates use.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%e` exponent form: at least two exponent digits with a sign.
fn go_exponent(rust: &str, upper: bool) -> String {
    let (mantissa, exp) = rust.split_once('e').unwrap_or((rust, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exp.abs())
}

/// Go's `%g` (`precision` None = shortest, as `%v` prints a float64).
fn go_float_g(f: f64, precision: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = match precision {
        None => format!("{f:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f),
    };
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    // Go switches to the exponent form from 6 digits when printing the shortest form.
    let limit = precision.map_or(6, |p| p.max(1) as i32);
    if exp < -4 || exp >= limit {
        let (mantissa, _) = sci.split_once('e').unwrap_or((&sci, ""));
        let mantissa = if precision.is_some() && mantissa.contains('.') {
            mantissa.trim_end_matches('0').trim_end_matches('.')
        } else {
            mantissa
        };
        return go_exponent(&format!("{mantissa}e{exp}"), false);
    }
    match precision {
        None => format!("{f}"),
        Some(p) => {
            let decimals = (p as i32 - 1 - exp).max(0) as usize;
            let s = format!("{f:.decimals$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
    }
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec {
    fn pad(&self, body: String) -> String {
        let Some(width) = self.width else {
            return body;
        };
        let len = body.chars().count();
        if len >= width {
            return body;
        }
        let fill = width - len;
        if self.minus {
            format!("{body}{}", " ".repeat(fill))
        } else if self.zero {
            let (sign, digits) = match body.strip_prefix(['-', '+']) {
                Some(rest) => (&body[..1], rest),
                None => ("", body.as_str()),
            };
            format!("{sign}{}{digits}", "0".repeat(fill))
        } else {
            format!("{}{body}", " ".repeat(fill))
        }
    }

    fn signed(&self, negative: bool, digits: String) -> String {
        let sign = if negative {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        };
        format!("{sign}{digits}")
    }
}

fn bad_verb(verb: char, arg: &GoArg) -> String {
    format!("%!{verb}({}={})", arg.type_name(), arg.plain())
}

fn format_one(verb: char, spec: &Spec, arg: &GoArg) -> String {
    let body = match (verb, arg) {
        ('v', _) => arg.plain(),
        ('s', GoArg::Str(s)) => match spec.precision {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('q', GoArg::Str(s)) => go_quote(s),
        ('x', GoArg::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('X', GoArg::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
        ('d', GoArg::Int(i)) => spec.signed(*i < 0, i.unsigned_abs().to_string()),
        ('b', GoArg::Int(i)) => spec.signed(*i < 0, format!("{:b}", i.unsigned_abs())),
        ('o', GoArg::Int(i)) => spec.signed(*i < 0, format!("{:o}", i.unsigned_abs())),
        ('x', GoArg::Int(i)) => {
            let p = if spec.sharp { "0x" } else { "" };
            spec.signed(*i < 0, format!("{p}{:x}", i.unsigned_abs()))
        }
        ('X', GoArg::Int(i)) => {
            let p = if spec.sharp { "0X" } else { "" };
            spec.signed(*i < 0, format!("{p}{:X}", i.unsigned_abs()))
        }
        ('c', GoArg::Int(i)) => u32::try_from(*i)
            .ok()
            .and_then(char::from_u32)
            .map_or_else(|| "\u{fffd}".to_string(), |c| c.to_string()),
        ('q', GoArg::Int(i)) => u32::try_from(*i)
            .ok()
            .and_then(char::from_u32)
            .map_or_else(|| "'\u{fffd}'".to_string(), |c| format!("'{c}'")),
        ('f' | 'F', GoArg::Float(f)) => {
            let p = spec.precision.unwrap_or(6);
            spec.signed(f.is_sign_negative(), format!("{:.p$}", f.abs()))
        }
        ('e' | 'E', GoArg::Float(f)) => {
            let p = spec.precision.unwrap_or(6);
            let s = go_exponent(&format!("{:.p$e}", f.abs()), verb == 'E');
            spec.signed(f.is_sign_negative(), s)
        }
        ('g' | 'G', GoArg::Float(f)) => {
            let s = go_float_g(f.abs(), spec.precision);
            let s = if verb == 'G' { s.to_uppercase() } else { s };
            spec.signed(f.is_sign_negative(), s)
        }
        _ => return bad_verb(verb, arg),
    };
    spec.pad(body)
}

/// Go's `fmt.Sprintf` over OPA's operands: missing operands print `%!v(MISSING)`, surplus ones
/// `%!(EXTRA type=value)`, a verb that does not fit its operand `%!d(string=x)`.
pub(crate) fn go_sprintf(format: &str, args: &[GoArg]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                // Widths beyond this are typos or attacks; Go would allocate them.
                n = Some((n.unwrap_or(0) * 10 + d as usize).min(10_000));
                chars.next();
            }
            n
        };
        spec.width = digits(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(digits(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(arg) => out.push_str(&format_one(verb, &spec, arg)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        next += 1;
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.plain()))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> GoArg {
        GoArg::Str(x.into())
    }

    #[test]
    fn go_fmt_semantics() {
        assert_eq!(
            go_sprintf("%v and %v", &[GoArg::Int(1)]),
            "1 and %!v(MISSING)"
        );
        assert_eq!(go_sprintf("%s", &[]), "%!s(MISSING)");
        assert_eq!(go_sprintf("a", &[s("x")]), "a%!(EXTRA string=x)");
        assert_eq!(go_sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(go_sprintf("%s", &[GoArg::Int(5)]), "%!s(int=5)");
        assert_eq!(
            go_sprintf(
                "%05d|%-4d|%4d",
                &[GoArg::Int(-42), GoArg::Int(7), GoArg::Int(7)]
            ),
            "-0042|7   |   7"
        );
        assert_eq!(
            go_sprintf(
                "%.2f %v %v",
                &[GoArg::Float(1.5), GoArg::Float(1.5), GoArg::Float(1e21)]
            ),
            "1.50 1.5 1e+21"
        );
        assert_eq!(
            go_sprintf("%q %x 100%%", &[s("a\"b"), s("hi")]),
            "\"a\\\"b\" 6869 100%"
        );
        assert_eq!(go_sprintf("%e", &[GoArg::Float(1234.5)]), "1.234500e+03");
    }

    #[test]
    fn composite_operands_print_as_rego() {
        let v = Value::from(json!({"a": [1, "x"], "b": true}));
        assert_eq!(GoArg::from_value(&v), s("{\"a\": [1, \"x\"], \"b\": true}"));
    }

    #[test]
    fn external_data_answers_like_gatekeeper() {
        let answers: ExternalData = serde_json::from_value(json!({
            "p": {"a": {"value": "ok"}, "b": {"error": "bad"}, "c": 3}
        }))
        .unwrap();
        let r = external_data_response(
            &answers,
            &json!({"provider": "p", "keys": ["a", "b", "c", "d"]}),
        );
        assert_eq!(r["responses"], json!([["a", "ok"], ["c", 3]]));
        assert_eq!(r["errors"][0], json!(["b", "bad"]));
        assert_eq!(r["errors"][1][0], "d");
        assert_eq!(r["status_code"], 200);
        let none = external_data_response(&answers, &json!({"provider": "q", "keys": ["a"]}));
        assert_ne!(none["system_error"], "");
    }
}
