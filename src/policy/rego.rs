//! Gatekeeper Rego on `regorus`: compiling a template's entry module and libs (with positions in
//! errors), and evaluating `violation` with Gatekeeper's input contract so plan-time `test` blocks
//! and the emulator judge objects the way the AKS add-on would.

use serde_json::{json, Map, Value as Json};

/// Which Rego dialect a module is parsed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegoVersion {
    /// Gatekeeper's default for the legacy `rego` field and `code[].source` without `version`.
    #[default]
    V0,
    /// `code[].source.version: v1`.
    V1,
}

/// The Rego of one ConstraintTemplate: the entry module and its libraries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegoSource {
    pub entry: String,
    pub libs: Vec<String>,
    pub version: RegoVersion,
}

/// Which module a diagnostic is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegoModule {
    Entry,
    /// Index into `libs`.
    Lib(usize),
}

impl std::fmt::Display for RegoModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegoModule::Entry => f.write_str("rego"),
            RegoModule::Lib(i) => write!(f, "libs[{i}]"),
        }
    }
}

/// Why Rego could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    #[error("{module}:{line}:{column}: {message}")]
    Syntax {
        module: RegoModule,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{module}: {message}")]
    Invalid { module: RegoModule, message: String },
    #[error("the entry module (package {package}) defines no `violation` rule; Gatekeeper requires `violation[{{\"msg\": msg}}] {{ ... }}`")]
    MissingViolation { package: String },
    #[error("library {index} declares package {package:?}; Gatekeeper requires libraries to sit under `package lib.`")]
    LibPackage { index: usize, package: String },
    #[error("evaluation failed: {0}")]
    Evaluation(String),
}

impl RegoError {
    /// The module an error points into, when it points into one.
    pub fn module(&self) -> Option<RegoModule> {
        match self {
            RegoError::Syntax { module, .. } | RegoError::Invalid { module, .. } => Some(*module),
            RegoError::MissingViolation { .. } => Some(RegoModule::Entry),
            RegoError::LibPackage { index, .. } => Some(RegoModule::Lib(*index)),
            RegoError::Evaluation(_) => None,
        }
    }
}

/// One result of `violation`, as Gatekeeper reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub msg: String,
    pub details: Json,
}

/// A template whose Rego parsed; cheap to evaluate many times.
#[derive(Clone)]
pub struct CompiledRego {
    engine: regorus::Engine,
    package: String,
}

impl std::fmt::Debug for CompiledRego {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRego")
            .field("package", &self.package)
            .finish()
    }
}

const ENTRY_PATH: &str = "template.rego";

fn lib_path(i: usize) -> String {
    format!("lib_{i}.rego")
}

fn module_of(path: &str) -> RegoModule {
    path.strip_prefix("lib_")
        .and_then(|rest| rest.strip_suffix(".rego"))
        .and_then(|n| n.parse().ok())
        .map_or(RegoModule::Entry, RegoModule::Lib)
}

/// Turns regorus' caret-drawing message (`--> file:line:col ... error: msg`) into a typed error.
fn classify(default_module: RegoModule, err: &anyhow::Error) -> RegoError {
    let text = err.to_string();
    let mut position = None;
    let mut message = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(loc) = line.strip_prefix("--> ") {
            let mut parts = loc.rsplitn(3, ':');
            let col = parts.next().and_then(|c| c.parse::<u32>().ok());
            let ln = parts.next().and_then(|l| l.parse::<u32>().ok());
            let file = parts.next().unwrap_or("");
            if let (Some(ln), Some(col)) = (ln, col) {
                if position.is_none() {
                    position = Some((module_of(file), ln, col));
                }
            }
        } else if let Some(m) = line.strip_prefix("error: ") {
            message.get_or_insert_with(|| m.to_string());
        }
    }
    match position {
        Some((module, line, column)) => RegoError::Syntax {
            module,
            line,
            column,
            message: message.unwrap_or_else(|| text.trim().to_string()),
        },
        None => RegoError::Invalid {
            module: default_module,
            message: text.trim().to_string(),
        },
    }
}

