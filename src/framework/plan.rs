//! The generic planning rules every resource gets (the same ones terraform-plugin-framework
//! applies), so resource files never deal with Terraform's plan-consistency contract:
//!
//! 1. start from Terraform's proposed new state;
//! 2. plan each attribute's default where the configuration leaves it null;
//! 3. on create, or when anything changed, computed attributes the configuration leaves null
//!    become unknown ("known after apply");
//! 4. `use_state_for_unknown` attributes keep their prior value instead;
//! 5. `requires_replace` attributes whose planned value differs from the prior one are
//!    reported for replacement.

use super::diag::AttributePath;
use super::schema::{Block, NestingMode, Schema};
use super::value::Value;

pub struct GenericPlan {
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
}

pub fn plan_resource_change(
    schema: &Schema,
    prior: &Value,
    proposed: &Value,
    config: &Value,
) -> GenericPlan {
    if proposed.is_null() {
        return GenericPlan {
            planned: Value::Null,
            requires_replace: Vec::new(),
        };
    }
    let mut planned = proposed.clone();
    apply_defaults(&schema.block, config, &mut planned);
    if prior.is_null() || planned != *prior {
        mark_computed_nulls_unknown(&schema.block, config, &mut planned);
    }
    if !prior.is_null() {
        keep_prior_when_unknown(&schema.block, prior, config, &mut planned);
    }
    let mut requires_replace = Vec::new();
    if !prior.is_null() {
        collect_replacements(
            &schema.block,
            &AttributePath::root(),
            prior,
            &planned,
            &mut requires_replace,
        );
    }
    GenericPlan {
        planned,
        requires_replace,
    }
}

/// Applies `f` to each (config, planned) pair of nested block objects that correlate by
/// position or key; sets are skipped because their elements have no stable identity.
fn for_each_nested(
    block: &Block,
    config: &Value,
    planned: &mut Value,
    mut f: impl FnMut(&Block, &Value, &mut Value),
) {
    for nb in &block.blocks {
        let cfg = config.get(&nb.type_name).clone();
        let Some(slot) = planned.get_mut(&nb.type_name) else {
            continue;
        };
        match (nb.nesting, slot) {
            (NestingMode::Single | NestingMode::Group, obj @ Value::Object(_)) => {
                f(&nb.block, &cfg, obj)
            }
            (NestingMode::List, Value::List(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let c = cfg.elements().get(i).cloned().unwrap_or(Value::Null);
                    f(&nb.block, &c, item);
                }
            }
            (NestingMode::Map, Value::Map(items)) => {
                for (k, item) in items.iter_mut() {
                    let c = cfg
                        .entries()
                        .and_then(|m| m.get(k))
                        .cloned()
                        .unwrap_or(Value::Null);
                    f(&nb.block, &c, item);
                }
            }
            _ => {}
        }
    }
}

fn apply_defaults(block: &Block, config: &Value, planned: &mut Value) {
    for a in &block.attributes {
        if let Some(default) = &a.default {
            if config.get(&a.name).is_null() {
                planned.set(&a.name, default.clone());
            }
        }
    }
    for_each_nested(block, config, planned, apply_defaults);
}

fn mark_computed_nulls_unknown(block: &Block, config: &Value, planned: &mut Value) {
    for a in &block.attributes {
        if a.computed && a.default.is_none() && config.get(&a.name).is_null() {
            planned.set(&a.name, Value::Unknown);
        }
    }
    for_each_nested(block, config, planned, mark_computed_nulls_unknown);
}

fn keep_prior_when_unknown(block: &Block, prior: &Value, config: &Value, planned: &mut Value) {
    for a in &block.attributes {
        if a.plan.use_state_for_unknown
            && planned.get(&a.name).is_unknown()
            && !config.get(&a.name).is_unknown()
        {
            let p = prior.get(&a.name);
            if !p.is_null() {
                planned.set(&a.name, p.clone());
            }
        }
    }
    // Only top-level and single blocks: list elements can be re-ordered, so a prior element
    // is not necessarily the same object.
    for nb in &block.blocks {
        if matches!(nb.nesting, NestingMode::Single | NestingMode::Group) {
            let p = prior.get(&nb.type_name).clone();
            let c = config.get(&nb.type_name).clone();
            if let Some(slot @ Value::Object(_)) = planned.get_mut(&nb.type_name) {
                keep_prior_when_unknown(&nb.block, &p, &c, slot);
            }
        }
    }
}

