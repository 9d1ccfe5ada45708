//! Managed clusters: the LRO shape, eTags, busy conflicts and the policy add-on identity.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::AKS_API;
use super::{signed_in, Emu};

/// A temporary emulator whose long-running operations take `lro_ms`, signed in, with resource
/// group `rg` created.
pub(super) async fn fast_emu(lro_ms: u64) -> (Emu, String, String) {
    let (emu, token, sub) = signed_in(|config| config.faults.lro_ms = lro_ms).await;
    let (status, body) = emu.put_group(&token, &sub, "rg").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (emu, token, sub)
}

/// The Azure-AsyncOperation URL a long-running write answers with.
pub(super) fn async_operation(headers: &reqwest::header::HeaderMap) -> String {
    headers["azure-asyncoperation"]
        .to_str()
        .expect("header")
        .to_string()
}

/// PUTs a new cluster and waits for its operation, as a client of a long-running create does.
pub(super) async fn create_cluster(emu: &Emu, token: &str, url: &str, body: &Value) {
    let (status, headers, body) = emu.send(token, Method::PUT, url, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_operation(emu, token, &async_operation(&headers)).await;
}

/// Polls an Azure-AsyncOperation URL until it reports a terminal status.
pub(super) async fn wait_operation(emu: &Emu, token: &str, url: &str) -> Value {
    let (_, body) = emu
        .poll(token, url, 50, |status, _, body| {
            assert_eq!(status, StatusCode::OK, "{body}");
            body["status"] != "InProgress"
        })
        .await;
    assert_ne!(
        body["status"], "InProgress",
        "operation {url} never finished"
    );
    body
}

/// PATCHes a cluster's tags, the one property ARM changes without a full PUT.
async fn patch_tags(
    emu: &Emu,
    token: &str,
    url: &str,
    tags: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let body = json!({ "tags": tags });
    emu.send(token, Method::PATCH, url, Some(&body)).await
}

/// A PUT with one precondition header (`If-Match` or `If-None-Match`) and its value.
async fn put_with_precondition(
    emu: &Emu,
    token: &str,
    url: &str,
    (header, value): (&str, &str),
    body: &Value,
) -> reqwest::Response {
    emu.client
        .put(format!("{}{url}", emu.base))
        .bearer_auth(token)
        .header(header, value)
        .json(body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn cluster_lifecycle_with_lro_etag_and_addon() {
    let (emu, token, sub) = fast_emu(300).await;
    let cluster = format!(
        "{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1"
    );
    let url = format!("{cluster}?{AKS_API}");
    let body = json!({"location": "westeurope", "properties": {"dnsPrefix": "aks1",
        "agentPoolProfiles": [{"name": "np", "vmSize": "Standard_D2s_v5", "mode": "System"}],
        "addonProfiles": {"azurePolicy": {"enabled": true, "config": {"version": "v2"}}},
        "someFutureProperty": {"x": 1}}, "identity": {"type": "SystemAssigned"}});
    let (status, headers, created) = emu.send(&token, Method::PUT, &url, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["properties"]["provisioningState"], "Creating");
    assert_eq!(created["properties"]["someFutureProperty"]["x"], 1);
    let op_url = async_operation(&headers);
    assert!(headers.contains_key("retry-after"));

    // A write while the operation runs is refused.
    let busy = (Method::PUT, url.as_str(), Some(&body));
    emu.expect_error(&token, busy, StatusCode::CONFLICT, "OperationNotAllowed")
        .await;

    let op = wait_operation(&emu, &token, &op_url).await;
    assert_eq!(op["status"], "Succeeded");
    let got = emu.get_ok(&token, &url).await;
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
    let addon = &got["properties"]["addonProfiles"]["azurePolicy"];
    assert!(addon["identity"]["clientId"].is_string(), "{got}");
    assert!(got["identity"]["principalId"].is_string());

    // eTag preconditions.
    let etag = got["eTag"].as_str().expect("eTag").to_string();
    let mut disable = got.clone();
    disable["properties"]["addonProfiles"] = json!({"AZUREPOLICY": {"enabled": false}});
    let stale = put_with_precondition(&emu, &token, &url, ("If-Match", "\"nope\""), &disable).await;
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let none_match =
        put_with_precondition(&emu, &token, &url, ("If-None-Match", "*"), &disable).await;
    assert_eq!(none_match.status(), StatusCode::PRECONDITION_FAILED);
    let ok = put_with_precondition(&emu, &token, &url, ("If-Match", &etag), &disable).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let op_url = async_operation(ok.headers());
    wait_operation(&emu, &token, &op_url).await;
    let (_, _, got) = emu.get(Some(&token), &url).await;
    let addons = got["properties"]["addonProfiles"]
        .as_object()
        .expect("addons");
    assert!(
        addons.contains_key("AZUREPOLICY"),
        "caller casing kept: {got}"
    );
    assert!(addons["AZUREPOLICY"].get("identity").is_none());

    // PATCH tags, list, DELETE as an LRO.
    let (status, _, patched) = patch_tags(&emu, &token, &url, json!({"env": "dev"})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["tags"]["env"], "dev");
    // The same operation shape as a PUT.
    assert_eq!(patched["properties"]["provisioningState"], "Updating");
    let (status, _, busy) = patch_tags(&emu, &token, &url, json!({"env": "prod"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{busy}");
    let (_, _, got) = emu.get(Some(&token), &url).await;
    assert_eq!(got["tags"]["env"], "dev", "tags are in place while it runs");
    wait_for_state(&emu, &token, &url, "Succeeded").await;
    let clusters = format!("{sub}/providers/Microsoft.ContainerService/managedClusters?{AKS_API}");
    assert_eq!(emu.count(&token, &clusters).await, 1);
    let (status, headers, _) = emu.send(&token, Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = headers["location"].to_str().expect("location").to_string();
    let (status, _, _) = emu.get(Some(&token), &location).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let op_url = async_operation(&headers);
    assert_eq!(
        wait_operation(&emu, &token, &op_url).await["status"],
        "Succeeded"
    );
    let (status, _, _) = emu.get(Some(&token), &location).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    emu.not_found(&token, &url, "ResourceNotFound").await;
    let (status, _) = emu.delete(&token, &url).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn failing_operations_end_failed() {
    let (emu, token, sub) = signed_in(|config| {
        config.faults.lro_ms = 50;
        config.faults.lro_failure_rate = 1.0;
    })
    .await;
    emu.put_group(&token, &sub, "rg").await;
    let url = format!(
        "{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c?{AKS_API}"
    );
    let minimal = json!({"location": "westeurope"});
    let (status, headers, _) = emu.send(&token, Method::PUT, &url, Some(&minimal)).await;
    assert_eq!(status, StatusCode::CREATED);
    let op_url = async_operation(&headers);
    let op = wait_operation(&emu, &token, &op_url).await;
    assert_eq!(op["status"], "Failed");
    assert!(op["error"]["code"].is_string());
    let (_, _, got) = emu.get(Some(&token), &url).await;
    assert_eq!(got["properties"]["provisioningState"], "Failed");
}

/// Polls the cluster until its provisioningState is `want`.
async fn wait_for_state(emu: &Emu, token: &str, url: &str, want: &str) -> Value {
    let (_, body) = emu
        .poll(token, url, 50, |status, _, body| {
            assert_eq!(status, StatusCode::OK, "{body}");
            body["properties"]["provisioningState"] == want
        })
        .await;
    let state = &body["properties"]["provisioningState"];
    assert_eq!(state, want, "cluster {url} never reached {want}");
    body
}

#[tokio::test]
async fn patch_is_long_running_and_abort_cancels() {
    let (emu, token, sub) = fast_emu(60_000).await;
    let url = format!(
        "{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/slow?{AKS_API}"
    );
    let abort = format!(
        "{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/slow/abort?{AKS_API}"
    );
    // Nothing to abort on a missing cluster.
    let (status, body) = emu.post(&token, &abort).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let minimal = json!({"location": "westeurope"});
    let (status, headers, _) = emu.send(&token, Method::PUT, &url, Some(&minimal)).await;
    assert_eq!(status, StatusCode::CREATED);
    let op_url = async_operation(&headers);
    let op = emu.get_ok(&token, &op_url).await;
    assert_eq!(op["status"], "InProgress");

    // Older api-versions have no abort.
    let old_abort = abort.replace(AKS_API, "api-version=2022-09-01");
    let old = (Method::POST, old_abort.as_str(), None);
    emu.expect_error(
        &token,
        old,
        StatusCode::BAD_REQUEST,
        "InvalidApiVersionParameter",
    )
    .await;

    let (status, body) = emu.post(&token, &abort).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let op = wait_operation(&emu, &token, &op_url).await;
    assert_eq!(op["status"], "Canceled", "{op}");
    assert!(op["endTime"].is_string());
    assert!(op["error"]["code"].is_string());
    let (_, _, got) = emu.get(Some(&token), &url).await;
    assert_eq!(got["properties"]["provisioningState"], "Canceled");
    let location = op_url.replacen("/operations/", "/operationresults/", 1);
    let (status, _, _) = emu.get(Some(&token), &location).await;
    assert!(status.is_client_error(), "{status}");

    // Nothing runs any more: 409.
    let idle = (Method::POST, abort.as_str(), None);
    emu.expect_error(&token, idle, StatusCode::CONFLICT, "OperationNotAllowed")
        .await;

    // PATCH starts an operation like PUT, and it can be aborted too.
    let (status, headers, patched) = patch_tags(&emu, &token, &url, json!({"team": "a"})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["properties"]["provisioningState"], "Updating");
    assert_eq!(patched["tags"]["team"], "a");
    assert!(headers.contains_key("retry-after"));
    assert!(headers.contains_key("location"));
    let patch_op = async_operation(&headers);
    let (status, busy) = emu.put(&token, &url, &minimal).await;
    assert_eq!(status, StatusCode::CONFLICT, "{busy}");
    let (status, _) = emu.post(&token, &abort).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        wait_operation(&emu, &token, &patch_op).await["status"],
        "Canceled"
    );
    // A canceled cluster takes writes again.
    let (status, _) = emu.put(&token, &url, &minimal).await;
    assert_eq!(status, StatusCode::OK);
}
