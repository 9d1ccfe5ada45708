//! Policy states and remediations against the add-on DINE built-in.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::clusters::{create_cluster, fast_emu};
use super::Emu;
use super::{ADDON_DINE, AKS_API, INSIGHTS_API, POLICY_API};

/// Clusters without the policy add-on, then the add-on DINE assigned at the subscription with a
/// system-assigned identity; the assignment's id and body.
async fn addon_dine_over_clusters(
    emu: &Emu,
    token: &str,
    sub: &str,
    clusters: [&str; 2],
) -> (String, Value) {
    for name in clusters {
        let url = format!("{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/{name}?{AKS_API}");
        create_cluster(emu, token, &url, &json!({"location": "westeurope"})).await;
    }
    let assignment = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/addon");
    let (status, body) = emu
        .put(
            token,
            &format!("{assignment}?{POLICY_API}"),
            &json!({"location": "westeurope", "identity": {"type": "SystemAssigned"},
                "properties": {"policyDefinitionId": ADDON_DINE}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (assignment, body)
}

/// PUTs remediation `name` of `assignment` at the subscription; its URL and ARM's answer.
async fn put_remediation(
    emu: &Emu,
    token: &str,
    (sub, name): (&str, &str),
    assignment: &str,
) -> (String, StatusCode, Value) {
    let url =
        format!("{sub}/providers/Microsoft.PolicyInsights/remediations/{name}?{INSIGHTS_API}");
    let body = json!({"properties": {"policyAssignmentId": assignment}});
    let (status, answer) = emu.put(token, &url, &body).await;
    (url, status, answer)
}

#[tokio::test]
async fn compliance_remediation_and_trigger_scan() {
    // Long enough that the scan is still running when the first poll arrives on a busy machine.
    let (emu, token, sub) = fast_emu(1500).await;
    let (assignment, body) = addon_dine_over_clusters(&emu, &token, &sub, ["c1", "c2"]).await;
    // Remediation deploys as the assignment's identity: it needs the definition's roles.
    let principal = body["identity"]["principalId"].as_str().expect("principal");
    for role in [
        "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8",
        "18ed5180-3e48-46fd-8541-4ea054d57064",
    ] {
        let url = format!(
            "{sub}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
            uuid::Uuid::new_v4()
        );
        let grant = json!({"properties": {"principalId": principal,
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}")}});
        let (status, body) = emu.put(&token, &url, &grant).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let summarize = format!(
        "{sub}/providers/Microsoft.PolicyInsights/policyStates/latest/summarize?{INSIGHTS_API}"
    );
    let summary = emu.post_ok(&token, &summarize).await;
    let results = &summary["value"][0]["results"];
    assert_eq!(results["nonCompliantResources"], 2, "{summary}");
    assert_eq!(
        summary["value"][0]["policyAssignments"][0]["policyDefinitions"][0]["effect"],
        "deployifnotexists"
    );

    // queryResults pages with @odata.nextLink.
    let query = format!(
        "{sub}/providers/Microsoft.PolicyInsights/policyStates/latest/queryResults?{INSIGHTS_API}&$top=1"
    );
    let page = emu.post_ok(&token, &query).await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["value"][0]["complianceState"], "NonCompliant");
    let next = page["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    let page2 = emu.post_ok(&token, &next).await;
    assert_eq!(page2["value"].as_array().map(Vec::len), Some(1));
    assert!(page2.get("@odata.nextLink").is_none());

    // Remediation: Accepted → ... → Succeeded, and the add-on ends up enabled.
    let fix = (sub.as_str(), "fix");
    let (remediation, status, rem) = put_remediation(&emu, &token, fix, &assignment).await;
    assert_eq!(status, StatusCode::CREATED, "{rem}");
    assert_eq!(rem["properties"]["provisioningState"], "Accepted");
    let (_, last) = emu
        .poll(&token, &remediation, 30, |_, _, r| {
            r["properties"]["provisioningState"] == "Succeeded"
        })
        .await;
    assert_eq!(
        last["properties"]["provisioningState"], "Succeeded",
        "{last}"
    );
    assert_eq!(
        last["properties"]["deploymentStatus"]["successfulDeployments"],
        2
    );
    let summary = emu.post_ok(&token, &summarize).await;
    assert_eq!(
        summary["value"][0]["results"]["nonCompliantResources"], 0,
        "{summary}"
    );

    // Cancel a running remediation.
    let fix2 = (sub.as_str(), "fix2");
    let (second, status, _) = put_remediation(&emu, &token, fix2, &assignment).await;
    assert_eq!(status, StatusCode::CREATED);
    let cancelled = emu.post_ok(&token, &second.replace("?", "/cancel?")).await;
    assert_eq!(cancelled["properties"]["provisioningState"], "Cancelling");
    let remediations =
        format!("{sub}/providers/Microsoft.PolicyInsights/remediations?{INSIGHTS_API}");
    assert_eq!(emu.count(&token, &remediations).await, 2);
    let (status, _) = emu.delete(&token, &second).await;
    assert_eq!(status, StatusCode::OK);

    // triggerEvaluation: 202 + Location, polled to 200.
    let trigger = format!(
        "{sub}/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation?{INSIGHTS_API}"
    );
    let (status, headers, _) = emu.send(&token, Method::POST, &trigger, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = headers["location"].to_str().expect("location").to_string();
    assert!(location.contains("asyncOperationResults"));
    let (status, _, _) = emu.get(Some(&token), &location).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = emu
        .poll(&token, &location, 50, |status, _, _| {
            status != StatusCode::ACCEPTED
        })
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn policy_events_from_evaluation() {
    let (emu, token, sub) = fast_emu(50).await;
    let (assignment, _) = addon_dine_over_clusters(&emu, &token, &sub, ["e1", "e2"]).await;
    let query = |scope: &str, extra: &str| {
        format!("{scope}/providers/Microsoft.PolicyInsights/policyEvents/default/queryResults?{INSIGHTS_API}{extra}")
    };
    // Nothing evaluated yet.
    let page = emu.post_ok(&token, &query(&sub, "")).await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(0));

    let trigger = format!(
        "{sub}/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation?{INSIGHTS_API}"
    );
    let (status, _) = emu.post(&token, &trigger).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Subscription scope, paged with @odata.nextLink.
    let page = emu.post_ok(&token, &query(&sub, "&$top=1")).await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1));
    let event = &page["value"][0];
    assert_eq!(event["policyDefinitionAction"], "deployifnotexists");
    assert_eq!(event["complianceState"], "NonCompliant");
    assert_eq!(event["isCompliant"], false);
    assert_eq!(event["policyAssignmentId"], assignment.as_str());
    assert!(event["timestamp"].is_string());
    let next = page["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    assert!(
        next.contains("%24top=1") || next.contains("$top=1"),
        "{next}"
    );
    let page2 = emu.post_ok(&token, &next).await;
    assert_eq!(page2["value"].as_array().map(Vec::len), Some(1));
    assert!(page2.get("@odata.nextLink").is_none());

    // Resource group, resource and management group (tenant root) scopes.
    let rg = format!("{sub}/resourceGroups/rg");
    let cluster = format!("{rg}/providers/Microsoft.ContainerService/managedClusters/e1");
    let root = format!(
        "/providers/Microsoft.Management/managementGroups/{}",
        emu.running.info().tenant_id
    );
    for (scope, want) in [(rg.as_str(), 2), (cluster.as_str(), 1), (root.as_str(), 2)] {
        let page = emu.post_ok(&token, &query(scope, "")).await;
        assert_eq!(
            page["value"].as_array().map(Vec::len),
            Some(want),
            "{scope}"
        );
    }
    // An assignment-narrowed query and $filter.
    let page = emu.post_ok(&token, &query(&assignment, "")).await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(2));
    let filtered = |f: &str| query(&sub, &format!("&$filter={}", super::urlencode(f)));
    let page = emu
        .post_ok(&token, &filtered("PolicyDefinitionAction eq 'deny'"))
        .await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(0));
    let page = emu
        .post_ok(&token, &filtered(&format!("ResourceId eq '{cluster}'")))
        .await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1));
    let (status, bad) = emu.post(&token, &filtered("startswith(x)")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // Events outlive their resources; only `default` exists.
    let (status, _) = emu.delete(&token, &format!("{cluster}?{AKS_API}")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let page = emu.post_ok(&token, &query(&sub, "")).await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(2));
    let (status, _) = emu
        .post(&token, &query(&sub, "").replace("/default/", "/latest/"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    emu.running.shutdown().await;
}

#[tokio::test]
async fn an_initiative_is_remediated_one_member_at_a_time() {
    let (emu, token, sub) = fast_emu(200).await;
    let assignment = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/pss");
    let (status, body) = emu
        .put(&token, &format!("{assignment}?{POLICY_API}"), &json!({"properties": {"policyDefinitionId":
                "/providers/Microsoft.Authorization/policySetDefinitions/a8640138-9b0a-4a28-b8cb-1666c838647d"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let fix = (sub.as_str(), "fix");
    let (remediation, status, body) = put_remediation(&emu, &token, fix, &assignment).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "InvalidCreateRemediationRequest");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("single policy definition reference ID")),
        "{body}"
    );
    let (status, body) = emu
        .put(
            &token,
            &remediation,
            &json!({"properties": {"policyAssignmentId": assignment,
                "policyDefinitionReferenceId": "ContainerNoPrivilege"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
