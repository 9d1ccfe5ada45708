//! Gatekeeper mutators (`mutations.gatekeeper.sh/v1` Assign, AssignMetadata, ModifySet,
//! AssignImage): parsing with validation, and applying them to an object the way Gatekeeper's
//! mutation webhook does. The one implementation that plan-time `test` blocks of
//! `akspolicy_kubernetes_mutation` and the emulator's admission go through.
//!
//! Semantics follow Gatekeeper's mutation docs: a mutator applies when its `match` (the same
//! matcher as constraints, [`ConstraintMatch`]) and, except for AssignMetadata, its `applyTo`
//! accept the object; `location` is a dotted path where `[key: value]` selects the list element
//! whose `key` is `value` (created when missing) and `[key: *]` every existing element;
//! `pathTests` stop a mutation where a sub-path must (not) exist; missing parents are created.
//! Mutators run sorted by kind then name, repeatedly, until an iteration changes nothing.

use serde_json::{json, Map, Value as Json};

use super::constraint_match::{
    is_exempt, review_targets, ConstraintMatch, MatchError, MatchSource, ReviewTarget,
};
use super::gatekeeper::{resolve_expressions, url_path, TemplateLookup};
use super::kubernetes::TemplateInfo;
use super::rego::{group_version, review_for};

/// API group of Gatekeeper's mutators.
pub const MUTATIONS_GROUP: &str = "mutations.gatekeeper.sh";
/// Gatekeeper gives up on an object whose mutators still change it after this many passes
/// (mutators that fight each other never converge).
pub const MAX_ITERATIONS: usize = 3;

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

/// One step of a `location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// An object field.
    Field(String),
    /// `[key: value]` (`value: None` is the `*` glob): a list element chosen by a key field.
    ListKey { key: String, value: Option<String> },
}

/// A parsed `location` (or `pathTests[].subPath`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub text: String,
    pub segments: Vec<Segment>,
}

impl Location {
    /// Gatekeeper's path syntax: `a.b[name: foo].c`, segments optionally quoted with `"` or `'`
    /// (for keys holding dots, such as label names), `*` as a list key value is a glob.
    pub fn parse(text: &str) -> Result<Location, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let mut segments = Vec::new();
        let skip_spaces = |i: &mut usize| {
            while *i < chars.len() && chars[*i] == ' ' {
                *i += 1;
            }
        };
        if chars.is_empty() {
            return Err("the location is empty".into());
        }
        loop {
            let (field, _) = read_token(&chars, &mut i, &['.', '['])?;
            if field.is_empty() {
                return Err(format!(
                    "empty path segment at character {} of {text:?}",
                    i + 1
                ));
            }
            segments.push(Segment::Field(field));
            while i < chars.len() && chars[i] == '[' {
                i += 1;
                skip_spaces(&mut i);
                let (key, _) = read_token(&chars, &mut i, &[':', ']'])?;
                let key = key.trim().to_string();
                if i >= chars.len() || chars[i] != ':' {
                    return Err(format!(
                        "list key in {text:?} needs the form [key: value], e.g. [name: *]"
                    ));
                }
                i += 1;
                skip_spaces(&mut i);
                let (value, quoted) = read_token(&chars, &mut i, &[']'])?;
                let value = if quoted {
                    value
                } else {
                    value.trim().to_string()
                };
                if i >= chars.len() || chars[i] != ']' {
                    return Err(format!("unclosed '[' in {text:?}"));
                }
                i += 1;
                if key.is_empty() || value.is_empty() {
                    return Err(format!(
                        "list key in {text:?} needs a key and a value, e.g. [name: *]"
                    ));
                }
                segments.push(Segment::ListKey {
                    key,
                    value: (quoted || value != "*").then_some(value),
                });
            }
            if i >= chars.len() {
                break;
            }
            if chars[i] != '.' {
                return Err(format!(
                    "unexpected {:?} at character {} of {text:?}",
                    chars[i],
                    i + 1
                ));
            }
            i += 1;
            if i >= chars.len() {
                return Err(format!("{text:?} ends with '.'"));
            }
        }
        Ok(Location {
            text: text.to_string(),
            segments,
        })
    }

    fn starts_with_metadata(&self) -> bool {
        matches!(self.segments.first(), Some(Segment::Field(f)) if f == "metadata")
    }
}

