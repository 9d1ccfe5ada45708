//! The traits provider code implements. A resource file implements [`Resource`] (schema, CRUD
//! and import), a data source file [`DataSource`]; the provider itself implements [`Provider`].
//! Everything Terraform-protocol-shaped (wire encoding, plan consistency rules, dispatch of
//! ApplyResourceChange to create/update/delete) is the framework's job, not theirs.
//!
//! Every method has one shape, as in terraform-plugin-framework: it takes a request and fills
//! in a response that the framework created, and problems go into the response's `diags`. A
//! response starts out saying "nothing": no state, no diagnostics, or (for plans) the plan the
//! framework's generic rules computed.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::diag::{AttributePath, Diagnostics};
use super::private::PrivateState;
use super::schema::Schema;
use super::value::{Type, Value};

/// Whatever the provider's Configure produced (an ARM client, for us). Resources downcast it.
pub type ProviderData = Arc<dyn Any + Send + Sync>;

/// Handed to every call that may talk to the remote API.
#[derive(Clone)]
pub struct CallContext {
    /// `None` in processes Terraform never configured (validate, some state upgrades).
    pub provider_data: Option<ProviderData>,
    /// Cancelled when Terraform sends Stop (the user pressed Ctrl-C).
    pub cancel: CancellationToken,
    /// The object's private state as Terraform holds it (read, update, delete); empty on
    /// create and in calls about no single object. A resource sets what to keep in
    /// [`ApplyResponse::private`].
    pub private: PrivateState,
}

impl CallContext {
    /// The configured provider data of type `T`, or an error diagnostic explaining that the
    /// provider was not configured.
    pub fn provider<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Diagnostics> {
        self.provider_data
            .clone()
            .and_then(|d| d.downcast::<T>().ok())
            .ok_or_else(|| {
                let mut d = Diagnostics::new();
                d.error(
                    "Provider not configured",
                    "This operation needs the akspolicy provider to be configured, but Terraform \
                     did not send a provider configuration. This is a bug in the provider or \
                     Terraform; please report it.",
                );
                d
            })
    }
}

pub struct ConfigureRequest {
    pub terraform_version: String,
    /// May contain unknown values during plan.
    pub config: Value,
}

#[derive(Default)]
pub struct ConfigureResponse {
    /// What resources receive in [`CallContext::provider_data`]; `None` when configuration
    /// failed.
    pub provider_data: Option<ProviderData>,
    pub diags: Diagnostics,
}

/// A configuration to check: the provider block, a resource or a data source. It may contain
/// unknown values, and the schema's attribute validators have already run.
#[derive(Clone, Copy)]
pub struct ValidateConfigRequest<'a> {
    pub config: &'a Value,
}

#[derive(Default)]
pub struct ValidateConfigResponse {
    pub diags: Diagnostics,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's type name (`akspolicy`); every resource type starts with it and `_`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>>;
    /// Provider-defined functions (Terraform 1.8+).
    fn functions(&self) -> Vec<Arc<dyn super::function::Function>> {
        Vec::new()
    }

    /// Cross-attribute checks on the provider block.
    fn validate_config(&self, _req: ValidateConfigRequest<'_>, _resp: &mut ValidateConfigResponse) {
    }

    async fn configure(&self, req: ConfigureRequest, resp: &mut ConfigureResponse);

    /// Terraform's Stop (Ctrl-C): end work that does not watch [`CallContext::cancel`], such as
    /// policy evaluations started from `validate_config`.
    fn stop(&self) {}
}

/// How a plan removes an existing object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Destroyed and created again (`requires_replace`).
    Replace,
    /// Destroyed for good (removed from the configuration, or `terraform destroy`).
    Destroy,
}

#[derive(Clone, Copy)]
pub struct ModifyPlanRequest<'a> {
    /// Null on create.
    pub prior: &'a Value,
    pub config: &'a Value,
}

/// Starts as the plan the framework computed with the generic rules, for a resource to refine.
pub struct ModifyPlanResponse {
    /// Change only computed attributes the configuration left null.
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diags: Diagnostics,
}

/// A plan that removes the existing object `prior`.
#[derive(Clone, Copy)]
pub struct CheckRemovalRequest<'a> {
    pub prior: &'a Value,
    pub removal: Removal,
}

#[derive(Default)]
pub struct CheckRemovalResponse {
    /// Errors fail the plan before anything is destroyed.
    pub diags: Diagnostics,
}

/// Create or update.
#[derive(Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// Null on create.
    pub prior: &'a Value,
    /// Unknown values in here must all be replaced by known ones in the new state.
    pub planned: &'a Value,
    pub config: &'a Value,
}

