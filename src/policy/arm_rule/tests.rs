use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::*;
use crate::policy::constraint::effective_parameters;

use crate::policy::kubernetes::MANAGED_CLUSTERS as CLUSTER_TYPE;

fn builtin(file: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/specs/azure-policy/built-in-policies/policyDefinitions/Kubernetes")
        .join(file);
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).expect("built-in is JSON"))
}

fn cluster(properties: Value) -> Value {
    json!({
        "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1",
        "name": "aks1",
        "type": CLUSTER_TYPE,
        "location": "westeurope",
        "tags": {"env": "Prod", "dotted.key": "x"},
        "sku": {"name": "Base", "tier": "Free"},
        "properties": properties,
    })
}

/// Evaluates a definition (its effect's default, or `effect`) against `resource`, where the
/// only related resource an `…IfNotExists` rule can find is `resource` itself.
fn verdict(definition: &Value, resource: &Value, effect: Option<&str>) -> Outcome {
    let props = &definition["properties"];
    let params = effective_parameters(props.get("parameters"), &Map::new());
    let ctx = RuleContext::default();
    let ev = Evaluator::new(resource, &params, &ctx);
    let rule = &props["policyRule"];
    let effect = match effect {
        Some(e) => Effect::parse(e).expect("effect"),
        None => ev.effect(rule).expect("effect"),
    };
    let me = resource.clone();
    ev.outcome(rule, effect, &|q: &RelatedQuery| {
        let same_type = q.resource_type.eq_ignore_ascii_case(CLUSTER_TYPE);
        let same_name = q
            .name
            .as_deref()
            .is_none_or(|n| me["name"].as_str() == Some(n));
        if same_type && same_name {
            vec![me.clone()]
        } else {
            vec![]
        }
    })
    .expect("evaluates")
}

/// Each ARM-mode AKS built-in: (file, compliant cluster properties, non-compliant ones).
fn aks_builtin_cases() -> Vec<(&'static str, Value, Value)> {
    vec![
        (
            "AKS_AzurePolicyAddOn_DINE.json",
            json!({"addonProfiles": {"azurepolicy": {"enabled": true}}}),
            json!({"addonProfiles": {"azurepolicy": {"enabled": false}}}),
        ),
        (
            "AKS_AzurePolicyAddOn_Audit.json",
            json!({"addonProfiles": {"azurePolicy": {"enabled": true}}}),
            json!({"addonProfiles": {}}),
        ),
        (
            "AKS_DisableLocalAccounts_Deny.json",
            json!({"disableLocalAccounts": true}),
            json!({"disableLocalAccounts": false}),
        ),
        (
            "AKS_ImageCleaner_DINE.json",
            json!({"securityProfile": {"imageCleaner": {"enabled": true, "intervalHours": 24}}}),
            json!({"securityProfile": {}}),
        ),
        (
            "ASC_Azure_Defender_AKS_SecurityProfile_Audit.json",
            json!({"securityProfile": {"defender": {"securityMonitoring": {"enabled": true}}}}),
            json!({"securityProfile": {"defender": {"securityMonitoring": {"enabled": false}}}}),
        ),
        (
            "ASC_Azure_Defender_AKS_SecurityProfile_DINE.json",
            json!({"securityProfile": {"defender": {"securityMonitoring": {"enabled": true}}}}),
            json!({}),
        ),
    ]
}

#[test]
fn aks_builtins_from_specs_judge_compliant_and_non_compliant_clusters() {
    let mut seen = 0;
    for (file, good, bad) in aks_builtin_cases() {
        let Some(def) = builtin(file) else {
            eprintln!("note: {file} not found under ../shared/specs; skipped");
            continue;
        };
        seen += 1;
        let ok = verdict(&def, &cluster(good), None);
        assert!(ok.compliant, "{file}: compliant cluster judged {ok:?}");
        let ko = verdict(&def, &cluster(bad), None);
        assert!(
            ko.matched && !ko.compliant,
            "{file}: non-compliant cluster judged {ko:?}"
        );
        // A resource of another type is out of the rule's reach.
        let rg = json!({"id": "/subscriptions/s1/resourceGroups/rg", "name": "rg",
            "type": "Microsoft.Resources/subscriptions/resourceGroups", "location": "westeurope"});
        assert!(!verdict(&def, &rg, None).matched, "{file}");
    }
    if seen == 0 {
        eprintln!("note: no AKS built-ins found; ../shared/specs is missing");
    }
}

