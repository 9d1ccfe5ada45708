//! Gatekeeper Rego on `regorus`: compiling a template's entry module and libs (with positions in
//! errors), and evaluating `violation` with Gatekeeper's input contract so plan-time `test` blocks
//! and the emulator judge objects the way the AKS add-on would.

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value as Json};

pub use super::rego_builtins::{external_data_response, ExternalData};
use super::rego_source;

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

/// Why Rego could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    #[error("{module}:{line}:{column}: {message}")]
    Syntax {
        module: RegoModule,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{module}: {message}")]
    Invalid { module: RegoModule, message: String },
    #[error("the entry module (package {package}) defines no `violation` rule; Gatekeeper requires `violation[{{\"msg\": msg}}] {{ ... }}`")]
    MissingViolation { package: String },
    #[error("library {index} declares package {package:?}; Gatekeeper requires libraries to sit under `package lib.`")]
    LibPackage { index: usize, package: String },
    #[error("evaluation failed at {module}:{line}:{column}: {message}")]
    Runtime {
        module: RegoModule,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("evaluation failed: {0}")]
    Evaluation(String),
    #[error("evaluation did not finish within {0:?} (endless or very expensive Rego: deep recursion, a huge comprehension or cartesian product); raise the limit only if the policy is meant to do this much work")]
    Timeout(Duration),
    #[error("evaluation stopped: the provider was asked to stop")]
    Cancelled,
    #[error("evaluation needed more than {} MiB of memory (a huge comprehension, cartesian product or string); such Rego cannot run", super::eval_memory::EVALUATION_BUDGET >> 20)]
    MemoryLimit,
}

