//! Policy RP writes end to end: definitions, set definitions, assignments, exemptions.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::clusters::async_operation;
use super::POLICY_API;
use super::{error_code, signed_in, Emu};

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

/// The tag rule as a custom definition at `scope` (created, asserted); its id.
async fn create_tag_rule(emu: &Emu, token: &str, scope: &str) -> String {
    let def = format!("{scope}/providers/Microsoft.Authorization/policyDefinitions/tagRule");
    let url = format!("{def}?{POLICY_API}");
    let body = Some(&rule_definition());
    emu.expect(token, Method::PUT, &url, body, StatusCode::CREATED)
        .await;
    def
}

#[tokio::test]
async fn custom_definitions_write_validate_and_list() {
    let (emu, token, sub) = signed_in(|_| {}).await;
    let def = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/tagRule");
    let url = format!("{def}?{POLICY_API}");
    for _ in 0..2 {
        let (status, body) = emu.put(&token, &url, &rule_definition()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["properties"]["policyType"], "Custom");
        assert_eq!(body["properties"]["futureField"]["kept"], true);
        assert_eq!(body["id"], def);
        assert!(body["systemData"]["createdAt"].is_string());
    }
    // Lookup ignores case; the response keeps the creator's casing.
    let body = emu
        .get_ok(&token, &format!("{}?{POLICY_API}", def.to_uppercase()))
        .await;
    assert_eq!(body["id"], def);

    let list = format!(
        "{sub}/providers/Microsoft.Authorization/policyDefinitions?{POLICY_API}&$filter={}",
        super::urlencode("policyType eq 'Custom'")
    );
    assert_eq!(emu.count(&token, &list).await, 1);
    let (all, _) = emu
        .list_all(
            &token,
            &format!("{sub}/providers/Microsoft.Authorization/policyDefinitions?{POLICY_API}"),
        )
        .await;
    assert!(all.len() > 5, "built-ins are listed too");

    // Removing a parameter or changing its type is refused.
    let mut removed = rule_definition();
    removed["properties"]["parameters"]
        .as_object_mut()
        .expect("object")
        .remove("effect");
    // While the rule still uses it, the rule is what is wrong; once it does not, the update is.
    let mut unused = removed.clone();
    unused["properties"]["policyRule"]["then"]["effect"] = json!("Audit");
    let mut retyped = rule_definition();
    retyped["properties"]["parameters"]["tagName"]["type"] = json!("Array");
    let refused = |body| (Method::PUT, url.as_str(), Some(body));
    let body = emu
        .expect_error(
            &token,
            refused(&removed),
            StatusCode::BAD_REQUEST,
            "InvalidPolicyParameters",
        )
        .await;
    assert!(
        body.to_string().contains("undefined parameter 'effect'"),
        "{body}"
    );
    for update in [&unused, &retyped] {
        let code = "InvalidPolicyParameterUpdate";
        emu.expect_error(&token, refused(update), StatusCode::BAD_REQUEST, code)
            .await;
    }

    // Shape errors.
    let other =
        format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/bad?{POLICY_API}");
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
        let put = (Method::PUT, other.as_str(), Some(&bad));
        emu.expect_error(&token, put, StatusCode::BAD_REQUEST, code)
            .await;
    }

    emu.delete_twice(&token, &url).await;
    emu.not_found(&token, &url, "PolicyDefinitionNotFound")
        .await;
}

