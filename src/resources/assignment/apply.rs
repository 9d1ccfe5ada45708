//! Writing, reading and deleting the assignment, together with the role assignments of
//! `grant_remediation_roles`, which live and die with it.

use serde_json::{Map, Value as Json};

use crate::arm::api_version;
use crate::arm::{ArmClient, ArmError};
use crate::framework::timeouts::{Deadline, Operation};
use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    ApplyRequest, ApplyResponse, AttributePath, CallContext, Diagnostic, Diagnostics, Value,
};
use crate::resources::provider::Configured;
use crate::resources::shared::errors::arm_error_diagnostic;
use crate::resources::shared::reconcile::AZURE_MANAGED_METADATA_KEYS;
use crate::resources::shared::waits::POLICY_TIMEOUTS;

use super::plan::{check_config, check_parameters_remote, Phase};
use super::remediation_roles;
use super::schema::{schema, Assignment};
use super::state::{body_from, state_from, PolicyAssignment};
use super::{DEFINITION_PROPAGATION, KIND};

/// `Resource::create`.
pub(super) async fn create(ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResponse {
    write(ctx, &req, Operation::Create).await
}

/// `Resource::update`.
pub(super) async fn update(ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResponse {
    // An update of only `timeouts` never gets here: the framework answers it.
    write(ctx, &req, Operation::Update).await
}

async fn write(ctx: &CallContext, req: &ApplyRequest<'_>, op: Operation) -> ApplyResponse {
    let deadline = Deadline::start(req.planned, op, POLICY_TIMEOUTS);
    let configured = match ctx.provider::<Configured>() {
        Ok(c) => c,
        Err(d) => return ApplyResponse::failed(d),
    };
    let (config, planned, prior) = match (
        Assignment::decode(req.config),
        Assignment::decode(req.planned),
        Assignment::decode_prior(req.prior),
    ) {
        (Ok(c), Ok(p), Ok(r)) => (c, p, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return ApplyResponse::failed(e.into()),
    };
    let client = &configured.client;
    let mut diags = Diagnostics::new();
    check_config(&config, &mut diags);
    match deadline
        .run(check_parameters_remote(client, &config, Phase::Apply))
        .await
    {
        Some(d) => diags.extend(d),
        None => diags.push(deadline.exceeded(
            &format!("Timed out {} the policy assignment", op.doing()),
            "checking the parameters against the definition",
        )),
    }
    if diags.has_errors() {
        return ApplyResponse::failed(diags);
    }
    let mut body = match body_from(&planned) {
        Ok(b) => b,
        Err(d) => return ApplyResponse::failed(d),
    };
    if op == Operation::Update
        && deadline
            .run(keep_hidden_metadata(client, &planned, &mut body))
            .await
            .is_none()
    {
        diags.push(deadline.exceeded(
            &format!("Timed out {} the policy assignment", op.doing()),
            "reading the metadata Azure holds",
        ));
        return ApplyResponse::failed(diags);
    }
    let mut written = KIND
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
    let Some(state_value) = written.state.as_mut() else {
        return written;
    };
    let mut state = match Assignment::decode(state_value) {
        Ok(s) => s,
        Err(e) => {
            written.diags.extend(e.into());
            return written;
        }
    };
    let written_ok = !written.diags.has_errors();
    let failure =
        sync_remediation_roles(client, &deadline, &planned, &prior, written_ok, &mut state).await;
    *state_value = state.to_value();
    written.diags.extend(failure);
    written
}

/// Brings the role assignments of `grant_remediation_roles` in line with the planned value
/// once the assignment is written (`written_ok`); whatever exists afterwards is recorded in
/// `state`, also when granting failed half-way.
async fn sync_remediation_roles(
    client: &ArmClient,
    deadline: &Deadline,
    planned: &Assignment,
    prior: &Assignment,
    written_ok: bool,
    state: &mut Assignment,
) -> Diagnostics {
    let want = planned.grant_remediation_roles == Some(true);
    let prior = prior
        .remediation_role_assignment_ids
        .known()
        .cloned()
        .unwrap_or_default();
    state.grant_remediation_roles = Some(want);
    if !written_ok || (!want && prior.is_empty()) {
        state.remediation_role_assignment_ids = Knowable::Known(prior);
        return Diagnostics::new();
    }
    let (Some(id), Some(scope), Some(definition)) = (
        state.id.known().cloned(),
        state.scope.clone(),
        state.policy_definition_id.clone(),
    ) else {
        return Diagnostics::new();
    };
    let scope = KIND.scope_of_id(&id).map(str::to_string).unwrap_or(scope);
    match remediation_roles::sync(client, deadline, &id, &scope, &definition, want, &prior).await {
        Ok(granted) => {
            state.remediation_role_assignment_ids = Knowable::Known(granted);
            Diagnostics::new()
        }
        Err(failure) => {
            state.remediation_role_assignment_ids = Knowable::Known(failure.granted);
            // State must not claim roles Azure does not hold: the next plan retries.
            state.grant_remediation_roles = Some(!want);
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
            .at(AttributePath::attr("grant_remediation_roles"))
            .into()
        }
    }
}

/// A write replaces the whole metadata object, and state hides the keys Azure or the portal
/// write (`assignedBy`, `createdBy`, ...) unless the configuration sets them; so an update
/// carries over the ones Azure holds now, or the first change after an import would drop them.
async fn keep_hidden_metadata(
    client: &ArmClient,
    planned: &Assignment,
    body: &mut PolicyAssignment,
) {
    let Some(id) = planned.id.as_deref() else {
        return;
    };
    // Without the current object there is nothing to carry over; the PUT reports real errors.
    let Ok(Some(current)) = client
        .get_optional::<PolicyAssignment>(id, api_version::POLICY)
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

/// `Resource::read`.
pub(super) async fn read(
    ctx: &CallContext,
    state: &Value,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let fresh = KIND.read(ctx, state, diags, state_from).await?;
    let (prior, mut new) = match (Assignment::decode(state), Assignment::decode(&fresh)) {
        (Ok(p), Ok(n)) => (p, n),
        (Err(e), _) | (_, Err(e)) => {
            // Still there: keep tracking it.
            diags.extend(e.into());
            return Some(fresh);
        }
    };
    refresh_remediation_roles(ctx, state, &prior, &mut new, diags).await;
    Some(new.to_value())
}

/// Reads which role assignments of `grant_remediation_roles` exist. A missing one (deleted
/// by hand, or a role the definition added since) reads as `grant_remediation_roles = false`
/// so the plan shows the update that grants it again; an import finds roles granted by a
/// previous apply and reads `true` when all are there.
async fn refresh_remediation_roles(
    ctx: &CallContext,
    prior_value: &Value,
    prior: &Assignment,
    new: &mut Assignment,
    diags: &mut Diagnostics,
) {
    let importing = prior.policy_definition_id.is_none();
    let granted = prior.grant_remediation_roles == Some(true);
    if !importing && !granted {
        return;
    }
    let (Some(id), Some(definition)) = (new.id.known().cloned(), new.policy_definition_id.clone())
    else {
        return;
    };
    let Some(scope) = KIND.scope_of_id(&id).map(str::to_string) else {
        return;
    };
    let Some(configured) = Configured::from_context(ctx, diags) else {
        return;
    };
    let deadline = Deadline::start(prior_value, Operation::Read, POLICY_TIMEOUTS);
    let Some(roles) = roles_step(
        &deadline,
        remediation_roles::current(&configured.client, &id, &scope, &definition),
        RolesStep {
            failed: "Reading the remediation roles failed",
            timed_out: "Timed out reading the remediation roles",
            doing: "reading the role assignments of grant_remediation_roles",
        },
        diags,
    )
    .await
    else {
        return;
    };
    let held = prior
        .remediation_role_assignment_ids
        .known()
        .cloned()
        .unwrap_or_default();
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
    new.grant_remediation_roles = Some(complete);
    new.remediation_role_assignment_ids = Knowable::Known(ids);
}

/// `Resource::delete`.
pub(super) async fn delete(ctx: &CallContext, prior: &Value, diags: &mut Diagnostics) {
    let granted = match Assignment::decode(prior) {
        Ok(p) => p
            .remediation_role_assignment_ids
            .known()
            .cloned()
            .unwrap_or_default(),
        Err(e) => return diags.extend(e.into()),
    };
    // Roles first: once the assignment is gone its identity is too, and its role
    // assignments would linger as "Identity not found".
    if !granted.is_empty() {
        let Some(configured) = Configured::from_context(ctx, diags) else {
            return;
        };
        let deadline = Deadline::start(prior, Operation::Delete, POLICY_TIMEOUTS);
        let revoked = roles_step(
            &deadline,
            remediation_roles::revoke(&configured.client, &granted),
            RolesStep {
                failed: "Removing the remediation roles failed",
                timed_out: "Timed out removing the remediation roles",
                doing: "deleting the role assignments of grant_remediation_roles",
            },
            diags,
        )
        .await;
        if revoked.is_none() {
            return;
        }
    }
    KIND.delete(ctx, prior, diags).await
}

/// How the errors of one ARM call on the role assignments of `grant_remediation_roles` read.
struct RolesStep {
    /// The summary when Azure refuses the call.
    failed: &'static str,
    /// The summary when the deadline runs out first.
    timed_out: &'static str,
    /// What was under way when it ran out, for [`Deadline::exceeded`].
    doing: &'static str,
}

/// The result of `call` run within `deadline`; `None`, with the error in `diags`, when Azure
/// refuses it (an error on `grant_remediation_roles`) or the deadline runs out.
async fn roles_step<T>(
    deadline: &Deadline,
    call: impl std::future::Future<Output = Result<T, ArmError>>,
    step: RolesStep,
    diags: &mut Diagnostics,
) -> Option<T> {
    match deadline.run(call).await {
        Some(Ok(found)) => Some(found),
        Some(Err(e)) => {
            diags.push(
                arm_error_diagnostic(step.failed, &e)
                    .at(AttributePath::attr("grant_remediation_roles")),
            );
            None
        }
        None => {
            diags.push(deadline.exceeded(step.timed_out, step.doing));
            None
        }
    }
}

/// `Resource::import`.
pub(super) async fn import(_ctx: &CallContext, id: &str, diags: &mut Diagnostics) -> Option<Value> {
    KIND.import(&schema().block, id, diags)
}
