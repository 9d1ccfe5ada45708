//! `arm` layer: an authenticated Azure Resource Manager client.
//!
//! Typical use from a resource:
//! ```ignore
//! let mut settings = ArmSettings { subscription_id: Some(sub), ..Default::default() };
//! settings.fill_from_process_env()?;          // ARM_* fallbacks, block values win
//! let client = ArmClient::new(settings).await?;
//! let def: Option<MyDef> = client.get_optional(&id.to_string(), "2025-03-01").await?;
//! ```
//!
//! - [`ArmSettings`] + [`ENV_BINDINGS`]: provider-block options and their `ARM_*` variables.
//! - [`CloudConfig`]: public / usgovernment / china / custom endpoints or `metadata_host`.
//! - [`TokenCredential`] and implementations; the client picks them in azurerm's order
//!   (certificate → secret → OIDC → MSI → CLI) and caches tokens per process.
//! - [`ArmClient`]: `get`, `get_optional`, `put`, `patch`, `delete`, `post`, `list`, `request`,
//!   with retries on 408/429/5xx honouring `Retry-After`, paging and LRO polling; each request
//!   goes through `pipeline`'s small policies (deadline, retry, throttling, auth, pacing, logging).
//! - [`endpoint`]: credential-bearing endpoints must be https (plain http only to this machine).
//! - [`api_version`]: the api-version the provider sends for each kind of resource.
//! - [`ArmError`]: typed errors with ARM code, request id and hints.
//! - [`ListSnapshots`]: batched reads, one paged list answering many reads of a collection.
//! - [`ResourceId`] / [`Scope`]: id parsing and canonical formatting.
//! - [`retry_while`] + [`is_propagation_error`]: bounded waits for ARM eventual consistency
//!   (404 after create, 403 while RBAC propagates).

pub mod api_version;
pub mod client;
pub mod cloud;
pub mod consistency;
pub mod credential;
pub mod endpoint;
pub mod error;
pub mod lro;
pub mod pacing;
mod pipeline;
pub mod resource_id;
pub mod settings;
pub mod snapshot;

#[cfg(test)]
mod testutil;

pub use client::{ArmClient, ClientOptions, RawResponse, RetryPolicy};
pub use cloud::CloudConfig;
pub use consistency::{is_propagation_error, retry_while, ConsistencyOptions};
pub use credential::{AccessToken, StaticTokenCredential, TokenCredential, TokenFuture};
pub use error::{ApiError, ArmError, AuthError, ErrorDetail};
pub use lro::LroOptions;
pub use reqwest::Method;
pub use resource_id::{ResourceId, ResourceIdError, Scope};
pub use settings::{ArmSettings, EnvBinding, EnvError, AKS_WORKLOAD_IDENTITY_ENV, ENV_BINDINGS};
pub use snapshot::{Collection, ListSnapshots, SnapshotRead};
