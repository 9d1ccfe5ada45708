//! The assignment's schema and its typed state: one struct per object (the resource and each
//! nested block), named as in the schema.

use crate::arm::ResourceId;
use crate::framework::timeouts;
use crate::framework::typed::{Knowable, SetOf, Typed, TypedError};
use crate::framework::{
    Attribute, AttributePath, Block, Diagnostics, NestedBlock, Schema, Type, Value,
};
use crate::policy::names;
use crate::resources::shared::parameter_values::definition_kind;
use crate::resources::shared::reconcile::arm_scope;
use crate::resources::shared::schema::{
    id_attribute, metadata_attribute, name_attribute, scope_attribute,
};
use crate::resources::shared::selectors::{
    one_of, resource_selectors_block, selectors_block, ResourceSelectorBlock, SelectorBlock,
};
use crate::resources::shared::waits::POLICY_TIMEOUTS;
use crate::typed_object;

const ENFORCEMENT_MODES: &[&str] = &["Default", "DoNotEnforce", "Enroll"];
const IDENTITY_TYPES: &[&str] = &["SystemAssigned", "UserAssigned"];
const OVERRIDE_KINDS: &[&str] = &["policyEffect", "definitionVersion"];

typed_object! {
    /// The resource's configuration, plan or state. Attributes a plan may not know yet read
    /// as `None` unless the code must keep them apart (`Knowable`).
    pub struct Assignment {
        pub id: Knowable<String>,
        pub name: Option<String>,
        pub scope: Option<String>,
        pub policy_definition_id: Option<String>,
        pub definition_version: Option<String>,
        pub display_name: Option<String>,
        pub description: Option<String>,
        pub metadata: Option<String>,
        pub enforcement_mode: Option<String>,
        pub not_scopes: Option<Vec<String>>,
        /// Plain Terraform values, read by [`crate::resources::shared::parameter_values`].
        pub parameters: Value,
        pub location: Knowable<String>,
        pub non_compliance_message: Vec<NonComplianceMessageBlock>,
        pub overrides: Vec<OverrideBlock>,
        pub grant_remediation_roles: Option<bool>,
        pub remediation_role_assignment_ids: Knowable<Vec<String>>,
        pub resource_selectors: Vec<ResourceSelectorBlock>,
        /// A `dynamic` block can leave the whole list unknown.
        pub identity: Knowable<Vec<IdentityBlock>>,
        pub timeouts: Value,
    }
}

typed_object! {
    pub struct NonComplianceMessageBlock {
        pub content: Option<String>,
        pub policy_definition_reference_id: Option<String>,
    }
}

typed_object! {
    pub struct OverrideBlock {
        pub kind: Option<String>,
        pub value: Option<String>,
        pub selectors: Vec<SelectorBlock>,
    }
}

typed_object! {
    /// Every attribute keeps unknown apart, so a planned identity survives decoding unchanged
    /// (see `keep_identity_ids`); `identity_ids` may hold ids of identities created in the
    /// same apply.
    pub struct IdentityBlock {
        pub r#type: Knowable<String>,
        pub identity_ids: Knowable<SetOf<Knowable<String>>>,
        pub principal_id: Knowable<String>,
        pub tenant_id: Knowable<String>,
    }
}

impl Assignment {
    /// A prior state; nothing (the default) for a create's null.
    pub fn decode_prior(value: &Value) -> Result<Assignment, TypedError> {
        if value.is_null() {
            return Ok(Assignment::default());
        }
        Assignment::decode(value)
    }

    /// The identity block, when there is one and it is known.
    pub fn identity_block(&self) -> Option<&IdentityBlock> {
        self.identity.known().and_then(|blocks| blocks.first())
    }
}

impl IdentityBlock {
    /// The known ids of `identity_ids`.
    pub fn ids(&self) -> Vec<String> {
        self.identity_ids
            .known()
            .map(|set| set.0.iter().filter_map(|id| id.known().cloned()).collect())
            .unwrap_or_default()
    }
}

pub(super) fn schema() -> Schema {
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
            .attribute(id_attribute("The assignment's ARM ID: `<scope>/providers/Microsoft.Authorization/policyAssignments/<name>`."))
            .attribute(name_attribute(
                "The assignment's name: at most 64 characters, at most 24 at management-group scope; none of `<>*%&:\\?.+/`.",
                names::POLICY_ASSIGNMENT,
            ))
            .attribute(scope_attribute("Where to assign: `/providers/Microsoft.Management/managementGroups/<mg>`, `/subscriptions/<sub>`, `/subscriptions/<sub>/resourceGroups/<rg>` or a resource ID such as an AKS cluster's. A management group, subscription or resource group that does not exist fails the plan (when the scope is known at plan)."))
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
            .attribute(metadata_attribute("Metadata as a JSON object string (`jsonencode({...})`). Only the keys you set are compared; keys Azure writes itself (`assignedBy`, `createdBy`, `createdOn`, `updatedBy`, `updatedOn`) are ignored unless you set them, and updates keep the values Azure holds."))
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
