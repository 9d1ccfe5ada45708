//! All mutators run on an object the way Gatekeeper's mutating webhook does: sorted, repeated
//! until stable, and answered as a JSON patch.

use serde_json::{json, Map, Value as Json};

use super::mutator::Mutator;
use super::MAX_ITERATIONS;
use crate::policy::constraint_match::{is_exempt, review_targets, MatchError, ReviewTarget};
use crate::policy::rego::review_for;

/// Why mutation of an object failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationError {
    #[error("mutation did not converge after {MAX_ITERATIONS} passes; these mutators keep changing the object: {0:?}")]
    NotConverging(Vec<String>),
    #[error("[{mutator}] {error}")]
    Match { mutator: String, error: MatchError },
}

/// The object after mutation and the mutators that changed it (in order, ids repeated per
/// pass).
#[derive(Clone, Debug, PartialEq)]
pub struct MutationOutcome {
    pub object: Json,
    pub applied: Vec<String>,
}

/// Gatekeeper's order: by kind, then name (all mutators share one group and are
/// cluster-scoped).
pub fn sorted(mutators: &[Mutator]) -> Vec<&Mutator> {
    let mut out: Vec<&Mutator> = mutators.iter().collect();
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// Mutates one object (`generated_by` set for an object expansion generated, which mutators
/// with `source: Original` skip). `inventory` answers namespaceSelectors; objects in
/// `exempt_namespaces` are left alone.
pub fn mutate(
    object: &Json,
    generated_by: Option<&str>,
    mutators: &[Mutator],
    inventory: &Json,
    exempt_namespaces: &[&str],
) -> Result<MutationOutcome, MutationError> {
    let mut current = object.clone();
    let mut applied = Vec::new();
    if mutators.is_empty() || is_exempt(&review_for(object), exempt_namespaces) {
        return Ok(MutationOutcome {
            object: current,
            applied,
        });
    }
    let order = sorted(mutators);
    for _ in 0..MAX_ITERATIONS {
        let mut changed_by = Vec::new();
        for m in &order {
            let target = ReviewTarget {
                review: review_for(&current),
                generated_by: generated_by.map(str::to_string),
            };
            let matched =
                m.matcher
                    .matches(&target, inventory)
                    .map_err(|error| MutationError::Match {
                        mutator: m.id(),
                        error,
                    })?;
            if matched && m.applies_to(&target.review) && m.apply(&mut current) {
                changed_by.push(m.id());
            }
        }
        if changed_by.is_empty() {
            return Ok(MutationOutcome {
                object: current,
                applied,
            });
        }
        applied.extend(changed_by);
    }
    let mut culprits: Vec<String> = applied.clone();
    culprits.sort();
    culprits.dedup();
    Err(MutationError::NotConverging(culprits))
}

/// What admission reviews after mutation: the request's object mutated (the review's `object`
/// replaced) and, for workloads, the Pod expansion generates from the mutated object, mutated
/// in turn as a generated object. The first target is the mutated original; beside the targets,
/// the ids of the mutators that changed it.
pub fn mutated_targets(
    review: &Json,
    mutators: &[Mutator],
    inventory: &Json,
    exempt_namespaces: &[&str],
) -> Result<(Vec<ReviewTarget>, Vec<String>), MutationError> {
    let mut review = review.clone();
    let mut applied = Vec::new();
    if let Some(object) = review.get("object").filter(|o| o.is_object()) {
        let outcome = mutate(object, None, mutators, inventory, exempt_namespaces)?;
        review["object"] = outcome.object;
        applied = outcome.applied;
    }
    let mut targets = review_targets(&review);
    for target in targets.iter_mut().skip(1) {
        if let Some(object) = target.review.get("object").filter(|o| o.is_object()) {
            let by = target.generated_by.clone();
            let outcome = mutate(
                object,
                by.as_deref(),
                mutators,
                inventory,
                exempt_namespaces,
            )?;
            target.review["object"] = outcome.object;
        }
    }
    Ok((targets, applied))
}

/// An AdmissionReview `patch` (JSONPatch ops on top-level fields) turning `original` into
/// `mutated`, as Gatekeeper's mutating webhook answers.
pub fn top_level_patch(original: &Json, mutated: &Json) -> Vec<Json> {
    let empty = Map::new();
    let before = original.as_object().unwrap_or(&empty);
    let after = mutated.as_object().unwrap_or(&empty);
    let mut ops = Vec::new();
    for (k, v) in after {
        if before.get(k) != Some(v) {
            ops.push(json!({"op": "add", "path": format!("/{}", pointer_escape(k)), "value": v}));
        }
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        ops.push(json!({"op": "remove", "path": format!("/{}", pointer_escape(k))}));
    }
    ops
}

fn pointer_escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Applies a [`top_level_patch`] (what a client of the webhook does with the answer).
pub fn apply_top_level_patch(object: &Json, ops: &[Json]) -> Json {
    let mut out = object.as_object().cloned().unwrap_or_default();
    for op in ops {
        let path = op.get("path").and_then(Json::as_str).unwrap_or("");
        let key = path
            .trim_start_matches('/')
            .replace("~1", "/")
            .replace("~0", "~");
        match op.get("op").and_then(Json::as_str) {
            Some("add") | Some("replace") => {
                out.insert(key, op.get("value").cloned().unwrap_or(Json::Null));
            }
            Some("remove") => {
                out.remove(&key);
            }
            _ => {}
        }
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::constraint_match::MatchSource;
    use crate::policy::mutation::test_support::{
        mutator_yaml, pod, pod_mutator_yaml, NO_ESCALATION,
    };
    use crate::policy::mutation::{AssignIf, AssignSource, MutatorAction};
    use serde_json::json;

    #[test]
    fn runs_in_kind_then_name_order_until_stable() {
        let a = Mutator::parse(&mutator_yaml(
            "AssignMetadata",
            "a-label",
            "  location: metadata.labels.tier\n  parameters: {assign: {value: web}}\n",
        ))
        .unwrap();
        // An Assign that only applies to labelled Pods: runs before AssignMetadata in a pass,
        // so it needs the second pass to see the label.
        let b = Mutator::parse(&pod_mutator_yaml(
            "Assign",
            "z-by-label",
            "  match: {labelSelector: {matchLabels: {tier: web}}}\n  location: spec.priority\n  parameters: {assign: {value: 5}}\n",
        ))
        .unwrap();
        let out = mutate(&pod(json!([])), None, &[a, b], &json!({}), &[]).unwrap();
        assert_eq!(out.object["spec"]["priority"], 5);
        assert_eq!(
            out.applied,
            vec!["AssignMetadata/a-label", "Assign/z-by-label"]
        );
        // Two mutators fighting over one field never converge.
        let one = Mutator::parse(&pod_mutator_yaml(
            "Assign",
            "one",
            "  location: spec.priority\n  parameters: {assign: {value: 1}}\n",
        ))
        .unwrap();
        let mut two = one.clone();
        two.name = "two".into();
        two.action = MutatorAction::Assign {
            source: AssignSource::Value(json!(2)),
            assign_if: AssignIf::default(),
        };
        let err = mutate(&pod(json!([])), None, &[one, two], &json!({}), &[]).unwrap_err();
        assert!(matches!(err, MutationError::NotConverging(_)), "{err}");
    }

    #[test]
    fn workloads_are_reviewed_as_their_mutated_pod() {
        let mut m = Mutator::parse(NO_ESCALATION).unwrap();
        m.matcher.source = MatchSource::Generated;
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "apps"},
            "spec": {"template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "nginx"}]}}}});
        let review = review_for(&deployment);
        let (targets, _) = mutated_targets(&review, &[m], &json!({}), &[]).unwrap();
        assert_eq!(targets.len(), 2);
        // The Deployment is not a Pod (applyTo) and not generated: unchanged.
        assert_eq!(targets[0].review["object"], deployment);
        let pod = &targets[1].review["object"];
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(
            pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
            false
        );
    }

    #[test]
    fn patch_round_trips() {
        let before = json!({"a": 1, "b": {"c": 2}, "d/e": 3});
        let after = json!({"a": 1, "b": {"c": 4}, "f": 5});
        let ops = top_level_patch(&before, &after);
        assert_eq!(ops.len(), 3);
        assert_eq!(apply_top_level_patch(&before, &ops), after);
    }
}
