//! Policy parameters as Terraform users write them — plain values of any type in a `dynamic`
//! attribute (`{ effect = "deny", excludedNamespaces = ["kube-system"] }`) — and as ARM wants
//! them (`{"effect": {"value": "deny"}, ...}`), plus checking them against the declarations of
//! the assigned definition or initiative.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::arm::api_version;
use crate::arm::{ArmClient, ArmError, ResourceId};
use crate::framework::{AttributePath, Diagnostic, Diagnostics, Number, Type, Value};
use crate::policy::parameters::{check_parameters, json_equal, ParameterProblem};
use crate::policy::{ParameterDefinition, PolicyDefinition, PolicySetDefinition};

use super::process_cache::ProcessCache;

/// Why a Terraform value cannot become JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    #[error("the value is not known until apply")]
    Unknown,
    #[error("the number {0} cannot be represented in JSON")]
    Number(String),
}

/// A Terraform value as JSON: lists, sets and tuples become arrays, maps and objects become
/// objects. Fails on unknown values.
pub fn value_to_json(value: &Value) -> Result<Json, ConversionError> {
    Ok(match value {
        Value::Unknown => return Err(ConversionError::Unknown),
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => number_to_json(n)?,
        Value::String(s) => Json::String(s.clone()),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            Json::Array(items.iter().map(value_to_json).collect::<Result<_, _>>()?)
        }
        Value::Map(m) | Value::Object(m) => Json::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), value_to_json(v)?)))
                .collect::<Result<_, ConversionError>>()?,
        ),
        Value::Dynamic(_, inner) => value_to_json(inner)?,
    })
}

fn number_to_json(n: &Number) -> Result<Json, ConversionError> {
    match n {
        Number::Int(i) => Ok(Json::from(*i)),
        Number::UInt(u) => Ok(Json::from(*u)),
        Number::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| ConversionError::Number(f.to_string())),
        Number::Decimal(text) => {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Json::from(i));
            }
            text.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or_else(|| ConversionError::Number(text.clone()))
        }
    }
}

/// JSON as a value for a `dynamic` attribute, typed the way Terraform's `jsondecode` types it
/// (objects as objects, arrays as tuples), so a configuration written as an HCL literal
/// compares equal to what is read back.
pub fn json_to_dynamic(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        other => {
            let (ty, value) = json_to_typed(other);
            Value::Dynamic(ty, Box::new(value))
        }
    }
}

fn json_to_typed(json: &Json) -> (Type, Value) {
    match json {
        Json::Null => (Type::Dynamic, Value::Null),
        Json::Bool(b) => (Type::Bool, Value::Bool(*b)),
        Json::Number(n) => {
            let number = if let Some(i) = n.as_i64() {
                Number::Int(i)
            } else if let Some(u) = n.as_u64() {
                Number::UInt(u)
            } else {
                Number::Float(n.as_f64().unwrap_or(f64::NAN))
            };
            (Type::Number, Value::Number(number))
        }
        Json::String(s) => (Type::String, Value::String(s.clone())),
        Json::Array(items) => {
            let (types, values) = items.iter().map(json_to_typed).unzip();
            (Type::Tuple(types), Value::Tuple(values))
        }
        Json::Object(m) => {
            let mut types = BTreeMap::new();
            let mut values = BTreeMap::new();
            for (k, v) in m {
                let (t, v) = json_to_typed(v);
                types.insert(k.clone(), t);
                values.insert(k.clone(), v);
            }
            (Type::Object(types), Value::Object(values))
        }
    }
}

/// The plain parameter values of a `parameters` attribute (an object or map), or `None` when
/// the attribute is null. Fails when something is unknown.
pub fn plain_parameters(value: &Value) -> Result<Option<Map<String, Json>>, ConversionError> {
    if value.is_unknown() {
        return Err(ConversionError::Unknown);
    }
    match value_to_json(value)? {
        Json::Object(m) => Ok(Some(m)),
        _ => Ok(None),
    }
}

