//! Parsing ARM request paths into scope + provider namespace + type/name chain.

use crate::emulator::http::raw_segments;

/// A parsed ARM path. Segments keep the request's casing; comparisons lower-case them.
///
/// `/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/x` parses to scope
/// `[subscriptions, s]`, namespace `Microsoft.Authorization`, types `[policyDefinitions]` and
/// names `[x]`. Extension resources nest: the *last* `providers` segment decides the type.
/// Paths without `providers` (subscriptions, resource groups) use `Microsoft.Resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArmPath {
    pub scope: Vec<String>,
    pub namespace: String,
    pub types: Vec<String>,
    pub names: Vec<String>,
}

/// Namespace used for the provider-less built-in paths.
pub(crate) const RESOURCES_NAMESPACE: &str = "Microsoft.Resources";

impl ArmPath {
    /// Parses decoded path segments; `None` when they do not form an ARM path.
    pub(crate) fn parse(segments: &[String]) -> Option<Self> {
        let providers = segments
            .iter()
            .rposition(|s| s.eq_ignore_ascii_case("providers"));
        let (scope, namespace, chain) = match providers {
            Some(i) if segments.len() >= i + 3 => (
                segments[..i].to_vec(),
                segments[i + 1].clone(),
                &segments[i + 2..],
            ),
            Some(_) => return None,
            None if !segments.is_empty() => (Vec::new(), RESOURCES_NAMESPACE.to_string(), segments),
            None => return None,
        };
        let types = chain.iter().step_by(2).cloned().collect();
        let names = chain.iter().skip(1).step_by(2).cloned().collect();
        Some(Self {
            scope,
            namespace,
            types,
            names,
        })
    }

    /// Parses a resource id (no percent-decoding: ids are decoded already).
    pub(crate) fn parse_id(id: &str) -> Option<Self> {
        let segments: Vec<String> = raw_segments(id).map(str::to_string).collect();
        Self::parse(&segments)
    }

    /// Routing key, e.g. `microsoft.authorization/policydefinitions`.
    pub(crate) fn type_key(&self) -> String {
        let mut key = self.namespace.to_ascii_lowercase();
        for t in &self.types {
            key.push('/');
            key.push_str(&t.to_ascii_lowercase());
        }
        key
    }

    /// Display form of the type for messages, e.g. `policyDefinitions`.
    pub(crate) fn type_display(&self) -> String {
        self.types.join("/")
    }

    /// True when the path names one resource rather than a collection.
    pub(crate) fn is_item(&self) -> bool {
        self.names.len() == self.types.len()
    }

    /// The resource name of an item path.
    pub(crate) fn item_name(&self) -> Option<&str> {
        if self.is_item() {
            self.names.last().map(String::as_str)
        } else {
            None
        }
    }

    /// The scope as an id (`""` for tenant, `/subscriptions/x`, ...).
    pub(crate) fn scope_id(&self) -> String {
        self.scope.iter().map(|s| format!("/{s}")).collect()
    }

    /// The id of the addressed resource or collection in request casing, e.g.
    /// `/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a`; the store key
    /// for an item, the list prefix (plus `/`) for a collection.
    pub(crate) fn resource_id(&self) -> String {
        let mut id = self.scope_id();
        if self.namespace != RESOURCES_NAMESPACE || !self.scope.is_empty() {
            id.push_str("/providers/");
            id.push_str(&self.namespace);
        }
        for (i, t) in self.types.iter().enumerate() {
            id.push('/');
            id.push_str(t);
            if let Some(name) = self.names.get(i) {
                id.push('/');
                id.push_str(name);
            }
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tenant_and_subscription_scopes() {
        let p = ArmPath::parse_id("/providers/Microsoft.Authorization/policyDefinitions/X")
            .expect("parses");
        assert_eq!(p.type_key(), "microsoft.authorization/policydefinitions");
        assert_eq!(p.item_name(), Some("X"));
        assert_eq!(p.scope_id(), "");

        let p = ArmPath::parse_id(
            "/SUBSCRIPTIONS/s1/PROVIDERS/microsoft.authorization/POLICYDEFINITIONS",
        )
        .expect("parses");
        assert_eq!(p.type_key(), "microsoft.authorization/policydefinitions");
        assert!(!p.is_item());
    }

    #[test]
    fn parses_provider_less_and_extension_paths() {
        let p = ArmPath::parse_id("/subscriptions/s1").expect("parses");
        assert_eq!(p.type_key(), "microsoft.resources/subscriptions");
        assert_eq!(p.item_name(), Some("s1"));
        let p = ArmPath::parse_id("/subscriptions").expect("parses");
        assert!(!p.is_item());

        let p = ArmPath::parse_id(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/providers/Microsoft.Authorization/policyAssignments/a",
        )
        .expect("parses");
        assert_eq!(p.type_key(), "microsoft.authorization/policyassignments");
        assert_eq!(p.scope.len(), 8);
        assert_eq!(
            p.resource_id(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/providers/Microsoft.Authorization/policyAssignments/a"
        );
        let sub = ArmPath::parse_id("/subscriptions/s1/resourceGroups/rg").expect("parses");
        assert_eq!(sub.resource_id(), "/subscriptions/s1/resourceGroups/rg");
        assert!(ArmPath::parse_id("/providers/Microsoft.Authorization").is_none());
        let mg = ArmPath::parse_id(
            "/providers/Microsoft.Management/managementGroups/mg1/providers/Microsoft.Authorization/policyDefinitions",
        )
        .expect("parses");
        assert_eq!(mg.scope.len(), 4);
    }
}
