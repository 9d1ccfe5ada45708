use serde_json::json;

use crate::framework::typed::Whole;
use crate::resources::definition::{
    implied_kubernetes_metadata as implied_metadata, user_metadata,
};
use crate::resources::shared::testing::validation_of;

use super::*;

/// The no-latest-tag template the Rego engine's own tests use.
const REGO: &str = crate::policy::rego::test_support::NO_LATEST;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: app\n    image: nginx:latest\n";

fn config(tests: Vec<TestBlock>) -> KubernetesDefinition {
    KubernetesDefinition {
            name: Some("k8s-no-latest".into()),
            template: vec![TemplateBlock {
                kind: "K8sNoLatestTag".into(),
                rego: REGO.into(),
                libs: None,
                parameters_schema: Some(
                    r#"{"type":"object","properties":{"exemptImages":{"type":"array","items":{"type":"string"}}}}"#.into(),
                ),
            }],
            test: tests.into_iter().map(Whole::new).collect(),
            ..Default::default()
        }
}

fn test_block(
    name: &str,
    params: Option<&str>,
    violations: &str,
    message: Option<&str>,
) -> TestBlock {
    TestBlock {
        name: Some(name.into()),
        object: Some(POD.into()),
        parameters: params.map(str::to_string),
        violations: Some(violations.into()),
        message: message.map(str::to_string),
        ..Default::default()
    }
}

fn validate(config: &KubernetesDefinition) -> Diagnostics {
    validation_of(&KubernetesDefinitionResource, &config.to_value())
}

fn state_from(
    prior: &KubernetesDefinition,
    azure: &PolicyDefinition,
    scope: &str,
) -> KubernetesDefinition {
    let state = KubernetesDefinitionResource::state_from(&prior.to_value(), azure, scope);
    KubernetesDefinition::decode(&state).expect("state decodes")
}

#[test]
fn plain_http_template_url_is_a_warning() {
    for (url, warned) in [
        ("http://example.com/template.yaml", true),
        ("https://example.com/template.yaml", false),
    ] {
        let config = KubernetesDefinition {
            template_url: Some(url.into()),
            ..Default::default()
        };
        let mut d = Diagnostics::new();
        let resolved = resolve_template(&config, &mut d);
        assert!(resolved.is_some() && !d.has_errors(), "{:?}", d.0);
        let warning =
            d.0.iter()
                .find(|w| w.summary == "Template fetched without encryption");
        assert_eq!(warning.is_some(), warned, "{url}: {:?}", d.0);
        if let Some(w) = warning {
            assert_eq!(w.attribute, Some(AttributePath::attr("template_url")));
        }
    }
}

