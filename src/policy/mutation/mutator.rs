//! A mutator document parsed and validated the way Gatekeeper's admission of the mutator CRDs
//! does: each error names the field to fix.

use serde_json::Value as Json;

use super::location::{Location, PathCondition, PathTest, Segment};
use super::MUTATIONS_GROUP;
use crate::policy::constraint_match::{ConstraintMatch, MatchSource};
use crate::policy::constraint_template::parse_yaml_documents;
use crate::policy::json::{object_name, strings};
use crate::policy::rego::group_version;

/// The four mutator kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MutatorKind {
    Assign,
    AssignImage,
    AssignMetadata,
    ModifySet,
}

impl MutatorKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Assign" => Some(MutatorKind::Assign),
            "AssignImage" => Some(MutatorKind::AssignImage),
            "AssignMetadata" => Some(MutatorKind::AssignMetadata),
            "ModifySet" => Some(MutatorKind::ModifySet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MutatorKind::Assign => "Assign",
            MutatorKind::AssignImage => "AssignImage",
            MutatorKind::AssignMetadata => "AssignMetadata",
            MutatorKind::ModifySet => "ModifySet",
        }
    }
}

/// One `applyTo` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyTo {
    pub groups: Vec<String>,
    pub versions: Vec<String>,
    pub kinds: Vec<String>,
}

/// Where an assigned value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum AssignSource {
    Value(Json),
    /// `fromMetadata.field`: the object's own `namespace` or `name`.
    FromMetadata(MetadataField),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataField {
    Namespace,
    Name,
}

/// `parameters.assignIf` of an Assign: conditions on the current value (null when absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssignIf {
    pub within: Option<Vec<Json>>,
    pub not_within: Option<Vec<Json>>,
}

impl AssignIf {
    pub(super) fn allows(&self, current: &Json) -> bool {
        self.within.as_ref().is_none_or(|l| l.contains(current))
            && self
                .not_within
                .as_ref()
                .is_none_or(|l| !l.contains(current))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOperation {
    Merge,
    Prune,
}

/// What a mutator does at its location.
#[derive(Clone, Debug, PartialEq)]
pub enum MutatorAction {
    Assign {
        source: AssignSource,
        assign_if: AssignIf,
    },
    /// Sets a label or annotation only when it is absent.
    AssignMetadata { source: AssignSource },
    ModifySet {
        operation: SetOperation,
        values: Vec<Json>,
    },
    AssignImage {
        domain: Option<String>,
        path: Option<String>,
        tag: Option<String>,
    },
}

/// A validated mutator.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutator {
    pub kind: MutatorKind,
    pub name: String,
    pub apply_to: Vec<ApplyTo>,
    pub matcher: ConstraintMatch,
    pub location: Location,
    pub path_tests: Vec<PathTest>,
    pub action: MutatorAction,
    /// The mutator document as given (for listings).
    pub document: Json,
}

/// Why a mutator document is not a valid Gatekeeper mutator. Each names the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutatorError {
    #[error("not a YAML document: {0}")]
    Syntax(String),
    #[error("expected one mutator document, found {0}")]
    DocumentCount(usize),
    #[error("apiVersion {0:?} is not a Gatekeeper mutator API; use mutations.gatekeeper.sh/v1")]
    ApiVersion(String),
    #[error("kind {0:?} is not a Gatekeeper mutator; use Assign, AssignMetadata, ModifySet or AssignImage")]
    Kind(String),
    #[error("metadata.name is required")]
    Name,
    #[error("spec.location: {0}")]
    Location(String),
    #[error("spec.applyTo: {0}")]
    ApplyTo(String),
    #[error("spec.parameters.assign: {0}")]
    Assign(String),
    #[error("spec.parameters.assignIf: {0}")]
    AssignIf(String),
    #[error("spec.parameters.pathTests[{index}]: {message}")]
    PathTest { index: usize, message: String },
    #[error("spec.parameters: {0}")]
    Parameters(String),
}

impl Mutator {
    /// Parses one mutator from YAML (or JSON) text.
    pub fn parse(text: &str) -> Result<Mutator, MutatorError> {
        let docs = parse_yaml_documents(text).map_err(|e| MutatorError::Syntax(e.to_string()))?;
        let docs: Vec<Json> = docs.into_iter().filter(|d| !d.is_null()).collect();
        match docs.as_slice() {
            [doc] => Mutator::from_document(doc),
            other => Err(MutatorError::DocumentCount(other.len())),
        }
    }

