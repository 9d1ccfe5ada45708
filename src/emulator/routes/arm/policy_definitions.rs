//! Policy definitions and policy set definitions. Built-ins come from the catalogue and are
//! visible everywhere; custom ones are stored at management-group or subscription scope and
//! visible from that scope and everything below it.

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::filter::DefinitionFilter;
use super::policy_versions;
use super::scope::{stored_of_type, Scope, ScopeKind};
use super::with_id;
use super::write::write;
use super::ArmPath;
use super::{
    check_name, empty, error::ErrorResponse, ok_json, paging, parse_body, status_json, system_data,
    ArmRequest,
};
use crate::emulator::catalogue::{find, CatalogueEntry};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, Change};
use crate::policy::names;
use crate::policy::references::expression_parameter_references;
use crate::policy::validation::{
    check_assignment_parameters, check_parameter_update, validate_definition,
    validate_parameter_definitions, PolicyValidationError, DEFAULT_MODE,
};
use crate::policy::{
    policy_type, ParameterDefinition, PolicyDefinition, PolicySetDefinition,
    POLICY_DEFINITION_TYPE, POLICY_SET_DEFINITION_TYPE,
};

/// Deliberately small so every client's paging code runs against the emulator.
const PAGE_SIZE: usize = 4;

/// Which of the two definition kinds a request is about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Definition,
    SetDefinition,
}

impl Kind {
    pub(crate) fn entries(self, state: &AppState) -> &[CatalogueEntry] {
        match self {
            Kind::Definition => &state.catalogue.definitions,
            Kind::SetDefinition => &state.catalogue.set_definitions,
        }
    }

    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Definition => POLICY_DEFINITION_TYPE,
            Kind::SetDefinition => POLICY_SET_DEFINITION_TYPE,
        }
    }

    /// Lower-case id segment, e.g. `/providers/microsoft.authorization/policydefinitions/`.
    fn id_marker(self) -> String {
        format!("/providers/{}/", self.type_name().to_ascii_lowercase())
    }

    pub(crate) fn not_found(self, name: &str) -> ErrorResponse {
        match self {
            Kind::Definition => ErrorResponse::not_found(
                "PolicyDefinitionNotFound",
                format!("The policy definition '{name}' could not be found."),
            ),
            Kind::SetDefinition => ErrorResponse::not_found(
                "PolicySetDefinitionNotFound",
                format!("The policy set definition '{name}' could not be found."),
            ),
        }
    }

    /// Which kind a request is about, by the first type in its path (`policyDefinitions`,
    /// `policySetDefinitions`, `listPolicySetDefinitionVersions`, ...).
    pub(crate) fn of_path(path: &ArmPath) -> Kind {
        let first = path.types.first().map(|t| t.to_ascii_lowercase());
        if first.is_some_and(|t| t.contains("policysetdefinition")) {
            Kind::SetDefinition
        } else {
            Kind::Definition
        }
    }

    /// Which kind an id names, by its type segment.
    pub(crate) fn of_id(id: &str) -> Option<Kind> {
        let lower = id.to_ascii_lowercase();
        if lower.contains(&Kind::SetDefinition.id_marker()) {
            Some(Kind::SetDefinition)
        } else if lower.contains(&Kind::Definition.id_marker()) {
            Some(Kind::Definition)
        } else {
            None
        }
    }
}