#[tokio::test]
async fn sets_assignments_and_exemptions() {
    let (emu, token, sub) = signed_in(|_| {}).await;
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
    let set_url = format!("{set}?{POLICY_API}");
    let missing_member = set_body(&format!("{def}x"), "tag");
    let put_set = (Method::PUT, set_url.as_str(), Some(&missing_member));
    emu.expect_error(
        &token,
        put_set,
        StatusCode::BAD_REQUEST,
        "PolicyDefinitionNotFound",
    )
    .await;
    let (status, body) = emu.put(&token, &set_url, &set_body(&def, "nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = emu.put(&token, &set_url, &set_body(&def, "tag")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["properties"]["policyDefinitions"][0]["policyDefinitionReferenceId"].is_string());
    let (status, _) = emu.put(&token, &set_url, &set_body(&def, "tag")).await;
    assert_eq!(status, StatusCode::OK);

    // Deleting a definition a set uses fails.
    let def_url = format!("{def}?{POLICY_API}");
    let delete = (Method::DELETE, def_url.as_str(), None);
    let code = "InvalidDeletePolicyDefinitionRequest";
    emu.expect_error(&token, delete, StatusCode::BAD_REQUEST, code)
        .await;

    // Assignments.
    let assignment = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/tagA");
    let a_url = format!("{assignment}?{POLICY_API}");
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
        let put = (Method::PUT, a_url.as_str(), Some(&body));
        emu.expect_error(&token, put, StatusCode::BAD_REQUEST, code)
            .await;
    }
    let mut good = assign(
        &def,
        json!({"tagName": {"value": "owner"}, "effect": {"value": "Deny"}}),
    );
    good["identity"] = json!({"type": "SystemAssigned"});
    let (status, resp) = emu.put(&token, &a_url, &good).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "identity without location: {resp}"
    );
    good["location"] = json!("westeurope");
    let (status, first) = emu.put(&token, &a_url, &good).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(first["identity"]["principalId"].is_string());
    assert_eq!(first["properties"]["scope"], sub);
    assert!(first["properties"]["instanceId"].is_string());
    let (status, second) = emu.put(&token, &a_url, &good).await;
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
    let (status, resp) = emu.put(&token, &a_url, &outside).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");

    // Lists with filters.
    let list = |filter: &str| {
        format!(
            "{sub}/providers/Microsoft.Authorization/policyAssignments?{POLICY_API}&$filter={}",
            super::urlencode(filter)
        )
    };
    for filter in [
        "atScope()",
        "atExactScope()",
        &format!("policyDefinitionId eq '{def}'"),
    ] {
        assert_eq!(emu.count(&token, &list(filter)).await, 1, "{filter}");
    }
    let (items, _) = emu
        .list_all(&token, &list("policyDefinitionId eq '/providers/x'"))
        .await;
    assert!(items.is_empty());

    // Exemptions.
    let exemption =
        format!("{sub}/providers/Microsoft.Authorization/policyExemptions/ex1?{EXEMPTION_API}");
    let expired = json!({"properties": {"policyAssignmentId": assignment,
        "exemptionCategory": "Waiver", "expiresOn": "2020-01-01T00:00:00Z"}});
    let (status, resp) = emu.put(&token, &exemption, &expired).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let (status, _) = emu.put(&token, &exemption, &expired).await;
    assert_eq!(status, StatusCode::OK);
    let ex_list = |filter: &str| {
        format!(
            "{sub}/providers/Microsoft.Authorization/policyExemptions?{EXEMPTION_API}&$filter={}",
            super::urlencode(filter)
        )
    };
    assert_eq!(emu.count(&token, &ex_list("atScope()")).await, 1);
    // A single-definition assignment takes no reference ids.
    let mut with_refs = expired.clone();
    with_refs["properties"]["policyDefinitionReferenceIds"] = json!(["anything"]);
    let put = (Method::PUT, exemption.as_str(), Some(&with_refs));
    let code = "InvalidPolicyDefinitionReferenceId";
    emu.expect_error(&token, put, StatusCode::BAD_REQUEST, code)
        .await;
    // For an initiative, reference ids must be members' (any casing).
    let set_assignment =
        format!("{sub}/providers/Microsoft.Authorization/policyAssignments/tagSet");
    let set_assignment_url = format!("{set_assignment}?{POLICY_API}");
    let tagged = assign(&set, json!({"tag": {"value": "owner"}}));
    let (status, resp) = emu.put(&token, &set_assignment_url, &tagged).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let (_, _, set_body_now) = emu.get(Some(&token), &set_url).await;
    let member_ref = set_body_now["properties"]["policyDefinitions"][0]
        ["policyDefinitionReferenceId"]
        .as_str()
        .expect("reference id")
        .to_string();
    let set_exemption =
        format!("{sub}/providers/Microsoft.Authorization/policyExemptions/ex2?{EXEMPTION_API}");
    for (refs, want) in [
        (json!(["not-a-member"]), StatusCode::BAD_REQUEST),
        (json!([member_ref.to_uppercase()]), StatusCode::CREATED),
    ] {
        let body = json!({"properties": {"policyAssignmentId": set_assignment,
            "exemptionCategory": "Mitigated", "policyDefinitionReferenceIds": refs}});
        let (status, resp) = emu.put(&token, &set_exemption, &body).await;
        assert_eq!(status, want, "{refs}: {resp}");
        if want == StatusCode::BAD_REQUEST {
            assert_eq!(error_code(&resp), "InvalidPolicyDefinitionReferenceId");
        }
    }
    emu.delete(&token, &set_exemption).await;
    emu.delete(&token, &set_assignment_url).await;
    let (items, _) = emu.list_all(&token, &ex_list("excludeExpired()")).await;
    assert!(items.is_empty(), "expired exemptions are filtered out");
    let (status, _) = emu.delete(&token, &exemption).await;
    assert_eq!(status, StatusCode::OK);

    // Deleting the set's assignment target: assignment delete returns the body, then 204.
    let resp = emu.delete_twice(&token, &a_url).await;
    assert_eq!(resp["name"], "tagA");
    emu.not_found(&token, &a_url, "PolicyAssignmentNotFound")
        .await;
}

