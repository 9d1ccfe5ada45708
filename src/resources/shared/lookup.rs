//! Picking one built-in by its exact display name, shared by the built-in definition and
//! initiative lookups so both explain a miss or an ambiguity the same way.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::arm::{api_version, ArmClient, ArmError};
use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    Attribute, AttributePath, Block, CallContext, DataSource, Diagnostic, Diagnostics,
    ReadDataRequest, ReadDataResponse, Schema, Type, ValidateConfigRequest, ValidateConfigResponse,
};
use crate::resources::provider::Configured;
use crate::resources::shared::decode::decoded;
use crate::typed_object;

use super::definition_api::{DefinitionBody, DefinitionProperties};
use super::definition_collection::DefinitionCollection;
use super::errors::arm_error_diagnostic;
use super::process_cache::ProcessCache;
use super::schema::typed_schema;
use super::validators::azure_name;
use crate::policy::names;

/// A data source that finds one built-in by `name` or `display_name`. It supplies its schema
/// and how one becomes state; the [`DataSource`] implementation below does the lookup the
/// same way for all of them, in the built-ins of the body's collection.
pub trait BuiltinLookup: Send + Sync + 'static {
    const TYPE_NAME: &'static str;
    type Body: DefinitionBody;
    /// The typed state, which holds the lookup keys too.
    type State: Typed;

    fn lookup_schema() -> Schema;
    fn to_state(found: &Self::Body) -> Self::State;
}

/// A computed string attribute.
pub fn computed(name: &str, description: &str) -> Attribute {
    Attribute::string(name).computed().description(description)
}

/// Adds the attributes every lookup has: the keys `name` and `display_name` (exactly one is
/// set; `name_example` is a GUID, `display_example` a display name) and what every built-in
/// reports, as [`lookup_state!`] declares them. `noun` names the collection's objects.
pub fn lookup_attributes(
    block: Block,
    noun: &DefinitionCollection,
    name_example: &str,
    display_example: &str,
) -> Block {
    let short = noun.short_noun;
    let key = |name: &str, description: String| {
        Attribute::string(name)
            .optional()
            .computed()
            .description(description)
    };
    let list = |name: &str, description: String| {
        Attribute::new(name, Type::list(Type::String))
            .computed()
            .description(description)
    };
    block
        .attribute(
            key(
                "name",
                format!("The {short}'s name, a GUID such as `{name_example}`."),
            )
            .validate_with(azure_name(names::POLICY_DEFINITION)),
        )
        .attribute(key(
            "display_name",
            format!(
                "The exact display name, e.g. `{display_example}`. Zero or several matches are \
                 an error that lists the candidates."
            ),
        ))
        .attribute(computed("id", &format!("The {short}'s ARM ID.")))
        .attribute(computed(
            "description",
            &format!("The {short}'s description."),
        ))
        .attribute(computed(
            "version",
            &format!("The {short}'s version (x.y.z)."),
        ))
        .attribute(list(
            "versions",
            format!("Every version Azure offers of this {short}, newest first."),
        ))
        .attribute(computed("policy_type", "`BuiltIn` or `Static`."))
        .attribute(computed(
            "category",
            "The `category` from the metadata, e.g. `Kubernetes`.",
        ))
        .attribute(computed(
            "metadata",
            "The metadata as canonical JSON (keys sorted).",
        ))
        .attribute(computed(
            "parameters",
            &format!("The {short}'s parameter declarations as canonical JSON."),
        ))
}

