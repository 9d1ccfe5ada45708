//! Gatekeeper ConstraintTemplates: parsing the YAML users and Azure hand us, checking the rules
//! Gatekeeper and the AKS add-on enforce, rendering one from its parts, and mapping its
//! parameters schema onto Azure Policy parameter types.

use serde_json::{json, Map, Value as Json};

use super::json::strings;
use super::rego::{RegoSource, RegoVersion};

/// The only target Gatekeeper's admission webhook evaluates.
pub const GATEKEEPER_TARGET: &str = "admission.k8s.gatekeeper.sh";
/// apiVersion of templates this provider renders.
pub const RENDERED_API_VERSION: &str = "templates.gatekeeper.sh/v1";

/// Why a ConstraintTemplate is unusable. `path` fields name the YAML path at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid YAML{}: {message}", location.map(|(l, c)| format!(" at line {l}, column {c}")).unwrap_or_default())]
    Yaml {
        message: String,
        location: Option<(usize, usize)>,
    },
    #[error("kind is {0:?}, expected ConstraintTemplate")]
    NotATemplate(String),
    #[error("{path} is missing")]
    Missing { path: &'static str },
    #[error("metadata.name is {name:?} but must be the lower-case of spec.crd.spec.names.kind ({expected:?})")]
    NameMismatch { name: String, expected: String },
    #[error("spec.crd.spec.names.kind {0:?} must be CamelCase letters and digits starting with an upper-case letter")]
    BadKind(String),
    #[error("spec.targets must hold exactly one target, {GATEKEEPER_TARGET}; found {0}")]
    Targets(String),
    #[error("the template has no Rego: neither spec.targets[0].rego nor a code[] entry with engine Rego (CEL-only templates cannot be evaluated)")]
    NoRego,
    #[error("parameter {name:?}: {message}")]
    Parameter { name: String, message: String },
}

/// Azure Policy parameter types a schema property can map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AzureParameterType {
    String,
    Integer,
    Float,
    Boolean,
    Array,
    Object,
}

impl AzureParameterType {
    /// Spelling in a definition's `parameters`.
    pub fn as_str(self) -> &'static str {
        match self {
            AzureParameterType::String => "String",
            AzureParameterType::Integer => "Integer",
            AzureParameterType::Float => "Float",
            AzureParameterType::Boolean => "Boolean",
            AzureParameterType::Array => "Array",
            AzureParameterType::Object => "Object",
        }
    }

    /// From an openAPIV3Schema `type`.
    pub fn from_openapi(t: &str) -> Option<Self> {
        Some(match t {
            "string" => AzureParameterType::String,
            "integer" => AzureParameterType::Integer,
            "number" => AzureParameterType::Float,
            "boolean" => AzureParameterType::Boolean,
            "array" => AzureParameterType::Array,
            "object" => AzureParameterType::Object,
            _ => return None,
        })
    }
}

/// One property of a template's parameters schema.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateParameter {
    pub name: String,
    pub parameter_type: AzureParameterType,
    pub description: Option<String>,
    /// The property's own schema, kept for Azure's `schema` on Object parameters.
    pub schema: Json,
}

/// A parsed, validated ConstraintTemplate.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstraintTemplate {
    pub api_version: String,
    pub name: String,
    /// The Constraint kind the template defines (`spec.crd.spec.names.kind`).
    pub kind: String,
    /// `spec.crd.spec.validation.openAPIV3Schema`, when declared.
    pub parameters_schema: Option<Json>,
    pub rego: RegoSource,
    /// The whole document, as parsed.
    pub document: Json,
}

/// Largest YAML text the provider and emulator parse (templates, objects, inventory): well above
/// what Kubernetes stores in one object (about 1.5 MiB in etcd).
pub const MAX_YAML_BYTES: usize = 4 << 20;
/// Deepest nesting of flow collections (`[`, `{`) accepted; Kubernetes objects stay far below.
pub const MAX_YAML_DEPTH: usize = 100;

