//! ARM-mode (`All` / `Indexed`) Azure Policy rules evaluated against resource bodies: the one
//! implementation behind the emulator's Deny/Audit/…IfNotExists/Modify effects.
//!
//! - `field` names resolve through [`alias`] (a documented table); `[*]` aliases make a
//!   condition hold only when every element satisfies it (an empty array satisfies it), and
//!   `count` counts the elements matching `where`, with `current()` naming the element.
//! - `value` conditions and every string operand may be a `[...]` template expression
//!   ([`expr`]), evaluated with the parameter values `policy::constraint::effective_parameters`
//!   computes (the same for Kubernetes-mode and ARM-mode members).
//! - String comparisons are case-insensitive except `match`, as in Azure; a boolean equals the
//!   strings `"true"`/`"false"` (built-ins compare `enabled` flags with either).
//! - Unknown functions, aliases, operators and malformed expressions are [`ArmRuleError`]s.

pub mod alias;
pub mod expr;
mod ip;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use alias::{FieldPath, Segment};

use crate::policy::json::try_map_strings;

/// Why a rule could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmRuleError {
    #[error("the policy rule uses the alias '{0}', which is not known for this resource type")]
    UnknownAlias(String),
    #[error("the policy rule calls the unknown template function '{0}'")]
    UnknownFunction(String),
    #[error("the template function '{function}' {reason}")]
    InvalidArgument { function: String, reason: String },
    #[error("the template expression '[{expression}]' is invalid: {reason}")]
    Syntax { expression: String, reason: String },
    #[error("the policy rule references the parameter '{0}', which has no value and no default")]
    MissingParameter(String),
    #[error("the policy rule condition {0} is not valid")]
    InvalidCondition(String),
    #[error("current('{0}') is used outside a count that names it")]
    NoCurrent(String),
}

/// Facts about where a resource lives that `resourceGroup()`, `subscription()`, `policy()`,
/// `requestContext()` and `utcNow()` answer.
#[derive(Debug, Clone, Default)]
pub struct RuleContext {
    pub resource_group: Option<Value>,
    pub subscription: Option<Value>,
    pub policy: Option<Value>,
    /// HTTP method of the request being evaluated, if any.
    pub method: Option<String>,
    pub now: Option<String>,
}

/// The effects of ARM-mode policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Deny,
    Audit,
    Append,
    Modify,
    AuditIfNotExists,
    DeployIfNotExists,
    DenyAction,
    Manual,
    Disabled,
}

impl Effect {
    /// Parses an effect name (any casing).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "deny" => Self::Deny,
            "audit" => Self::Audit,
            "append" => Self::Append,
            "modify" => Self::Modify,
            "auditifnotexists" => Self::AuditIfNotExists,
            "deployifnotexists" => Self::DeployIfNotExists,
            "denyaction" => Self::DenyAction,
            "manual" => Self::Manual,
            "disabled" => Self::Disabled,
            _ => return None,
        })
    }

    /// Azure's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Deny => "Deny",
            Self::Audit => "Audit",
            Self::Append => "Append",
            Self::Modify => "Modify",
            Self::AuditIfNotExists => "AuditIfNotExists",
            Self::DeployIfNotExists => "DeployIfNotExists",
            Self::DenyAction => "DenyAction",
            Self::Manual => "Manual",
            Self::Disabled => "Disabled",
        }
    }
}

/// The ARM types of subscriptions and resource groups (as ARM reports them and as rules write
/// them), which hold resources rather than being indexed ones.
const CONTAINER_TYPES: [&str; 3] = [
    "Microsoft.Resources/subscriptions",
    "Microsoft.Resources/subscriptions/resourceGroups",
    "Microsoft.Resources/resourceGroups",
];

/// Whether a definition of `mode` evaluates resources of `resource_type`: `All` evaluates
/// everything, `Indexed` only resources that carry location and tags (not resource groups or
/// subscriptions), resource-provider modes (`Microsoft.Kubernetes.Data`, ...) nothing ARM holds.
pub fn mode_applies(mode: &str, resource_type: &str) -> bool {
    let container = CONTAINER_TYPES
        .iter()
        .any(|t| resource_type.eq_ignore_ascii_case(t));
    if mode.eq_ignore_ascii_case("all") {
        true
    } else if mode.eq_ignore_ascii_case("indexed") {
        !container
    } else {
        false
    }
}

