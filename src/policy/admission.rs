//! What the add-on's two webhooks do with one admission request: Gatekeeper's mutating webhook
//! first (the API server stores, and validation sees, the mutated object), then its validating
//! webhook. The emulator's admission and the provider's `akspolicy_admission_review` both answer
//! through [`admit`], so a plan-time review and the cluster agree on mutated objects too.

use serde_json::Value as Json;

use super::constraint::{decide_targets, ActiveConstraint, Decision};
use super::constraint_match::{is_exempt, review_targets};
use super::mutation::{mutated_targets, MutationError, Mutator};
use super::rego::EvalOptions;

/// The outcome of one request through both webhooks.
#[derive(Debug, Default)]
pub struct Admission {
    pub decision: Decision,
    /// The request's object as mutated, when a mutator changed it.
    pub mutated: Option<Json>,
    /// Gatekeeper ids (`Assign/name`) of the mutators that changed the request's object.
    pub applied: Vec<String>,
    /// Why mutation failed; the mutating webhook then fails open (failurePolicy Ignore) and
    /// validation reviews the object as sent.
    pub mutation_error: Option<MutationError>,
}

/// Mutates, then validates, `review` (Gatekeeper's `input.review`). A DELETE or CONNECT is
/// never mutated; objects in `exempt_namespaces` are neither mutated nor reviewed.
pub fn admit(
    review: &Json,
    constraints: &[ActiveConstraint<'_>],
    mutators: &[Mutator],
    inventory: &Json,
    exempt_namespaces: &[&str],
    options: &EvalOptions,
) -> Admission {
    if is_exempt(review, exempt_namespaces) {
        return Admission::default();
    }
    let mut admission = Admission::default();
    let original = review.get("object").filter(|o| o.is_object());
    let targets = match (original, mutable(review) && !mutators.is_empty()) {
        (Some(object), true) => {
            match mutated_targets(review, mutators, inventory, exempt_namespaces) {
                Ok((targets, applied)) => {
                    let top = targets.first().and_then(|t| t.review.get("object"));
                    if let Some(top) = top.filter(|top| *top != object) {
                        admission.mutated = Some(top.clone());
                        admission.applied = applied;
                    }
                    targets
                }
                Err(e) => {
                    admission.mutation_error = Some(e);
                    review_targets(review)
                }
            }
        }
        _ => review_targets(review),
    };
    admission.decision = decide_targets(&targets, constraints, inventory, options);
    admission
}

fn mutable(review: &Json) -> bool {
    !review
        .get("operation")
        .and_then(Json::as_str)
        .is_some_and(|o| o.eq_ignore_ascii_case("DELETE") || o.eq_ignore_ascii_case("CONNECT"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::mutation::test_support::pod_mutator_yaml;
    use crate::policy::rego::review_for;
    use serde_json::json;

    fn run_as_non_root() -> Mutator {
        let spec = r#"  match: {scope: Namespaced, kinds: [{apiGroups: ["*"], kinds: ["Pod"]}]}
  location: "spec.securityContext.runAsNonRoot"
  parameters: {assign: {value: true}}
"#;
        Mutator::parse(&pod_mutator_yaml("Assign", "run-as-non-root", spec)).unwrap()
    }

    fn pod(namespace: &str) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    #[test]
    fn the_mutated_object_is_reported_with_the_mutators_that_changed_it() {
        let m = run_as_non_root();
        let out = admit(
            &review_for(&pod("apps")),
            &[],
            &[m],
            &json!({}),
            &["kube-system"],
            &EvalOptions::default(),
        );
        let mutated = out.mutated.expect("mutated");
        assert_eq!(mutated["spec"]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(out.applied, vec!["Assign/run-as-non-root".to_string()]);
        assert!(out.decision.allowed());
    }

    #[test]
    fn exempt_namespaces_and_deletes_are_not_mutated() {
        let m = run_as_non_root();
        let options = EvalOptions::default();
        let exempt = admit(
            &review_for(&pod("kube-system")),
            &[],
            std::slice::from_ref(&m),
            &json!({}),
            &["kube-system"],
            &options,
        );
        assert!(exempt.mutated.is_none());
        let mut delete = review_for(&pod("apps"));
        delete["operation"] = json!("DELETE");
        let out = admit(&delete, &[], &[m], &json!({}), &[], &options);
        assert!(out.mutated.is_none() && out.applied.is_empty());
    }
}
