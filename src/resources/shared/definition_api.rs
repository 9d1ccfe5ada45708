//! What the four definition resources share beyond their bodies (policy definitions,
//! initiatives, Kubernetes definitions and mutations, all named `<scope>/providers/
//! Microsoft.Authorization/<collection>/<name>` at a subscription or management group): the
//! identifying attributes, the head of their typed state, the bodies as the shared code reads
//! them, and the one [`Resource`] implementation they all have ([`DefinitionLike`]). Where a
//! write goes and the PUT, read, delete and import themselves are
//! [`super::definition_collection`]'s.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};

use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    ApplyRequest, ApplyResponse, Attribute, Block, CallContext, CheckRemovalRequest,
    CheckRemovalResponse, DeleteRequest, DeleteResponse, Diagnostics, ImportRequest,
    ImportResponse, ModifyPlanRequest, ModifyPlanResponse, ReadRequest, ReadResponse, Resource,
    Schema, ValidateConfigRequest, ValidateConfigResponse, Value,
};
use crate::policy::definition_body::ArmEnvelope;
use crate::policy::{
    ParameterDefinition, PolicyDefinition, PolicyDefinitionProperties, PolicySetDefinition,
    PolicySetDefinitionProperties,
};
use serde_json::Value as Json;

use super::decode::decoded;
use super::definition_collection::{
    DefinitionCollection, POLICY_DEFINITIONS, POLICY_SET_DEFINITIONS,
};
use super::existence::check_planned_scope;
use super::schema::typed_schema;
use super::schema::{id_attribute, name_attribute};
use crate::policy::names;
use crate::resources::definition::{
    plan_default_scope, user_metadata, validate_scope, validate_version,
};

/// A resource that is one object of a [`DefinitionCollection`]. It supplies what differs
/// (schema, checks, plan refinements, the body it writes and how Azure's body maps back onto
/// the state); the [`Resource`] implementation below does the rest the same way for all of
/// them: the default scope, the scope check, read, delete, removal checks and import.
#[async_trait]
pub trait DefinitionLike: Send + Sync + 'static {
    const TYPE_NAME: &'static str;
    /// The body Azure holds, and with it the collection the object is in.
    type Body: DefinitionBody;
    /// The typed state, declared with [`definition_state!`].
    type State: DefinitionState;

    fn definition_schema() -> Schema;

    /// Attributes validation waits for: until each is wholly known (it may come from another
    /// resource), the configuration is checked only at apply.
    const CHECKED_INPUTS: &'static [&'static str] = &[];

    /// Checks a configuration whose [`CHECKED_INPUTS`](Self::CHECKED_INPUTS) are known, as
    /// [`Resource::validate_config`].
    fn check_config(_config: &Self::State, _diags: &mut Diagnostics) {}

    /// Refines the plan once `scope` is planned and checked.
    async fn refine_plan(
        &self,
        _ctx: &CallContext,
        _req: ModifyPlanRequest<'_>,
        _resp: &mut ModifyPlanResponse,
    ) {
    }

    /// The properties to PUT for a planned state; `None` (with errors in `diags`) when they
    /// cannot be built.
    fn properties_of(
        planned: &Self::State,
        diags: &mut Diagnostics,
    ) -> Option<<Self::Body as DefinitionBody>::Properties>;

    /// Metadata keys the resource writes itself when the user leaves them out (see
    /// [`user_metadata`]).
    fn implied_metadata(_remote: &Self::Body) -> Vec<(&'static str, Json)> {
        Vec::new()
    }

    /// The resource's own attributes from Azure's body: `state` is `prior` with the attributes
    /// every definition shares already taken from Azure ([`reconciled_head`]).
    fn reconcile(prior: &Self::State, state: Self::State, remote: &Self::Body) -> Self::State;

    /// The state from Azure's body at `scope`, reconciled with `prior` (a previous state, the
    /// planned state after apply, or an import stub).
    fn state_of(prior: &Self::State, remote: &Self::Body, scope: &str) -> Self::State {
        let state = reconciled_head(prior, remote, scope, &Self::implied_metadata(remote));
        Self::reconcile(prior, state, remote)
    }

    /// The new state of a refresh (or import) from the prior one and Azure's body at `scope`.
    fn state_from(prior: &Value, remote: &Self::Body, scope: &str) -> Value {
        // Anything but an object (never sent for a managed resource) starts from nothing; the
        // schema test rules out every other mismatch.
        let prior = Self::State::decode(prior).unwrap_or_default();
        Self::state_of(&prior, remote, scope).to_value()
    }

    /// Attributes that keep their planned value in the state after a PUT: what the user wrote
    /// is what was applied, and Azure's echo of them may differ in form only.
    const AS_WRITTEN: &'static [&'static str] = &[];

    /// The new state after a PUT: the planned state completed from Azure's answer.
    fn applied_state(planned: Self::State, remote: &Self::Body, scope: &str) -> Value {
        let mut state = Self::state_of(&planned, remote, scope).to_value();
        let planned = planned.to_value();
        for attribute in Self::AS_WRITTEN {
            state.set(attribute, planned.get(attribute).clone());
        }
        state
    }

    /// Create and update are the same PUT. Changes of only `local_only` parts and `timeouts`
    /// never get here: the framework answers them.
    async fn put(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        let Some(planned) = decoded::<Self::State>(req.planned, &mut resp.diags) else {
            return;
        };
        let Some(properties) = Self::properties_of(&planned, &mut resp.diags) else {
            return;
        };
        let body = Self::Body::with_properties(properties);
        let Some(scope) = Self::Body::COLLECTION.write_scope(ctx, &req, &mut resp.diags) else {
            return;
        };
        let name = planned.name().unwrap_or_default().to_string();
        match Self::Body::COLLECTION.put(ctx, &scope, &name, &body).await {
            Ok(remote) => {
                resp.state = Some(Self::applied_state(planned, &remote, &scope));
            }
            Err(d) => resp.diags.extend(d),
        }
    }
}