/// Declares a lookup's typed state: the attributes of [`lookup_attributes`] followed by the
/// data source's own; and `reported(found)`, a state with those attributes taken from the
/// built-in `found` and its own left empty.
macro_rules! lookup_state {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $crate::typed_object! {
            $(#[$meta])*
            pub struct $name {
                pub id: Option<String>,
                pub name: Option<String>,
                pub display_name: Option<String>,
                pub description: Option<String>,
                pub version: Option<String>,
                pub versions: Vec<String>,
                pub policy_type: Option<String>,
                pub category: Option<String>,
                pub metadata: Option<String>,
                pub parameters: Option<String>,
                $( pub $field: $ty, )*
            }
        }

        impl $name {
            fn reported(found: &impl $crate::resources::shared::definition_api::DefinitionBody) -> Self {
                use $crate::resources::shared::definition_api::DefinitionProperties as _;
                use $crate::resources::shared::json::canonical_json;
                let p = found.properties();
                let text = |s: Option<&str>| s.map(str::to_string);
                let parameters = p.parameters().and_then(|x| serde_json::to_value(x).ok());
                $name {
                    id: text(found.id()),
                    name: text(found.name()),
                    display_name: text(p.display_name()),
                    description: text(p.description()),
                    version: text(p.version()),
                    versions: p.versions().to_vec(),
                    policy_type: text(p.policy_type()),
                    category: text(found.category()),
                    metadata: p.metadata().map(canonical_json),
                    parameters: parameters.as_ref().map(canonical_json),
                    ..Default::default()
                }
            }
        }
    };
}
pub(crate) use lookup_state;

typed_object! {
    /// The keys a lookup's configuration names the built-in by: a subset of every lookup's
    /// state (decoding reads only these attributes), so no data source's `state_type`.
    pub struct LookupKeys {
        /// Unknown kept apart: validation skips keys not known yet.
        pub name: Knowable<String>,
        pub display_name: Knowable<String>,
    }
}

#[async_trait]
impl<T: BuiltinLookup> DataSource for T {
    typed_schema!(T::TYPE_NAME, T::lookup_schema(), T::State);

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        match LookupKeys::decode(req.config) {
            Ok(keys) => check_lookup_keys(&keys, &T::Body::COLLECTION, &mut resp.diags),
            Err(e) => resp.diags.extend(e.into()),
        }
    }

    async fn read(&self, ctx: &CallContext, req: ReadDataRequest<'_>, resp: &mut ReadDataResponse) {
        let Some(keys) = decoded::<LookupKeys>(req.config, &mut resp.diags) else {
            return;
        };
        let Some(configured) = Configured::from_context(ctx, &mut resp.diags) else {
            return;
        };
        let collection = T::Body::COLLECTION;
        let found: Option<T::Body> = find_builtin(
            &configured.client,
            collection.segment.trim_end_matches('/'),
            api_version::POLICY,
            &keys,
            &collection,
            &mut resp.diags,
        )
        .await;
        resp.state = found.as_ref().map(|f| T::to_state(f).to_value());
    }
}

/// Checks that a lookup sets exactly one of `name` and `display_name`.
pub fn check_lookup_keys(keys: &LookupKeys, noun: &DefinitionCollection, diags: &mut Diagnostics) {
    let (name, display) = (&keys.name, &keys.display_name);
    if name.is_unknown() || display.is_unknown() {
        return;
    }
    match (name.is_null(), display.is_null()) {
        (true, true) => diags.error(
            "Missing lookup key",
            format!(
                "Set exactly one of `name` (the {}'s GUID) or `display_name`.",
                noun.short_noun
            ),
        ),
        (false, false) => diags.push(
            Diagnostic::error(
                "Conflicting lookup keys",
                "Set only one of `name` or `display_name`, not both.",
            )
            .at(AttributePath::attr("display_name")),
        ),
        _ => {}
    }
}

/// The built-in below `builtins_path` that `config` names by `name` (one GET) or by
/// `display_name` (one listing); `None` with an error diagnostic when there is none.
pub async fn find_builtin<T: DefinitionBody>(
    client: &ArmClient,
    builtins_path: &str,
    api_version: &str,
    keys: &LookupKeys,
    noun: &DefinitionCollection,
    diags: &mut Diagnostics,
) -> Option<T> {
    if let Some(name) = keys.name.as_deref() {
        let path = format!("{builtins_path}/{name}");
        return match client.get_optional::<T>(&path, api_version).await {
            Ok(Some(found)) => Some(found),
            Ok(None) => {
                diags.push(
                    Diagnostic::error(
                        format!("Built-in {} not found", noun.noun),
                        format!(
                            "No built-in {} is named {name:?}. Built-in names are GUIDs; to \
                             search by title use `display_name` instead.",
                            noun.noun
                        ),
                    )
                    .at(AttributePath::attr("name")),
                );
                None
            }
            Err(e) => {
                diags.push(arm_error_diagnostic(
                    &format!("Looking up the built-in {} failed", noun.noun),
                    &e,
                ));
                None
            }
        };
    }
    let wanted = keys.display_name.as_deref().unwrap_or_default();
    let listed = match builtin_listing(client, builtins_path, api_version).await {
        Ok(listed) => listed,
        Err(e) => {
            diags.push(arm_error_diagnostic(
                &format!("Listing built-in {}s failed", noun.noun),
                &e,
            ));
            return None;
        }
    };
    let all: Vec<T> = match serde_json::from_value(Json::Array(listed.to_vec())) {
        Ok(all) => all,
        Err(e) => {
            diags.push(Diagnostic::error(
                format!("Listing built-in {}s failed", noun.noun),
                format!("Azure listed built-ins this provider cannot read: {e}"),
            ));
            return None;
        }
    };
    match pick_by_display_name(all, wanted, noun) {
        Ok(found) => Some(found),
        Err(d) => {
            diags.push(d.at(AttributePath::attr("display_name")));
            None
        }
    }
}

