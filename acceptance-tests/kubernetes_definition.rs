//! `akspolicy_kubernetes_definition`, end to end, plus the shared corpus (gatekeeper-library
//! suites, Microsoft's Azure samples) through both callers of the one Gatekeeper engine: the
//! resource's plan-time `test` blocks and the emulator's admission webhook must decide alike.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value as Json};

use akspolicy::framework::Value;
use akspolicy::policy::constraint_template::{
    parse_yaml, parse_yaml_documents, AzureParameterType, ConstraintTemplate, TemplateSpec,
};
use akspolicy::policy::gatekeeper::{
    build_constraint, effective_parameters, Constraint, ConstraintOrigin,
};
use akspolicy::policy::kubernetes_definition::{
    KindMatch, KubernetesDefinitionSpec, TemplateSource,
};
use akspolicy::policy::rego;
use akspolicy::resources::kubernetes_definition::{PlannedPolicy, TestBlock};

use crate::cluster_addon::wait_idle;
use crate::harness::{shared_specs, Emulator, Workspace};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn strings(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Parse → compile → re-render through `template` → compile again; the Azure definition body
/// builds from it (parameter types map, no reserved names).
fn round_trip(template_yaml: &str) -> Result<ConstraintTemplate, String> {
    let template = ConstraintTemplate::parse(template_yaml).map_err(|e| e.to_string())?;
    rego::compile(&template.rego).map_err(|e| e.to_string())?;
    let spec = TemplateSpec {
        kind: template.kind.clone(),
        rego: template.rego.entry.clone(),
        libs: template.rego.libs.clone(),
        parameters_schema: template.parameters_schema.clone(),
    };
    let (rendered, again) = spec.render().map_err(|e| e.to_string())?;
    if again.rego.entry != template.rego.entry
        || again.parameters_schema != template.parameters_schema
    {
        return Err("re-rendered template differs".into());
    }
    ConstraintTemplate::parse(&rendered).map_err(|e| format!("re-parse: {e}"))?;
    definition_spec(
        &template,
        template_yaml,
        &[KindMatch {
            api_groups: vec![String::new()],
            kinds: vec!["Pod".into()],
        }],
    )?
    .properties()
    .map_err(|e| format!("definition body: {e}"))?;
    Ok(template)
}

/// The definition `akspolicy_kubernetes_definition` builds for a full `constraint_template`.
fn definition_spec(
    template: &ConstraintTemplate,
    yaml: &str,
    matches: &[KindMatch],
) -> Result<KubernetesDefinitionSpec, String> {
    Ok(KubernetesDefinitionSpec {
        display_name: Some(template.kind.clone()),
        description: None,
        version: None,
        metadata: Map::new(),
        template: TemplateSource::Embedded(yaml.to_string()),
        template_parameters: template.parameters().map_err(|e| e.to_string())?,
        matches: matches.to_vec(),
        effects: vec!["audit".into(), "deny".into(), "disabled".into()],
        default_effect: "audit".into(),
    })
}

fn files_in(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_in(&p, name));
        } else if p.file_name().and_then(|n| n.to_str()) == Some(name) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// What one caller decided for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Deny messages as the template wrote them (without the constraint name), sorted.
    Denied(Vec<String>),
    /// Admitted without a violation.
    Admitted,
    /// Evaluation failed; admission fails open as Gatekeeper's webhook does.
    FailedOpen,
}

/// A (template, constraint) pair as a user would write it: the resource's configuration (the
/// constraint's kinds as `match` blocks) and the values a `test` block and an assignment pass
/// (the constraint's parameters plus its namespaces, exclusions and label selector).
struct Installed {
    config: Value,
    values: Map<String, Json>,
    definition: Json,
    /// Template parameters the constraint leaves out, given an empty value: the corpus'
    /// expectation does not apply then.
    filled: Vec<String>,
}

