//! Resource `akspolicy_assignment`: a policy or initiative assigned at any ARM scope —
//! management group, subscription, resource group or a single resource such as an AKS cluster —
//! with parameters written as plain Terraform values and checked against the definition at plan.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::arm::{ArmClient, ArmError, ResourceId, Scope};
use crate::framework::timeouts::{self, Deadline, Operation};
use crate::framework::{
    ApplyRequest, ApplyResult, Attribute, AttributePath, Block, CallContext, Diagnostic,
    Diagnostics, NestedBlock, PlanChange, Removal, Resource, Schema, Type, Value,
};

use crate::resources::provider::Configured;
mod remediation_roles;
use crate::resources::shared::errors::arm_error_diagnostic;
use crate::resources::shared::existence::{check_planned_scope, missing_definition};
use crate::resources::shared::parameter_values::{
    check_against, declared_parameters, definition_kind, from_arm, parameters_state,
    plain_parameters, to_arm, LookupError,
};
use crate::resources::shared::reconcile::{
    arm_scope, ignore_case_only_replacements, json_object_string, keep_equivalent, keep_id_list,
    keep_id_set, keep_str_ci, keep_text, metadata_state, metadata_to_arm, same_id,
    timeouts_only_update, AZURE_MANAGED_METADATA_KEYS,
};
use crate::resources::shared::scoped::{PropagationWait, ScopedBody, ScopedKind};
use crate::resources::shared::selectors::{
    one_of, resource_selectors_block, resource_selectors_from_value, resource_selectors_to_value,
    selector_from_value, selector_to_value, selectors_block, ResourceSelector, Selector,
};
use crate::resources::shared::usage::{bullet_list, users_of, DefinitionUser};
use crate::resources::shared::validators::policy_object_name;
use crate::resources::shared::waits::POLICY_TIMEOUTS;

pub const API_VERSION: &str = "2025-03-01";

const KIND: ScopedKind = ScopedKind {
    noun: "policy assignment",
    segment: "/providers/Microsoft.Authorization/policyAssignments/",
    arm_type: "Microsoft.Authorization/policyAssignments",
    api_version: API_VERSION,
    import_hint: ", e.g. /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Authorization/policyAssignments/no-privileged",
    timeouts: POLICY_TIMEOUTS,
    list_takes_top: true,
};

/// A definition created in the same apply can be invisible to the assignment API for a while.
const DEFINITION_PROPAGATION: PropagationWait = PropagationWait {
    transient: is_definition_propagation,
    bound: Duration::from_secs(180),
    interval: Duration::from_secs(5),
    waiting_for: "Azure to see the assigned definition",
};

const ENFORCEMENT_MODES: &[&str] = &["Default", "DoNotEnforce", "Enroll"];
const IDENTITY_TYPES: &[&str] = &["SystemAssigned", "UserAssigned"];
const OVERRIDE_KINDS: &[&str] = &["policyEffect", "definitionVersion"];
/// Azure's limit for assignment names at management-group scope.
const MG_NAME_MAX: usize = 24;
const NAME_MAX: usize = 64;

pub struct AssignmentResource;

