//! Loading built-in definitions from a directory laid out like Azure/azure-policy:
//! `<root>/built-in-policies/policyDefinitions/<Category>/*.json` and
//! `<root>/built-in-policies/policySetDefinitions/<Category>/*.json`.
//!
//! Files that cannot be read or parsed are skipped with a warning: one odd file in a large
//! upstream checkout should not make every other definition unavailable.

use std::path::{Path, PathBuf};

use super::definition_body::{
    policy_type, PolicyDefinition, PolicySetDefinition, POLICY_DEFINITION_TYPE,
    POLICY_SET_DEFINITION_TYPE,
};

/// Errors that make a whole directory unusable (individual bad files are only skipped).
#[derive(Debug, thiserror::Error)]
pub enum BuiltinsError {
    #[error("built-ins directory {path} has neither built-in-policies/ nor policyDefinitions/")]
    NotABuiltinsDir { path: PathBuf },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Built-in definitions and set definitions, in a stable order (by category dir, then file).
#[derive(Debug, Clone, Default)]
pub struct BuiltinCatalogue {
    pub definitions: Vec<PolicyDefinition>,
    pub set_definitions: Vec<PolicySetDefinition>,
    /// One line per skipped file, already logged.
    pub warnings: Vec<String>,
}

impl BuiltinCatalogue {
    /// Loads a directory; `root` may be the repository root or its `built-in-policies` folder.
    pub fn load_dir(root: &Path) -> Result<Self, BuiltinsError> {
        let base = if root.join("built-in-policies").is_dir() {
            root.join("built-in-policies")
        } else if root.join("policyDefinitions").is_dir() {
            root.to_path_buf()
        } else {
            return Err(BuiltinsError::NotABuiltinsDir {
                path: root.to_path_buf(),
            });
        };
        let mut catalogue = Self::default();
        for file in json_files(&base.join("policyDefinitions"))? {
            match read_definition(&file) {
                Ok(def) => catalogue.definitions.push(def),
                Err(msg) => catalogue.skip(msg),
            }
        }
        for file in json_files(&base.join("policySetDefinitions"))? {
            match read_set_definition(&file) {
                Ok(def) => catalogue.set_definitions.push(def),
                Err(msg) => catalogue.skip(msg),
            }
        }
        Ok(catalogue)
    }

    fn skip(&mut self, msg: String) {
        log::warn!("skipping built-in file: {msg}");
        self.warnings.push(msg);
    }
}

/// Parses one built-in definition document and fills `id`, `type` and `policyType` the way ARM
/// reports them (the upstream files omit `type`).
pub fn parse_builtin_definition(text: &str) -> Result<PolicyDefinition, serde_json::Error> {
    let mut def: PolicyDefinition = serde_json::from_str(text)?;
    def.resource_type = Some(POLICY_DEFINITION_TYPE.to_string());
    if def.properties.policy_type.is_none() {
        def.properties.policy_type = Some(policy_type::BUILT_IN.to_string());
    }
    if def.id.is_none() {
        if let Some(name) = &def.name {
            def.id = Some(format!("/providers/{POLICY_DEFINITION_TYPE}/{name}"));
        }
    }
    Ok(def)
}

/// Like [`parse_builtin_definition`] for set definitions.
pub fn parse_builtin_set_definition(text: &str) -> Result<PolicySetDefinition, serde_json::Error> {
    let mut def: PolicySetDefinition = serde_json::from_str(text)?;
    def.resource_type = Some(POLICY_SET_DEFINITION_TYPE.to_string());
    if def.properties.policy_type.is_none() {
        def.properties.policy_type = Some(policy_type::BUILT_IN.to_string());
    }
    if def.id.is_none() {
        if let Some(name) = &def.name {
            def.id = Some(format!("/providers/{POLICY_SET_DEFINITION_TYPE}/{name}"));
        }
    }
    Ok(def)
}

fn read_definition(path: &Path) -> Result<PolicyDefinition, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let def = parse_builtin_definition(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if def.name.is_none() {
        return Err(format!("{}: no \"name\"", path.display()));
    }
    Ok(def)
}

fn read_set_definition(path: &Path) -> Result<PolicySetDefinition, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let def =
        parse_builtin_set_definition(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if def.name.is_none() {
        return Err(format!("{}: no \"name\"", path.display()));
    }
    Ok(def)
}

/// `*.json` files one category level below `dir`, sorted; a missing `dir` yields none.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, BuiltinsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuiltinsError::Io { path, source }
    };
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    let mut categories: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    categories.sort();
    for category in categories {
        let mut in_category: Vec<PathBuf> = std::fs::read_dir(&category)
            .map_err(io(&category))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
            .collect();
        in_category.sort();
        files.extend(in_category);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_skips_bad_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cat = dir
            .path()
            .join("built-in-policies/policyDefinitions/General");
        std::fs::create_dir_all(&cat).expect("mkdir");
        std::fs::write(
            cat.join("a.json"),
            r#"{"name":"abc","properties":{"displayName":"A","mode":"All"}}"#,
        )
        .expect("write");
        std::fs::write(cat.join("broken.json"), "{not json").expect("write");
        let loaded = BuiltinCatalogue::load_dir(dir.path()).expect("loads");
        assert_eq!(loaded.definitions.len(), 1);
        assert_eq!(loaded.warnings.len(), 1);
        let def = &loaded.definitions[0];
        assert_eq!(
            def.id.as_deref(),
            Some("/providers/Microsoft.Authorization/policyDefinitions/abc")
        );
        assert_eq!(def.resource_type.as_deref(), Some(POLICY_DEFINITION_TYPE));
        assert_eq!(def.properties.policy_type.as_deref(), Some("BuiltIn"));
    }

    #[test]
    fn rejects_unrelated_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(BuiltinCatalogue::load_dir(dir.path()).is_err());
    }
}