/// Deprecated OPA builtins that Azure's templates still call and regorus does not ship.
fn register_legacy_builtins(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    engine.add_extension(
        "re_match".to_string(),
        2,
        Box::new(|args: Vec<regorus::Value>| {
            let (Some(pattern), Some(value)) = (args.first(), args.get(1)) else {
                anyhow::bail!("re_match expects 2 arguments");
            };
            let re = regex::Regex::new(pattern.as_string()?)?;
            Ok(regorus::Value::Bool(re.is_match(value.as_string()?)))
        }),
    )?;
    engine.add_extension(
        "any".to_string(),
        1,
        Box::new(|args: Vec<regorus::Value>| {
            let found = collection_items(args.first())?.iter().any(is_true);
            Ok(regorus::Value::Bool(found))
        }),
    )?;
    engine.add_extension(
        "all".to_string(),
        1,
        Box::new(|args: Vec<regorus::Value>| {
            let every = collection_items(args.first())?.iter().all(is_true);
            Ok(regorus::Value::Bool(every))
        }),
    )?;
    Ok(())
}

fn is_true(v: &regorus::Value) -> bool {
    matches!(v, regorus::Value::Bool(true))
}

fn collection_items(v: Option<&regorus::Value>) -> anyhow::Result<Vec<regorus::Value>> {
    match v {
        Some(regorus::Value::Array(a)) => Ok(a.iter().cloned().collect()),
        Some(regorus::Value::Set(s)) => Ok(s.iter().cloned().collect()),
        _ => anyhow::bail!("expected an array or a set"),
    }
}

/// Keywords OPA's v0 parser only knows after `import future.keywords[.kw]` or `import rego.v1`.
const FUTURE_KEYWORDS: [&str; 4] = ["if", "contains", "in", "every"];

