//! The ConstraintTemplate a definition embeds: resolving it from the configuration (one of the
//! `template` block, `constraint_template` or `template_url`), diagnostics that point at the
//! Rego the user wrote, and mapping Azure's copy back onto the user's form.

use serde_json::{json, Value as Json};

use crate::framework::{AttributePath, Diagnostic, Diagnostics};
use crate::policy::constraint_template::{
    parse_yaml, ConstraintTemplate, TemplateError, TemplateSpec,
};
use crate::policy::kubernetes_body::TemplateSource;
use crate::policy::rego::{self, CompiledRego, RegoError, RegoModule};
use crate::resources::shared::json::canonical_json;

use super::schema::{KubernetesDefinition, TemplateBlock};

/// What the configuration says the template is.
pub(super) struct ResolvedTemplate {
    pub(super) source: TemplateSource,
    /// None for `template_url`.
    pub(super) template: Option<ConstraintTemplate>,
    /// The template's Rego, compiled; None for `template_url`.
    pub(super) compiled: Option<CompiledRego>,
}

fn template_path() -> AttributePath {
    AttributePath::attr("template").index(0)
}

/// Where a module starts inside the template YAML (1-based line of its first non-empty line),
/// so errors can name a line of the file the user edits.
fn module_start_line(yaml: &str, module: &str) -> Option<usize> {
    let first = module.lines().find(|l| !l.trim().is_empty())?.trim();
    yaml.lines()
        .position(|l| l.trim() == first)
        .map(|i| i + 1 - module.lines().take_while(|l| l.trim().is_empty()).count())
}

fn rego_error_diag(
    err: &RegoError,
    template: &ConstraintTemplate,
    yaml: Option<&str>,
) -> Diagnostic {
    let Some(yaml) = yaml else {
        let path = match err.module() {
            Some(RegoModule::Lib(i)) => template_path().attribute("libs").index(i),
            _ => template_path().attribute("rego"),
        };
        return Diagnostic::error("Invalid Rego", err.to_string()).at(path);
    };
    let location = yaml_location(err, template, yaml);
    Diagnostic::error(
        "Invalid Rego",
        format!("In the template's Rego{location}: {err}"),
    )
    .at(AttributePath::attr("constraint_template"))
}

/// ` (line N of the YAML)` for an error with a Rego position, when the template is YAML.
pub(super) fn yaml_location(err: &RegoError, template: &ConstraintTemplate, yaml: &str) -> String {
    let module_text = match err.module() {
        Some(RegoModule::Lib(i)) => template.rego.libs.get(i).map(String::as_str),
        _ => Some(template.rego.entry.as_str()),
    };
    match (err, module_text.and_then(|m| module_start_line(yaml, m))) {
        (RegoError::Syntax { line, .. } | RegoError::Runtime { line, .. }, Some(start)) => {
            format!(" (line {} of the YAML)", start + *line as usize - 1)
        }
        _ => String::new(),
    }
}

pub(super) fn template_error_diag(err: &TemplateError, from_block: bool) -> Diagnostic {
    let path = if from_block {
        match err {
            TemplateError::Parameter { .. } => template_path().attribute("parameters_schema"),
            _ => template_path().attribute("kind"),
        }
    } else {
        AttributePath::attr("constraint_template")
    };
    Diagnostic::error("Invalid ConstraintTemplate", err.to_string()).at(path)
}

/// Resolves and checks the template from a wholly known configuration; `None` when an error
/// was reported.
pub(super) fn resolve_template(
    config: &KubernetesDefinition,
    diags: &mut Diagnostics,
) -> Option<ResolvedTemplate> {
    let block = config.template.first();
    let yaml = config.constraint_template.clone();
    let url = config.template_url.clone();
    let count = [block.is_some(), yaml.is_some(), url.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if count != 1 {
        diags.push(Diagnostic::error(
            "Exactly one template source is required",
            "Set exactly one of the `template` block, `constraint_template` or `template_url`.",
        ));
        return None;
    }
    if let Some(url) = url {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            diags.error_at(
                AttributePath::attr("template_url"),
                "Invalid template URL",
                format!("{url:?} is not an http(s) URL."),
            );
            return None;
        }
        if url.starts_with("http://") {
            diags.push(
                Diagnostic::warning(
                    "Template fetched without encryption",
                    format!(
                        "The Azure Policy add-on in each cluster downloads {url:?} over plain \
                         http, so anyone on the path can read or replace the Rego it enforces. \
                         Serve the template over https://."
                    ),
                )
                .at(AttributePath::attr("template_url")),
            );
        }
        return Some(ResolvedTemplate {
            source: TemplateSource::Url(url),
            template: None,
            compiled: None,
        });
    }
    let (rendered, template, from_block) = if let Some(block) = block {
        let schema = match block.parameters_schema.as_deref() {
            None => None,
            Some(text) => match serde_json::from_str::<Json>(text) {
                Ok(v) => Some(v),
                Err(e) => {
                    diags.error_at(
                        template_path().attribute("parameters_schema"),
                        "Invalid parameters schema",
                        format!("Not valid JSON: {e}"),
                    );
                    return None;
                }
            },
        };
        let spec = TemplateSpec {
            kind: block.kind.clone(),
            rego: block.rego.clone(),
            libs: block.libs.clone().unwrap_or_default(),
            parameters_schema: schema,
        };
        match spec.render() {
            Ok((yaml, template)) => (yaml, template, true),
            Err(e) => {
                diags.push(template_error_diag(&e, true));
                return None;
            }
        }
    } else {
        let text = yaml.unwrap_or_default();
        match ConstraintTemplate::parse(&text) {
            Ok(t) => (text, t, false),
            Err(e) => {
                diags.push(template_error_diag(&e, false));
                return None;
            }
        }
    };
    let compiled = match rego::compile(&template.rego) {
        Ok(c) => c,
        Err(e) => {
            let yaml = (!from_block).then_some(rendered.as_str());
            diags.push(rego_error_diag(&e, &template, yaml));
            return None;
        }
    };
    Some(ResolvedTemplate {
        source: TemplateSource::Embedded(rendered),
        template: Some(template),
        compiled: Some(compiled),
    })
}

