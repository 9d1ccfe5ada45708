//! The `[...]` template expression language of policy rules: parsing and evaluation.

use serde_json::{json, Map, Value};

use super::{compare_values, loose_eq, ArmRuleError, Evaluator};

/// Longest expression accepted, so a hostile body cannot make parsing unbounded.
const MAX_EXPRESSION: usize = 16 * 1024;
/// Deepest nesting of calls accepted.
const MAX_DEPTH: usize = 64;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Call(String, Vec<Expr>),
    Property(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
}

/// `Some(expression text)` when `s` is a template expression (`[...]`, not `[[...`).
pub fn expression_text(s: &str) -> Option<&str> {
    if s.starts_with("[[") {
        return None;
    }
    s.strip_prefix('[')?.strip_suffix(']')
}

/// A string value as policy rules mean it: an expression is evaluated, `[[x` stands for `[x`,
/// anything else is literal.
pub fn evaluate_string(s: &str, ev: &Evaluator<'_>) -> Result<Value, ArmRuleError> {
    if let Some(text) = expression_text(s) {
        let expr = parse(text)?;
        return ev.eval_expr(&expr);
    }
    if let Some(rest) = s.strip_prefix("[[") {
        return Ok(Value::String(format!("[{rest}")));
    }
    Ok(Value::String(s.to_string()))
}

/// Parses the text between the brackets.
pub fn parse(text: &str) -> Result<Expr, ArmRuleError> {
    if text.len() > MAX_EXPRESSION {
        return Err(syntax(text, "expression too long"));
    }
    let mut p = Parser {
        src: text,
        chars: text.char_indices().collect(),
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(syntax(text, "unexpected text after the expression"));
    }
    Ok(e)
}

fn syntax(text: &str, reason: &str) -> ArmRuleError {
    ArmRuleError::Syntax {
        expression: text.chars().take(200).collect(),
        reason: reason.to_string(),
    }
}

struct Parser<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|(_, c)| *c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ArmRuleError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(syntax(self.src, &format!("expected '{c}'")))
        }
    }

    fn expr(&mut self) -> Result<Expr, ArmRuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(self.src, "expression nested too deeply"));
        }
        self.skip_ws();
        let mut e = match self.peek() {
            Some('\'') => self.string()?,
            Some(c) if c.is_ascii_digit() || c == '-' => self.number()?,
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.call()?,
            _ => {
                return Err(syntax(
                    self.src,
                    "expected a function call, string or number",
                ))
            }
        };
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    let name = self.ident();
                    if name.is_empty() {
                        return Err(syntax(self.src, "expected a property name after '.'"));
                    }
                    e = Expr::Property(Box::new(e), name);
                }
                Some('[') => {
                    self.pos += 1;
                    let index = self.expr()?;
                    self.expect(']')?;
                    e = Expr::Index(Box::new(e), Box::new(index));
                }
                _ => break,
            }
        }
        self.depth -= 1;
        Ok(e)
    }

    fn ident(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                out.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        out
    }

    fn string(&mut self) -> Result<Expr, ArmRuleError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(syntax(self.src, "unterminated string")),
                Some('\'') => {
                    self.pos += 1;
                    if self.peek() == Some('\'') {
                        out.push('\'');
                        self.pos += 1;
                    } else {
                        return Ok(Expr::Literal(Value::String(out)));
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Expr, ArmRuleError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().map(|(_, c)| c).collect();
        text.parse::<i64>()
            .map(|n| Expr::Literal(json!(n)))
            .map_err(|_| syntax(self.src, "invalid number"))
    }

    fn call(&mut self) -> Result<Expr, ArmRuleError> {
        let name = self.ident();
        self.skip_ws();
        if self.peek() != Some('(') {
            // ARM also reads bare `true`, `false` and `null` as literals.
            return match name.to_ascii_lowercase().as_str() {
                "true" => Ok(Expr::Literal(Value::Bool(true))),
                "false" => Ok(Expr::Literal(Value::Bool(false))),
                "null" => Ok(Expr::Literal(Value::Null)),
                _ => Err(syntax(self.src, &format!("expected '(' after '{name}'"))),
            };
        }
        self.expect('(')?;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(Expr::Call(name, args));
        }
        loop {
            args.push(self.expr()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(Expr::Call(name, args));
                }
                _ => return Err(syntax(self.src, "expected ',' or ')' in the argument list")),
            }
        }
    }
}

fn bad_arg(function: &str, reason: &str) -> ArmRuleError {
    ArmRuleError::InvalidArgument {
        function: function.to_string(),
        reason: reason.to_string(),
    }
}

fn arity(function: &str, args: &[Value], min: usize, max: usize) -> Result<(), ArmRuleError> {
    if args.len() < min || args.len() > max {
        return Err(bad_arg(
            function,
            &format!("takes {min}..{max} arguments, got {}", args.len()),
        ));
    }
    Ok(())
}