/// The first future keyword a v0 module uses without importing it, as (line, column, keyword).
///
/// regorus' v0 parser accepts these keywords anyway, but Gatekeeper (OPA) rejects such a
/// template, so the provider must too.
fn unimported_future_keyword(module: &str) -> Option<(u32, u32, &'static str)> {
    let strings = regex::Regex::new(r#""([^"\\]|\\.)*"|`[^`]*`"#).ok()?;
    let mut imported: Vec<&str> = Vec::new();
    for line in module.lines() {
        let t = line.trim();
        if t == "import rego.v1" || t == "import future.keywords" {
            return None;
        }
        if let Some(kw) = t.strip_prefix("import future.keywords.") {
            imported.push(kw.trim());
        }
    }
    let words = regex::Regex::new(r"\b(if|contains|every)\b|\bsome\s+[\w\s,]+?\s+(in)\b").ok()?;
    for (i, line) in module.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("package ") || t.starts_with("import ") {
            continue;
        }
        // Blank out string literals and comments so neither can trigger a match.
        let code = strings.replace_all(line, |c: &regex::Captures<'_>| " ".repeat(c[0].len()));
        let code = code.split('#').next().unwrap_or("");
        for caps in words.captures_iter(code) {
            let Some(m) = caps.get(1).or_else(|| caps.get(2)) else {
                continue;
            };
            let Some(kw) = FUTURE_KEYWORDS.iter().find(|k| **k == m.as_str()) else {
                continue;
            };
            // `contains(s, sub)` is also a v0 builtin.
            if code[m.end()..].trim_start().starts_with('(') {
                continue;
            }
            if !imported.contains(kw) {
                let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
                let col = u32::try_from(m.start() + 1).unwrap_or(u32::MAX);
                return Some((line_no, col, kw));
            }
        }
    }
    None
}

/// Parses the entry module and libs and checks Gatekeeper's structural rules.
pub fn compile(source: &RegoSource) -> Result<CompiledRego, RegoError> {
    if source.version == RegoVersion::V0 {
        let modules = std::iter::once((RegoModule::Entry, &source.entry)).chain(
            source
                .libs
                .iter()
                .enumerate()
                .map(|(i, l)| (RegoModule::Lib(i), l)),
        );
        for (module, text) in modules {
            if let Some((line, column, kw)) = unimported_future_keyword(text) {
                return Err(RegoError::Syntax {
                    module,
                    line,
                    column,
                    message: format!(
                        "`{kw}` is a Rego v1 keyword; Gatekeeper parses this template as Rego v0, where it needs `import rego.v1` (or `import future.keywords.{kw}`) after the package line"
                    ),
                });
            }
        }
    }
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(source.version == RegoVersion::V0);
    // Gatekeeper (OPA) treats a failing builtin as undefined rather than aborting the query.
    engine.set_strict_builtin_errors(false);
    register_legacy_builtins(&mut engine).map_err(|e| RegoError::Invalid {
        module: RegoModule::Entry,
        message: format!("registering legacy builtins: {e}"),
    })?;
    let package = engine
        .add_policy(ENTRY_PATH.to_string(), source.entry.clone())
        .map_err(|e| classify(RegoModule::Entry, &e))?;
    for (i, lib) in source.libs.iter().enumerate() {
        let lib_package = engine
            .add_policy(lib_path(i), lib.clone())
            .map_err(|e| classify(RegoModule::Lib(i), &e))?;
        if !lib_package.starts_with("data.lib.") {
            return Err(RegoError::LibPackage {
                index: i,
                package: lib_package.trim_start_matches("data.").to_string(),
            });
        }
    }
    let has_violation = engine
        .has_declared_rule_rooted_at(ENTRY_PATH, "violation")
        .unwrap_or(false);
    if !has_violation {
        return Err(RegoError::MissingViolation {
            package: package.trim_start_matches("data.").to_string(),
        });
    }
    let mut compiled = CompiledRego { engine, package };
    // A dry run surfaces what only the analyser sees (unsafe variables, recursion, unknown
    // imports) at plan time instead of on the cluster.
    compiled.run(&json!({"review": {}, "parameters": {}}), &json!({}))?;
    Ok(compiled)
}

impl CompiledRego {
    /// `data.<package>`, the package of the entry module.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// Evaluates `violation` for one review with the given constraint parameters and
    /// `data.inventory`, as Gatekeeper does.
    pub fn evaluate(
        &self,
        review: &Json,
        parameters: &Json,
        inventory: &Json,
    ) -> Result<Vec<Violation>, RegoError> {
        let parameters = if parameters.is_null() {
            json!({})
        } else {
            parameters.clone()
        };
        let input = json!({"review": review, "parameters": parameters});
        self.clone().run(&input, inventory)
    }

    fn run(&mut self, input: &Json, inventory: &Json) -> Result<Vec<Violation>, RegoError> {
        let engine = &mut self.engine;
        engine.clear_data();
        engine
            .add_data(regorus::Value::from(json!({"inventory": inventory})))
            .map_err(|e| RegoError::Evaluation(e.to_string()))?;
        engine.set_input(regorus::Value::from(input.clone()));
        let result = engine
            .eval_rule(format!("{}.violation", self.package))
            .map_err(|e| classify(RegoModule::Entry, &e))?;
        let json =
            serde_json::to_value(&result).map_err(|e| RegoError::Evaluation(e.to_string()))?;
        let items = match json {
            Json::Array(items) => items,
            // Undefined (no element) comes back as null or an empty object.
            _ => Vec::new(),
        };
        // Gatekeeper drops elements without `msg`.
        let mut violations: Vec<Violation> = items
            .into_iter()
            .filter_map(|item| {
                let msg = item.get("msg")?;
                let msg = match msg {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let details = item.get("details").cloned().unwrap_or_else(|| json!({}));
                Some(Violation { msg, details })
            })
            .collect();
        violations.sort_by(|a, b| a.msg.cmp(&b.msg));
        Ok(violations)
    }
}

/// Kinds the API server keeps outside namespaces; every other kind gets `default` when a
/// manifest omits `metadata.namespace`, as `kubectl apply` would.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "CSINode",
    "PodSecurityPolicy",
    "APIService",
    "VolumeAttachment",
    "ConstraintTemplate",
    "CertificateSigningRequest",
];

/// Whether objects of this kind live outside namespaces.
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED_KINDS.contains(&kind)
}

/// Splits `apiVersion` into (group, version); the core group is "".
pub fn group_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    }
}

