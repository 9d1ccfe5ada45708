//! Resource `akspolicy_kubernetes_mutation`: a custom Azure Policy definition of mode
//! `Microsoft.Kubernetes.Data` with effect `Mutate`, whose Gatekeeper mutator (Assign,
//! AssignMetadata, ModifySet or AssignImage) the user writes. The mutator is validated and the
//! user's `test` blocks are run at plan time, through the same mutation engine as the
//! emulator's admission ([`crate::policy::mutation`]).

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::framework::timeouts;
use crate::framework::typed::Whole;
use crate::framework::{
    Attribute, AttributePath, Block, Diagnostic, Diagnostics, NestedBlock, Schema, Type, Value,
};
use crate::policy::constraint_match::AKS_EXEMPT_NAMESPACES;
use crate::policy::constraint_template::parse_yaml_documents;
use crate::policy::mutation::{self, Mutator};
use crate::policy::mutation_definition::{
    decode, MutationDefinitionSpec, MUTATION_EFFECTS, SOURCES,
};
use crate::policy::{PolicyDefinition, PolicyDefinitionProperties};
use crate::typed_object;

use super::definition::{implied_kubernetes_metadata, metadata_object};
use super::shared::definition_api::{
    definition_kind, definition_state, descriptive_attributes, identifying_attributes,
    DefinitionLike,
};
use super::shared::waits::POLICY_TIMEOUTS;

/// The namespaces Azure's mutation built-ins exclude by default.
const DEFAULT_EXCLUDED: [&str; 3] = ["kube-system", "gatekeeper-system", "azure-arc"];

pub struct KubernetesMutationResource;

