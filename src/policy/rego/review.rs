//! The input Gatekeeper gives a template besides its parameters: the review of one object
//! (`input.review`) and the inventory of synced objects (`data.inventory`), plus the label
//! selectors matching uses.

use serde_json::{json, Map, Value as Json};

use crate::policy::json::{object_name, object_namespace};

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
    let name = object_name(&object).unwrap_or("").to_string();
    let mut namespace = object_namespace(&object).map(str::to_string);
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
        let name = object_name(object).unwrap_or("");
        let ns = object_namespace(object)
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
    use crate::policy::rego::test_support::pod;
    use serde_json::json;

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
