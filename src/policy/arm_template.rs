//! ARM template expressions as deployments evaluate them: `parameters()`, `variables()`,
//! `reference()`, `resourceId()`, `subscription()`, `resourceGroup()`, `deployment()`,
//! `uniqueString()`, `guid()` on top of the pure functions policy rules share (`concat`,
//! `take`, `union`, `if`, `equals`, `toLower`, `json`, `contains`, ...), parsed by the same
//! expression parser. What a function needs from the world (reading a resource) comes through
//! [`TemplateHost`], so the engine that runs deployments decides how resources are found.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::arm_rule::expr::{self, Expr};
use super::arm_rule::{get_ci, Evaluator, RuleContext};
use super::json::try_map_strings;

/// Deepest `variables()` chain, so a self-referencing variable ends.
const MAX_VARIABLE_DEPTH: usize = 32;

/// Why a template expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The template itself is wrong (ARM's `InvalidTemplate`).
    #[error("{0}")]
    Invalid(String),
    /// `reference()` names a resource of this template that is not deployed yet: the caller
    /// deploys it first (ARM's implicit dependency) and evaluates again.
    #[error("the resource '{0}' is not deployed yet")]
    NotYetDeployed(String),
    /// A resource the template reads does not exist or cannot be read (code, message).
    #[error("{1}")]
    Resource(String, String),
}

impl TemplateError {
    /// ARM's error code for the failure.
    pub fn code(&self) -> &str {
        match self {
            TemplateError::Invalid(_) | TemplateError::NotYetDeployed(_) => "InvalidTemplate",
            TemplateError::Resource(code, _) => code,
        }
    }
}

/// What expressions need from the engine running the deployment.
pub trait TemplateHost {
    /// `reference(target, apiVersion, 'Full')`: `target` is a resource id or the name of a
    /// resource of the current template; `full` asks for the whole resource rather than its
    /// `properties`.
    fn reference(
        &self,
        target: &str,
        api_version: Option<&str>,
        full: bool,
    ) -> Result<Value, TemplateError>;
}

/// Where a deployment runs: what `subscription()`, `resourceGroup()` and `deployment()` say.
#[derive(Debug, Clone, Default)]
pub struct DeploymentScope {
    pub tenant_id: String,
    pub subscription_id: String,
    /// The resource group's body (`id`, `name`, `location`, ...) for group deployments.
    pub resource_group: Option<Value>,
    pub deployment_name: String,
}

impl DeploymentScope {
    /// The resource group's name, for group deployments.
    pub fn group_name(&self) -> Option<String> {
        self.resource_group
            .as_ref()
            .and_then(|g| g["name"].as_str())
            .map(str::to_string)
    }
}

/// Evaluates the expressions of one template with its parameter values and variables.
pub struct TemplateEvaluator<'a> {
    parameters: Map<String, Value>,
    variables: Map<String, Value>,
    scope: &'a DeploymentScope,
    host: &'a dyn TemplateHost,
    resolved_variables: RefCell<BTreeMap<String, Value>>,
    variable_depth: RefCell<usize>,
}

impl<'a> TemplateEvaluator<'a> {
    pub fn new(
        parameters: Map<String, Value>,
        variables: Map<String, Value>,
        scope: &'a DeploymentScope,
        host: &'a dyn TemplateHost,
    ) -> Self {
        Self {
            parameters,
            variables,
            scope,
            host,
            resolved_variables: RefCell::new(BTreeMap::new()),
            variable_depth: RefCell::new(0),
        }
    }

    /// The bound parameter values (a nested `outer`-scope deployment evaluates with them).
    pub fn parameters(&self) -> &Map<String, Value> {
        &self.parameters
    }

    /// The raw variables (likewise).
    pub fn variables(&self) -> &Map<String, Value> {
        &self.variables
    }

    /// Evaluates every expression string inside `v` (object keys stay literal).
    pub fn evaluate(&self, v: &Value) -> Result<Value, TemplateError> {
        try_map_strings(v, &|s| self.evaluate_string(s))
    }

