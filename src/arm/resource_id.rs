//! ARM resource ids and scopes: parsing (case-insensitive keywords), canonical formatting and
//! case-insensitive comparison.

use std::fmt;
use std::str::FromStr;

const ACCEPTED: &str = "accepted forms: \
/providers/Microsoft.Management/managementGroups/{mg}, \
/subscriptions/{sub}, \
/subscriptions/{sub}/resourceGroups/{rg}, \
{scope}/providers/{Namespace}/{type}/{name}[/{childType}/{childName}...] \
(extension resources repeat /providers/... after a resource id)";

/// Why an id could not be parsed; the message lists the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ARM id {id:?}: {reason}; {ACCEPTED}")]
pub struct ResourceIdError {
    pub id: String,
    pub reason: String,
}

/// Where something lives: tenant root, management group, subscription, resource group or a
/// resource (for extension resources such as policy assignments on a cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    ManagementGroup(String),
    Subscription(String),
    ResourceGroup {
        subscription_id: String,
        name: String,
    },
    Resource(Box<ResourceId>),
}

/// A resource under a scope: `{scope}/providers/{namespace}/{type}/{name}[/{type}/{name}...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    pub parent: Scope,
    pub namespace: String,
    /// `(type, name)` pairs, outermost first (`managedClusters`, `agentPools`, ...).
    pub types: Vec<(String, String)>,
}

impl Scope {
    pub fn parse(id: &str) -> Result<Scope, ResourceIdError> {
        parse_scope(id)
    }

    /// Subscription the scope belongs to, if any.
    pub fn subscription_id(&self) -> Option<&str> {
        match self {
            Scope::Subscription(s) => Some(s),
            Scope::ResourceGroup {
                subscription_id, ..
            } => Some(subscription_id),
            Scope::Resource(r) => r.parent.subscription_id(),
            _ => None,
        }
    }

    /// Case-insensitive equality of the canonical forms (ARM ids are case-insensitive).
    pub fn is_same_as(&self, other: &Scope) -> bool {
        self.to_string().eq_ignore_ascii_case(&other.to_string())
    }
}

impl ResourceId {
    pub fn parse(id: &str) -> Result<ResourceId, ResourceIdError> {
        match parse_scope(id)? {
            Scope::Resource(r) => Ok(*r),
            _ => Err(ResourceIdError {
                id: id.to_string(),
                reason: "this is a scope, not a resource id (no /providers/{Namespace}/{type}/{name} part)".into(),
            }),
        }
    }

    /// Innermost resource name.
    pub fn name(&self) -> &str {
        self.types.last().map(|(_, n)| n.as_str()).unwrap_or("")
    }

    /// Full type, e.g. `Microsoft.ContainerService/managedClusters/agentPools`.
    pub fn resource_type(&self) -> String {
        let mut s = self.namespace.clone();
        for (t, _) in &self.types {
            s.push('/');
            s.push_str(t);
        }
        s
    }

    /// True when the type matches (case-insensitive), e.g. `Microsoft.Authorization/policyAssignments`.
    pub fn is_type(&self, full_type: &str) -> bool {
        self.resource_type().eq_ignore_ascii_case(full_type)
    }

    pub fn is_same_as(&self, other: &ResourceId) -> bool {
        self.to_string().eq_ignore_ascii_case(&other.to_string())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant => f.write_str("/"),
            Scope::ManagementGroup(mg) => {
                write!(f, "/providers/Microsoft.Management/managementGroups/{mg}")
            }
            Scope::Subscription(s) => write!(f, "/subscriptions/{s}"),
            Scope::ResourceGroup {
                subscription_id,
                name,
            } => {
                write!(f, "/subscriptions/{subscription_id}/resourceGroups/{name}")
            }
            Scope::Resource(r) => r.fmt(f),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !matches!(self.parent, Scope::Tenant) {
            self.parent.fmt(f)?;
        }
        write!(f, "/providers/{}", self.namespace)?;
        for (t, n) in &self.types {
            write!(f, "/{t}/{n}")?;
        }
        Ok(())
    }
}

