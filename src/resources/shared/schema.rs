//! Schema pieces several resources and data sources share.

/// The three [`Resource`](crate::framework::Resource) or
/// [`DataSource`](crate::framework::DataSource) methods that say what a type is: its Terraform
/// type name, its schema and the [`Typed`](crate::framework::typed::Typed) state its values
/// decode into. Every implementation has them in the same form, so each names only the three
/// values: `typed_schema!("akspolicy_x", schema(), X);` inside the `impl` block.
macro_rules! typed_schema {
    ($type_name:expr, $schema:expr, $state:ty) => {
        fn type_name(&self) -> &'static str {
            $type_name
        }

        fn schema(&self) -> $crate::framework::Schema {
            $schema
        }

        fn state_type(&self) -> Option<$crate::framework::Type> {
            Some(<$state as $crate::framework::typed::Typed>::ty())
        }
    };
}
pub(crate) use typed_schema;

use crate::framework::Attribute;
use crate::policy::names::NameRule;
use crate::resources::shared::reconcile::{arm_scope, json_object_string};
use crate::resources::shared::validators::azure_name;

/// `id`: the object's ID, which Azure assigns and an update never changes, so a plan keeps
/// the state's value rather than showing it as unknown.
pub fn id_attribute(description: impl Into<String>) -> Attribute {
    Attribute::string("id")
        .computed()
        .use_state_for_unknown()
        .description(description)
}

/// `name`: the last segment of the object's ID, checked against Azure's `rule` for it. Azure
/// cannot rename an object, so a new name replaces it.
pub fn name_attribute(description: impl Into<String>, rule: NameRule) -> Attribute {
    Attribute::string("name")
        .required()
        .requires_replace()
        .description(description)
        .validate_with(azure_name(rule))
}

/// `scope`: the ARM scope (management group, subscription, resource group or resource) the
/// object is created at, which Azure cannot move it from, so a new scope replaces it.
pub fn scope_attribute(description: impl Into<String>) -> Attribute {
    Attribute::string("scope")
        .required()
        .requires_replace()
        .description(description)
        .validate_with(arm_scope)
}

/// `metadata`: ARM's free-form metadata object, written as a JSON object string.
pub fn metadata_attribute(description: impl Into<String>) -> Attribute {
    Attribute::string("metadata")
        .optional()
        .description(description)
        .validate_with(json_object_string)
}
