//! Registry-style documentation rendered from schemas, so the docs can never drift from the
//! code: the descriptions in a resource file *are* its argument reference.

use std::fmt::Write as _;

use super::schema::{Attribute, Block, NestedBlock, NestingMode, Schema};
use super::value::Type;

/// What a page documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Provider,
    Resource,
    DataSource,
}

/// The inputs of one documentation page.
pub struct DocPage<'a> {
    pub kind: DocKind,
    /// `akspolicy_builtin_definition`, or the provider's name.
    pub name: &'a str,
    pub schema: &'a Schema,
    /// Terraform configuration shown under "Example Usage".
    pub example: Option<&'a str>,
    /// Shell commands shown under "Import" (resources only).
    pub import: Option<&'a str>,
    /// Extra markdown appended before the references (e.g. authentication for the provider).
    pub extra: Option<&'a str>,
}

pub fn render(page: &DocPage<'_>) -> String {
    let kind_label = match page.kind {
        DocKind::Provider => "Provider",
        DocKind::Resource => "Resource",
        DocKind::DataSource => "Data Source",
    };
    let description = page.schema.block.description.trim();
    let first_sentence = description
        .split(". ")
        .next()
        .unwrap_or(description)
        .trim_end_matches('.');
    let mut out = String::new();
    let _ = writeln!(out, "---");
    let _ = writeln!(
        out,
        "page_title: \"{} {} - akspolicy\"",
        page.name, kind_label
    );
    let _ = writeln!(out, "description: |-\n  {first_sentence}.");
    let _ = writeln!(out, "---\n");
    match page.kind {
        DocKind::Provider => {
            let _ = writeln!(out, "# {} Provider\n", page.name);
        }
        _ => {
            let _ = writeln!(out, "# {} ({kind_label})\n", page.name);
        }
    }
    let _ = writeln!(out, "{description}\n");
    if let Some(example) = page.example {
        let _ = writeln!(
            out,
            "## Example Usage\n\n```terraform\n{}\n```\n",
            example.trim_end()
        );
    }
    if let Some(extra) = page.extra {
        let _ = writeln!(out, "{}\n", extra.trim_end());
    }
    render_block(&mut out, &page.schema.block, page.kind, None);
    if let Some(timeouts) = timeouts_block(&page.schema.block) {
        render_timeouts(&mut out, &timeouts.block);
    }
    if let Some(import) = page.import {
        let _ = writeln!(out, "## Import\n\n```shell\n{}\n```\n", import.trim_end());
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// The page of a provider-defined function (`docs/functions/<name>.md`).
pub fn render_function(
    provider: &str,
    name: &str,
    signature: &super::function::FunctionSignature,
    example: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "---");
    let _ = writeln!(out, "page_title: \"{name} function - {provider}\"");
    let _ = writeln!(out, "description: |-\n  {}.", signature.summary);
    let _ = writeln!(out, "---\n");
    let _ = writeln!(out, "# function: {name}\n");
    let _ = writeln!(out, "{}\n", signature.description.trim());
    let _ = writeln!(
        out,
        "Provider-defined functions need Terraform 1.8 or later; older versions use the rest of \
         the provider unchanged.\n"
    );
    if let Some(example) = example {
        let _ = writeln!(out, "## Example Usage\n");
        let _ = writeln!(out, "```terraform\n{}\n```\n", example.trim_end());
    }
    let _ = writeln!(out, "## Signature\n");
    let params: Vec<String> = signature
        .parameters
        .iter()
        .map(|p| format!("{} {}", p.name, type_keyword(&p.ty)))
        .collect();
    let _ = writeln!(
        out,
        "```text\n{name}({}) {}\n```\n",
        params.join(", "),
        type_keyword(&signature.returns)
    );
    let _ = writeln!(out, "## Arguments\n");
    for (i, p) in signature.parameters.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. `{}` ({}) {}",
            i + 1,
            p.name,
            type_label(&p.ty),
            p.description
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Return Type\n");
    let _ = write!(out, "{}", type_label(&signature.returns));
    out
}

/// A type as written in a function signature (`string`, `list of string`, `dynamic`).
fn type_keyword(t: &Type) -> String {
    type_label(t).to_ascii_lowercase()
}

fn render_block(out: &mut String, block: &Block, kind: DocKind, nested: Option<&str>) {
    let args: Vec<&Attribute> = block
        .attributes
        .iter()
        .filter(|a| a.required || a.optional)
        .collect();
    let attrs: Vec<&Attribute> = block
        .attributes
        .iter()
        .filter(|a| a.computed && !a.optional)
        .collect();
    let (arg_title, attr_title) = match nested {
        None if kind == DocKind::Provider => ("## Argument Reference".to_string(), String::new()),
        None => (
            "## Argument Reference".to_string(),
            "## Attribute Reference".to_string(),
        ),
        Some(n) => (format!("### Nested Schema for `{n}`"), String::new()),
    };
    let _ = writeln!(out, "{arg_title}\n");
    if args.is_empty() && block.blocks.is_empty() {
        let _ = writeln!(out, "This block has no arguments.\n");
    }
    for a in &args {
        let _ = writeln!(out, "{}", attribute_line(a));
    }
    for b in &block.blocks {
        let _ = writeln!(out, "{}", block_line(b, nested));
    }
    if !args.is_empty() || !block.blocks.is_empty() {
        out.push('\n');
    }
    if !attrs.is_empty() {
        if attr_title.is_empty() {
            let _ = writeln!(out, "Read-only:\n");
        } else {
            let _ = writeln!(
                out,
                "{attr_title}\n\nIn addition to the arguments, these attributes are exported:\n"
            );
        }
        for a in &attrs {
            let _ = writeln!(out, "{}", attribute_line(a));
        }
        out.push('\n');
    }
    for b in &block.blocks {
        if nested.is_none() && is_timeouts(b) {
            // Rendered as its own "Timeouts" section, as registry pages do.
            continue;
        }
        let path = match nested {
            Some(n) => format!("{n}.{}", b.type_name),
            None => b.type_name.clone(),
        };
        let _ = writeln!(out, "<a id=\"{}\"></a>", anchor(&path));
        render_block(out, &b.block, kind, Some(&path));
    }
}

/// The conventional top-level `timeouts` block.
fn is_timeouts(b: &NestedBlock) -> bool {
    b.type_name == "timeouts"
}

fn timeouts_block(block: &Block) -> Option<&NestedBlock> {
    block.blocks.iter().find(|b| is_timeouts(b))
}

fn render_timeouts(out: &mut String, block: &Block) {
    let _ = writeln!(
        out,
        "## Timeouts\n\nThe `timeouts` block sets how long each operation may take before \
         Terraform gives up, as durations such as `30s`, `45m` or `1h30m`:\n"
    );
    for a in &block.attributes {
        let _ = writeln!(out, "{}", attribute_line(a));
    }
    out.push('\n');
}

/// A stable HTML anchor for a nested block's section (dots are awkward in fragments).
fn anchor(path: &str) -> String {
    format!("nestedblock--{}", path.replace('.', "--"))
}

fn attribute_line(a: &Attribute) -> String {
    let mut tags = vec![type_label(&a.ty)];
    if a.required {
        tags.push("Required".into());
    } else if a.optional {
        tags.push("Optional".into());
    }
    if a.sensitive {
        tags.push("Sensitive".into());
    }
    if a.deprecated {
        tags.push("Deprecated".into());
    }
    let mut text = a.description.trim().to_string();
    if let Some(default) = &a.default {
        if let Some(s) = default.as_str() {
            let _ = write!(text, " Defaults to `{s}`.");
        } else if let Some(b) = default.as_bool() {
            let _ = write!(text, " Defaults to `{b}`.");
        } else if let Some(n) = default.as_i64() {
            let _ = write!(text, " Defaults to `{n}`.");
        }
    }
    if a.plan.requires_replace {
        text.push_str(" Changing this forces a new resource.");
    }
    format!("- `{}` ({}) {}", a.name, tags.join(", "), text)
}

fn block_line(b: &NestedBlock, parent: Option<&str>) -> String {
    let path = match parent {
        Some(p) => format!("{p}.{}", b.type_name),
        None => b.type_name.clone(),
    };
    let shape = match b.nesting {
        NestingMode::Single | NestingMode::Group => "Block".to_string(),
        NestingMode::List => "Block List".to_string(),
        NestingMode::Set => "Block Set".to_string(),
        NestingMode::Map => "Block Map".to_string(),
    };
    let presence = if b.min_items > 0 {
        "Required"
    } else {
        "Optional"
    };
    let mut limits = String::new();
    if b.max_items > 0 {
        let _ = write!(limits, ", Max: {}", b.max_items);
    }
    if b.min_items > 0 {
        let _ = write!(limits, ", Min: {}", b.min_items);
    }
    let link = if parent.is_none() && is_timeouts(b) {
        "(see [Timeouts](#timeouts))".to_string()
    } else {
        format!("(see [below for nested schema](#{}))", anchor(&path))
    };
    format!(
        "- `{}` ({shape}, {presence}{limits}) {} {link}",
        b.type_name,
        b.block.description.trim(),
    )
}

fn type_label(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_label(e)),
        Type::Set(e) => format!("Set of {}", type_label(e)),
        Type::Map(e) => format!("Map of {}", type_label(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_arguments_and_attributes() {
        let schema = Schema::new(
            Block::new()
                .description("Looks things up. More text.")
                .attribute(
                    Attribute::string("name")
                        .required()
                        .requires_replace()
                        .description("The name."),
                )
                .attribute(Attribute::string("id").computed().description("The ID.")),
        );
        let doc = render(&DocPage {
            kind: DocKind::Resource,
            name: "akspolicy_thing",
            schema: &schema,
            example: Some("resource \"akspolicy_thing\" \"x\" {}"),
            import: Some("terraform import akspolicy_thing.x /id"),
            extra: None,
        });
        assert!(doc.contains("# akspolicy_thing (Resource)"));
        assert!(doc.contains(
            "- `name` (String, Required) The name. Changing this forces a new resource."
        ));
        assert!(doc.contains("- `id` (String) The ID."));
        assert!(doc.contains("## Import"));
        assert!(doc.contains("description: |-\n  Looks things up."));
    }

    #[test]
    fn nested_blocks_get_anchors_and_timeouts_their_own_section() {
        let schema = Schema::new(
            Block::new()
                .description("A thing.")
                .block(NestedBlock::list(
                    "rule",
                    Block::new()
                        .description("A rule.")
                        .attribute(Attribute::string("name").required().description("Name."))
                        .block(NestedBlock::list(
                            "selector",
                            Block::new()
                                .description("A selector.")
                                .attribute(Attribute::string("kind").required().description("K.")),
                        )),
                ))
                .block(super::super::timeouts::block(
                    super::super::timeouts::TimeoutDefaults {
                        create: std::time::Duration::from_secs(1800),
                        read: std::time::Duration::from_secs(300),
                        update: std::time::Duration::from_secs(1800),
                        delete: std::time::Duration::from_secs(1800),
                    },
                )),
        );
        let doc = render(&DocPage {
            kind: DocKind::Resource,
            name: "akspolicy_thing",
            schema: &schema,
            example: None,
            import: Some("terraform import akspolicy_thing.x /id"),
            extra: None,
        });
        assert!(doc.contains(
            "- `rule` (Block List, Optional) A rule. (see [below for nested schema](#nestedblock--rule))"
        ));
        assert!(doc.contains("<a id=\"nestedblock--rule\"></a>\n### Nested Schema for `rule`"));
        assert!(doc.contains("<a id=\"nestedblock--rule--selector\"></a>"));
        assert!(doc.contains("(see [Timeouts](#timeouts))"));
        assert!(!doc.contains("Nested Schema for `timeouts`"));
        let timeouts = doc.find("## Timeouts").expect("timeouts section");
        let import = doc.find("## Import").expect("import section");
        assert!(timeouts < import, "Timeouts comes before Import");
        assert!(doc.contains(
            "- `create` (String, Optional) Limit for create (e.g. `30m`, `1h`). Defaults to `30m`."
        ));
    }
}
