//! Declarative schemas. A resource file describes its arguments once here — type, mode,
//! description (which becomes the docs), plan behaviour and validators — and the framework
//! derives the wire schema, the plan rules and the validation from that one description.

use std::fmt;
use std::sync::Arc;

use super::diag::{AttributePath, Diagnostics};
use super::value::{Type, Value};

/// Checks a known, non-null configuration value. Validators never see null or unknown values:
/// an unknown value is decided at apply time and re-checked then by the CRUD code.
pub type Validator = Arc<dyn Fn(&Value, &AttributePath, &mut Diagnostics) + Send + Sync>;

/// A resource's, data source's or provider's schema.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    /// The state schema version; UpgradeResourceState receives the version a state was
    /// written with.
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(block: Block) -> Schema {
        Schema { version: 0, block }
    }

    pub fn with_version(mut self, version: i64) -> Schema {
        self.version = version;
        self
    }

    /// The object type of a whole instance of this schema.
    pub fn implied_type(&self) -> Type {
        self.block.implied_type()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    pub deprecated: bool,
}

impl Block {
    pub fn new() -> Block {
        Block::default()
    }

    pub fn description(mut self, markdown: impl Into<String>) -> Block {
        self.description = markdown.into();
        self
    }

    pub fn attribute(mut self, attribute: Attribute) -> Block {
        self.attributes.push(attribute);
        self
    }

    pub fn block(mut self, block: NestedBlock) -> Block {
        self.blocks.push(block);
        self
    }

    pub fn find_attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn find_block(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.type_name == name)
    }

    /// Names of the attributes and blocks marked `local_only`.
    pub fn local_only_names(&self) -> impl Iterator<Item = &str> {
        let attributes = self.attributes.iter().filter(|a| a.local_only);
        let blocks = self.blocks.iter().filter(|b| b.local_only);
        attributes
            .map(|a| a.name.as_str())
            .chain(blocks.map(|b| b.type_name.as_str()))
    }

    pub fn implied_type(&self) -> Type {
        let mut attrs: std::collections::BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.ty.clone()))
            .collect();
        for b in &self.blocks {
            let object = b.block.implied_type();
            let ty = match b.nesting {
                NestingMode::Single | NestingMode::Group => object,
                NestingMode::List => Type::list(object),
                NestingMode::Set => Type::set(object),
                NestingMode::Map => Type::map(object),
            };
            attrs.insert(b.type_name.clone(), ty);
        }
        Type::Object(attrs)
    }

    /// Checks the rules Terraform's SDKs enforce on schemas, so a mistake in a resource file
    /// fails a unit test instead of crashing Terraform.
    pub fn validate(&self) -> Result<(), SchemaError> {
        self.validate_at("")
    }

    fn validate_at(&self, prefix: &str) -> Result<(), SchemaError> {
        let mut seen = std::collections::HashSet::new();
        for a in &self.attributes {
            let here = format!("{prefix}{}", a.name);
            check_name(&a.name, &here)?;
            if !seen.insert(a.name.as_str()) {
                return Err(SchemaError(format!("{here}: declared twice")));
            }
            if !(a.required || a.optional || a.computed) {
                return Err(SchemaError(format!(
                    "{here}: must be required, optional or computed"
                )));
            }
            if a.required && (a.optional || a.computed) {
                return Err(SchemaError(format!(
                    "{here}: required cannot be combined with optional or computed"
                )));
            }
            if a.default.is_some() && !a.computed {
                return Err(SchemaError(format!(
                    "{here}: a default needs the attribute to be computed"
                )));
            }
            if a.description.is_empty() {
                return Err(SchemaError(format!(
                    "{here}: needs a description (it becomes the docs)"
                )));
            }
        }
        for b in &self.blocks {
            let here = format!("{prefix}{}", b.type_name);
            check_name(&b.type_name, &here)?;
            if !seen.insert(b.type_name.as_str()) {
                return Err(SchemaError(format!("{here}: name used twice")));
            }
            let ok = match b.nesting {
                NestingMode::Single => b.min_items == b.max_items && b.max_items <= 1,
                NestingMode::Group | NestingMode::Map => b.min_items == 0 && b.max_items == 0,
                NestingMode::List | NestingMode::Set => {
                    b.min_items >= 0 && (b.max_items == 0 || b.min_items <= b.max_items)
                }
            };
            if !ok {
                return Err(SchemaError(format!(
                    "{here}: min_items/max_items not valid for {:?} nesting",
                    b.nesting
                )));
            }
            if matches!(
                b.nesting,
                NestingMode::List | NestingMode::Set | NestingMode::Map
            ) && b.block.implied_type().has_dynamic()
            {
                // Terraform would represent such blocks as tuples/objects; we keep the model
                // simple by not allowing it.
                return Err(SchemaError(format!(
                    "{here}: collection blocks may not contain dynamic attributes"
                )));
            }
            b.block.validate_at(&format!("{here}."))?;
        }
        Ok(())
    }
}