/// Whether `mode` is an ARM mode (the rest are resource-provider modes).
pub fn is_arm_mode(mode: &str) -> bool {
    mode.eq_ignore_ascii_case("all") || mode.eq_ignore_ascii_case("indexed")
}

/// Case-insensitive object member lookup (ARM property names are case-insensitive).
pub fn get_ci<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let m = v.as_object()?;
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Azure's equality: numbers by value, scalars as case-insensitive text (`true` equals
/// `"True"`), arrays element-wise, objects by case-insensitive keys.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| get_ci(b, k).is_some_and(|w| loose_eq(v, w)))
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => expr::to_text(a).eq_ignore_ascii_case(&expr::to_text(b)),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Ordering for greater/less: numerically when both sides are numbers (or numeric text next
/// to a number), else case-insensitive text (ISO dates order correctly as text).
pub fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    if a.is_number() || b.is_number() {
        return as_number(a)?.partial_cmp(&as_number(b)?);
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        _ => None,
    }
}

/// `like`: `*` matches any run of characters, case-insensitively.
pub fn like(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `match`: `#` a digit, `?` a letter, `.` any character, anything else itself; the whole
/// value, same length.
pub fn match_pattern(pattern: &str, value: &str, insensitive: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    p.len() == v.len()
        && p.iter().zip(&v).all(|(pc, vc)| match pc {
            '#' => vc.is_ascii_digit(),
            '?' => vc.is_alphabetic(),
            '.' => true,
            c if insensitive => c.to_lowercase().eq(vc.to_lowercase()),
            c => c == vc,
        })
}

/// What a field reference yields: one value (or nothing), or the values of every element a
/// `[*]` path reaches.
#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    One(Option<Value>),
    Many(Vec<Option<Value>>),
}

/// One level of `count`: the element being looked at.
#[derive(Debug, Clone)]
struct CountScope {
    /// Lower-cased path of a field count (ending in `[*]`), or `None` for a value count.
    path: Option<Vec<Segment>>,
    /// The value count's `name`.
    name: Option<String>,
    element: Value,
}

/// Evaluates rules and expressions against one resource.
pub struct Evaluator<'a> {
    /// What `field` conditions read.
    resource: &'a Value,
    /// What the `field()` function reads: the evaluated resource even inside an
    /// `existenceCondition`, where conditions read the related resource.
    primary: &'a Value,
    parameters: &'a Map<String, Value>,
    context: &'a RuleContext,
    scopes: RefCell<Vec<CountScope>>,
}

const OPERATORS: &[&str] = &[
    "equals",
    "notequals",
    "in",
    "notin",
    "contains",
    "notcontains",
    "like",
    "notlike",
    "match",
    "matchinsensitively",
    "notmatch",
    "notmatchinsensitively",
    "containskey",
    "notcontainskey",
    "exists",
    "greater",
    "greaterorequals",
    "less",
    "lessorequals",
];

/// Deepest nesting of logical operators and counts accepted.
const MAX_RULE_DEPTH: usize = 64;

impl<'a> Evaluator<'a> {
    /// An evaluator of `resource` (an ARM body with `id`, `name`, `type`, `location`, ...).
    pub fn new(
        resource: &'a Value,
        parameters: &'a Map<String, Value>,
        context: &'a RuleContext,
    ) -> Self {
        Self {
            resource,
            primary: resource,
            parameters,
            context,
            scopes: RefCell::new(Vec::new()),
        }
    }

    /// An evaluator whose conditions read `related` while `field()` still reads this one's
    /// resource: for `existenceCondition`.
    pub fn for_related(&self, related: &'a Value) -> Self {
        Self {
            resource: related,
            primary: self.primary,
            parameters: self.parameters,
            context: self.context,
            scopes: RefCell::new(Vec::new()),
        }
    }

