//! ARM scopes (tenant, management group, subscription, resource group, resource): parsing,
//! existence checks with the real 404 codes, and the ancestor chain that `atScope()` and
//! definition visibility need.

use serde_json::Value;

use super::error::ErrorResponse;
use super::filter::ScopeRelation;
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, StoredResource};

/// Id prefix of management groups.
pub(crate) const MG_PREFIX: &str = "/providers/Microsoft.Management/managementGroups/";

/// What kind of scope an id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    Tenant,
    ManagementGroup(String),
    Subscription(String),
    ResourceGroup { subscription: String, group: String },
    Resource { subscription: String, group: String },
}

/// A scope id in request casing (`""` for the tenant) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub id: String,
    pub kind: ScopeKind,
}

impl Scope {
    /// Parses scope segments (the part of a path before the last `providers`).
    pub(crate) fn from_segments(segments: &[String]) -> Result<Self, ErrorResponse> {
        let id: String = segments.iter().map(|s| format!("/{s}")).collect();
        Self::parse(&id)
    }

    /// Parses a scope id such as `/subscriptions/s/resourceGroups/rg`.
    pub(crate) fn parse(id: &str) -> Result<Self, ErrorResponse> {
        let id = id.trim_end_matches('/').to_string();
        let segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let kind = match segs.as_slice() {
            [] => ScopeKind::Tenant,
            [p, ns, mgs, name]
                if eq(p, "providers")
                    && eq(ns, "Microsoft.Management")
                    && eq(mgs, "managementGroups") =>
            {
                ScopeKind::ManagementGroup(name.to_string())
            }
            [s, sub] if eq(s, "subscriptions") => ScopeKind::Subscription(sub.to_string()),
            [s, sub, r, rg] if eq(s, "subscriptions") && eq(r, "resourceGroups") => {
                ScopeKind::ResourceGroup {
                    subscription: sub.to_string(),
                    group: rg.to_string(),
                }
            }
            [s, sub, r, rg, p, _ns, rest @ ..]
                if eq(s, "subscriptions")
                    && eq(r, "resourceGroups")
                    && eq(p, "providers")
                    && !rest.is_empty()
                    && rest.len() % 2 == 0 =>
            {
                ScopeKind::Resource {
                    subscription: sub.to_string(),
                    group: rg.to_string(),
                }
            }
            _ => {
                return Err(ErrorResponse::bad_request(
                    "InvalidScope",
                    format!("The scope '{id}' is not a valid ARM scope."),
                ))
            }
        };
        Ok(Self { id, kind })
    }

    /// The subscription this scope lives in, if any.
    pub(crate) fn subscription(&self) -> Option<&str> {
        match &self.kind {
            ScopeKind::Subscription(s)
            | ScopeKind::ResourceGroup {
                subscription: s, ..
            }
            | ScopeKind::Resource {
                subscription: s, ..
            } => Some(s),
            _ => None,
        }
    }

    /// Parses scope segments and requires the scope to exist.
    pub(crate) fn existing(state: &AppState, segments: &[String]) -> Result<Self, ErrorResponse> {
        let scope = Scope::from_segments(segments)?;
        scope.ensure_exists(state)?;
        Ok(scope)
    }

    /// The scope of an assignment or exemption (`what`, e.g. "Policy exemptions"): parsed,
    /// refused at tenant scope as ARM does, and required to exist.
    pub(crate) fn existing_below_tenant(
        state: &AppState,
        segments: &[String],
        what: &str,
    ) -> Result<Self, ErrorResponse> {
        let scope = Scope::from_segments(segments)?;
        if scope.kind == ScopeKind::Tenant {
            return Err(ErrorResponse::bad_request(
                "InvalidScope",
                format!("{what} cannot be made at tenant scope."),
            ));
        }
        scope.ensure_exists(state)?;
        Ok(scope)
    }