    /// Validates a mutator document the way Gatekeeper's admission of the mutator CRD does.
    pub fn from_document(doc: &Json) -> Result<Mutator, MutatorError> {
        let api_version = doc.get("apiVersion").and_then(Json::as_str).unwrap_or("");
        let (group, _) = group_version(api_version);
        if group != MUTATIONS_GROUP {
            return Err(MutatorError::ApiVersion(api_version.to_string()));
        }
        let kind_text = doc.get("kind").and_then(Json::as_str).unwrap_or("");
        let kind = MutatorKind::parse(kind_text)
            .ok_or_else(|| MutatorError::Kind(kind_text.to_string()))?;
        let name = object_name(doc)
            .filter(|n| !n.is_empty())
            .ok_or(MutatorError::Name)?
            .to_string();
        let spec = doc.get("spec").unwrap_or(&Json::Null);
        let location_text = spec.get("location").and_then(Json::as_str).ok_or_else(|| {
            MutatorError::Location("required, e.g. spec.containers[name: *].image".into())
        })?;
        let location = Location::parse(location_text).map_err(MutatorError::Location)?;
        let apply_to = parse_apply_to(kind, spec.get("applyTo"))?;
        let parameters = spec.get("parameters").unwrap_or(&Json::Null);
        let action = match kind {
            MutatorKind::Assign => {
                if location.starts_with_metadata() {
                    return Err(MutatorError::Location(
                        "Assign may not change metadata; use AssignMetadata for labels and annotations".into(),
                    ));
                }
                let source = parse_assign(parameters.get("assign"))?;
                match (location.segments.last(), &source) {
                    (Some(Segment::ListKey { value: None, .. }), _) => {
                        return Err(MutatorError::Location(format!(
                            "{location_text:?} ends in a glob; point it at a field inside the elements, e.g. {location_text}.securityContext"
                        )))
                    }
                    (Some(Segment::ListKey { key, value: Some(v) }), AssignSource::Value(value))
                        if value.get(key).and_then(Json::as_str) != Some(v.as_str()) =>
                    {
                        return Err(MutatorError::Assign(format!(
                            "the location selects the list element with {key}: {v}, so value must be an object with {key}: {v}"
                        )));
                    }
                    _ => {}
                }
                let assign_if = parse_assign_if(parameters.get("assignIf"))?;
                MutatorAction::Assign { source, assign_if }
            }
            MutatorKind::AssignMetadata => {
                let ok = matches!(location.segments.as_slice(),
                    [Segment::Field(m), Segment::Field(kind), Segment::Field(key)]
                        if m == "metadata" && (kind == "labels" || kind == "annotations") && !key.is_empty());
                if !ok {
                    return Err(MutatorError::Location(format!(
                        "AssignMetadata may only set metadata.labels.<key> or metadata.annotations.<key>, not {location_text:?}"
                    )));
                }
                let source = parse_assign(parameters.get("assign"))?;
                if let AssignSource::Value(v) = &source {
                    if !v.is_string() {
                        return Err(MutatorError::Assign(
                            "labels and annotations are strings; quote the value".into(),
                        ));
                    }
                }
                MutatorAction::AssignMetadata { source }
            }
            MutatorKind::ModifySet => {
                check_field_leaf(&location, "ModifySet")?;
                let operation = match parameters.get("operation").and_then(Json::as_str) {
                    None | Some("merge") => SetOperation::Merge,
                    Some("prune") => SetOperation::Prune,
                    Some(other) => {
                        return Err(MutatorError::Parameters(format!(
                            "operation {other:?} is not merge or prune"
                        )))
                    }
                };
                let values = parameters
                    .pointer("/values/fromList")
                    .and_then(Json::as_array)
                    .cloned()
                    .ok_or_else(|| {
                        MutatorError::Parameters("values.fromList (a list) is required".into())
                    })?;
                if values.iter().any(|v| v.is_object() || v.is_array()) {
                    return Err(MutatorError::Parameters(
                        "values.fromList may only hold scalars (strings, numbers, booleans)".into(),
                    ));
                }
                MutatorAction::ModifySet { operation, values }
            }
            MutatorKind::AssignImage => {
                check_field_leaf(&location, "AssignImage")?;
                if location.starts_with_metadata() {
                    return Err(MutatorError::Location(
                        "AssignImage may not change metadata".into(),
                    ));
                }
                parse_assign_image(parameters)?
            }
        };
        let path_tests = parse_path_tests(&location, parameters.get("pathTests"))?;
        Ok(Mutator {
            kind,
            name,
            apply_to,
            matcher: ConstraintMatch::from_document(
                spec.get("match").unwrap_or(&Json::Null),
                MatchSource::All,
            ),
            location,
            path_tests,
            action,
            document: doc.clone(),
        })
    }

    /// The mutator document as installed: the given one with `spec.match` as narrowed.
    pub fn installed_document(&self) -> Json {
        let mut doc = self.document.clone();
        if let Some(spec) = doc.get_mut("spec").and_then(Json::as_object_mut) {
            let mut m = self.matcher.document();
            if self.matcher.kinds.is_empty() {
                if let Some(o) = m.as_object_mut() {
                    o.remove("kinds");
                }
            }
            spec.insert("match".into(), m);
        }
        doc
    }

