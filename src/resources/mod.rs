//! Provider code: the provider configuration and one file per resource / data source, each
//! reading top to bottom as schema, mapping to the ARM body, then CRUD. What several of them
//! share lives in [`shared`].

pub mod admission_review;
pub mod assignment;
pub mod builtin_definition;
pub mod builtin_initiative;
pub mod cluster_addon;
pub mod compliance;
pub mod definition;
pub mod evaluate_function;
pub mod exemption;
pub mod initiative;
pub mod kubernetes_definition;
pub mod kubernetes_mutation;
pub mod provider;
pub mod remediation;
pub mod shared;

pub use provider::provider;

#[cfg(test)]
mod tests {
    use super::provider::ProviderConfig;
    use crate::framework::typed::{conforms, Typed};
    use crate::framework::{AttributePath, Schema, Type};

    /// Resources whose state is still read by attribute name.
    const UNTYPED: &[&str] = &[];

    fn check(type_name: &str, schema: &Schema, typed: Option<Type>, untyped: &mut Vec<String>) {
        if let Err(e) = schema.block.validate() {
            panic!("{type_name}: {e}");
        }
        match typed {
            Some(t) => {
                if let Err(e) = conforms(&t, &schema.implied_type(), &AttributePath::root()) {
                    panic!("{type_name}: the typed state does not match the schema: {e}");
                }
            }
            None => untyped.push(type_name.to_string()),
        }
    }

    /// Every schema follows Terraform's rules, and every typed state (and the provider block's
    /// struct) has exactly the schema's attributes with the schema's types, so decoding never
    /// meets a surprise.
    #[test]
    fn schemas_are_valid_and_typed_states_match_them() {
        let provider = super::provider();
        let mut untyped = Vec::new();
        check(
            "provider",
            &provider.schema(),
            Some(ProviderConfig::ty()),
            &mut untyped,
        );
        for r in provider.resources() {
            check(r.type_name(), &r.schema(), r.state_type(), &mut untyped);
        }
        let mut untyped_data = Vec::new();
        for d in provider.data_sources() {
            check(
                d.type_name(),
                &d.schema(),
                d.state_type(),
                &mut untyped_data,
            );
        }
        untyped.sort();
        assert_eq!(untyped, UNTYPED, "resources without a typed state");
        assert_eq!(
            untyped_data,
            Vec::<String>::new(),
            "data sources without a typed state"
        );
    }
}
