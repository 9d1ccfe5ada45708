//! Provider code: the provider configuration and one file per resource / data source.

pub mod provider;

pub use provider::provider;
