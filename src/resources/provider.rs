//! The `akspolicy` provider: its configuration block and the list of resources and data sources.

use std::sync::Arc;

use async_trait::async_trait;

use crate::framework::{
    Block, ConfigureRequest, DataSource, Diagnostics, Provider, ProviderData, Resource, Schema,
};

/// The provider's type name; every resource and data source name starts with `akspolicy_`.
pub const TYPE_NAME: &str = "akspolicy";

pub struct AksPolicyProvider;

/// The provider as the plugin layer serves it.
pub fn provider() -> Arc<dyn Provider> {
    Arc::new(AksPolicyProvider)
}

#[async_trait]
impl Provider for AksPolicyProvider {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(Block::new().description("Governs AKS clusters with Azure Policy."))
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        Vec::new()
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }

    async fn configure(&self, _req: ConfigureRequest) -> Result<ProviderData, Diagnostics> {
        Ok(Arc::new(()))
    }
}