/// Builds `input.review` from a bare object or an `AdmissionReview`, the way gator does: bare
/// objects carry only kind, name, namespace and object (no operation, no userInfo).
pub fn review_for(object: &Json) -> Json {
    let is_review = object.get("kind").and_then(Json::as_str) == Some("AdmissionReview");
    if is_review {
        let mut request = object.get("request").cloned().unwrap_or_else(|| json!({}));
        if let Json::Object(map) = &mut request {
            let has_object = map.get("object").is_some_and(|o| !o.is_null());
            if !has_object {
                // Gatekeeper reviews a DELETE against the old object.
                if let Some(old) = map.get("oldObject").cloned() {
                    map.insert("object".into(), old);
                }
            }
        }
        return request;
    }
    let mut object = object.clone();
    let api_version = object
        .get("apiVersion")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let kind = object
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let (group, version) = group_version(&api_version);
    let name = object
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let mut namespace = object
        .pointer("/metadata/namespace")
        .and_then(Json::as_str)
        .map(str::to_string);
    if namespace.is_none() && !is_cluster_scoped(&kind) {
        namespace = Some("default".to_string());
        if let Some(Json::Object(meta)) = object.get_mut("metadata") {
            meta.insert("namespace".into(), json!("default"));
        }
    }
    let mut review = Map::new();
    review.insert(
        "kind".into(),
        json!({"group": group, "version": version, "kind": kind}),
    );
    review.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        review.insert("namespace".into(), json!(ns));
    }
    review.insert("object".into(), object);
    Json::Object(review)
}

/// Kubernetes label selector semantics (`matchLabels` AND every `matchExpressions` entry), as
/// Gatekeeper's `match.labelSelector` applies them to the reviewed object's labels. An empty or
/// absent selector matches everything.
pub fn label_selector_matches(selector: &Json, labels: &Map<String, Json>) -> bool {
    let label = |k: &str| labels.get(k).and_then(Json::as_str);
    if let Some(required) = selector.get("matchLabels").and_then(Json::as_object) {
        if required.iter().any(|(k, v)| label(k) != v.as_str()) {
            return false;
        }
    }
    let expressions = selector
        .get("matchExpressions")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    expressions.iter().all(|e| {
        let key = e.get("key").and_then(Json::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        match e.get("operator").and_then(Json::as_str).unwrap_or("") {
            "In" => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            // Unknown operators select nothing, as the API server rejects them.
            _ => false,
        }
    })
}

/// Builds `data.inventory` from cluster objects: `cluster[gv][kind][name]` for cluster-scoped
/// ones, `namespace[ns][gv][kind][name]` for the rest.
pub fn inventory_from(objects: &[Json]) -> Json {
    let mut cluster = Map::new();
    let mut namespaced = Map::new();
    for object in objects {
        let gv = object
            .get("apiVersion")
            .and_then(Json::as_str)
            .unwrap_or("");
        let kind = object.get("kind").and_then(Json::as_str).unwrap_or("");
        let name = object
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("");
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| (!is_cluster_scoped(kind)).then(|| "default".to_string()));
        let root = match ns {
            Some(ns) => entry(&mut namespaced, &ns),
            None => &mut cluster,
        };
        let by_kind = entry(entry(root, gv), kind);
        by_kind.insert(name.to_string(), object.clone());
    }
    json!({"cluster": cluster, "namespace": namespaced})
}