    /// Gatekeeper's identity of a mutator, e.g. `Assign/no-escalation`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }

    /// Whether `applyTo` covers the reviewed object's group/version/kind (AssignMetadata has
    /// no applyTo and covers everything).
    pub fn applies_to(&self, review: &Json) -> bool {
        if self.kind == MutatorKind::AssignMetadata {
            return true;
        }
        let text = |p: &str| review.pointer(p).and_then(Json::as_str).unwrap_or("");
        let (group, version, kind) = (
            text("/kind/group"),
            text("/kind/version"),
            text("/kind/kind"),
        );
        self.apply_to.iter().any(|a| {
            a.groups.iter().any(|g| g == group)
                && a.versions.iter().any(|v| v == version)
                && a.kinds.iter().any(|k| k == kind)
        })
    }
}

fn check_field_leaf(location: &Location, kind: &str) -> Result<(), MutatorError> {
    match location.segments.last() {
        Some(Segment::Field(_)) => Ok(()),
        _ => Err(MutatorError::Location(format!(
            "{kind} needs a location ending in a field, not a list element: {:?}",
            location.text
        ))),
    }
}

fn parse_apply_to(kind: MutatorKind, v: Option<&Json>) -> Result<Vec<ApplyTo>, MutatorError> {
    if kind == MutatorKind::AssignMetadata {
        return Ok(Vec::new());
    }
    let entries = v.and_then(Json::as_array).filter(|a| !a.is_empty()).ok_or_else(|| {
        MutatorError::ApplyTo(format!(
            "required for {}: the groups, versions and kinds it changes, e.g. [{{groups: [\"\"], versions: [\"v1\"], kinds: [\"Pod\"]}}]",
            kind.as_str()
        ))
    })?;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let entry = ApplyTo {
            groups: strings(e.get("groups")),
            versions: strings(e.get("versions")),
            kinds: strings(e.get("kinds")),
        };
        if entry.versions.is_empty() || entry.kinds.is_empty() || e.get("groups").is_none() {
            return Err(MutatorError::ApplyTo(format!(
                "entry {i} needs groups, versions and kinds (the core group is \"\")"
            )));
        }
        if entry
            .groups
            .iter()
            .chain(&entry.versions)
            .chain(&entry.kinds)
            .any(|s| s.contains('*'))
        {
            return Err(MutatorError::ApplyTo(format!(
                "entry {i}: applyTo does not accept globs; list the groups, versions and kinds"
            )));
        }
        out.push(entry);
    }
    Ok(out)
}

fn parse_assign(v: Option<&Json>) -> Result<AssignSource, MutatorError> {
    let Some(assign) = v.and_then(Json::as_object) else {
        return Err(MutatorError::Assign(
            "required: give value (or fromMetadata)".into(),
        ));
    };
    let given: Vec<&str> = ["value", "fromMetadata", "externalData"]
        .into_iter()
        .filter(|k| assign.contains_key(*k))
        .collect();
    match given.as_slice() {
        ["value"] => Ok(AssignSource::Value(assign["value"].clone())),
        ["fromMetadata"] => match assign["fromMetadata"].get("field").and_then(Json::as_str) {
            Some("namespace") => Ok(AssignSource::FromMetadata(MetadataField::Namespace)),
            Some("name") => Ok(AssignSource::FromMetadata(MetadataField::Name)),
            other => Err(MutatorError::Assign(format!(
                "fromMetadata.field must be namespace or name, not {other:?}"
            ))),
        },
        ["externalData"] => Err(MutatorError::Assign(
            "externalData needs an external data provider, which Azure Policy does not install; use value".into(),
        )),
        [] => Err(MutatorError::Assign(
            "give value (or fromMetadata)".into(),
        )),
        _ => Err(MutatorError::Assign(format!(
            "give exactly one of value, fromMetadata, externalData, not {}",
            given.join(" and ")
        ))),
    }
}

fn parse_assign_if(v: Option<&Json>) -> Result<AssignIf, MutatorError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(AssignIf::default());
    };
    let Some(map) = v.as_object() else {
        return Err(MutatorError::AssignIf(
            "must be an object with in and/or notIn".into(),
        ));
    };
    let mut out = AssignIf::default();
    for (k, list) in map {
        let items = list
            .as_array()
            .cloned()
            .ok_or_else(|| MutatorError::AssignIf(format!("{k} must be a list")))?;
        match k.as_str() {
            "in" => out.within = Some(items),
            "notIn" => out.not_within = Some(items),
            other => {
                return Err(MutatorError::AssignIf(format!(
                    "unknown condition {other:?}; use in or notIn"
                )))
            }
        }
    }
    Ok(out)
}