/// Reads a bare or quoted token up to one of `stops`; returns it and whether it was quoted.
fn read_token(chars: &[char], i: &mut usize, stops: &[char]) -> Result<(String, bool), String> {
    let mut out = String::new();
    if *i < chars.len() && (chars[*i] == '"' || chars[*i] == '\'') {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' && *i + 1 < chars.len() {
                *i += 1;
            }
            out.push(chars[*i]);
            *i += 1;
        }
        if *i >= chars.len() {
            return Err(format!("unclosed quote {quote} in location"));
        }
        *i += 1;
        return Ok((out, true));
    }
    while *i < chars.len() && !stops.contains(&chars[*i]) {
        if chars[*i] == '"' || chars[*i] == '\'' || (chars[*i] == ']' && !stops.contains(&']')) {
            return Err(format!("unexpected {:?} in location", chars[*i]));
        }
        out.push(chars[*i]);
        *i += 1;
    }
    Ok((out, false))
}

/// `pathTests[].condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathCondition {
    MustExist,
    MustNotExist,
}

/// One path test, as the number of location segments its `subPath` covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTest {
    pub sub_path: String,
    pub depth: usize,
    pub condition: PathCondition,
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
    fn allows(&self, current: &Json) -> bool {
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

fn string_list(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(str::to_string)
        .collect()
}

impl Mutator {
    /// Parses one mutator from YAML (or JSON) text.
    pub fn parse(text: &str) -> Result<Mutator, MutatorError> {
        let docs = super::constraint_template::parse_yaml_documents(text)
            .map_err(|e| MutatorError::Syntax(e.to_string()))?;
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
        let name = doc
            .pointer("/metadata/name")
            .and_then(Json::as_str)
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

    /// Applies the mutator to `object` (match already checked); true when it changed.
    pub fn apply(&self, object: &mut Json) -> bool {
        let meta = |f: &str| {
            object
                .pointer(&format!("/metadata/{f}"))
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (namespace, name) = (meta("namespace"), meta("name"));
        let ctx = Ctx {
            mutator: self,
            namespace,
            name,
        };
        ctx.walk(object, 0)
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
            groups: string_list(e.get("groups")),
            versions: string_list(e.get("versions")),
            kinds: string_list(e.get("kinds")),
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

struct Ctx<'a> {
    mutator: &'a Mutator,
    namespace: String,
    name: String,
}

impl Ctx<'_> {
    fn segments(&self) -> &[Segment] {
        &self.mutator.location.segments
    }

    fn test_at(&self, depth: usize) -> Option<PathCondition> {
        self.mutator
            .path_tests
            .iter()
            .find(|t| t.depth == depth)
            .map(|t| t.condition)
    }

    /// A path test at or below `depth` requires something that does not exist yet.
    fn must_exist_from(&self, depth: usize) -> bool {
        self.mutator
            .path_tests
            .iter()
            .any(|t| t.depth >= depth && t.condition == PathCondition::MustExist)
    }

    /// `node` is the value reached after `depth` segments.
    fn walk(&self, node: &mut Json, depth: usize) -> bool {
        let segments = self.segments();
        if depth + 1 == segments.len() {
            return self.leaf(node, &segments[depth], depth + 1);
        }
        let next_is_list = matches!(segments[depth + 1], Segment::ListKey { .. });
        match &segments[depth] {
            Segment::Field(f) => {
                let Some(map) = node.as_object_mut() else {
                    return false;
                };
                if let Some(child) = map.get_mut(f) {
                    if self.test_at(depth + 1) == Some(PathCondition::MustNotExist) {
                        return false;
                    }
                    return self.walk(child, depth + 1);
                }
                if self.must_exist_from(depth + 1) {
                    return false;
                }
                let mut child = if next_is_list { json!([]) } else { json!({}) };
                if self.walk(&mut child, depth + 1) {
                    map.insert(f.clone(), child);
                    return true;
                }
                false
            }
            Segment::ListKey { key, value } => {
                let Some(items) = node.as_array_mut() else {
                    return false;
                };
                match value {
                    None => {
                        let skip_existing =
                            self.test_at(depth + 1) == Some(PathCondition::MustNotExist);
                        let mut changed = false;
                        for item in items.iter_mut().filter(|i| i.get(key).is_some()) {
                            if !skip_existing {
                                changed |= self.walk(item, depth + 1);
                            }
                        }
                        changed
                    }
                    Some(v) => {
                        if let Some(item) = items.iter_mut().find(|i| key_is(i, key, v)) {
                            if self.test_at(depth + 1) == Some(PathCondition::MustNotExist) {
                                return false;
                            }
                            return self.walk(item, depth + 1);
                        }
                        if self.must_exist_from(depth + 1) {
                            return false;
                        }
                        let mut item = json!({ key.clone(): v });
                        if self.walk(&mut item, depth + 1) {
                            items.push(item);
                            return true;
                        }
                        false
                    }
                }
            }
        }
    }

    /// The last segment, on its container; `depth` is the full location's length.
    fn leaf(&self, container: &mut Json, segment: &Segment, depth: usize) -> bool {
        let exists_blocked = self.test_at(depth) == Some(PathCondition::MustNotExist);
        let missing_blocked = self.must_exist_from(depth);
        match segment {
            Segment::Field(f) => {
                let Some(map) = container.as_object_mut() else {
                    return false;
                };
                let current = map.get(f).cloned();
                match (&current, exists_blocked, missing_blocked) {
                    (Some(_), true, _) | (None, _, true) => return false,
                    _ => {}
                }
                let Some(new) = self.new_value(current.as_ref()) else {
                    return false;
                };
                if current.as_ref() == Some(&new) {
                    return false;
                }
                map.insert(f.clone(), new);
                true
            }
            Segment::ListKey { key, value } => {
                // Only Assign reaches here, with a concrete key (checked at parse).
                let (Some(items), Some(v)) = (container.as_array_mut(), value) else {
                    return false;
                };
                let position = items.iter().position(|i| key_is(i, key, v));
                match (position, exists_blocked, missing_blocked) {
                    (Some(_), true, _) | (None, _, true) => return false,
                    _ => {}
                }
                let current = position.map(|p| items[p].clone());
                let Some(new) = self.new_value(current.as_ref()) else {
                    return false;
                };
                match position {
                    Some(p) if items[p] == new => false,
                    Some(p) => {
                        items[p] = new;
                        true
                    }
                    None => {
                        items.push(new);
                        true
                    }
                }
            }
        }
    }

    /// The value the location should hold, or `None` to leave it alone.
    fn new_value(&self, current: Option<&Json>) -> Option<Json> {
        let resolve = |source: &AssignSource| match source {
            AssignSource::Value(v) => v.clone(),
            AssignSource::FromMetadata(MetadataField::Namespace) => json!(self.namespace),
            AssignSource::FromMetadata(MetadataField::Name) => json!(self.name),
        };
        match &self.mutator.action {
            MutatorAction::Assign { source, assign_if } => assign_if
                .allows(current.unwrap_or(&Json::Null))
                .then(|| resolve(source)),
            // Metadata is never overwritten.
            MutatorAction::AssignMetadata { source } => current.is_none().then(|| resolve(source)),
            MutatorAction::ModifySet { operation, values } => {
                let mut list = match current {
                    None => Vec::new(),
                    Some(Json::Array(a)) => a.clone(),
                    Some(_) => return None,
                };
                match operation {
                    SetOperation::Merge => {
                        for v in values {
                            if !list.contains(v) {
                                list.push(v.clone());
                            }
                        }
                    }
                    SetOperation::Prune => {
                        current?;
                        list.retain(|x| !values.contains(x));
                    }
                }
                Some(Json::Array(list))
            }
            MutatorAction::AssignImage { domain, path, tag } => {
                let image = current?.as_str()?;
                let (old_domain, old_path, old_tag) = split_image(image);
                let domain = domain.clone().or(old_domain);
                let path = path.clone().unwrap_or(old_path);
                let tag = tag.clone().unwrap_or(old_tag);
                Some(json!(match domain {
                    Some(d) => format!("{d}/{path}{tag}"),
                    None => format!("{path}{tag}"),
                }))
            }
        }
    }
}

fn key_is(item: &Json, key: &str, value: &str) -> bool {
    match item.get(key) {
        Some(Json::String(s)) => s == value,
        Some(other) if !other.is_null() => {
            serde_json::from_str::<Json>(value).is_ok_and(|v| &v == other)
        }
        _ => false,
    }
}

/// Why mutation of an object failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationError {
    #[error("mutation did not converge after {MAX_ITERATIONS} passes; these mutators keep changing the object: {0:?}")]
    NotConverging(Vec<String>),
    #[error("[{mutator}] {error}")]
    Match { mutator: String, error: MatchError },
}

/// The object after mutation and the mutators that changed it (in order, ids repeated per
/// pass).
#[derive(Clone, Debug, PartialEq)]
pub struct MutationOutcome {
    pub object: Json,
    pub applied: Vec<String>,
}

/// Gatekeeper's order: by kind, then name (all mutators share one group and are
/// cluster-scoped).
pub fn sorted(mutators: &[Mutator]) -> Vec<&Mutator> {
    let mut out: Vec<&Mutator> = mutators.iter().collect();
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// Mutates one object (`generated_by` set for an object expansion generated, which mutators
/// with `source: Original` skip). `inventory` answers namespaceSelectors; objects in
/// `exempt_namespaces` are left alone.
pub fn mutate(
    object: &Json,
    generated_by: Option<&str>,
    mutators: &[Mutator],
    inventory: &Json,
    exempt_namespaces: &[&str],
) -> Result<MutationOutcome, MutationError> {
    let mut current = object.clone();
    let mut applied = Vec::new();
    if mutators.is_empty() || is_exempt(&review_for(object), exempt_namespaces) {
        return Ok(MutationOutcome {
            object: current,
            applied,
        });
    }
    let order = sorted(mutators);
    for _ in 0..MAX_ITERATIONS {
        let mut changed_by = Vec::new();
        for m in &order {
            let target = ReviewTarget {
                review: review_for(&current),
                generated_by: generated_by.map(str::to_string),
            };
            let matched =
                m.matcher
                    .matches(&target, inventory)
                    .map_err(|error| MutationError::Match {
                        mutator: m.id(),
                        error,
                    })?;
            if matched && m.applies_to(&target.review) && m.apply(&mut current) {
                changed_by.push(m.id());
            }
        }
        if changed_by.is_empty() {
            return Ok(MutationOutcome {
                object: current,
                applied,
            });
        }
        applied.extend(changed_by);
    }
    let mut culprits: Vec<String> = applied.clone();
    culprits.sort();
    culprits.dedup();
    Err(MutationError::NotConverging(culprits))
}

/// Whether `object` contains `expected`: every field of an expected object is present with a
/// contained value; a list element whose `name` (or the key a location uses) matches is
/// compared with the expected element of that name, other lists element by element in order.
/// Returns the JSON path of the first difference.
pub fn contains(object: &Json, expected: &Json, list_keys: &[String]) -> Result<(), String> {
    contains_at(object, expected, list_keys, "")
}

fn contains_at(actual: &Json, expected: &Json, keys: &[String], at: &str) -> Result<(), String> {
    match (actual, expected) {
        (Json::Object(a), Json::Object(e)) => {
            for (k, ev) in e {
                let path = format!("{at}.{k}");
                let av = a
                    .get(k)
                    .ok_or_else(|| format!("{} is missing", path.trim_start_matches('.')))?;
                contains_at(av, ev, keys, &path)?;
            }
            Ok(())
        }
        (Json::Array(a), Json::Array(e)) => {
            for (i, ev) in e.iter().enumerate() {
                let keyed = keys.iter().find_map(|k| ev.get(k).map(|v| (k.as_str(), v)));
                match keyed {
                    Some((k, kv)) => {
                        let label = kv.as_str().map_or_else(|| kv.to_string(), str::to_string);
                        let path = format!("{at}[{k}: {label}]");
                        let av = a.iter().find(|x| x.get(k) == Some(kv)).ok_or_else(|| {
                            format!("{} is missing", path.trim_start_matches('.'))
                        })?;
                        contains_at(av, ev, keys, &path)?;
                    }
                    None => {
                        let path = format!("{at}[{i}]");
                        let av = a.get(i).ok_or_else(|| {
                            format!("{} is missing", path.trim_start_matches('.'))
                        })?;
                        contains_at(av, ev, keys, &path)?;
                    }
                }
            }
            Ok(())
        }
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!(
            "{} is {a}, expected {e}",
            if at.is_empty() {
                "the object"
            } else {
                at.trim_start_matches('.')
            }
        )),
    }
}

/// The list keys a set of mutators' locations use (`name` always included), for [`contains`].
pub fn list_keys<'a>(mutators: impl IntoIterator<Item = &'a Mutator>) -> Vec<String> {
    let mut keys = vec!["name".to_string()];
    for m in mutators {
        for s in &m.location.segments {
            if let Segment::ListKey { key, .. } = s {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
    }
    keys
}

/// Azure's narrowing of a mutator by its definition's `details` (parameters resolved):
/// non-empty `namespaces` / `excludedNamespaces` replace the mutator's own, `source` sets
/// `match.source`.
pub fn narrow(mutator: &mut Mutator, details: &Map<String, Json>) {
    let list = |k: &str| string_list(details.get(k));
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

/// What admission reviews after mutation: the request's object mutated (the review's `object`
/// replaced) and, for workloads, the Pod expansion generates from the mutated object, mutated
/// in turn as a generated object. The first target is the mutated original; beside the targets,
/// the ids of the mutators that changed it.
pub fn mutated_targets(
    review: &Json,
    mutators: &[Mutator],
    inventory: &Json,
    exempt_namespaces: &[&str],
) -> Result<(Vec<ReviewTarget>, Vec<String>), MutationError> {
    let mut review = review.clone();
    let mut applied = Vec::new();
    if let Some(object) = review.get("object").filter(|o| o.is_object()) {
        let outcome = mutate(object, None, mutators, inventory, exempt_namespaces)?;
        review["object"] = outcome.object;
        applied = outcome.applied;
    }
    let mut targets = review_targets(&review);
    for target in targets.iter_mut().skip(1) {
        if let Some(object) = target.review.get("object").filter(|o| o.is_object()) {
            let by = target.generated_by.clone();
            let outcome = mutate(
                object,
                by.as_deref(),
                mutators,
                inventory,
                exempt_namespaces,
            )?;
            target.review["object"] = outcome.object;
        }
    }
    Ok((targets, applied))
}

// ---------------------------------------------------------------------------------------------
// From Azure definitions

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
    let yaml = match info {
        TemplateInfo::Base64Encoded(_) => info.embedded().ok_or(MutationSourceError::BadBase64)?,
        TemplateInfo::PublicUrl(url) | TemplateInfo::ConstraintTemplateUrl(url) => {
            let path = url_path(url);
            lookup
                .template_for_path(&path)
                .ok_or_else(|| MutationSourceError::NotFound {
                    url: url.clone(),
                    path,
                })?
        }
    };
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

/// An AdmissionReview `patch` (JSONPatch ops on top-level fields) turning `original` into
/// `mutated`, as Gatekeeper's mutating webhook answers.
pub fn top_level_patch(original: &Json, mutated: &Json) -> Vec<Json> {
    let empty = Map::new();
    let before = original.as_object().unwrap_or(&empty);
    let after = mutated.as_object().unwrap_or(&empty);
    let mut ops = Vec::new();
    for (k, v) in after {
        if before.get(k) != Some(v) {
            ops.push(json!({"op": "add", "path": format!("/{}", pointer_escape(k)), "value": v}));
        }
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        ops.push(json!({"op": "remove", "path": format!("/{}", pointer_escape(k))}));
    }
    ops
}

fn pointer_escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Applies a [`top_level_patch`] (what a client of the webhook does with the answer).
pub fn apply_top_level_patch(object: &Json, ops: &[Json]) -> Json {
    let mut out = object.as_object().cloned().unwrap_or_default();
    for op in ops {
        let path = op.get("path").and_then(Json::as_str).unwrap_or("");
        let key = path
            .trim_start_matches('/')
            .replace("~1", "/")
            .replace("~0", "~");
        match op.get("op").and_then(Json::as_str) {
            Some("add") | Some("replace") => {
                out.insert(key, op.get("value").cloned().unwrap_or(Json::Null));
            }
            Some("remove") => {
                out.remove(&key);
            }
            _ => {}
        }
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ESCALATION: &str = r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: no-escalation
spec:
  applyTo:
    - groups: [""]
      kinds: ["Pod"]
      versions: ["v1"]
  match:
    scope: Namespaced
    kinds:
      - apiGroups: ["*"]
        kinds: ["Pod"]
    excludedNamespaces: ["kube-system"]
  location: "spec.containers[name:*].securityContext.allowPrivilegeEscalation"
  parameters:
    pathTests:
      - subPath: "spec.containers[name:*].securityContext.allowPrivilegeEscalation"
        condition: MustNotExist
    assign:
      value: false
"#;

    fn pod(containers: Json) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "apps"},
               "spec": {"containers": containers}})
    }

    fn run(mutators: &[Mutator], object: &Json) -> Json {
        mutate(object, None, mutators, &json!({}), &[])
            .expect("converges")
            .object
    }

    #[test]
    fn parses_locations() {
        let l = Location::parse(r#"spec.containers[name: *].env[name: "A.B"].value"#).unwrap();
        assert_eq!(
            l.segments,
            vec![
                Segment::Field("spec".into()),
                Segment::Field("containers".into()),
                Segment::ListKey {
                    key: "name".into(),
                    value: None
                },
                Segment::Field("env".into()),
                Segment::ListKey {
                    key: "name".into(),
                    value: Some("A.B".into())
                },
                Segment::Field("value".into()),
            ]
        );
        let q = Location::parse(r#"metadata.labels."app.kubernetes.io/name""#).unwrap();
        assert_eq!(
            q.segments[2],
            Segment::Field("app.kubernetes.io/name".into())
        );
        // A quoted "*" is a literal key value, not a glob.
        let lit = Location::parse(r#"a[name: "*"]"#).unwrap();
        assert_eq!(
            lit.segments[1],
            Segment::ListKey {
                key: "name".into(),
                value: Some("*".into())
            }
        );
        for bad in [
            "",
            "spec..x",
            "spec.",
            "spec[name]",
            "spec[name:x",
            "a[:x]",
            "[name:x]",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn assign_glob_sets_every_container_unless_present() {
        let m = Mutator::parse(NO_ESCALATION).unwrap();
        let out = run(
            std::slice::from_ref(&m),
            &pod(json!([
                {"name": "a", "image": "nginx"},
                {"name": "b", "image": "nginx", "securityContext": {"allowPrivilegeEscalation": true}}
            ])),
        );
        assert_eq!(
            out["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        // MustNotExist keeps the explicit value.
        assert_eq!(
            out["spec"]["containers"][1]["securityContext"]["allowPrivilegeEscalation"],
            true
        );
        // A glob never creates elements, nor the list.
        let empty = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "namespace": "apps"}, "spec": {}});
        assert_eq!(run(std::slice::from_ref(&m), &empty), empty);
        // Match and applyTo narrow: excluded namespace and other kinds are untouched.
        let mut sys = pod(json!([{"name": "a"}]));
        sys["metadata"]["namespace"] = json!("kube-system");
        assert_eq!(run(std::slice::from_ref(&m), &sys), sys);
    }

    #[test]
    fn assign_named_element_is_created_and_must_exist_stops_it() {
        let yaml = r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata: {name: sidecar-pull}
spec:
  applyTo: [{groups: [""], versions: ["v1"], kinds: ["Pod"]}]
  location: "spec.containers[name: sidecar].imagePullPolicy"
  parameters:
    assign: {value: Always}
"#;
        let m = Mutator::parse(yaml).unwrap();
        let out = run(std::slice::from_ref(&m), &pod(json!([{"name": "app"}])));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "app"}, {"name": "sidecar", "imagePullPolicy": "Always"}])
        );
        let with_test = yaml.replace(
            "    assign: {value: Always}",
            "    assign: {value: Always}\n    pathTests: [{subPath: \"spec.containers[name: sidecar]\", condition: MustExist}]",
        );
        let m = Mutator::parse(&with_test).unwrap();
        let original = pod(json!([{"name": "app"}]));
        assert_eq!(run(std::slice::from_ref(&m), &original), original);
        let present = pod(json!([{"name": "sidecar"}]));
        assert_eq!(
            run(std::slice::from_ref(&m), &present)["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn assign_if_checks_the_current_value() {
        let yaml = r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata: {name: pull}
spec:
  applyTo: [{groups: [""], versions: ["v1"], kinds: ["Pod"]}]
  location: "spec.containers[name: *].imagePullPolicy"
  parameters:
    assign: {value: Always}
    assignIf: {in: ["IfNotPresent"]}
"#;
        let m = Mutator::parse(yaml).unwrap();
        let out = run(
            std::slice::from_ref(&m),
            &pod(json!([{"name": "a", "imagePullPolicy": "IfNotPresent"},
                        {"name": "b", "imagePullPolicy": "Never"}, {"name": "c"}])),
        );
        let c = &out["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "Always");
        assert_eq!(c[1]["imagePullPolicy"], "Never");
        assert!(c[2].get("imagePullPolicy").is_none());
        let not_in =
            Mutator::parse(&yaml.replace("in: [\"IfNotPresent\"]", "notIn: [\"Never\"]")).unwrap();
        let out = run(
            std::slice::from_ref(&not_in),
            &pod(json!([{"name": "b", "imagePullPolicy": "Never"}, {"name": "c"}])),
        );
        assert_eq!(out["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(out["spec"]["containers"][1]["imagePullPolicy"], "Always");
    }

    #[test]
    fn assign_metadata_never_overwrites() {
        let m = Mutator::parse(
            r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata: {name: owner}
spec:
  location: metadata.labels.owner
  parameters: {assign: {value: platform}}
"#,
        )
        .unwrap();
        let out = run(std::slice::from_ref(&m), &pod(json!([])));
        assert_eq!(out["metadata"]["labels"]["owner"], "platform");
        let mut labelled = pod(json!([]));
        labelled["metadata"]["labels"] = json!({"owner": "team-a"});
        assert_eq!(run(std::slice::from_ref(&m), &labelled), labelled);
        let err = Mutator::parse(
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata: {name: x}\nspec: {location: metadata.name, parameters: {assign: {value: a}}}\n",
        )
        .unwrap_err();
        assert!(matches!(err, MutatorError::Location(_)), "{err}");
    }

    #[test]
    fn modify_set_merges_and_prunes() {
        let yaml = r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: ModifySet
metadata: {name: args}
spec:
  applyTo: [{groups: [""], versions: ["v1"], kinds: ["Pod"]}]
  location: "spec.containers[name: *].args"
  parameters:
    operation: merge
    values: {fromList: ["--verbose", "--safe"]}
"#;
        let merge = Mutator::parse(yaml).unwrap();
        let out = run(
            std::slice::from_ref(&merge),
            &pod(json!([{"name": "a", "args": ["--safe"]}, {"name": "b"}])),
        );
        assert_eq!(
            out["spec"]["containers"][0]["args"],
            json!(["--safe", "--verbose"])
        );
        assert_eq!(
            out["spec"]["containers"][1]["args"],
            json!(["--verbose", "--safe"])
        );
        let prune = Mutator::parse(&yaml.replace("operation: merge", "operation: prune")).unwrap();
        let out = run(
            std::slice::from_ref(&prune),
            &pod(json!([{"name": "a", "args": ["--safe", "--x"]}, {"name": "b"}])),
        );
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["--x"]));
        assert!(out["spec"]["containers"][1].get("args").is_none());
    }

    #[test]
    fn assign_image_rewrites_components() {
        assert_eq!(
            split_image("myreg.io:5000/team/app:1.2"),
            (
                Some("myreg.io:5000".into()),
                "team/app".into(),
                ":1.2".into()
            )
        );
        assert_eq!(split_image("nginx"), (None, "nginx".into(), String::new()));
        let m = Mutator::parse(
            r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignImage
metadata: {name: registry}
spec:
  applyTo: [{groups: [""], versions: ["v1"], kinds: ["Pod"]}]
  location: "spec.containers[name: *].image"
  parameters: {assignDomain: "mirror.example.com"}
"#,
        )
        .unwrap();
        let out = run(
            std::slice::from_ref(&m),
            &pod(json!([{"name": "a", "image": "nginx:1.25"},
                        {"name": "b", "image": "docker.io/library/redis@sha256:abc"}])),
        );
        assert_eq!(
            out["spec"]["containers"][0]["image"],
            "mirror.example.com/nginx:1.25"
        );
        assert_eq!(
            out["spec"]["containers"][1]["image"],
            "mirror.example.com/library/redis@sha256:abc"
        );
        let bad = Mutator::parse(
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignImage\nmetadata: {name: x}\nspec: {applyTo: [{groups: [''], versions: [v1], kinds: [Pod]}], location: 'spec.containers[name: *].image', parameters: {assignTag: latest}}\n",
        )
        .unwrap_err();
        assert!(bad.to_string().contains("assignTag"), "{bad}");
    }

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

    #[test]
    fn runs_in_kind_then_name_order_until_stable() {
        let a = Mutator::parse(
            r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata: {name: a-label}
spec:
  location: metadata.labels.tier
  parameters: {assign: {value: web}}
"#,
        )
        .unwrap();
        // An Assign that only applies to labelled Pods: runs before AssignMetadata in a pass,
        // so it needs the second pass to see the label.
        let b = Mutator::parse(
            r#"
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata: {name: z-by-label}
spec:
  applyTo: [{groups: [""], versions: ["v1"], kinds: ["Pod"]}]
  match: {labelSelector: {matchLabels: {tier: web}}}
  location: spec.priority
  parameters: {assign: {value: 5}}
"#,
        )
        .unwrap();
        let out = mutate(&pod(json!([])), None, &[a, b], &json!({}), &[]).unwrap();
        assert_eq!(out.object["spec"]["priority"], 5);
        assert_eq!(
            out.applied,
            vec!["AssignMetadata/a-label", "Assign/z-by-label"]
        );
        // Two mutators fighting over one field never converge.
        let one = Mutator::parse(
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata: {name: one}\nspec: {applyTo: [{groups: [''], versions: [v1], kinds: [Pod]}], location: spec.priority, parameters: {assign: {value: 1}}}\n",
        )
        .unwrap();
        let mut two = one.clone();
        two.name = "two".into();
        two.action = MutatorAction::Assign {
            source: AssignSource::Value(json!(2)),
            assign_if: AssignIf::default(),
        };
        let err = mutate(&pod(json!([])), None, &[one, two], &json!({}), &[]).unwrap_err();
        assert!(matches!(err, MutationError::NotConverging(_)), "{err}");
    }

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

    #[test]
    fn workloads_are_reviewed_as_their_mutated_pod() {
        let mut m = Mutator::parse(NO_ESCALATION).unwrap();
        m.matcher.source = MatchSource::Generated;
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "apps"},
            "spec": {"template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "nginx"}]}}}});
        let review = review_for(&deployment);
        let (targets, _) = mutated_targets(&review, &[m], &json!({}), &[]).unwrap();
        assert_eq!(targets.len(), 2);
        // The Deployment is not a Pod (applyTo) and not generated: unchanged.
        assert_eq!(targets[0].review["object"], deployment);
        let pod = &targets[1].review["object"];
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(
            pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
            false
        );
    }

    #[test]
    fn patch_round_trips() {
        let before = json!({"a": 1, "b": {"c": 2}, "d/e": 3});
        let after = json!({"a": 1, "b": {"c": 4}, "f": 5});
        let ops = top_level_patch(&before, &after);
        assert_eq!(ops.len(), 3);
        assert_eq!(apply_top_level_patch(&before, &ops), after);
    }

    #[test]
    fn contains_matches_lists_by_key() {
        let object = pod(
            json!([{"name": "a", "image": "x", "securityContext": {"runAsUser": 1}},
                                {"name": "b"}]),
        );
        let keys = vec!["name".to_string()];
        let expect = json!({"spec": {"containers": [{"name": "b"}, {"name": "a", "securityContext": {"runAsUser": 1}}]}});
        assert!(contains(&object, &expect, &keys).is_ok());
        let wrong =
            json!({"spec": {"containers": [{"name": "a", "securityContext": {"runAsUser": 2}}]}});
        assert_eq!(
            contains(&object, &wrong, &keys).unwrap_err(),
            "spec.containers[name: a].securityContext.runAsUser is 1, expected 2"
        );
        let missing = json!({"spec": {"containers": [{"name": "c"}]}});
        assert!(contains(&object, &missing, &keys)
            .unwrap_err()
            .contains("[name: c] is missing"));
    }
}
