//! Where the objects of one kind of definition live (policy definitions or initiatives, at
//! `<scope>/providers/Microsoft.Authorization/<collection>/<name>`) and how one is written,
//! read, deleted, guarded against removal and imported, each bounded by the `timeouts`.

use crate::arm::{api_version, Collection, SnapshotRead};
use crate::framework::timeouts::{Deadline, Operation};
use crate::framework::{
    ApplyRequest, AttributePath, CallContext, Diagnostic, Diagnostics, Removal, Value,
};

use super::definition_api::DefinitionBody;
use super::errors::arm_error_diagnostic;
use super::identity::Identity;
use super::usage::{bullet_list, users_of};
use super::waits::POLICY_TIMEOUTS;
use crate::resources::definition::{planned_scope, split_scoped_id, DEFINITIONS_SEGMENT};
use crate::resources::provider::Configured;

/// Policy definitions, of any mode.
pub const POLICY_DEFINITIONS: DefinitionCollection = DefinitionCollection {
    noun: "policy definition",
    short_noun: "definition",
    segment: DEFINITIONS_SEGMENT,
    id_description: "policy definition ID such as /subscriptions/<id>/providers/Microsoft.Authorization/policyDefinitions/<name> or /providers/Microsoft.Management/managementGroups/<id>/providers/Microsoft.Authorization/policyDefinitions/<name>.",
};

/// Policy set definitions (initiatives).
pub const POLICY_SET_DEFINITIONS: DefinitionCollection = DefinitionCollection {
    noun: "initiative",
    short_noun: "initiative",
    segment: "/providers/Microsoft.Authorization/policySetDefinitions/",
    id_description: "policy set definition ID such as /subscriptions/<id>/providers/Microsoft.Authorization/policySetDefinitions/<name>.",
};

/// One collection of definitions.
pub struct DefinitionCollection {
    /// "policy definition", as used in messages.
    pub noun: &'static str,
    /// "definition": how messages name one when the kind is clear.
    pub short_noun: &'static str,
    /// `/providers/Microsoft.Authorization/policyDefinitions/`
    pub segment: &'static str,
    /// Ends the import error "<id> is not a ...": what an ID looks like.
    pub id_description: &'static str,
}

impl DefinitionCollection {
    pub fn path(&self, scope: &str, name: &str) -> String {
        format!("{}{}{name}", scope.trim_end_matches('/'), self.segment)
    }

    /// ARM's list of the custom objects visible at `scope`, for batched reads.
    fn custom_collection(&self, scope: &str) -> Collection {
        Collection {
            path: format!(
                "{}{}",
                scope.trim_end_matches('/'),
                self.segment.trim_end_matches('/')
            ),
            api_version: api_version::POLICY,
            filter: Some("policyType eq 'Custom'".to_string()),
            paged_by_top: true,
        }
    }

    /// The scope a write goes to: the planned one, else the provider's subscription.
    pub fn write_scope(
        &self,
        ctx: &CallContext,
        req: &ApplyRequest<'_>,
        diags: &mut Diagnostics,
    ) -> Option<String> {
        let scope = Identity::of(req.planned)
            .scope
            .known()
            .cloned()
            .or_else(|| planned_scope(ctx, req.config));
        if scope.is_none() {
            diags.error_at(
                AttributePath::attr("scope"),
                "No scope",
                "Set `scope`, or configure the provider's `subscription_id`.",
            );
        }
        scope
    }

    /// PUTs `body` and returns Azure's answer. The PUT is never abandoned half-way, whatever
    /// the timeout: its outcome decides what the state holds.
    pub async fn put<T: DefinitionBody>(
        &self,
        ctx: &CallContext,
        scope: &str,
        name: &str,
        body: &T,
    ) -> Result<T, Diagnostics> {
        let configured = ctx.provider::<Configured>()?;
        let path = self.path(scope, name);
        configured.snapshots.note_write(&path);
        configured
            .client
            .put::<_, T>(&path, api_version::POLICY, body)
            .await
            .map_err(|e| {
                arm_error_diagnostic(&format!("Writing the {} failed", self.noun), &e).into()
            })
    }