#[async_trait]
impl<T: DefinitionLike> Resource for T {
    typed_schema!(T::TYPE_NAME, T::definition_schema(), T::State);

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        let diags = &mut resp.diags;
        if let Some(config) = known_config::<T::State>(req.config, T::CHECKED_INPUTS, diags) {
            T::check_config(&config, diags);
        }
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
        T::Body::COLLECTION
            .check_removal(ctx, req.prior, req.removal, &mut resp.diags)
            .await
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        self.put(ctx, req, resp).await
    }

    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse) {
        resp.state = T::Body::COLLECTION
            .read(ctx, req.state, &mut resp.diags, T::state_from)
            .await;
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        self.put(ctx, req, resp).await
    }

    async fn delete(&self, ctx: &CallContext, req: DeleteRequest<'_>, resp: &mut DeleteResponse) {
        T::Body::COLLECTION
            .delete(ctx, req.prior, &mut resp.diags)
            .await
    }

    async fn import(&self, _ctx: &CallContext, req: ImportRequest<'_>, resp: &mut ImportResponse) {
        resp.state = T::Body::COLLECTION.import(req.id, &mut resp.diags);
    }
}

/// Adds the `id`, `name` and `scope` attributes every definition resource starts with.
/// `owner` is how their descriptions name the object ("definition"); `scope_lead` opens the
/// scope's description.
pub fn identifying_attributes(block: Block, owner: &str, scope_lead: &str) -> Block {
    block
        .attribute(id_attribute(format!("The {owner}'s ARM ID.")))
        .attribute(name_attribute(
            format!("The {owner}'s name (last segment of its ID)."),
            names::POLICY_DEFINITION,
        ))
        .attribute(
            Attribute::string("scope")
                .optional()
                .computed()
                .requires_replace()
                .description(format!("{scope_lead}`/subscriptions/<id>` or `/providers/Microsoft.Management/managementGroups/<id>`. Defaults to the provider's subscription."))
                .validate_with(validate_scope),
        )
}

