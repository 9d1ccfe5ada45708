//! The akspolicy Terraform provider binary. Terraform launches it; run with `--debug` to serve
//! in reattach mode for debugging.

use std::process::ExitCode;

fn main() -> ExitCode {
    akspolicy::plugin::run_main(placeholder::provider)
}

/// Stand-in until `resources` provides the real provider.
mod placeholder {
    use std::sync::Arc;

    use akspolicy::framework::resource::{ConfigureRequest, DataSource, Resource};
    use akspolicy::framework::{Block, Diagnostics, Provider, ProviderData, Schema};

    struct Empty;

    #[async_trait::async_trait]
    impl Provider for Empty {
        fn type_name(&self) -> &'static str {
            "akspolicy"
        }
        fn schema(&self) -> Schema {
            Schema::new(Block::new())
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

    pub fn provider() -> Arc<dyn Provider> {
        Arc::new(Empty)
    }
}
