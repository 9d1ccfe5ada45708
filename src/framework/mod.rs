//! The framework layer (terraform-plugin-framework's role): Terraform's value model, schemas,
//! diagnostics with attribute paths, the generic plan rules, the traits provider code
//! implements, and the protocol-agnostic server the `plugin` layer drives.
//!
//! It knows Terraform's semantics and nothing of Azure: it never imports `arm` or `policy`.

pub mod apply;
pub mod diag;
pub mod docs;
pub mod function;
pub mod plan;
pub mod private;
pub mod resource;
pub mod schema;
pub mod server;
pub mod timeouts;
pub mod typed;
pub mod value;

pub use diag::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity};
pub use function::{Function, FunctionError, FunctionParameter, FunctionSignature};
pub use resource::{
    ApplyRequest, ApplyResponse, CallContext, CheckRemovalRequest, CheckRemovalResponse,
    ConfigureRequest, ConfigureResponse, DataSource, DeleteRequest, DeleteResponse, ImportRequest,
    ImportResponse, ModifyPlanRequest, ModifyPlanResponse, Provider, ProviderData, ReadDataRequest,
    ReadDataResponse, ReadRequest, ReadResponse, Removal, Resource, UpgradeStateRequest,
    UpgradeStateResponse, ValidateConfigRequest, ValidateConfigResponse,
};
pub use schema::{Attribute, Block, NestedBlock, NestingMode, PlanBehaviour, Schema, Validator};
pub use server::Server;
pub use value::{Number, Type, Value};