fn schema() -> Schema {
    let test = Block::new()
        .description("A mutation unit test evaluated at plan time: `object` is mutated as the emulated AKS cluster's Gatekeeper would mutate it with this definition assigned with its defaults (the mutator's `match` and `applyTo`, narrowed by `namespaces`, `excluded_namespaces` and `source`; namespaced objects without `metadata.namespace` are in `default`; objects in `kube-system`, `gatekeeper-system` and `azure-arc` are never mutated), and the result must contain `expect`. A failing test is reported on its `name`.")
        .attribute(Attribute::string("name").required().description("Names the test in failures."))
        .attribute(
            Attribute::string("object")
                .required()
                .description("The object as submitted: one YAML (or JSON) manifest, reviewed as an original object (not as a Pod generated from a workload)."),
        )
        .attribute(
            Attribute::string("expect")
                .required()
                .description("A YAML fragment the mutated object must contain: every field given must be present with that value. List elements that have a `name` (or the key the mutator's location selects list elements by, as in `[name: *]`) are matched by that key, whatever their position; other list elements by position. To test that nothing changes, repeat the relevant part of the object."),
        );
    let identified = identifying_attributes(
            Block::new().description(
                "A custom Azure Policy mutation definition for AKS (mode `Microsoft.Kubernetes.Data`, \
                 effect `Mutate`) carrying a Gatekeeper mutator: Assign, AssignMetadata, ModifySet or \
                 AssignImage (`mutations.gatekeeper.sh/v1`). The mutator is validated and the `test` \
                 blocks run at plan time.",
            ),
            "definition",
            "Where the definition lives: ",
        );
    Schema::new(
        descriptive_attributes(identified, "The definition version, `x.y.z`.")
        .attribute(
            Attribute::string("metadata")
                .optional()
                .description("Extra metadata as JSON. `category` defaults to `Kubernetes`."),
        )
        .attribute(
            Attribute::string("mutator")
                .required()
                .description("The Gatekeeper mutator YAML: `apiVersion: mutations.gatekeeper.sh/v1`, `kind` Assign, AssignMetadata, ModifySet or AssignImage, `metadata.name`, and a `spec` with `location`, `applyTo` (all but AssignMetadata), an optional `match` and the `parameters` of its kind (`assign.value` or `assign.fromMetadata`, `assignIf`, `pathTests`; ModifySet `operation` and `values.fromList`; AssignImage `assignDomain`/`assignPath`/`assignTag`). Embedded in the definition as `mutationInfo` (`Base64Encoded`)."),
        )
        .attribute(
            Attribute::new("namespaces", Type::list(Type::String))
                .default(Value::string_list(Vec::<String>::new()))
                .description("Default of the `namespaces` parameter: the namespaces the mutation applies to; empty (the default) means all. When not empty it replaces the mutator's own `match.namespaces`."),
        )
        .attribute(
            Attribute::new("excluded_namespaces", Type::list(Type::String))
                .default(Value::string_list(DEFAULT_EXCLUDED))
                .description("Default of the `excludedNamespaces` parameter: namespaces the mutation leaves alone. Defaults to `[\"kube-system\", \"gatekeeper-system\", \"azure-arc\"]`, as Azure's mutation built-ins. When not empty it replaces the mutator's own `match.excludedNamespaces`."),
        )
        .attribute(
            Attribute::string("source")
                .default(Value::string("Original"))
                .description("Default of the `source` parameter (Gatekeeper's `match.source`): `Original` (the default) mutates objects as submitted, `Generated` only the Pods that workloads create, `All` both.")
                .validate_with(|v, path, diags| one_of(v, path, diags, &SOURCES)),
        )
        .attribute(
            Attribute::string("default_effect")
                .default(Value::string("Mutate"))
                .description("The `effect` parameter's default: `Mutate` (the default) or `Disabled`.")
                .validate_with(|v, path, diags| one_of(v, path, diags, &MUTATION_EFFECTS)),
        )
        .block(NestedBlock::list("test", test).local_only())
        .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

fn one_of(value: &Value, path: &AttributePath, diags: &mut Diagnostics, allowed: &[&str]) {
    if let Some(v) = value.as_str() {
        if !allowed.contains(&v) {
            diags.error_at(
                path.clone(),
                "Invalid value",
                format!("{v:?} is not one of {allowed:?}."),
            );
        }
    }
}

definition_state! {
    /// The resource's configuration, plan or state.
    pub struct KubernetesMutation {
        pub mutator: Option<String>,
        pub namespaces: Option<Vec<String>>,
        pub excluded_namespaces: Option<Vec<String>>,
        pub source: Option<String>,
        pub default_effect: Option<String>,
        pub test: Vec<Whole<MutationTest>>,
        pub timeouts: Value,
    }
}

typed_object! {
    /// A `test` block; it runs only once wholly known.
    pub struct MutationTest {
        pub name: Option<String>,
        pub object: Option<String>,
        pub expect: Option<String>,
    }
}

/// The definition spec and the parsed mutator, with every problem reported on its attribute.
fn check_config(
    config: &KubernetesMutation,
    diags: &mut Diagnostics,
) -> Option<(MutationDefinitionSpec, Mutator)> {
    let metadata = metadata_object(config.metadata.as_deref(), diags);
    let yaml = config.mutator.clone().unwrap_or_default();
    let mutator = match Mutator::parse(&yaml) {
        Ok(m) => Some(m),
        Err(e) => {
            diags.error_at(
                AttributePath::attr("mutator"),
                "Invalid mutator",
                format!("{e}."),
            );
            None
        }
    };
    let strings = |value: &Option<Vec<String>>, default: &[&str]| -> Vec<String> {
        value
            .clone()
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
    };
    let spec = MutationDefinitionSpec {
        display_name: config.display_name.clone(),
        description: config.description.clone(),
        version: config.version.as_deref().map(str::to_string),
        metadata: metadata?,
        mutator_yaml: yaml,
        namespaces: strings(&config.namespaces, &[]),
        excluded_namespaces: strings(&config.excluded_namespaces, &DEFAULT_EXCLUDED),
        source: config
            .source
            .clone()
            .unwrap_or_else(|| "Original".to_string()),
        default_effect: config
            .default_effect
            .clone()
            .unwrap_or_else(|| "Mutate".to_string()),
    };
    Some((spec, mutator?))
}

/// Why one `test` block failed; each names the attribute to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationTestProblem {
    #[error("object: {0}")]
    Object(String),
    #[error("expect: {0}")]
    Expect(String),
    #[error("the mutation could not be applied: {0}")]
    Mutation(String),
    #[error("the mutated object does not contain expect: {difference}. The mutated object is:\n{mutated}")]
    Unexpected { difference: String, mutated: String },
}

impl MutationTestProblem {
    fn attribute(&self, index: usize) -> AttributePath {
        let test = AttributePath::attr("test").index(index);
        match self {
            MutationTestProblem::Object(_) => test.attribute("object"),
            MutationTestProblem::Expect(_) => test.attribute("expect"),
            MutationTestProblem::Mutation(_) | MutationTestProblem::Unexpected { .. } => {
                test.attribute("name")
            }
        }
    }
}

fn one_document(text: &str) -> Result<Json, String> {
    let docs: Vec<Json> = parse_yaml_documents(text)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    match docs.as_slice() {
        [doc] => Ok(doc.clone()),
        other => Err(format!("expected one YAML document, found {}", other.len())),
    }
}

/// Runs one `test` block against the mutator as the add-on installs it with the defaults.
fn run_test(installed: &Mutator, test: &MutationTest) -> Result<(), MutationTestProblem> {
    let object = one_document(test.object.as_deref().unwrap_or_default())
        .map_err(MutationTestProblem::Object)?;
    if !object.is_object() {
        return Err(MutationTestProblem::Object(
            "must be a Kubernetes object (a YAML mapping)".into(),
        ));
    }
    let expect = one_document(test.expect.as_deref().unwrap_or_default())
        .map_err(MutationTestProblem::Expect)?;
    // As the API server does before calling webhooks: namespaced objects default to `default`.
    let review = crate::policy::rego::review_for(&object);
    let object = review.get("object").cloned().unwrap_or(object);
    let outcome = mutation::mutate(
        &object,
        None,
        std::slice::from_ref(installed),
        &serde_json::json!({}),
        &AKS_EXEMPT_NAMESPACES,
    )
    .map_err(|e| MutationTestProblem::Mutation(e.to_string()))?;
    let keys = mutation::list_keys([installed]);
    mutation::contains(&outcome.object, &expect, &keys).map_err(|difference| {
        MutationTestProblem::Unexpected {
            difference,
            mutated: serde_yaml_ng::to_string(&outcome.object).unwrap_or_default(),
        }
    })
}

fn run_tests(
    config: &KubernetesMutation,
    checked: Option<&(MutationDefinitionSpec, Mutator)>,
    diags: &mut Diagnostics,
) {
    let tests = &config.test;
    // Problems that keep the tests from running are already reported.
    let Some((spec, mutator)) = checked else {
        return;
    };
    if tests.is_empty() {
        return;
    }
    let mut installed = mutator.clone();
    mutation::narrow(&mut installed, &spec.default_details());
    for (i, test) in tests.iter().enumerate() {
        if !test.known {
            continue;
        }
        let name = test.name.as_deref().unwrap_or("unnamed");
        if let Err(problem) = run_test(&installed, test) {
            diags.push(
                Diagnostic::error(
                    format!("Mutation test {name:?} failed"),
                    format!("Test {name:?}: {problem}"),
                )
                .at(problem.attribute(i)),
            );
        }
    }
}

/// Keeps the user's YAML text when it means the same as Azure's.
fn keep_yaml(prior: Option<&str>, remote: Option<&str>) -> Option<String> {
    let parsed = |t: &str| parse_yaml_documents(t).ok();
    match (prior, remote) {
        (Some(p), Some(r)) if parsed(p).is_some() && parsed(p) == parsed(r) => Some(p.to_string()),
        (_, r) => r.map(str::to_string),
    }
}

/// Keeps the prior list when Azure holds the same one.
fn keep_list(
    prior: &Option<Vec<String>>,
    remote: Option<&Vec<String>>,
    default: &[&str],
) -> Option<Vec<String>> {
    let remote: Vec<String> = match remote {
        Some(r) => r.clone(),
        None => default.iter().map(|s| s.to_string()).collect(),
    };
    if prior.as_ref() == Some(&remote) {
        return prior.clone();
    }
    Some(remote)
}

/// The mutation's own attributes from Azure's definition, reconciled with `prior`.
fn reconcile(
    prior: &KubernetesMutation,
    mut state: KubernetesMutation,
    definition: &PolicyDefinition,
) -> KubernetesMutation {
    let decoded = decode(&definition.properties);
    // A definition whose mutator is a URL (not written by this resource) shows no YAML, so
    // the plan asks for the user's mutator to be written.
    state.mutator = keep_yaml(prior.mutator.as_deref(), decoded.mutator_yaml.as_deref());
    state.namespaces = keep_list(&prior.namespaces, decoded.namespaces.as_ref(), &[]);
    state.excluded_namespaces = keep_list(
        &prior.excluded_namespaces,
        decoded.excluded_namespaces.as_ref(),
        &DEFAULT_EXCLUDED,
    );
    state.source = Some(decoded.source.unwrap_or_else(|| "Original".into()));
    state.default_effect = Some(decoded.default_effect.unwrap_or_else(|| "Mutate".into()));
    state
}

#[async_trait]
impl DefinitionLike for KubernetesMutationResource {
    definition_kind!(
        "akspolicy_kubernetes_mutation",
        PolicyDefinition,
        KubernetesMutation,
        schema()
    );

    const CHECKED_INPUTS: &'static [&'static str] = &[
        "mutator",
        "metadata",
        "namespaces",
        "excluded_namespaces",
        "source",
    ];

    fn check_config(config: &KubernetesMutation, diags: &mut Diagnostics) {
        let checked = check_config(config, diags);
        run_tests(config, checked.as_ref(), diags);
    }

    const AS_WRITTEN: &'static [&'static str] = &["mutator", "test", "metadata"];

    fn properties_of(
        planned: &KubernetesMutation,
        diags: &mut Diagnostics,
    ) -> Option<PolicyDefinitionProperties> {
        let (spec, _) = check_config(planned, diags)?;
        Some(spec.properties())
    }

    fn implied_metadata(remote: &PolicyDefinition) -> Vec<(&'static str, Json)> {
        implied_kubernetes_metadata(remote.properties.version.as_deref())
    }

    fn reconcile(
        prior: &KubernetesMutation,
        state: KubernetesMutation,
        remote: &PolicyDefinition,
    ) -> KubernetesMutation {
        reconcile(prior, state, remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::typed::Typed;
    use crate::resources::shared::definition_collection::POLICY_DEFINITIONS;
    use crate::resources::shared::testing::{assert_first_detail, validation_of};

    const MUTATOR: &str = r#"apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: no-privilege-escalation
spec:
  applyTo:
    - groups: [""]
      versions: ["v1"]
      kinds: ["Pod"]
  location: "spec.containers[name: *].securityContext.allowPrivilegeEscalation"
  parameters:
    pathTests:
      - subPath: "spec.containers[name: *].securityContext.allowPrivilegeEscalation"
        condition: MustNotExist
    assign:
      value: false
"#;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n    - {name: app, image: nginx}\n    - {name: side, image: busybox, securityContext: {allowPrivilegeEscalation: true}}\n";

    fn config(mutator: &str, tests: Vec<MutationTest>) -> KubernetesMutation {
        KubernetesMutation {
            name: Some("no-escalation".into()),
            mutator: Some(mutator.into()),
            test: tests.into_iter().map(Whole::new).collect(),
            ..Default::default()
        }
    }

    fn test_block(name: &str, object: &str, expect: &str) -> MutationTest {
        MutationTest {
            name: Some(name.into()),
            object: Some(object.into()),
            expect: Some(expect.into()),
        }
    }

    fn validate(config: &KubernetesMutation) -> Diagnostics {
        validation_of(&KubernetesMutationResource, &config.to_value())
    }

    #[test]
    fn right_expect_passes_and_wrong_one_names_the_test() {
        let right = "spec:\n  containers:\n    - {name: side, securityContext: {allowPrivilegeEscalation: true}}\n    - {name: app, securityContext: {allowPrivilegeEscalation: false}}\n";
        let d = validate(&config(MUTATOR, vec![test_block("sets it", POD, right)]));
        assert!(!d.has_errors(), "{d:?}");
        let wrong = "spec:\n  containers:\n    - {name: side, securityContext: {allowPrivilegeEscalation: false}}\n";
        let d = validate(&config(
            MUTATOR,
            vec![
                test_block("ok", POD, right),
                test_block("overrides", POD, wrong),
            ],
        ));
        assert_eq!(d.0.len(), 1, "{d:?}");
        assert!(d.0[0].summary.contains("\"overrides\""), "{d:?}");
        assert_first_detail(&d, "spec.containers[name: side].securityContext.allowPrivilegeEscalation is true, expected false");
        assert_eq!(
            d.0[0].attribute,
            Some(AttributePath::attr("test").index(1).attribute("name"))
        );
    }

    #[test]
    fn every_problem_is_reported_on_its_attribute() {
        let d = validate(&config(
            &MUTATOR.replace("kind: Assign", "kind: Mutate"),
            vec![test_block("t", POD, "x: 1")],
        ));
        assert_eq!(d.0.len(), 1, "{d:?}");
        assert_eq!(d.0[0].attribute, Some(AttributePath::attr("mutator")));
        assert_first_detail(&d, "kind \"Mutate\"");
        let d = validate(&config(
            MUTATOR,
            vec![
                test_block("bad object", "a: [", "x: 1"),
                test_block("bad expect", POD, "a: ["),
            ],
        ));
        let attrs: Vec<_> = d.0.iter().map(|x| x.attribute.clone()).collect();
        assert_eq!(
            attrs,
            vec![
                Some(AttributePath::attr("test").index(0).attribute("object")),
                Some(AttributePath::attr("test").index(1).attribute("expect")),
            ]
        );
    }

    #[test]
    fn tests_see_the_default_narrowing() {
        let in_kube_system = POD.replace(
            "metadata: {name: web}",
            "metadata: {name: web, namespace: azure-arc}",
        );
        let unchanged = "spec:\n  containers:\n    - {name: app, image: nginx}\n";
        // Excluded by default (and by the add-on): nothing changes, so `securityContext` is absent.
        let d = validate(&config(
            MUTATOR,
            vec![test_block(
                "excluded",
                &in_kube_system,
                "spec:\n  containers:\n    - {name: app, securityContext: {}}\n",
            )],
        ));
        assert!(d.has_errors());
        assert_first_detail(&d, "securityContext is missing");
        let d = validate(&config(
            MUTATOR,
            vec![test_block("excluded", &in_kube_system, unchanged)],
        ));
        assert!(!d.has_errors(), "{d:?}");
    }

    #[test]
    fn read_keeps_the_users_yaml_and_shows_drift() {
        let cfg = config(MUTATOR, vec![]);
        let mut d = Diagnostics::new();
        let (spec, _) = check_config(&cfg, &mut d).expect("valid");
        let definition = PolicyDefinition {
            id: Some("/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/no-escalation".into()),
            name: Some("no-escalation".into()),
            properties: spec.properties(),
            ..Default::default()
        };
        let reformatted = MUTATOR.replace(
            "  name: no-privilege-escalation",
            "  name: \"no-privilege-escalation\"",
        );
        let mut prior = cfg.clone();
        prior.mutator = Some(reformatted.clone());
        let state = KubernetesMutationResource::state_of(&prior, &definition, "/subscriptions/s");
        assert_eq!(state.mutator, Some(reformatted));
        assert_eq!(state.source.as_deref(), Some("Original"));
        assert_eq!(state.default_effect.as_deref(), Some("Mutate"));
        assert_eq!(
            state.excluded_namespaces.unwrap_or_default(),
            DEFAULT_EXCLUDED
        );
        // Someone changed the mutator in Azure: the plan shows Azure's YAML.
        let mut changed = spec.clone();
        changed.mutator_yaml = MUTATOR.replace("value: false", "value: true");
        let drifted = PolicyDefinition {
            properties: changed.properties(),
            ..definition.clone()
        };
        let state = KubernetesMutationResource::state_of(&prior, &drifted, "/subscriptions/s");
        assert!(state.mutator.unwrap().contains("value: true"));
        // Import: from an id-only stub, everything comes from Azure.
        let stub = POLICY_DEFINITIONS
            .import(definition.id.as_deref().unwrap(), &mut Diagnostics::new())
            .unwrap();
        let imported =
            KubernetesMutationResource::state_from(&stub, &definition, "/subscriptions/s");
        let imported = KubernetesMutation::decode(&imported).unwrap();
        assert_eq!(imported.mutator.as_deref(), Some(MUTATOR));
    }
}