#[tokio::test]
async fn scopes_hierarchy_and_resource_group_delete() {
    let (emu, token, sub) = signed_in(|_| {}).await;
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
    let got = emu.get_ok(&token, &format!("{mg}?{mg_api}")).await;
    assert_eq!(got["properties"]["displayName"], "Platform");
    let (_, op) = emu
        .poll(&token, &op_url, 100, |status, _, op| {
            if status != StatusCode::OK {
                assert_eq!(status, StatusCode::ACCEPTED, "{op}");
                assert_eq!(op["status"], "Running");
            }
            status == StatusCode::OK
        })
        .await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    assert_eq!(op["properties"]["displayName"], "Platform");
    let child = "/providers/Microsoft.Management/managementGroups/child";
    let below_platform = json!({"properties": {"details": {"parent": {"id": mg}}}});
    let (status, body) = emu
        .put(&token, &format!("{child}?{mg_api}"), &below_platform)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        emu.move_subscription(&token, child, &sub_id).await,
        StatusCode::OK
    );

    // A definition at the grandparent group is visible from a resource group of the subscription.
    let def = create_tag_rule(&emu, &token, mg).await;

    let rg = format!("{sub}/resourceGroups/rg1");
    let assignment = format!("{rg}/providers/Microsoft.Authorization/policyAssignments/a1");
    let assignment_url = format!("{assignment}?{POLICY_API}");
    let body = json!({"properties": {"policyDefinitionId": def, "parameters": {"tagName": {"value": "o"}}}});
    let put = (Method::PUT, assignment_url.as_str(), Some(&body));
    emu.expect_error(&token, put, StatusCode::NOT_FOUND, "ResourceGroupNotFound")
        .await;
    let (status, resp) = emu.put_group(&token, &sub, "rg1").await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");

    // atScope() at the resource group sees a subscription assignment too; the subscription's
    // atScope() list does not see the resource group's.
    let sub_assignment = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/s1");
    for url in [
        assignment_url.clone(),
        format!("{sub_assignment}?{POLICY_API}"),
    ] {
        let (status, resp) = emu.put(&token, &url, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
    }
    let at_scope = |scope: &str| {
        format!(
            "{scope}/providers/Microsoft.Authorization/policyAssignments?{POLICY_API}&$filter={}",
            super::urlencode("atScope()")
        )
    };
    let unfiltered =
        format!("{sub}/providers/Microsoft.Authorization/policyAssignments?{POLICY_API}");
    for (list, want, why) in [
        (at_scope(&rg), 2, "atScope() at the group"),
        (at_scope(&sub), 1, "atScope() at the subscription"),
        (unfiltered, 2, "the unfiltered list includes child scopes"),
    ] {
        assert_eq!(emu.count(&token, &list).await, want, "{why}");
    }

    // Management-group assignment names are limited to 24 characters.
    let long = format!(
        "{mg}/providers/Microsoft.Authorization/policyAssignments/{}?{POLICY_API}",
        "a".repeat(25)
    );
    let (status, resp) = emu.put(&token, &long, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");

    // Deleting the resource group removes its assignment; the delete is a 202 + Location
    // operation that answers 202 until it is done, then 200.
    let rg_url = format!("{rg}?{rg_api}");
    let (status, headers, _) = emu.send(&token, Method::DELETE, &rg_url, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(headers.contains_key("retry-after"));
    let location = headers["location"].to_str().expect("ascii").to_string();
    assert!(
        location.contains(&format!("{sub}/operationresults/")),
        "{location}"
    );
    let (status, _) = emu
        .poll(&token, &location, 100, |status, headers, _| {
            if status != StatusCode::OK {
                assert_eq!(status, StatusCode::ACCEPTED);
                assert!(headers.contains_key("location"));
            }
            status == StatusCode::OK
        })
        .await;
    assert_eq!(status, StatusCode::OK, "the delete never finishes");
    for gone in [&assignment_url, &rg_url] {
        emu.not_found(&token, gone, "ResourceGroupNotFound").await;
    }
}
