//! The traits provider code implements. A resource file implements [`Resource`] (schema, CRUD
//! and import), a data source file [`DataSource`]; the provider itself implements [`Provider`].
//! Everything Terraform-protocol-shaped (wire encoding, plan consistency rules, dispatch of
//! ApplyResourceChange to create/update/delete) is the framework's job, not theirs.

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
    /// [`ApplyResult::private`].
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

    /// Cross-attribute checks on the provider block (attribute validators already ran).
    fn validate_config(&self, _config: &Value, _diags: &mut Diagnostics) {}

    async fn configure(&self, req: ConfigureRequest) -> Result<ProviderData, Diagnostics>;

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

/// The plan the framework computed with the generic rules, for a resource to refine.
pub struct PlanChange<'a> {
    /// Null on create.
    pub prior: &'a Value,
    pub config: &'a Value,
    /// Start from this and change only computed attributes the configuration left null.
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diags: Diagnostics,
}

pub struct ApplyRequest<'a> {
    /// Null on create.
    pub prior: &'a Value,
    /// Unknown values in here must all be replaced by known ones in the new state.
    pub planned: &'a Value,
    pub config: &'a Value,
}

/// The result of create or update. A `state` together with error diagnostics means the remote
/// object exists but the operation failed part-way: Terraform keeps tracking it (tainted after
/// a create), so nothing created in Azure is ever lost.
#[derive(Default)]
pub struct ApplyResult {
    pub state: Option<Value>,
    pub diags: Diagnostics,
    /// The private state to keep from now on; `None` keeps what Terraform held.
    pub private: Option<PrivateState>,
}

impl ApplyResult {
    pub fn ok(state: Value) -> ApplyResult {
        ApplyResult {
            state: Some(state),
            ..ApplyResult::default()
        }
    }

    pub fn failed(diags: Diagnostics) -> ApplyResult {
        ApplyResult {
            diags,
            ..ApplyResult::default()
        }
    }
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
    fn validate_config(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// Refines the generic plan (e.g. plan-time checks against Azure, extra replacements).
    async fn modify_plan(&self, _ctx: &CallContext, _change: &mut PlanChange<'_>) {}

    /// Checks a plan that removes the existing object `prior` (a replacement, or a destroy:
    /// Terraform >= 1.3 plans those through the provider too), run after `modify_plan`.
    /// Errors added to `diags` fail the plan before anything is destroyed.
    async fn check_removal(
        &self,
        _ctx: &CallContext,
        _prior: &Value,
        _removal: Removal,
        _diags: &mut Diagnostics,
    ) {
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult;

    /// The remote object as it is now; `None` when it no longer exists.
    async fn read(
        &self,
        ctx: &CallContext,
        state: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value>;

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult;

    async fn delete(&self, ctx: &CallContext, prior: &Value, diags: &mut Diagnostics);

    /// The state to start an import from (identifying attributes set, the rest null); the
    /// framework then reads it.
    async fn import(
        &self,
        _ctx: &CallContext,
        _id: &str,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        diags.error(
            "Import not supported",
            format!("The resource type {} cannot be imported.", self.type_name()),
        );
        None
    }

    /// Rewrites a state stored with an older schema version into the current version's JSON.
    fn upgrade_state(
        &self,
        from_version: i64,
        _raw: serde_json::Value,
    ) -> Result<serde_json::Value, Diagnostics> {
        let mut d = Diagnostics::new();
        d.error(
            "Unsupported state version",
            format!(
                "The state of this {} was written with schema version {from_version}, which this \
                 provider version cannot upgrade.",
                self.type_name()
            ),
        );
        Err(d)
    }
}

#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// As [`Resource::state_type`].
    fn state_type(&self) -> Option<Type> {
        None
    }

    fn validate_config(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// The complete, wholly known state for this configuration.
    async fn read(
        &self,
        ctx: &CallContext,
        config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value>;
}