    fn evaluate_string(&self, s: &str) -> Result<Value, TemplateError> {
        if let Some(text) = expr::expression_text(s) {
            let parsed = expr::parse(text).map_err(|e| TemplateError::Invalid(e.to_string()))?;
            return self.eval(&parsed);
        }
        if let Some(rest) = s.strip_prefix("[[") {
            return Ok(Value::String(format!("[{rest}")));
        }
        Ok(Value::String(s.to_string()))
    }

    fn eval(&self, e: &Expr) -> Result<Value, TemplateError> {
        match e {
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Property(inner, name) => {
                let v = self.eval(inner)?;
                get_ci(&v, name).cloned().ok_or_else(|| {
                    TemplateError::Invalid(format!(
                        "The language expression property '{name}' doesn't exist, available properties are '{}'.",
                        v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
                    ))
                })
            }
            Expr::Index(inner, index) => {
                let v = self.eval(inner)?;
                let i = self.eval(index)?;
                match (&v, &i) {
                    (Value::Array(a), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|n| a.get(n as usize))
                        .cloned()
                        .ok_or_else(|| {
                            TemplateError::Invalid(format!(
                                "The language expression index '{n}' is out of bounds."
                            ))
                        }),
                    (Value::Object(_), Value::String(k)) => {
                        get_ci(&v, k).cloned().ok_or_else(|| {
                            TemplateError::Invalid(format!(
                                "The language expression property '{k}' doesn't exist."
                            ))
                        })
                    }
                    _ => Err(TemplateError::Invalid(format!(
                        "The language expression cannot index {v} with {i}."
                    ))),
                }
            }
            Expr::Call(name, args) => self.call(name, args),
        }
    }

