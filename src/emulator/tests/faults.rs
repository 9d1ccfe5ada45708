//! The `/_emulator/` control API: fault profile, metrics, state dump, reset.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::RESOURCES_API;
use super::{bearer_challenge, error_code, signed_in};

const SUBSCRIPTION_API: &str = "api-version=2022-12-01";

#[tokio::test]
async fn control_api_and_injected_faults() {
    let (emu, token, sub) = signed_in(|_| {}).await;
    let subscription = format!("{sub}?{SUBSCRIPTION_API}");

    let (status, _, _) = emu.get(None, "/_emulator/faults").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let profile = emu.get_ok(&token, "/_emulator/faults").await;
    assert_eq!(profile["throttle"], false);
    assert!(profile["lro_ms"].is_u64());
    let (status, bad) = emu.set_faults(&token, json!({"error_rate": 3.0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // Throttling: the read bucket holds 250.
    let (status, profile) = emu.set_faults(&token, json!({"throttle": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["throttle"], true);
    assert_eq!(profile["error_rate"], 0.0, "omitted keys unchanged");
    let mut throttled = None;
    let patience = super::Patience::new();
    while throttled.is_none() && patience.lasts() {
        // Bursts of concurrent reads drain the bucket faster than it refills (25/s), however
        // slow a single request is on a loaded machine.
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let request = emu
                .client
                .get(format!("{}{subscription}", emu.base))
                .bearer_auth(&token);
            burst.spawn(async move {
                let resp = request.send().await.expect("request");
                let status = resp.status();
                let headers = resp.headers().clone();
                (
                    status,
                    headers,
                    resp.json::<Value>().await.unwrap_or(Value::Null),
                )
            });
        }
        while let Some(done) = burst.join_next().await {
            let (status, headers, body) = done.expect("read task");
            if status == StatusCode::TOO_MANY_REQUESTS {
                throttled.get_or_insert((headers, body));
            } else {
                assert_eq!(status, StatusCode::OK);
            }
        }
    }
    let (headers, body) = throttled.expect("reads get throttled");
    assert_eq!(headers["x-ms-ratelimit-remaining-subscription-reads"], "0");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(error_code(&body), "SubscriptionRequestsThrottled");
    emu.set_faults(&token, json!({"throttle": false})).await;

    // Random errors at rate 1.
    emu.set_faults(&token, json!({"error_rate": 1.0})).await;
    let (status, headers, _) = emu.get(Some(&token), &subscription).await;
    assert!(
        status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(headers["x-ms-emulator-injected"], "true");
    emu.set_faults(&token, json!({"error_rate": 0.0})).await;

    // Eventual consistency: a GET right after the PUT answers 404.
    emu.set_faults(&token, json!({"consistency_ms": 60000}))
        .await;
    let rg = format!("{sub}/resourceGroups/rg1?{RESOURCES_API}");
    let (status, _) = emu.put_group(&token, &sub, "rg1").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = emu.get(Some(&token), &rg).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    emu.set_faults(&token, json!({"consistency_ms": 0})).await;
    emu.get_ok(&token, &rg).await;

    // Dropped connections: the client sees a broken response.
    emu.set_faults(&token, json!({"drop_rate": 1.0})).await;
    let result = async {
        let resp = emu
            .client
            .get(format!("{}{rg}", emu.base))
            .bearer_auth(&token)
            .send()
            .await?;
        resp.bytes().await
    }
    .await;
    assert!(result.is_err(), "the body must not arrive whole");
    emu.set_faults(&token, json!({"drop_rate": 0.0})).await;

    // Metrics by method + route template + status.
    let metrics = emu.get_ok(&token, "/_emulator/metrics").await;
    let rows = metrics["requests"].as_array().expect("rows");
    assert!(
        rows.iter().any(|r| r["method"] == "GET"
            && r["route"] == "/subscriptions/{}"
            && r["status"] == 429
            && r["count"].as_u64().is_some_and(|n| n >= 1)),
        "{metrics}"
    );
    assert!(rows
        .iter()
        .any(|r| r["route"] == "/subscriptions/{}/resourcegroups/{}" && r["status"] == 201));

    // State dump and reset.
    let (_, _, dump) = emu.get(Some(&token), "/_emulator/state").await;
    assert!(dump["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .any(|r| r["id"].as_str().is_some_and(|i| i.ends_with("rg1"))));
    let _ = emu.post_ok(&token, "/_emulator/reset").await;
    emu.not_found(&token, &rg, "ResourceGroupNotFound").await;
    let (status, _, _) = emu.get(Some(&token), &subscription).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the default subscription survives a reset"
    );
}

#[tokio::test]
async fn short_token_lifetime_expires_like_arm() {
    let (emu, token, sub) = signed_in(|_| {}).await;
    let subscription = format!("{sub}?{SUBSCRIPTION_API}");
    let (_, _, profile) = emu.get(Some(&token), "/_emulator/faults").await;
    assert_eq!(profile["token_lifetime_s"], 3600);
    let (status, bad) = emu.set_faults(&token, json!({"token_lifetime_s": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    let (status, profile) = emu.set_faults(&token, json!({"token_lifetime_s": 1})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["token_lifetime_s"], 1);

    let (status, v2) = emu.secret_token_response(false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2["expires_in"], 1);
    let (status, v1) = emu.secret_token_response(true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v1["expires_in"], "1");
    let epoch_seconds = |key: &str| -> u64 {
        let text = v1[key].as_str().unwrap_or_default();
        text.parse()
            .unwrap_or_else(|_| panic!("{key} is epoch seconds: {v1}"))
    };
    assert_eq!(epoch_seconds("expires_on") - epoch_seconds("not_before"), 1);

    let short = v2["access_token"].as_str().expect("token").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, headers, body) = emu.get(Some(&short), &subscription).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "ExpiredAuthenticationToken");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("The access token expiry UTC time '")
            && message.contains("' is earlier than current UTC time '")
            && (message.ends_with(" AM'.") || message.ends_with(" PM'.")),
        "{message}"
    );
    let challenge = bearer_challenge(&headers);
    assert!(
        challenge.contains(&format!("error_description=\"{message}\"")),
        "{challenge}"
    );
    // The control API takes the same tokens, so an expired one is refused there too.
    let (status, _, _) = emu.get(Some(&short), "/_emulator/faults").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The long-lived token issued before the change keeps working.
    emu.get_ok(&token, &subscription).await;
    emu.running.shutdown().await;
}

#[tokio::test]
async fn token_lifetime_from_startup_profile() {
    let emu = super::temporary(|config| config.faults.token_lifetime_s = 42).await;
    let (status, v2) = emu.secret_token_response(false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2["expires_in"], 42);
    emu.running.shutdown().await;
}