fn install(template_yaml: &str, constraint: &Constraint) -> Result<Installed, String> {
    let template = ConstraintTemplate::parse(template_yaml).map_err(|e| e.to_string())?;
    let matches: Vec<KindMatch> = constraint
        .matcher
        .kinds
        .iter()
        .map(|k| KindMatch {
            api_groups: k.api_groups.clone(),
            kinds: k.kinds.clone(),
        })
        .collect();
    let m = &constraint.matcher;
    assert!(
        m.namespace_selector.is_none() && m.name.is_none(),
        "{}: a definition cannot express namespaceSelector or name",
        constraint.name
    );
    // Azure requires a value for every parameter without a default, and the resource declares
    // template parameters without one: parameters the constraint leaves out get an empty value
    // of their type, in the test block and the assignment alike. Values for parameters the
    // template does not declare (sample/definition version skew) cannot be assigned.
    let given = constraint
        .parameters
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut values = Map::new();
    let mut filled = Vec::new();
    for p in template.parameters().map_err(|e| e.to_string())? {
        let value = match given.get(&p.name).filter(|v| !v.is_null()) {
            Some(v) => v.clone(),
            None => {
                filled.push(p.name.clone());
                match p.parameter_type {
                    AzureParameterType::String => json!(""),
                    AzureParameterType::Integer | AzureParameterType::Float => json!(0),
                    AzureParameterType::Boolean => json!(false),
                    AzureParameterType::Array => json!([]),
                    AzureParameterType::Object => json!({}),
                }
            }
        };
        values.insert(p.name, value);
    }
    values.insert("effect".into(), json!("deny"));
    values.insert("excludedNamespaces".into(), json!(m.excluded_namespaces));
    values.insert("namespaces".into(), json!(m.namespaces));
    values.insert("labelSelector".into(), m.label_selector.clone());
    let match_blocks = matches
        .iter()
        .map(|k| {
            Value::object([
                ("api_groups", Value::string_list(k.api_groups.clone())),
                ("kinds", Value::string_list(k.kinds.clone())),
            ])
        })
        .collect();
    let config = Value::object([
        ("name", Value::string("corpus")),
        ("display_name", Value::Null),
        ("description", Value::Null),
        ("version", Value::Null),
        ("metadata", Value::Null),
        ("template", Value::List(vec![])),
        ("constraint_template", Value::string(template_yaml)),
        ("template_url", Value::Null),
        ("match", Value::List(match_blocks)),
        ("effects", Value::Null),
        ("default_effect", Value::Null),
        ("test", Value::List(vec![])),
    ]);
    let properties = definition_spec(&template, template_yaml, &matches)?
        .properties()
        .map_err(|e| e.to_string())?;
    Ok(Installed {
        config,
        values,
        definition: json!({ "properties": properties }),
        filled,
    })
}

/// The plan-time caller: a `test` block of the resource, reviewed by the resource's own code.
fn test_block_outcome(
    policy: &PlannedPolicy,
    installed: &Installed,
    objects: &[Json],
    inventory: &[Json],
) -> Outcome {
    // JSON is YAML; several documents make one multi-document `object`.
    let yaml = objects
        .iter()
        .map(|o| serde_json::to_string(o).expect("object JSON"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let inventory: Vec<String> = inventory
        .iter()
        .map(|o| serde_json::to_string(o).expect("inventory JSON"))
        .collect();
    let test = TestBlock {
        name: Some("case".into()),
        object: Some(yaml),
        parameters: Some(Json::Object(installed.values.clone()).to_string()),
        inventory: (!inventory.is_empty()).then_some(inventory),
        violations: Some("yes".into()),
        ..Default::default()
    };
    match policy.review(&test) {
        Ok(violations) if violations.is_empty() => Outcome::Admitted,
        Ok(violations) => {
            let mut msgs: Vec<String> = violations.into_iter().map(|v| v.rego_message).collect();
            msgs.sort();
            Outcome::Denied(msgs)
        }
        Err(_) => Outcome::FailedOpen,
    }
}

/// The emulator, one AKS cluster per inventory, and definitions installed through ARM.
struct EmulatedCluster {
    emulator: Emulator,
    token: String,
    rg: String,
    clusters: usize,
    definitions: usize,
}

impl EmulatedCluster {
    fn start() -> EmulatedCluster {
        let emulator = Emulator::start();
        let token = emulator.token();
        let rg = format!(
            "/subscriptions/{}/resourceGroups/corpus",
            emulator.subscription_id()
        );
        let (status, body) = emulator.arm_with(
            &token,
            "PUT",
            &format!("{rg}?api-version=2021-04-01"),
            Some(&json!({"location": "westeurope"})),
        );
        assert!(status == 200 || status == 201, "{body}");
        EmulatedCluster {
            emulator,
            token,
            rg,
            clusters: 0,
            definitions: 0,
        }
    }

    fn call(&self, method: &str, path: &str, body: &Json) -> Json {
        let (status, answer) = self
            .emulator
            .arm_with(&self.token, method, path, Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// A new cluster with the policy add-on, holding `objects` (admitted before any policy).
    fn cluster(&mut self, objects: &[Json]) -> String {
        self.clusters += 1;
        let id = format!(
            "{}/providers/Microsoft.ContainerService/managedClusters/c{}",
            self.rg, self.clusters
        );
        self.call(
            "PUT",
            &format!("{id}?api-version=2026-04-01"),
            &json!({"location": "westeurope", "properties": {
                "dnsPrefix": format!("c{}", self.clusters),
                "addonProfiles": {"azurepolicy": {"enabled": true}}}}),
        );
        wait_idle(&self.emulator, &id);
        for object in objects {
            let answer = self.admit_raw(&id, rego::review_for(object), false);
            assert_eq!(answer["response"]["allowed"], true, "{answer}");
        }
        id
    }

    /// Stores the definition and assigns it to `cluster` with `values` (replacing the previous
    /// assignment there).
    fn assign(&mut self, cluster: &str, installed: &Installed) {
        self.definitions += 1;
        let sub = format!("/subscriptions/{}", self.emulator.subscription_id());
        let definition = format!(
            "{sub}/providers/Microsoft.Authorization/policyDefinitions/corpus-{}",
            self.definitions
        );
        self.call(
            "PUT",
            &format!("{definition}?api-version=2025-03-01"),
            &installed.definition,
        );
        let parameters: Map<String, Json> = installed
            .values
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "value": v })))
            .collect();
        self.call(
            "PUT",
            &format!("{cluster}/providers/Microsoft.Authorization/policyAssignments/corpus?api-version=2025-03-01"),
            &json!({"properties": {"policyDefinitionId": definition, "parameters": parameters}}),
        );
    }

    fn admit_raw(&self, cluster: &str, mut request: Json, dry_run: bool) -> Json {
        request["dryRun"] = json!(dry_run);
        self.call(
            "POST",
            &format!("/_emulator/admission{cluster}"),
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}),
        )
    }

    /// The admission caller: the emulator's webhook, as dry runs (nothing is stored).
    fn admission_outcome(&self, cluster: &str, objects: &[Json]) -> Outcome {
        let mut msgs: Vec<String> = Vec::new();
        for object in objects {
            let answer = self.admit_raw(cluster, rego::review_for(object), true);
            let response = &answer["response"];
            if response["allowed"] != true {
                let message = response["status"]["message"].as_str().unwrap_or_default();
                msgs.extend(deny_messages(message));
            }
        }
        if msgs.is_empty() {
            return Outcome::Admitted;
        }
        msgs.sort();
        Outcome::Denied(msgs)
    }
}