#[test]
fn every_aks_alias_in_the_builtins_is_in_the_table() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/specs/azure-policy/built-in-policies/policyDefinitions/Kubernetes");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let re = regex::Regex::new(r#""(Microsoft\.ContainerService/managedClusters/[^"]+)""#)
        .expect("regex");
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for cap in re.captures_iter(&text) {
            let a = &cap[1];
            assert!(
                matches!(
                    alias::resolve(a, CLUSTER_TYPE),
                    Some(alias::FieldPath::Body(_))
                ),
                "alias {a} of {:?} is not in the table",
                e.path()
            );
        }
    }
}

fn eval(rule_if: Value, resource: &Value, params: Value) -> Result<bool, ArmRuleError> {
    let params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
    let ctx = RuleContext {
        resource_group: Some(json!({"name": "rg", "location": "westeurope"})),
        subscription: Some(json!({"subscriptionId": "s1"})),
        ..Default::default()
    };
    Evaluator::new(resource, &params, &ctx).matches(&rule_if)
}

fn pools() -> Value {
    cluster(json!({"agentPoolProfiles": [
        {"name": "sys", "mode": "System", "vmSize": "Standard_D4s_v5", "enableEncryptionAtHost": true, "count": 3},
        {"name": "user", "mode": "User", "vmSize": "Standard_D8s_v5", "enableEncryptionAtHost": false, "count": 5}
    ]}))
}

#[test]
fn top_level_fields_and_tags() {
    let c = cluster(json!({}));
    let cases = [
        (
            json!({"field": "type", "equals": "microsoft.containerservice/MANAGEDclusters"}),
            true,
        ),
        (
            json!({"field": "location", "in": ["eastus", "WestEurope"]}),
            true,
        ),
        (json!({"field": "tags['env']", "equals": "prod"}), true),
        (json!({"field": "tags.env", "like": "Pr*"}), true),
        (json!({"field": "tags['dotted.key']", "exists": true}), true),
        (json!({"field": "tags", "containsKey": "ENV"}), true),
        (json!({"field": "tags", "notContainsKey": "owner"}), true),
        (json!({"field": "tags['owner']", "exists": "false"}), true),
        (json!({"field": "name", "match": "aks#"}), true),
        (json!({"field": "name", "match": "AKS#"}), false),
        (json!({"field": "name", "matchInsensitively": "AKS#"}), true),
        (
            json!({"field": "id", "contains": "/RESOURCEGROUPS/rg/"}),
            true,
        ),
        (
            json!({"field": "Microsoft.ContainerService/managedClusters/sku.tier", "equals": "free"}),
            true,
        ),
    ];
    for (condition, expected) in cases {
        assert_eq!(
            eval(condition.clone(), &c, json!({})).unwrap(),
            expected,
            "{condition}"
        );
    }
}