/// Adds the `display_name`, `description` and `version` attributes every definition resource
/// has; `version` is described by `version_description`.
pub fn descriptive_attributes(block: Block, version_description: &str) -> Block {
    block
        .attribute(
            Attribute::string("display_name")
                .optional()
                .description("The display name."),
        )
        .attribute(
            Attribute::string("description")
                .optional()
                .description("The description."),
        )
        .attribute(
            Attribute::string("version")
                .optional()
                .computed()
                .description(version_description)
                .validate_with(validate_version),
        )
}

/// Declares a definition resource's typed state (see [`typed_object!`](crate::typed_object)):
/// the attributes of [`identifying_attributes`] and [`descriptive_attributes`] and `metadata`,
/// which every definition resource has, followed by the resource's own; and its
/// [`DefinitionState`].
macro_rules! definition_state {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $crate::typed_object! {
            $(#[$meta])*
            pub struct $name {
                pub id: $crate::framework::typed::Knowable<String>,
                pub name: Option<String>,
                pub scope: $crate::framework::typed::Knowable<String>,
                pub display_name: Option<String>,
                pub description: Option<String>,
                pub version: $crate::framework::typed::Knowable<String>,
                pub metadata: Option<String>,
                $( $(#[$fmeta])* pub $field: $ty, )*
            }
        }

        impl $crate::resources::shared::definition_api::DefinitionState for $name {
            fn head(&mut self) -> $crate::resources::shared::definition_api::DefinitionHead<'_> {
                $crate::resources::shared::definition_api::DefinitionHead {
                    id: &mut self.id,
                    name: &mut self.name,
                    scope: &mut self.scope,
                    display_name: &mut self.display_name,
                    description: &mut self.description,
                    version: &mut self.version,
                    metadata: &mut self.metadata,
                }
            }

            fn name(&self) -> Option<&str> {
                self.name.as_deref()
            }

            fn metadata(&self) -> Option<&str> {
                self.metadata.as_deref()
            }
        }
    };
}
pub(crate) use definition_state;

/// The items of a [`DefinitionLike`] implementation that say what it is: its Terraform type
/// name, the body Azure holds, its typed state and its schema. Every implementation has them
/// in the same form, so each names only the four:
/// `definition_kind!("akspolicy_x", PolicyDefinition, X, schema());` inside the `impl` block.
macro_rules! definition_kind {
    ($type_name:expr, $body:ty, $state:ty, $schema:expr) => {
        const TYPE_NAME: &'static str = $type_name;
        type Body = $body;
        type State = $state;

        fn definition_schema() -> $crate::framework::Schema {
            $schema
        }
    };
}
pub(crate) use definition_kind;

/// The attributes every definition resource's state starts with, to be filled from Azure.
pub struct DefinitionHead<'a> {
    pub id: &'a mut Knowable<String>,
    pub name: &'a mut Option<String>,
    pub scope: &'a mut Knowable<String>,
    pub display_name: &'a mut Option<String>,
    pub description: &'a mut Option<String>,
    pub version: &'a mut Knowable<String>,
    pub metadata: &'a mut Option<String>,
}

/// A definition resource's typed state, declared with [`definition_state!`].
pub trait DefinitionState: Typed + Default + Clone + Send {
    fn head(&mut self) -> DefinitionHead<'_>;
    fn name(&self) -> Option<&str>;
    fn metadata(&self) -> Option<&str>;
}

/// `prior` with the attributes every definition resource shares taken from Azure's `remote` at
/// `scope`. `implied_metadata` are the metadata keys the resource writes itself when the user
/// leaves them out (see [`user_metadata`]).
pub fn reconciled_head<S: DefinitionState, B: DefinitionBody>(
    prior: &S,
    remote: &B,
    scope: &str,
    implied_metadata: &[(&str, Json)],
) -> S {
    let p = remote.properties();
    let mut state = prior.clone();
    let head = state.head();
    *head.id = remote.id().map(str::to_string).into();
    if let Some(name) = remote.name() {
        *head.name = Some(name.to_string());
    }
    *head.scope = Knowable::Known(scope.to_string());
    *head.display_name = p.display_name().map(str::to_string);
    *head.description = p.description().map(str::to_string);
    *head.version = p.version().map(str::to_string).into();
    *head.metadata = user_metadata(p.metadata(), prior.metadata(), implied_metadata);
    state
}

