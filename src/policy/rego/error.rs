//! Rego errors with the module, line and column they are about: regorus' messages parsed into
//! positions, and OPA's checks regorus does not make (future keywords in v0 modules).

use std::time::Duration;

use super::RegoModule;

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
    #[error("evaluation needed more than {} MiB of memory (a huge comprehension, cartesian product or string); such Rego cannot run", crate::policy::eval_memory::EVALUATION_BUDGET >> 20)]
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

pub(super) const ENTRY_PATH: &str = "template.rego";

pub(super) fn lib_path(i: usize) -> String {
    format!("lib_{i}.rego")
}

pub(super) fn module_path(module: RegoModule) -> String {
    match module {
        RegoModule::Entry => ENTRY_PATH.to_string(),
        RegoModule::Lib(l) => lib_path(l),
    }
}

pub(super) fn module_of(path: &str) -> RegoModule {
    path.strip_prefix("lib_")
        .and_then(|rest| rest.strip_suffix(".rego"))
        .and_then(|n| n.parse().ok())
        .map_or(RegoModule::Entry, RegoModule::Lib)
}

/// Turns regorus' caret-drawing message (`--> file:line:col ... error: msg`) into a typed error.
pub(super) fn classify(default_module: RegoModule, err: &anyhow::Error) -> RegoError {
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
pub(super) fn unimported_future_keyword(module: &str) -> Option<(u32, u32, &'static str)> {
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

/// An error raised while evaluating: the timer's, or regorus' with the Rego position.
pub(super) fn runtime_error(err: &anyhow::Error, timeout: Duration) -> RegoError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rego::test_support::{pod, src, NO_LATEST};
    use crate::policy::rego::{compile, review_for};
    use serde_json::json;

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
}