/// The template messages in a webhook's deny message: `[constraint] msg` entries joined by
/// newlines (a message may hold newlines itself).
fn deny_messages(message: &str) -> Vec<String> {
    let mut msgs: Vec<String> = Vec::new();
    for line in message.split('\n') {
        match line
            .strip_prefix("[azurepolicy-")
            .and_then(|r| r.split_once("] "))
        {
            Some((_, msg)) => msgs.push(msg.to_string()),
            None => match msgs.last_mut() {
                Some(last) => {
                    last.push('\n');
                    last.push_str(line);
                }
                None => msgs.push(line.to_string()),
            },
        }
    }
    msgs
}

/// Which cases a suite runs, with the object and inventory of each.
struct Case {
    label: String,
    /// The documents of one file, reviewed together.
    objects: Vec<Json>,
    inventory: Vec<Json>,
    /// The expectation the corpus states, checked on the plan-time answer.
    expect: Box<dyn Fn(&Outcome) -> bool>,
}

/// For every case: both callers decide alike, and the corpus' own expectation holds (except for
/// the listed regorus/OPA or sample/definition differences, which must keep failing).
fn differential(
    emulated: &mut EmulatedCluster,
    main_cluster: &str,
    template_yaml: &str,
    constraint: &Constraint,
    cases: Vec<Case>,
    expected_failures: &[&str],
    report: &mut Report,
) {
    let installed = match install(template_yaml, constraint) {
        Ok(i) => i,
        Err(e) => {
            report.unexpected.push(format!("{}: {e}", constraint.name));
            return;
        }
    };
    let policy = match PlannedPolicy::from_config(&installed.config) {
        Ok(p) => p,
        Err(d) => {
            report.unexpected.push(format!(
                "{}: test blocks cannot run: {:?}",
                constraint.name, d.0
            ));
            return;
        }
    };
    emulated.assign(main_cluster, &installed);
    for case in cases {
        let planned = test_block_outcome(&policy, &installed, &case.objects, &case.inventory);
        let admitted = if case.inventory.is_empty() {
            emulated.admission_outcome(main_cluster, &case.objects)
        } else {
            let cluster = emulated.cluster(&case.inventory);
            emulated.assign(&cluster, &installed);
            emulated.admission_outcome(&cluster, &case.objects)
        };
        report.compared += 1;
        // An evaluation error fails a test block and fails open at admission.
        let agree = planned == admitted
            || (planned == Outcome::FailedOpen && admitted == Outcome::Admitted);
        if !agree {
            report.unexpected.push(format!(
                "{}: test block says {planned:?}, admission says {admitted:?}",
                case.label
            ));
        }
        if !installed.filled.is_empty() {
            report.not_faithful += 1;
            continue;
        }
        let known = expected_failures.contains(&case.label.as_str());
        match ((case.expect)(&planned), known) {
            (true, false) => report.passed += 1,
            (false, true) => report.expected_failures += 1,
            (true, true) => report
                .unexpected
                .push(format!("{}: expected failure now passes", case.label)),
            (false, false) => report.unexpected.push(format!(
                "{}: corpus expectation not met: {planned:?}",
                case.label
            )),
        }
    }
}

