//! The committed registry docs must equal what the schemas render. `make docs` rewrites them.

use std::path::Path;

use akspolicy::framework::docs::{render, render_function, DocKind, DocPage};

use crate::harness::repo_root;

fn read_optional(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Every page: (path under docs/, rendered markdown).
fn pages() -> Vec<(String, String)> {
    let root = repo_root();
    let provider = akspolicy::resources::provider();
    let mut pages = Vec::new();

    let schema = provider.schema();
    let example = read_optional(&root.join("examples/provider/provider.tf"));
    let extra = read_optional(&root.join("examples/provider/authentication.md"));
    pages.push((
        "index.md".to_string(),
        render(&DocPage {
            kind: DocKind::Provider,
            name: provider.type_name(),
            schema: &schema,
            example: example.as_deref(),
            import: None,
            extra: extra.as_deref(),
        }),
    ));
    for r in provider.resources() {
        let name = r.type_name();
        let schema = r.schema();
        let dir = root.join("examples/resources").join(name);
        let example = read_optional(&dir.join("resource.tf"));
        let import = read_optional(&dir.join("import.sh"));
        let short = name.trim_start_matches("akspolicy_");
        pages.push((
            format!("resources/{short}.md"),
            render(&DocPage {
                kind: DocKind::Resource,
                name,
                schema: &schema,
                example: example.as_deref(),
                import: import.as_deref(),
                extra: None,
            }),
        ));
    }
    for d in provider.data_sources() {
        let name = d.type_name();
        let schema = d.schema();
        let example = read_optional(
            &root
                .join("examples/data-sources")
                .join(name)
                .join("data-source.tf"),
        );
        let short = name.trim_start_matches("akspolicy_");
        pages.push((
            format!("data-sources/{short}.md"),
            render(&DocPage {
                kind: DocKind::DataSource,
                name,
                schema: &schema,
                example: example.as_deref(),
                import: None,
                extra: None,
            }),
        ));
    }
    for f in provider.functions() {
        let name = f.name();
        let example = read_optional(
            &root
                .join("examples/functions")
                .join(name)
                .join("function.tf"),
        );
        pages.push((
            format!("functions/{name}.md"),
            render_function(
                provider.type_name(),
                name,
                &f.signature(),
                example.as_deref(),
            ),
        ));
    }
    pages
}

#[test]
fn committed_docs_match_the_schemas() {
    let docs = repo_root().join("docs");
    let update = std::env::var_os("AKSPOLICY_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (path, text) in pages() {
        let file = docs.join(&path);
        let text = format!("{text}\n");
        if update {
            std::fs::create_dir_all(file.parent().expect("docs file has a parent")).expect("mkdir");
            std::fs::write(&file, &text).expect("write doc");
        } else if read_optional(&file).as_deref() != Some(text.as_str()) {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "docs out of date: {stale:?}. Run `make docs` and commit the result."
    );
}