// ---------------------------------------------------------------------------------------------
// ARM body

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyAssignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<AssignmentIdentity>,
    #[serde(default)]
    properties: AssignmentProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_definition_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    definition_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enforcement_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    non_compliance_messages: Option<Vec<NonComplianceMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_selectors: Option<Vec<ResourceSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overrides: Option<Vec<Override>>,
    /// Read-only: the scope with a leading slash.
    #[serde(default, skip_serializing)]
    scope: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NonComplianceMessage {
    #[serde(default)]
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_definition_reference_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Override {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selectors: Option<Vec<Selector>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentIdentity {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_assigned_identities: Option<BTreeMap<String, Json>>,
}

impl ScopedBody for PolicyAssignment {
    fn id_mut(&mut self) -> &mut Option<String> {
        &mut self.id
    }

    fn is_complete(&self) -> bool {
        self.id.is_some() && self.name.is_some() && self.properties.policy_definition_id.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Schema

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Assigns a policy definition or an initiative (policy set definition), built-in \
                 or custom, at any scope: a management group, a subscription, a resource group or \
                 a single resource such as an AKS cluster. `parameters` takes plain values; they \
                 are checked against the definition's declarations during `terraform plan`.\n\n\
                 `overrides` and `resource_selectors` are nested blocks that mirror ARM's \
                 `overrides` and `resourceSelectors` arrays. IDs compare case-insensitively and \
                 your spelling is kept. After `terraform import`, `metadata` reads back as \
                 compact JSON with sorted keys, which is what `jsonencode` writes.",
            )
            .attribute(
                Attribute::string("id")
                    .computed()
                    .use_state_for_unknown()
                    .description("The assignment's ARM ID: `<scope>/providers/Microsoft.Authorization/policyAssignments/<name>`."),
            )
            .attribute(
                Attribute::string("name")
                    .required()
                    .requires_replace()
                    .description("The assignment's name: at most 64 characters, at most 24 at management-group scope; none of `<>*%&:\\?.+/`.")
                    .validate_with(policy_object_name),
            )
            .attribute(
                Attribute::string("scope")
                    .required()
                    .requires_replace()
                    .description("Where to assign: `/providers/Microsoft.Management/managementGroups/<mg>`, `/subscriptions/<sub>`, `/subscriptions/<sub>/resourceGroups/<rg>` or a resource ID such as an AKS cluster's. A management group, subscription or resource group that does not exist fails the plan (when the scope is known at plan).")
                    .validate_with(arm_scope),
            )
            .attribute(
                Attribute::string("policy_definition_id")
                    .required()
                    .requires_replace()
                    .description("The ID of the policy definition or initiative (policy set definition) to assign, built-in or custom. Checked at plan: a built-in Azure does not have, or an initiative's ID under `policyDefinitions/` (and the reverse), fails the plan; a custom definition that does not exist yet gets a warning (refer to its resource's `id` when this configuration creates it).")
                    .validate_with(definition_id),
            )
            .attribute(
                Attribute::string("definition_version")
                    .optional()
                    .computed()
                    .use_state_for_unknown()
                    .description("The definition version to use, e.g. `1.*.*` (Azure's default: the latest of the major version at assignment time)."),
            )
            .attribute(
                Attribute::string("display_name")
                    .optional()
                    .description("The display name shown in the portal and in compliance results."),
            )
            .attribute(Attribute::string("description").optional().description("A description."))
            .attribute(
                Attribute::string("metadata")
                    .optional()
                    .description("Metadata as a JSON object string (`jsonencode({...})`). Only the keys you set are compared; keys Azure writes itself (`assignedBy`, `createdBy`, `createdOn`, `updatedBy`, `updatedOn`) are ignored unless you set them, and updates keep the values Azure holds.")
                    .validate_with(json_object_string),
            )
            .attribute(
                Attribute::string("enforcement_mode")
                    .default(Value::string("Default"))
                    .description("`Default` enforces the policy effect, `DoNotEnforce` only reports compliance (what-if), `Enroll` enrols resources without enforcing.")
                    .validate_with(|v, p, d| one_of(v, p, d, ENFORCEMENT_MODES, "enforcement mode")),
            )
            .attribute(
                Attribute::new("not_scopes", Type::list(Type::String))
                    .optional()
                    .description("Scopes below `scope` that the assignment excludes.")
                    .validate_with(|v, p, d| {
                        for (i, item) in v.elements().iter().enumerate() {
                            arm_scope(item, &p.index(i), d);
                        }
                    }),
            )
            .attribute(
                Attribute::new("parameters", Type::Dynamic)
                    .optional()
                    .description("Parameter values as plain Terraform values, e.g. `{ effect = \"deny\", excludedNamespaces = [\"kube-system\"] }` (not ARM's `{\"value\": ...}` form). Names, types, required parameters and `allowedValues` (case-sensitive) are checked against the definition during plan.")
                    .validate_with(|v, p, d| {
                        let inner = match v {
                            Value::Dynamic(_, inner) => inner.as_ref(),
                            other => other,
                        };
                        if !matches!(inner, Value::Object(_) | Value::Map(_) | Value::Unknown | Value::Null) {
                            d.error_at(
                                p.clone(),
                                "Parameters must be an object",
                                "Write parameters as an object of name = value pairs, e.g. { effect = \"deny\" }.",
                            );
                        }
                    }),
            )
            .attribute(
                Attribute::string("location")
                    .optional()
                    .requires_replace()
                    .description("The Azure region of the assignment's managed identity; required with `identity`. Azure does not allow changing it."),
            )
            .block(
                NestedBlock::list(
                    "non_compliance_message",
                    Block::new()
                        .description("A message shown when a resource is denied or non-compliant. Kubernetes policies do not show these messages in admission responses.")
                        .attribute(Attribute::string("content").required().description("The message."))
                        .attribute(
                            Attribute::string("policy_definition_reference_id")
                                .optional()
                                .description("For initiatives: the reference ID of the member policy this message is for (default: all)."),
                        ),
                ),
            )
            .block(NestedBlock::list(
                "overrides",
                Block::new()
                    .description("Changes a property of the assigned policies without changing the definition, e.g. the effect of some members of an initiative.")
                    .attribute(
                        Attribute::string("kind")
                            .default(Value::string("policyEffect"))
                            .description("What to override: `policyEffect` or `definitionVersion`.")
                            .validate_with(|v, p, d| one_of(v, p, d, OVERRIDE_KINDS, "override kind")),
                    )
                    .attribute(Attribute::string("value").required().description("The new value, e.g. `Disabled` or `Audit`."))
                    .block(selectors_block("policies or resources").items(0, 0)),
            ))
            .attribute(
                Attribute::bool("grant_remediation_roles")
                    .default(Value::Bool(false))
                    .description("Grant the assignment's managed identity, at the assignment's scope, every role the definition (or each initiative member) names in `roleDefinitionIds`, as the portal does: one role assignment per role, removed with the assignment. When the definition's roles change, or a role assignment is deleted outside Terraform, the next plan shows this as `false` and the apply grants and revokes to match. Needs an `identity` block. Waits for Entra ID to replicate a new identity before granting. Roles already granted under another name are left alone and not tracked."),
            )
            .attribute(
                Attribute::new("remediation_role_assignment_ids", Type::list(Type::String))
                    .computed()
                    .description("The role assignments `grant_remediation_roles` holds (empty when it is `false`)."),
            )
            .block(resource_selectors_block())
            .block(
                NestedBlock::list(
                    "identity",
                    Block::new()
                        .description("A managed identity for the assignment, needed by `DeployIfNotExists` and `Modify` policies to remediate. Requires `location`.")
                        .attribute(
                            Attribute::string("type")
                                .required()
                                .description("`SystemAssigned` or `UserAssigned`.")
                                .validate_with(|v, p, d| one_of(v, p, d, IDENTITY_TYPES, "identity type")),
                        )
                        .attribute(
                            Attribute::new("identity_ids", Type::set(Type::String))
                                .optional()
                                .description("For `UserAssigned`: the IDs of the user-assigned identities (exactly one)."),
                        )
                        .attribute(
                            Attribute::string("principal_id")
                                .computed()
                                .description("The object ID of the system-assigned identity; grant it roles for remediation."),
                        )
                        .attribute(
                            Attribute::string("tenant_id")
                                .computed()
                                .description("The tenant of the system-assigned identity."),
                        ),
                )
                .items(0, 1),
            )
            .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

/// Validator: the id of a policy definition or initiative.
fn definition_id(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(s) = value.as_str() else { return };
    let ok = ResourceId::parse(s)
        .ok()
        .and_then(|id| definition_kind(&id))
        .is_some();
    if !ok {
        diags.error_at(
            path.clone(),
            "Invalid policy definition ID",
            format!(
                "{s:?} is not the ID of a policy definition or initiative. Expected \
                 .../providers/Microsoft.Authorization/policyDefinitions/<name> or \
                 .../providers/Microsoft.Authorization/policySetDefinitions/<name>, e.g. the `id` \
                 of an akspolicy_builtin_definition data source."
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Terraform value ⇄ ARM body

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The PUT body for a planned (wholly known apart from computed attributes) state.
fn body_from(v: &Value) -> Result<PolicyAssignment, Diagnostics> {
    let parameters = plain_parameters(v.get("parameters")).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error("Parameters not known", format!("parameters: {e}"))
                .at(AttributePath::attr("parameters")),
        )
    })?;
    let messages: Vec<NonComplianceMessage> = v
        .get("non_compliance_message")
        .elements()
        .iter()
        .map(|m| NonComplianceMessage {
            message: m.get("content").as_str().unwrap_or_default().to_string(),
            policy_definition_reference_id: opt_str(m.get("policy_definition_reference_id")),
        })
        .collect();
    let overrides: Vec<Override> = v
        .get("overrides")
        .elements()
        .iter()
        .map(|o| {
            let selectors: Vec<Selector> = o
                .get("selectors")
                .elements()
                .iter()
                .map(selector_from_value)
                .collect();
            Override {
                kind: o.get("kind").as_str().unwrap_or("policyEffect").to_string(),
                value: o.get("value").as_str().unwrap_or_default().to_string(),
                selectors: (!selectors.is_empty()).then_some(selectors),
            }
        })
        .collect();
    let identity = v.get("identity").elements().first().map(|i| {
        let ids = i.get("identity_ids").string_elements();
        AssignmentIdentity {
            kind: i.get("type").as_str().unwrap_or_default().to_string(),
            principal_id: None,
            tenant_id: None,
            user_assigned_identities: (!ids.is_empty()).then(|| {
                ids.into_iter()
                    .map(|id| (id, Json::Object(Map::new())))
                    .collect()
            }),
        }
    });
    let not_scopes = v.get("not_scopes");
    Ok(PolicyAssignment {
        location: opt_str(v.get("location")),
        identity,
        properties: AssignmentProperties {
            display_name: opt_str(v.get("display_name")),
            description: opt_str(v.get("description")),
            metadata: metadata_to_arm(v.get("metadata")),
            policy_definition_id: opt_str(v.get("policy_definition_id")),
            definition_version: opt_str(v.get("definition_version")),
            not_scopes: not_scopes.is_set().then(|| not_scopes.string_elements()),
            parameters: parameters.as_ref().map(to_arm),
            enforcement_mode: opt_str(v.get("enforcement_mode")),
            non_compliance_messages: (!messages.is_empty()).then_some(messages),
            resource_selectors: resource_selectors_from_value(v.get("resource_selectors")),
            overrides: (!overrides.is_empty()).then_some(overrides),
            scope: None,
        },
        ..Default::default()
    })
}

fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.replace(' ', "").to_ascii_lowercase();
    norm(a) == norm(b)
}

/// The state for what Azure returned, keeping the prior (user's) form wherever the remote value
/// means the same.
fn state_from(remote: &PolicyAssignment, prior: &Value) -> Value {
    let p = &remote.properties;
    let remote_id = remote.id.clone().unwrap_or_default();
    let remote_scope = p
        .scope
        .clone()
        .or_else(|| KIND.scope_of_id(&remote_id).map(str::to_string));
    let scope = keep_str_ci(prior.get("scope"), remote_scope.as_deref());
    let name = keep_str_ci(prior.get("name"), remote.name.as_deref());
    // The id follows the user's spelling of scope and name when it means the same.
    let id = match (scope.as_str(), name.as_str()) {
        (Some(s), Some(n)) if same_id(&KIND.path(s, n), &remote_id) => {
            keep_str_ci(prior.get("id"), Some(&KIND.path(s, n)))
        }
        _ => keep_str_ci(prior.get("id"), Some(&remote_id)),
    };
    let location = match (prior.get("location").as_str(), remote.location.as_deref()) {
        (Some(pl), Some(rl)) if same_location(pl, rl) => prior.get("location").clone(),
        (_, rl) => Value::opt_string(rl),
    };
    let messages = Value::List(
        p.non_compliance_messages
            .iter()
            .flatten()
            .map(|m| {
                Value::object([
                    ("content", Value::string(m.message.clone())),
                    (
                        "policy_definition_reference_id",
                        Value::opt_string(m.policy_definition_reference_id.clone()),
                    ),
                ])
            })
            .collect(),
    );
    let overrides = Value::List(
        p.overrides
            .iter()
            .flatten()
            .map(|o| {
                Value::object([
                    ("kind", Value::string(o.kind.clone())),
                    ("value", Value::string(o.value.clone())),
                    (
                        "selectors",
                        Value::List(
                            o.selectors
                                .iter()
                                .flatten()
                                .map(selector_to_value)
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect(),
    );
    let identity = match &remote.identity {
        Some(i) if !i.kind.eq_ignore_ascii_case("None") && !i.kind.is_empty() => {
            let prior_identity = prior.get("identity").elements().first();
            let prior_identity = prior_identity.unwrap_or(&Value::Null);
            let ids: Vec<String> = i
                .user_assigned_identities
                .iter()
                .flat_map(|m| m.keys().cloned())
                .collect();
            Value::List(vec![Value::object([
                (
                    "type",
                    keep_str_ci(prior_identity.get("type"), Some(&i.kind)),
                ),
                (
                    "identity_ids",
                    keep_id_set(prior_identity.get("identity_ids"), &ids),
                ),
                ("principal_id", Value::opt_string(i.principal_id.clone())),
                ("tenant_id", Value::opt_string(i.tenant_id.clone())),
            ])])
        }
        _ => Value::List(Vec::new()),
    };
    Value::object([
        ("id", id),
        ("name", name),
        ("scope", scope),
        (
            "policy_definition_id",
            keep_str_ci(
                prior.get("policy_definition_id"),
                p.policy_definition_id.as_deref(),
            ),
        ),
        (
            "definition_version",
            Value::opt_string(p.definition_version.clone()),
        ),
        (
            "display_name",
            keep_text(prior.get("display_name"), p.display_name.as_deref()),
        ),
        (
            "description",
            keep_text(prior.get("description"), p.description.as_deref()),
        ),
        (
            "metadata",
            metadata_state(prior.get("metadata"), p.metadata.as_ref()),
        ),
        (
            "enforcement_mode",
            keep_str_ci(
                prior.get("enforcement_mode"),
                Some(p.enforcement_mode.as_deref().unwrap_or("Default")),
            ),
        ),
        (
            "not_scopes",
            keep_id_list(
                prior.get("not_scopes"),
                p.not_scopes.as_deref().unwrap_or_default(),
            ),
        ),
        (
            "parameters",
            parameters_state(prior.get("parameters"), &from_arm(p.parameters.as_ref())),
        ),
        ("location", location),
        (
            "non_compliance_message",
            keep_equivalent(prior.get("non_compliance_message"), messages),
        ),
        (
            "overrides",
            keep_equivalent(prior.get("overrides"), overrides),
        ),
        (
            "resource_selectors",
            keep_equivalent(
                prior.get("resource_selectors"),
                resource_selectors_to_value(p.resource_selectors.as_deref()),
            ),
        ),
        ("identity", identity),
        (
            "grant_remediation_roles",
            match prior.get("grant_remediation_roles") {
                Value::Bool(b) => Value::Bool(*b),
                _ => Value::Bool(false),
            },
        ),
        (
            "remediation_role_assignment_ids",
            match prior.get("remediation_role_assignment_ids") {
                v @ Value::List(_) => v.clone(),
                _ => Value::List(Vec::new()),
            },
        ),
        ("timeouts", prior.get("timeouts").clone()),
    ])
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Checks that need several attributes; unknown values are skipped (checked again at apply,
/// when Terraform plans once more with everything known).
fn check_config(config: &Value, diags: &mut Diagnostics) {
    let name = config.get("name").as_str();
    let scope = config
        .get("scope")
        .as_str()
        .and_then(|s| Scope::parse(s).ok());
    if let Some(name) = name {
        let len = name.chars().count();
        match scope {
            Some(Scope::ManagementGroup(_)) if len > MG_NAME_MAX => diags.error_at(
                AttributePath::attr("name"),
                "Assignment name too long for a management group",
                format!(
                    "{name:?} has {len} characters; Azure allows at most {MG_NAME_MAX} for \
                     assignments at management-group scope."
                ),
            ),
            _ if len > NAME_MAX => diags.error_at(
                AttributePath::attr("name"),
                "Assignment name too long",
                format!("{name:?} has {len} characters; Azure allows at most {NAME_MAX}."),
            ),
            _ => {}
        }
    }
    let identity = config.get("identity");
    // Unknown identity blocks (dynamic) are checked again at apply, when they are known.
    if config.get("grant_remediation_roles").as_bool() == Some(true)
        && !identity.is_unknown()
        && identity.elements().is_empty()
    {
        diags.error_at(
            AttributePath::attr("grant_remediation_roles"),
            "Remediation roles need an identity",
            "grant_remediation_roles grants roles to the assignment's managed identity; add \
             identity { type = \"SystemAssigned\" } (and location), or set it to false.",
        );
    }
    if let Some(first) = identity.elements().first() {
        if config.get("location").is_null() {
            diags.error_at(
                AttributePath::attr("location"),
                "Missing location",
                "An assignment with a managed identity needs `location` (the region where Azure \
                 creates the identity), e.g. location = \"westeurope\".",
            );
        }
        let kind = first.get("type").as_str();
        let ids = first.get("identity_ids");
        let here = AttributePath::attr("identity")
            .index(0)
            .attribute("identity_ids");
        match kind {
            Some("UserAssigned")
                if ids.is_null() || (ids.is_set() && ids.elements().len() != 1) =>
            {
                diags.error_at(
                    here,
                    "One user-assigned identity required",
                    "A UserAssigned identity needs exactly one ID in identity_ids.",
                )
            }
            Some("SystemAssigned") if ids.is_set() && !ids.elements().is_empty() => diags.error_at(
                here,
                "identity_ids not allowed",
                "identity_ids only applies to UserAssigned identities.",
            ),
            _ => {}
        }
    }
}

/// When a remote check runs: at plan a missing definition is reported (see
/// [`missing_definition`]); at apply Azure's own answer says it better.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Plan,
    Apply,
}

/// Checks the configured parameters against the definition. Skipped when the definition id or
/// parameters are not known yet (the check then happens at apply); a definition Azure does not
/// have fails the plan or, when the same apply may create it, warns.
async fn check_parameters_remote(client: &ArmClient, config: &Value, phase: Phase) -> Diagnostics {
    let Some(definition_id) = config.get("policy_definition_id").as_str() else {
        return Diagnostics::new();
    };
    let params = config.get("parameters");
    if params.is_unknown() {
        return Diagnostics::new();
    }
    match declared_parameters(client, definition_id).await {
        Ok(Some(declared)) => check_against(
            &declared,
            params,
            definition_id,
            &AttributePath::attr("parameters"),
        ),
        Ok(None) if phase == Phase::Plan => {
            missing_definition(
                client,
                definition_id,
                &AttributePath::attr("policy_definition_id"),
            )
            .await
        }
        Ok(None) => {
            log::debug!("{definition_id} not found yet; parameters are checked by Azure");
            Diagnostics::new()
        }
        Err(LookupError::NotADefinition(_)) => Diagnostics::new(),
        Err(LookupError::Arm(e)) => {
            log::warn!("could not read {definition_id} to check parameters: {e}");
            Diagnostics::new()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CRUD

fn is_definition_propagation(e: &ArmError) -> bool {
    e.status() == Some(400)
        && matches!(
            e.code(),
            Some("PolicyDefinitionNotFound" | "PolicySetDefinitionNotFound")
        )
}

async fn write(ctx: &CallContext, req: &ApplyRequest<'_>, op: Operation) -> ApplyResult {
    let deadline = Deadline::start(req.planned, op, POLICY_TIMEOUTS);
    let configured = match ctx.provider::<Configured>() {
        Ok(c) => c,
        Err(d) => return ApplyResult::failed(d),
    };
    let client = &configured.client;
    let mut diags = Diagnostics::new();
    check_config(req.config, &mut diags);
    match deadline
        .run(check_parameters_remote(client, req.config, Phase::Apply))
        .await
    {
        Some(d) => diags.extend(d),
        None => diags.push(deadline.exceeded(
            &format!("Timed out {} the policy assignment", op.doing()),
            "checking the parameters against the definition",
        )),
    }
    if diags.has_errors() {
        return ApplyResult::failed(diags);
    }
    let mut body = match body_from(req.planned) {
        Ok(b) => b,
        Err(d) => return ApplyResult::failed(d),
    };
    if op == Operation::Update
        && deadline
            .run(keep_hidden_metadata(client, req.planned, &mut body))
            .await
            .is_none()
    {
        diags.push(deadline.exceeded(
            &format!("Timed out {} the policy assignment", op.doing()),
            "reading the metadata Azure holds",
        ));
        return ApplyResult::failed(diags);
    }
    let written = KIND
        .write(
            &configured,
            req.planned,
            &deadline,
            &body,
            &DEFINITION_PROPAGATION,
            diags,
            state_from,
        )
        .await;
    sync_remediation_roles(client, &deadline, req, written).await
}

/// Brings the role assignments of `grant_remediation_roles` in line with the planned value
/// once the assignment is written; whatever exists afterwards is recorded in state, also
/// when granting failed half-way.
async fn sync_remediation_roles(
    client: &ArmClient,
    deadline: &Deadline,
    req: &ApplyRequest<'_>,
    mut written: ApplyResult,
) -> ApplyResult {
    let Some(state) = written.state.as_mut() else {
        return written;
    };
    let want = req.planned.get("grant_remediation_roles").as_bool() == Some(true);
    let prior = req
        .prior
        .get("remediation_role_assignment_ids")
        .string_elements();
    state.set("grant_remediation_roles", Value::Bool(want));
    if written.diags.has_errors() || (!want && prior.is_empty()) {
        state.set("remediation_role_assignment_ids", Value::string_list(prior));
        return written;
    }
    let (Some(id), Some(scope), Some(definition)) = (
        state.get("id").as_str().map(str::to_string),
        state.get("scope").as_str().map(str::to_string),
        state
            .get("policy_definition_id")
            .as_str()
            .map(str::to_string),
    ) else {
        return written;
    };
    let scope = KIND.scope_of_id(&id).map(str::to_string).unwrap_or(scope);
    match remediation_roles::sync(client, deadline, &id, &scope, &definition, want, &prior).await {
        Ok(granted) => {
            state.set(
                "remediation_role_assignment_ids",
                Value::string_list(granted),
            );
        }
        Err(failure) => {
            state.set(
                "remediation_role_assignment_ids",
                Value::string_list(failure.granted),
            );
            // State must not claim roles Azure does not hold: the next plan retries.
            state.set("grant_remediation_roles", Value::Bool(!want));
            written.diags.push(
                Diagnostic::error(
                    if want {
                        "Granting the remediation roles failed"
                    } else {
                        "Removing the remediation roles failed"
                    },
                    format!(
                        "The policy assignment was written, but {}. The next apply tries again.",
                        failure.error
                    ),
                )
                .at(AttributePath::attr("grant_remediation_roles")),
            );
        }
    }
    written
}

/// A write replaces the whole metadata object, and state hides the keys Azure or the portal
/// write (`assignedBy`, `createdBy`, ...) unless the configuration sets them; so an update
/// carries over the ones Azure holds now, or the first change after an import would drop them.
async fn keep_hidden_metadata(client: &ArmClient, planned: &Value, body: &mut PolicyAssignment) {
    let Some(id) = planned.get("id").as_str() else {
        return;
    };
    // Without the current object there is nothing to carry over; the PUT reports real errors.
    let Ok(Some(current)) = client
        .get_optional::<PolicyAssignment>(id, API_VERSION)
        .await
    else {
        return;
    };
    let Some(Json::Object(remote)) = current.properties.metadata else {
        return;
    };
    let mut merged = match body.properties.metadata.take() {
        Some(Json::Object(m)) => m,
        _ => Map::new(),
    };
    for key in AZURE_MANAGED_METADATA_KEYS {
        if let (false, Some(v)) = (merged.contains_key(*key), remote.get(*key)) {
            merged.insert(key.to_string(), v.clone());
        }
    }
    if !merged.is_empty() {
        body.properties.metadata = Some(Json::Object(merged));
    }
}

#[async_trait]
impl Resource for AssignmentResource {
    fn type_name(&self) -> &'static str {
        "akspolicy_assignment"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate_config(&self, config: &Value, diags: &mut Diagnostics) {
        check_config(config, diags);
    }

    async fn modify_plan(&self, ctx: &CallContext, change: &mut PlanChange<'_>) {
        keep_identity_ids(change);
        ignore_case_only_replacements(change, &["scope", "name", "policy_definition_id"]);
        check_planned_scope(ctx, change).await;
        let unchanged = !change.prior.is_null()
            && change.prior.get("parameters") == change.config.get("parameters")
            && change.prior.get("policy_definition_id")
                == change.config.get("policy_definition_id");
        if unchanged {
            return;
        }
        // Validation runs without a client too (terraform validate); then Azure checks at apply.
        if let Ok(configured) = ctx.provider::<Configured>() {
            let d = check_parameters_remote(&configured.client, change.config, Phase::Plan).await;
            change.diags.extend(d);
        }
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult {
        write(ctx, &req, Operation::Create).await
    }

    async fn read(
        &self,
        ctx: &CallContext,
        state: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let mut new = KIND.read(ctx, state, diags, state_from).await?;
        refresh_remediation_roles(ctx, state, &mut new, diags).await;
        Some(new)
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult {
        if let Some(state) = timeouts_only_update(req.prior, req.planned) {
            return ApplyResult::ok(state);
        }
        write(ctx, &req, Operation::Update).await
    }

    async fn check_removal(
        &self,
        ctx: &CallContext,
        prior: &Value,
        removal: Removal,
        diags: &mut Diagnostics,
    ) {
        // A destroyed assignment is meant to go; only a replacement must come back.
        if removal == Removal::Replace {
            check_replacement_keeps_guardrail(ctx, prior, diags).await;
        }
    }

    async fn delete(&self, ctx: &CallContext, prior: &Value, diags: &mut Diagnostics) {
        // Roles first: once the assignment is gone its identity is too, and its role
        // assignments would linger as "Identity not found".
        let granted = prior
            .get("remediation_role_assignment_ids")
            .string_elements();
        if !granted.is_empty() {
            let Some(configured) = Configured::from_context(ctx, diags) else {
                return;
            };
            let deadline = Deadline::start(prior, Operation::Delete, POLICY_TIMEOUTS);
            match deadline
                .run(remediation_roles::revoke(&configured.client, &granted))
                .await
            {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    diags.push(
                        arm_error_diagnostic("Removing the remediation roles failed", &e)
                            .at(AttributePath::attr("grant_remediation_roles")),
                    );
                    return;
                }
                None => {
                    diags.push(deadline.exceeded(
                        "Timed out removing the remediation roles",
                        "deleting the role assignments of grant_remediation_roles",
                    ));
                    return;
                }
            }
        }
        KIND.delete(ctx, prior, diags).await
    }

    async fn import(&self, _ctx: &CallContext, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        KIND.import(&schema().block, id, diags)
    }
}

/// Reads which role assignments of `grant_remediation_roles` exist. A missing one (deleted
/// by hand, or a role the definition added since) reads as `grant_remediation_roles = false`
/// so the plan shows the update that grants it again; an import finds roles granted by a
/// previous apply and reads `true` when all are there.
async fn refresh_remediation_roles(
    ctx: &CallContext,
    prior: &Value,
    new: &mut Value,
    diags: &mut Diagnostics,
) {
    let importing = prior.get("policy_definition_id").is_null();
    let granted = prior.get("grant_remediation_roles").as_bool() == Some(true);
    if !importing && !granted {
        return;
    }
    let (Some(id), Some(definition)) = (
        new.get("id").as_str().map(str::to_string),
        new.get("policy_definition_id").as_str().map(str::to_string),
    ) else {
        return;
    };
    let Some(scope) = KIND.scope_of_id(&id).map(str::to_string) else {
        return;
    };
    let Some(configured) = Configured::from_context(ctx, diags) else {
        return;
    };
    let deadline = Deadline::start(prior, Operation::Read, POLICY_TIMEOUTS);
    let found = deadline
        .run(remediation_roles::current(
            &configured.client,
            &id,
            &scope,
            &definition,
        ))
        .await;
    let roles = match found {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            diags.push(
                arm_error_diagnostic("Reading the remediation roles failed", &e)
                    .at(AttributePath::attr("grant_remediation_roles")),
            );
            return;
        }
        None => {
            diags.push(deadline.exceeded(
                "Timed out reading the remediation roles",
                "reading the role assignments of grant_remediation_roles",
            ));
            return;
        }
    };
    let held = prior
        .get("remediation_role_assignment_ids")
        .string_elements();
    // Role assignments state holds for roles the definition no longer names stay tracked
    // until an apply removes them.
    let stale: Vec<String> = held
        .into_iter()
        .filter(|h| !roles.desired.iter().any(|d| d.eq_ignore_ascii_case(h)))
        .collect();
    let complete = roles.all_held && stale.is_empty();
    let mut ids = roles.present;
    ids.extend(stale);
    if importing && !complete {
        ids.clear();
    }
    new.set("grant_remediation_roles", Value::Bool(complete));
    new.set("remediation_role_assignment_ids", Value::string_list(ids));
}

/// Fails the plan of an assignment that is replaced while the definition it assigns is
/// removed by the same plan and something else still uses that definition: Terraform would
/// destroy the assignment, then fail to delete the definition (Azure refuses while it is in
/// use), and the apply would stop with the scope unguarded. The definition was planned before
/// this assignment (the assignment references it), so the plan ledger knows (see `usage`).
async fn check_replacement_keeps_guardrail(
    ctx: &CallContext,
    prior: &Value,
    diags: &mut Diagnostics,
) {
    let (Some(id), Some(definition_id)) = (
        prior.get("id").as_str(),
        prior.get("policy_definition_id").as_str(),
    ) else {
        return;
    };
    let Ok(configured) = ctx.provider::<Configured>() else {
        return;
    };
    if !configured.plan_ledger.is_removed(definition_id) {
        return;
    }
    let deadline = Deadline::start(prior, Operation::Read, POLICY_TIMEOUTS);
    let others: Vec<DefinitionUser> = match deadline
        .run(users_of(&configured.client, definition_id))
        .await
    {
        Some(Ok(users)) => users
            .into_iter()
            .filter(|u| !u.id.eq_ignore_ascii_case(id))
            .collect(),
        Some(Err(e)) => {
            diags.error_at(
                AttributePath::attr("policy_definition_id"),
                "Could not check who else uses the definition",
                format!(
                    "This plan replaces the assignment and deletes {definition_id}, which Azure \
                     refuses while anything else uses it; listing its users failed, so the plan \
                     stops before anything is destroyed: {e}"
                ),
            );
            return;
        }
        None => {
            diags.error_at(
                AttributePath::attr("policy_definition_id"),
                "Could not check who else uses the definition",
                format!(
                    "Listing the users of {definition_id} did not finish within the read \
                     timeout, so the plan stops before anything is destroyed."
                ),
            );
            return;
        }
    };
    if others.is_empty() {
        return;
    }
    diags.error_at(
        AttributePath::attr("policy_definition_id"),
        "Replacing this assignment would leave its scope without the guardrail",
        format!(
            "This plan replaces {id} and deletes the definition it assigns, {definition_id}. \
             Terraform destroys the assignment first; Azure then refuses to delete the definition, \
             because it is still used by:\n{list}\n\nThe apply would stop there, with this \
             assignment gone. Nothing has been changed.\n\nKeep the old definition while those \
             use it: add the changed definition as a new resource with a new name (or a new \
             version of it) and point this assignment at it; remove the old definition once \
             nothing uses it. Or first move those users to another definition. (Other \
             assignments of this configuration that the same plan replaces are listed as well: \
             the provider cannot see the rest of the plan. The two-step change works for them \
             too.)",
            list = bullet_list(&others),
        ),
    );
}

/// Keeps the identity's principal and tenant ids planned as they are while the identity type
/// stays the same: they only change when the identity is replaced, and an unknown principal id
/// would needlessly ripple into role assignments that use it.
fn keep_identity_ids(change: &mut PlanChange<'_>) {
    let prior_identity = change.prior.get("identity").elements().first().cloned();
    let Some(prior_identity) = prior_identity else {
        return;
    };
    let Some(Value::List(items)) = change.planned.get_mut("identity") else {
        return;
    };
    let Some(planned_identity) = items.first_mut() else {
        return;
    };
    let same_type = match (
        planned_identity.get("type").as_str(),
        prior_identity.get("type").as_str(),
    ) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    if !same_type {
        return;
    }
    for attr in ["principal_id", "tenant_id"] {
        if planned_identity.get(attr).is_unknown() {
            planned_identity.set(attr, prior_identity.get(attr).clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn remote() -> PolicyAssignment {
        serde_json::from_value(json!({
            "id": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Authorization/policyAssignments/no-priv",
            "name": "no-priv",
            "properties": {
                "policyDefinitionId": "/providers/microsoft.authorization/policydefinitions/95edb821-ddaf-4404-9732-666045e056b4",
                "definitionVersion": "9.*.*",
                "scope": "/subscriptions/s/resourcegroups/rg",
                "notScopes": [],
                "parameters": {"effect": {"value": "deny"}, "excludedNamespaces": {"value": ["kube-system"]}},
                "enforcementMode": "Default",
                "metadata": {"createdBy": "x", "createdOn": "y"},
                "nonComplianceMessages": [{"message": "No privileged containers."}],
                "instanceId": "i"
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_a_complete_put_answer_stands_in_for_the_read_back() {
        assert!(remote().is_complete());
        // An empty body (null) does not parse; a partial one parses but is not complete.
        assert!(serde_json::from_value::<PolicyAssignment>(Json::Null).is_err());
        let partial: PolicyAssignment =
            serde_json::from_value(json!({"id": "/x", "properties": {}})).unwrap();
        assert!(!partial.is_complete());
    }

    #[test]
    fn schema_is_valid() {
        schema().block.validate().unwrap();
    }

    #[test]
    fn import_then_read_plans_like_hcl() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/policyAssignments/no-priv";
        let start = KIND
            .import(&schema().block, id, &mut Diagnostics::new())
            .unwrap();
        let state = state_from(&remote(), &start);
        assert_eq!(state.get("id"), &Value::string(id));
        assert_eq!(
            state.get("scope"),
            &Value::string("/subscriptions/s/resourceGroups/rg")
        );
        assert_eq!(state.get("metadata"), &Value::Null);
        assert_eq!(state.get("not_scopes"), &Value::Null);
        assert_eq!(state.get("enforcement_mode"), &Value::string("Default"));
        assert_eq!(state.get("identity"), &Value::List(vec![]));
        let params = value_to_json_for_test(state.get("parameters"));
        assert_eq!(
            params,
            json!({"effect": "deny", "excludedNamespaces": ["kube-system"]})
        );
        assert_eq!(
            state.get("non_compliance_message").elements()[0].get("content"),
            &Value::string("No privileged containers.")
        );
    }

    fn value_to_json_for_test(v: &Value) -> Json {
        crate::resources::shared::parameter_values::value_to_json(v).unwrap()
    }

    #[test]
    fn read_keeps_user_casing_and_forms() {
        let prior = Value::object([
            ("id", Value::string("/subscriptions/S/resourceGroups/RG/providers/Microsoft.Authorization/policyAssignments/no-priv")),
            ("scope", Value::string("/subscriptions/S/resourceGroups/RG")),
            ("name", Value::string("no-priv")),
            (
                "policy_definition_id",
                Value::string("/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4"),
            ),
            ("metadata", Value::Null),
        ]);
        let state = state_from(&remote(), &prior);
        for k in ["id", "scope", "policy_definition_id"] {
            assert_eq!(state.get(k), prior.get(k), "{k}");
        }
    }

    #[test]
    fn body_wraps_parameters_and_identity() {
        let planned = Value::object([
            ("name", Value::string("a")),
            ("scope", Value::string("/subscriptions/s")),
            (
                "policy_definition_id",
                Value::string("/providers/Microsoft.Authorization/policySetDefinitions/x"),
            ),
            ("enforcement_mode", Value::string("DoNotEnforce")),
            ("location", Value::string("westeurope")),
            (
                "parameters",
                Value::object([("effect", Value::string("audit"))]),
            ),
            (
                "identity",
                Value::List(vec![Value::object([
                    ("type", Value::string("SystemAssigned")),
                    ("identity_ids", Value::Null),
                    ("principal_id", Value::Unknown),
                    ("tenant_id", Value::Unknown),
                ])]),
            ),
            ("non_compliance_message", Value::List(vec![])),
            (
                "overrides",
                Value::List(vec![Value::object([
                    ("kind", Value::string("policyEffect")),
                    ("value", Value::string("Disabled")),
                    (
                        "selectors",
                        Value::List(vec![Value::object([
                            ("kind", Value::string("policyDefinitionReferenceId")),
                            ("in", Value::string_list(["ref1"])),
                            ("not_in", Value::Null),
                        ])]),
                    ),
                ])]),
            ),
            ("resource_selectors", Value::List(vec![])),
        ]);
        let body = serde_json::to_value(body_from(&planned).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "location": "westeurope",
                "identity": {"type": "SystemAssigned"},
                "properties": {
                    "policyDefinitionId": "/providers/Microsoft.Authorization/policySetDefinitions/x",
                    "parameters": {"effect": {"value": "audit"}},
                    "enforcementMode": "DoNotEnforce",
                    "overrides": [{"kind": "policyEffect", "value": "Disabled", "selectors": [{"kind": "policyDefinitionReferenceId", "in": ["ref1"]}]}]
                }
            })
        );
    }

    #[test]
    fn config_checks() {
        let cfg = |scope: &str, name: &str, identity: bool, location: Value| {
            Value::object([
                ("scope", Value::string(scope)),
                ("name", Value::string(name)),
                ("location", location),
                (
                    "identity",
                    Value::List(if identity {
                        vec![Value::object([
                            ("type", Value::string("SystemAssigned")),
                            ("identity_ids", Value::Null),
                        ])]
                    } else {
                        vec![]
                    }),
                ),
            ])
        };
        let mg = "/providers/Microsoft.Management/managementGroups/platform";
        let mut granting = cfg(mg, "roles", false, Value::Null);
        granting.set("grant_remediation_roles", Value::Bool(true));
        let mut d = Diagnostics::new();
        check_config(&granting, &mut d);
        assert_eq!(d.0.len(), 1, "{:?}", d.0);
        assert!(d.0[0].detail.contains("identity"), "{:?}", d.0);
        let mut granting = cfg(mg, "roles", true, Value::string("westeurope"));
        granting.set("grant_remediation_roles", Value::Bool(true));
        let mut d = Diagnostics::new();
        check_config(&granting, &mut d);
        assert!(d.0.is_empty(), "{:?}", d.0);
        let mut d = Diagnostics::new();
        check_config(
            &cfg(mg, "a-name-that-is-25-chars-x", false, Value::Null),
            &mut d,
        );
        assert_eq!(d.0.len(), 1);
        assert!(d.0[0].detail.contains("at most 24"));
        let mut d = Diagnostics::new();
        check_config(
            &cfg(
                "/subscriptions/s",
                "a-name-that-is-25-chars-x",
                false,
                Value::Null,
            ),
            &mut d,
        );
        assert!(d.is_empty());
        let mut d = Diagnostics::new();
        check_config(&cfg("/subscriptions/s", "n", true, Value::Null), &mut d);
        assert_eq!(d.0[0].attribute, Some(AttributePath::attr("location")));
        let mut d = Diagnostics::new();
        check_config(&cfg("/subscriptions/s", "n", true, Value::Unknown), &mut d);
        assert!(d.is_empty(), "unknown location is checked at apply");
    }

    #[test]
    fn import_ids() {
        assert_eq!(
            KIND.scope_of_id("/providers/Microsoft.Management/managementGroups/mg/providers/microsoft.authorization/policyassignments/a"),
            Some("/providers/Microsoft.Management/managementGroups/mg")
        );
        let mut d = Diagnostics::new();
        let s = futures_lite_block(AssignmentResource.import(
            &CallContext {
                provider_data: None,
                cancel: Default::default(),
                private: Default::default(),
            },
            "/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/x",
            &mut d,
        ));
        assert!(s.is_none() && d.has_errors());
    }

    fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}
