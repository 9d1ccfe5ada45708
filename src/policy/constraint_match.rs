//! Gatekeeper's `spec.match`: which objects a constraint reviews, and workload expansion (a
//! Deployment also reviewed as the Pod it creates). The one implementation that plan-time
//! `test` blocks, the emulator's admission webhook and its audit all go through.
//!
//! Rules follow Gatekeeper's `pkg/mutation/match` (see the reference notes, section 4.3): every
//! matcher present must pass, an absent matcher matches everything.

use serde_json::{json, Map, Value as Json};

use super::json::{object_name, object_namespace};

/// Namespaces the AKS policy add-on never reviews, whatever a definition's
/// `excludedNamespaces` says: Azure's built-ins describe kube-system, gatekeeper-system and
/// azure-arc as "always excluded by design".
pub const AKS_EXEMPT_NAMESPACES: [&str; 3] = ["kube-system", "gatekeeper-system", "azure-arc"];

/// Gatekeeper's `match.source`: which objects a constraint sees with expansion on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatchSource {
    /// Objects as submitted and the resources expansion generates from them.
    All,
    /// Only objects as submitted (Azure's default).
    #[default]
    Original,
    /// Only generated resources (e.g. the Pod of a Deployment).
    Generated,
}

impl MatchSource {
    /// From Azure's `details.source` or Gatekeeper's `match.source`; anything unknown is
    /// Gatekeeper's default, All.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "original" => MatchSource::Original,
            "generated" => MatchSource::Generated,
            _ => MatchSource::All,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MatchSource::All => "All",
            MatchSource::Original => "Original",
            MatchSource::Generated => "Generated",
        }
    }
}

/// Gatekeeper's `match.scope`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatchScope {
    /// `*` or absent: every object.
    #[default]
    Any,
    /// Namespace objects and objects without a namespace.
    Cluster,
    /// Objects in a namespace (not Namespace objects themselves).
    Namespaced,
}

impl MatchScope {
    /// Anything but `Cluster` / `Namespaced` is `*`, as in Gatekeeper.
    pub fn parse(s: &str) -> Self {
        match s {
            "Cluster" => MatchScope::Cluster,
            "Namespaced" => MatchScope::Namespaced,
            _ => MatchScope::Any,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MatchScope::Any => "*",
            MatchScope::Cluster => "Cluster",
            MatchScope::Namespaced => "Namespaced",
        }
    }
}

/// One `match.kinds` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindSelector {
    /// Empty or `*` = any group; `""` is the core group.
    pub api_groups: Vec<String>,
    /// Empty or `*` = any kind.
    pub kinds: Vec<String>,
}

/// `spec.match` of a Constraint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConstraintMatch {
    /// Empty matches every kind.
    pub kinds: Vec<KindSelector>,
    pub namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    /// A Kubernetes label selector on the object's labels; `{}` matches everything.
    pub label_selector: Json,
    /// A label selector on the labels of the object's Namespace; `None` when absent.
    pub namespace_selector: Option<Json>,
    /// `metadata.name` wildcard.
    pub name: Option<String>,
    pub scope: MatchScope,
    pub source: MatchSource,
}

/// One object as a constraint sees it: `input.review`, and whether expansion generated it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewTarget {
    /// `input.review` for Rego.
    pub review: Json,
    /// Set for an object expansion generated: the expansion's name.
    pub generated_by: Option<String>,
}

/// Why a match could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// Gatekeeper errors too: a namespaceSelector needs the Namespace object's labels.
    #[error("the constraint has a namespaceSelector, but the Namespace {0:?} is not among the cluster's objects (add the Namespace manifest to the inventory)")]
    UnknownNamespace(String),
}

fn text<'a>(v: &'a Json, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Json::as_str).unwrap_or("")
}