/// Refuses YAML that is too large or nests too deeply before any parser sees it: libyaml takes
/// minutes on 100k nested brackets, and deep values would exhaust the evaluator's stack.
pub fn check_yaml_shape(text: &str) -> Result<(), TemplateError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(TemplateError::Yaml {
            message: format!(
                "the YAML is {} bytes; at most {MAX_YAML_BYTES} are accepted",
                text.len()
            ),
            location: None,
        });
    }
    let mut depth = 0usize;
    // Block nesting: indentation levels of the lines seen so far.
    let mut indents: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches([' ', '-']);
        let indent = line.len() - body.len();
        if !body.is_empty() && !body.starts_with('#') && depth == 0 {
            while indents.last().is_some_and(|l| *l >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = line.char_indices().peekable();
        while let Some((col, c)) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') if prev.is_whitespace() || "[{,:(".contains(prev) => {
                    quote = Some(c);
                }
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = c;
            if depth + indents.len() > MAX_YAML_DEPTH {
                return Err(TemplateError::Yaml {
                    message: format!("the YAML nests deeper than {MAX_YAML_DEPTH} levels"),
                    location: Some((i + 1, col + 1)),
                });
            }
        }
    }
    Ok(())
}

/// Parses YAML (one document) into JSON, keeping the location of syntax errors.
pub fn parse_yaml(text: &str) -> Result<Json, TemplateError> {
    check_yaml_shape(text)?;
    serde_yaml_ng::from_str::<Json>(text).map_err(|e| TemplateError::Yaml {
        location: e.location().map(|l| (l.line(), l.column())),
        message: e.to_string(),
    })
}

/// Parses every document of a multi-document YAML stream, skipping empty ones.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Json>, TemplateError> {
    use serde::Deserialize;
    check_yaml_shape(text)?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Json::deserialize(doc).map_err(|e| TemplateError::Yaml {
            location: e.location().map(|l| (l.line(), l.column())),
            message: e.to_string(),
        })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn str_at<'a>(doc: &'a Json, pointer: &str) -> Option<&'a str> {
    doc.pointer(pointer).and_then(Json::as_str)
}

/// Whether `kind` is a CamelCase Kubernetes kind.
pub fn is_valid_kind(kind: &str) -> bool {
    let mut chars = kind.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

impl ConstraintTemplate {
    /// Parses and validates template YAML.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::from_document(parse_yaml(text)?)
    }

    /// Validates an already parsed template document.
    pub fn from_document(document: Json) -> Result<Self, TemplateError> {
        let doc_kind = str_at(&document, "/kind").unwrap_or("");
        if doc_kind != "ConstraintTemplate" {
            return Err(TemplateError::NotATemplate(doc_kind.to_string()));
        }
        let api_version = str_at(&document, "/apiVersion")
            .ok_or(TemplateError::Missing { path: "apiVersion" })?
            .to_string();
        let name = str_at(&document, "/metadata/name")
            .ok_or(TemplateError::Missing {
                path: "metadata.name",
            })?
            .to_string();
        let kind = str_at(&document, "/spec/crd/spec/names/kind")
            .ok_or(TemplateError::Missing {
                path: "spec.crd.spec.names.kind",
            })?
            .to_string();
        if !is_valid_kind(&kind) {
            return Err(TemplateError::BadKind(kind));
        }
        if name != kind.to_lowercase() {
            return Err(TemplateError::NameMismatch {
                name,
                expected: kind.to_lowercase(),
            });
        }
        let targets = document
            .pointer("/spec/targets")
            .and_then(Json::as_array)
            .ok_or(TemplateError::Missing {
                path: "spec.targets",
            })?;
        let target = match targets.as_slice() {
            [one] if str_at(one, "/target") == Some(GATEKEEPER_TARGET) => one,
            other => {
                let names: Vec<&str> = other
                    .iter()
                    .map(|t| str_at(t, "/target").unwrap_or("<unnamed>"))
                    .collect();
                return Err(TemplateError::Targets(if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }));
            }
        };
        let rego = rego_of(target).ok_or(TemplateError::NoRego)?;
        let parameters_schema = document
            .pointer("/spec/crd/spec/validation/openAPIV3Schema")
            .cloned()
            .filter(|s| !s.is_null());
        let template = ConstraintTemplate {
            api_version,
            name,
            kind,
            parameters_schema,
            rego,
            document,
        };
        template.parameters()?;
        Ok(template)
    }

    /// Compiles the template's Rego (see [`super::rego::compile`]).
    pub fn compile(&self) -> Result<super::rego::CompiledRego, super::rego::RegoError> {
        super::rego::compile(&self.rego)
    }

    /// Reviews one object (bare manifest or AdmissionReview) as Gatekeeper would, with the
    /// constraint's parameters and the cluster objects visible as `data.inventory`. Match rules
    /// are the caller's business.
    pub fn evaluate(
        &self,
        parameters: &Json,
        object: &Json,
        inventory: &[Json],
    ) -> Result<Vec<super::rego::Violation>, super::rego::RegoError> {
        let compiled = self.compile()?;
        compiled.evaluate(
            &super::rego::review_for(object),
            parameters,
            &super::rego::inventory_from(inventory),
        )
    }

    /// The template's parameters with their Azure types, in schema order (sorted by name).
    pub fn parameters(&self) -> Result<Vec<TemplateParameter>, TemplateError> {
        match &self.parameters_schema {
            Some(schema) => schema_parameters(schema),
            None => Ok(Vec::new()),
        }
    }
}