/// What every definition body's `properties` hold, as far as the shared code reads them.
pub trait DefinitionProperties {
    fn display_name(&self) -> Option<&str>;
    fn description(&self) -> Option<&str>;
    fn version(&self) -> Option<&str>;
    /// Every version Azure offers (built-ins), newest first.
    fn versions(&self) -> &[String];
    fn policy_type(&self) -> Option<&str>;
    fn metadata(&self) -> Option<&Json>;
    fn parameters(&self) -> Option<&BTreeMap<String, ParameterDefinition>>;
}

/// A definition body (a policy definition or a policy set definition) as far as the shared
/// code needs it.
pub trait DefinitionBody: Serialize + DeserializeOwned + Send + Sync {
    type Properties: DefinitionProperties;
    /// Where Azure keeps bodies of this kind.
    const COLLECTION: DefinitionCollection;

    fn id(&self) -> Option<&str>;
    fn name(&self) -> Option<&str>;
    /// `metadata.category`.
    fn category(&self) -> Option<&str>;
    fn properties(&self) -> &Self::Properties;
    /// A body to PUT.
    fn with_properties(properties: Self::Properties) -> Self;
}

/// Both bodies are an [`ArmEnvelope`] around properties that have these fields under the same
/// names.
macro_rules! definition_bodies {
    ($($body:ty => $properties:ty, $collection:expr);+ $(;)?) => {$(
        impl DefinitionProperties for $properties {
            fn display_name(&self) -> Option<&str> {
                self.display_name.as_deref()
            }
            fn description(&self) -> Option<&str> {
                self.description.as_deref()
            }
            fn version(&self) -> Option<&str> {
                self.version.as_deref()
            }
            fn versions(&self) -> &[String] {
                self.versions.as_deref().unwrap_or_default()
            }
            fn policy_type(&self) -> Option<&str> {
                self.policy_type.as_deref()
            }
            fn metadata(&self) -> Option<&Json> {
                self.metadata.as_ref()
            }
            fn parameters(&self) -> Option<&BTreeMap<String, ParameterDefinition>> {
                self.parameters.as_ref()
            }
        }

        impl DefinitionBody for $body {
            type Properties = $properties;
            const COLLECTION: DefinitionCollection = $collection;

            fn id(&self) -> Option<&str> {
                self.id.as_deref()
            }
            fn name(&self) -> Option<&str> {
                self.name.as_deref()
            }
            fn category(&self) -> Option<&str> {
                <$body>::category(self)
            }
            fn properties(&self) -> &$properties {
                &self.properties
            }
            fn with_properties(properties: $properties) -> Self {
                ArmEnvelope {
                    properties,
                    ..Default::default()
                }
            }
        }
    )+};
}
definition_bodies!(
    PolicyDefinition => PolicyDefinitionProperties, POLICY_DEFINITIONS;
    PolicySetDefinition => PolicySetDefinitionProperties, POLICY_SET_DEFINITIONS;
);

/// The configuration decoded for validation once each of `inputs` is wholly known; `None`
/// otherwise (unknown values come from other resources and are checked again at apply) or
/// when it does not decode (reported in `diags`).
fn known_config<S: Typed>(config: &Value, inputs: &[&str], diags: &mut Diagnostics) -> Option<S> {
    if inputs.iter().any(|a| !config.get(a).is_wholly_known()) {
        return None;
    }
    decoded(config, diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::shared::identity::Identity;
    use crate::resources::shared::testing::assert_first_detail;

    const SETS: DefinitionCollection = POLICY_SET_DEFINITIONS;

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
        assert_first_detail(&d, "is not a policy set definition ID");
        assert_eq!(
            SETS.path("/subscriptions/s/", "x"),
            id,
            "a trailing slash in the scope is dropped"
        );
    }
}