/// The namespace Gatekeeper's namespace matchers see for a review: the object's own name for a
/// Namespace, else the request's (or object's) namespace; `None` for other cluster-scoped
/// objects.
pub fn review_namespace(review: &Json) -> Option<&str> {
    let object = review.get("object").unwrap_or(&Json::Null);
    if is_namespace_object(review) {
        return object_name(object);
    }
    review
        .get("namespace")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| object_namespace(object).filter(|s| !s.is_empty()))
}

fn is_namespace_object(review: &Json) -> bool {
    text(review, "/kind/kind") == "Namespace" && text(review, "/kind/group").is_empty()
}

/// Whether the cluster never sends this review to Gatekeeper (namespaces exempt for the whole
/// cluster, such as [`AKS_EXEMPT_NAMESPACES`]).
pub fn is_exempt(review: &Json, exempt_namespaces: &[&str]) -> bool {
    review_namespace(review)
        .is_some_and(|ns| exempt_namespaces.iter().any(|p| wildcard_matches(p, ns)))
}

/// Gatekeeper's namespace and name wildcards: `kube-*` prefix, `*-system` suffix, `*sys*`
/// contains, else exact.
pub fn wildcard_matches(pattern: &str, value: &str) -> bool {
    let starts = pattern.starts_with('*');
    let ends = pattern.ends_with('*') && pattern.len() > 1;
    match (starts, ends) {
        (true, true) => value.contains(&pattern[1..pattern.len() - 1]),
        (true, false) => value.ends_with(&pattern[1..]),
        (false, true) => value.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => pattern == value,
    }
}

/// The Namespace object `name` in a `data.inventory` document.
fn inventory_namespace<'a>(inventory: &'a Json, name: &str) -> Option<&'a Json> {
    inventory
        .get("cluster")
        .and_then(|c| c.get("v1"))
        .and_then(|v| v.get("Namespace"))
        .and_then(|n| n.get(name))
}

