//! Built-in policy definitions and set definitions served read-only by the emulator, either
//! from a `--builtins` directory or from the small catalogue embedded in the binary.

use std::path::Path;

use serde_json::Value;

use super::error::EmulatorError;
use crate::policy::builtins::{parse_builtin_definition, parse_builtin_set_definition};
use crate::policy::BuiltinCatalogue;

/// Our own catalogue: (file name, contents). Descriptions are written for this project.
const EMBEDDED_DEFINITIONS: &[(&str, &str)] = &[
    (
        "container-no-privilege.json",
        include_str!("catalogue/container-no-privilege.json"),
    ),
    // Its display name extends the one above, to test exact display-name lookups.
    (
        "container-no-privilege-audit.json",
        include_str!("catalogue/container-no-privilege-audit.json"),
    ),
    (
        "block-host-namespace.json",
        include_str!("catalogue/block-host-namespace.json"),
    ),
    (
        "container-allowed-images.json",
        include_str!("catalogue/container-allowed-images.json"),
    ),
    (
        "container-allowed-capabilities.json",
        include_str!("catalogue/container-allowed-capabilities.json"),
    ),
    (
        "host-network-ports.json",
        include_str!("catalogue/host-network-ports.json"),
    ),
    (
        "allowed-resource-types.json",
        include_str!("catalogue/allowed-resource-types.json"),
    ),
    // Remediations and compliance summaries treat this one specially (see `compliance`).
    (
        "aks-policy-addon-dine.json",
        include_str!("catalogue/aks-policy-addon-dine.json"),
    ),
];
const EMBEDDED_SET_DEFINITIONS: &[(&str, &str)] = &[(
    "set-pod-security-baseline.json",
    include_str!("catalogue/set-pod-security-baseline.json"),
)];

/// One served built-in with the fields list filters need precomputed.
#[derive(Debug, Clone)]
pub(crate) struct CatalogueEntry {
    pub name: String,
    pub policy_type: String,
    pub category: Option<String>,
    pub body: Value,
}

/// Built-ins by kind, in a stable order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalogue {
    pub definitions: Vec<CatalogueEntry>,
    pub set_definitions: Vec<CatalogueEntry>,
}

impl Catalogue {
    /// The catalogue compiled into the binary.
    pub(crate) fn embedded() -> Result<Self, EmulatorError> {
        let mut loaded = BuiltinCatalogue::default();
        for (file, text) in EMBEDDED_DEFINITIONS {
            let def = parse_builtin_definition(text)
                .map_err(|source| EmulatorError::Catalogue { file, source })?;
            loaded.definitions.push(def);
        }
        for (file, text) in EMBEDDED_SET_DEFINITIONS {
            let def = parse_builtin_set_definition(text)
                .map_err(|source| EmulatorError::Catalogue { file, source })?;
            loaded.set_definitions.push(def);
        }
        Ok(Self::from_builtins(&loaded))
    }

    /// Loads an Azure/azure-policy style directory.
    pub(crate) fn from_dir(dir: &Path) -> Result<Self, EmulatorError> {
        let loaded = BuiltinCatalogue::load_dir(dir)?;
        log::info!(
            "loaded {} built-in definitions and {} set definitions from {} ({} skipped)",
            loaded.definitions.len(),
            loaded.set_definitions.len(),
            dir.display(),
            loaded.warnings.len()
        );
        Ok(Self::from_builtins(&loaded))
    }

    fn from_builtins(loaded: &BuiltinCatalogue) -> Self {
        let definitions = loaded.definitions.iter().filter_map(entry).collect();
        let set_definitions = loaded
            .set_definitions
            .iter()
            .map(|d| {
                // Azure reports a version range for every member.
                let mut d = d.clone();
                for m in &mut d.properties.policy_definitions {
                    m.definition_version
                        .get_or_insert_with(|| "1.*.*".to_string());
                }
                d
            })
            .filter_map(|d| entry(&d))
            .collect();
        Self {
            definitions,
            set_definitions,
        }
    }
}

/// The entry of a built-in (set) definition, indexed by what its body says; `None` for one
/// without a name.
fn entry(builtin: &impl serde::Serialize) -> Option<CatalogueEntry> {
    let mut body = serde_json::to_value(builtin).ok()?;
    fill_version(&mut body);
    let props = &body["properties"];
    Some(CatalogueEntry {
        name: body["name"].as_str()?.to_string(),
        policy_type: props["policyType"].as_str().unwrap_or_default().to_string(),
        category: props["metadata"]["category"].as_str().map(str::to_string),
        body,
    })
}

/// Azure reports `version` and `versions` on every built-in; files that carry the version
/// only in `metadata.version` get it copied.
fn fill_version(body: &mut Value) {
    let props = &mut body["properties"];
    if !props.is_object() {
        return;
    }
    if props["version"].as_str().is_none() {
        let from_metadata = props["metadata"]["version"]
            .as_str()
            .filter(|v| {
                v.split('.').count() == 3
                    && v.split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
            .unwrap_or("1.0.0")
            .to_string();
        props["version"] = Value::String(from_metadata);
    }
    if !props["versions"].is_array() {
        props["versions"] = Value::Array(vec![props["version"].clone()]);
    }
}

/// Finds an entry by name, ignoring case as ARM does.
pub(crate) fn find<'a>(entries: &'a [CatalogueEntry], name: &str) -> Option<&'a CatalogueEntry> {
    entries.iter().find(|e| e.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue_parses_and_has_unique_display_names() {
        let cat = Catalogue::embedded().expect("embedded catalogue parses");
        assert!(cat.definitions.len() >= 5);
        let mut names: Vec<&str> = cat
            .definitions
            .iter()
            .filter_map(|e| e.body["properties"]["displayName"].as_str())
            .collect();
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before, "display names must be unique");

        let privileged = find(&cat.definitions, "95EDB821-DDAF-4404-9732-666045E056B4")
            .expect("privileged-containers definition present");
        let props = &privileged.body["properties"];
        assert_eq!(props["mode"], "Microsoft.Kubernetes.Data");
        assert_eq!(props["version"], "9.2.0");
        assert_eq!(props["parameters"]["effect"]["defaultValue"], "Deny");
        assert_eq!(
            props["policyRule"]["then"]["details"]["templateInfo"]["url"],
            "https://store.policy.core.windows.net/kubernetes/container-no-privilege/v2/template.yaml"
        );
        assert_eq!(privileged.category.as_deref(), Some("Kubernetes"));
        assert_eq!(cat.set_definitions.len(), 1);
    }
}
