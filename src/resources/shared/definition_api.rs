//! What the four definition resources share beyond their bodies (policy definitions,
//! initiatives, Kubernetes definitions and mutations, all named `<scope>/providers/
//! Microsoft.Authorization/<collection>/<name>` at a subscription or management group): the
//! identifying attributes, where a write goes, the PUT, read, delete and import, each bounded
//! by the `timeouts`, and the one [`Resource`] implementation they all have ([`DefinitionLike`]).

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};

use crate::arm::{api_version, Collection, SnapshotRead};
use crate::framework::timeouts::{Deadline, Operation};
use crate::framework::typed::Typed;
use crate::framework::{
    ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, CallContext, CheckRemovalRequest,
    CheckRemovalResponse, DeleteRequest, DeleteResponse, Diagnostic, Diagnostics, ImportRequest,
    ImportResponse, ModifyPlanRequest, ModifyPlanResponse, ReadRequest, ReadResponse, Removal,
    Resource, Schema, Type, ValidateConfigRequest, ValidateConfigResponse, Value,
};
use crate::policy::{PolicyDefinition, PolicySetDefinition};

use super::errors::arm_error_diagnostic;
use super::existence::check_planned_scope;
use super::identity::Identity;
use super::usage::{bullet_list, users_of};
use super::validators::azure_name;
use super::waits::POLICY_TIMEOUTS;
use crate::policy::names;
use crate::resources::definition::{
    plan_default_scope, planned_scope, split_scoped_id, validate_scope,
};
use crate::resources::provider::Configured;

/// A resource that is one object of a [`DefinitionCollection`]. It supplies what differs
/// (schema, checks, plan refinements, the body it writes and how Azure's body maps back onto
/// the state); the [`Resource`] implementation below does the rest the same way for all of
/// them: the default scope, the scope check, read, delete, removal checks and import.
#[async_trait]
pub trait DefinitionLike: Send + Sync + 'static {
    const TYPE_NAME: &'static str;
    const COLLECTION: DefinitionCollection;
    /// The body Azure holds.
    type Body: DefinitionBody;
    /// The typed state.
    type State: Typed + Send;

    fn definition_schema(&self) -> Schema;

    /// As [`Resource::validate_config`].
    fn check_config(&self, _req: ValidateConfigRequest<'_>, _resp: &mut ValidateConfigResponse) {}

    /// Refines the plan once `scope` is planned and checked.
    async fn refine_plan(
        &self,
        _ctx: &CallContext,
        _req: ModifyPlanRequest<'_>,
        _resp: &mut ModifyPlanResponse,
    ) {
    }

    /// The object's name in a planned state.
    fn name(planned: &Self::State) -> Option<&str>;

    /// The body to PUT for a planned state; `None` (with errors in `diags`) when it cannot be
    /// built.
    fn body_of(planned: &Self::State, diags: &mut Diagnostics) -> Option<Self::Body>;

    /// The new state after a PUT: the planned state completed from Azure's answer.
    fn applied_state(planned: Self::State, remote: &Self::Body, scope: &str) -> Self::State;

    /// The new state of a refresh from the prior one and Azure's body at `scope`.
    fn state_from(prior: &Value, remote: &Self::Body, scope: &str) -> Value;

    /// Create and update are the same PUT. Changes of only `local_only` parts and `timeouts`
    /// never get here: the framework answers them.
    async fn put(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        let planned = match Self::State::decode(req.planned) {
            Ok(p) => p,
            Err(e) => return resp.diags.extend(e.into()),
        };
        let Some(body) = Self::body_of(&planned, &mut resp.diags) else {
            return;
        };
        let Some(scope) = Self::COLLECTION.write_scope(ctx, &req, &mut resp.diags) else {
            return;
        };
        let name = Self::name(&planned).unwrap_or_default().to_string();
        match Self::COLLECTION.put(ctx, &scope, &name, &body).await {
            Ok(remote) => {
                resp.state = Some(Self::applied_state(planned, &remote, &scope).to_value());
            }
            Err(d) => resp.diags.extend(d),
        }
    }
}