#[derive(Default)]
struct Report {
    compared: usize,
    passed: usize,
    expected_failures: usize,
    /// Cases whose constraint an assignment cannot reproduce exactly.
    not_faithful: usize,
    unexpected: Vec<String>,
}

impl Report {
    fn finish(self, what: &str) {
        eprintln!(
            "{what}: {} cases decided alike by test blocks and admission; {} meet the corpus expectation, {} expected failures, {} not comparable with it (parameters an assignment must give)",
            self.compared, self.passed, self.expected_failures, self.not_faithful
        );
        assert!(self.compared > 0, "{what}: no case compared");
        assert!(
            self.unexpected.is_empty(),
            "{what}: unexpected results:\n{}",
            self.unexpected.join("\n")
        );
    }
}

/// Cases that differ between regorus and OPA (see the reference notes); they must keep failing
/// the same way, so a regorus upgrade that fixes them shows up here.
const GATEKEEPER_EXPECTED_FAILURES: &[&str] = &["users/users-and-groups-together/example-allowed"];

/// gator's assertion: `violations` yes / no / N among messages matching `message`.
fn gator_assertions(assertions: Vec<Json>) -> Box<dyn Fn(&Outcome) -> bool> {
    Box::new(move |outcome: &Outcome| {
        let msgs: &[String] = match outcome {
            Outcome::Denied(m) => m,
            Outcome::Admitted => &[],
            Outcome::FailedOpen => return false,
        };
        assertions.iter().all(|a| {
            let re = a
                .get("message")
                .and_then(Json::as_str)
                .map(|m| regex::Regex::new(m).expect("regex"));
            let n = msgs
                .iter()
                .filter(|m| re.as_ref().is_none_or(|r| r.is_match(m)))
                .count();
            match a.get("violations") {
                Some(Json::String(s)) if s == "no" => n == 0,
                Some(Json::Bool(false)) => n == 0,
                Some(Json::Number(k)) => Some(n as u64) == k.as_u64(),
                _ => n > 0,
            }
        })
    })
}

#[test]
fn gatekeeper_library_test_blocks_and_admission_agree() {
    let Some(specs) = shared_specs() else {
        eprintln!("skipped: ../shared/specs is not present");
        return;
    };
    let suites = files_in(&specs.join("gatekeeper-library/library"), "suite.yaml");
    assert!(!suites.is_empty(), "no suites found");
    let mut emulated = EmulatedCluster::start();
    let main_cluster = emulated.cluster(&[]);
    let mut report = Report::default();
    for suite_path in &suites {
        let dir = suite_path.parent().expect("suite has a directory");
        let suite_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let suite = parse_yaml(&read(suite_path)).expect("suite YAML");
        for test in suite["tests"].as_array().cloned().unwrap_or_default() {
            let test_name = test["name"].as_str().unwrap_or("?");
            let template_yaml = read(&dir.join(test["template"].as_str().expect("template path")));
            if let Err(e) = round_trip(&template_yaml) {
                report
                    .unexpected
                    .push(format!("{suite_name}/{test_name}: template: {e}"));
                continue;
            }
            let constraint = Constraint::from_document(
                &parse_yaml(&read(
                    &dir.join(test["constraint"].as_str().expect("constraint path")),
                ))
                .expect("constraint YAML"),
            );
            let cases = test["cases"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|case| {
                    let mut inventory = Vec::new();
                    for inv in strings(case.get("inventory")) {
                        inventory.extend(
                            parse_yaml_documents(&read(&dir.join(inv))).expect("inventory YAML"),
                        );
                    }
                    Case {
                        label: format!(
                            "{suite_name}/{test_name}/{}",
                            case["name"].as_str().unwrap_or("?")
                        ),
                        objects: vec![parse_yaml(&read(
                            &dir.join(case["object"].as_str().expect("object path")),
                        ))
                        .expect("object YAML")],
                        inventory,
                        expect: gator_assertions(
                            case["assertions"].as_array().cloned().unwrap_or_default(),
                        ),
                    }
                })
                .collect();
            differential(
                &mut emulated,
                &main_cluster,
                &template_yaml,
                &constraint,
                cases,
                GATEKEEPER_EXPECTED_FAILURES,
                &mut report,
            );
        }
    }
    report.finish("gatekeeper-library");
}

