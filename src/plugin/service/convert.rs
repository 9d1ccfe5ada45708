//! Conversions between framework types and their tfplugin5 wire form, and the decoding and
//! encoding of `DynamicValue`s with diagnostics that say which value failed.

use crate::framework::schema::{Attribute, Block, NestedBlock, NestingMode, Schema};
use crate::framework::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity, Type, Value};
use crate::plugin::proto::tfplugin5 as pb;
use crate::plugin::wire::{self, types::type_to_json_bytes, WireError};

/// Converts framework diagnostics into their wire form.
pub fn diagnostics_to_proto(diags: Diagnostics) -> Vec<pb::Diagnostic> {
    diags.into_iter().map(diagnostic_to_proto).collect()
}

fn diagnostic_to_proto(d: Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error,
            Severity::Warning => pb::diagnostic::Severity::Warning,
        } as i32,
        summary: d.summary,
        detail: d.detail,
        attribute: d.attribute.filter(|p| !p.is_root()).map(path_to_proto),
    }
}

/// Converts a framework attribute path into its wire form.
pub fn path_to_proto(path: AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: path
            .0
            .into_iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attribute(n) => Selector::AttributeName(n),
                    PathStep::ElementKeyString(k) => Selector::ElementKeyString(k),
                    PathStep::ElementKeyInt(i) => Selector::ElementKeyInt(i),
                }),
            })
            .collect(),
    }
}

/// Converts a framework schema into its wire form.
pub fn schema_to_proto(schema: &Schema) -> pb::Schema {
    pb::Schema {
        version: schema.version,
        block: Some(block_to_proto(&schema.block)),
    }
}

fn block_to_proto(block: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: block.attributes.iter().map(attribute_to_proto).collect(),
        block_types: block.blocks.iter().map(nested_block_to_proto).collect(),
        description: block.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: block.deprecated,
    }
}

fn attribute_to_proto(a: &Attribute) -> pb::schema::Attribute {
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: type_to_json_bytes(&a.ty),
        description: a.description.clone(),
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: a.deprecated,
        write_only: false,
    }
}

fn nested_block_to_proto(nb: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode as Pn;
    pb::schema::NestedBlock {
        type_name: nb.type_name.clone(),
        block: Some(block_to_proto(&nb.block)),
        nesting: match nb.nesting {
            NestingMode::Single => Pn::Single,
            NestingMode::List => Pn::List,
            NestingMode::Set => Pn::Set,
            NestingMode::Map => Pn::Map,
            NestingMode::Group => Pn::Group,
        } as i32,
        min_items: nb.min_items,
        max_items: nb.max_items,
    }
}

pub(super) fn decode_error(what: &str, type_name: &str, err: &WireError) -> Diagnostics {
    Diagnostic::error(
        "Invalid value received from Terraform",
        format!(
            "The akspolicy provider could not decode the {what} Terraform sent for {type_name:?}: \
             {err}. This is a bug in Terraform or in the provider; please report it."
        ),
    )
    .into()
}

pub(super) fn encode_error(what: &str, type_name: &str, err: &WireError) -> Diagnostics {
    Diagnostic::error(
        "Provider produced a value it cannot encode",
        format!(
            "The akspolicy provider built a {what} for {type_name:?} that does not fit its own \
             schema: {err}. This is a bug in the provider; please report it."
        ),
    )
    .into()
}

pub(super) fn decode(
    dv: Option<&pb::DynamicValue>,
    ty: &Type,
    what: &str,
    type_name: &str,
) -> Result<Value, Diagnostics> {
    wire::decode_dynamic_value(dv, ty).map_err(|e| decode_error(what, type_name, &e))
}

/// Encodes `value`; on failure records a diagnostic and returns `None` (Terraform then reads
/// null, which is what we want next to an error).
pub(super) fn encode(
    value: &Value,
    ty: &Type,
    what: &str,
    type_name: &str,
    diags: &mut Diagnostics,
) -> Option<pb::DynamicValue> {
    match wire::encode_dynamic_value(value, ty) {
        Ok(dv) => Some(dv),
        Err(e) => {
            diags.extend(encode_error(what, type_name, &e));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_convert_step_by_step() {
        use pb::attribute_path::step::Selector;
        let p = AttributePath::attr("rules").index(2).key("k");
        let proto = path_to_proto(p);
        let sel: Vec<_> = proto.steps.into_iter().map(|s| s.selector).collect();
        assert_eq!(
            sel,
            vec![
                Some(Selector::AttributeName("rules".into())),
                Some(Selector::ElementKeyInt(2)),
                Some(Selector::ElementKeyString("k".into())),
            ]
        );
    }

    #[test]
    fn diagnostics_keep_severity_and_drop_root_paths() {
        let mut d = Diagnostics::new();
        d.push(Diagnostic::warning("w", "x"));
        d.push(Diagnostic::error("e", "y").at(AttributePath::attr("a")));
        let out = diagnostics_to_proto(d);
        assert_eq!(out[0].severity, pb::diagnostic::Severity::Warning as i32);
        assert!(out[0].attribute.is_none());
        assert_eq!(out[1].severity, pb::diagnostic::Severity::Error as i32);
        assert!(out[1].attribute.is_some());
    }

    #[test]
    fn schema_always_carries_blocks() {
        let schema = Schema::new(
            Block::new()
                .attribute(Attribute::string("id").computed())
                .block(NestedBlock::list("rule", Block::new())),
        );
        let proto = schema_to_proto(&schema);
        let block = proto.block.expect("block");
        assert_eq!(block.attributes[0].r#type, br#""string""#);
        assert!(block.block_types[0].block.is_some());
        assert_eq!(
            block.block_types[0].nesting,
            pb::schema::nested_block::NestingMode::List as i32
        );
    }
}
