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