#[async_trait]
impl<T: DefinitionLike> Resource for T {
    fn type_name(&self) -> &'static str {
        T::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        self.definition_schema()
    }

    fn state_type(&self) -> Option<Type> {
        Some(T::State::ty())
    }

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        self.check_config(req, resp)
    }

    async fn modify_plan(
        &self,
        ctx: &CallContext,
        req: ModifyPlanRequest<'_>,
        resp: &mut ModifyPlanResponse,
    ) {
        plan_default_scope(ctx, req, resp);
        // Only a written scope: the default is the provider's own subscription.
        check_planned_scope(ctx, req, resp).await;
        self.refine_plan(ctx, req, resp).await;
    }

    async fn check_removal(
        &self,
        ctx: &CallContext,
        req: CheckRemovalRequest<'_>,
        resp: &mut CheckRemovalResponse,
    ) {
        T::COLLECTION
            .check_removal(ctx, req.prior, req.removal, &mut resp.diags)
            .await
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        self.put(ctx, req, resp).await
    }

    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse) {
        resp.state = T::COLLECTION
            .read(ctx, req.state, &mut resp.diags, T::state_from)
            .await;
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        self.put(ctx, req, resp).await
    }

    async fn delete(&self, ctx: &CallContext, req: DeleteRequest<'_>, resp: &mut DeleteResponse) {
        T::COLLECTION.delete(ctx, req.prior, &mut resp.diags).await
    }

    async fn import(&self, _ctx: &CallContext, req: ImportRequest<'_>, resp: &mut ImportResponse) {
        resp.state = T::COLLECTION.import(req.id, &mut resp.diags);
    }
}

/// Adds the `id`, `name` and `scope` attributes every definition resource starts with.
/// `owner` is how their descriptions name the object ("definition"); `scope_lead` opens the
/// scope's description.
pub fn identifying_attributes(block: Block, owner: &str, scope_lead: &str) -> Block {
    block
        .attribute(
            Attribute::string("id")
                .computed()
                .use_state_for_unknown()
                .description(format!("The {owner}'s ARM ID.")),
        )
        .attribute(
            Attribute::string("name")
                .required()
                .requires_replace()
                .description(format!("The {owner}'s name (last segment of its ID)."))
                .validate_with(azure_name(names::POLICY_DEFINITION)),
        )
        .attribute(
            Attribute::string("scope")
                .optional()
                .computed()
                .requires_replace()
                .description(format!("{scope_lead}`/subscriptions/<id>` or `/providers/Microsoft.Management/managementGroups/<id>`. Defaults to the provider's subscription."))
                .validate_with(validate_scope),
        )
}

/// A definition body as far as the shared code needs it.
pub trait DefinitionBody: Serialize + DeserializeOwned + Send + Sync {
    fn id(&self) -> Option<&str>;
}

impl DefinitionBody for PolicyDefinition {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

impl DefinitionBody for PolicySetDefinition {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// One collection of definitions.
pub struct DefinitionCollection {
    /// "policy definition", as used in messages.
    pub noun: &'static str,
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

#[cfg(test)]
mod tests {
    use super::*;

    const SETS: DefinitionCollection = DefinitionCollection {
        noun: "initiative",
        segment: "/providers/Microsoft.Authorization/policySetDefinitions/",
        id_description: "policy set definition ID.",
    };

    #[test]
    fn import_takes_scope_and_name_from_the_id() {
        let mut d = Diagnostics::new();
        let id = "/subscriptions/s/providers/Microsoft.Authorization/policySetDefinitions/x";
        let state = SETS.import(id, &mut d).expect("valid id");
        let identity = Identity::of(&state);
        assert_eq!(identity.scope.as_deref(), Some("/subscriptions/s"));
        assert_eq!(identity.name.as_deref(), Some("x"));
        assert!(state.get("timeouts").is_null());
        assert!(SETS.import("/subscriptions/s", &mut d).is_none());
        assert!(d.0[0].detail.contains("is not a policy set definition ID"));
        assert_eq!(
            SETS.path("/subscriptions/s/", "x"),
            id,
            "a trailing slash in the scope is dropped"
        );
    }
}
