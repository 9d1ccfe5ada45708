//! The protocol features the provider does not offer (resource identity, moving state across
//! types, ephemeral resources), each declined with a diagnostic that says what it would need.

use tonic::Response;

use crate::framework::Diagnostic;

use super::convert::diagnostics_to_proto;
use super::{pb, RpcResult};

pub(super) fn upgrade_identity() -> RpcResult<pb::upgrade_resource_identity::Response> {
    Ok(Response::new(pb::upgrade_resource_identity::Response {
        upgraded_identity: None,
        diagnostics: unsupported(
            "resource identity",
            "an identity schema, which none of its resources declare; Terraform 1.12+",
        ),
    }))
}

pub(super) fn move_state() -> RpcResult<pb::move_resource_state::Response> {
    Ok(Response::new(pb::move_resource_state::Response {
        diagnostics: unsupported(
            "moving state into its resources with `moved` blocks across types",
            "the move_resource_state capability, which it does not declare; Terraform 1.8+",
        ),
        ..Default::default()
    }))
}

pub(super) fn validate_ephemeral() -> RpcResult<pb::validate_ephemeral_resource_config::Response> {
    Ok(Response::new(
        pb::validate_ephemeral_resource_config::Response {
            diagnostics: no_ephemeral_resources(),
        },
    ))
}

pub(super) fn open_ephemeral() -> RpcResult<pb::open_ephemeral_resource::Response> {
    Ok(Response::new(pb::open_ephemeral_resource::Response {
        diagnostics: no_ephemeral_resources(),
        ..Default::default()
    }))
}

pub(super) fn renew_ephemeral() -> RpcResult<pb::renew_ephemeral_resource::Response> {
    Ok(Response::new(pb::renew_ephemeral_resource::Response {
        diagnostics: no_ephemeral_resources(),
        ..Default::default()
    }))
}

pub(super) fn close_ephemeral() -> RpcResult<pb::close_ephemeral_resource::Response> {
    Ok(Response::new(pb::close_ephemeral_resource::Response {
        diagnostics: no_ephemeral_resources(),
    }))
}

/// The answer to every ephemeral-resource RPC (the provider declares no ephemeral types).
fn no_ephemeral_resources() -> Vec<pb::Diagnostic> {
    unsupported(
        "ephemeral resources",
        "ephemeral resource types, of which it declares none; Terraform 1.10+",
    )
}

fn unsupported(feature: &str, requires: &str) -> Vec<pb::Diagnostic> {
    diagnostics_to_proto(
        Diagnostic::error(
            format!("Unsupported operation: {feature}"),
            format!(
                "akspolicy does not support {feature} (requires {requires}). Remove the \
                 configuration that uses it."
            ),
        )
        .into(),
    )
}
