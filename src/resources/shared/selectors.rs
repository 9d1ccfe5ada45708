//! `resource_selectors` and `selectors` blocks shared by assignments (also inside `overrides`)
//! and exemptions, and their ARM form `{"name": ..., "selectors": [{"kind", "in", "notIn"}]}`.

use serde::{Deserialize, Serialize};

use crate::framework::typed::Typed;
use crate::framework::{Attribute, AttributePath, Block, Diagnostics, NestedBlock, Type, Value};
use crate::typed_object;

/// One ARM selector: which resources (or definition references) an override or a resource
/// selector applies to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub kind: String,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_in: Option<Vec<String>>,
}

/// A named group of selectors (`resourceSelectors[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSelector {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub selectors: Vec<Selector>,
}

/// Selector kinds Azure accepts.
pub const SELECTOR_KINDS: &[&str] = &[
    "resourceLocation",
    "resourceType",
    "resourceWithoutLocation",
    "policyDefinitionReferenceId",
];

/// The `selectors` block: `kind` plus exactly one of `in` / `not_in`.
pub fn selectors_block(what: &str) -> NestedBlock {
    NestedBlock::list(
        "selectors",
        Block::new()
            .description(format!("Which {what} this applies to."))
            .attribute(
                Attribute::string("kind")
                    .required()
                    .description(
                        "`resourceLocation`, `resourceType`, `resourceWithoutLocation` or (in \
                         `overrides`) `policyDefinitionReferenceId`.",
                    )
                    .validate_with(|v, path, diags| {
                        one_of(v, path, diags, SELECTOR_KINDS, "selector kind")
                    }),
            )
            .attribute(
                Attribute::new("in", Type::list(Type::String))
                    .optional()
                    .description("The values to include."),
            )
            .attribute(
                Attribute::new("not_in", Type::list(Type::String))
                    .optional()
                    .description("The values to exclude."),
            ),
    )
    .items(1, 0)
}

/// The `resource_selectors` block.
pub fn resource_selectors_block() -> NestedBlock {
    NestedBlock::list(
        "resource_selectors",
        Block::new()
            .description(
                "Narrows the resources this applies to, e.g. to roll a policy out region by \
                 region. One block per selector group.",
            )
            .attribute(
                Attribute::string("name")
                    .required()
                    .description("A name for this selector group."),
            )
            .block(selectors_block("resources")),
    )
}

/// Validator: `v` must be one of `allowed` (exactly, as Azure compares).
pub fn one_of(
    v: &Value,
    path: &AttributePath,
    diags: &mut Diagnostics,
    allowed: &[&str],
    what: &str,
) {
    let Some(s) = v.as_str() else { return };
    if allowed.contains(&s) {
        return;
    }
    let hint = allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(s))
        .map(|a| format!(" Values are case-sensitive: did you mean {a:?}?"))
        .unwrap_or_default();
    diags.error_at(
        path.clone(),
        format!("Invalid {what}"),
        format!(
            "{s:?} is not a valid {what}. Use one of: {}.{hint}",
            allowed.join(", ")
        ),
    );
}

typed_object! {
    /// One `selectors` block.
    pub struct SelectorBlock {
        pub kind: Option<String>,
        pub r#in: Option<Vec<String>>,
        pub not_in: Option<Vec<String>>,
    }
}

typed_object! {
    /// One `resource_selectors` block.
    pub struct ResourceSelectorBlock {
        pub name: Option<String>,
        pub selectors: Vec<SelectorBlock>,
    }
}

impl From<&SelectorBlock> for Selector {
    fn from(b: &SelectorBlock) -> Selector {
        Selector {
            kind: b.kind.clone().unwrap_or_default(),
            in_values: b.r#in.clone(),
            not_in: b.not_in.clone(),
        }
    }
}

impl From<&Selector> for SelectorBlock {
    fn from(s: &Selector) -> SelectorBlock {
        SelectorBlock {
            kind: Some(s.kind.clone()),
            r#in: s.in_values.clone(),
            not_in: s.not_in.clone(),
        }
    }
}

/// The ARM resource selectors of `resource_selectors` blocks (`None` when there are none).
pub fn resource_selectors_to_arm(
    blocks: &[ResourceSelectorBlock],
) -> Option<Vec<ResourceSelector>> {
    let items: Vec<ResourceSelector> = blocks
        .iter()
        .map(|rs| ResourceSelector {
            name: rs.name.clone().unwrap_or_default(),
            selectors: rs.selectors.iter().map(Selector::from).collect(),
        })
        .collect();
    (!items.is_empty()).then_some(items)
}

/// The `resource_selectors` blocks for ARM's resource selectors.
pub fn resource_selectors_from_arm(v: Option<&[ResourceSelector]>) -> Vec<ResourceSelectorBlock> {
    v.unwrap_or_default()
        .iter()
        .map(|rs| ResourceSelectorBlock {
            name: Some(rs.name.clone()),
            selectors: rs.selectors.iter().map(SelectorBlock::from).collect(),
        })
        .collect()
}

/// [`resource_selectors_to_arm`] for a block list held as a [`Value`]. A list that does not
/// have the block's shape (a provider bug: the schema test rules it out) sends no selectors.
pub fn resource_selectors_from_value(v: &Value) -> Option<Vec<ResourceSelector>> {
    let blocks = Vec::<ResourceSelectorBlock>::decode(v).unwrap_or_default();
    resource_selectors_to_arm(&blocks)
}

/// [`resource_selectors_from_arm`] as a [`Value`].
pub fn resource_selectors_to_value(v: Option<&[ResourceSelector]>) -> Value {
    resource_selectors_from_arm(v).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::shared::testing::assert_first_detail;
    use crate::resources::shared::testing::validator_diags;

    #[test]
    fn resource_selectors_round_trip() {
        let json = serde_json::json!([{"name": "eu", "selectors": [{"kind": "resourceLocation", "in": ["westeurope"]}]}]);
        let arm: Vec<ResourceSelector> = serde_json::from_value(json.clone()).unwrap();
        let v = resource_selectors_to_value(Some(&arm));
        assert_eq!(
            v.elements()[0].get("selectors").elements()[0].get("not_in"),
            &Value::Null
        );
        let back = resource_selectors_from_value(&v).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), json);
        assert_eq!(resource_selectors_from_value(&Value::List(vec![])), None);
    }

    #[test]
    fn one_of_hints_case() {
        let d = validator_diags(
            |v, p, d| one_of(v, p, d, SELECTOR_KINDS, "selector kind"),
            "kind",
            Value::string("resourcelocation"),
        );
        assert_first_detail(&d, "did you mean \"resourceLocation\"");
    }
}
