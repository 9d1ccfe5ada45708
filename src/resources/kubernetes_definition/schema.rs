//! The schema of `akspolicy_kubernetes_definition` and the Rust types its configuration, plan
//! and state decode into.

use crate::framework::timeouts;
use crate::framework::typed::{Knowable, Whole};
use crate::framework::{
    Attribute, AttributePath, Block, Diagnostics, NestedBlock, Schema, Type, Value,
};
use crate::typed_object;

use super::DEFAULT_EFFECTS;
use crate::resources::definition::validate_json_object;
use crate::resources::shared::definition_api::{
    definition_state, descriptive_attributes, identifying_attributes,
};
use crate::resources::shared::waits::POLICY_TIMEOUTS;

definition_state! {
    /// The whole resource: configuration, plan or state. Computed attributes are `Knowable`:
    /// they are what a plan may leave unknown once the configuration is known.
    pub struct KubernetesDefinition {
        pub constraint_template: Option<String>,
        pub template_url: Option<String>,
        pub effects: Option<Vec<String>>,
        pub default_effect: Option<String>,
        pub policy_rule: Knowable<String>,
        pub parameters: Knowable<String>,
        pub rendered_template: Knowable<String>,
        pub template: Vec<TemplateBlock>,
        pub r#match: Vec<MatchBlock>,
        pub test: Vec<Whole<TestBlock>>,
        pub timeouts: Value,
    }
}

typed_object! {
    /// The `template` block.
    pub struct TemplateBlock {
        pub kind: String,
        pub rego: String,
        pub libs: Option<Vec<String>>,
        pub parameters_schema: Option<String>,
    }
}

typed_object! {
    /// A `match` block.
    pub struct MatchBlock {
        pub api_groups: Option<Vec<String>>,
        pub kinds: Vec<String>,
    }
}

typed_object! {
    /// A `test` block. Every attribute may still be unknown during validation, where a test
    /// that is not wholly known is skipped.
    pub struct TestBlock {
        pub name: Option<String>,
        pub object: Option<String>,
        pub parameters: Option<String>,
        pub inventory: Option<Vec<String>>,
        pub violations: Option<String>,
        pub message: Option<String>,
        pub external_data: Option<String>,
        pub timeout: Option<String>,
    }
}