/// The result of create or update. A `state` together with error diagnostics means the remote
/// object exists but the operation failed part-way: Terraform keeps tracking it (tainted after
/// a create), so nothing created in Azure is ever lost. No `state` after an update keeps the
/// prior one.
#[derive(Default)]
pub struct ApplyResponse {
    pub state: Option<Value>,
    pub diags: Diagnostics,
    /// The private state to keep from now on; `None` keeps what Terraform held.
    pub private: Option<PrivateState>,
}

impl ApplyResponse {
    /// A finished create or update whose new state is `state`.
    pub fn ok(state: Value) -> ApplyResponse {
        ApplyResponse {
            state: Some(state),
            ..ApplyResponse::default()
        }
    }

    /// A create or update that changed nothing remotely.
    pub fn failed(diags: Diagnostics) -> ApplyResponse {
        ApplyResponse {
            diags,
            ..ApplyResponse::default()
        }
    }
}

#[derive(Clone, Copy)]
pub struct ReadRequest<'a> {
    /// The state Terraform holds (never null).
    pub state: &'a Value,
}

#[derive(Default)]
pub struct ReadResponse {
    /// The remote object as it is now; `None` when it no longer exists (or, with an error,
    /// when the read failed: the framework then keeps the prior state).
    pub state: Option<Value>,
    pub diags: Diagnostics,
}

#[derive(Clone, Copy)]
pub struct DeleteRequest<'a> {
    pub prior: &'a Value,
}

#[derive(Default)]
pub struct DeleteResponse {
    /// With an error the object stays in the state, so it is not lost.
    pub diags: Diagnostics,
}

#[derive(Clone, Copy)]
pub struct ImportRequest<'a> {
    /// What the user wrote after `terraform import ADDRESS` (or in an `import` block).
    pub id: &'a str,
}

#[derive(Default)]
pub struct ImportResponse {
    /// The state to start from (identifying attributes set, the rest null); the framework
    /// then reads it.
    pub state: Option<Value>,
    pub diags: Diagnostics,
}

pub struct UpgradeStateRequest {
    /// The schema version the state was written with (older than the current one).
    pub from_version: i64,
    pub raw: serde_json::Value,
}

#[derive(Default)]
pub struct UpgradeStateResponse {
    /// The state as the current schema version's JSON.
    pub state: Option<serde_json::Value>,
    pub diags: Diagnostics,
}

#[async_trait]
pub trait Resource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// The [`Typed`](super::typed::Typed) type the resource's state decodes into, so one test
    /// can hold every resource's Rust type against its schema.
    fn state_type(&self) -> Option<Type> {
        None
    }

    /// Cross-attribute checks; the configuration may contain unknown values.
    fn validate_config(&self, _req: ValidateConfigRequest<'_>, _resp: &mut ValidateConfigResponse) {
    }

    /// Refines the generic plan (e.g. plan-time checks against Azure, extra replacements).
    async fn modify_plan(
        &self,
        _ctx: &CallContext,
        _req: ModifyPlanRequest<'_>,
        _resp: &mut ModifyPlanResponse,
    ) {
    }

    /// Checks a plan that removes the existing object (a replacement, or a destroy: Terraform
    /// >= 1.3 plans those through the provider too), run after `modify_plan`.
    async fn check_removal(
        &self,
        _ctx: &CallContext,
        _req: CheckRemovalRequest<'_>,
        _resp: &mut CheckRemovalResponse,
    ) {
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse);

    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse);

    /// Never called for an update that changes only `timeouts` and `local_only` parts: the
    /// framework answers those itself.
    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse);

    async fn delete(&self, ctx: &CallContext, req: DeleteRequest<'_>, resp: &mut DeleteResponse);

    async fn import(&self, _ctx: &CallContext, _req: ImportRequest<'_>, resp: &mut ImportResponse) {
        resp.diags.error(
            "Import not supported",
            format!("The resource type {} cannot be imported.", self.type_name()),
        );
    }

    /// Rewrites a state stored with an older schema version into the current version's JSON.
    fn upgrade_state(&self, req: UpgradeStateRequest, resp: &mut UpgradeStateResponse) {
        resp.diags.error(
            "Unsupported state version",
            format!(
                "The state of this {} was written with schema version {}, which this provider \
                 version cannot upgrade.",
                self.type_name(),
                req.from_version
            ),
        );
    }
}

#[derive(Clone, Copy)]
pub struct ReadDataRequest<'a> {
    /// Wholly known: Terraform reads a data source only once its configuration is.
    pub config: &'a Value,
}

#[derive(Default)]
pub struct ReadDataResponse {
    /// The complete, wholly known state for this configuration.
    pub state: Option<Value>,
    pub diags: Diagnostics,
}

#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// As [`Resource::state_type`].
    fn state_type(&self) -> Option<Type> {
        None
    }

    fn validate_config(&self, _req: ValidateConfigRequest<'_>, _resp: &mut ValidateConfigResponse) {
    }

    async fn read(&self, ctx: &CallContext, req: ReadDataRequest<'_>, resp: &mut ReadDataResponse);
}