#[test]
fn array_aliases_need_every_element_and_count_counts() {
    let c = pools();
    let all_encrypted = json!({"field": "Microsoft.ContainerService/managedClusters/agentPoolProfiles[*].enableEncryptionAtHost", "equals": true});
    assert!(!eval(all_encrypted.clone(), &c, json!({})).unwrap());
    let none_pools = cluster(json!({"agentPoolProfiles": []}));
    assert!(
        eval(all_encrypted, &none_pools, json!({})).unwrap(),
        "empty array: vacuously true"
    );
    let unencrypted = json!({"count": {
        "field": "Microsoft.ContainerService/managedClusters/agentPoolProfiles[*]",
        "where": {"allOf": [
            {"field": "Microsoft.ContainerService/managedClusters/agentPoolProfiles[*].enableEncryptionAtHost", "notEquals": true},
            {"field": "Microsoft.ContainerService/managedClusters/agentPoolProfiles[*].count", "greaterOrEquals": 5}
        ]}}, "equals": 1});
    assert!(eval(unencrypted, &c, json!({})).unwrap());
    let total = json!({"count": {"field": "Microsoft.ContainerService/managedClusters/agentPoolProfiles[*]"}, "equals": 2});
    assert!(eval(total, &c, json!({})).unwrap());
    let by_current = json!({"count": {
        "field": "Microsoft.ContainerService/managedClusters/agentPoolProfiles[*]",
        "where": {"value": "[current('Microsoft.ContainerService/managedClusters/agentPoolProfiles[*].vmSize')]", "like": "*D8s*"}}, "equals": 1});
    assert!(eval(by_current, &c, json!({})).unwrap());
    let value_count = json!({"count": {"value": "[parameters('sizes')]", "name": "size",
        "where": {"value": "[contains(field('Microsoft.ContainerService/managedClusters/agentPoolProfiles[*].vmSize'), current('size'))]", "equals": true}},
        "equals": 2});
    assert!(eval(
        value_count,
        &c,
        json!({"sizes": ["Standard_D4s_v5", "standard_d8s_v5", "Standard_B2s"]})
    )
    .unwrap());
}

#[test]
fn operators_and_missing_values() {
    let c = cluster(json!({"kubernetesVersion": "1.29.2", "maxPods": 30}));
    let v = "Microsoft.ContainerService/managedClusters/kubernetesVersion";
    let missing = "Microsoft.ContainerService/managedClusters/disableLocalAccounts";
    let cases = [
        (json!({"field": v, "greater": "1.28"}), json!({}), true),
        (json!({"field": v, "notLike": "1.27*"}), json!({}), true),
        (json!({"field": v, "notIn": ["1.28.0"]}), json!({}), true),
        (json!({"field": v, "notContains": "1.30"}), json!({}), true),
        (json!({"field": missing, "equals": false}), json!({}), false),
        (
            json!({"field": missing, "notEquals": true}),
            json!({}),
            true,
        ),
        (json!({"field": missing, "less": 5}), json!({}), false),
        (
            json!({"not": {"field": missing, "exists": true}}),
            json!({}),
            true,
        ),
        (
            json!({"value": 30, "lessOrEquals": "[parameters('max')]"}),
            json!({"max": 30}),
            true,
        ),
        (
            json!({"anyOf": [{"value": "a", "equals": "b"}, {"value": "[[literal", "equals": "[literal"}]}),
            json!({}),
            true,
        ),
    ];
    for (condition, params, expected) in cases {
        assert_eq!(
            eval(condition.clone(), &c, params).unwrap(),
            expected,
            "{condition}"
        );
    }
}

#[test]
fn template_functions() {
    let c = cluster(json!({}));
    let t = |e: &str| {
        eval(
            json!({"value": e, "equals": true}),
            &c,
            json!({"prefix": "AKS", "list": ["a", "b"]}),
        )
        .unwrap_or_else(|err| panic!("{e}: {err}"))
    };
    for expression in [
        "[equals(toLower(concat(parameters('prefix'), '1')), field('name'))]",
        "[equals(toUpper(field('name')), 'AKS1')]",
        "[if(empty(field('tags.missing')), true, false)]",
        "[equals(length(split(field('id'), '/')), 9)]",
        "[equals(last(split(field('id'), '/')), 'aks1')]",
        "[equals(first(parameters('list')), 'a')]",
        "[equals(substring(field('name'), 0, 3), 'aks')]",
        "[equals(replace(field('name'), 'aks', 'k8s'), 'k8s1')]",
        "[and(contains(parameters('list'), 'b'), not(contains(parameters('list'), 'c')))]",
        "[or(false(), equals(int('42'), 42))]",
        "[equals(string(bool('true')), 'true')]",
        "[equals(coalesce(field('tags.none'), 'd'), 'd')]",
        "[equals(resourceGroup().name, 'rg')]",
        "[equals(subscription().subscriptionId, 's1')]",
        "[equals(field('tags')['env'], 'Prod')]",
        "[ipRangeContains('10.0.0.0/8', '10.1.2.0/24')]",
        // Lazy `if`: the untaken branch is not evaluated.
        "[if(true, true, unknownFn())]",
    ] {
        assert!(t(expression), "{expression}");
    }
}

