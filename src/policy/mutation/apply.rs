//! One mutator applied to one object: walking the location, creating missing parents and
//! list elements, honouring `pathTests`, and computing the new value per mutator kind.

use serde_json::{json, Value as Json};

use super::location::{PathCondition, Segment};
use super::mutator::{
    split_image, AssignSource, MetadataField, Mutator, MutatorAction, SetOperation,
};

impl Mutator {
    /// Applies the mutator to `object` (match already checked); true when it changed.
    pub fn apply(&self, object: &mut Json) -> bool {
        let meta = |f: &str| {
            object
                .pointer(&format!("/metadata/{f}"))
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (namespace, name) = (meta("namespace"), meta("name"));
        let ctx = Ctx {
            mutator: self,
            namespace,
            name,
        };
        ctx.walk(object, 0)
    }
}

struct Ctx<'a> {
    mutator: &'a Mutator,
    namespace: String,
    name: String,
}

impl Ctx<'_> {
    fn segments(&self) -> &[Segment] {
        &self.mutator.location.segments
    }

    fn test_at(&self, depth: usize) -> Option<PathCondition> {
        self.mutator
            .path_tests
            .iter()
            .find(|t| t.depth == depth)
            .map(|t| t.condition)
    }

    /// A path test at or below `depth` requires something that does not exist yet.
    fn must_exist_from(&self, depth: usize) -> bool {
        self.mutator
            .path_tests
            .iter()
            .any(|t| t.depth >= depth && t.condition == PathCondition::MustExist)
    }

    /// `node` is the value reached after `depth` segments.
    fn walk(&self, node: &mut Json, depth: usize) -> bool {
        let segments = self.segments();
        if depth + 1 == segments.len() {
            return self.leaf(node, &segments[depth], depth + 1);
        }
        let next_is_list = matches!(segments[depth + 1], Segment::ListKey { .. });
        match &segments[depth] {
            Segment::Field(f) => {
                let Some(map) = node.as_object_mut() else {
                    return false;
                };
                if let Some(child) = map.get_mut(f) {
                    if self.test_at(depth + 1) == Some(PathCondition::MustNotExist) {
                        return false;
                    }
                    return self.walk(child, depth + 1);
                }
                if self.must_exist_from(depth + 1) {
                    return false;
                }
                let mut child = if next_is_list { json!([]) } else { json!({}) };
                if self.walk(&mut child, depth + 1) {
                    map.insert(f.clone(), child);
                    return true;
                }
                false
            }
            Segment::ListKey { key, value } => {
                let Some(items) = node.as_array_mut() else {
                    return false;
                };
                match value {
                    None => {
                        let skip_existing =
                            self.test_at(depth + 1) == Some(PathCondition::MustNotExist);
                        let mut changed = false;
                        for item in items.iter_mut().filter(|i| i.get(key).is_some()) {
                            if !skip_existing {
                                changed |= self.walk(item, depth + 1);
                            }
                        }
                        changed
                    }
                    Some(v) => {
                        if let Some(item) = items.iter_mut().find(|i| key_is(i, key, v)) {
                            if self.test_at(depth + 1) == Some(PathCondition::MustNotExist) {
                                return false;
                            }
                            return self.walk(item, depth + 1);
                        }
                        if self.must_exist_from(depth + 1) {
                            return false;
                        }
                        let mut item = json!({ key.clone(): v });
                        if self.walk(&mut item, depth + 1) {
                            items.push(item);
                            return true;
                        }
                        false
                    }
                }
            }
        }
    }

    /// The last segment, on its container; `depth` is the full location's length.
    fn leaf(&self, container: &mut Json, segment: &Segment, depth: usize) -> bool {
        let exists_blocked = self.test_at(depth) == Some(PathCondition::MustNotExist);
        let missing_blocked = self.must_exist_from(depth);
        match segment {
            Segment::Field(f) => {
                let Some(map) = container.as_object_mut() else {
                    return false;
                };
                let current = map.get(f).cloned();
                match (&current, exists_blocked, missing_blocked) {
                    (Some(_), true, _) | (None, _, true) => return false,
                    _ => {}
                }
                let Some(new) = self.new_value(current.as_ref()) else {
                    return false;
                };
                if current.as_ref() == Some(&new) {
                    return false;
                }
                map.insert(f.clone(), new);
                true
            }
            Segment::ListKey { key, value } => {
                // Only Assign reaches here, with a concrete key (checked at parse).
                let (Some(items), Some(v)) = (container.as_array_mut(), value) else {
                    return false;
                };
                let position = items.iter().position(|i| key_is(i, key, v));
                match (position, exists_blocked, missing_blocked) {
                    (Some(_), true, _) | (None, _, true) => return false,
                    _ => {}
                }
                let current = position.map(|p| items[p].clone());
                let Some(new) = self.new_value(current.as_ref()) else {
                    return false;
                };
                match position {
                    Some(p) if items[p] == new => false,
                    Some(p) => {
                        items[p] = new;
                        true
                    }
                    None => {
                        items.push(new);
                        true
                    }
                }
            }
        }
    }

    /// The value the location should hold, or `None` to leave it alone.
    fn new_value(&self, current: Option<&Json>) -> Option<Json> {
        let resolve = |source: &AssignSource| match source {
            AssignSource::Value(v) => v.clone(),
            AssignSource::FromMetadata(MetadataField::Namespace) => json!(self.namespace),
            AssignSource::FromMetadata(MetadataField::Name) => json!(self.name),
        };
        match &self.mutator.action {
            MutatorAction::Assign { source, assign_if } => assign_if
                .allows(current.unwrap_or(&Json::Null))
                .then(|| resolve(source)),
            // Metadata is never overwritten.
            MutatorAction::AssignMetadata { source } => current.is_none().then(|| resolve(source)),
            MutatorAction::ModifySet { operation, values } => {
                let mut list = match current {
                    None => Vec::new(),
                    Some(Json::Array(a)) => a.clone(),
                    Some(_) => return None,
                };
                match operation {
                    SetOperation::Merge => {
                        for v in values {
                            if !list.contains(v) {
                                list.push(v.clone());
                            }
                        }
                    }
                    SetOperation::Prune => {
                        current?;
                        list.retain(|x| !values.contains(x));
                    }
                }
                Some(Json::Array(list))
            }
            MutatorAction::AssignImage { domain, path, tag } => {
                let image = current?.as_str()?;
                let (old_domain, old_path, old_tag) = split_image(image);
                let domain = domain.clone().or(old_domain);
                let path = path.clone().unwrap_or(old_path);
                let tag = tag.clone().unwrap_or(old_tag);
                Some(json!(match domain {
                    Some(d) => format!("{d}/{path}{tag}"),
                    None => format!("{path}{tag}"),
                }))
            }
        }
    }
}