/// ARM's form: every value wrapped as `{"value": ...}`.
pub fn to_arm(plain: &Map<String, Json>) -> Map<String, Json> {
    plain
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!({ "value": v })))
        .collect()
}

/// The plain values of ARM's `{"p": {"value": ...}}` form; entries without `value` (ARM
/// expressions that reference something else) are kept as they are.
pub fn from_arm(arm: Option<&Map<String, Json>>) -> Map<String, Json> {
    arm.map(|m| {
        m.iter()
            .map(|(k, v)| {
                let plain = v
                    .as_object()
                    .and_then(|o| o.get("value"))
                    .cloned()
                    .unwrap_or_else(|| v.clone());
                (k.clone(), plain)
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The state value for parameters read from Azure: the prior value (the user's own form and
/// types) while it means the same, else the remote values typed like `jsondecode` would.
pub fn parameters_state(prior: &Value, remote: &Map<String, Json>) -> Value {
    if let Ok(prior_plain) = plain_parameters(prior) {
        let prior_map = prior_plain.unwrap_or_default();
        if json_equal(&Json::Object(prior_map), &Json::Object(remote.clone())) {
            return prior.clone();
        }
    }
    if remote.is_empty() {
        Value::Null
    } else {
        json_to_dynamic(&Json::Object(remote.clone()))
    }
}

/// Declared parameters of a definition or initiative.
pub type Declarations = BTreeMap<String, ParameterDefinition>;

/// By definition id: concurrent plans of many assignments of the same definition wait for a
/// single GET.
static DECLARATIONS: ProcessCache<Arc<Declarations>> = ProcessCache::new();

/// Why the declarations could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0} is neither a policy definition nor a policy set definition id")]
    NotADefinition(String),
    #[error(transparent)]
    Arm(#[from] ArmError),
}

/// Inside the cell: a missing definition is an error so that the cell stays empty.
enum Fetch {
    Missing,
    Arm(ArmError),
}

impl From<ArmError> for Fetch {
    fn from(e: ArmError) -> Self {
        Fetch::Arm(e)
    }
}

/// The parameters a definition or initiative declares, `Ok(None)` when it does not exist (yet).
/// Found results are cached for the life of the provider process (one Terraform phase): a
/// plan looks each one up once, however many assignments share it. A missing definition is
/// not cached: another resource of the same apply may be about to create it.
pub async fn declared_parameters(
    client: &ArmClient,
    definition_id: &str,
) -> Result<Option<Arc<Declarations>>, LookupError> {
    let id = ResourceId::parse(definition_id)
        .map_err(|_| LookupError::NotADefinition(definition_id.to_string()))?;
    let kind = definition_kind(&id)
        .ok_or_else(|| LookupError::NotADefinition(definition_id.to_string()))?;
    let found = DECLARATIONS
        .get_or_try_fetch(client, definition_id, || async {
            let declared = match kind {
                DefinitionKind::Policy => client
                    .get_optional::<PolicyDefinition>(definition_id, api_version::POLICY)
                    .await?
                    .map(|d| d.properties.parameters.unwrap_or_default()),
                DefinitionKind::Set => client
                    .get_optional::<PolicySetDefinition>(definition_id, api_version::POLICY)
                    .await?
                    .map(|d| d.properties.parameters.unwrap_or_default()),
            };
            declared.map(Arc::new).ok_or(Fetch::Missing)
        })
        .await;
    match found {
        Ok(d) => Ok(Some(d)),
        Err(Fetch::Missing) => Ok(None),
        Err(Fetch::Arm(e)) => Err(LookupError::Arm(e)),
    }
}

/// Whether an id names a policy definition or an initiative (versions included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionKind {
    Policy,
    Set,
}

pub fn definition_kind(id: &ResourceId) -> Option<DefinitionKind> {
    let first = id.types.first().map(|(t, _)| t.as_str()).unwrap_or("");
    if !id.namespace.eq_ignore_ascii_case("Microsoft.Authorization") {
        return None;
    }
    let versions_ok = id.types.len() == 1
        || (id.types.len() == 2 && id.types[1].0.eq_ignore_ascii_case("versions"));
    if !versions_ok {
        return None;
    }
    if first.eq_ignore_ascii_case("policyDefinitions") {
        Some(DefinitionKind::Policy)
    } else if first.eq_ignore_ascii_case("policySetDefinitions") {
        Some(DefinitionKind::Set)
    } else {
        None
    }
}

/// Checks `config_parameters` (the `parameters` attribute as configured, wholly known) against
/// the declarations, with each diagnostic on the offending parameter.
pub fn check_against(
    declared: &Declarations,
    config_parameters: &Value,
    definition_id: &str,
    path: &AttributePath,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    // Values decided at apply are checked then; their names can be checked now. They stand in
    // as null ("use the default"), so only a missing-required report about them is dropped.
    let none = BTreeMap::new();
    let entries = match config_parameters.entries() {
        Some(entries) => entries,
        // No parameters at all: required ones are still missing.
        None if config_parameters.is_null() => &none,
        None => return diags,
    };
    let mut given = Map::new();
    let mut pending = Vec::new();
    for (name, value) in entries {
        match value_to_json(value) {
            Ok(json) => {
                given.insert(name.clone(), json);
            }
            Err(_) => {
                given.insert(name.clone(), Json::Null);
                pending.push(name.as_str());
            }
        }
    }
    let all_strings = is_map_of_strings(config_parameters);
    for problem in check_parameters(declared, &given) {
        if !problem.is_about_given_value() && pending.contains(&problem.name()) {
            continue;
        }
        let converted = match (&problem, given.get(problem.name())) {
            (ParameterProblem::WrongType { expected, .. }, Some(Json::String(text)))
                if all_strings =>
            {
                Some(conversion_explained(problem.name(), expected, text))
            }
            _ => None,
        };
        // A key step (not an attribute step) even for objects: that is what Terraform resolves
        // to the `name = value` item of an object constructor, underlining the exact parameter.
        let at = if problem.is_about_given_value() {
            path.key(problem.name())
        } else {
            path.clone()
        };
        let detail = converted.unwrap_or_else(|| problem.to_string());
        diags.push(
            Diagnostic::error(
                problem.summary(),
                format!("{detail}\n\nChecked against {definition_id}."),
            )
            .at(at),
        );
    }
    diags
}

/// Whether Terraform typed the whole `parameters` value as a map of strings. Terraform does
/// that to objects whose attribute types differ only where it must unify them, above all the
/// two results of a conditional: every number and bool in them became a string.
fn is_map_of_strings(value: &Value) -> bool {
    matches!(value, Value::Dynamic(Type::Map(element), _) if **element == Type::String)
}

/// Why a non-string parameter arrived as a string, and what to write instead.
fn conversion_explained(name: &str, expected: &str, text: &str) -> String {
    format!(
        "Parameter {name:?} is declared as {expected}, but Terraform passed the string \
         {text:?}: the whole `parameters` value reached the provider as a map of strings. \
         Terraform converts it so when the two results of a conditional \
         (`cond ? {{ ... }} : {{ ... }}`) are objects with different attributes: it unifies \
         them into map(string), turning every number and bool into a string. Give both \
         results the same attributes (set {name} = null in the other one; null means the \
         definition's default), or decide per value: `{name} = cond ? 5 : null`."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::shared::testing::assert_first_detail;
    use serde_json::json;

    fn hcl_like() -> Value {
        // What Terraform sends for { effect = "deny", excludedNamespaces = ["kube-system"], n = 2 }.
        Value::Dynamic(
            Type::object([
                ("effect", Type::String),
                ("excludedNamespaces", Type::Tuple(vec![Type::String])),
                ("n", Type::Number),
            ]),
            Box::new(Value::object([
                ("effect", Value::string("deny")),
                (
                    "excludedNamespaces",
                    Value::Tuple(vec![Value::string("kube-system")]),
                ),
                ("n", Value::Number(Number::Decimal("2".into()))),
            ])),
        )
    }

    #[test]
    fn round_trips_through_arm_form() {
        let plain = plain_parameters(&hcl_like()).unwrap().unwrap();
        let arm = to_arm(&plain);
        assert_eq!(
            Json::Object(arm.clone()),
            json!({"effect": {"value": "deny"}, "excludedNamespaces": {"value": ["kube-system"]}, "n": {"value": 2}})
        );
        assert_eq!(from_arm(Some(&arm)), plain);
    }

    #[test]
    fn semantically_equal_remote_keeps_user_form() {
        let prior = hcl_like();
        let remote = json!({"n": 2.0, "effect": "deny", "excludedNamespaces": ["kube-system"]});
        let state = parameters_state(&prior, remote.as_object().unwrap());
        assert_eq!(state, prior);
    }

    #[test]
    fn drift_is_typed_like_jsondecode() {
        let remote = json!({"effect": "audit", "list": [], "obj": {"a": null}});
        let state = parameters_state(&hcl_like(), remote.as_object().unwrap());
        let Value::Dynamic(Type::Object(types), _) = &state else {
            panic!("{state:?}")
        };
        assert_eq!(types["list"], Type::Tuple(vec![]));
        assert_eq!(types["obj"], Type::object([("a", Type::Dynamic)]));
        assert_eq!(
            value_to_json(&state).unwrap(),
            remote,
            "converts back to the same JSON"
        );
        assert_eq!(
            parameters_state(&Value::Null, &Map::new()),
            Value::Null,
            "nothing set stays null"
        );
    }

    #[test]
    fn unknown_values_are_not_converted() {
        let v = Value::object([("a", Value::Unknown)]);
        assert_eq!(plain_parameters(&v), Err(ConversionError::Unknown));
    }

    #[test]
    fn diagnostics_point_at_the_parameter() {
        let declared: Declarations = serde_json::from_value(json!({
            "effect": {"type": "String", "allowedValues": ["Deny"], "defaultValue": "Deny"}
        }))
        .unwrap();
        let cfg = Value::Dynamic(
            Type::object([("efect", Type::String)]),
            Box::new(Value::object([("efect", Value::string("Deny"))])),
        );
        let d = check_against(&declared, &cfg, "/x", &AttributePath::attr("parameters"));
        assert_eq!(d.0.len(), 1);
        assert_eq!(
            d.0[0].attribute,
            Some(AttributePath::attr("parameters").key("efect"))
        );
        assert_first_detail(&d, "Did you mean \"effect\"");
    }

    #[test]
    fn names_are_checked_while_values_are_unknown() {
        let declared: Declarations = serde_json::from_value(json!({
            "labels": {"type": "Array"},
            "effect": {"type": "String", "allowedValues": ["Deny"], "defaultValue": "Deny"}
        }))
        .unwrap();
        let cfg = Value::object([("labels", Value::Unknown), ("efect", Value::Unknown)]);
        let d = check_against(&declared, &cfg, "/x", &AttributePath::attr("parameters"));
        assert_eq!(d.0.len(), 1, "{d:?}");
        assert_eq!(d.0[0].summary, "Unknown policy parameter");
        let at = AttributePath::attr("parameters");
        assert!(check_against(&declared, &Value::Unknown, "/x", &at).is_empty());
        let missing = check_against(&declared, &Value::Null, "/x", &at);
        assert_eq!(missing.0[0].summary, "Missing required policy parameter");
        assert_eq!(missing.0[0].attribute, Some(at));
    }

    #[test]
    fn definition_kinds() {
        let k = |s: &str| definition_kind(&ResourceId::parse(s).unwrap());
        assert_eq!(
            k("/providers/Microsoft.Authorization/policyDefinitions/x"),
            Some(DefinitionKind::Policy)
        );
        assert_eq!(
            k("/subscriptions/s/providers/microsoft.authorization/policysetdefinitions/x"),
            Some(DefinitionKind::Set)
        );
        assert_eq!(
            k("/providers/Microsoft.Authorization/policyDefinitions/x/versions/1.0.0"),
            Some(DefinitionKind::Policy)
        );
        assert_eq!(
            k("/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/x"),
            None
        );
    }
}