/// `{scope}/providers/Microsoft.Authorization/policy[Set]Definitions[/{name}]`.
pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let kind = Kind::of_path(&req.path);
    let scope = definition_scope(req)?;
    scope.ensure_exists(state)?;
    let method = &req.http.method;
    // Built-ins (tenant scope) are read-only.
    req.allow_if(scope.kind != ScopeKind::Tenant || method == Method::GET)?;
    match req.path.item_name() {
        Some(name) if method == Method::GET => get(state, &scope, kind, name),
        Some(name) if method == Method::PUT => put(state, req, &scope, kind, name),
        Some(name) if method == Method::DELETE => delete(state, &scope, kind, name),
        None if method == Method::GET => list(state, req, &scope, kind),
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

/// Definitions live at tenant (built-in), management group or subscription scope only.
pub(super) fn definition_scope(req: &ArmRequest<'_>) -> Result<Scope, ErrorResponse> {
    let scope = Scope::from_segments(&req.path.scope)?;
    match scope.kind {
        ScopeKind::Tenant | ScopeKind::ManagementGroup(_) | ScopeKind::Subscription(_) => Ok(scope),
        _ => Err(ErrorResponse::bad_request(
            "InvalidScope",
            format!(
                "Policy definitions exist at tenant, management group or subscription scope, not at '{}'.",
                scope.id
            ),
        )),
    }
}

fn get(state: &AppState, scope: &Scope, kind: Kind, name: &str) -> Result<Response, ErrorResponse> {
    if scope.kind != ScopeKind::Tenant {
        if let Some(stored) = state.store.get(&item_id(scope, kind, name))? {
            return Ok(ok_json(&stored.body));
        }
    }
    find(kind.entries(state), name)
        .map(|e| ok_json(&e.body))
        .ok_or_else(|| kind.not_found(name))
}

pub(super) fn item_id(scope: &Scope, kind: Kind, name: &str) -> String {
    format!("{}/providers/{}/{name}", scope.id, kind.type_name())
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    kind: Kind,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let what = match kind {
        Kind::Definition => "policy definition",
        Kind::SetDefinition => "policy set definition",
    };
    check_name(what, name, &names::POLICY_DEFINITION)?;
    let id = item_id(scope, kind, name);
    let mut body = build_body(state, req, scope, kind, &id, name)?;
    // Without an explicit version a PUT updates the version the definition shows now.
    let explicit_version = serde_json::from_slice::<Value>(&req.http.body)
        .ok()
        .and_then(|b| b.pointer("/properties/version").cloned())
        .is_some_and(|v| v.is_string());
    if !explicit_version {
        if let Some(current) = state
            .store
            .get(&id)?
            .and_then(|p| p.body.pointer("/properties/version").cloned())
        {
            body["properties"]["version"] = current;
        }
    }
    if let Some(v) = body["properties"]["version"].as_str() {
        if policy_versions::parse_version(v).is_none() {
            return Err(ErrorResponse::bad_request(
                match kind {
                    Kind::Definition => "InvalidPolicyDefinitionVersion",
                    Kind::SetDefinition => "InvalidPolicySetDefinitionVersion",
                },
                format!("The version '{v}' is invalid. A version must have the form 'major.minor.patch' with whole numbers, for example '1.0.0'."),
            ));
        }
    }
    let written = write(state, &id, "definition", |previous| {
        if let Some(previous) = previous {
            let old = previous.body.pointer("/properties/parameters");
            let new = body.pointer("/properties/parameters");
            check_parameter_update(
                parameters_of(old).as_ref(),
                parameters_of(new).as_ref(),
                kind == Kind::SetDefinition,
            )
            .map_err(validation_error)?;
        }
        let mut body = body.clone();
        body["systemData"] = system_data(req, previous.map(|p| &p.body));
        Ok(Change::put(body))
    })?;
    let stored = policy_versions::record_put(state, &written.stored, kind)?;
    // Definitions answer 201 on create and update; set definitions 200 on update.
    let status = match kind {
        Kind::Definition => StatusCode::CREATED,
        Kind::SetDefinition => written.status(),
    };
    Ok(status_json(status, &with_id(&stored.body, &stored.id)))
}

/// The validated body a PUT of `kind` asks for (also what a version PUT stores).
pub(super) fn build_body(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    kind: Kind,
    id: &str,
    name: &str,
) -> Result<Value, ErrorResponse> {
    match kind {
        Kind::Definition => build_definition(req, id, name),
        Kind::SetDefinition => build_set_definition(state, req, scope, id, name),
    }
}

fn parameters_of(value: Option<&Value>) -> Option<BTreeMap<String, ParameterDefinition>> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Maps a domain validation failure to ARM's 400.
pub(crate) fn validation_error(e: PolicyValidationError) -> ErrorResponse {
    ErrorResponse::bad_request(e.code(), e.to_string())
}

fn build_definition(req: &ArmRequest<'_>, id: &str, name: &str) -> Result<Value, ErrorResponse> {
    let mut def: PolicyDefinition = parse_body(req)?;
    validate_definition(name, &def.properties).map_err(validation_error)?;
    def.id = Some(id.to_string());
    def.name = Some(name.to_string());
    def.resource_type = Some(POLICY_DEFINITION_TYPE.to_string());
    def.properties.policy_type = Some(policy_type::CUSTOM.to_string());
    fill_versions(&mut def.properties.version, &mut def.properties.versions);
    if def.properties.mode.is_none() {
        def.properties.mode = Some(DEFAULT_MODE.to_string());
    }
    def.extra.remove("systemData");
    serde_json::to_value(&def).map_err(|e| ErrorResponse::internal(e.to_string()))
}

fn build_set_definition(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    id: &str,
    name: &str,
) -> Result<Value, ErrorResponse> {
    let mut set: PolicySetDefinition = parse_body(req)?;
    let invalid =
        |msg: String| ErrorResponse::bad_request("InvalidCreatePolicySetDefinitionRequest", msg);
    if set.properties.policy_definitions.is_empty() {
        return Err(invalid(format!(
            "The policy set definition '{name}' request is invalid. At least one policy definition must be referenced."
        )));
    }
    if let Some(params) = &set.properties.parameters {
        validate_parameter_definitions(params).map_err(validation_error)?;
    }
    let set_params = set.properties.parameters.clone().unwrap_or_default();
    let mut reference_ids: Vec<String> = Vec::new();
    for (index, member) in set.properties.policy_definitions.iter_mut().enumerate() {
        if Kind::of_id(&member.policy_definition_id) != Some(Kind::Definition) {
            return Err(invalid(format!(
                "The policy set definition '{name}' request is invalid. Referenced policy definitions must be of type '{POLICY_DEFINITION_TYPE}'."
            )));
        }
        let Some(definition) = resolve_visible(state, scope, &member.policy_definition_id)? else {
            return Err(ErrorResponse::bad_request(
                "PolicyDefinitionNotFound",
                format!(
                    "The policy definition '{}' could not be found.",
                    member.policy_definition_id
                ),
            ));
        };
        // Member parameters may reference the set's parameters; those must be declared.
        if let Some(values) = &member.parameters {
            for (param, wrapper) in values {
                let text = wrapper.get("value").and_then(Value::as_str).unwrap_or("");
                for referenced in expression_parameter_references(text) {
                    if !set_params
                        .keys()
                        .any(|k| k.eq_ignore_ascii_case(&referenced))
                    {
                        return Err(invalid(format!(
                            "The policy set definition '{name}' request is invalid. The parameter '{param}' of policy definition reference '{}' references the parameter '{referenced}' which is not defined in the policy set.",
                            member.policy_definition_reference_id.as_deref().unwrap_or(&member.policy_definition_id)
                        )));
                    }
                }
            }
        }
        let declared = parameters_of(definition.pointer("/properties/parameters"));
        // Values that are expressions are typed at evaluation; only declarations and presence
        // are checked here.
        let literal: serde_json::Map<String, Value> = member
            .parameters
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let is_expr = v
                    .get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with('['));
                if is_expr {
                    let decl_default = declared
                        .as_ref()
                        .and_then(|d| d.iter().find(|(n, _)| n.eq_ignore_ascii_case(&k)))
                        .and_then(|(_, d)| d.default_value.clone())
                        .unwrap_or(Value::Null);
                    (k, json!({"value": decl_default}))
                } else {
                    (k, v)
                }
            })
            .filter(|(_, v)| !v["value"].is_null())
            .collect();
        let expr_keys: Vec<String> = member
            .parameters
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, v)| v["value"].as_str().is_some_and(|s| s.starts_with('[')))
            .map(|(k, _)| k)
            .collect();
        // Parameters given as expressions count as provided.
        let mut declared_without_expr = declared.clone().unwrap_or_default();
        for k in &expr_keys {
            if let Some((_, d)) = declared_without_expr
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
            {
                d.default_value.get_or_insert(Value::Null);
            }
        }
        check_assignment_parameters(
            name,
            &member.policy_definition_id,
            Some(&declared_without_expr),
            Some(&literal),
        )
        .map_err(validation_error)?;
        let reference_id = member
            .policy_definition_reference_id
            .clone()
            .unwrap_or_else(|| format!("{}", 1000 + index));
        if reference_ids
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&reference_id))
        {
            return Err(invalid(format!(
                "The policy set definition '{name}' request is invalid. The policy definition reference id '{reference_id}' is used more than once."
            )));
        }
        reference_ids.push(reference_id.clone());
        member.policy_definition_reference_id = Some(reference_id);
        if member.definition_version.is_none() {
            member.definition_version = Some(DEFAULT_DEFINITION_VERSION.to_string());
        }
    }
    set.id = Some(id.to_string());
    set.name = Some(name.to_string());
    set.resource_type = Some(POLICY_SET_DEFINITION_TYPE.to_string());
    set.properties.policy_type = Some(policy_type::CUSTOM.to_string());
    fill_versions(&mut set.properties.version, &mut set.properties.versions);
    set.extra.remove("systemData");
    serde_json::to_value(&set).map_err(|e| ErrorResponse::internal(e.to_string()))
}

