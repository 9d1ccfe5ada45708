//! The checks of a plan: what the configuration alone can tell, the parameters against the
//! assigned definition, and a replacement that would leave the scope unguarded.

use crate::arm::{ArmClient, Scope};
use crate::framework::timeouts::{Deadline, Operation};
use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    AttributePath, CallContext, Diagnostics, ModifyPlanRequest, ModifyPlanResponse, Removal, Value,
};
use crate::policy::names;
use crate::resources::provider::Configured;
use crate::resources::shared::decode::decoded;
use crate::resources::shared::existence::{check_planned_scope, missing_definition};
use crate::resources::shared::parameter_values::{check_against, declared_parameters, LookupError};
use crate::resources::shared::reconcile::ignore_case_only_replacements;
use crate::resources::shared::usage::{bullet_list, users_of, DefinitionUser};
use crate::resources::shared::waits::POLICY_TIMEOUTS;

use super::schema::Assignment;

/// Azure's limit for assignment names at management-group scope.
const MG_NAME_MAX: usize = names::MANAGEMENT_GROUP_ASSIGNMENT.max_chars;
const NAME_MAX: usize = names::POLICY_ASSIGNMENT.max_chars;

/// `Resource::validate_config`.
pub(super) fn validate_config(config: &Value, diags: &mut Diagnostics) {
    match Assignment::decode(config) {
        Ok(config) => check_config(&config, diags),
        Err(e) => diags.extend(e.into()),
    }
}