#[test]
fn errors_are_typed() {
    let c = cluster(json!({}));
    assert_eq!(
        eval(
            json!({"value": "[frobnicate(1)]", "equals": 1}),
            &c,
            json!({})
        ),
        Err(ArmRuleError::UnknownFunction("frobnicate".into()))
    );
    assert_eq!(
        eval(
            json!({"field": "Microsoft.ContainerService/managedClusters/noSuchThing", "exists": true}),
            &c,
            json!({})
        ),
        Err(ArmRuleError::UnknownAlias(
            "Microsoft.ContainerService/managedClusters/noSuchThing".into()
        ))
    );
    assert!(matches!(
        eval(json!({"value": "[concat('a']", "equals": 1}), &c, json!({})),
        Err(ArmRuleError::Syntax { .. })
    ));
    assert!(matches!(
        eval(
            json!({"value": "[parameters('nope')]", "equals": 1}),
            &c,
            json!({})
        ),
        Err(ArmRuleError::MissingParameter(_))
    ));
    assert!(matches!(
        eval(json!({"field": "name", "sortOf": 1}), &c, json!({})),
        Err(ArmRuleError::InvalidCondition(_))
    ));
    // Aliases of other resource types do not apply to a cluster: they read as missing.
    assert!(eval(
        json!({"field": "Microsoft.Storage/storageAccounts/minimumTlsVersion", "exists": false}),
        &c,
        json!({})
    )
    .unwrap());
    // Short-circuit: a type guard keeps foreign aliases from being read.
    assert!(!eval(json!({"allOf": [{"field": "type", "equals": "Microsoft.Storage/storageAccounts"}, {"value": "[bad(]", "equals": 1}]}), &c, json!({})).unwrap());
    let deep = (0..200).fold(
        json!({"value": 1, "equals": 1}),
        |acc, _| json!({"not": acc}),
    );
    assert!(matches!(
        eval(deep, &c, json!({})),
        Err(ArmRuleError::InvalidCondition(_))
    ));
}

#[test]
fn modify_checks_whether_operations_would_change_the_resource() {
    let c = cluster(json!({"disableLocalAccounts": false}));
    let rule = json!({"if": {"field": "type", "equals": CLUSTER_TYPE},
        "then": {"effect": "modify", "details": {"roleDefinitionIds": [], "operations": [
            {"operation": "addOrReplace", "field": "Microsoft.ContainerService/managedClusters/disableLocalAccounts", "value": true}]}}});
    let params = Map::new();
    let ctx = RuleContext::default();
    let none = |_: &RelatedQuery| Vec::new();
    let out = Evaluator::new(&c, &params, &ctx)
        .outcome(&rule, Effect::Modify, &none)
        .unwrap();
    assert!(out.matched && !out.compliant);
    let fixed = cluster(json!({"disableLocalAccounts": true}));
    assert!(
        Evaluator::new(&fixed, &params, &ctx)
            .outcome(&rule, Effect::Modify, &none)
            .unwrap()
            .compliant
    );
    let tag_rule = json!({"if": {"field": "type", "equals": CLUSTER_TYPE},
        "then": {"effect": "modify", "details": {"operations": [{"operation": "add", "field": "tags['env']", "value": "x"}]}}});
    assert!(
        Evaluator::new(&c, &params, &ctx)
            .outcome(&tag_rule, Effect::Modify, &none)
            .unwrap()
            .compliant
    );
}