/// What Azure reports for definitions that never had an explicit version.
const DEFAULT_VERSION: &str = "1.0.0";
/// What Azure fills for references without a pinned version.
pub(crate) const DEFAULT_DEFINITION_VERSION: &str = "1.*.*";

/// Azure gives every definition a version (1.0.0 unless set) and lists it in `versions`.
fn fill_versions(version: &mut Option<String>, versions: &mut Option<Vec<String>>) {
    let v = version
        .get_or_insert_with(|| DEFAULT_VERSION.to_string())
        .clone();
    let list = versions.get_or_insert_with(Vec::new);
    if !list.contains(&v) {
        list.push(v);
    }
}

fn delete(
    state: &AppState,
    scope: &Scope,
    kind: Kind,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let id = item_id(scope, kind, name);
    let key = resource_key(&id);
    // Referencing resources are found before the delete; a reference written concurrently
    // is a race Azure has too.
    for stored in all_of_type(state, "policyassignments")? {
        let def_id = stored
            .body
            .pointer("/properties/policyDefinitionId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if resource_key(def_id) == key {
            let (code, what) = match kind {
                Kind::Definition => ("InvalidDeletePolicyDefinitionRequest", "policy definition"),
                Kind::SetDefinition => (
                    "InvalidDeletePolicySetDefinitionRequest",
                    "policy set definition",
                ),
            };
            return Err(ErrorResponse::bad_request(
                code,
                format!(
                    "The {what} '{name}' cannot be deleted. It is referenced by the policy assignment '{}'. Please delete all policy assignments referencing the policy.",
                    stored.id
                ),
            ));
        }
    }
    if kind == Kind::Definition {
        for stored in all_of_type(state, "policysetdefinitions")? {
            let members = stored
                .body
                .pointer("/properties/policyDefinitions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let referenced = members.iter().any(|m| {
                m.get("policyDefinitionId")
                    .and_then(Value::as_str)
                    .is_some_and(|d| resource_key(d) == key)
            });
            if referenced {
                return Err(ErrorResponse::bad_request(
                    "InvalidDeletePolicyDefinitionRequest",
                    format!(
                        "The policy definition '{name}' cannot be deleted. It is referenced by the policy set definition '{}'. Please remove this policy definition from all policy set definitions that reference it.",
                        stored.id
                    ),
                ));
            }
        }
    }
    // The versions go with the definition.
    match state.store.delete_tree(&id)? {
        0 => Ok(empty(StatusCode::NO_CONTENT)),
        _ => Ok(empty(StatusCode::OK)),
    }
}