/// Azure sample examples that do not behave as their folder says against the current built-in,
/// with the reason.
const AZURE_SAMPLE_EXPECTED_FAILURES: &[&str] = &[
    // Sample written for HostNetworkPorts 6.x; the current definition passes different values.
    "host-network-ports/examples/scenario-allow-host-network-port/violations/violation-example.yaml",
];

#[test]
fn azure_samples_test_blocks_and_admission_agree() {
    let Some(specs) = shared_specs() else {
        eprintln!("skipped: ../shared/specs is not present");
        return;
    };
    let samples = specs.join("azure-policy/samples/KubernetesService");
    let definitions_dir = specs.join("azure-policy/built-in-policies/policyDefinitions/Kubernetes");
    let definitions: Vec<Json> = std::fs::read_dir(&definitions_dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| serde_json::from_str(&read(&e.path())).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&samples)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    let mut emulated = EmulatedCluster::start();
    let main_cluster = emulated.cluster(&[]);
    let mut report = Report::default();
    for dir in &dirs {
        let sample = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let template_yaml = read(&dir.join("template.yaml"));
        let template = match round_trip(&template_yaml) {
            Ok(t) => t,
            Err(e) => {
                report.unexpected.push(format!("{sample}: template: {e}"));
                continue;
            }
        };
        let needle = format!("/kubernetes/{sample}/");
        let Some(definition) = definitions.iter().find(|d| {
            d.pointer("/properties/policyRule/then/details/templateInfo/url")
                .and_then(Json::as_str)
                .is_some_and(|u| u.contains(&needle))
        }) else {
            report.unexpected.push(format!(
                "{sample}: no built-in definition points at this template"
            ));
            continue;
        };
        for params_file in files_in(&dir.join("examples"), "policy_parameters.json") {
            let scenario = params_file.parent().expect("scenario dir");
            let supplied: Map<String, Json> =
                serde_json::from_str(&read(&params_file)).unwrap_or_default();
            // The constraint the built-in installs with the sample's values.
            let mut values =
                effective_parameters(definition.pointer("/properties/parameters"), &supplied);
            values.insert("effect".into(), json!("Deny"));
            let Some(constraint) = build_constraint(
                &definition["properties"]["policyRule"],
                &template,
                &values,
                true,
                ConstraintOrigin::default(),
            ) else {
                report.unexpected.push(format!("{sample}: no constraint"));
                continue;
            };
            let mut cases = Vec::new();
            for (folder, want_violation) in [("good", false), ("violations", true)] {
                let Ok(entries) = std::fs::read_dir(scenario.join(folder)) else {
                    continue;
                };
                let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                files.sort();
                for file in files {
                    let relative = file
                        .strip_prefix(&samples)
                        .unwrap_or(&file)
                        .display()
                        .to_string();
                    // A file's documents together carry the folder's expectation.
                    cases.push(Case {
                        label: relative,
                        objects: parse_yaml_documents(&read(&file)).expect("example YAML"),
                        inventory: Vec::new(),
                        expect: Box::new(move |o: &Outcome| {
                            want_violation == matches!(o, Outcome::Denied(_))
                        }),
                    });
                }
            }
            differential(
                &mut emulated,
                &main_cluster,
                &template_yaml,
                &constraint,
                cases,
                AZURE_SAMPLE_EXPECTED_FAILURES,
                &mut report,
            );
        }
    }
    report.finish("azure samples");
}

// ---------------------------------------------------------------------------------------------
// Terraform against the emulator.

const NO_LATEST_REGO: &str = r#"package k8snolatesttag

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

const LATEST_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx:latest\n";

/// A configuration with the Rego in a file beside main.tf, so HCL escaping never gets in the way.
fn k8s_config(ws: &Workspace, rego: &str, display_name: &str, extra: &str) -> String {
    std::fs::write(ws.path().join("policy.rego"), rego).expect("write rego");
    std::fs::write(ws.path().join("pod-latest.yaml"), LATEST_POD).expect("write pod");
    format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_kubernetes_definition" "no_latest" {{
  name         = "k8s-no-latest-tag"
  display_name = "{display_name}"
  template {{
    kind              = "K8sNoLatestTag"
    rego              = file("policy.rego")
    parameters_schema = jsonencode({{ type = "object", properties = {{ exemptImages = {{ type = "array", items = {{ type = "string" }} }} }} }})
  }}
  match {{
    api_groups = [""]
    kinds      = ["Pod"]
  }}
  test {{
    name       = "latest is refused"
    object     = file("pod-latest.yaml")
    violations = "yes"
    message    = "latest"
  }}
  test {{
    name       = "exempt image passes"
    object     = file("pod-latest.yaml")
    parameters = jsonencode({{ exemptImages = ["nginx:latest"] }})
    violations = "no"
  }}
  {extra}
}}

