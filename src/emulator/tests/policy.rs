//! Policy RP writes end to end: definitions, set definitions, assignments, exemptions.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::clusters::async_operation;
use super::{error_code, start_emu, Emu};

const API: &str = "api-version=2025-03-01";
const EXEMPTION_API: &str = "api-version=2024-12-01-preview";

fn rule_definition() -> Value {
    json!({"properties": {
        "mode": "All",
        "displayName": "Tag rule",
        "metadata": {"category": "Tags"},
        "futureField": {"kept": true},
        "parameters": {
            "tagName": {"type": "String", "metadata": {"displayName": "Tag"}},
            "effect": {"type": "String", "allowedValues": ["Audit", "Deny"], "defaultValue": "Audit"}
        },
        "policyRule": {"if": {"field": "[concat('tags[', parameters('tagName'), ']')]", "exists": "false"},
                        "then": {"effect": "[parameters('effect')]"}}
    }})
}

async fn setup() -> (tempfile::TempDir, Emu, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = start_emu(dir.path(), None).await;
    let token = emu.token().await;
    let sub = format!("/subscriptions/{}", emu.running.info().subscription_id);
    (dir, emu, token, sub)
}

/// The tag rule as a custom definition at `scope` (created, asserted); its id.
async fn create_tag_rule(emu: &Emu, token: &str, scope: &str) -> String {
    let def = format!("{scope}/providers/Microsoft.Authorization/policyDefinitions/tagRule");
    let url = format!("{def}?{API}");
    let body = Some(&rule_definition());
    emu.expect(token, Method::PUT, &url, body, StatusCode::CREATED)
        .await;
    def
}

