//! Gatekeeper mutators (`mutations.gatekeeper.sh/v1` Assign, AssignMetadata, ModifySet,
//! AssignImage): parsing with validation, and applying them to an object the way Gatekeeper's
//! mutation webhook does. The one implementation that plan-time `test` blocks of
//! `akspolicy_kubernetes_mutation` and the emulator's admission go through.
//!
//! Semantics follow Gatekeeper's mutation docs: a mutator applies when its `match` (the same
//! matcher as constraints, [`ConstraintMatch`]) and, except for AssignMetadata, its `applyTo`
//! accept the object; `location` is a dotted path where `[key: value]` selects the list element
//! whose `key` is `value` (created when missing) and `[key: *]` every existing element;
//! `pathTests` stop a mutation where a sub-path must (not) exist; missing parents are created.
//! Mutators run sorted by kind then name, repeatedly, until an iteration changes nothing.
//!
//! Layout: [`location`] parses paths, [`mutator`] parses and validates a mutator document,
//! [`apply`] changes one object with one mutator, [`webhook`] runs all mutators the way the
//! mutating webhook does, [`expectation`] compares a result with a `test` block's expectation,
//! [`from_definition`] installs the mutator an Azure definition names.

mod apply;
mod expectation;
mod from_definition;
mod location;
mod mutator;
mod webhook;

pub use expectation::{contains, list_keys};
pub use from_definition::{install, narrow, resolve_mutator, MutationSourceError};
pub use location::{Location, PathCondition, PathTest, Segment};
pub use mutator::{
    split_image, ApplyTo, AssignIf, AssignSource, MetadataField, Mutator, MutatorAction,
    MutatorError, MutatorKind, SetOperation,
};
pub use webhook::{
    apply_top_level_patch, mutate, mutated_targets, sorted, top_level_patch, MutationError,
    MutationOutcome,
};

/// API group of Gatekeeper's mutators.
pub const MUTATIONS_GROUP: &str = "mutations.gatekeeper.sh";
/// Gatekeeper gives up on an object whose mutators still change it after this many passes
/// (mutators that fight each other never converge).
pub const MAX_ITERATIONS: usize = 3;

/// Fixtures shared by the unit tests of the submodules.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use serde_json::{json, Value as Json};

    /// The YAML of a mutator of `kind` named `name` whose `spec` holds `spec` (indented
    /// lines).
    pub(crate) fn mutator_yaml(kind: &str, name: &str, spec: &str) -> String {
        format!(
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        )
    }

    /// [`mutator_yaml`] for one that applies to core v1 Pods.
    pub(crate) fn pod_mutator_yaml(kind: &str, name: &str, spec: &str) -> String {
        let apply_to = "  applyTo: [{groups: [\"\"], versions: [\"v1\"], kinds: [\"Pod\"]}]\n";
        mutator_yaml(kind, name, &format!("{apply_to}{spec}"))
    }

    pub(super) const NO_ESCALATION: &str = r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: no-escalation
spec:
  applyTo:
    - groups: [""]
      kinds: ["Pod"]
      versions: ["v1"]
  match:
    scope: Namespaced
    kinds:
      - apiGroups: ["*"]
        kinds: ["Pod"]
    excludedNamespaces: ["kube-system"]
  location: "spec.containers[name:*].securityContext.allowPrivilegeEscalation"
  parameters:
    pathTests:
      - subPath: "spec.containers[name:*].securityContext.allowPrivilegeEscalation"
        condition: MustNotExist
    assign:
      value: false
"#;

    pub(super) fn pod(containers: Json) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "apps"},
               "spec": {"containers": containers}})
    }

    pub(super) fn run(mutator: &Mutator, object: &Json) -> Json {
        mutate(object, None, std::slice::from_ref(mutator), &json!({}), &[])
            .expect("converges")
            .object
    }
}