impl FromStr for Scope {
    type Err = ResourceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl FromStr for ResourceId {
    type Err = ResourceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceId::parse(s)
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn parse_scope(id: &str) -> Result<Scope, ResourceIdError> {
    let err = |reason: &str| ResourceIdError {
        id: id.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = id.trim();
    if trimmed == "/" {
        return Ok(Scope::Tenant);
    }
    let rest = trimmed
        .strip_prefix('/')
        .ok_or_else(|| err("must start with '/'"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(err("contains an empty segment ('//')"));
    }
    let mut i;
    let mut scope = if eq(segs[0], "subscriptions") {
        let sub = segs
            .get(1)
            .ok_or_else(|| err("subscriptions needs an id"))?;
        i = 2;
        if segs.get(i).is_some_and(|s| eq(s, "resourceGroups")) {
            let rg = segs
                .get(i + 1)
                .ok_or_else(|| err("resourceGroups needs a name"))?;
            i += 2;
            Scope::ResourceGroup {
                subscription_id: sub.to_string(),
                name: rg.to_string(),
            }
        } else {
            Scope::Subscription(sub.to_string())
        }
    } else if eq(segs[0], "providers")
        && segs.get(1).is_some_and(|s| eq(s, "Microsoft.Management"))
        && segs.get(2).is_some_and(|s| eq(s, "managementGroups"))
    {
        let mg = segs
            .get(3)
            .ok_or_else(|| err("managementGroups needs a name"))?;
        i = 4;
        Scope::ManagementGroup(mg.to_string())
    } else if eq(segs[0], "providers") {
        i = 0;
        Scope::Tenant
    } else {
        return Err(err(&format!("unexpected segment {:?}", segs[0])));
    };
    while i < segs.len() {
        if !eq(segs[i], "providers") {
            return Err(err(&format!("expected 'providers' at {:?}", segs[i])));
        }
        let namespace = segs
            .get(i + 1)
            .ok_or_else(|| err("providers needs a namespace"))?
            .to_string();
        i += 2;
        let mut types = Vec::new();
        while i < segs.len() && !eq(segs[i], "providers") {
            let name = segs
                .get(i + 1)
                .ok_or_else(|| err(&format!("type {:?} has no name", segs[i])))?;
            types.push((segs[i].to_string(), name.to_string()));
            i += 2;
        }
        if types.is_empty() {
            return Err(err(&format!("provider {namespace:?} has no type/name")));
        }
        scope = Scope::Resource(Box::new(ResourceId {
            parent: scope,
            namespace,
            types,
        }));
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_with_canonical_keywords() {
        for (input, canonical) in [
            ("/", "/"),
            (
                "/providers/microsoft.management/managementgroups/MyMg",
                "/providers/Microsoft.Management/managementGroups/MyMg",
            ),
            ("/SUBSCRIPTIONS/abc/", "/subscriptions/abc"),
            (
                "/subscriptions/abc/resourcegroups/rg1",
                "/subscriptions/abc/resourceGroups/rg1",
            ),
        ] {
            let s = Scope::parse(input).unwrap();
            assert_eq!(s.to_string(), canonical);
            assert_eq!(Scope::parse(canonical).unwrap(), s);
        }
    }

    #[test]
    fn resources_nested_and_extension() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks/agentPools/np1";
        let r = ResourceId::parse(id).unwrap();
        assert_eq!(r.name(), "np1");
        assert_eq!(
            r.resource_type(),
            "Microsoft.ContainerService/managedClusters/agentPools"
        );
        assert_eq!(r.to_string(), id);

        let ext = format!(
            "{}/providers/Microsoft.Authorization/policyAssignments/a1",
            &id[..id.find("/agentPools").unwrap()]
        );
        let r = ResourceId::parse(&ext).unwrap();
        assert!(r.is_type("microsoft.authorization/POLICYASSIGNMENTS"));
        assert_eq!(r.name(), "a1");
        match &r.parent {
            Scope::Resource(p) => assert_eq!(p.name(), "aks"),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.parent.subscription_id(), Some("s"));
        assert_eq!(r.to_string(), ext);

        let mg = ResourceId::parse("/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/policyDefinitions/d").unwrap();
        assert_eq!(mg.parent, Scope::ManagementGroup("mg".into()));
        let builtin = ResourceId::parse("/providers/Microsoft.Authorization/policyDefinitions/a8eff44f-8c92-45c3-a3fb-9880802d67a7").unwrap();
        assert_eq!(builtin.parent, Scope::Tenant);
        assert_eq!(builtin.to_string(), "/providers/Microsoft.Authorization/policyDefinitions/a8eff44f-8c92-45c3-a3fb-9880802d67a7");
    }

    #[test]
    fn case_insensitive_comparison() {
        let a = ResourceId::parse(
            "/subscriptions/S/providers/Microsoft.Authorization/policyDefinitions/D",
        )
        .unwrap();
        let b = ResourceId::parse(
            "/subscriptions/s/PROVIDERS/microsoft.authorization/policydefinitions/d",
        )
        .unwrap();
        assert!(a.is_same_as(&b));
        assert!(Scope::parse("/subscriptions/x")
            .unwrap()
            .is_same_as(&Scope::parse("/Subscriptions/X").unwrap()));
    }

    #[test]
    fn errors_show_accepted_forms() {
        for bad in [
            "subscriptions/x",
            "/subscriptions",
            "/subscriptions/x/resourceGroups",
            "/subscriptions/x/providers/Microsoft.Authorization",
            "/subscriptions/x/providers/Microsoft.Authorization/policyDefinitions",
            "/foo/bar",
            "/subscriptions//x",
        ] {
            let e = Scope::parse(bad).unwrap_err().to_string();
            assert!(e.contains("accepted forms"), "{bad}: {e}");
        }
        let e = ResourceId::parse("/subscriptions/x").unwrap_err();
        assert!(e.reason.contains("scope"));
    }
}