/// Stands in for the embedded template in `policy_rule`: the template is `rendered_template`,
/// and base64 in a plan diff tells nobody anything.
pub const TEMPLATE_CONTENT_PLACEHOLDER: &str = "(base64 of rendered_template)";

/// The rule as exposed in state: as sent, except the embedded template content.
pub(super) fn exposed_rule(rule: &Json) -> Json {
    let mut rule = rule.clone();
    if let Some(Json::Object(info)) = rule.pointer_mut("/then/details/templateInfo") {
        if info.contains_key("content") {
            info.insert("content".into(), json!(TEMPLATE_CONTENT_PLACEHOLDER));
        }
    }
    rule
}

/// The `template` block Azure's template corresponds to, if it is one this provider renders.
fn block_from_template(t: &ConstraintTemplate) -> TemplateBlock {
    TemplateBlock {
        kind: t.kind.clone(),
        rego: t.rego.entry.clone(),
        libs: libs_of(t),
        parameters_schema: t.parameters_schema.as_ref().map(canonical_json),
    }
}

/// Library modules as the `libs` attribute holds them: null when there are none.
fn libs_of(t: &ConstraintTemplate) -> Option<Vec<String>> {
    (!t.rego.libs.is_empty()).then(|| t.rego.libs.clone())
}

/// Reconciles the template attributes with what Azure holds, keeping the user's spelling when
/// it means the same.
pub(super) fn reconcile_template(
    prior: &KubernetesDefinition,
    azure_yaml: Option<&str>,
    azure_url: Option<&str>,
    state: &mut KubernetesDefinition,
) {
    state.template = Vec::new();
    state.constraint_template = None;
    state.template_url = None;
    if let Some(url) = azure_url {
        state.template_url = Some(url.to_string());
        return;
    }
    let Some(yaml) = azure_yaml else { return };
    let parsed = ConstraintTemplate::parse(yaml).ok();
    if let Some(block) = prior.template.first() {
        let Some(t) = parsed else {
            state.constraint_template = Some(yaml.to_string());
            return;
        };
        let prior_schema = block
            .parameters_schema
            .as_deref()
            .and_then(|s| serde_json::from_str::<Json>(s).ok());
        let mut out = block.clone();
        if block.kind != t.kind {
            out.kind = t.kind.clone();
        }
        if block.rego != t.rego.entry {
            out.rego = t.rego.entry.clone();
        }
        if block.libs.as_deref().unwrap_or_default() != t.rego.libs {
            out.libs = libs_of(&t);
        }
        if prior_schema != t.parameters_schema {
            out.parameters_schema = t.parameters_schema.as_ref().map(canonical_json);
        }
        state.template = vec![out];
        return;
    }
    if let Some(p) = &prior.constraint_template {
        let same = match (parse_yaml(p), parse_yaml(yaml)) {
            (Ok(a), Ok(b)) => a == b,
            _ => p == yaml,
        };
        state.constraint_template = Some(if same { p.clone() } else { yaml.to_string() });
        return;
    }
    let Some(t) = parsed.filter(|_| prior.template_url.is_none()) else {
        state.constraint_template = Some(yaml.to_string());
        return;
    };
    // Import: a template this provider rendered maps back to a `template` block.
    let spec = TemplateSpec {
        kind: t.kind.clone(),
        rego: t.rego.entry.clone(),
        libs: t.rego.libs.clone(),
        parameters_schema: t.parameters_schema.clone(),
    };
    if spec.document() == t.document {
        state.template = vec![block_from_template(&t)];
    } else {
        state.constraint_template = Some(yaml.to_string());
    }
}