/// Gatekeeper's choice of Rego: legacy `rego` + `libs` wins, else the `code[]` Rego engine.
fn rego_of(target: &Json) -> Option<RegoSource> {
    if let Some(entry) = target.get("rego").and_then(Json::as_str) {
        if !entry.trim().is_empty() {
            return Some(RegoSource {
                entry: entry.to_string(),
                libs: strings(target.get("libs")),
                version: RegoVersion::V0,
            });
        }
    }
    let code = target.get("code").and_then(Json::as_array)?;
    let rego = code
        .iter()
        .find(|c| c.get("engine").and_then(Json::as_str) == Some("Rego"))?;
    let source = rego.get("source")?;
    let entry = source.get("rego").and_then(Json::as_str)?;
    let version = match source.get("version").and_then(Json::as_str) {
        Some(v) if v.eq_ignore_ascii_case("v1") => RegoVersion::V1,
        _ => RegoVersion::V0,
    };
    Some(RegoSource {
        entry: entry.to_string(),
        libs: strings(source.get("libs")),
        version,
    })
}

/// Maps the properties of an openAPIV3Schema object to Azure parameters.
pub fn schema_parameters(schema: &Json) -> Result<Vec<TemplateParameter>, TemplateError> {
    let Some(properties) = schema.get("properties") else {
        return Ok(Vec::new());
    };
    let properties = properties
        .as_object()
        .ok_or_else(|| TemplateError::Parameter {
            name: "properties".into(),
            message: "`properties` must be an object".into(),
        })?;
    let mut out = Vec::new();
    for (name, prop) in properties {
        let parameter_type = match prop.get("type") {
            Some(Json::String(t)) => {
                AzureParameterType::from_openapi(t).ok_or_else(|| TemplateError::Parameter {
                    name: name.clone(),
                    message: format!(
                        "type {t:?} has no Azure Policy parameter type (use string, integer, number, boolean, array or object)"
                    ),
                })?
            }
            // Schemaless properties (x-kubernetes-preserve-unknown-fields) carry any JSON; Azure's
            // closest type is Object.
            None if prop
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Json::as_bool)
                == Some(true) =>
            {
                AzureParameterType::Object
            }
            _ => {
                return Err(TemplateError::Parameter {
                    name: name.clone(),
                    message: "has no `type`; Azure needs one to declare the parameter".into(),
                })
            }
        };
        out.push(TemplateParameter {
            name: name.clone(),
            parameter_type,
            description: prop
                .get("description")
                .and_then(Json::as_str)
                .map(str::to_string),
            schema: prop.clone(),
        });
    }
    Ok(out)
}

