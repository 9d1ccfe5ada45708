//! Errors that stop the emulator from starting or running (request-level failures are ARM or
//! AAD error responses, not this type).

use std::path::PathBuf;

use super::store::StoreError;

/// Start-up and shutdown failures.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("token signing key: {0}")]
    SigningKey(String),
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    #[error("built-in definitions: {0}")]
    Builtins(#[from] crate::policy::BuiltinsError),
    #[error("catalogue entry {file}: {source}")]
    Catalogue {
        file: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
