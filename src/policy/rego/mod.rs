//! Gatekeeper Rego on `regorus`: compiling a template's entry module and libs (with positions in
//! errors), and evaluating `violation` with Gatekeeper's input contract so plan-time `test` blocks
//! and the emulator judge objects the way the AKS add-on would.
//!
//! Layout: [`source`] lexes the Rego text and makes OPA's reading explicit for regorus,
//! [`builtins`] adds Gatekeeper's builtins, [`error`] turns engine messages into positioned
//! errors, [`bounded`] runs an evaluation in bounded time and stack, [`review`] builds the
//! review and inventory input Gatekeeper gives templates.

mod bounded;
mod builtins;
mod error;
mod review;
mod source;

use std::time::Duration;

use serde_json::{json, Value as Json};

use error::{classify, module_path, runtime_error, unimported_future_keyword, ENTRY_PATH};

pub use bounded::{cancel_evaluations, on_evaluation_thread, EvalOptions, DEFAULT_TIMEOUT};
pub use builtins::{external_data_response, ExternalData};
pub use error::RegoError;
pub use review::{
    group_version, inventory_from, is_cluster_scoped, label_selector_matches, review_for,
};

/// Which Rego dialect a module is parsed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegoVersion {
    /// Gatekeeper's default for the legacy `rego` field and `code[].source` without `version`.
    #[default]
    V0,
    /// `code[].source.version: v1`.
    V1,
}

/// The Rego of one ConstraintTemplate: the entry module and its libraries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegoSource {
    pub entry: String,
    pub libs: Vec<String>,
    pub version: RegoVersion,
}

/// Which module a diagnostic is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegoModule {
    Entry,
    /// Index into `libs`.
    Lib(usize),
}

impl std::fmt::Display for RegoModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegoModule::Entry => f.write_str("rego"),
            RegoModule::Lib(i) => write!(f, "libs[{i}]"),
        }
    }
}

/// One result of `violation`, as Gatekeeper reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub msg: String,
    pub details: Json,
}

/// A template whose Rego parsed; cheap to evaluate many times.
#[derive(Clone)]
pub struct CompiledRego {
    engine: regorus::Engine,
    package: String,
}

impl std::fmt::Debug for CompiledRego {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRego")
            .field("package", &self.package)
            .finish()
    }
}

fn modules_of(source: &RegoSource) -> Vec<(RegoModule, &String)> {
    std::iter::once((RegoModule::Entry, &source.entry))
        .chain(
            source
                .libs
                .iter()
                .enumerate()
                .map(|(i, l)| (RegoModule::Lib(i), l)),
        )
        .collect()
}

fn module_at(index: usize) -> RegoModule {
    match index {
        0 => RegoModule::Entry,
        i => RegoModule::Lib(i - 1),
    }
}

/// The module texts regorus compiles: OPA's reading of line-leading `(` and of rules with several
/// bodies made explicit (see [`source`]), with every line where the user wrote it.
fn opa_reading(source: &RegoSource) -> Result<Vec<String>, RegoError> {
    let mut out = Vec::new();
    for (module, text) in modules_of(source) {
        let path = module_path(module);
        // Stop here on a lexer error: regorus' parser can backtrack for minutes before it
        // reaches the same error.
        let tokens = source::lex(&path, text).map_err(|e| classify(module, &e))?;
        if let Some(t) = source::too_deep(&tokens) {
            return Err(RegoError::Syntax {
                module,
                line: t.line,
                column: t.col,
                message: format!(
                    "brackets nest deeper than {} levels; split the expression into helper rules",
                    source::MAX_REGO_NESTING
                ),
            });
        }
        let text = source::split_paren_continuations(text, &tokens);
        let text = if source.version == RegoVersion::V0 {
            let tokens = source::lex(&path, &text).map_err(|e| classify(module, &e))?;
            source::split_extra_bodies(&text, &tokens)
        } else {
            text
        };
        out.push(text);
    }
    Ok(out)
}