fn entry<'a>(map: &'a mut Map<String, Json>, key: &str) -> &'a mut Map<String, Json> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Json::Object(Map::new()));
    if !slot.is_object() {
        *slot = Json::Object(Map::new());
    }
    match slot {
        Json::Object(m) => m,
        // Invariant: replaced by an object just above.
        _ => unreachable!("slot is an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LATEST: &str = r#"package k8snolatest

violation[{"msg": msg}] {
  c := input.review.object.spec.containers[_]
  endswith(c.image, ":latest")
  not exempt(c.image)
  msg := sprintf("container %v uses the latest tag", [c.name])
}

exempt(image) {
  image == input.parameters.exemptImages[_]
}
"#;

    fn src(entry: &str) -> RegoSource {
        RegoSource {
            entry: entry.to_string(),
            ..Default::default()
        }
    }

    fn pod(image: &str) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "app", "image": image}]}})
    }

    #[test]
    fn evaluates_violations_with_parameters() {
        let compiled = compile(&src(NO_LATEST)).unwrap();
        let bad = compiled
            .evaluate(&review_for(&pod("nginx:latest")), &json!({}), &json!({}))
            .unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].msg, "container app uses the latest tag");
        let exempt = compiled
            .evaluate(
                &review_for(&pod("nginx:latest")),
                &json!({"exemptImages": ["nginx:latest"]}),
                &json!({}),
            )
            .unwrap();
        assert!(exempt.is_empty());
        let good = compiled
            .evaluate(&review_for(&pod("nginx:1.27")), &Json::Null, &json!({}))
            .unwrap();
        assert!(good.is_empty());
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = compile(&src(
            "package x\n\nviolation[{\"msg\": m}] {\n  m := \"a\"\n  1 +* 2\n}\n",
        ))
        .unwrap_err();
        match err {
            RegoError::Syntax {
                module,
                line,
                column,
                ..
            } => {
                assert_eq!(module, RegoModule::Entry);
                assert_eq!(line, 5);
                assert!(column >= 3, "column {column}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lib_errors_name_the_lib() {
        let mut s = src(NO_LATEST);
        s.libs = vec!["package lib.x\n\nf(x) { x == }\n".into()];
        let err = compile(&s).unwrap_err();
        assert_eq!(err.module(), Some(RegoModule::Lib(0)));
        s.libs = vec!["package notlib\n\nf(x) { x == 1 }\n".into()];
        assert!(matches!(
            compile(&s).unwrap_err(),
            RegoError::LibPackage { index: 0, .. }
        ));
    }

    #[test]
    fn violation_rule_is_required() {
        let err = compile(&src("package x\n\ndeny[msg] { msg := \"no\" }\n")).unwrap_err();
        assert!(matches!(err, RegoError::MissingViolation { .. }), "{err:?}");
    }

    #[test]
    fn rego_v1_import_and_version_work() {
        let v1 = "package x\n\nviolation contains {\"msg\": \"always\"} if { true }\n";
        let mut s = src(&format!("package x\nimport rego.v1\n{}", &v1[10..]));
        assert_eq!(
            compile(&s)
                .unwrap()
                .evaluate(&json!({}), &json!({}), &json!({}))
                .unwrap()
                .len(),
            1
        );
        s = src(v1);
        s.version = RegoVersion::V1;
        assert!(compile(&s).is_ok());
    }

    #[test]
    fn v1_keywords_need_an_import_in_v0() {
        let body = "violation contains {\"msg\": \"if in # contains\"} if {\n  some x in input.xs\n  x == 1 # every\n  not contains(\"a\", \"b\")\n}\n";
        let err = compile(&src(&format!("package x\n\n{body}"))).unwrap_err();
        assert!(
            matches!(
                err,
                RegoError::Syntax {
                    line: 3,
                    column: 11,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(compile(&src(&format!("package x\nimport rego.v1\n\n{body}"))).is_ok());
        assert!(compile(&src(&format!(
            "package x\nimport future.keywords.if\nimport future.keywords.in\nimport future.keywords.contains\n\n{body}"
        )))
        .is_ok());
        let only_if = format!("package x\nimport future.keywords.if\n\n{body}");
        assert!(matches!(
            compile(&src(&only_if)),
            Err(RegoError::Syntax { line: 4, .. })
        ));
    }

    #[test]
    fn legacy_builtins_are_available() {
        let rego = r#"package x
violation[{"msg": "m"}] {
  re_match("^nginx", input.review.object.spec.containers[0].image)
  any([false, true])
  all([true, true])
}
"#;
        let compiled = compile(&src(rego)).unwrap();
        let v = compiled
            .evaluate(&review_for(&pod("nginx:1")), &json!({}), &json!({}))
            .unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn bare_objects_get_default_namespace_and_admission_reviews_pass_through() {
        let review = review_for(&pod("a"));
        assert_eq!(review["namespace"], "default");
        assert_eq!(review["object"]["metadata"]["namespace"], "default");
        assert_eq!(
            review["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        let ns = review_for(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
        );
        assert!(ns.get("namespace").is_none());
        let ar = review_for(
            &json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
            "request": {"operation": "DELETE", "oldObject": pod("x")}}),
        );
        assert_eq!(ar["operation"], "DELETE");
        assert_eq!(ar["object"]["kind"], "Pod");
    }

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let labels = labels.as_object().unwrap();
        assert!(label_selector_matches(&json!({}), labels));
        assert!(label_selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            labels
        ));
        assert!(!label_selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            labels
        ));
        assert!(label_selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]},
                                         {"key": "env", "operator": "DoesNotExist"}]}),
            labels
        ));
        assert!(!label_selector_matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
            labels
        ));
    }

    #[test]
    fn inventory_is_keyed_like_gatekeeper() {
        let inv = inventory_from(&[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "b"}}),
        ]);
        assert_eq!(inv["cluster"]["v1"]["Namespace"]["a"]["kind"], "Namespace");
        assert_eq!(
            inv["namespace"]["b"]["networking.k8s.io/v1"]["Ingress"]["i"]["kind"],
            "Ingress"
        );
    }
}