    fn call(&self, name: &str, raw: &[Expr]) -> Result<Value, TemplateError> {
        let lname = name.to_ascii_lowercase();
        // `if` evaluates only the branch it takes, as ARM does: the other may not exist.
        if lname == "if" {
            if raw.len() != 3 {
                return Err(invalid_call(name, "takes 3 arguments"));
            }
            let cond = self.eval(&raw[0])?;
            let take = match cond {
                Value::Bool(b) => b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                other => {
                    return Err(invalid_call(
                        name,
                        &format!("expects a boolean, got {other}"),
                    ))
                }
            };
            return self.eval(&raw[if take { 1 } else { 2 }]);
        }
        let args = raw
            .iter()
            .map(|a| self.eval(a))
            .collect::<Result<Vec<_>, _>>()?;
        let text = |i: usize| -> Result<String, TemplateError> {
            args.get(i)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    invalid_call(name, &format!("expects a string as argument {}", i + 1))
                })
        };
        match lname.as_str() {
            "parameters" => {
                let p = text(0)?;
                get_ci(&Value::Object(self.parameters.clone()), &p)
                    .cloned()
                    .ok_or_else(|| TemplateError::Invalid(format!("The template parameter '{p}' is not found.")))
            }
            "variables" => self.variable(&text(0)?),
            "reference" => {
                let target = text(0)?;
                let full = args
                    .get(2)
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.eq_ignore_ascii_case("full"));
                let api_version = args.get(1).and_then(Value::as_str);
                self.host.reference(&target, api_version, full)
            }
            "resourceid" => self.resource_id(name, &args),
            "subscriptionresourceid" => {
                let strings = strings(name, &args)?;
                let (sub, rest) = match strings.first() {
                    Some(first) if !first.contains('/') && strings.len() >= 3 => (first.clone(), &strings[1..]),
                    _ => (self.scope.subscription_id.clone(), &strings[..]),
                };
                Ok(json!(format!("/subscriptions/{sub}{}", provider_path(name, rest)?)))
            }
            "tenantresourceid" => {
                let strings = strings(name, &args)?;
                Ok(json!(provider_path(name, &strings)?))
            }
            "extensionresourceid" => {
                let strings = strings(name, &args)?;
                let (base, rest) = strings.split_first().ok_or_else(|| invalid_call(name, "needs a resource id"))?;
                Ok(json!(format!("{base}{}", provider_path(name, rest)?)))
            }
            "subscription" => Ok(json!({
                "id": format!("/subscriptions/{}", self.scope.subscription_id),
                "subscriptionId": self.scope.subscription_id,
                "tenantId": self.scope.tenant_id,
                "displayName": self.scope.subscription_id,
            })),
            "tenant" => Ok(json!({"tenantId": self.scope.tenant_id, "id": format!("/tenants/{}", self.scope.tenant_id)})),
            "resourcegroup" => self.scope.resource_group.clone().ok_or_else(|| {
                TemplateError::Invalid("The template function 'resourceGroup' is not expected at this location: the deployment is not at resource group scope.".to_string())
            }),
            "deployment" => Ok(json!({
                "name": self.scope.deployment_name,
                "properties": {"templateLink": null},
            })),
            "uniquestring" => Ok(json!(unique_string(&strings(name, &args)?))),
            "guid" => Ok(json!(deterministic_guid(&strings(name, &args)?))),
            "field" | "current" | "policy" | "requestcontext" => Err(TemplateError::Invalid(format!(
                "The template function '{name}' is not valid in a deployment template."
            ))),
            _ => {
                // Pure functions: one implementation, shared with policy rules.
                let empty = Value::Null;
                let no_values = Map::new();
                let ctx = RuleContext::default();
                let literal = Expr::Call(name.to_string(), args.into_iter().map(Expr::Literal).collect());
                Evaluator::new(&empty, &no_values, &ctx)
                    .eval_expr(&literal)
                    .map_err(|e| TemplateError::Invalid(e.to_string()))
            }
        }
    }

    fn variable(&self, name: &str) -> Result<Value, TemplateError> {
        let key = name.to_ascii_lowercase();
        if let Some(v) = self.resolved_variables.borrow().get(&key) {
            return Ok(v.clone());
        }
        let raw = get_ci(&Value::Object(self.variables.clone()), name)
            .cloned()
            .ok_or_else(|| {
                TemplateError::Invalid(format!("The template variable '{name}' is not found."))
            })?;
        {
            let mut depth = self.variable_depth.borrow_mut();
            if *depth >= MAX_VARIABLE_DEPTH {
                return Err(TemplateError::Invalid(format!(
                    "The template variable '{name}' refers to itself."
                )));
            }
            *depth += 1;
        }
        let value = self.evaluate(&raw);
        *self.variable_depth.borrow_mut() -= 1;
        let value = value?;
        self.resolved_variables
            .borrow_mut()
            .insert(key, value.clone());
        Ok(value)
    }

    /// `resourceId([subscriptionId], [resourceGroupName], type, name1, name2, ...)`.
    fn resource_id(&self, name: &str, args: &[Value]) -> Result<Value, TemplateError> {
        let strings = strings(name, args)?;
        let type_at = strings
            .iter()
            .position(|s| s.contains('/'))
            .ok_or_else(|| {
                invalid_call(
                    name,
                    "needs a resource type such as 'Microsoft.ContainerService/managedClusters'",
                )
            })?;
        let (sub, group) = match &strings[..type_at] {
            [] => (self.scope.subscription_id.clone(), self.scope.group_name()),
            [g] => (self.scope.subscription_id.clone(), Some(g.clone())),
            [s, g] => (s.clone(), Some(g.clone())),
            _ => {
                return Err(invalid_call(
                    name,
                    "takes at most a subscription id and a resource group before the type",
                ))
            }
        };
        let tail = provider_path(name, &strings[type_at..])?;
        Ok(json!(match group {
            Some(g) => format!("/subscriptions/{sub}/resourceGroups/{g}{tail}"),
            None => format!("/subscriptions/{sub}{tail}"),
        }))
    }
}

fn invalid_call(name: &str, reason: &str) -> TemplateError {
    TemplateError::Invalid(format!("The template function '{name}' {reason}."))
}

fn strings(name: &str, args: &[Value]) -> Result<Vec<String>, TemplateError> {
    args.iter()
        .map(|a| match a {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(invalid_call(name, &format!("expects strings, got {other}"))),
        })
        .collect()
}

/// `/providers/{namespace}/{type}/{name}[/{type}/{name}...]` from `[ns/type[/type...], names...]`.
fn provider_path(function: &str, parts: &[String]) -> Result<String, TemplateError> {
    let (full_type, names) = parts
        .split_first()
        .ok_or_else(|| invalid_call(function, "needs a resource type and name"))?;
    let mut segs = full_type.split('/');
    let namespace = segs.next().unwrap_or_default();
    let types: Vec<&str> = segs.collect();
    if types.is_empty() || types.len() != names.len() {
        return Err(invalid_call(
            function,
            &format!(
                "was given {} name(s) for the type '{full_type}'",
                names.len()
            ),
        ));
    }
    let mut out = format!("/providers/{namespace}");
    for (t, n) in types.iter().zip(names) {
        out.push_str(&format!("/{t}/{n}"));
    }
    Ok(out)
}