fn key_is(item: &Json, key: &str, value: &str) -> bool {
    match item.get(key) {
        Some(Json::String(s)) => s == value,
        Some(other) if !other.is_null() => {
            serde_json::from_str::<Json>(value).is_ok_and(|v| &v == other)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::mutation::test_support::{
        mutator_yaml, pod, pod_mutator_yaml, run, NO_ESCALATION,
    };
    use crate::policy::mutation::MutatorError;
    use serde_json::json;

    #[test]
    fn assign_glob_sets_every_container_unless_present() {
        let m = Mutator::parse(NO_ESCALATION).unwrap();
        let out = run(
            &m,
            &pod(json!([
                {"name": "a", "image": "nginx"},
                {"name": "b", "image": "nginx", "securityContext": {"allowPrivilegeEscalation": true}}
            ])),
        );
        assert_eq!(
            out["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        // MustNotExist keeps the explicit value.
        assert_eq!(
            out["spec"]["containers"][1]["securityContext"]["allowPrivilegeEscalation"],
            true
        );
        // A glob never creates elements, nor the list.
        let empty = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "namespace": "apps"}, "spec": {}});
        assert_eq!(run(&m, &empty), empty);
        // Match and applyTo narrow: excluded namespace and other kinds are untouched.
        let mut sys = pod(json!([{"name": "a"}]));
        sys["metadata"]["namespace"] = json!("kube-system");
        assert_eq!(run(&m, &sys), sys);
    }

    #[test]
    fn assign_named_element_is_created_and_must_exist_stops_it() {
        let yaml = pod_mutator_yaml(
            "Assign",
            "sidecar-pull",
            r#"  location: "spec.containers[name: sidecar].imagePullPolicy"
  parameters:
    assign: {value: Always}
"#,
        );
        let m = Mutator::parse(&yaml).unwrap();
        let out = run(&m, &pod(json!([{"name": "app"}])));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "app"}, {"name": "sidecar", "imagePullPolicy": "Always"}])
        );
        let with_test = yaml.replace(
            "    assign: {value: Always}",
            "    assign: {value: Always}\n    pathTests: [{subPath: \"spec.containers[name: sidecar]\", condition: MustExist}]",
        );
        let m = Mutator::parse(&with_test).unwrap();
        let original = pod(json!([{"name": "app"}]));
        assert_eq!(run(&m, &original), original);
        let present = pod(json!([{"name": "sidecar"}]));
        assert_eq!(
            run(&m, &present)["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn assign_if_checks_the_current_value() {
        let yaml = pod_mutator_yaml(
            "Assign",
            "pull",
            r#"  location: "spec.containers[name: *].imagePullPolicy"
  parameters:
    assign: {value: Always}
    assignIf: {in: ["IfNotPresent"]}
"#,
        );
        let m = Mutator::parse(&yaml).unwrap();
        let out = run(
            &m,
            &pod(json!([{"name": "a", "imagePullPolicy": "IfNotPresent"},
                        {"name": "b", "imagePullPolicy": "Never"}, {"name": "c"}])),
        );
        let c = &out["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "Always");
        assert_eq!(c[1]["imagePullPolicy"], "Never");
        assert!(c[2].get("imagePullPolicy").is_none());
        let not_in =
            Mutator::parse(&yaml.replace("in: [\"IfNotPresent\"]", "notIn: [\"Never\"]")).unwrap();
        let out = run(
            &not_in,
            &pod(json!([{"name": "b", "imagePullPolicy": "Never"}, {"name": "c"}])),
        );
        assert_eq!(out["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(out["spec"]["containers"][1]["imagePullPolicy"], "Always");
    }

    #[test]
    fn assign_metadata_never_overwrites() {
        let m = Mutator::parse(&mutator_yaml(
            "AssignMetadata",
            "owner",
            "  location: metadata.labels.owner\n  parameters: {assign: {value: platform}}\n",
        ))
        .unwrap();
        let out = run(&m, &pod(json!([])));
        assert_eq!(out["metadata"]["labels"]["owner"], "platform");
        let mut labelled = pod(json!([]));
        labelled["metadata"]["labels"] = json!({"owner": "team-a"});
        assert_eq!(run(&m, &labelled), labelled);
        let err = Mutator::parse(&mutator_yaml(
            "AssignMetadata",
            "x",
            "  location: metadata.name\n  parameters: {assign: {value: a}}\n",
        ))
        .unwrap_err();
        assert!(matches!(err, MutatorError::Location(_)), "{err}");
    }

    #[test]
    fn modify_set_merges_and_prunes() {
        let yaml = pod_mutator_yaml(
            "ModifySet",
            "args",
            r#"  location: "spec.containers[name: *].args"
  parameters:
    operation: merge
    values: {fromList: ["--verbose", "--safe"]}
"#,
        );
        let merge = Mutator::parse(&yaml).unwrap();
        let out = run(
            &merge,
            &pod(json!([{"name": "a", "args": ["--safe"]}, {"name": "b"}])),
        );
        assert_eq!(
            out["spec"]["containers"][0]["args"],
            json!(["--safe", "--verbose"])
        );
        assert_eq!(
            out["spec"]["containers"][1]["args"],
            json!(["--verbose", "--safe"])
        );
        let prune = Mutator::parse(&yaml.replace("operation: merge", "operation: prune")).unwrap();
        let out = run(
            &prune,
            &pod(json!([{"name": "a", "args": ["--safe", "--x"]}, {"name": "b"}])),
        );
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["--x"]));
        assert!(out["spec"]["containers"][1].get("args").is_none());
    }

    #[test]
    fn assign_image_rewrites_components() {
        assert_eq!(
            split_image("myreg.io:5000/team/app:1.2"),
            (
                Some("myreg.io:5000".into()),
                "team/app".into(),
                ":1.2".into()
            )
        );
        assert_eq!(split_image("nginx"), (None, "nginx".into(), String::new()));
        let m = Mutator::parse(&pod_mutator_yaml(
            "AssignImage",
            "registry",
            r#"  location: "spec.containers[name: *].image"
  parameters: {assignDomain: "mirror.example.com"}
"#,
        ))
        .unwrap();
        let out = run(
            &m,
            &pod(json!([{"name": "a", "image": "nginx:1.25"},
                        {"name": "b", "image": "docker.io/library/redis@sha256:abc"}])),
        );
        assert_eq!(
            out["spec"]["containers"][0]["image"],
            "mirror.example.com/nginx:1.25"
        );
        assert_eq!(
            out["spec"]["containers"][1]["image"],
            "mirror.example.com/library/redis@sha256:abc"
        );
        let bad = Mutator::parse(&pod_mutator_yaml(
            "AssignImage",
            "x",
            "  location: 'spec.containers[name: *].image'\n  parameters: {assignTag: latest}\n",
        ))
        .unwrap_err();
        assert!(bad.to_string().contains("assignTag"), "{bad}");
    }
}