impl RegoError {
    /// The module an error points into, when it points into one.
    pub fn module(&self) -> Option<RegoModule> {
        match self {
            RegoError::Syntax { module, .. }
            | RegoError::Runtime { module, .. }
            | RegoError::Invalid { module, .. } => Some(*module),
            RegoError::MissingViolation { .. } => Some(RegoModule::Entry),
            RegoError::LibPackage { index, .. } => Some(RegoModule::Lib(*index)),
            RegoError::Evaluation(_)
            | RegoError::Timeout(_)
            | RegoError::Cancelled
            | RegoError::MemoryLimit => None,
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

const ENTRY_PATH: &str = "template.rego";

fn lib_path(i: usize) -> String {
    format!("lib_{i}.rego")
}

fn module_path(module: RegoModule) -> String {
    match module {
        RegoModule::Entry => ENTRY_PATH.to_string(),
        RegoModule::Lib(l) => lib_path(l),
    }
}

fn module_of(path: &str) -> RegoModule {
    path.strip_prefix("lib_")
        .and_then(|rest| rest.strip_suffix(".rego"))
        .and_then(|n| n.parse().ok())
        .map_or(RegoModule::Entry, RegoModule::Lib)
}

/// Turns regorus' caret-drawing message (`--> file:line:col ... error: msg`) into a typed error.
fn classify(default_module: RegoModule, err: &anyhow::Error) -> RegoError {
    let text = err.to_string();
    let mut position = None;
    let mut message = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(loc) = line.strip_prefix("--> ") {
            let mut parts = loc.rsplitn(3, ':');
            let col = parts.next().and_then(|c| c.parse::<u32>().ok());
            let ln = parts.next().and_then(|l| l.parse::<u32>().ok());
            let file = parts.next().unwrap_or("");
            if let (Some(ln), Some(col)) = (ln, col) {
                if position.is_none() {
                    position = Some((module_of(file), ln, col));
                }
            }
        } else if let Some(m) = line.strip_prefix("error: ") {
            message.get_or_insert_with(|| m.to_string());
        }
    }
    match position {
        Some((module, line, column)) => RegoError::Syntax {
            module,
            line,
            column,
            message: message.unwrap_or_else(|| text.trim().to_string()),
        },
        None => RegoError::Invalid {
            module: default_module,
            message: text.trim().to_string(),
        },
    }
}

/// Keywords OPA's v0 parser only knows after `import future.keywords[.kw]` or `import rego.v1`.
const FUTURE_KEYWORDS: [&str; 4] = ["if", "contains", "in", "every"];

/// The first future keyword a v0 module uses without importing it, as (line, column, keyword).
///
/// regorus' v0 parser accepts these keywords anyway, but Gatekeeper (OPA) rejects such a
/// template, so the provider must too.
fn unimported_future_keyword(module: &str) -> Option<(u32, u32, &'static str)> {
    let strings = regex::Regex::new(r#""([^"\\]|\\.)*"|`[^`]*`"#).ok()?;
    let mut imported: Vec<&str> = Vec::new();
    for line in module.lines() {
        let t = line.trim();
        if t == "import rego.v1" || t == "import future.keywords" {
            return None;
        }
        if let Some(kw) = t.strip_prefix("import future.keywords.") {
            imported.push(kw.trim());
        }
    }
    let words = regex::Regex::new(r"\b(if|contains|every)\b|\bsome\s+[\w\s,]+?\s+(in)\b").ok()?;
    for (i, line) in module.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("package ") || t.starts_with("import ") {
            continue;
        }
        // Blank out string literals and comments so neither can trigger a match.
        let code = strings.replace_all(line, |c: &regex::Captures<'_>| " ".repeat(c[0].len()));
        let code = code.split('#').next().unwrap_or("");
        for caps in words.captures_iter(code) {
            let Some(m) = caps.get(1).or_else(|| caps.get(2)) else {
                continue;
            };
            let Some(kw) = FUTURE_KEYWORDS.iter().find(|k| **k == m.as_str()) else {
                continue;
            };
            // `contains(s, sub)` is also a v0 builtin.
            if code[m.end()..].trim_start().starts_with('(') {
                continue;
            }
            if !imported.contains(kw) {
                let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
                let col = u32::try_from(m.start() + 1).unwrap_or(u32::MAX);
                return Some((line_no, col, kw));
            }
        }
    }
    None
}

/// How long one evaluation may run unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Stack for evaluation threads: regorus recurses per nested call and value, and a stack
/// overflow would abort the whole process.
const EVAL_STACK_BYTES: usize = 256 << 20;

/// Bumped by [`cancel_evaluations`]; an evaluation started under an older epoch gives up.
static CANCEL_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Stops every evaluation in progress (Terraform's Stop, Ctrl-C): each returns
/// [`RegoError::Cancelled`] within a fraction of a second.
pub fn cancel_evaluations() {
    CANCEL_EPOCH.fetch_add(1, Ordering::SeqCst);
}

thread_local! {
    static ON_EVALUATION_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` (which evaluates many times, e.g. all `test` blocks of a resource) on one
/// evaluation thread: big stack and memory ceiling for the whole batch, each evaluation still
/// under its own timer, and Stop ends the wait. One thread hand-off per batch instead of one
/// per evaluation keeps many small tests as fast as evaluating inline.
pub fn on_evaluation_thread<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, RegoError> {
    if ON_EVALUATION_THREAD.with(Cell::get) {
        return Ok(work());
    }
    if !super::eval_memory::has_room() {
        return Err(RegoError::MemoryLimit);
    }
    let epoch = CANCEL_EPOCH.load(Ordering::SeqCst);
    let exceeded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = exceeded.clone();
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("rego-batch".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            ON_EVALUATION_THREAD.with(|t| t.set(true));
            super::eval_memory::enter(&flag);
            let result = work();
            super::eval_memory::leave();
            let _ = tx.send(result);
        })
        .map_err(|e| RegoError::Evaluation(format!("starting the evaluation thread: {e}")))?;
    loop {
        match rx.recv_timeout(Duration::from_millis(25)) {
            Ok(result) => return Ok(result),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(RegoError::Evaluation(
                    "the evaluation thread failed (see the provider log)".into(),
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if exceeded.load(Ordering::SeqCst) {
                    return Err(RegoError::MemoryLimit);
                }
                if CANCEL_EPOCH.load(Ordering::SeqCst) != epoch {
                    return Err(RegoError::Cancelled);
                }
            }
        }
    }
}

/// What one evaluation may use and sees besides its input.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Wall-clock budget; the evaluation ends with [`RegoError::Timeout`] after it.
    pub timeout: Duration,
    /// Answers of Gatekeeper external data providers, for `external_data`.
    pub external_data: ExternalData,
    /// Stops this evaluation when set, like [`cancel_evaluations`] stops all of them.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            timeout: DEFAULT_TIMEOUT,
            external_data: ExternalData::new(),
            cancel: None,
        }
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
/// bodies made explicit (see [`rego_source`]), with every line where the user wrote it.
fn opa_reading(source: &RegoSource) -> Result<Vec<String>, RegoError> {
    let mut out = Vec::new();
    for (module, text) in modules_of(source) {
        let path = module_path(module);
        // Stop here on a lexer error: regorus' parser can backtrack for minutes before it
        // reaches the same error.
        let tokens = rego_source::lex(&path, text).map_err(|e| classify(module, &e))?;
        if let Some(t) = rego_source::too_deep(&tokens) {
            return Err(RegoError::Syntax {
                module,
                line: t.line,
                column: t.col,
                message: format!(
                    "brackets nest deeper than {} levels; split the expression into helper rules",
                    rego_source::MAX_REGO_NESTING
                ),
            });
        }
        let text = rego_source::split_paren_continuations(text, &tokens);
        let text = if source.version == RegoVersion::V0 {
            let tokens = rego_source::lex(&path, &text).map_err(|e| classify(module, &e))?;
            rego_source::split_extra_bodies(&text, &tokens)
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
    super::rego_builtins::register(&mut engine).map_err(|e| RegoError::Invalid {
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
    let tokens: Vec<Vec<rego_source::Tok>> = texts
        .iter()
        .map(|t| rego_source::lex(ENTRY_PATH, t).unwrap_or_default())
        .collect();
    let modules: Vec<_> = engine.get_modules().clone();
    let refs: Vec<&regorus::unstable::Module> = modules.iter().map(|m| m.as_ref()).collect();
    rego_source::check_names(&refs, &tokens).map_err(|p| RegoError::Syntax {
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

    /// Runs on a thread of its own with a big stack and regorus' execution timer, so hostile
    /// Rego ends as an error in bounded time; the caller stops waiting on timeout or Stop.
    fn run_bounded(
        &self,
        input: Json,
        inventory: Json,
        options: &EvalOptions,
    ) -> Result<Vec<Violation>, RegoError> {
        let mut compiled = self.clone();
        let timeout = options.timeout;
        compiled
            .engine
            .set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                limit: timeout,
                check_interval: NonZeroU32::MIN.saturating_add(63),
            });
        let external_data = options.external_data.clone();
        if ON_EVALUATION_THREAD.with(Cell::get) {
            // Already bounded by `on_evaluation_thread`: no hand-off per evaluation.
            super::rego_builtins::set_external_data(external_data);
            return compiled.run(&input, &inventory, timeout);
        }
        let epoch = CANCEL_EPOCH.load(Ordering::SeqCst);
        if !super::eval_memory::has_room() {
            return Err(RegoError::MemoryLimit);
        }
        let exceeded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = exceeded.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("rego-eval".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn(move || {
                super::eval_memory::enter(&flag);
                super::rego_builtins::set_external_data(external_data);
                let result = compiled.run(&input, &inventory, timeout);
                super::eval_memory::leave();
                let _ = tx.send(result);
            })
            .map_err(|e| RegoError::Evaluation(format!("starting the evaluation thread: {e}")))?;
        let started = Instant::now();
        // A builtin may hold the thread past the timer; the answer is abandoned then.
        let grace = Duration::from_secs(1);
        loop {
            match rx.recv_timeout(Duration::from_millis(25)) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(RegoError::Evaluation(
                        "the evaluation thread failed (see the provider log)".into(),
                    ))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if exceeded.load(Ordering::SeqCst) {
                        return Err(RegoError::MemoryLimit);
                    }
                    let cancelled = options
                        .cancel
                        .as_ref()
                        .is_some_and(|c| c.load(Ordering::SeqCst));
                    if cancelled || CANCEL_EPOCH.load(Ordering::SeqCst) != epoch {
                        return Err(RegoError::Cancelled);
                    }
                    if started.elapsed() > timeout + grace {
                        return Err(RegoError::Timeout(timeout));
                    }
                }
            }
        }
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

/// An error raised while evaluating: the timer's, or regorus' with the Rego position.
fn runtime_error(err: &anyhow::Error, timeout: Duration) -> RegoError {
    let timed_out = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<regorus::LimitError>(),
            Some(regorus::LimitError::TimeLimitExceeded { .. })
        )
    }) || err.to_string().contains("time limit");
    if timed_out {
        return RegoError::Timeout(timeout);
    }
    match classify(RegoModule::Entry, err) {
        RegoError::Syntax {
            module,
            line,
            column,
            message,
        } => RegoError::Runtime {
            module,
            line,
            column,
            message,
        },
        RegoError::Invalid { message, .. } => RegoError::Evaluation(message),
        other => other,
    }
}

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
    let name = object
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let mut namespace = object
        .pointer("/metadata/namespace")
        .and_then(Json::as_str)
        .map(str::to_string);
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
        let name = object
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("");
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Json::as_str)
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

    const NO_LATEST: &str = r#"package k8snolatest

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

    fn src(entry: &str) -> RegoSource {
        RegoSource {
            entry: entry.to_string(),
            ..Default::default()
        }
    }

    fn pod(image: &str) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "app", "image": image}]}})
    }

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
    fn syntax_errors_carry_line_and_column() {
        let err = compile(&src(
            "package x\n\nviolation[{\"msg\": m}] {\n  m := \"a\"\n  1 +* 2\n}\n",
        ))
        .unwrap_err();
        match err {
            RegoError::Syntax {
                module,
                line,
                column,
                ..
            } => {
                assert_eq!(module, RegoModule::Entry);
                assert_eq!(line, 5);
                assert!(column >= 3, "column {column}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lib_errors_name_the_lib() {
        let mut s = src(NO_LATEST);
        s.libs = vec!["package lib.x\n\nf(x) { x == }\n".into()];
        let err = compile(&s).unwrap_err();
        assert_eq!(err.module(), Some(RegoModule::Lib(0)));
        s.libs = vec!["package notlib\n\nf(x) { x == 1 }\n".into()];
        assert!(matches!(
            compile(&s).unwrap_err(),
            RegoError::LibPackage { index: 0, .. }
        ));
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
    fn v1_keywords_need_an_import_in_v0() {
        let body = "violation contains {\"msg\": \"if in # contains\"} if {\n  some x in input.xs\n  x == 1 # every\n  not contains(\"a\", \"b\")\n}\n";
        let err = compile(&src(&format!("package x\n\n{body}"))).unwrap_err();
        assert!(
            matches!(
                err,
                RegoError::Syntax {
                    line: 3,
                    column: 11,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(compile(&src(&format!("package x\nimport rego.v1\n\n{body}"))).is_ok());
        assert!(compile(&src(&format!(
            "package x\nimport future.keywords.if\nimport future.keywords.in\nimport future.keywords.contains\n\n{body}"
        )))
        .is_ok());
        let only_if = format!("package x\nimport future.keywords.if\n\n{body}");
        assert!(matches!(
            compile(&src(&only_if)),
            Err(RegoError::Syntax { line: 4, .. })
        ));
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

    #[test]
    fn opa_line_leading_paren_starts_a_new_expression() {
        // OPA: `x` is true (5), then `(x - 4) < 2` holds: one violation.
        let rego = "package x\nviolation[{\"msg\": \"m\"}] {\n  x := 5\n  x\n  (x - 4) < 2\n}\n";
        assert_eq!(violations_of(rego).unwrap(), vec!["m"]);
        // Inside a call's parentheses a line break continues the expression.
        let call = "package x\nviolation[{\"msg\": m}] {\n  m := concat(\"\",\n    [\"a\",\n    (\"b\")])\n}\n";
        assert_eq!(violations_of(call).unwrap(), vec!["ab"]);
    }

    #[test]
    fn opa_sprintf_keeps_the_message_with_missing_operands() {
        let rego = "package x\nviolation[{\"msg\": msg}] {\n  msg := sprintf(\"%v needs %v\", [\"app\"])\n}\n";
        assert_eq!(violations_of(rego).unwrap(), vec!["app needs %!v(MISSING)"]);
    }

    #[test]
    fn opa_rules_with_several_bodies_are_alternatives() {
        // OPA: `p { a } { b }` is `p { a }` plus `p { b }`.
        let set = "package x\nviolation[{\"msg\": \"m\"}] { false } { true }\n";
        assert_eq!(violations_of(set).unwrap(), vec!["m"]);
        let func = "package x\nf(x) = y { x == 1; y := \"one\" } { x == 2; y := \"two\" }\nviolation[{\"msg\": m}] { m := f(2) }\n";
        assert_eq!(violations_of(func).unwrap(), vec!["two"]);
        // `else` keeps its meaning.
        let chain = "package x\nf(x) = \"a\" { x == 1 } else = \"b\" { true }\nviolation[{\"msg\": m}] { m := f(2) }\n";
        assert_eq!(violations_of(chain).unwrap(), vec!["b"]);
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
    fn hostile_rego_ends_with_an_error_in_bounded_time() {
        let product = "package x\nviolation[{\"msg\": m}] {\n  n := numbers.range(1, input.parameters.n)\n  c := count([1 | n[_]; n[_]; n[_]])\n  m := sprintf(\"%v\", [c])\n}\n";
        let compiled = compile(&src(product)).unwrap();
        let options = EvalOptions {
            timeout: Duration::from_millis(500),
            ..Default::default()
        };
        let started = Instant::now();
        let err = compiled
            .evaluate_with(&json!({}), &json!({"n": 100000}), &json!({}), &options)
            .unwrap_err();
        assert!(matches!(err, RegoError::Timeout(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
        // A string of 100 GB: frozen at the allocation, reported, process alive.
        let huge = "package x\nviolation[{\"msg\": m}] {\n  s0 := concat(\"\", [\"x\" | numbers.range(1, input.parameters.n)[_]])\n  s1 := concat(\"\", [s0 | numbers.range(1, 1000)[_]])\n  s2 := concat(\"\", [s1 | numbers.range(1, 1000)[_]])\n  m := sprintf(\"%v\", [count(s2)])\n}\n";
        let err = compile(&src(huge))
            .unwrap()
            .evaluate(&json!({}), &json!({"n": 100000}), &json!({}))
            .unwrap_err();
        assert!(matches!(err, RegoError::MemoryLimit), "{err:?}");
        let deep = format!(
            "package x\nviolation[{{\"msg\": \"m\"}}] {{ x := {}1{} }}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(matches!(
            compile(&src(&deep)),
            Err(RegoError::Syntax { .. })
        ));
    }

    #[test]
    fn cancelling_stops_evaluations_in_progress() {
        let slow = "package x\nviolation[{\"msg\": m}] {\n  n := numbers.range(1, input.parameters.n)\n  c := count([1 | n[_]; n[_]])\n  m := sprintf(\"%v\", [c])\n}\n";
        let compiled = compile(&src(slow)).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let options = EvalOptions {
            cancel: Some(stop.clone()),
            ..Default::default()
        };
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::SeqCst);
        });
        let started = Instant::now();
        let err = compiled
            .evaluate_with(&json!({}), &json!({"n": 100000}), &json!({}), &options)
            .unwrap_err();
        assert!(started.elapsed() < DEFAULT_TIMEOUT);
        canceller.join().unwrap();
        assert!(matches!(err, RegoError::Cancelled), "{err:?}");
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

    #[test]
    fn runtime_errors_carry_the_rego_position() {
        let rego = "package x\nviolation[{\"msg\": m}] {\n  x := input.review.object.kind\n  m := concat(\"\", [x, 1 / 0])\n}\n";
        let compiled = compile(&src(rego));
        if let Ok(c) = compiled {
            if let Err(e) = c.evaluate(&review_for(&pod("a")), &json!({}), &json!({})) {
                assert!(
                    matches!(
                        e,
                        RegoError::Runtime { line: 4, .. } | RegoError::Evaluation(_)
                    ),
                    "{e:?}"
                );
            }
        }
    }

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