/// A stable 13-character lower-case base-32 hash of the arguments (ARM's `uniqueString` has
/// the same shape; its exact hash is not published).
pub fn unique_string(parts: &[String]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, parts.join("-").as_bytes());
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes = digest.as_ref();
    let mut bits: u64 = 0;
    for b in &bytes[..8] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..13)
        .map(|i| ALPHABET[((bits >> (64 - 5 * (i + 1)).max(0)) & 31) as usize] as char)
        .collect()
}

/// A GUID derived from the arguments, the same for the same arguments.
pub fn deterministic_guid(parts: &[String]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, parts.join("-").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// A template's declared parameters filled from `supplied` (`{name: {value}}`): defaults
/// for the missing ones (evaluated with the ones before), `allowedValues` checked, unknown
/// and missing ones refused with ARM's texts.
pub fn bind_parameters(
    template: &Value,
    supplied: &Map<String, Value>,
    scope: &DeploymentScope,
    host: &dyn TemplateHost,
) -> Result<Map<String, Value>, TemplateError> {
    let declared = template["parameters"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let unknown: Vec<&String> = supplied
        .keys()
        .filter(|k| !declared.keys().any(|d| d.eq_ignore_ascii_case(k)))
        .collect();
    if !unknown.is_empty() {
        return Err(TemplateError::Invalid(format!(
            "Deployment template validation failed: 'The template parameters '{}' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time.'.",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut values = Map::new();
    for (name, decl) in &declared {
        let given = supplied
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        let value = match given {
            Some(v) if v.get("reference").is_some() => {
                return Err(TemplateError::Invalid(format!(
                    "The parameter '{name}' refers to a Key Vault secret, which the emulator's deployment engine does not resolve."
                )))
            }
            Some(v) => v.get("value").cloned().unwrap_or(Value::Null),
            None => match decl.get("defaultValue") {
                Some(default) => {
                    let ev = TemplateEvaluator::new(values.clone(), Map::new(), scope, host);
                    ev.evaluate(default)?
                }
                None => {
                    return Err(TemplateError::Invalid(format!(
                        "Deployment template validation failed: 'The value for the template parameter '{name}' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'."
                    )))
                }
            },
        };
        if let Some(allowed) = decl["allowedValues"].as_array() {
            if !allowed.iter().any(|a| super::arm_rule::loose_eq(a, &value)) {
                return Err(TemplateError::Invalid(format!(
                    "Deployment template validation failed: 'The provided value '{value}' for the template parameter '{name}' is not valid. The parameter value is not part of the allowed value(s): '{}'.'.",
                    allowed.iter().map(expr::to_text).collect::<Vec<_>>().join(",")
                )));
            }
        }
        if let Some(kind) = decl["type"].as_str() {
            check_type(name, kind, &value)?;
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

fn check_type(name: &str, kind: &str, value: &Value) -> Result<(), TemplateError> {
    let ok = match kind.to_ascii_lowercase().as_str() {
        "string" | "securestring" => value.is_string(),
        "int" => value.is_i64() || value.is_u64(),
        "bool" => value.is_boolean(),
        "object" | "secureobject" => value.is_object() || value.is_null(),
        "array" => value.is_array(),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(TemplateError::Invalid(format!(
        "Deployment template validation failed: 'Template parameter '{name}' of type '{kind}' was given the value {value} of another type.'."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoResources;
    impl TemplateHost for NoResources {
        fn reference(
            &self,
            target: &str,
            _api_version: Option<&str>,
            _full: bool,
        ) -> Result<Value, TemplateError> {
            Err(TemplateError::NotYetDeployed(target.to_string()))
        }
    }

    fn scope() -> DeploymentScope {
        DeploymentScope {
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            resource_group: Some(
                json!({"id": "/subscriptions/s/resourceGroups/rg", "name": "rg", "location": "westeurope"}),
            ),
            deployment_name: "d".into(),
        }
    }

    #[test]
    fn functions_the_aks_builtins_use() {
        let scope = scope();
        let params = json!({"clusterName": "alpha", "content": {"properties": {"a": 1}, "tags": {"x": "y"}}});
        let vars = json!({"get": "[take(concat('Policy-Get-', parameters('clusterName')), 12)]", "twice": "[concat(variables('get'), '!')]"});
        let ev = TemplateEvaluator::new(
            params.as_object().cloned().unwrap_or_default(),
            vars.as_object().cloned().unwrap_or_default(),
            &scope,
            &NoResources,
        );
        assert_eq!(
            ev.evaluate(&json!("[variables('twice')]")).ok(),
            Some(json!("Policy-Get-a!"))
        );
        assert_eq!(
            ev.evaluate(&json!("[resourceId(resourceGroup().name, 'Microsoft.ContainerService/managedClusters', parameters('clusterName'))]")).ok(),
            Some(json!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/alpha"))
        );
        assert_eq!(
            ev.evaluate(&json!("[if(contains(parameters('content'), 'sku'), parameters('content').sku, json('null'))]")).ok(),
            Some(Value::Null)
        );
        assert_eq!(
            ev.evaluate(&json!(
                "[union(parameters('content').properties, createObject('b', 2))]"
            ))
            .ok(),
            Some(json!({"a": 1, "b": 2}))
        );
        assert_eq!(
            ev.evaluate(&json!("[toLower(subscription().subscriptionId)]"))
                .ok(),
            Some(json!("s"))
        );
        assert!(matches!(
            ev.evaluate(&json!("[parameters('content').sku]")),
            Err(TemplateError::Invalid(_))
        ));
        assert!(matches!(
            ev.evaluate(&json!("[reference('sibling').outputs]")),
            Err(TemplateError::NotYetDeployed(_))
        ));
        assert_eq!(
            ev.evaluate(&json!("[[literal]")).ok(),
            Some(json!("[literal]"))
        );
        let u = ev
            .evaluate(&json!("[uniqueString(subscription().id)]"))
            .ok();
        assert_eq!(u.as_ref().and_then(Value::as_str).map(str::len), Some(13));
        assert_eq!(
            u,
            ev.evaluate(&json!("[uniqueString(subscription().id)]"))
                .ok()
        );
    }

    #[test]
    fn self_referencing_variables_end_with_an_error() {
        let scope = scope();
        let vars = json!({"a": "[variables('a')]"});
        let ev = TemplateEvaluator::new(
            Map::new(),
            vars.as_object().cloned().unwrap_or_default(),
            &scope,
            &NoResources,
        );
        assert!(matches!(
            ev.evaluate(&json!("[variables('a')]")),
            Err(TemplateError::Invalid(_))
        ));
    }

    #[test]
    fn parameters_bind_with_defaults_and_checks() {
        let scope = scope();
        let template = json!({"parameters": {
            "name": {"type": "string"},
            "effect": {"type": "string", "defaultValue": "[concat('a', 'b')]", "allowedValues": ["ab", "cd"]}
        }});
        let supplied = json!({"name": {"value": "x"}});
        let bound = bind_parameters(
            &template,
            supplied.as_object().unwrap_or(&Map::new()),
            &scope,
            &NoResources,
        );
        assert_eq!(
            bound.ok().map(Value::Object),
            Some(json!({"name": "x", "effect": "ab"}))
        );
        let missing = bind_parameters(&template, &Map::new(), &scope, &NoResources);
        assert!(
            matches!(missing, Err(TemplateError::Invalid(m)) if m.contains("'name' is not provided"))
        );
        let extra = json!({"name": {"value": "x"}, "other": {"value": 1}});
        let refused = bind_parameters(
            &template,
            extra.as_object().unwrap_or(&Map::new()),
            &scope,
            &NoResources,
        );
        assert!(matches!(refused, Err(TemplateError::Invalid(m)) if m.contains("'other'")));
        let wrong = json!({"name": {"value": 3}});
        assert!(bind_parameters(
            &template,
            wrong.as_object().unwrap_or(&Map::new()),
            &scope,
            &NoResources
        )
        .is_err());
    }
}