fn labels_of(object: &Json) -> Map<String, Json> {
    object
        .pointer("/metadata/labels")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A list of names in a match document: a list of strings, or one non-empty string (parameters
/// resolved to a single value); anything else is empty.
pub(crate) fn string_or_list(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect(),
        Some(Json::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

impl ConstraintMatch {
    /// A `spec.match` document as Gatekeeper reads it (constraints and mutators alike);
    /// `default_source` is what an absent `source` means for the caller.
    pub fn from_document(m: &Json, default_source: MatchSource) -> ConstraintMatch {
        let selector = |v: Option<&Json>| v.filter(|s| s.is_object()).cloned();
        let kinds = m
            .get("kinds")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .map(|e| KindSelector {
                api_groups: string_or_list(e.get("apiGroups")),
                kinds: string_or_list(e.get("kinds")),
            })
            .collect();
        ConstraintMatch {
            kinds,
            namespaces: string_or_list(m.get("namespaces")),
            excluded_namespaces: string_or_list(m.get("excludedNamespaces")),
            label_selector: selector(m.get("labelSelector")).unwrap_or_else(|| json!({})),
            namespace_selector: selector(m.get("namespaceSelector")),
            name: m.get("name").and_then(Json::as_str).map(str::to_string),
            scope: m
                .get("scope")
                .and_then(Json::as_str)
                .map_or(MatchScope::Any, MatchScope::parse),
            source: m
                .get("source")
                .and_then(Json::as_str)
                .map_or(default_source, MatchSource::parse),
        }
    }

    /// Whether the constraint reviews this target. `inventory` (`data.inventory`) supplies the
    /// Namespace objects a namespaceSelector looks at.
    pub fn matches(&self, target: &ReviewTarget, inventory: &Json) -> Result<bool, MatchError> {
        let source_ok = match self.source {
            MatchSource::All => true,
            MatchSource::Original => target.generated_by.is_none(),
            MatchSource::Generated => target.generated_by.is_some(),
        };
        if !source_ok {
            return Ok(false);
        }
        let review = &target.review;
        let group = text(review, "/kind/group");
        let kind = text(review, "/kind/kind");
        let kinds_ok = self.kinds.is_empty()
            || self.kinds.iter().any(|s| {
                (s.kinds.is_empty() || s.kinds.iter().any(|k| k == "*" || k == kind))
                    && (s.api_groups.is_empty()
                        || s.api_groups.iter().any(|g| g == "*" || g == group))
            });
        if !kinds_ok {
            return Ok(false);
        }
        let object = review.get("object").unwrap_or(&Json::Null);
        let is_namespace = is_namespace_object(review);
        let namespace = review_namespace(review);
        let cluster_scoped = is_namespace || namespace.is_none();
        match self.scope {
            MatchScope::Cluster if !cluster_scoped => return Ok(false),
            MatchScope::Namespaced if cluster_scoped => return Ok(false),
            _ => {}
        }
        if let Some(ns) = namespace {
            if !self.namespaces.is_empty()
                && !self.namespaces.iter().any(|p| wildcard_matches(p, ns))
            {
                return Ok(false);
            }
            if self
                .excluded_namespaces
                .iter()
                .any(|p| wildcard_matches(p, ns))
            {
                return Ok(false);
            }
        }
        if let Some(pattern) = &self.name {
            let name = text(object, "/metadata/name");
            let generate = text(object, "/metadata/generateName");
            let ok = if name.is_empty() && !generate.is_empty() {
                // Gatekeeper: only a prefix glob can match a name still to be generated.
                pattern
                    .strip_suffix('*')
                    .is_some_and(|prefix| generate.starts_with(prefix))
            } else {
                wildcard_matches(pattern, name)
            };
            if !ok {
                return Ok(false);
            }
        }
        if !super::rego::label_selector_matches(&self.label_selector, &labels_of(object)) {
            return Ok(false);
        }
        if let Some(selector) = &self.namespace_selector {
            let labels = if is_namespace {
                labels_of(object)
            } else if let Some(ns) = namespace {
                let namespace_object = review
                    .get("namespaceObject")
                    .filter(|o| o.is_object())
                    .or_else(|| inventory_namespace(inventory, ns))
                    .ok_or_else(|| MatchError::UnknownNamespace(ns.to_string()))?;
                labels_of(namespace_object)
            } else {
                // Cluster-scoped objects pass a namespaceSelector.
                return Ok(true);
            };
            if !super::rego::label_selector_matches(selector, &labels) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The `spec.match` document Gatekeeper holds.
    pub fn document(&self) -> Json {
        let kinds: Vec<Json> = self
            .kinds
            .iter()
            .map(|s| json!({"apiGroups": s.api_groups, "kinds": s.kinds}))
            .collect();
        let mut m = Map::new();
        m.insert("kinds".into(), json!(kinds));
        m.insert("excludedNamespaces".into(), json!(self.excluded_namespaces));
        if !self.namespaces.is_empty() {
            m.insert("namespaces".into(), json!(self.namespaces));
        }
        m.insert("labelSelector".into(), self.label_selector.clone());
        if let Some(s) = &self.namespace_selector {
            m.insert("namespaceSelector".into(), s.clone());
        }
        if let Some(n) = &self.name {
            m.insert("name".into(), json!(n));
        }
        if self.scope != MatchScope::Any {
            m.insert("scope".into(), json!(self.scope.as_str()));
        }
        m.insert("source".into(), json!(self.source.as_str()));
        Json::Object(m)
    }
}

// ---------------------------------------------------------------------------------------------
// Expansion

/// Workload kinds expansion turns into the Pod they would create, and where their pod template
/// sits.
const EXPANDED: &[(&str, &str, &str)] = &[
    ("apps", "Deployment", "/spec/template"),
    ("apps", "ReplicaSet", "/spec/template"),
    ("apps", "StatefulSet", "/spec/template"),
    ("apps", "DaemonSet", "/spec/template"),
    ("", "ReplicationController", "/spec/template"),
    ("batch", "Job", "/spec/template"),
    ("batch", "CronJob", "/spec/jobTemplate/spec/template"),
];

/// Name of the expansion that generated a Pod, as it appears in messages.
pub const EXPANSION_NAME: &str = "expand-workloads";

/// The review itself plus, for workloads, a review of the Pod their template creates (with the
/// workload's namespace, like Gatekeeper's ExpansionTemplates).
pub fn review_targets(review: &Json) -> Vec<ReviewTarget> {
    let mut out = vec![ReviewTarget {
        review: review.clone(),
        generated_by: None,
    }];
    let group = text(review, "/kind/group");
    let kind = text(review, "/kind/kind");
    let Some((_, _, pointer)) = EXPANDED.iter().find(|(g, k, _)| *g == group && *k == kind) else {
        return out;
    };
    let Some(object) = review.get("object") else {
        return out;
    };
    let Some(template) = object.pointer(pointer) else {
        return out;
    };
    let namespace = review
        .get("namespace")
        .and_then(Json::as_str)
        .or_else(|| object_namespace(object))
        .unwrap_or("default")
        .to_string();
    let mut metadata = template
        .get("metadata")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    metadata.insert("namespace".into(), json!(namespace));
    if !metadata.contains_key("name") {
        metadata.insert("name".into(), json!(text(object, "/metadata/name")));
    }
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    let mut generated = review.as_object().cloned().unwrap_or_default();
    generated.insert(
        "kind".into(),
        json!({"group": "", "version": "v1", "kind": "Pod"}),
    );
    generated.insert(
        "resource".into(),
        json!({"group": "", "version": "v1", "resource": "pods"}),
    );
    generated.insert("namespace".into(), json!(namespace));
    generated.insert(
        "name".into(),
        pod.pointer("/metadata/name").cloned().unwrap_or(Json::Null),
    );
    generated.insert("object".into(), pod);
    generated.remove("oldObject");
    out.push(ReviewTarget {
        review: Json::Object(generated),
        generated_by: Some(EXPANSION_NAME.to_string()),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rego::{inventory_from, review_for};

    fn target(object: Json) -> ReviewTarget {
        ReviewTarget {
            review: review_for(&object),
            generated_by: None,
        }
    }

    fn pod(ns: &str, labels: Json) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-1", "namespace": ns, "labels": labels},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    }

    fn namespace(name: &str, labels: Json) -> Json {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": labels}})
    }

    fn pods() -> ConstraintMatch {
        ConstraintMatch {
            kinds: vec![KindSelector {
                api_groups: vec![String::new()],
                kinds: vec!["Pod".into()],
            }],
            label_selector: json!({}),
            ..Default::default()
        }
    }

    fn check(m: &ConstraintMatch, object: Json) -> bool {
        m.matches(&target(object), &json!({})).expect("decidable")
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("kube-*", "kube-public"));
        assert!(wildcard_matches("*-system", "gatekeeper-system"));
        assert!(wildcard_matches("*sys*", "a-sys-b"));
        assert!(!wildcard_matches("kube", "kube-public"));
        assert!(wildcard_matches("*", "anything"));
    }

    #[test]
    fn kinds_need_the_group_too() {
        let m = pods();
        assert!(check(&m, pod("a", json!({}))));
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "d", "namespace": "a"}});
        assert!(!check(&m, deployment.clone()));
        let mut any_group = pods();
        any_group.kinds[0].api_groups = vec!["*".into()];
        any_group.kinds[0].kinds = vec!["Deployment".into()];
        assert!(check(&any_group, deployment.clone()));
        let custom = json!({"apiVersion": "example.com/v1", "kind": "Pod",
                            "metadata": {"name": "x", "namespace": "a"}});
        assert!(!check(&m, custom));
    }

    #[test]
    fn namespaces_and_exclusions_use_wildcards_and_namespace_names() {
        let mut m = pods();
        m.namespaces = vec!["prod-*".into()];
        m.excluded_namespaces = vec!["*-legacy".into()];
        assert!(check(&m, pod("prod-a", json!({}))));
        assert!(!check(&m, pod("dev", json!({}))));
        assert!(!check(&m, pod("prod-legacy", json!({}))));
        // A Namespace is judged by its own name; other cluster-scoped objects always pass.
        let mut any = m.clone();
        any.kinds.clear();
        assert!(check(&any, namespace("prod-b", json!({}))));
        assert!(!check(&any, namespace("dev", json!({}))));
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        assert!(check(&any, node));
    }

    #[test]
    fn scope_separates_cluster_and_namespaced_objects() {
        let mut m = ConstraintMatch {
            label_selector: json!({}),
            scope: MatchScope::Cluster,
            ..Default::default()
        };
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        assert!(check(&m, node.clone()));
        assert!(check(&m, namespace("a", json!({}))));
        assert!(!check(&m, pod("a", json!({}))));
        m.scope = MatchScope::Namespaced;
        assert!(!check(&m, node));
        assert!(!check(&m, namespace("a", json!({}))));
        assert!(check(&m, pod("a", json!({}))));
    }

    #[test]
    fn label_and_namespace_selectors() {
        let mut m = pods();
        m.label_selector = json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "legacy", "operator": "DoesNotExist"}]});
        assert!(check(&m, pod("a", json!({"tier": "web"}))));
        assert!(!check(&m, pod("a", json!({"tier": "db"}))));
        assert!(!check(&m, pod("a", json!({"tier": "web", "legacy": "1"}))));

        let mut m = pods();
        m.namespace_selector = Some(json!({"matchLabels": {"env": "prod"}}));
        let inventory = inventory_from(&[
            namespace("shop", json!({"env": "prod"})),
            namespace("lab", json!({"env": "dev"})),
        ]);
        let t = |ns: &str| target(pod(ns, json!({})));
        assert_eq!(m.matches(&t("shop"), &inventory), Ok(true));
        assert_eq!(m.matches(&t("lab"), &inventory), Ok(false));
        assert_eq!(
            m.matches(&t("ghost"), &inventory),
            Err(MatchError::UnknownNamespace("ghost".into()))
        );
        // A Namespace object is selected by its own labels.
        m.kinds.clear();
        let own = target(namespace("new", json!({"env": "prod"})));
        assert_eq!(m.matches(&own, &json!({})), Ok(true));
    }

    #[test]
    fn names_and_sources() {
        let mut m = pods();
        m.name = Some("web-*".into());
        assert!(check(&m, pod("a", json!({}))));
        m.name = Some("db".into());
        assert!(!check(&m, pod("a", json!({}))));

        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app"}]}}}});
        let targets = review_targets(&review_for(&deployment));
        assert_eq!(targets.len(), 2);
        let generated = &targets[1];
        assert_eq!(generated.generated_by.as_deref(), Some(EXPANSION_NAME));
        assert_eq!(generated.review["namespace"], "shop");
        assert_eq!(generated.review["object"]["kind"], "Pod");
        let mut m = pods();
        for (source, original, pod) in [
            (MatchSource::All, false, true),
            (MatchSource::Original, false, false),
            (MatchSource::Generated, false, true),
        ] {
            m.source = source;
            assert_eq!(m.matches(&targets[0], &json!({})), Ok(original));
            assert_eq!(m.matches(generated, &json!({})), Ok(pod), "{source:?}");
        }
    }

    #[test]
    fn aks_exempt_namespaces() {
        assert!(is_exempt(
            &review_for(&pod("kube-system", json!({}))),
            &AKS_EXEMPT_NAMESPACES
        ));
        assert!(is_exempt(
            &review_for(&namespace("azure-arc", json!({}))),
            &AKS_EXEMPT_NAMESPACES
        ));
        assert!(!is_exempt(
            &review_for(&pod("azure-extensions-usage-system", json!({}))),
            &AKS_EXEMPT_NAMESPACES
        ));
    }
}