output "id" {{ value = akspolicy_kubernetes_definition.no_latest.id }}
output "rendered" {{ value = akspolicy_kubernetes_definition.no_latest.rendered_template }}
output "parameters" {{ value = akspolicy_kubernetes_definition.no_latest.parameters }}
"#
    )
}

fn state_attributes(ws: &Workspace, address: &str) -> Json {
    let run = ws.terraform(&["show", "-json"]);
    run.assert_ok("show");
    let show: Json = serde_json::from_str(&run.stdout).expect("show -json");
    show["values"]["root_module"]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .map(|r| r["values"].clone())
        .unwrap_or(Json::Null)
}

#[test]
fn kubernetes_definition_lifecycle() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&k8s_config(&ws, NO_LATEST_REGO, "No latest tag", ""));
    ws.validate().assert_ok("validate");
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let id = ws.output("id").as_str().expect("id").to_string();
    assert!(
        id.ends_with("/providers/Microsoft.Authorization/policyDefinitions/k8s-no-latest-tag"),
        "{id}"
    );
    let rendered = ws.output("rendered");
    assert!(
        rendered
            .as_str()
            .is_some_and(|r| r.contains("name: k8snolatesttag")),
        "{rendered}"
    );
    let params: Json =
        serde_json::from_str(ws.output("parameters").as_str().expect("parameters")).expect("json");
    assert_eq!(params["exemptImages"]["type"], "Array");
    assert_eq!(
        params["excludedNamespaces"]["defaultValue"][0],
        "kube-system"
    );

    // What Azure holds: Base64Encoded template, values wired to parameters.
    let (status, body) = emulator.arm("GET", &format!("{id}?api-version=2025-03-01"), None);
    assert_eq!(status, 200, "{body}");
    let details = &body["properties"]["policyRule"]["then"]["details"];
    assert_eq!(details["templateInfo"]["sourceType"], "Base64Encoded");
    assert_eq!(
        details["values"]["exemptImages"],
        "[parameters('exemptImages')]"
    );
    assert_eq!(body["properties"]["mode"], "Microsoft.Kubernetes.Data");

    // Update in place.
    ws.write_config(&k8s_config(&ws, NO_LATEST_REGO, "No latest tag, ever", ""));
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(plan.stdout.contains("update in-place"), "{}", plan.stdout);
    ws.apply().assert_ok("update");
    ws.assert_empty_plan();

    // Import into a fresh state: every attribute equal (tests are configuration only).
    let before = state_attributes(&ws, "akspolicy_kubernetes_definition.no_latest");
    ws.terraform(&["state", "rm", "akspolicy_kubernetes_definition.no_latest"])
        .assert_ok("state rm");
    ws.terraform(&[
        "import",
        "-no-color",
        "akspolicy_kubernetes_definition.no_latest",
        &id,
    ])
    .assert_ok("import");
    let after = state_attributes(&ws, "akspolicy_kubernetes_definition.no_latest");
    for (k, v) in before.as_object().expect("attributes") {
        if k == "test" {
            continue;
        }
        assert_eq!(&after[k], v, "attribute {k} differs after import");
    }
    // The imported state lacks only the test blocks; one apply records them, then the plan is empty.
    ws.apply().assert_ok("apply after import");
    ws.assert_empty_plan();

    // Out-of-band change of the Rego: the plan shows the Rego, not base64.
    let changed_rego = NO_LATEST_REGO.replace("uses the latest tag", "must not use latest");
    let spec = TemplateSpec {
        kind: "K8sNoLatestTag".into(),
        rego: changed_rego,
        libs: vec![],
        parameters_schema: Some(
            json!({"type": "object", "properties": {"exemptImages": {"type": "array", "items": {"type": "string"}}}}),
        ),
    };
    let (yaml, _) = spec.render().expect("render");
    use base64::Engine as _;
    let mut new_body = body.clone();
    new_body["properties"]["policyRule"]["then"]["details"]["templateInfo"]["content"] =
        json!(base64::engine::general_purpose::STANDARD.encode(yaml));
    new_body["properties"]["displayName"] = json!("No latest tag, ever");
    let (status, resp) = emulator.arm(
        "PUT",
        &format!("{id}?api-version=2025-03-01"),
        Some(&json!({"properties": new_body["properties"]})),
    );
    assert!(status == 200 || status == 201, "{resp}");
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(
        plan.stdout.contains("must not use latest"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("content"),
        "base64 shown:\n{}",
        plan.stdout
    );
    ws.apply().assert_ok("revert drift");
    ws.assert_empty_plan();

    // Removing a parameter means replacement, with a warning that says why.
    let without_param = k8s_config(&ws, NO_LATEST_REGO, "No latest tag, ever", "")
        .replace(r#"parameters_schema = jsonencode({ type = "object", properties = { exemptImages = { type = "array", items = { type = "string" } } } })"#, "")
        .replace(r#"parameters = jsonencode({ exemptImages = ["nginx:latest"] })"#, "")
        .replace(r#"name       = "exempt image passes""#, r#"name       = "still refused""#)
        .replace(r#"violations = "no""#, r#"violations = "yes""#);
    ws.write_config(&without_param);
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert!(
        plan.combined().contains("exemptImages"),
        "{}",
        plan.combined()
    );

    ws.destroy().assert_ok("destroy");
    let (status, _) = emulator.arm("GET", &format!("{id}?api-version=2025-03-01"), None);
    assert_eq!(status, 404);
}

#[test]
fn kubernetes_definition_plan_time_errors() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);

    // Invalid Rego: the error names the attribute and the line:column.
    let broken = NO_LATEST_REGO.replace(
        "endswith(c.image, \":latest\")",
        "endswith(c.image, \":latest\"",
    );
    ws.write_config(&k8s_config(&ws, &broken, "x", ""));
    let run = ws.validate();
    assert_ne!(run.code, 0);
    let out = run.combined();
    assert!(out.contains("Invalid Rego"), "{out}");
    assert!(out.contains("rego:"), "{out}");

    // A failing test names the test and the violations.
    let never = NO_LATEST_REGO.replace("not exempt(c.image)", "not exempt(c.image)\n  false");
    ws.write_config(&k8s_config(&ws, &never, "x", ""));
    let out = ws.plan().combined();
    assert!(
        out.contains("Policy test \"latest is refused\" failed"),
        "{out}"
    );
    assert!(out.contains("no violations"), "{out}");

    // Wrong kind/name pairing in a full template.
    let template = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: wrongname\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sRightName\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package x\n        violation[{\"msg\": \"m\"}] { false }\n";
    std::fs::write(ws.path().join("template.yaml"), template).expect("write template");
    ws.write_config(
        r#"
provider "akspolicy" {}

resource "akspolicy_kubernetes_definition" "bad" {
  name                = "bad"
  constraint_template = file("template.yaml")
}
"#,
    );
    let out = ws.validate().combined();
    assert!(out.contains("metadata.name is \"wrongname\""), "{out}");
}

/// Independent problems of one resource come in one plan, each on the attribute Terraform
/// highlights: two failing `test` blocks (at their `name`) and a bad `default_effect`.
#[test]
fn kubernetes_definition_reports_every_problem_in_one_plan() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let never = NO_LATEST_REGO.replace("not exempt(c.image)", "not exempt(c.image)\n  false");
    let extra = r#"default_effect = "mutate"
  test {
    name       = "exactly one violation"
    object     = file("pod-latest.yaml")
    violations = "1"
  }"#;
    ws.write_config(&k8s_config(&ws, &never, "x", extra));
    let run = ws.plan();
    assert_ne!(run.code, 0, "{}", run.combined());
    let out = run.combined();
    for expected in [
        "Policy test \"latest is refused\" failed",
        "Policy test \"exactly one violation\" failed",
        "default_effect \"mutate\" is not one of effects",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Terraform quotes the line the diagnostic's path leads to: the failing test's name and
    // the default_effect attribute, not the resource's first line.
    for line in [
        r#"name       = "latest is refused""#,
        r#"name       = "exactly one violation""#,
        r#"default_effect = "mutate""#,
    ] {
        assert!(
            out.contains(line),
            "no diagnostic points at {line:?}:\n{out}"
        );
    }
    // The passing test is not reported.
    assert!(
        !out.contains("Policy test \"exempt image passes\""),
        "{out}"
    );
}

/// Rego from a module may be hostile: an endless evaluation ends as an error on the test that
/// ran it, recursion is refused when compiling, and `external_data` answers come from the test.
#[test]
fn kubernetes_definition_hostile_rego_and_external_data() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);

    // A cartesian product of 10^10 elements, only for the test that passes two images.
    let product = NO_LATEST_REGO.replace(
        "not exempt(c.image)",
        "big := [x | count(input.parameters.exemptImages) > 1; x := numbers.range(1, 100000)[_]]\n  count([1 | big[_]; big[_]]) >= 0\n  not exempt(c.image)",
    );
    let extra = "test {\n    name       = \"hostile\"\n    object     = file(\"pod-latest.yaml\")\n    parameters = jsonencode({ exemptImages = [\"a\", \"b\"] })\n    timeout    = \"1s\"\n  }";
    ws.write_config(&k8s_config(&ws, &product, "x", extra));
    let run = ws.plan();
    assert_ne!(run.code, 0);
    // Terraform wraps diagnostics.
    let out = run
        .combined()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(out.contains("Policy test \"hostile\" failed"), "{out}");
    assert!(out.contains("did not finish within 1s"), "{out}");
    assert!(!out.contains("Plugin did not respond"), "{out}");

    // Recursion is refused when compiling, with the line.
    let recursive = NO_LATEST_REGO.replace(
        "exempt(image) {\n  image == input.parameters.exemptImages[_]\n}",
        "exempt(image) {\n  exempt(image)\n}",
    );
    ws.write_config(&k8s_config(&ws, &recursive, "x", ""));
    let out = ws
        .validate()
        .combined()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(out.contains("depends on itself"), "{out}");

    // external_data: answers per test, in Gatekeeper's response shape.
    let signed = NO_LATEST_REGO.replace(
        "not exempt(c.image)",
        "r := external_data({\"provider\": \"ratify\", \"keys\": [c.image]})\n  count(r.errors) > 0\n  not exempt(c.image)",
    );
    let answers = "test {\n    name          = \"signed image passes\"\n    object        = file(\"pod-latest.yaml\")\n    violations    = \"no\"\n    external_data = jsonencode({ ratify = { \"nginx:latest\" = { value = \"ok\" } } })\n  }";
    let unsigned = "test {\n    name          = \"unsigned image\"\n    object        = file(\"pod-latest.yaml\")\n    external_data = jsonencode({ ratify = { \"nginx:latest\" = { error = \"no signature\" } } })\n  }";
    // The k8s_config tests without answers see an unconfigured provider (a system error, no
    // `errors`), so they are dropped here by giving only the two above.
    let config = k8s_config(&ws, &signed, "x", &format!("{answers}\n  {unsigned}"));
    let config = config
        .split("  test {")
        .enumerate()
        .filter(|(i, part)| *i == 0 || part.contains("external_data"))
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join("  test {");
    ws.write_config(&config);
    let run = ws.validate();
    assert_eq!(run.code, 0, "{}", run.combined());
}

/// The documented examples are valid, and the example's own `test` blocks pass.
#[test]
fn documented_examples_validate() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let root = crate::harness::repo_root().join("examples/resources");
    let mut body = String::from("provider \"akspolicy\" {}\n");
    for name in [
        "akspolicy_kubernetes_definition",
        "akspolicy_initiative",
        "akspolicy_definition",
    ] {
        body.push_str(&read(&root.join(name).join("resource.tf")));
    }
    ws.write_config(&body);
    ws.validate().assert_ok("validate examples");
}

/// Management group scope: create, empty plan, import by the MG-scoped ID, destroy.
#[test]
fn kubernetes_definition_at_management_group_scope() {
    let emulator = Emulator::start();
    let (status, body) = emulator.arm(
        "PUT",
        "/providers/Microsoft.Management/managementGroups/platform?api-version=2021-04-01",
        Some(&json!({"properties": {"displayName": "Platform"}})),
    );
    assert!(status == 200 || status == 201 || status == 202, "{body}");
    let ws = Workspace::new(&emulator);
    let config = k8s_config(&ws, NO_LATEST_REGO, "No latest tag", "").replace(
        r#"name         = "k8s-no-latest-tag""#,
        r#"name         = "k8s-no-latest-tag"
  scope        = "/providers/Microsoft.Management/managementGroups/platform""#,
    );
    ws.write_config(&config);
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let id = ws.output("id").as_str().expect("id").to_string();
    assert!(
        id.starts_with("/providers/Microsoft.Management/managementGroups/platform/providers/Microsoft.Authorization/policyDefinitions/"),
        "{id}"
    );
    ws.terraform(&["state", "rm", "akspolicy_kubernetes_definition.no_latest"])
        .assert_ok("state rm");
    ws.terraform(&[
        "import",
        "-no-color",
        "akspolicy_kubernetes_definition.no_latest",
        &id,
    ])
    .assert_ok("import");
    let after = state_attributes(&ws, "akspolicy_kubernetes_definition.no_latest");
    assert_eq!(
        after["scope"],
        "/providers/Microsoft.Management/managementGroups/platform"
    );
    ws.apply().assert_ok("record tests after import");
    ws.assert_empty_plan();
    ws.destroy().assert_ok("destroy");
}