/// The parts from which the provider renders a template (the `template` block).
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateSpec {
    pub kind: String,
    pub rego: String,
    pub libs: Vec<String>,
    /// openAPIV3Schema of the Constraint's `spec.parameters`.
    pub parameters_schema: Option<Json>,
}

impl TemplateSpec {
    /// The template document; deterministic so re-rendering gives identical bytes.
    pub fn document(&self) -> Json {
        let mut target = Map::new();
        target.insert("target".into(), json!(GATEKEEPER_TARGET));
        target.insert("rego".into(), json!(self.rego));
        if !self.libs.is_empty() {
            target.insert("libs".into(), json!(self.libs));
        }
        let mut crd_spec = Map::new();
        crd_spec.insert("names".into(), json!({"kind": self.kind}));
        if let Some(schema) = &self.parameters_schema {
            crd_spec.insert("validation".into(), json!({"openAPIV3Schema": schema}));
        }
        json!({
            "apiVersion": RENDERED_API_VERSION,
            "kind": "ConstraintTemplate",
            "metadata": {"name": self.kind.to_lowercase()},
            "spec": {
                "crd": {"spec": crd_spec},
                "targets": [target],
            }
        })
    }

    /// Renders the ConstraintTemplate YAML and validates it like a user-supplied one.
    pub fn render(&self) -> Result<(String, ConstraintTemplate), TemplateError> {
        let document = self.document();
        let yaml = to_yaml(&document)?;
        let template = ConstraintTemplate::from_document(document)?;
        Ok((yaml, template))
    }
}