fn as_str<'v>(function: &str, v: &'v Value) -> Result<&'v str, ArmRuleError> {
    v.as_str()
        .ok_or_else(|| bad_arg(function, &format!("expects a string, got {v}")))
}

fn as_int(function: &str, v: &Value) -> Result<i64, ArmRuleError> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| bad_arg(function, &format!("expects an integer, got {v}")))
}

fn as_bool(function: &str, v: &Value) -> Result<bool, ArmRuleError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(bad_arg(function, &format!("expects a boolean, got {v}"))),
    }
}

/// `string()` of ARM: strings as they are, everything else as compact JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn substring_chars(s: &str, start: usize, len: usize) -> String {
    s.chars().skip(start).take(len).collect()
}

impl Evaluator<'_> {
    /// Evaluates a parsed expression. `if`, `and`, `or` and `coalesce` evaluate lazily, as ARM
    /// does, so a guarded `field()` of a missing alias is never reached.
    pub fn eval_expr(&self, e: &Expr) -> Result<Value, ArmRuleError> {
        match e {
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Property(inner, name) => {
                let v = self.eval_expr(inner)?;
                Ok(super::get_ci(&v, name).cloned().unwrap_or(Value::Null))
            }
            Expr::Index(inner, index) => {
                let v = self.eval_expr(inner)?;
                let i = self.eval_expr(index)?;
                Ok(match (&v, &i) {
                    (Value::Array(a), _) => usize::try_from(as_int("[]", &i)?)
                        .ok()
                        .and_then(|n| a.get(n))
                        .cloned()
                        .unwrap_or(Value::Null),
                    (Value::Object(_), Value::String(k)) => {
                        super::get_ci(&v, k).cloned().unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                })
            }
            Expr::Call(name, args) => self.call(name, args),
        }
    }

    fn call(&self, name: &str, raw: &[Expr]) -> Result<Value, ArmRuleError> {
        let lname = name.to_ascii_lowercase();
        match lname.as_str() {
            "if" => {
                if raw.len() != 3 {
                    return Err(bad_arg(name, "takes 3 arguments"));
                }
                let cond = as_bool(name, &self.eval_expr(&raw[0])?)?;
                return self.eval_expr(&raw[if cond { 1 } else { 2 }]);
            }
            "and" | "or" => {
                let want = lname == "or";
                for a in raw {
                    if as_bool(name, &self.eval_expr(a)?)? == want {
                        return Ok(json!(want));
                    }
                }
                return Ok(json!(!want));
            }
            "coalesce" => {
                for a in raw {
                    let v = self.eval_expr(a)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                return Ok(Value::Null);
            }
            _ => {}
        }
        let args = raw
            .iter()
            .map(|a| self.eval_expr(a))
            .collect::<Result<Vec<_>, _>>()?;
        self.call_eager(name, &lname, &args)
    }

    fn call_eager(&self, name: &str, lname: &str, args: &[Value]) -> Result<Value, ArmRuleError> {
        let a = args;
        Ok(match lname {
            "parameters" => {
                arity(name, a, 1, 1)?;
                let p = as_str(name, &a[0])?;
                self.parameter(p)?
            }
            "field" => {
                arity(name, a, 1, 1)?;
                self.field_value(as_str(name, &a[0])?)?
            }
            "current" => {
                arity(name, a, 0, 1)?;
                let key = a.first().map(|k| as_str(name, k)).transpose()?;
                self.current(key)?
            }
            "resourcegroup" => self.context.resource_group.clone().unwrap_or(Value::Null),
            "subscription" => self.context.subscription.clone().unwrap_or(Value::Null),
            "policy" => self.context.policy.clone().unwrap_or(Value::Null),
            "requestcontext" => {
                json!({"apiVersion": "", "method": self.context.method.clone().unwrap_or_default()})
            }
            "utcnow" => json!(self.context.now.clone().unwrap_or_default()),
            "true" => json!(true),
            "false" => json!(false),
            "null" => Value::Null,
            "concat" => {
                if a.iter().all(Value::is_array) && !a.is_empty() {
                    Value::Array(
                        a.iter()
                            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                            .collect(),
                    )
                } else {
                    json!(a.iter().map(to_text).collect::<String>())
                }
            }
            "format" => {
                if a.is_empty() {
                    return Err(bad_arg(name, "needs a format string"));
                }
                let mut out = as_str(name, &a[0])?.to_string();
                for (i, v) in a[1..].iter().enumerate() {
                    out = out.replace(&format!("{{{i}}}"), &to_text(v));
                }
                json!(out)
            }
            "tolower" => {
                arity(name, a, 1, 1)?;
                json!(as_str(name, &a[0])?.to_lowercase())
            }
            "toupper" => {
                arity(name, a, 1, 1)?;
                json!(as_str(name, &a[0])?.to_uppercase())
            }
            "trim" => {
                arity(name, a, 1, 1)?;
                json!(as_str(name, &a[0])?.trim())
            }
            "equals" => {
                arity(name, a, 2, 2)?;
                json!(loose_eq(&a[0], &a[1]))
            }
            "not" => {
                arity(name, a, 1, 1)?;
                json!(!as_bool(name, &a[0])?)
            }
            "greater" | "greaterorequals" | "less" | "lessorequals" => {
                arity(name, a, 2, 2)?;
                let ord = compare_values(&a[0], &a[1])
                    .ok_or_else(|| bad_arg(name, "cannot compare these values"))?;
                json!(match lname {
                    "greater" => ord.is_gt(),
                    "greaterorequals" => ord.is_ge(),
                    "less" => ord.is_lt(),
                    _ => ord.is_le(),
                })
            }
            "empty" => {
                arity(name, a, 1, 1)?;
                json!(match &a[0] {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Array(v) => v.is_empty(),
                    Value::Object(m) => m.is_empty(),
                    _ => false,
                })
            }
            "length" => {
                arity(name, a, 1, 1)?;
                json!(match &a[0] {
                    Value::String(s) => s.chars().count(),
                    Value::Array(v) => v.len(),
                    Value::Object(m) => m.len(),
                    other =>
                        return Err(bad_arg(
                            name,
                            &format!("expects a string, array or object, got {other}")
                        )),
                })
            }
            "contains" => {
                arity(name, a, 2, 2)?;
                json!(match &a[0] {
                    Value::String(s) => s.to_lowercase().contains(&to_text(&a[1]).to_lowercase()),
                    Value::Array(v) => v.iter().any(|x| loose_eq(x, &a[1])),
                    Value::Object(m) => {
                        let k = to_text(&a[1]);
                        m.keys().any(|x| x.eq_ignore_ascii_case(&k))
                    }
                    Value::Null => false,
                    other =>
                        return Err(bad_arg(
                            name,
                            &format!("expects a string, array or object, got {other}")
                        )),
                })
            }
            "startswith" | "endswith" => {
                arity(name, a, 2, 2)?;
                let s = as_str(name, &a[0])?.to_lowercase();
                let x = as_str(name, &a[1])?.to_lowercase();
                json!(if lname == "startswith" {
                    s.starts_with(&x)
                } else {
                    s.ends_with(&x)
                })
            }
            "indexof" | "lastindexof" => {
                arity(name, a, 2, 2)?;
                let s = as_str(name, &a[0])?.to_lowercase();
                let x = as_str(name, &a[1])?.to_lowercase();
                let found = if lname == "indexof" {
                    s.find(&x)
                } else {
                    s.rfind(&x)
                };
                json!(found.map_or(-1, |i| s[..i].chars().count() as i64))
            }
            "split" => {
                arity(name, a, 2, 2)?;
                let s = as_str(name, &a[0])?;
                let seps: Vec<String> = match &a[1] {
                    Value::Array(v) => v.iter().map(to_text).collect(),
                    other => vec![to_text(other)],
                };
                let mut parts = vec![s.to_string()];
                for sep in seps.iter().filter(|s| !s.is_empty()) {
                    parts = parts
                        .iter()
                        .flat_map(|p| {
                            p.split(sep.as_str())
                                .map(str::to_string)
                                .collect::<Vec<_>>()
                        })
                        .collect();
                }
                json!(parts)
            }
            "replace" => {
                arity(name, a, 3, 3)?;
                json!(as_str(name, &a[0])?.replace(as_str(name, &a[1])?, as_str(name, &a[2])?))
            }
            "substring" => {
                arity(name, a, 2, 3)?;
                let s = as_str(name, &a[0])?;
                let total = s.chars().count();
                let start = usize::try_from(as_int(name, &a[1])?)
                    .map_err(|_| bad_arg(name, "start is negative"))?;
                let len = match a.get(2) {
                    Some(l) => usize::try_from(as_int(name, l)?)
                        .map_err(|_| bad_arg(name, "length is negative"))?,
                    None => total.saturating_sub(start),
                };
                if start.saturating_add(len) > total {
                    return Err(bad_arg(
                        name,
                        "start and length go past the end of the string",
                    ));
                }
                json!(substring_chars(s, start, len))
            }
            "take" | "skip" => {
                arity(name, a, 2, 2)?;
                let n = usize::try_from(as_int(name, &a[1])?.max(0)).unwrap_or(0);
                match &a[0] {
                    Value::String(s) => {
                        let chars: Vec<char> = s.chars().collect();
                        let n = n.min(chars.len());
                        json!(if lname == "take" {
                            chars[..n].iter().collect::<String>()
                        } else {
                            chars[n..].iter().collect()
                        })
                    }
                    Value::Array(v) => {
                        let n = n.min(v.len());
                        Value::Array(if lname == "take" {
                            v[..n].to_vec()
                        } else {
                            v[n..].to_vec()
                        })
                    }
                    other => {
                        return Err(bad_arg(
                            name,
                            &format!("expects a string or array, got {other}"),
                        ))
                    }
                }
            }
            "first" | "last" => {
                arity(name, a, 1, 1)?;
                match &a[0] {
                    Value::String(s) => {
                        let c = if lname == "first" {
                            s.chars().next()
                        } else {
                            s.chars().last()
                        };
                        json!(c.map(String::from).unwrap_or_default())
                    }
                    Value::Array(v) => (if lname == "first" {
                        v.first()
                    } else {
                        v.last()
                    })
                    .cloned()
                    .unwrap_or(Value::Null),
                    other => {
                        return Err(bad_arg(
                            name,
                            &format!("expects a string or array, got {other}"),
                        ))
                    }
                }
            }
            "string" => {
                arity(name, a, 1, 1)?;
                json!(to_text(&a[0]))
            }
            "int" => {
                arity(name, a, 1, 1)?;
                json!(as_int(name, &a[0])?)
            }
            "bool" => {
                arity(name, a, 1, 1)?;
                json!(match &a[0] {
                    Value::Number(n) => n.as_i64() != Some(0),
                    other => as_bool(name, other)?,
                })
            }
            "json" => {
                arity(name, a, 1, 1)?;
                serde_json::from_str(as_str(name, &a[0])?)
                    .map_err(|e| bad_arg(name, &e.to_string()))?
            }
            "array" => {
                arity(name, a, 1, 1)?;
                match &a[0] {
                    Value::Array(_) => a[0].clone(),
                    other => json!([other]),
                }
            }
            "createarray" => Value::Array(a.to_vec()),
            "createobject" => {
                if !a.len().is_multiple_of(2) {
                    return Err(bad_arg(name, "takes key/value pairs"));
                }
                let mut m = Map::new();
                for pair in a.chunks(2) {
                    m.insert(as_str(name, &pair[0])?.to_string(), pair[1].clone());
                }
                Value::Object(m)
            }
            "union" => {
                if a.iter().all(Value::is_object) {
                    let mut m = Map::new();
                    for v in a {
                        if let Value::Object(o) = v {
                            m.extend(o.clone());
                        }
                    }
                    Value::Object(m)
                } else {
                    let mut out: Vec<Value> = Vec::new();
                    for v in a {
                        for x in v
                            .as_array()
                            .ok_or_else(|| bad_arg(name, "expects arrays or objects"))?
                        {
                            if !out.contains(x) {
                                out.push(x.clone());
                            }
                        }
                    }
                    Value::Array(out)
                }
            }
            "intersection" => {
                let mut it = a.iter();
                let first = it
                    .next()
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let rest: Vec<&Vec<Value>> = it.filter_map(Value::as_array).collect();
                Value::Array(
                    first
                        .into_iter()
                        .filter(|x| rest.iter().all(|r| r.contains(x)))
                        .collect(),
                )
            }
            "add" | "sub" | "mul" | "div" | "mod" => {
                arity(name, a, 2, 2)?;
                let (x, y) = (as_int(name, &a[0])?, as_int(name, &a[1])?);
                let r = match lname {
                    "add" => x.checked_add(y),
                    "sub" => x.checked_sub(y),
                    "mul" => x.checked_mul(y),
                    "div" => x.checked_div(y),
                    _ => x.checked_rem(y),
                };
                json!(r.ok_or_else(|| bad_arg(name, "overflow or division by zero"))?)
            }
            "padleft" => {
                arity(name, a, 2, 3)?;
                let s = to_text(&a[0]);
                let width = usize::try_from(as_int(name, &a[1])?)
                    .unwrap_or(0)
                    .min(16 * 1024);
                let pad = a
                    .get(2)
                    .map(to_text)
                    .and_then(|p| p.chars().next())
                    .unwrap_or(' ');
                let n = width.saturating_sub(s.chars().count());
                json!(format!(
                    "{}{s}",
                    std::iter::repeat_n(pad, n).collect::<String>()
                ))
            }
            "iprangecontains" => {
                arity(name, a, 2, 2)?;
                json!(
                    super::ip::range_contains(as_str(name, &a[0])?, as_str(name, &a[1])?)
                        .ok_or_else(|| bad_arg(
                            name,
                            "expects an IP range and an IP address or range"
                        ))?
                )
            }
            _ => return Err(ArmRuleError::UnknownFunction(name.to_string())),
        })
    }
}