fn parse_path_tests(location: &Location, v: Option<&Json>) -> Result<Vec<PathTest>, MutatorError> {
    let mut out = Vec::new();
    for (index, t) in v.and_then(Json::as_array).into_iter().flatten().enumerate() {
        let bad = |message: String| MutatorError::PathTest { index, message };
        let sub_path = t
            .get("subPath")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("subPath is required".into()))?;
        let sub = Location::parse(sub_path).map_err(|e| bad(format!("subPath: {e}")))?;
        if sub.segments.len() > location.segments.len()
            || location.segments[..sub.segments.len()] != sub.segments[..]
        {
            return Err(bad(format!(
                "subPath {sub_path:?} is not a prefix of location {:?}",
                location.text
            )));
        }
        let condition = match t.get("condition").and_then(Json::as_str) {
            Some("MustExist") => PathCondition::MustExist,
            Some("MustNotExist") => PathCondition::MustNotExist,
            other => {
                return Err(bad(format!(
                    "condition must be MustExist or MustNotExist, not {other:?}"
                )))
            }
        };
        out.push(PathTest {
            sub_path: sub_path.to_string(),
            depth: sub.segments.len(),
            condition,
        });
    }
    Ok(out)
}

fn parse_assign_image(parameters: &Json) -> Result<MutatorAction, MutatorError> {
    let get = |k: &str| {
        parameters
            .get(k)
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (domain, path, tag) = (get("assignDomain"), get("assignPath"), get("assignTag"));
    if domain.is_none() && path.is_none() && tag.is_none() {
        return Err(MutatorError::Parameters(
            "AssignImage needs at least one of assignDomain, assignPath, assignTag".into(),
        ));
    }
    if let Some(d) = &domain {
        if d.contains('/') || d.contains('@') {
            return Err(MutatorError::Parameters(format!(
                "assignDomain {d:?} must be a registry host (optionally :port), without '/' or '@'"
            )));
        }
    }
    if let Some(p) = &path {
        if p.starts_with('/') || p.ends_with('/') || p.contains(':') || p.contains('@') {
            return Err(MutatorError::Parameters(format!(
                "assignPath {p:?} must be a repository path without leading/trailing '/' or a tag"
            )));
        }
        if domain.is_none() && split_image(&format!("{p}:x")).0.is_some() {
            return Err(MutatorError::Parameters(format!(
                "assignPath {p:?} starts like a registry domain and would be read as one; set assignDomain too"
            )));
        }
    }
    if let Some(t) = &tag {
        if !(t.starts_with(':') || t.starts_with('@')) || t.len() < 2 {
            return Err(MutatorError::Parameters(format!(
                "assignTag {t:?} must start with ':' (a tag) or '@' (a digest)"
            )));
        }
    }
    Ok(MutatorAction::AssignImage { domain, path, tag })
}

/// Splits an image reference into (domain, path, tag-or-digest with its `:`/`@`).
pub fn split_image(image: &str) -> (Option<String>, String, String) {
    let (rest, tag) = if let Some(i) = image.find('@') {
        (&image[..i], &image[i..])
    } else {
        match image.rfind(':') {
            Some(i) if !image[i..].contains('/') => (&image[..i], &image[i..]),
            _ => (image, ""),
        }
    };
    match rest.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_string()), path.to_string(), tag.to_string())
        }
        _ => (None, rest.to_string(), tag.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::mutation::test_support::NO_ESCALATION;

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (NO_ESCALATION.replace("kind: Assign", "kind: Mutate"), "kind"),
            (NO_ESCALATION.replace("  applyTo:\n    - groups: [\"\"]\n      kinds: [\"Pod\"]\n      versions: [\"v1\"]\n", ""), "spec.applyTo"),
            (NO_ESCALATION.replace("[name:*].securityContext.allowPrivilegeEscalation\"\n  parameters", "[name:*]\"\n  parameters"), "spec.location"),
            (NO_ESCALATION.replace("      value: false", "      fromMetadata: {field: labels}"), "spec.parameters.assign"),
            (NO_ESCALATION.replace("condition: MustNotExist", "condition: Maybe"), "spec.parameters.pathTests[0]"),
            (NO_ESCALATION.replace("subPath: \"spec.containers", "subPath: \"spec.initContainers"), "spec.parameters.pathTests[0]"),
            (NO_ESCALATION.replace("location: \"spec.", "location: \"metadata."), "spec.location"),
        ];
        for (yaml, field) in cases {
            let err = Mutator::parse(&yaml).unwrap_err().to_string();
            assert!(
                err.starts_with(field) || err.contains(field),
                "{field}: {err}"
            );
        }
    }
}