fn check_name(name: &str, here: &str) -> Result<(), SchemaError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SchemaError(format!(
            "{here}: names may only use a-z, 0-9 and _"
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema: {0}")]
pub struct SchemaError(pub String);

/// What a change to an attribute means for the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanBehaviour {
    /// A change (after creation) replaces the remote object.
    pub requires_replace: bool,
    /// A computed value that does not change once set (ids): keep the prior value instead of
    /// showing "(known after apply)" on every update.
    pub use_state_for_unknown: bool,
}

#[derive(Clone)]
pub struct Attribute {
    pub name: String,
    pub ty: Type,
    /// Markdown.
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub deprecated: bool,
    /// Planned when the configuration leaves the attribute null (needs `computed`).
    pub default: Option<Value>,
    pub plan: PlanBehaviour,
    pub validators: Vec<Validator>,
    /// Lives only in Terraform (it steers the provider, such as `test` blocks): an update
    /// that changes nothing else needs no call to the remote API.
    pub local_only: bool,
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .field("required", &self.required)
            .field("optional", &self.optional)
            .field("computed", &self.computed)
            .field("sensitive", &self.sensitive)
            .field("default", &self.default)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl Attribute {
    pub fn new(name: &str, ty: Type) -> Attribute {
        Attribute {
            name: name.to_string(),
            ty,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            deprecated: false,
            default: None,
            plan: PlanBehaviour::default(),
            validators: Vec::new(),
            local_only: false,
        }
    }

    pub fn string(name: &str) -> Attribute {
        Attribute::new(name, Type::String)
    }

    pub fn bool(name: &str) -> Attribute {
        Attribute::new(name, Type::Bool)
    }

    pub fn number(name: &str) -> Attribute {
        Attribute::new(name, Type::Number)
    }

    pub fn description(mut self, markdown: impl Into<String>) -> Attribute {
        self.description = markdown.into();
        self
    }

    pub fn required(mut self) -> Attribute {
        self.required = true;
        self
    }

    pub fn optional(mut self) -> Attribute {
        self.optional = true;
        self
    }

    pub fn computed(mut self) -> Attribute {
        self.computed = true;
        self
    }

    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }

    pub fn deprecated(mut self) -> Attribute {
        self.deprecated = true;
        self
    }

    /// Optional + computed with a value planned when the configuration leaves it out.
    pub fn default(mut self, value: Value) -> Attribute {
        self.optional = true;
        self.computed = true;
        self.default = Some(value);
        self
    }

    pub fn requires_replace(mut self) -> Attribute {
        self.plan.requires_replace = true;
        self
    }

    /// See [`Attribute::local_only`](Attribute#structfield.local_only).
    pub fn local_only(mut self) -> Attribute {
        self.local_only = true;
        self
    }

    pub fn use_state_for_unknown(mut self) -> Attribute {
        self.plan.use_state_for_unknown = true;
        self
    }

    pub fn validate_with(
        mut self,
        f: impl Fn(&Value, &AttributePath, &mut Diagnostics) + Send + Sync + 'static,
    ) -> Attribute {
        self.validators.push(Arc::new(f));
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NestingMode {
    Single,
    List,
    Set,
    Map,
    Group,
}

#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub type_name: String,
    pub block: Block,
    pub nesting: NestingMode,
    pub min_items: i64,
    pub max_items: i64,
    /// As [`Attribute::local_only`](Attribute#structfield.local_only).
    pub local_only: bool,
}

impl NestedBlock {
    pub fn new(type_name: &str, nesting: NestingMode, block: Block) -> NestedBlock {
        NestedBlock {
            type_name: type_name.to_string(),
            block,
            nesting,
            min_items: 0,
            max_items: 0,
            local_only: false,
        }
    }

    pub fn list(type_name: &str, block: Block) -> NestedBlock {
        NestedBlock::new(type_name, NestingMode::List, block)
    }

    pub fn set(type_name: &str, block: Block) -> NestedBlock {
        NestedBlock::new(type_name, NestingMode::Set, block)
    }

    pub fn single(type_name: &str, block: Block) -> NestedBlock {
        NestedBlock::new(type_name, NestingMode::Single, block)
    }

    /// See [`Attribute::local_only`](Attribute#structfield.local_only).
    pub fn local_only(mut self) -> NestedBlock {
        self.local_only = true;
        self
    }

    pub fn items(mut self, min: i64, max: i64) -> NestedBlock {
        self.min_items = min;
        self.max_items = max;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_type_follows_nesting() {
        let b = Block::new()
            .attribute(Attribute::string("id").computed().description("d"))
            .block(NestedBlock::list(
                "rule",
                Block::new().attribute(Attribute::number("n").optional().description("d")),
            ))
            .block(NestedBlock::single(
                "timeouts",
                Block::new().attribute(Attribute::string("create").optional().description("d")),
            ));
        assert_eq!(
            b.implied_type(),
            Type::object([
                ("id", Type::String),
                ("rule", Type::list(Type::object([("n", Type::Number)]))),
                ("timeouts", Type::object([("create", Type::String)])),
            ])
        );
        b.validate().unwrap();
    }

    #[test]
    fn invalid_schemas_are_caught() {
        let neither = Block::new().attribute(Attribute::string("x").description("d"));
        assert!(neither.validate().is_err());
        let bad_name = Block::new().attribute(Attribute::string("X").optional().description("d"));
        assert!(bad_name.validate().is_err());
        let both = Block::new().attribute(
            Attribute::string("x")
                .required()
                .computed()
                .description("d"),
        );
        assert!(both.validate().is_err());
    }
}