/// One listing of built-ins, shared by every lookup of the provider process.
type Listing = Arc<Vec<Json>>;

static LISTINGS: ProcessCache<Listing> = ProcessCache::new();

/// Every built-in below `builtins_path`, listed once per provider process (one Terraform
/// phase): built-ins change only with Azure's releases, and a listing is many pages, so
/// lookups running side by side wait for the one listing instead of each paging through it.
/// A failed listing is not kept; the next lookup tries again.
pub(crate) async fn builtin_listing(
    client: &ArmClient,
    builtins_path: &str,
    api_version: &str,
) -> Result<Listing, ArmError> {
    let key = format!("{builtins_path}|{api_version}");
    LISTINGS
        .get_or_try_fetch(client, &key, || async {
            client
                .list::<Json>(
                    builtins_path,
                    api_version,
                    &[("$filter", "policyType eq 'BuiltIn'")],
                )
                .await
                .map(Arc::new)
        })
        .await
}

/// The one item whose display name is exactly `wanted`, or an error that lists what the user
/// may have meant (close names on a miss, every match on an ambiguity).
pub fn pick_by_display_name<T: DefinitionBody>(
    all: Vec<T>,
    wanted: &str,
    noun: &DefinitionCollection,
) -> Result<T, Diagnostic> {
    let (mut exact, rest): (Vec<T>, Vec<T>) = all
        .into_iter()
        .partition(|d| d.properties().display_name() == Some(wanted));
    match exact.len() {
        1 => exact
            .pop()
            .ok_or_else(|| Diagnostic::error("Internal error", "length checked")),
        0 => {
            let lower = wanted.to_lowercase();
            let mut near: Vec<&T> = rest
                .iter()
                .filter(|d| {
                    let dn = d.properties().display_name().unwrap_or("").to_lowercase();
                    !lower.is_empty()
                        && !dn.is_empty()
                        && (dn.contains(&lower) || lower.contains(&dn))
                })
                .collect();
            near.sort_by_key(|d| d.properties().display_name().map(str::to_string));
            near.truncate(10);
            let hint = if near.is_empty() {
                format!(
                    "Check the spelling, or look the {} up by `name` (its GUID).",
                    noun.short_noun
                )
            } else {
                format!(
                    "Display names must match exactly (case included). Similar built-ins:\n{}",
                    candidate_lines(near.into_iter())
                )
            };
            Err(Diagnostic::error(
                format!("No built-in {} with this display name", noun.noun),
                format!("No built-in {} is named {wanted:?}. {hint}", noun.noun),
            ))
        }
        n => Err(Diagnostic::error(
            format!("Several built-in {}s have this display name", noun.noun),
            format!(
                "{n} built-in {}s are named {wanted:?}. Set `name` to the one you mean \
                 instead of `display_name`:\n{}",
                noun.short_noun,
                candidate_lines(exact.iter())
            ),
        )),
    }
}

fn candidate_lines<'a, T: DefinitionBody + 'a>(items: impl Iterator<Item = &'a T>) -> String {
    items
        .map(|d| {
            format!(
                "  - name = {:?} (version {}): {}",
                d.name().unwrap_or("?"),
                d.properties().version().unwrap_or("unversioned"),
                d.properties().display_name().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