#[tokio::test]
async fn custom_definitions_write_validate_and_list() {
    let (_dir, emu, token, sub) = setup().await;
    let def = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/tagRule");
    let url = format!("{def}?{API}");
    for _ in 0..2 {
        let (status, _, body) = emu
            .send(&token, Method::PUT, &url, Some(&rule_definition()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["properties"]["policyType"], "Custom");
        assert_eq!(body["properties"]["futureField"]["kept"], true);
        assert_eq!(body["id"], def);
        assert!(body["systemData"]["createdAt"].is_string());
    }
    // Lookup ignores case; the response keeps the creator's casing.
    let (status, _, body) = emu
        .get(Some(&token), &format!("{}?{API}", def.to_uppercase()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], def);

    let list = format!(
        "{sub}/providers/Microsoft.Authorization/policyDefinitions?{API}&$filter={}",
        super::urlencode("policyType eq 'Custom'")
    );
    let (items, _) = emu.list_all(&token, &list).await;
    assert_eq!(items.len(), 1);
    let (all, _) = emu
        .list_all(
            &token,
            &format!("{sub}/providers/Microsoft.Authorization/policyDefinitions?{API}"),
        )
        .await;
    assert!(all.len() > 5, "built-ins are listed too");

    // Removing a parameter or changing its type is refused.
    let mut removed = rule_definition();
    removed["properties"]["parameters"]
        .as_object_mut()
        .expect("object")
        .remove("effect");
    // While the rule still uses it, the rule is what is wrong.
    let (status, _, body) = emu.send(&token, Method::PUT, &url, Some(&removed)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "InvalidPolicyParameters");
    assert!(
        body.to_string().contains("undefined parameter 'effect'"),
        "{body}"
    );
    removed["properties"]["policyRule"]["then"]["effect"] = json!("Audit");
    let (status, _, body) = emu.send(&token, Method::PUT, &url, Some(&removed)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "InvalidPolicyParameterUpdate");
    let mut retyped = rule_definition();
    retyped["properties"]["parameters"]["tagName"]["type"] = json!("Array");
    let (status, _, body) = emu.send(&token, Method::PUT, &url, Some(&retyped)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "InvalidPolicyParameterUpdate");

    // Shape errors.
    let other = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/bad?{API}");
    for (bad, code) in [
        (
            json!({"properties": {"mode": "All", "policyRule": {"if": {"a": 1}, "then": {"effect": "audit"}, "properties": {}}}}),
            "InvalidPolicyRule",
        ),
        (
            json!({"properties": {"mode": "Sometimes", "policyRule": {"if": {"a": 1}, "then": {"effect": "audit"}}}}),
            "InvalidPolicyMode",
        ),
        (
            json!({"properties": {"mode": "Microsoft.Kubernetes.Data", "policyRule": {"if": {"a": 1}, "then": {"effect": "audit", "details": {"kinds": ["Pod"]}}}}}),
            "InvalidPolicyRule",
        ),
        (
            json!({"properties": {"mode": "Microsoft.Kubernetes.Data", "policyRule": {"if": {"a": 1}, "then": {"effect": "audit", "details": {
            "templateInfo": {"sourceType": "PublicURL", "url": "https://x/t.yaml"}, "apiGroups": [""], "kinds": ["*"]}}}}}),
            "InvalidPolicyRule",
        ),
        (json!("not an object"), "InvalidRequestContent"),
    ] {
        let (status, _, body) = emu.send(&token, Method::PUT, &other, Some(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_code(&body), code, "{bad}");
    }

    emu.delete_twice(&token, &url).await;
    let (status, _, body) = emu.get(Some(&token), &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "PolicyDefinitionNotFound");
}

#[tokio::test]
async fn sets_assignments_and_exemptions() {
    let (_dir, emu, token, sub) = setup().await;
    let def = create_tag_rule(&emu, &token, &sub).await;

    // Set definitions: members must exist; parameter references must be declared.
    let set = format!("{sub}/providers/Microsoft.Authorization/policySetDefinitions/tags");
    let set_body = |member: &str, param_ref: &str| {
        json!({"properties": {
            "displayName": "Tags",
            "parameters": {"tag": {"type": "String"}},
            "policyDefinitions": [{"policyDefinitionId": member,
                "parameters": {"tagName": {"value": format!("[parameters('{param_ref}')]")}}}]
        }})
    };
    let set_url = format!("{set}?{API}");
    let (status, _, body) = emu
        .send(
            &token,
            Method::PUT,
            &set_url,
            Some(&set_body(&format!("{def}x"), "tag")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "PolicyDefinitionNotFound");
    let (status, _, body) = emu
        .send(&token, Method::PUT, &set_url, Some(&set_body(&def, "nope")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, body) = emu
        .send(&token, Method::PUT, &set_url, Some(&set_body(&def, "tag")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["properties"]["policyDefinitions"][0]["policyDefinitionReferenceId"].is_string());
    let (status, _, _) = emu
        .send(&token, Method::PUT, &set_url, Some(&set_body(&def, "tag")))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Deleting a definition a set uses fails.
    let (status, _, body) = emu
        .send(&token, Method::DELETE, &format!("{def}?{API}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "InvalidDeletePolicyDefinitionRequest");

    // Assignments.
    let assignment = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/tagA");
    let a_url = format!("{assignment}?{API}");
    let assign = |def_id: &str, params: Value| json!({"properties": {"policyDefinitionId": def_id, "parameters": params}});
    for (body, code) in [
        (
            assign(&format!("{def}x"), json!({})),
            "PolicyDefinitionNotFound",
        ),
        (assign(&def, json!({})), "MissingPolicyParameter"),
        (
            assign(
                &def,
                json!({"tagName": {"value": "x"}, "other": {"value": 1}}),
            ),
            "UndefinedPolicyParameter",
        ),
        (
            assign(&def, json!({"tagName": {"value": 3}})),
            "InvalidPolicyParameters",
        ),
        (
            assign(
                &def,
                json!({"tagName": {"value": "x"}, "effect": {"value": "audit"}}),
            ),
            "InvalidPolicyParameters",
        ),
    ] {
        let (status, _, resp) = emu.send(&token, Method::PUT, &a_url, Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(error_code(&resp), code, "{body}");
    }
    let mut good = assign(
        &def,
        json!({"tagName": {"value": "owner"}, "effect": {"value": "Deny"}}),
    );
    good["identity"] = json!({"type": "SystemAssigned"});
    let (status, _, resp) = emu.send(&token, Method::PUT, &a_url, Some(&good)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "identity without location: {resp}"
    );
    good["location"] = json!("westeurope");
    let (status, _, first) = emu.send(&token, Method::PUT, &a_url, Some(&good)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(first["identity"]["principalId"].is_string());
    assert_eq!(first["properties"]["scope"], sub);
    assert!(first["properties"]["instanceId"].is_string());
    let (status, _, second) = emu.send(&token, Method::PUT, &a_url, Some(&good)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        second["identity"]["principalId"],
        first["identity"]["principalId"]
    );
    assert_eq!(
        second["properties"]["instanceId"],
        first["properties"]["instanceId"]
    );

    // notScopes must lie under the scope.
    let mut outside = good.clone();
    outside["properties"]["notScopes"] =
        json!(["/subscriptions/00000000-0000-0000-0000-000000000000"]);
    let (status, _, resp) = emu.send(&token, Method::PUT, &a_url, Some(&outside)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");

    // Lists with filters.
    let list = |filter: &str| {
        format!(
            "{sub}/providers/Microsoft.Authorization/policyAssignments?{API}&$filter={}",
            super::urlencode(filter)
        )
    };
    for filter in [
        "atScope()",
        "atExactScope()",
        &format!("policyDefinitionId eq '{def}'"),
    ] {
        let (items, _) = emu.list_all(&token, &list(filter)).await;
        assert_eq!(items.len(), 1, "{filter}");
    }
    let (items, _) = emu
        .list_all(&token, &list("policyDefinitionId eq '/providers/x'"))
        .await;
    assert!(items.is_empty());

    // Exemptions.
    let exemption = format!("{sub}/providers/Microsoft.Authorization/policyExemptions/ex1");
    let ex_body = |expires: &str| json!({"properties": {"policyAssignmentId": assignment, "exemptionCategory": "Waiver", "expiresOn": expires}});
    let (status, _, resp) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{exemption}?{EXEMPTION_API}"),
            Some(&ex_body("2020-01-01T00:00:00Z")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let (status, _, _) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{exemption}?{EXEMPTION_API}"),
            Some(&ex_body("2020-01-01T00:00:00Z")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ex_list = |filter: &str| {
        format!(
            "{sub}/providers/Microsoft.Authorization/policyExemptions?{EXEMPTION_API}&$filter={}",
            super::urlencode(filter)
        )
    };
    let (items, _) = emu.list_all(&token, &ex_list("atScope()")).await;
    assert_eq!(items.len(), 1);
    // A single-definition assignment takes no reference ids.
    let mut with_refs = ex_body("2020-01-01T00:00:00Z");
    with_refs["properties"]["policyDefinitionReferenceIds"] = json!(["anything"]);
    let (status, _, resp) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{exemption}?{EXEMPTION_API}"),
            Some(&with_refs),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    assert_eq!(error_code(&resp), "InvalidPolicyDefinitionReferenceId");
    // For an initiative, reference ids must be members' (any casing).
    let set_assignment =
        format!("{sub}/providers/Microsoft.Authorization/policyAssignments/tagSet");
    let (status, _, resp) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{set_assignment}?{API}"),
            Some(&assign(&set, json!({"tag": {"value": "owner"}}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let (_, _, set_body_now) = emu.get(Some(&token), &set_url).await;
    let member_ref = set_body_now["properties"]["policyDefinitions"][0]
        ["policyDefinitionReferenceId"]
        .as_str()
        .expect("reference id")
        .to_string();
    let set_exemption = format!("{sub}/providers/Microsoft.Authorization/policyExemptions/ex2");
    for (refs, want) in [
        (json!(["not-a-member"]), StatusCode::BAD_REQUEST),
        (json!([member_ref.to_uppercase()]), StatusCode::CREATED),
    ] {
        let body = json!({"properties": {"policyAssignmentId": set_assignment,
            "exemptionCategory": "Mitigated", "policyDefinitionReferenceIds": refs}});
        let (status, _, resp) = emu
            .send(
                &token,
                Method::PUT,
                &format!("{set_exemption}?{EXEMPTION_API}"),
                Some(&body),
            )
            .await;
        assert_eq!(status, want, "{refs}: {resp}");
        if want == StatusCode::BAD_REQUEST {
            assert_eq!(error_code(&resp), "InvalidPolicyDefinitionReferenceId");
        }
    }
    emu.send(
        &token,
        Method::DELETE,
        &format!("{set_exemption}?{EXEMPTION_API}"),
        None,
    )
    .await;
    emu.send(
        &token,
        Method::DELETE,
        &format!("{set_assignment}?{API}"),
        None,
    )
    .await;
    let (items, _) = emu.list_all(&token, &ex_list("excludeExpired()")).await;
    assert!(items.is_empty(), "expired exemptions are filtered out");
    let (status, _, _) = emu
        .send(
            &token,
            Method::DELETE,
            &format!("{exemption}?{EXEMPTION_API}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Deleting the set's assignment target: assignment delete returns the body, then 204.
    let resp = emu.delete_twice(&token, &a_url).await;
    assert_eq!(resp["name"], "tagA");
    let (status, _, resp) = emu.get(Some(&token), &a_url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&resp), "PolicyAssignmentNotFound");
}

#[tokio::test]
async fn scopes_hierarchy_and_resource_group_delete() {
    let (_dir, emu, token, sub) = setup().await;
    let sub_id = emu.running.info().subscription_id.clone();
    let mg_api = "api-version=2021-04-01";
    let rg_api = "api-version=2021-04-01";
    let mg = "/providers/Microsoft.Management/managementGroups/platform";
    // A management group create is a long-running operation; the group exists at once.
    let (status, headers, body) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{mg}?{mg_api}"),
            Some(&json!({"properties": {"displayName": "Platform"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "Running", "{body}");
    assert_eq!(body["name"], "create");
    let op_url = async_operation(&headers);
    assert_eq!(headers["location"], op_url.as_str());
    assert!(
        op_url.contains("/providers/Microsoft.Management/operationResults/create/managementGroups/platform?api-version="),
        "{op_url}"
    );
    assert!(headers.contains_key("retry-after"));
    let (status, _, got) = emu.get(Some(&token), &format!("{mg}?{mg_api}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["properties"]["displayName"], "Platform");
    let mut op = Value::Null;
    let patience = super::Patience::new();
    while patience.lasts() {
        let (status, _, body) = emu.get(Some(&token), &op_url).await;
        op = body;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::ACCEPTED, "{op}");
        assert_eq!(op["status"], "Running");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(op["status"], "Succeeded", "{op}");
    assert_eq!(op["properties"]["displayName"], "Platform");
    let child = "/providers/Microsoft.Management/managementGroups/child";
    let (status, _, body) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{child}?{mg_api}"),
            Some(&json!({"properties": {"details": {"parent": {"id": mg}}}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _, _) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{child}/subscriptions/{sub_id}?{mg_api}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A definition at the grandparent group is visible from a resource group of the subscription.
    let def = create_tag_rule(&emu, &token, mg).await;

    let rg = format!("{sub}/resourceGroups/rg1");
    let assignment = format!("{rg}/providers/Microsoft.Authorization/policyAssignments/a1");
    let body = json!({"properties": {"policyDefinitionId": def, "parameters": {"tagName": {"value": "o"}}}});
    let (status, _, resp) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{assignment}?{API}"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{resp}");
    assert_eq!(error_code(&resp), "ResourceGroupNotFound");
    let (status, _, resp) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{rg}?{rg_api}"),
            Some(&json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let (status, _, resp) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{assignment}?{API}"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");

    // atScope() at the resource group sees a subscription assignment too; the subscription's
    // atScope() list does not see the resource group's.
    let sub_assignment = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/s1");
    let (status, _, resp) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{sub_assignment}?{API}"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let at_scope = |scope: &str| {
        format!(
            "{scope}/providers/Microsoft.Authorization/policyAssignments?{API}&$filter={}",
            super::urlencode("atScope()")
        )
    };
    let (items, _) = emu.list_all(&token, &at_scope(&rg)).await;
    assert_eq!(items.len(), 2);
    let (items, _) = emu.list_all(&token, &at_scope(&sub)).await;
    assert_eq!(items.len(), 1);
    let (items, _) = emu
        .list_all(
            &token,
            &format!("{sub}/providers/Microsoft.Authorization/policyAssignments?{API}"),
        )
        .await;
    assert_eq!(items.len(), 2, "the unfiltered list includes child scopes");

    // Management-group assignment names are limited to 24 characters.
    let long = format!(
        "{mg}/providers/Microsoft.Authorization/policyAssignments/{}?{API}",
        "a".repeat(25)
    );
    let (status, _, resp) = emu.send(&token, Method::PUT, &long, Some(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");

    // Deleting the resource group removes its assignment; the delete is a 202 + Location
    // operation that answers 202 until it is done, then 200.
    let (status, headers, _) = emu
        .send(&token, Method::DELETE, &format!("{rg}?{rg_api}"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(headers.contains_key("retry-after"));
    let location = headers["location"].to_str().expect("ascii").to_string();
    assert!(
        location.contains(&format!("{sub}/operationresults/")),
        "{location}"
    );
    let mut polls = 0;
    loop {
        let (status, headers, _) = emu.get(Some(&token), &location).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(headers.contains_key("location"));
        polls += 1;
        assert!(polls < 100, "the delete never finishes");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _, resp) = emu.get(Some(&token), &format!("{assignment}?{API}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&resp), "ResourceGroupNotFound");
    let (status, _, resp) = emu.get(Some(&token), &format!("{rg}?{rg_api}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&resp), "ResourceGroupNotFound");
}