/// Checks that need several attributes; unknown values are skipped (checked again at apply,
/// when Terraform plans once more with everything known).
pub(super) fn check_config(config: &Assignment, diags: &mut Diagnostics) {
    let scope = config.scope.as_deref().and_then(|s| Scope::parse(s).ok());
    if let Some(name) = config.name.as_deref() {
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
    // Unknown identity blocks (dynamic) are checked again at apply, when they are known.
    if config.grant_remediation_roles == Some(true)
        && !config.identity.is_unknown()
        && config.identity_block().is_none()
    {
        diags.error_at(
            AttributePath::attr("grant_remediation_roles"),
            "Remediation roles need an identity",
            "grant_remediation_roles grants roles to the assignment's managed identity; add \
             identity { type = \"SystemAssigned\" } (and location), or set it to false.",
        );
    }
    if let Some(first) = config.identity_block() {
        if config.location.is_null() {
            diags.error_at(
                AttributePath::attr("location"),
                "Missing location",
                "An assignment with a managed identity needs `location` (the region where Azure \
                 creates the identity), e.g. location = \"westeurope\".",
            );
        }
        let ids = &first.identity_ids;
        let count = ids.known().map(|set| set.0.len());
        let here = AttributePath::attr("identity")
            .index(0)
            .attribute("identity_ids");
        match first.r#type.as_deref() {
            Some("UserAssigned") if ids.is_null() || count.is_some_and(|n| n != 1) => diags
                .error_at(
                    here,
                    "One user-assigned identity required",
                    "A UserAssigned identity needs exactly one ID in identity_ids.",
                ),
            Some("SystemAssigned") if count.is_some_and(|n| n > 0) => diags.error_at(
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
pub(super) enum Phase {
    Plan,
    Apply,
}

/// Checks the configured parameters against the definition. Skipped when the definition id or
/// parameters are not known yet (the check then happens at apply); a definition Azure does not
/// have fails the plan or, when the same apply may create it, warns.
pub(super) async fn check_parameters_remote(
    client: &ArmClient,
    config: &Assignment,
    phase: Phase,
) -> Diagnostics {
    let Some(definition_id) = config.policy_definition_id.as_deref() else {
        return Diagnostics::new();
    };
    let params = &config.parameters;
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

/// `Resource::modify_plan`.
pub(super) async fn modify_plan(
    ctx: &CallContext,
    req: ModifyPlanRequest<'_>,
    change: &mut ModifyPlanResponse,
) {
    keep_identity_ids(req, change);
    ignore_case_only_replacements(req, change, &["scope", "name", "policy_definition_id"]);
    check_planned_scope(ctx, req, change).await;
    let Some(config) = decoded::<Assignment>(req.config, &mut change.diags) else {
        return;
    };
    let unchanged = !req.prior.is_null()
        && Assignment::decode(req.prior).is_ok_and(|prior| {
            prior.parameters == config.parameters
                && prior.policy_definition_id == config.policy_definition_id
        });
    if unchanged {
        return;
    }
    // Validation runs without a client too (terraform validate); then Azure checks at apply.
    if let Ok(configured) = ctx.provider::<Configured>() {
        let d = check_parameters_remote(&configured.client, &config, Phase::Plan).await;
        change.diags.extend(d);
    }
}

/// `Resource::check_removal`.
pub(super) async fn check_removal(
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

/// Fails the plan of an assignment that is replaced while the definition it assigns is
/// removed by the same plan and something else still uses that definition: Terraform would
/// destroy the assignment, then fail to delete the definition (Azure refuses while it is in
/// use), and the apply would stop with the scope unguarded. The definition was planned before
/// this assignment (the assignment references it), so the plan ledger knows (see `usage`).
async fn check_replacement_keeps_guardrail(
    ctx: &CallContext,
    prior_value: &Value,
    diags: &mut Diagnostics,
) {
    let Some(prior) = decoded::<Assignment>(prior_value, diags) else {
        return;
    };
    let (Some(id), Some(definition_id)) =
        (prior.id.as_deref(), prior.policy_definition_id.as_deref())
    else {
        return;
    };
    let Ok(configured) = ctx.provider::<Configured>() else {
        return;
    };
    if !configured.plan_ledger.is_removed(definition_id) {
        return;
    }
    let deadline = Deadline::start(prior_value, Operation::Read, POLICY_TIMEOUTS);
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
fn keep_identity_ids(req: ModifyPlanRequest<'_>, change: &mut ModifyPlanResponse) {
    let (Ok(prior), Ok(mut planned)) = (
        Assignment::decode(req.prior),
        Assignment::decode(&change.planned),
    ) else {
        return;
    };
    let Some(prior_identity) = prior.identity_block() else {
        return;
    };
    let Knowable::Known(items) = &mut planned.identity else {
        return;
    };
    let Some(planned_identity) = items.first_mut() else {
        return;
    };
    let same_type = match (
        planned_identity.r#type.as_deref(),
        prior_identity.r#type.as_deref(),
    ) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    if !same_type {
        return;
    }
    let mut kept = false;
    for (planned_id, prior_id) in [
        (
            &mut planned_identity.principal_id,
            &prior_identity.principal_id,
        ),
        (&mut planned_identity.tenant_id, &prior_identity.tenant_id),
    ] {
        if planned_id.is_unknown() {
            *planned_id = prior_id.clone();
            kept = true;
        }
    }
    // Every attribute of the identity block keeps unknown apart, so the block survives
    // decoding unchanged; the rest of the plan is left as Terraform planned it.
    if kept {
        change.planned.set("identity", planned.identity.to_value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::typed::SetOf;
    use crate::resources::assignment::schema::IdentityBlock;
    use crate::resources::shared::testing::assert_first_detail;

    fn cfg(scope: &str, name: &str, identity: bool, location: Knowable<String>) -> Assignment {
        Assignment {
            scope: Some(scope.into()),
            name: Some(name.into()),
            location,
            identity: Knowable::Known(if identity {
                vec![IdentityBlock {
                    r#type: Knowable::Known("SystemAssigned".into()),
                    ..Default::default()
                }]
            } else {
                vec![]
            }),
            ..Default::default()
        }
    }

    fn checked(config: &Assignment) -> Diagnostics {
        let mut d = Diagnostics::new();
        check_config(config, &mut d);
        d
    }

    #[test]
    fn config_checks() {
        let mg = "/providers/Microsoft.Management/managementGroups/platform";
        let mut granting = cfg(mg, "roles", false, Knowable::Null);
        granting.grant_remediation_roles = Some(true);
        let d = checked(&granting);
        assert_eq!(d.0.len(), 1, "{:?}", d.0);
        assert_first_detail(&d, "identity");
        let mut granting = cfg(mg, "roles", true, Knowable::Known("westeurope".into()));
        granting.grant_remediation_roles = Some(true);
        let d = checked(&granting);
        assert!(d.0.is_empty(), "{:?}", d.0);
        let d = checked(&cfg(mg, "a-name-that-is-25-chars-x", false, Knowable::Null));
        assert_eq!(d.0.len(), 1);
        assert_first_detail(&d, "at most 24");
        let d = checked(&cfg(
            "/subscriptions/s",
            "a-name-that-is-25-chars-x",
            false,
            Knowable::Null,
        ));
        assert!(d.is_empty());
        let d = checked(&cfg("/subscriptions/s", "n", true, Knowable::Null));
        assert_eq!(d.0[0].attribute, Some(AttributePath::attr("location")));
        let d = checked(&cfg("/subscriptions/s", "n", true, Knowable::Unknown));
        assert!(d.is_empty(), "unknown location is checked at apply");
    }

    #[test]
    fn user_assigned_identity_needs_exactly_one_id_unless_unknown() {
        let with_ids = |kind: &str, ids: Knowable<SetOf<Knowable<String>>>| {
            let mut c = cfg("/subscriptions/s", "n", true, Knowable::Known("x".into()));
            c.identity = Knowable::Known(vec![IdentityBlock {
                r#type: Knowable::Known(kind.into()),
                identity_ids: ids,
                ..Default::default()
            }]);
            checked(&c)
        };
        let one = SetOf(vec![Knowable::Known("/id".to_string())]);
        assert!(with_ids("UserAssigned", Knowable::Known(one.clone())).is_empty());
        assert!(with_ids("UserAssigned", Knowable::Unknown).is_empty());
        // An id of an identity created in the same apply is unknown, but counts.
        let pending = SetOf(vec![Knowable::Unknown]);
        assert!(with_ids("UserAssigned", Knowable::Known(pending)).is_empty());
        assert!(with_ids("UserAssigned", Knowable::Null).has_errors());
        assert!(with_ids("UserAssigned", Knowable::Known(SetOf(vec![]))).has_errors());
        assert!(with_ids("SystemAssigned", Knowable::Known(one)).has_errors());
    }

    #[test]
    fn identity_ids_stay_planned_while_the_type_stays() {
        let identity = |kind: &str, principal: Knowable<String>| {
            Knowable::Known(vec![IdentityBlock {
                r#type: Knowable::Known(kind.into()),
                identity_ids: Knowable::Null,
                principal_id: principal.clone(),
                tenant_id: principal,
            }])
        };
        let prior = Assignment {
            identity: identity("SystemAssigned", Knowable::Known("p".into())),
            ..Default::default()
        }
        .to_value();
        let mut planned = Assignment {
            identity: identity("systemassigned", Knowable::Unknown),
            ..Default::default()
        }
        .to_value();
        // An unknown the typed state would read as null stays as planned.
        planned.set("display_name", Value::Unknown);
        let req = ModifyPlanRequest {
            prior: &prior,
            config: &Value::Null,
        };
        let mut change = ModifyPlanResponse {
            planned: planned.clone(),
            requires_replace: vec![],
            diags: Diagnostics::new(),
        };
        keep_identity_ids(req, &mut change);
        let mut expected = Assignment::decode(&planned).unwrap();
        expected.identity = identity("systemassigned", Knowable::Known("p".into()));
        let mut expected = expected.to_value();
        expected.set("display_name", Value::Unknown);
        assert_eq!(change.planned, expected);

        // A new identity type gets new ids.
        let mut replaced = Assignment {
            identity: identity("UserAssigned", Knowable::Unknown),
            ..Default::default()
        }
        .to_value();
        replaced.set("display_name", Value::Unknown);
        change.planned = replaced.clone();
        keep_identity_ids(req, &mut change);
        assert_eq!(change.planned, replaced);
    }
}