fn collect_replacements(
    block: &Block,
    path: &AttributePath,
    prior: &Value,
    planned: &Value,
    out: &mut Vec<AttributePath>,
) {
    for a in &block.attributes {
        if a.plan.requires_replace && prior.get(&a.name) != planned.get(&a.name) {
            out.push(path.attribute(&a.name));
        }
    }
    for nb in &block.blocks {
        let p = prior.get(&nb.type_name);
        let n = planned.get(&nb.type_name);
        match nb.nesting {
            NestingMode::Single | NestingMode::Group => {
                collect_replacements(&nb.block, &path.attribute(&nb.type_name), p, n, out)
            }
            NestingMode::List => {
                for (i, (pi, ni)) in p.elements().iter().zip(n.elements()).enumerate() {
                    collect_replacements(
                        &nb.block,
                        &path.attribute(&nb.type_name).index(i),
                        pi,
                        ni,
                        out,
                    );
                }
            }
            NestingMode::Set | NestingMode::Map => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::Attribute;

    fn schema() -> Schema {
        Schema::new(
            Block::new()
                .attribute(
                    Attribute::string("id")
                        .computed()
                        .use_state_for_unknown()
                        .description("d"),
                )
                .attribute(
                    Attribute::string("name")
                        .required()
                        .requires_replace()
                        .description("d"),
                )
                .attribute(Attribute::string("display").optional().description("d"))
                .attribute(Attribute::string("etag").computed().description("d"))
                .attribute(
                    Attribute::string("mode")
                        .default("Default".into())
                        .description("d"),
                ),
        )
    }

    fn obj(id: Value, name: &str, display: Value, etag: Value, mode: Value) -> Value {
        Value::object([
            ("id", id),
            ("name", name.into()),
            ("display", display),
            ("etag", etag),
            ("mode", mode),
        ])
    }

    #[test]
    fn create_marks_computed_unknown_and_applies_defaults() {
        let config = obj(Value::Null, "a", Value::Null, Value::Null, Value::Null);
        let plan = plan_resource_change(&schema(), &Value::Null, &config, &config);
        assert_eq!(
            plan.planned,
            obj(
                Value::Unknown,
                "a",
                Value::Null,
                Value::Unknown,
                "Default".into()
            )
        );
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn unchanged_is_a_noop() {
        let prior = obj("i".into(), "a", Value::Null, "e".into(), "Default".into());
        let config = obj(Value::Null, "a", Value::Null, Value::Null, Value::Null);
        // Terraform proposes prior values for computed attributes the config leaves null.
        let proposed = prior.clone();
        let plan = plan_resource_change(&schema(), &prior, &proposed, &config);
        assert_eq!(plan.planned, prior);
    }

    #[test]
    fn update_keeps_id_and_unknowns_the_rest() {
        let prior = obj("i".into(), "a", Value::Null, "e".into(), "Default".into());
        let config = obj(Value::Null, "a", "new".into(), Value::Null, Value::Null);
        let proposed = obj("i".into(), "a", "new".into(), "e".into(), "Default".into());
        let plan = plan_resource_change(&schema(), &prior, &proposed, &config);
        assert_eq!(
            plan.planned,
            obj(
                "i".into(),
                "a",
                "new".into(),
                Value::Unknown,
                "Default".into()
            )
        );
    }

    #[test]
    fn replacement_is_reported() {
        let prior = obj("i".into(), "a", Value::Null, "e".into(), "Default".into());
        let config = obj(Value::Null, "b", Value::Null, Value::Null, Value::Null);
        let proposed = obj("i".into(), "b", Value::Null, "e".into(), "Default".into());
        let plan = plan_resource_change(&schema(), &prior, &proposed, &config);
        assert_eq!(plan.requires_replace, vec![AttributePath::attr("name")]);
    }

    #[test]
    fn destroy_stays_null() {
        let prior = obj("i".into(), "a", Value::Null, "e".into(), "Default".into());
        let plan = plan_resource_change(&schema(), &prior, &Value::Null, &Value::Null);
        assert!(plan.planned.is_null());
    }
}