    /// Reads the definition a state tracks; `None` once it is gone. The prior spelling of
    /// `scope` and `id` is kept when Azure's means the same.
    pub async fn read<T: DefinitionBody>(
        &self,
        ctx: &CallContext,
        state: &Value,
        diags: &mut Diagnostics,
        state_from: impl Fn(&Value, &T, &str) -> Value + Send,
    ) -> Option<Value> {
        let configured = Configured::from_context(ctx, diags)?;
        let tracked = Identity::of(state);
        let (scope, name) = tracked
            .id
            .as_deref()
            .and_then(|id| split_scoped_id(id, self.segment))
            .unwrap_or_else(|| {
                (
                    tracked.scope.as_deref().unwrap_or_default().to_string(),
                    tracked.name.as_deref().unwrap_or_default().to_string(),
                )
            });
        let deadline = Deadline::start(state, Operation::Read, POLICY_TIMEOUTS);
        let path = self.path(&scope, &name);
        let read = deadline
            .run(async {
                let listed = configured
                    .snapshots
                    .read::<T>(&configured.client, &self.custom_collection(&scope), &path)
                    .await;
                if let SnapshotRead::Found(found) = listed {
                    return Ok(Some(found));
                }
                configured
                    .client
                    .get_optional::<T>(&path, api_version::POLICY)
                    .await
            })
            .await;
        match read {
            Some(Ok(Some(d))) => {
                let scope = tracked
                    .scope
                    .as_deref()
                    .filter(|s| s.eq_ignore_ascii_case(&scope))
                    .map(str::to_string)
                    .unwrap_or(scope);
                let mut new = state_from(state, &d, &scope);
                if let (Some(prior_id), Some(id)) = (tracked.id.as_deref(), d.id()) {
                    if id.eq_ignore_ascii_case(prior_id) {
                        new.set("id", Value::string(prior_id));
                    }
                }
                Some(new)
            }
            Some(Ok(None)) => None,
            Some(Err(e)) => {
                diags.push(arm_error_diagnostic(
                    &format!("Reading the {} failed", self.noun),
                    &e,
                ));
                Some(state.clone())
            }
            None => {
                diags.push(deadline.exceeded(
                    &format!("Timed out reading the {}", self.noun),
                    &format!("reading {}/{name}", scope.trim_end_matches('/')),
                ));
                Some(state.clone())
            }
        }
    }

    pub async fn delete(&self, ctx: &CallContext, prior: &Value, diags: &mut Diagnostics) {
        let Some(configured) = Configured::from_context(ctx, diags) else {
            return;
        };
        let tracked = Identity::of(prior);
        let path = self.path(
            tracked.scope.as_deref().unwrap_or_default(),
            tracked.name.as_deref().unwrap_or_default(),
        );
        let deadline = Deadline::start(prior, Operation::Delete, POLICY_TIMEOUTS);
        // Abandoning a DELETE is safe: the definition stays in state and destroy retries.
        match deadline
            .run(configured.client.delete(&path, api_version::POLICY))
            .await
        {
            Some(Ok(())) => {}
            Some(Err(e)) => diags.push(arm_error_diagnostic(
                &format!("Deleting the {} failed", self.noun),
                &e,
            )),
            None => diags.push(deadline.exceeded(
                &format!("Timed out deleting the {}", self.noun),
                &format!("waiting for Azure to delete {path}"),
            )),
        }
    }

    /// A plan removes this definition (`prior`): it is noted in the plan ledger, so that the
    /// plans of assignments replaced with it can check that the apply will not stop half-way,
    /// and every user Azure would refuse the delete for is named in a warning (this plan may
    /// still move or remove them first; see `usage`).
    pub async fn check_removal(
        &self,
        ctx: &CallContext,
        prior: &Value,
        removal: Removal,
        diags: &mut Diagnostics,
    ) {
        let tracked = Identity::of(prior);
        let Some(id) = tracked.id.as_deref() else {
            return;
        };
        let Ok(configured) = ctx.provider::<Configured>() else {
            return;
        };
        configured.plan_ledger.note_removed(id);
        let verb = match removal {
            Removal::Replace => "Replacing",
            Removal::Destroy => "Destroying",
        };
        let deadline = Deadline::start(prior, Operation::Read, POLICY_TIMEOUTS);
        match deadline.run(users_of(&configured.client, id)).await {
            Some(Ok(users)) if users.is_empty() => {}
            Some(Ok(users)) => diags.push(Diagnostic::warning(
                format!("The {} is still in use", self.noun),
                format!(
                    "{verb} {id} deletes it, and Azure refuses to delete a {noun} that an \
                     assignment assigns or an initiative contains. It is used by:\n{list}\n\n\
                     Unless this plan removes or moves each of them before the {noun} is deleted, \
                     the apply stops with an error when it deletes it. To change a {noun} that \
                     others use, add the changed one as a new resource with a new name, move the \
                     assignments to it, and remove this one once nothing uses it.",
                    noun = self.noun,
                    list = bullet_list(&users),
                ),
            )),
            Some(Err(e)) => diags.push(Diagnostic::warning(
                format!("Could not check who uses the {}", self.noun),
                format!(
                    "{verb} {id} deletes it, and Azure refuses that while an assignment or \
                     initiative uses it; listing them failed: {e}"
                ),
            )),
            None => diags.push(Diagnostic::warning(
                format!("Could not check who uses the {}", self.noun),
                format!("Listing the assignments of {id} did not finish within the read timeout."),
            )),
        }
    }

    /// The state import starts from: id, name and scope; the rest (and a null `timeouts`) is
    /// read.
    pub fn import(&self, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        let Some((scope, name)) = split_scoped_id(id, self.segment) else {
            diags.push(Diagnostic::error(
                "Invalid import ID",
                format!("{id:?} is not a {}", self.id_description),
            ));
            return None;
        };
        Some(Value::object([
            ("id", Value::string(id)),
            ("name", Value::string(name)),
            ("scope", Value::string(scope)),
        ]))
    }
}
