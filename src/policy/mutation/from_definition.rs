//! The mutator an Azure mutation definition installs: fetched by its `mutationInfo`, narrowed by
//! the definition's `details`, present only when the effect is Mutate and the assignment enforces.

use serde_json::{json, Map, Value as Json};

use super::mutator::{Mutator, MutatorError};
use crate::policy::constraint::{resolve_expressions, TemplateLookup, Unavailable};
use crate::policy::constraint_match::MatchSource;
use crate::policy::json::strings;
use crate::policy::kubernetes::TemplateInfo;

/// Azure's narrowing of a mutator by its definition's `details` (parameters resolved):
/// non-empty `namespaces` / `excludedNamespaces` replace the mutator's own, `source` sets
/// `match.source`.
pub fn narrow(mutator: &mut Mutator, details: &Map<String, Json>) {
    let list = |k: &str| strings(details.get(k));
    let namespaces = list("namespaces");
    if !namespaces.is_empty() {
        mutator.matcher.namespaces = namespaces;
    }
    let excluded = list("excludedNamespaces");
    if !excluded.is_empty() {
        mutator.matcher.excluded_namespaces = excluded;
    }
    if let Some(source) = details.get("source").and_then(Json::as_str) {
        mutator.matcher.source = MatchSource::parse(source);
    }
}

/// Why a mutation definition installs no mutator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationSourceError {
    #[error("mutator {url} is not available locally (looked up as {path:?}); pass a template directory holding it")]
    NotFound { url: String, path: String },
    #[error("mutationInfo content is not valid base64 UTF-8")]
    BadBase64,
    #[error("mutator: {0}")]
    Mutator(#[from] MutatorError),
}

/// The mutator a definition's `mutationInfo` names, parsed.
pub fn resolve_mutator(
    info: &TemplateInfo,
    lookup: &dyn TemplateLookup,
) -> Result<Mutator, MutationSourceError> {
    let yaml = lookup.yaml_for(info).map_err(|missing| match missing {
        Unavailable::BadBase64 => MutationSourceError::BadBase64,
        Unavailable::NotFound { url, path } => MutationSourceError::NotFound { url, path },
    })?;
    Ok(Mutator::parse(&yaml)?)
}

/// The mutator the add-on installs for a mutation definition with these parameter values, or
/// `None` when the effect is not Mutate (Disabled) or the assignment does not enforce.
pub fn install(
    policy_rule: &Json,
    mut mutator: Mutator,
    parameters: &Map<String, Json>,
    effect_override: Option<&str>,
    enforce: bool,
) -> Option<Mutator> {
    let then = policy_rule.get("then")?;
    let effect = match effect_override {
        Some(e) => json!(e),
        None => resolve_expressions(then.get("effect").unwrap_or(&json!("Mutate")), parameters),
    };
    if !enforce
        || !effect
            .as_str()
            .is_some_and(|e| e.eq_ignore_ascii_case("mutate"))
    {
        return None;
    }
    let details = resolve_expressions(then.get("details").unwrap_or(&json!({})), parameters);
    if let Some(details) = details.as_object() {
        narrow(&mut mutator, details);
    }
    Some(mutator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::mutation::mutate;
    use crate::policy::mutation::test_support::{pod, NO_ESCALATION};
    use serde_json::json;

    #[test]
    fn source_and_narrowing() {
        let mut m = Mutator::parse(NO_ESCALATION).unwrap();
        let details: Map<String, Json> =
            serde_json::from_value(json!({"source": "Generated", "excludedNamespaces": ["apps"]}))
                .unwrap();
        narrow(&mut m, &details);
        let p = pod(json!([{"name": "a"}]));
        let mut other = p.clone();
        other["metadata"]["namespace"] = json!("web");
        let ms = std::slice::from_ref(&m);
        // Original objects are skipped, and the apps namespace is now excluded.
        assert_eq!(
            mutate(&other, None, ms, &json!({}), &[]).unwrap().object,
            other
        );
        let generated = mutate(&other, Some("expand"), ms, &json!({}), &[]).unwrap();
        assert_ne!(generated.object, other);
        assert_eq!(
            mutate(&p, Some("expand"), ms, &json!({}), &[])
                .unwrap()
                .object,
            p
        );
    }
}