/// Every stored Microsoft.Authorization resource of `lower_type`, e.g. `policyassignments`.
fn all_of_type(
    state: &AppState,
    lower_type: &str,
) -> Result<Vec<crate::emulator::store::StoredResource>, ErrorResponse> {
    Ok(
        stored_of_type(state, &format!("microsoft.authorization/{lower_type}"))?
            .into_iter()
            .map(|(_, r)| r)
            .collect(),
    )
}

fn list(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    kind: Kind,
) -> Result<Response, ErrorResponse> {
    let filter = DefinitionFilter::parse(req.http.query_param("$filter"))?;
    let mut items: Vec<Value> = Vec::new();
    if !filter.at_exact_scope || scope.kind == ScopeKind::Tenant {
        items.extend(
            kind.entries(state)
                .iter()
                .filter(|e| filter.accepts(&e.policy_type, e.category.as_deref()))
                .map(|e| e.body.clone()),
        );
    }
    if scope.kind != ScopeKind::Tenant {
        let visible_scopes: Vec<String> = if filter.at_exact_scope {
            vec![resource_key(&scope.id)]
        } else {
            scope.ancestors(state)?
        };
        for visible in visible_scopes.iter().rev() {
            if visible.is_empty() {
                continue;
            }
            let parent = visible.clone();
            for stored in state
                .store
                .list_children(&parent, &format!("providers/{}", kind.type_name()))?
            {
                let category = stored
                    .body
                    .pointer("/properties/metadata/category")
                    .and_then(Value::as_str);
                if filter.accepts(policy_type::CUSTOM, category) {
                    items.push(with_id(&stored.body, &stored.id));
                }
            }
        }
    }
    Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
}

/// The body of the definition or set definition `id` if it exists and is visible from
/// `scope` (built-ins are visible everywhere; custom ones from their scope downwards).
pub(crate) fn resolve_visible(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> Result<Option<Value>, ErrorResponse> {
    let Some(kind) = Kind::of_id(id) else {
        return Ok(None);
    };
    let lower = id.to_ascii_lowercase();
    let Some(marker_at) = lower.rfind(&kind.id_marker()) else {
        return Ok(None);
    };
    let def_scope = &lower[..marker_at];
    let name = &id[marker_at + kind.id_marker().len()..];
    if name.is_empty() || name.contains('/') {
        return Ok(None);
    }
    if def_scope.is_empty() {
        return Ok(find(kind.entries(state), name).map(|e| e.body.clone()));
    }
    if !scope.ancestors(state)?.iter().any(|a| a == def_scope) {
        return Ok(None);
    }
    if let Some(stored) = state.store.get(id)? {
        return Ok(Some(with_id(&stored.body, &stored.id)));
    }
    // A built-in may also be addressed through a subscription or management group path.
    Ok(find(kind.entries(state), name).map(|e| e.body.clone()))
}