    /// Whether `condition` (a policy rule's `if`, or an `existenceCondition`) holds.
    pub fn matches(&self, condition: &Value) -> Result<bool, ArmRuleError> {
        self.condition(condition, 0)
    }

    /// The effect named by `policyRule.then.effect` (an expression is evaluated).
    pub fn effect(&self, policy_rule: &Value) -> Result<Effect, ArmRuleError> {
        let raw = get_ci(policy_rule, "then")
            .and_then(|t| get_ci(t, "effect"))
            .cloned()
            .unwrap_or(Value::Null);
        let v = self.resolve_operand(&raw)?;
        let text = expr::to_text(&v);
        Effect::parse(&text)
            .ok_or_else(|| ArmRuleError::InvalidCondition(format!("effect '{text}'")))
    }

    /// A value from the rule: strings that are expressions are evaluated, arrays and objects
    /// element-wise.
    pub fn resolve_operand(&self, v: &Value) -> Result<Value, ArmRuleError> {
        try_map_strings(v, &|s| expr::evaluate_string(s, self))
    }

    fn parameter(&self, name: &str) -> Result<Value, ArmRuleError> {
        self.parameters
            .get(name)
            .or_else(|| {
                self.parameters
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .cloned()
            .ok_or_else(|| ArmRuleError::MissingParameter(name.to_string()))
    }

    fn resource_type(resource: &Value) -> String {
        get_ci(resource, "type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn path_of(&self, field: &str, resource: &Value) -> Result<Option<Vec<Segment>>, ArmRuleError> {
        match alias::resolve(field, &Self::resource_type(resource)) {
            Some(FieldPath::Body(p)) => Ok(Some(alias::segments(&p))),
            Some(FieldPath::NotApplicable) => Ok(None),
            None => Err(ArmRuleError::UnknownAlias(field.to_string())),
        }
    }

    /// Reads `field` from `resource`, starting inside the innermost count whose path the field
    /// continues.
    fn read(&self, field: &str, resource: &Value) -> Result<FieldValue, ArmRuleError> {
        let Some(segs) = self.path_of(field, resource)? else {
            return Ok(FieldValue::One(None));
        };
        let scopes = self.scopes.borrow();
        for scope in scopes.iter().rev() {
            let Some(prefix) = &scope.path else { continue };
            if segs.len() >= prefix.len() && same_prefix(prefix, &segs) {
                return Ok(walk(&scope.element, &segs[prefix.len()..]));
            }
        }
        Ok(walk(resource, &segs))
    }

    /// `field('x')`: the primary resource's value (`[*]` paths give an array).
    pub fn field_value(&self, field: &str) -> Result<Value, ArmRuleError> {
        Ok(match self.read(field, self.primary)? {
            FieldValue::One(v) => v.unwrap_or(Value::Null),
            FieldValue::Many(vs) => Value::Array(vs.into_iter().flatten().collect()),
        })
    }

    fn current(&self, key: Option<&str>) -> Result<Value, ArmRuleError> {
        let scopes = self.scopes.borrow();
        let Some(k) = key else {
            return scopes
                .last()
                .map(|s| s.element.clone())
                .ok_or_else(|| ArmRuleError::NoCurrent(String::new()));
        };
        if let Some(s) = scopes
            .iter()
            .rev()
            .find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(k)))
        {
            return Ok(s.element.clone());
        }
        // `current('alias[*].x')` reads `x` of the element the count on `alias[*]` looks at.
        if let Some(FieldPath::Body(p)) = alias::resolve(k, &Self::resource_type(self.resource)) {
            let segs = alias::segments(&p);
            for s in scopes.iter().rev() {
                let Some(prefix) = &s.path else { continue };
                if segs.len() >= prefix.len() && same_prefix(prefix, &segs) {
                    return Ok(match walk(&s.element, &segs[prefix.len()..]) {
                        FieldValue::One(v) => v.unwrap_or(Value::Null),
                        FieldValue::Many(vs) => Value::Array(vs.into_iter().flatten().collect()),
                    });
                }
            }
        }
        Err(ArmRuleError::NoCurrent(k.to_string()))
    }

    fn condition(&self, c: &Value, depth: usize) -> Result<bool, ArmRuleError> {
        if depth > MAX_RULE_DEPTH {
            return Err(ArmRuleError::InvalidCondition("nested too deeply".into()));
        }
        let Some(m) = c.as_object() else {
            return Err(ArmRuleError::InvalidCondition(format!(
                "{c} (not an object)"
            )));
        };
        if let Some(all) = get_ci(c, "allOf") {
            for x in all
                .as_array()
                .ok_or_else(|| invalid("allOf is not an array"))?
            {
                if !self.condition(x, depth + 1)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        if let Some(any) = get_ci(c, "anyOf") {
            for x in any
                .as_array()
                .ok_or_else(|| invalid("anyOf is not an array"))?
            {
                if self.condition(x, depth + 1)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        if let Some(not) = get_ci(c, "not") {
            return Ok(!self.condition(not, depth + 1)?);
        }
        let mut op = None;
        for (k, v) in m {
            let lk = k.to_ascii_lowercase();
            if OPERATORS.contains(&lk.as_str()) {
                if op.is_some() {
                    return Err(invalid(&format!("{c} has more than one operator")));
                }
                op = Some((lk, v));
            }
        }
        let Some((op, operand)) = op else {
            return Err(invalid(&format!("{c} has no operator")));
        };
        let operand = self.resolve_operand(operand)?;
        if let Some(field) = get_ci(c, "field") {
            let name = self.resolve_operand(field)?;
            let name = name
                .as_str()
                .ok_or_else(|| invalid(&format!("field {name} is not a string")))?;
            return match self.read(name, self.resource)? {
                FieldValue::One(v) => apply(&op, v.as_ref(), &operand),
                FieldValue::Many(vs) => {
                    for v in &vs {
                        if !apply(&op, v.as_ref(), &operand)? {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                }
            };
        }
        if let Some(value) = get_ci(c, "value") {
            let v = self.resolve_operand(value)?;
            return apply(&op, Some(&v), &operand);
        }
        if let Some(count) = get_ci(c, "count") {
            let n = self.count(count, depth)?;
            return apply(&op, Some(&json!(n)), &operand);
        }
        Err(invalid(&format!("{c} names no field, value or count")))
    }

    fn count(&self, count: &Value, depth: usize) -> Result<usize, ArmRuleError> {
        let where_ = get_ci(count, "where");
        let (elements, path, name) = if let Some(field) = get_ci(count, "field") {
            let name = field
                .as_str()
                .ok_or_else(|| invalid("count.field is not a string"))?;
            if !name.trim_end().ends_with("[*]") {
                return Err(invalid(&format!(
                    "count.field '{name}' does not end in [*]"
                )));
            }
            let elements = match self.read(name, self.resource)? {
                FieldValue::Many(vs) => vs.into_iter().flatten().collect(),
                FieldValue::One(_) => Vec::new(),
            };
            (elements, self.path_of(name, self.resource)?, None)
        } else if let Some(value) = get_ci(count, "value") {
            let v = self.resolve_operand(value)?;
            let elements = match v {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                other => return Err(invalid(&format!("count.value {other} is not an array"))),
            };
            let name = get_ci(count, "name")
                .and_then(Value::as_str)
                .map(str::to_string);
            (elements, None, name)
        } else {
            return Err(invalid("count names neither field nor value"));
        };
        let Some(where_) = where_ else {
            return Ok(elements.len());
        };
        let mut n = 0;
        for element in elements {
            self.scopes.borrow_mut().push(CountScope {
                path: path.clone(),
                name: name.clone(),
                element,
            });
            let hit = self.condition(where_, depth + 1);
            self.scopes.borrow_mut().pop();
            if hit? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether a Modify effect's `operations` would change the resource (`addOrReplace` of a
    /// different value, `add` of a missing one, `remove` of a present one); operations whose
    /// `condition` is false are skipped.
    pub fn modify_would_change(&self, details: &Value) -> Result<bool, ArmRuleError> {
        let ops = get_ci(details, "operations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for op in &ops {
            if let Some(cond) = get_ci(op, "condition") {
                let cond = self.resolve_operand(cond)?;
                if !loose_eq(&cond, &json!(true)) {
                    continue;
                }
            }
            let kind = get_ci(op, "operation")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            let field = get_ci(op, "field")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a modify operation has no field"))?;
            let current = match self.read(field, self.resource)? {
                FieldValue::One(v) => vec![v],
                FieldValue::Many(vs) => vs,
            };
            let present = |v: &Option<Value>| v.as_ref().is_some_and(|x| !x.is_null());
            let changes = match kind.as_str() {
                "addorreplace" => {
                    let want = self.resolve_operand(get_ci(op, "value").unwrap_or(&Value::Null))?;
                    current.is_empty()
                        || current
                            .iter()
                            .any(|v| !v.as_ref().is_some_and(|x| loose_eq(x, &want)))
                }
                "add" => current.is_empty() || current.iter().any(|v| !present(v)),
                "remove" => current.iter().any(present),
                other => return Err(invalid(&format!("modify operation '{other}'"))),
            };
            if changes {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn invalid(what: &str) -> ArmRuleError {
    ArmRuleError::InvalidCondition(what.to_string())
}

fn same_prefix(prefix: &[Segment], segs: &[Segment]) -> bool {
    prefix.iter().zip(segs).all(|(a, b)| match (a, b) {
        (Segment::Every, Segment::Every) => true,
        (Segment::Key(x), Segment::Key(y)) => x.eq_ignore_ascii_case(y),
        _ => false,
    })
}

/// Follows `segs` from `v`.
fn walk(v: &Value, segs: &[Segment]) -> FieldValue {
    let mut current: Vec<Option<Value>> = vec![Some(v.clone())];
    let mut many = false;
    for seg in segs {
        match seg {
            Segment::Key(k) => {
                for c in &mut current {
                    *c = c.as_ref().and_then(|x| get_ci(x, k)).cloned();
                }
            }
            Segment::Every => {
                many = true;
                current = current
                    .into_iter()
                    .flat_map(|c| match c {
                        Some(Value::Array(a)) => a.into_iter().map(Some).collect(),
                        _ => Vec::new(),
                    })
                    .collect();
            }
        }
    }
    if many {
        FieldValue::Many(current)
    } else {
        FieldValue::One(current.into_iter().next().flatten())
    }
}

fn bool_operand(op: &str, operand: &Value) -> Result<bool, ArmRuleError> {
    match operand {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(invalid(&format!("'{op}' needs true or false, got {other}"))),
    }
}

/// Applies one operator to a value (`None`: the property does not exist).
fn apply(op: &str, value: Option<&Value>, operand: &Value) -> Result<bool, ArmRuleError> {
    let value = value.filter(|v| !v.is_null());
    let text = |v: &Value| expr::to_text(v);
    Ok(match op {
        "exists" => value.is_some() == bool_operand(op, operand)?,
        "equals" => value.is_some_and(|v| loose_eq(v, operand)),
        "notequals" => !value.is_some_and(|v| loose_eq(v, operand)),
        "in" | "notin" => {
            let list = operand
                .as_array()
                .ok_or_else(|| invalid(&format!("'{op}' needs an array, got {operand}")))?;
            let hit = value.is_some_and(|v| list.iter().any(|x| loose_eq(v, x)));
            hit == (op == "in")
        }
        "contains" | "notcontains" => {
            let hit = match value {
                Some(Value::Array(a)) => a.iter().any(|x| loose_eq(x, operand)),
                Some(v) if !v.is_object() => text(v)
                    .to_lowercase()
                    .contains(&text(operand).to_lowercase()),
                _ => false,
            };
            hit == (op == "contains")
        }
        "like" | "notlike" => {
            let hit = value.is_some_and(|v| !v.is_object() && like(&text(operand), &text(v)));
            hit == (op == "like")
        }
        "match" | "notmatch" | "matchinsensitively" | "notmatchinsensitively" => {
            let insensitive = op.ends_with("insensitively");
            let hit = value.is_some_and(|v| match_pattern(&text(operand), &text(v), insensitive));
            hit != op.starts_with("not")
        }
        "containskey" | "notcontainskey" => {
            let key = text(operand);
            let hit = value
                .and_then(Value::as_object)
                .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(&key)));
            hit == (op == "containskey")
        }
        "greater" | "greaterorequals" | "less" | "lessorequals" => {
            let Some(v) = value else { return Ok(false) };
            let Some(ord) = compare_values(v, operand) else {
                return Ok(false);
            };
            match op {
                "greater" => ord.is_gt(),
                "greaterorequals" => ord.is_ge(),
                "less" => ord.is_lt(),
                _ => ord.is_le(),
            }
        }
        other => return Err(invalid(&format!("operator '{other}'"))),
    })
}

/// Where an `…IfNotExists` effect looks for the related resource (`then.details`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedQuery {
    /// `details.type`.
    pub resource_type: String,
    /// `details.name` evaluated, if given.
    pub name: Option<String>,
    /// `details.resourceGroupName` evaluated, if given.
    pub resource_group_name: Option<String>,
    /// `details.existenceScope` is `subscription` (default: the resource group).
    pub subscription_scope: bool,
}

/// The result of evaluating one definition against one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub effect: Effect,
    /// The rule's `if` held.
    pub matched: bool,
    pub compliant: bool,
}

impl Evaluator<'_> {
    /// The related-resource query of an `…IfNotExists` rule.
    pub fn related_query(&self, policy_rule: &Value) -> Result<RelatedQuery, ArmRuleError> {
        let details = get_ci(policy_rule, "then")
            .and_then(|t| get_ci(t, "details"))
            .cloned()
            .unwrap_or(Value::Null);
        let text = |key: &str| -> Result<Option<String>, ArmRuleError> {
            get_ci(&details, key)
                .map(|v| self.resolve_operand(v).map(|r| expr::to_text(&r)))
                .transpose()
        };
        let resource_type =
            text("type")?.ok_or_else(|| invalid("an IfNotExists effect has no details.type"))?;
        Ok(RelatedQuery {
            resource_type,
            name: text("name")?,
            resource_group_name: text("resourceGroupName")?,
            subscription_scope: text("existenceScope")?
                .is_some_and(|s| s.eq_ignore_ascii_case("subscription")),
        })
    }

    /// Evaluates `policy_rule` with `effect` (the assignment may override the rule's own).
    /// `related` answers an `…IfNotExists` query with candidate resource bodies.
    pub fn outcome(
        &self,
        policy_rule: &Value,
        effect: Effect,
        related: &dyn Fn(&RelatedQuery) -> Vec<Value>,
    ) -> Result<Outcome, ArmRuleError> {
        let cond = get_ci(policy_rule, "if").cloned().unwrap_or(Value::Null);
        let matched = effect != Effect::Disabled && self.matches(&cond)?;
        let compliant = if !matched {
            true
        } else {
            match effect {
                Effect::AuditIfNotExists | Effect::DeployIfNotExists => {
                    let query = self.related_query(policy_rule)?;
                    let existence = get_ci(policy_rule, "then")
                        .and_then(|t| get_ci(t, "details"))
                        .and_then(|d| get_ci(d, "existenceCondition"))
                        .cloned();
                    let mut found = false;
                    for candidate in related(&query) {
                        let hit = match &existence {
                            Some(c) => self.for_related(&candidate).matches(c)?,
                            None => true,
                        };
                        if hit {
                            found = true;
                            break;
                        }
                    }
                    found
                }
                Effect::Modify => {
                    let details = get_ci(policy_rule, "then")
                        .and_then(|t| get_ci(t, "details"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    !self.modify_would_change(&details)?
                }
                Effect::Manual => true,
                _ => false,
            }
        };
        Ok(Outcome {
            effect,
            matched,
            compliant,
        })
    }
}

/// A field's plain body path (no `[*]`) for a resource type, for writing to it.
pub fn writable_path(field: &str, resource_type: &str) -> Option<Vec<String>> {
    match alias::resolve(field, resource_type)? {
        FieldPath::Body(p) => alias::segments(&p)
            .into_iter()
            .map(|s| match s {
                Segment::Key(k) => Some(k),
                Segment::Every => None,
            })
            .collect(),
        FieldPath::NotApplicable => None,
    }
}