/// Serialises JSON as YAML.
pub fn to_yaml(value: &Json) -> Result<String, TemplateError> {
    serde_yaml_ng::to_string(value).map_err(|e| TemplateError::Yaml {
        message: e.to_string(),
        location: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_or_huge_yaml_is_refused_before_parsing() {
        let started = std::time::Instant::now();
        let deep = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_yaml(&deep).unwrap_err();
        assert!(err.to_string().contains("nests deeper"), "{err}");
        let block: String = (0..150)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(parse_yaml_documents(&block).is_err());
        let huge = "a: ".to_string() + &"x".repeat(MAX_YAML_BYTES);
        assert!(parse_yaml(&huge).unwrap_err().to_string().contains("bytes"));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // Brackets inside strings, comments and block scalars of Rego do not count.
        let ok = "rego: |\n  x := \"[[[[\"\n  # [[[[\nlist: [a, [b, {c: d}]]\n";
        assert!(parse_yaml(ok).is_ok());
    }

    const LEGACY: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredteam
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredTeam
      validation:
        openAPIV3Schema:
          type: object
          properties:
            teams:
              type: array
              items: {type: string}
            strict:
              type: boolean
            limit:
              type: integer
            ratio:
              type: number
            note:
              type: string
            extra:
              type: object
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredteam
        violation[{"msg": "no team"}] { not input.review.object.metadata.labels.team }
      libs:
        - |
          package lib.helpers
          x := 1
"#;

    #[test]
    fn parses_legacy_template_and_maps_parameter_types() {
        let t = ConstraintTemplate::parse(LEGACY).unwrap();
        assert_eq!(t.kind, "K8sRequiredTeam");
        assert_eq!(t.rego.libs.len(), 1);
        assert_eq!(t.rego.version, RegoVersion::V0);
        let types: Vec<(String, &str)> = t
            .parameters()
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.parameter_type.as_str()))
            .collect();
        assert_eq!(
            types,
            vec![
                ("extra".into(), "Object"),
                ("limit".into(), "Integer"),
                ("note".into(), "String"),
                ("ratio".into(), "Float"),
                ("strict".into(), "Boolean"),
                ("teams".into(), "Array"),
            ]
        );
    }

    #[test]
    fn code_form_picks_rego_engine_and_version() {
        let yaml = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sx}
spec:
  crd: {spec: {names: {kind: K8sX}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source: {validations: []}
        - engine: Rego
          source:
            version: v1
            rego: "package x"
            libs: ["package lib.y"]
"#;
        let t = ConstraintTemplate::parse(yaml).unwrap();
        assert_eq!(t.rego.entry, "package x");
        assert_eq!(t.rego.libs, vec!["package lib.y".to_string()]);
        assert_eq!(t.rego.version, RegoVersion::V1);
    }

    #[test]
    fn enforces_name_kind_and_target_rules() {
        let wrong_name = LEGACY.replace("name: k8srequiredteam", "name: k8steam");
        assert!(matches!(
            ConstraintTemplate::parse(&wrong_name),
            Err(TemplateError::NameMismatch { .. })
        ));
        let wrong_target = LEGACY.replace("target: admission.k8s.gatekeeper.sh", "target: other");
        assert!(matches!(
            ConstraintTemplate::parse(&wrong_target),
            Err(TemplateError::Targets(_))
        ));
        let err = ConstraintTemplate::parse("a: [").unwrap_err();
        assert!(
            matches!(
                err,
                TemplateError::Yaml {
                    location: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
        let bad_type = LEGACY.replace("type: number", "type: date");
        assert!(matches!(
            ConstraintTemplate::parse(&bad_type),
            Err(TemplateError::Parameter { .. })
        ));
    }

    #[test]
    fn rendering_round_trips_and_is_stable() {
        let spec = TemplateSpec {
            kind: "K8sNoLatest".into(),
            rego: "package k8snolatest\n\nviolation[{\"msg\": \"x\"}] { false }\n".into(),
            libs: vec![],
            parameters_schema: Some(
                json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            ),
        };
        let (yaml, template) = spec.render().unwrap();
        assert_eq!(template.name, "k8snolatest");
        let reparsed = ConstraintTemplate::parse(&yaml).unwrap();
        assert_eq!(reparsed.rego.entry, spec.rego);
        assert_eq!(reparsed.parameters_schema, spec.parameters_schema);
        assert_eq!(spec.render().unwrap().0, yaml);
    }

    #[test]
    fn evaluates_objects() {
        let t = ConstraintTemplate::parse(LEGACY).unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let v = t.evaluate(&json!({}), &pod, &[]).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].msg, "no team");
        let labelled = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"team": "a"}}});
        assert!(t.evaluate(&json!({}), &labelled, &[]).unwrap().is_empty());
    }

    #[test]
    fn multi_document_yaml() {
        let docs = parse_yaml_documents("a: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs.len(), 2);
    }
}

/// Compiled templates by their Rego, so repeated reviews (audits, admissions, plan-time reviews)
/// don't recompile. Grows with the distinct templates seen, which a process sees few of.
#[derive(Default)]
pub struct CompileCache {
    /// Failures are kept too, so a hostile template costs its compile budget once, not on
    /// every request.
    #[allow(clippy::type_complexity)]
    compiled: std::sync::Mutex<
        std::collections::HashMap<
            String,
            Result<std::sync::Arc<super::rego::CompiledRego>, super::rego::RegoError>,
        >,
    >,
}

impl CompileCache {
    pub fn get(
        &self,
        template: &ConstraintTemplate,
    ) -> Result<std::sync::Arc<super::rego::CompiledRego>, super::rego::RegoError> {
        let key = format!(
            "{:?}|{}|{}",
            template.rego.version,
            template.rego.entry,
            template.rego.libs.join("\u{0}")
        );
        let lock = || match self.compiled.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = lock().get(&key) {
            return c.clone();
        }
        // Compiled without the lock: a slow template must not hold up other callers.
        let compiled = template.compile().map(std::sync::Arc::new);
        if let Err(e) = &compiled {
            log::warn!("template {}: {e}", template.name);
        }
        lock().insert(key, compiled.clone());
        compiled
    }

    /// One cache per process, for callers without a state of their own (the provider).
    pub fn process() -> &'static CompileCache {
        static CACHE: std::sync::OnceLock<CompileCache> = std::sync::OnceLock::new();
        CACHE.get_or_init(CompileCache::default)
    }
}