#[test]
fn passing_and_failing_tests() {
    let ok = config(vec![
        test_block("latest refused", None, "yes", Some("latest")),
        test_block(
            "exempt passes",
            Some(r#"{"exemptImages":["nginx:latest"]}"#),
            "no",
            None,
        ),
    ]);
    let d = validate(&ok);
    assert!(!d.has_errors(), "{:?}", d.0);
    let bad = config(vec![test_block("wrong", None, "no", None)]);
    let d = validate(&bad);
    assert!(d.has_errors());
    let diag = &d.0[0];
    assert!(diag.summary.contains("wrong"), "{}", diag.summary);
    assert!(
        diag.detail.contains("container app uses the latest tag"),
        "{}",
        diag.detail
    );
}

#[test]
fn every_problem_is_reported_on_its_attribute() {
    let mut c = config(vec![
        test_block("first", None, "no", None),
        test_block("fine", None, "yes", None),
        test_block("second", None, "2", None),
        test_block("bad json", Some("[1]"), "yes", None),
    ]);
    c.default_effect = Some("mutate".into());
    let d = validate(&c);
    let paths: Vec<String> =
        d.0.iter()
            .filter_map(|d| d.attribute.as_ref().map(|p| p.to_string()))
            .collect();
    assert_eq!(
        paths,
        [
            "default_effect",
            "test[0].name",
            "test[2].name",
            "test[3].parameters"
        ],
        "{:?}",
        d.0
    );
}

#[test]
fn parameters_a_test_leaves_out_are_absent() {
    let rego = "package k8sx\n\nviolation[{\"msg\": \"no exemptImages\"}] {\n  not input.parameters.exemptImages\n}\n";
    let mut c = config(vec![
        test_block("absent", None, "yes", None),
        test_block("given", Some(r#"{"exemptImages":[]}"#), "no", None),
    ]);
    c.template[0].rego = rego.into();
    c.template[0].kind = "K8sX".into();
    let d = validate(&c);
    assert!(!d.has_errors(), "{:?}", d.0);
}

#[test]
fn tests_review_what_the_add_on_reviews() {
    let in_ns = |ns: &str| POD.replace("  name: p\n", &format!("  name: p\n  namespace: {ns}\n"));
    let case = |object: String, params: Option<&str>, expected: &str| {
        let mut t = test_block("t", params, expected, None);
        t.object = Some(object);
        let d = validate(&config(vec![t]));
        assert!(!d.has_errors(), "{:?}", d.0);
    };
    // Azure's default exclusions apply, and can be overridden except for the namespaces
    // the add-on always leaves alone.
    case(in_ns("azure-extensions-usage-system"), None, "no");
    let none = Some(r#"{"excludedNamespaces":[]}"#);
    case(in_ns("azure-extensions-usage-system"), none, "yes");
    case(in_ns("kube-system"), none, "no");
    case(in_ns("azure-arc"), none, "no");
    // Without a match block only core-group Pods are reviewed, even when another kind
    // carries the same fields.
    case(POD.replace("kind: Pod", "kind: PodTemplate"), None, "no");
    case(
        POD.replace("apiVersion: v1", "apiVersion: example.com/v1"),
        None,
        "no",
    );
    case(POD.to_string(), None, "yes");
}

/// The "Invalid Rego" diagnostic for a template whose entry module is `rego`.
fn rego_error(rego: &str) -> Diagnostic {
    let mut c = config(vec![]);
    c.template[0].rego = rego.into();
    validate(&c)
        .0
        .into_iter()
        .find(|d| d.summary == "Invalid Rego")
        .expect("rego error")
}

#[test]
fn rego_errors_point_at_the_rego_with_position() {
    let diag = rego_error("package x\n\nviolation[{\"msg\": m}] {\n  m := \n}\n");
    assert_eq!(
        diag.attribute.as_ref().map(|p| p.to_string()).as_deref(),
        Some("template[0].rego")
    );
    assert!(diag.detail.starts_with("rego:"), "{}", diag.detail);
}

fn azure_copy(config: &KubernetesDefinition) -> PolicyDefinition {
    let mut d = Diagnostics::new();
    let (spec, _) = spec_from(config, &mut d).expect("valid config");
    PolicyDefinition {
        id: Some(
            "/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/k8s-no-latest"
                .into(),
        ),
        name: Some("k8s-no-latest".into()),
        properties: spec.properties().expect("properties"),
        ..Default::default()
    }
}

#[test]
fn read_keeps_the_users_form_and_maps_drift_back_to_rego() {
    let cfg = config(vec![]);
    let azure = azure_copy(&cfg);
    let state = state_from(&cfg, &azure, "/subscriptions/s");
    assert_eq!(state.template, cfg.template);
    assert!(state
        .policy_rule
        .as_deref()
        .is_some_and(|r| r.contains(TEMPLATE_CONTENT_PLACEHOLDER)));

    let mut drifted_cfg = cfg.clone();
    drifted_cfg.template[0].rego = REGO.replace("uses the latest tag", "is latest");
    let drifted = azure_copy(&drifted_cfg);
    let again = state_from(&state, &drifted, "/subscriptions/s");
    assert_eq!(again.template[0].rego, drifted_cfg.template[0].rego);
    // Only the rendered template changes; the rule exposed in state does not.
    assert_eq!(again.policy_rule, state.policy_rule);
}

#[test]
fn match_and_effect_drift_is_shown_on_those_attributes() {
    let cfg = config(vec![]);
    let state = state_from(&cfg, &azure_copy(&cfg), "/subscriptions/s");
    let mut changed = cfg.clone();
    changed.r#match = vec![MatchBlock {
        api_groups: Some(vec!["apps".into()]),
        kinds: vec!["Deployment".into()],
    }];
    changed.default_effect = Some("deny".into());
    let again = state_from(&state, &azure_copy(&changed), "/subscriptions/s");
    assert_eq!(again.r#match, changed.r#match);
    assert_eq!(again.default_effect.as_deref(), Some("deny"));
    assert_eq!(again.template, cfg.template);
}

#[test]
fn import_recovers_template_block_and_match() {
    let azure = azure_copy(&config(vec![]));
    let stub = KubernetesDefinition {
        id: azure.id.clone().into(),
        name: Some("k8s-no-latest".into()),
        scope: Knowable::Known("/subscriptions/s".into()),
        ..Default::default()
    };
    let state = state_from(&stub, &azure, "/subscriptions/s");
    assert_eq!(state.template[0].kind, "K8sNoLatestTag");
    assert_eq!(state.template[0].rego, REGO);
    assert_eq!(state.r#match[0].kinds, vec!["Pod".to_string()]);
    assert_eq!(state.default_effect.as_deref(), Some("audit"));
}

#[test]
fn rego_errors_in_full_templates_name_the_yaml_line() {
    let yaml = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8sx\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sX\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package k8sx\n        violation[{\"msg\": m}] {\n          m := \"a\"\n          1 +* 2\n        }\n";
    let mut c = config(vec![]);
    c.template = Vec::new();
    c.constraint_template = Some(yaml.into());
    let d = validate(&c);
    let diag =
        d.0.iter()
            .find(|d| d.summary == "Invalid Rego")
            .expect("rego error");
    assert!(
        diag.detail.contains("line 16 of the YAML"),
        "{}",
        diag.detail
    );
    assert!(diag.detail.contains("rego:4:"), "{}", diag.detail);
}

#[test]
fn runtime_errors_in_tests_name_the_yaml_line() {
    // Two values for one complete rule: an error only once a Pod is reviewed.
    let yaml = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8sx\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sX\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package k8sx\n        kind = 1 { input.review.object.kind == \"Pod\" }\n        kind = 2 { input.review.object.kind == \"Pod\" }\n        violation[{\"msg\": m}] {\n          kind > 0\n          m := \"a\"\n        }\n";
    let mut c = config(vec![test_block("pod", None, "yes", None)]);
    c.template = Vec::new();
    c.constraint_template = Some(yaml.into());
    let d = validate(&c);
    let diag =
        d.0.iter()
            .find(|d| d.summary.contains("Policy test \"pod\" failed"))
            .unwrap_or_else(|| panic!("no test failure in {:?}", d.0));
    assert!(
        diag.detail.contains("of the YAML") && diag.detail.contains("evaluation failed at rego:"),
        "{}",
        diag.detail
    );
}

#[test]
fn tests_apply_the_standard_match_parameters() {
    let cases = [
        (r#"{"labelSelector":{"matchLabels":{"team":"a"}}}"#, "no"),
        (r#"{"excludedNamespaces":["default"]}"#, "no"),
        (r#"{"namespaces":["prod"]}"#, "no"),
        (r#"{"namespaces":["def*"]}"#, "yes"),
    ];
    for (params, expected) in cases {
        let c = config(vec![test_block("t", Some(params), expected, None)]);
        let d = validate(&c);
        assert!(!d.has_errors(), "{params}: {:?}", d.0);
    }
}

#[test]
fn v1_syntax_without_import_gets_a_hint() {
    let diag = rego_error(
        "package x\n\nviolation contains {\"msg\": \"m\"} if {\n  input.review.object.kind == \"Pod\"\n}\n",
    );
    assert!(diag.detail.contains("import rego.v1"), "{}", diag.detail);
}

#[test]
fn metadata_ignores_what_azure_and_the_provider_add() {
    let azure = json!({"category": "Kubernetes", "createdBy": "x", "version": "1.0.0"});
    assert_eq!(
        user_metadata(Some(&azure), None, &implied_metadata(Some("1.0.0"))),
        None
    );
    let prior = r#"{ "owner": "team" }"#;
    let azure = json!({"category": "Kubernetes", "owner": "team", "updatedOn": "t"});
    assert_eq!(
        user_metadata(Some(&azure), Some(prior), &implied_metadata(None)).as_deref(),
        Some(prior)
    );
    let azure = json!({"category": "Kubernetes", "owner": "other"});
    assert_eq!(
        user_metadata(Some(&azure), Some(prior), &implied_metadata(None)).as_deref(),
        Some(r#"{"owner":"other"}"#)
    );
}
