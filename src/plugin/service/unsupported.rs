//! The protocol features the provider does not offer (resource identity, moving state across
//! types, ephemeral resources), each declined with a diagnostic that says what it would need.

use crate::framework::Diagnostic;

use super::convert::diagnostics_to_proto;
use super::pb;

pub(super) fn upgrade_identity() -> pb::upgrade_resource_identity::Response {
    pb::upgrade_resource_identity::Response {
        upgraded_identity: None,
        diagnostics: unsupported(
            "resource identity",
            "an identity schema, which none of its resources declare; Terraform 1.12+",
        ),
    }
}

pub(super) fn move_state() -> pb::move_resource_state::Response {
    pb::move_resource_state::Response {
        diagnostics: unsupported(
            "moving state into its resources with `moved` blocks across types",
            "the move_resource_state capability, which it does not declare; Terraform 1.8+",
        ),
        ..Default::default()
    }
}

pub(super) fn validate_ephemeral() -> pb::validate_ephemeral_resource_config::Response {
    pb::validate_ephemeral_resource_config::Response {
        diagnostics: no_ephemeral_resources(),
    }
}

pub(super) fn open_ephemeral() -> pb::open_ephemeral_resource::Response {
    pb::open_ephemeral_resource::Response {
        diagnostics: no_ephemeral_resources(),
        ..Default::default()
    }
}

pub(super) fn renew_ephemeral() -> pb::renew_ephemeral_resource::Response {
    pb::renew_ephemeral_resource::Response {
        diagnostics: no_ephemeral_resources(),
        ..Default::default()
    }
}

pub(super) fn close_ephemeral() -> pb::close_ephemeral_resource::Response {
    pb::close_ephemeral_resource::Response {
        diagnostics: no_ephemeral_resources(),
    }
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