/// Parses the entry module and libs and checks Gatekeeper's structural rules.
pub fn compile(source: &RegoSource) -> Result<CompiledRego, RegoError> {
    if source.version == RegoVersion::V0 {
        for (module, text) in modules_of(source) {
            if let Some((line, column, kw)) = unimported_future_keyword(text) {
                return Err(RegoError::Syntax {
                    module,
                    line,
                    column,
                    message: format!(
                        "`{kw}` is a Rego v1 keyword; Gatekeeper parses this template as Rego v0, where it needs `import rego.v1` (or `import future.keywords.{kw}`) after the package line"
                    ),
                });
            }
        }
    }
    let texts = opa_reading(source)?;
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(source.version == RegoVersion::V0);
    // Gatekeeper (OPA) treats a failing builtin as undefined rather than aborting the query.
    engine.set_strict_builtin_errors(false);
    builtins::register(&mut engine).map_err(|e| RegoError::Invalid {
        module: RegoModule::Entry,
        message: format!("registering builtins: {e}"),
    })?;
    let mut package = String::new();
    for (i, text) in texts.iter().enumerate() {
        let module = module_at(i);
        let path = module_path(module);
        let pkg = engine
            .add_policy(path, text.clone())
            .map_err(|e| classify(module, &e))?;
        match module {
            RegoModule::Entry => package = pkg,
            RegoModule::Lib(index) if !pkg.starts_with("data.lib.") => {
                return Err(RegoError::LibPackage {
                    index,
                    package: pkg.trim_start_matches("data.").to_string(),
                });
            }
            RegoModule::Lib(_) => {}
        }
    }
    let has_violation = engine
        .has_declared_rule_rooted_at(ENTRY_PATH, "violation")
        .unwrap_or(false);
    if !has_violation {
        return Err(RegoError::MissingViolation {
            package: package.trim_start_matches("data.").to_string(),
        });
    }
    let tokens: Vec<Vec<source::Tok>> = texts
        .iter()
        .map(|t| source::lex(ENTRY_PATH, t).unwrap_or_default())
        .collect();
    let modules: Vec<_> = engine.get_modules().clone();
    let refs: Vec<&regorus::unstable::Module> = modules.iter().map(|m| m.as_ref()).collect();
    source::check_names(&refs, &tokens).map_err(|p| RegoError::Syntax {
        module: module_at(p.module),
        line: p.line,
        column: p.column,
        message: p.message,
    })?;
    let compiled = CompiledRego { engine, package };
    // A dry run surfaces what only the analyser sees (unsafe variables, unknown imports) at plan
    // time instead of on the cluster.
    compiled.run_bounded(
        json!({"review": {}, "parameters": {}}),
        json!({}),
        &EvalOptions::default(),
    )?;
    Ok(compiled)
}

impl CompiledRego {
    /// `data.<package>`, the package of the entry module.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// Evaluates `violation` for one review with the given constraint parameters and
    /// `data.inventory`, as Gatekeeper does, within [`DEFAULT_TIMEOUT`].
    pub fn evaluate(
        &self,
        review: &Json,
        parameters: &Json,
        inventory: &Json,
    ) -> Result<Vec<Violation>, RegoError> {
        self.evaluate_with(review, parameters, inventory, &EvalOptions::default())
    }

    /// [`Self::evaluate`] with explicit limits and external data answers.
    pub fn evaluate_with(
        &self,
        review: &Json,
        parameters: &Json,
        inventory: &Json,
        options: &EvalOptions,
    ) -> Result<Vec<Violation>, RegoError> {
        let parameters = if parameters.is_null() {
            json!({})
        } else {
            parameters.clone()
        };
        let input = json!({"review": review, "parameters": parameters});
        self.run_bounded(input, inventory.clone(), options)
    }

    fn run(
        &mut self,
        input: &Json,
        inventory: &Json,
        timeout: Duration,
    ) -> Result<Vec<Violation>, RegoError> {
        let engine = &mut self.engine;
        engine.clear_data();
        engine
            .add_data(regorus::Value::from(json!({"inventory": inventory})))
            .map_err(|e| RegoError::Evaluation(e.to_string()))?;
        engine.set_input(regorus::Value::from(input.clone()));
        let result = engine
            .eval_rule(format!("{}.violation", self.package))
            .map_err(|e| runtime_error(&e, timeout))?;
        let json =
            serde_json::to_value(&result).map_err(|e| RegoError::Evaluation(e.to_string()))?;
        let items = match json {
            Json::Array(items) => items,
            // Undefined (no element) comes back as null or an empty object.
            _ => Vec::new(),
        };
        // Gatekeeper drops elements without `msg`.
        let mut violations: Vec<Violation> = items
            .into_iter()
            .filter_map(|item| {
                let msg = item.get("msg")?;
                let msg = match msg {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let details = item.get("details").cloned().unwrap_or_else(|| json!({}));
                Some(Violation { msg, details })
            })
            .collect();
        violations.sort_by(|a, b| a.msg.cmp(&b.msg));
        Ok(violations)
    }
}

/// Fixtures shared by the unit tests of the submodules and of the resources that carry Rego.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub(crate) const NO_LATEST: &str = r#"package k8snolatest

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

