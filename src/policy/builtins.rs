//! Loading built-in definitions from a directory laid out like Azure/azure-policy:
//! `<root>/built-in-policies/policyDefinitions/<Category>/*.json` and
//! `<root>/built-in-policies/policySetDefinitions/<Category>/*.json`.
//!
//! Files that cannot be read or parsed are skipped with a warning: one odd file in a large
//! upstream checkout should not make every other definition unavailable.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::definition_body::{
    policy_type, ArmEnvelope, PolicyDefinition, PolicyDefinitionProperties, PolicySetDefinition,
    PolicySetDefinitionProperties, POLICY_DEFINITION_TYPE, POLICY_SET_DEFINITION_TYPE,
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
        catalogue.definitions = catalogue.read_all(&base.join("policyDefinitions"))?;
        catalogue.set_definitions = catalogue.read_all(&base.join("policySetDefinitions"))?;
        Ok(catalogue)
    }

    /// Every readable document below `dir`; the others are skipped with a warning.
    fn read_all<P>(&mut self, dir: &Path) -> Result<Vec<ArmEnvelope<P>>, BuiltinsError>
    where
        P: BuiltinProperties,
        ArmEnvelope<P>: DeserializeOwned,
    {
        let mut read = Vec::new();
        for file in json_files(dir)? {
            match read_builtin(&file) {
                Ok(def) => read.push(def),
                Err(msg) => self.skip(msg),
            }
        }
        Ok(read)
    }

    fn skip(&mut self, msg: String) {
        log::warn!("skipping built-in file: {msg}");
        self.warnings.push(msg);
    }
}

/// Parses one built-in definition document and fills `id`, `type` and `policyType` the way ARM
/// reports them (the upstream files omit `type`).
pub fn parse_builtin_definition(text: &str) -> Result<PolicyDefinition, serde_json::Error> {
    parse_builtin(text)
}

/// Like [`parse_builtin_definition`] for set definitions.
pub fn parse_builtin_set_definition(text: &str) -> Result<PolicySetDefinition, serde_json::Error> {
    parse_builtin(text)
}

/// The `properties` of the two kinds of built-in document, and the ARM type each is listed as.
trait BuiltinProperties: Sized {
    const RESOURCE_TYPE: &'static str;
    fn policy_type_mut(&mut self) -> &mut Option<String>;
}

impl BuiltinProperties for PolicyDefinitionProperties {
    const RESOURCE_TYPE: &'static str = POLICY_DEFINITION_TYPE;
    fn policy_type_mut(&mut self) -> &mut Option<String> {
        &mut self.policy_type
    }
}

impl BuiltinProperties for PolicySetDefinitionProperties {
    const RESOURCE_TYPE: &'static str = POLICY_SET_DEFINITION_TYPE;
    fn policy_type_mut(&mut self) -> &mut Option<String> {
        &mut self.policy_type
    }
}

fn parse_builtin<P>(text: &str) -> Result<ArmEnvelope<P>, serde_json::Error>
where
    P: BuiltinProperties,
    ArmEnvelope<P>: DeserializeOwned,
{
    let mut def: ArmEnvelope<P> = serde_json::from_str(text)?;
    def.resource_type = Some(P::RESOURCE_TYPE.to_string());
    def.properties
        .policy_type_mut()
        .get_or_insert_with(|| policy_type::BUILT_IN.to_string());
    if def.id.is_none() {
        if let Some(name) = &def.name {
            def.id = Some(format!("/providers/{}/{name}", P::RESOURCE_TYPE));
        }
    }
    Ok(def)
}

/// One file of the catalogue; a document without a name cannot be addressed, so it is skipped.
fn read_builtin<P>(path: &Path) -> Result<ArmEnvelope<P>, String>
where
    P: BuiltinProperties,
    ArmEnvelope<P>: DeserializeOwned,
{
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let def = parse_builtin::<P>(&text).map_err(|e| format!("{}: {e}", path.display()))?;
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
