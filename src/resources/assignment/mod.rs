//! Resource `akspolicy_assignment`: a policy or initiative assigned at any ARM scope —
//! management group, subscription, resource group or a single resource such as an AKS cluster —
//! with parameters written as plain Terraform values and checked against the definition at plan.
//!
//! The folder reads as: [`schema`] (the schema and the typed state), [`state`] (the ARM body
//! and the state read back from it), [`plan`] (checks at plan), [`apply`] (create, read,
//! update, delete, import) and [`remediation_roles`] (the role assignments of
//! `grant_remediation_roles`). The `Resource` implementation below only forwards to them.

mod apply;
mod plan;
mod remediation_roles;
mod schema;
mod state;

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::api_version;
use crate::framework::{
    ApplyRequest, ApplyResponse, CallContext, CheckRemovalRequest, CheckRemovalResponse,
    DeleteRequest, DeleteResponse, ImportRequest, ImportResponse, ModifyPlanRequest,
    ModifyPlanResponse, ReadRequest, ReadResponse, Resource, ValidateConfigRequest,
    ValidateConfigResponse,
};
use crate::resources::shared::schema::typed_schema;
use crate::resources::shared::scoped::{PropagationWait, ScopedKind};
use crate::resources::shared::waits::POLICY_TIMEOUTS;

use schema::Assignment;

/// ARM resource type of a policy assignment.
use crate::policy::definition_body::POLICY_ASSIGNMENT_TYPE;

const KIND: ScopedKind = ScopedKind {
    noun: "policy assignment",
    segment: "/providers/Microsoft.Authorization/policyAssignments/",
    arm_type: POLICY_ASSIGNMENT_TYPE,
    api_version: api_version::POLICY,
    import_hint: ", e.g. /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Authorization/policyAssignments/no-privileged",
    timeouts: POLICY_TIMEOUTS,
    list_takes_top: true,
};

/// A definition created in the same apply can be invisible to the assignment API for a while.
const DEFINITION_PROPAGATION: PropagationWait = PropagationWait {
    not_found_codes: &["PolicyDefinitionNotFound", "PolicySetDefinitionNotFound"],
    bound: Duration::from_secs(180),
    waiting_for: "Azure to see the assigned definition",
};

pub struct AssignmentResource;

#[async_trait]
impl Resource for AssignmentResource {
    typed_schema!("akspolicy_assignment", schema::schema(), Assignment);

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        plan::validate_config(req.config, &mut resp.diags)
    }

    async fn modify_plan(
        &self,
        ctx: &CallContext,
        req: ModifyPlanRequest<'_>,
        resp: &mut ModifyPlanResponse,
    ) {
        plan::modify_plan(ctx, req, resp).await
    }

    async fn check_removal(
        &self,
        ctx: &CallContext,
        req: CheckRemovalRequest<'_>,
        resp: &mut CheckRemovalResponse,
    ) {
        plan::check_removal(ctx, req.prior, req.removal, &mut resp.diags).await
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = apply::create(ctx, req).await;
    }

    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse) {
        resp.state = apply::read(ctx, req.state, &mut resp.diags).await;
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = apply::update(ctx, req).await;
    }

    async fn delete(&self, ctx: &CallContext, req: DeleteRequest<'_>, resp: &mut DeleteResponse) {
        apply::delete(ctx, req.prior, &mut resp.diags).await
    }

    async fn import(&self, ctx: &CallContext, req: ImportRequest<'_>, resp: &mut ImportResponse) {
        resp.state = apply::import(ctx, req.id, &mut resp.diags).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids() {
        assert_eq!(
            KIND.scope_of_id("/providers/Microsoft.Management/managementGroups/mg/providers/microsoft.authorization/policyassignments/a"),
            Some("/providers/Microsoft.Management/managementGroups/mg")
        );
        let mut resp = ImportResponse::default();
        block_on(AssignmentResource.import(
            &CallContext {
                provider_data: None,
                cancel: Default::default(),
                private: Default::default(),
            },
            ImportRequest {
                id: "/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/x",
            },
            &mut resp,
        ));
        assert!(resp.state.is_none() && resp.diags.has_errors());
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}