    pub(super) fn src(entry: &str) -> RegoSource {
        RegoSource {
            entry: entry.to_string(),
            ..Default::default()
        }
    }

    pub(super) fn pod(image: &str) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "app", "image": image}]}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rego::test_support::{pod, src, NO_LATEST};
    use serde_json::json;

    #[test]
    fn evaluates_violations_with_parameters() {
        let compiled = compile(&src(NO_LATEST)).unwrap();
        let bad = compiled
            .evaluate(&review_for(&pod("nginx:latest")), &json!({}), &json!({}))
            .unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].msg, "container app uses the latest tag");
        let exempt = compiled
            .evaluate(
                &review_for(&pod("nginx:latest")),
                &json!({"exemptImages": ["nginx:latest"]}),
                &json!({}),
            )
            .unwrap();
        assert!(exempt.is_empty());
        let good = compiled
            .evaluate(&review_for(&pod("nginx:1.27")), &Json::Null, &json!({}))
            .unwrap();
        assert!(good.is_empty());
    }

    #[test]
    fn violation_rule_is_required() {
        let err = compile(&src("package x\n\ndeny[msg] { msg := \"no\" }\n")).unwrap_err();
        assert!(matches!(err, RegoError::MissingViolation { .. }), "{err:?}");
    }

    #[test]
    fn rego_v1_import_and_version_work() {
        let v1 = "package x\n\nviolation contains {\"msg\": \"always\"} if { true }\n";
        let mut s = src(&format!("package x\nimport rego.v1\n{}", &v1[10..]));
        assert_eq!(
            compile(&s)
                .unwrap()
                .evaluate(&json!({}), &json!({}), &json!({}))
                .unwrap()
                .len(),
            1
        );
        s = src(v1);
        s.version = RegoVersion::V1;
        assert!(compile(&s).is_ok());
    }

    #[test]
    fn legacy_builtins_are_available() {
        let rego = r#"package x
violation[{"msg": "m"}] {
  re_match("^nginx", input.review.object.spec.containers[0].image)
  any([false, true])
  all([true, true])
}
"#;
        let compiled = compile(&src(rego)).unwrap();
        let v = compiled
            .evaluate(&review_for(&pod("nginx:1")), &json!({}), &json!({}))
            .unwrap();
        assert_eq!(v.len(), 1);
    }

    fn violations_of(rego: &str) -> Result<Vec<String>, RegoError> {
        let compiled = compile(&src(rego))?;
        let found = compiled.evaluate(&review_for(&pod("nginx:1")), &json!({}), &json!({}))?;
        Ok(found.into_iter().map(|v| v.msg).collect())
    }

    /// Programs whose violations OPA computes as stated: (what OPA does, program, messages).
    const OPA_SEMANTICS: &[(&str, &str, &[&str])] = &[
        (
            // OPA: `x` is true (5), then `(x - 4) < 2` holds: one violation.
            "a line-leading paren starts a new expression",
            "package x\nviolation[{\"msg\": \"m\"}] {\n  x := 5\n  x\n  (x - 4) < 2\n}\n",
            &["m"],
        ),
        (
            "inside a call's parentheses a line break continues the expression",
            "package x\nviolation[{\"msg\": m}] {\n  m := concat(\"\",\n    [\"a\",\n    (\"b\")])\n}\n",
            &["ab"],
        ),
        (
            "sprintf keeps the message with missing operands",
            "package x\nviolation[{\"msg\": msg}] {\n  msg := sprintf(\"%v needs %v\", [\"app\"])\n}\n",
            &["app needs %!v(MISSING)"],
        ),
        (
            // OPA: `p { a } { b }` is `p { a }` plus `p { b }`.
            "a rule's several bodies are alternatives",
            "package x\nviolation[{\"msg\": \"m\"}] { false } { true }\n",
            &["m"],
        ),
        (
            "a function's several bodies are alternatives",
            "package x\nf(x) = y { x == 1; y := \"one\" } { x == 2; y := \"two\" }\nviolation[{\"msg\": m}] { m := f(2) }\n",
            &["two"],
        ),
        (
            "`else` keeps its meaning next to several bodies",
            "package x\nf(x) = \"a\" { x == 1 } else = \"b\" { true }\nviolation[{\"msg\": m}] { m := f(2) }\n",
            &["b"],
        ),
    ];

    #[test]
    fn opa_semantics_are_followed() {
        for (what, rego, expected) in OPA_SEMANTICS {
            assert_eq!(violations_of(rego).unwrap(), *expected, "{what}");
        }
    }

    #[test]
    fn opa_rejects_calls_to_undefined_functions_when_compiling() {
        let rego = "package x\nviolation[{\"msg\": msg}] {\n  input.review.nope == 1\n  msg := sprintff(\"a %v\", [1])\n}\n";
        match violations_of(rego).unwrap_err() {
            RegoError::Syntax { line, message, .. } => {
                assert_eq!(line, 4);
                assert!(
                    message.contains("sprintff") && message.contains("`sprintf`"),
                    "{message}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // Functions from libs, through imports, and builtins with dots are known.
        let mut s = src("package x\nimport data.lib.helpers\nviolation[{\"msg\": m}] {\n  helpers.name(\"a\")\n  m := concat(\"\", [\"x\", strings.replace_n({}, \"y\")])\n}\n");
        s.libs = vec!["package lib.helpers\nname(x) { x == \"a\" }\n".into()];
        assert!(compile(&s).is_ok(), "{:?}", compile(&s).err());
    }

    #[test]
    fn opa_rejects_recursion_when_compiling() {
        let rego = "package x\nf(n) = y { y := g(n) }\ng(n) = y { y := f(n + 1) }\nviolation[{\"msg\": \"m\"}] { f(1) }\n";
        match violations_of(rego).unwrap_err() {
            RegoError::Syntax { message, .. } => {
                assert!(message.contains("depends on itself"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let rules = "package x\np { q }\nq { p }\nviolation[{\"msg\": \"m\"}] { p }\n";
        assert!(matches!(
            violations_of(rules),
            Err(RegoError::Syntax { .. })
        ));
        // A parameter that shares a rule's name is no dependency.
        let shadow = "package x\ncontainers[c] { c := input.review.object.spec.containers[_] }\nnamed(containers) { containers[_].name == \"app\" }\nviolation[{\"msg\": \"m\"}] { named(containers) }\n";
        assert_eq!(violations_of(shadow).unwrap(), vec!["m"]);
    }

    #[test]
    fn external_data_answers_come_from_the_options() {
        let rego = "package x\nviolation[{\"msg\": m}] {\n  r := external_data({\"provider\": \"sig\", \"keys\": [input.review.object.spec.containers[0].image]})\n  count(r.errors) > 0\n  m := sprintf(\"unsigned: %v\", [r.errors[0][0]])\n}\n";
        let compiled = compile(&src(rego)).unwrap();
        let options = EvalOptions {
            external_data: serde_json::from_value(
                json!({"sig": {"nginx:1": {"error": "no signature"}}}),
            )
            .unwrap(),
            ..Default::default()
        };
        let found = compiled
            .evaluate_with(
                &review_for(&pod("nginx:1")),
                &json!({}),
                &json!({}),
                &options,
            )
            .unwrap();
        assert_eq!(found[0].msg, "unsigned: nginx:1");
        let signed = EvalOptions {
            external_data: serde_json::from_value(json!({"sig": {"nginx:1": {"value": "ok"}}}))
                .unwrap(),
            ..Default::default()
        };
        assert!(compiled
            .evaluate_with(
                &review_for(&pod("nginx:1")),
                &json!({}),
                &json!({}),
                &signed
            )
            .unwrap()
            .is_empty());
    }
}