    /// Fails with ARM's 404 for the first missing part of the scope.
    pub(crate) fn ensure_exists(&self, state: &AppState) -> Result<(), ErrorResponse> {
        match &self.kind {
            ScopeKind::Tenant => Ok(()),
            ScopeKind::ManagementGroup(name) => {
                // The tenant root group always exists.
                if name.eq_ignore_ascii_case(&state.identity.tenant_id)
                    || state.store.get(&format!("{MG_PREFIX}{name}"))?.is_some()
                {
                    Ok(())
                } else {
                    Err(management_group_not_found(name))
                }
            }
            ScopeKind::Subscription(sub) => ensure_subscription(state, sub),
            ScopeKind::ResourceGroup {
                subscription,
                group,
            } => {
                ensure_subscription(state, subscription)?;
                ensure_group(state, subscription, group)
            }
            ScopeKind::Resource {
                subscription,
                group,
            } => {
                ensure_subscription(state, subscription)?;
                ensure_group(state, subscription, group)?;
                // Only resource types the emulator serves can be checked; others are taken on
                // trust so assignments can target any resource id.
                if is_emulated_type(&self.id) && state.store.get(&self.id)?.is_none() {
                    return Err(ErrorResponse::not_found(
                        "ResourceNotFound",
                        format!(
                            "The Resource '{}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                            resource_type_and_name(&self.id)
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Lower-cased ids of this scope and every scope above it, nearest first, ending with the
    /// tenant (`""`). Management groups come from the stored hierarchy.
    pub(crate) fn ancestors(&self, state: &AppState) -> Result<Vec<String>, ErrorResponse> {
        let mut out = Vec::new();
        let mut mg: Option<String> = None;
        match &self.kind {
            ScopeKind::Tenant => {}
            ScopeKind::ManagementGroup(name) => mg = Some(name.clone()),
            ScopeKind::Subscription(_)
            | ScopeKind::ResourceGroup { .. }
            | ScopeKind::Resource { .. } => {
                let key = resource_key(&self.id);
                if let ScopeKind::Resource {
                    subscription,
                    group,
                } = &self.kind
                {
                    out.push(key.clone());
                    out.push(resource_key(&format!(
                        "/subscriptions/{subscription}/resourceGroups/{group}"
                    )));
                } else if let ScopeKind::ResourceGroup { .. } = &self.kind {
                    out.push(key.clone());
                }
                let sub = self.subscription().unwrap_or_default().to_string();
                out.push(resource_key(&format!("/subscriptions/{sub}")));
                mg = subscription_parent(state, &sub)?;
            }
        }
        // Bounded walk: a corrupt cycle must not hang a request.
        let mut guard = 0;
        while let Some(name) = mg.take() {
            guard += 1;
            if guard > 16 {
                break;
            }
            out.push(resource_key(&format!("{MG_PREFIX}{name}")));
            mg = management_group_parent(state, &name)?;
        }
        // Everything not placed elsewhere sits under the tenant root group.
        let root = resource_key(&format!("{MG_PREFIX}{}", state.identity.tenant_id));
        if self.kind != ScopeKind::Tenant && !out.contains(&root) {
            out.push(root);
        }
        out.push(String::new());
        Ok(out)
    }

    /// True when `inner` (a scope or resource id) lies at or below this scope.
    pub(crate) fn contains(&self, state: &AppState, inner: &str) -> Result<bool, ErrorResponse> {
        let inner_scope = match Scope::parse(inner) {
            Ok(s) => s,
            Err(_) => return Ok(false),
        };
        let mine = resource_key(&self.id);
        Ok(inner_scope.ancestors(state)?.contains(&mine))
    }
}

/// Every stored extension resource of one type (`namespace/type`, lower case, e.g.
/// `microsoft.authorization/policyassignments`) with the scope it lives at.
pub(crate) fn stored_of_type(
    state: &AppState,
    namespace_type: &str,
) -> Result<Vec<(String, StoredResource)>, ErrorResponse> {
    let marker = format!("/providers/{namespace_type}/").to_ascii_lowercase();
    let of_type = |key: &str| {
        key.rfind(&marker)
            .is_some_and(|i| !key[i + marker.len()..].contains('/'))
    };
    Ok(state
        .store
        .list_matching(of_type)?
        .into_iter()
        .filter_map(|r| {
            let key = resource_key(&r.id);
            let i = key.rfind(&marker)?;
            if key[i + marker.len()..].contains('/') {
                return None;
            }
            Some((r.id[..i].to_string(), r))
        })
        .collect())
}

/// Stored resources of a type related to `scope` as `relation` asks.
pub(crate) fn related_to_scope(
    state: &AppState,
    scope: &Scope,
    namespace_type: &str,
    relation: ScopeRelation,
) -> Result<Vec<StoredResource>, ErrorResponse> {
    let mine = resource_key(&scope.id);
    let ancestors = scope.ancestors(state)?;
    let mut out = Vec::new();
    for (at, stored) in stored_of_type(state, namespace_type)? {
        let at_key = resource_key(&at);
        let keep = match relation {
            ScopeRelation::AtExactScope => at_key == mine,
            ScopeRelation::AtScope => ancestors.contains(&at_key),
            ScopeRelation::All => ancestors.contains(&at_key) || scope.contains(state, &at)?,
        };
        if keep {
            out.push(stored);
        }
    }
    Ok(out)
}

/// The management group a subscription was placed under, if any.
pub(crate) fn subscription_parent(
    state: &AppState,
    subscription: &str,
) -> Result<Option<String>, ErrorResponse> {
    let suffix = format!("/subscriptions/{}", subscription.to_ascii_lowercase());
    let placed = state.store.list_prefix(&resource_key(MG_PREFIX))?;
    Ok(placed
        .iter()
        .find(|r| resource_key(&r.id).ends_with(&suffix))
        .and_then(|r| {
            let key = resource_key(&r.id);
            let rest = key.get(MG_PREFIX.len()..)?;
            let name_len = rest.find('/')?;
            r.id.get(MG_PREFIX.len()..MG_PREFIX.len() + name_len)
                .map(str::to_string)
        }))
}

/// The parent of a management group (from `properties.details.parent.id`).
pub(crate) fn management_group_parent(
    state: &AppState,
    name: &str,
) -> Result<Option<String>, ErrorResponse> {
    let Some(mg) = state.store.get(&format!("{MG_PREFIX}{name}"))? else {
        return Ok(None);
    };
    Ok(mg
        .body
        .pointer("/properties/details/parent/id")
        .and_then(Value::as_str)
        .and_then(|id| id.rsplit('/').next())
        .filter(|parent| !parent.is_empty() && !parent.eq_ignore_ascii_case(name))
        .map(str::to_string))
}

fn ensure_subscription(state: &AppState, sub: &str) -> Result<(), ErrorResponse> {
    if state.store.get(&format!("/subscriptions/{sub}"))?.is_some() {
        Ok(())
    } else {
        Err(ErrorResponse::subscription_not_found(sub))
    }
}

fn ensure_group(state: &AppState, sub: &str, group: &str) -> Result<(), ErrorResponse> {
    if state
        .store
        .get(&format!("/subscriptions/{sub}/resourceGroups/{group}"))?
        .is_some()
    {
        Ok(())
    } else {
        Err(resource_group_not_found(group))
    }
}

/// ARM's 404 for a missing resource group.
pub(crate) fn resource_group_not_found(group: &str) -> ErrorResponse {
    ErrorResponse::not_found(
        "ResourceGroupNotFound",
        format!("Resource group '{group}' could not be found."),
    )
}

/// ARM's 404 for a missing management group.
pub(crate) fn management_group_not_found(name: &str) -> ErrorResponse {
    ErrorResponse::not_found(
        "ManagementGroupNotFound",
        format!("Management group '{name}' not found."),
    )
}

/// Resource types whose existence the emulator can check.
fn is_emulated_type(id: &str) -> bool {
    id.to_ascii_lowercase()
        .contains("/providers/microsoft.containerservice/managedclusters/")
}

/// `Microsoft.X/type/name` from a resource id, for ResourceNotFound messages.
pub(crate) fn resource_type_and_name(id: &str) -> String {
    let lower = id.to_ascii_lowercase();
    match lower.rfind("/providers/") {
        Some(i) => id[i + "/providers/".len()..].to_string(),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scope_kind() {
        assert_eq!(Scope::parse("").expect("tenant").kind, ScopeKind::Tenant);
        assert_eq!(
            Scope::parse("/providers/Microsoft.Management/managementGroups/mg1")
                .expect("mg")
                .kind,
            ScopeKind::ManagementGroup("mg1".into())
        );
        assert_eq!(
            Scope::parse("/subscriptions/s")
                .expect("sub")
                .subscription(),
            Some("s")
        );
        assert!(matches!(
            Scope::parse("/subscriptions/s/resourceGroups/rg")
                .expect("rg")
                .kind,
            ScopeKind::ResourceGroup { .. }
        ));
        assert!(matches!(
            Scope::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"
            )
            .expect("resource")
            .kind,
            ScopeKind::Resource { .. }
        ));
        assert!(Scope::parse("/foo/bar").is_err());
        assert!(Scope::parse("/subscriptions/s/resourceGroups/rg/providers/X").is_err());
    }
}
