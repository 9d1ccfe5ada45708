//! akspolicy: a Terraform provider (tfplugin5) that governs AKS with Azure Policy, and a local
//! ARM emulator that the provider, its acceptance tests and `make demo` run against.
//!
//! Layers (docs/architecture.md states which may import which, and a test holds the source to
//! it): `plugin` serves Terraform's requests to `framework`, which calls `resources` through
//! the traits `resources` implement; `resources` talk to Azure through `arm` and share the
//! Azure Policy domain, `policy`, with the `emulator`.

pub mod arm;
pub mod emulator;
pub mod framework;
pub mod plugin;
pub mod policy;
pub mod resources;

/// The dependency rule of docs/architecture.md, held against the source.
#[cfg(test)]
mod layering {
    use std::collections::BTreeMap;
    use std::path::Path;

    const LAYERS: [&str; 6] = [
        "plugin",
        "framework",
        "resources",
        "arm",
        "policy",
        "emulator",
    ];

    /// The table under "The dependency rule": layer -> layers it may not import.
    fn forbidden_imports(doc: &str) -> BTreeMap<String, Vec<String>> {
        let names = |cell: &str| -> Vec<String> {
            cell.split(',')
                .map(|n| n.trim().trim_matches('`').to_string())
                .filter(|n| !n.is_empty())
                .collect()
        };
        doc.lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
                let [layer, forbidden] = cells.as_slice() else {
                    return None;
                };
                let layer = layer.trim().trim_matches('`');
                LAYERS
                    .contains(&layer)
                    .then(|| (layer.to_string(), names(forbidden)))
            })
            .collect()
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir)
            .expect("readable source folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Layers named by `crate::<layer>` paths in code (comments left out).
    fn imported_layers(source: &str) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        for (n, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if LAYERS.contains(&name.as_str()) {
                    found.push((n + 1, name));
                }
            }
        }
        found
    }

    #[test]
    fn imports_follow_docs_architecture() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/architecture.md"))
            .expect("docs/architecture.md");
        let rule = forbidden_imports(&doc);
        assert_eq!(
            rule.keys().map(String::as_str).collect::<Vec<_>>(),
            {
                let mut all = LAYERS.to_vec();
                all.sort();
                all
            },
            "the table in docs/architecture.md must give every layer a row"
        );
        let mut broken = Vec::new();
        for (layer, forbidden) in &rule {
            let mut files = Vec::new();
            rust_files(&root.join("src").join(layer), &mut files);
            assert!(!files.is_empty(), "no source for layer {layer}");
            for file in files {
                let source = std::fs::read_to_string(&file).expect("readable source");
                for (line, imported) in imported_layers(&source) {
                    if forbidden.contains(&imported) {
                        broken.push(format!(
                            "{}:{line}: {layer} imports {imported}",
                            file.strip_prefix(root).unwrap_or(&file).display()
                        ));
                    }
                }
            }
        }
        assert!(
            broken.is_empty(),
            "imports against docs/architecture.md:\n{}",
            broken.join("\n")
        );
    }

    #[test]
    fn the_reader_finds_forbidden_paths() {
        let found = imported_layers(
            "use crate::arm::Scope; // crate::plugin\nlet x = crate::framework::Value::Null;",
        );
        assert_eq!(
            found,
            vec![(1, "arm".to_string()), (2, "framework".to_string())]
        );
        let rule = forbidden_imports("| `policy` | `arm`, `framework` |\n| other | x |");
        assert_eq!(
            rule["policy"],
            vec!["arm".to_string(), "framework".to_string()]
        );
        assert_eq!(rule.len(), 1);
    }
}