pub fn schema() -> Schema {
    let template = Block::new()
        .description("The parts of the ConstraintTemplate; the provider renders the YAML.")
        .attribute(
            Attribute::string("kind")
                .required()
                .description("The Constraint kind in CamelCase, e.g. `K8sNoLatestTag`. The template is named after its lower-case form."),
        )
        .attribute(
            Attribute::string("rego")
                .required()
                .description("The entry Rego module. It must define `violation`; Rego v0 unless it declares `import rego.v1`."),
        )
        .attribute(
            Attribute::new("libs", Type::list(Type::String))
                .optional()
                .description("Library modules, each `package lib.<name>`."),
        )
        .attribute(
            Attribute::string("parameters_schema")
                .optional()
                .description("The openAPIV3Schema of the constraint parameters, as JSON (`jsonencode({...})`). Each property becomes a definition parameter."),
        );
    let match_block = Block::new()
        .description("Which Kubernetes objects the policy reviews (Gatekeeper's `match.kinds`). Without a `match` block the definition, and its `test` blocks, review only Pods of the core API group (`api_groups = [\"\"]`, `kinds = [\"Pod\"]`); a Deployment is not reviewed unless its kind is listed.")
        .attribute(
            Attribute::new("api_groups", Type::list(Type::String))
                .default(Value::string_list([""]))
                .description("API groups; `\"\"` is the core group. Defaults to `[\"\"]`."),
        )
        .attribute(
            Attribute::new("kinds", Type::list(Type::String))
                .required()
                .description("Kinds, e.g. `[\"Pod\"]`."),
        );
    let test = Block::new()
        .description("A policy unit test evaluated at plan time (gator verify semantics). The object is reviewed as on an AKS cluster with this definition assigned with the test's `parameters`: by the Constraint the policy add-on would install, through the same matching and Rego evaluation as the emulator's admission webhook. So the `match` kinds apply (only core-group Pods without a `match` block), namespaced objects without `metadata.namespace` are in `default`, and the definition's default `excludedNamespaces` apply (`kube-system`, `gatekeeper-system`, `azure-arc`, `azure-extensions-usage-system`): override them in `parameters`, e.g. `excludedNamespaces = []`. Objects in `kube-system`, `gatekeeper-system` and `azure-arc` are never reviewed, whatever the parameters say, as the add-on always leaves them alone. A failing test is reported on its `name`.")
        .attribute(Attribute::string("name").required().description("Names the test in failures."))
        .attribute(
            Attribute::string("object")
                .required()
                .description("The object under review: a YAML manifest (each document reviewed) or an AdmissionReview."),
        )
        .attribute(
            Attribute::string("parameters")
                .optional()
                .description("Definition parameter values as a JSON object of plain values (like an assignment's), e.g. `jsonencode({ exemptImages = [\"x\"] })`. The standard parameters apply too: `excludedNamespaces`, `namespaces`, `labelSelector` (a Kubernetes label selector on the object's labels) and `effect` (when `default_effect` is `disabled`, tests review as `audit` unless they set `effect`). Template parameters left out are absent from the constraint (an assignment would have to give them)."),
        )
        .attribute(
            Attribute::new("inventory", Type::list(Type::String))
                .optional()
                .description("YAML manifests of cluster objects visible as `data.inventory`."),
        )
        .attribute(
            Attribute::string("violations")
                .default(Value::string("yes"))
                .description("`yes` (at least one), `no` (none) or a number (exactly that many). Defaults to `yes`."),
        )
        .attribute(
            Attribute::string("message")
                .optional()
                .description("A regular expression; only violations whose message matches count."),
        )
        .attribute(
            Attribute::string("external_data")
                .optional()
                .validate_with(validate_json_object)
                .description("What Gatekeeper external data providers answer during this test, as JSON: provider name -> key -> answer, where an answer is `{ value = ... }`, `{ error = \"...\" }` or a bare value, e.g. `jsonencode({ \"ratify-provider\" = { \"nginx:1.27\" = { error = \"no signature\" } } })`. `external_data({\"provider\": p, \"keys\": [...]})` then returns Gatekeeper's response (`responses`, `errors`, `system_error`, `status_code`); a provider not listed answers with a `system_error`."),
        )
        .attribute(
            Attribute::string("timeout")
                .optional()
                .description("How long evaluating the policy for one object may take, e.g. `10s`. Defaults to `5s`; an evaluation that runs longer (endless recursion, a huge comprehension) fails the test.")
                .validate_with(validate_duration),
        );
    let identified = identifying_attributes(
        Block::new().description(
            "A custom Azure Policy definition for Kubernetes (mode `Microsoft.Kubernetes.Data`) \
             whose Gatekeeper ConstraintTemplate is written in Rego. Templates, Rego and `test` \
             blocks are checked at plan time.",
        ),
        "definition",
        "Where the definition lives: ",
    );
    Schema::new(
        descriptive_attributes(
            identified,
            "The definition version, `x.y.z` Azure reports `1.0.0` when none is set.",
        )
            .attribute(
                Attribute::string("metadata")
                    .optional()
                    .description("Extra metadata as JSON. `category` defaults to `Kubernetes`."),
            )
            .attribute(
                Attribute::string("constraint_template")
                    .optional()
                    .description("A complete ConstraintTemplate YAML (legacy `rego` or `code[]` form). Exclusive with `template` and `template_url`."),
            )
            .attribute(
                Attribute::string("template_url")
                    .optional()
                    .description("A public URL of the ConstraintTemplate (sent as `PublicURL`). Exclusive with `template` and `constraint_template`; `test` blocks cannot run against it."),
            )
            .attribute(
                Attribute::new("effects", Type::list(Type::String))
                    .default(Value::string_list(DEFAULT_EFFECTS))
                    .description("Effects an assignment may choose. Defaults to `[\"audit\", \"deny\", \"disabled\"]`."),
            )
            .attribute(
                Attribute::string("default_effect")
                    .default(Value::string("audit"))
                    .description("The `effect` parameter's default; one of `effects`. Defaults to `audit`."),
            )
            .attribute(
                Attribute::string("policy_rule")
                    .optional()
                    .computed()
                    .description("The policy rule as Azure holds it (canonical JSON), except that the embedded template's base64 `content` is replaced by a placeholder: the template itself is `rendered_template`. Generated from `match` and the template when not set; set it (as `terraform plan -generate-config-out` does after an import) to keep a rule written elsewhere exactly as it is. It must then agree with `match`."),
            )
            .attribute(
                Attribute::string("parameters")
                    .optional()
                    .computed()
                    .description("The parameter declarations as Azure holds them (canonical JSON). Generated from the template, `effects` and `default_effect` when not set; set it (as `terraform plan -generate-config-out` does after an import) to keep declarations written elsewhere, such as other `excludedNamespaces` defaults, exactly as they are. Its `effect` must then agree with `effects` and `default_effect`."),
            )
            .attribute(
                Attribute::string("rendered_template")
                    .computed()
                    .description("The ConstraintTemplate YAML embedded in the definition; null for `template_url`."),
            )
            .block(NestedBlock::list("template", template).items(0, 1))
            .block(NestedBlock::list("match", match_block))
            .block(NestedBlock::list("test", test).local_only())
            .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

/// A test's `timeout`: a duration such as `10s` (at most an hour).
pub(super) fn parse_test_timeout(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() && d <= std::time::Duration::from_secs(3600) => Ok(d),
        Ok(_) => Err(format!("{text:?} must be more than zero and at most 1h")),
        Err(e) => Err(format!("{text:?} is not a duration like `10s` ({e})")),
    }
}

fn validate_duration(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(text) = value.as_str() else { return };
    if let Err(e) = parse_test_timeout(text) {
        diags.error_at(path.clone(), "Invalid timeout", e);
    }
}
