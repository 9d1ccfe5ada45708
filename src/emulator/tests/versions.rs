//! Policy definition and set definition versions over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{error_code, start_emu};

const API: &str = "api-version=2025-03-01";

fn definition(version: Option<&str>, display: &str) -> Value {
    let mut body = json!({"properties": {
        "mode": "All",
        "displayName": display,
        "policyRule": {"if": {"field": "type", "equals": "x"}, "then": {"effect": "audit"}}
    }});
    if let Some(v) = version {
        body["properties"]["version"] = json!(v);
    }
    body
}

#[tokio::test]
async fn definition_versions_at_every_scope() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = start_emu(dir.path(), None).await;
    let token = emu.token().await;
    let sub = format!("/subscriptions/{}", emu.running.info().subscription_id);
    let def = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/versioned");

    // A PUT with a version records it; the definition lists it.
    let (status, _, body) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{def}?{API}"),
            Some(&definition(Some("1.0.0"), "one")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["properties"]["versions"], json!(["1.0.0"]));
    let (status, _, body) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{def}?{API}"),
            Some(&definition(Some("2.1.0"), "two")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["properties"]["version"], "2.1.0");
    assert_eq!(body["properties"]["versions"], json!(["2.1.0", "1.0.0"]));

    // Versions list and get.
    let (items, _) = emu.list_all(&token, &format!("{def}/versions?{API}")).await;
    let names: Vec<&str> = items.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["2.1.0", "1.0.0"]);
    assert_eq!(
        items[0]["type"],
        "Microsoft.Authorization/policyDefinitions/versions"
    );
    assert!(items[0]["properties"].get("versions").is_none());
    let (status, _, one) = emu
        .get(Some(&token), &format!("{def}/versions/1.0.0?{API}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["properties"]["displayName"], "one");
    assert_eq!(one["id"], format!("{def}/versions/1.0.0"));
    let (status, _, missing) = emu
        .get(Some(&token), &format!("{def}/versions/9.9.9?{API}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "PolicyDefinitionVersionNotFound");

    // A version PUT: 201 then 200; the definition shows the newest version.
    let url = format!("{def}/versions/10.0.0?{API}");
    let (status, _, v) = emu
        .send(&token, Method::PUT, &url, Some(&definition(None, "ten")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["properties"]["version"], "10.0.0");
    let (status, _, _) = emu
        .send(&token, Method::PUT, &url, Some(&definition(None, "ten!")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, base) = emu.get(Some(&token), &format!("{def}?{API}")).await;
    assert_eq!(base["properties"]["version"], "10.0.0");
    assert_eq!(base["properties"]["displayName"], "ten!");
    assert_eq!(
        base["properties"]["versions"],
        json!(["10.0.0", "2.1.0", "1.0.0"])
    );
    // A definition PUT without a version updates the version shown.
    let (status, _, body) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{def}?{API}"),
            Some(&definition(None, "ten again")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["properties"]["version"], "10.0.0");
    assert_eq!(
        body["properties"]["versions"].as_array().map(Vec::len),
        Some(3)
    );

    // Bad versions and mismatches.
    for (path_version, body, code) in [
        (
            "1.0",
            definition(None, "x"),
            "InvalidPolicyDefinitionVersion",
        ),
        (
            "3.0.0",
            definition(Some("4.0.0"), "x"),
            "InvalidRequestContent",
        ),
    ] {
        let (status, _, resp) = emu
            .send(
                &token,
                Method::PUT,
                &format!("{def}/versions/{path_version}?{API}"),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
        assert_eq!(error_code(&resp), code);
    }
    // Versions need api-version 2023-04-01 or later.
    let (status, _, resp) = emu
        .get(
            Some(&token),
            &format!("{def}/versions?api-version=2021-06-01"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    assert_eq!(error_code(&resp), "InvalidApiVersionParameter");

    // Delete a version: the definition falls back to the next newest.
    emu.delete_twice(&token, &url).await;
    let (_, _, base) = emu.get(Some(&token), &format!("{def}?{API}")).await;
    assert_eq!(base["properties"]["version"], "2.1.0");
    assert_eq!(base["properties"]["displayName"], "two");
    assert_eq!(base["properties"]["versions"], json!(["2.1.0", "1.0.0"]));

    // The list-all action at the subscription.
    let (status, _, all) = emu
        .send(
            &token,
            Method::POST,
            &format!("{sub}/providers/Microsoft.Authorization/listPolicyDefinitionVersions?{API}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["value"].as_array().map(Vec::len), Some(2));

    // Management group definitions have versions too.
    let mg = "/providers/Microsoft.Management/managementGroups/vmg";
    let (status, _, _) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{mg}?api-version=2021-04-01"),
            Some(&json!({"properties": {"displayName": "vmg"}})),
        )
        .await;
    assert!(status.is_success());
    let mg_def = format!("{mg}/providers/Microsoft.Authorization/policyDefinitions/mgdef");
    let (status, _, _) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{mg_def}/versions/1.0.0?{API}"),
            Some(&definition(None, "mg")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the definition must exist");
    let (status, _, _) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{mg_def}?{API}"),
            Some(&definition(Some("1.2.3"), "mg")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, v) = emu
        .get(Some(&token), &format!("{mg_def}/versions/1.2.3?{API}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _, all) = emu
        .send(
            &token,
            Method::POST,
            &format!("{mg}/providers/Microsoft.Authorization/listPolicyDefinitionVersions?{API}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["value"][0]["name"], "1.2.3");

    // The only version cannot go; deleting the definition takes its versions.
    let (status, _, resp) = emu
        .send(
            &token,
            Method::DELETE,
            &format!("{mg_def}/versions/1.2.3?{API}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    let (status, _, _) = emu
        .send(&token, Method::DELETE, &format!("{def}?{API}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = emu
        .get(Some(&token), &format!("{def}/versions/1.0.0?{API}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    emu.running.shutdown().await;
}

#[tokio::test]
async fn builtin_and_set_definition_versions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = start_emu(dir.path(), None).await;
    let token = emu.token().await;
    let sub = format!("/subscriptions/{}", emu.running.info().subscription_id);
    let builtin =
        "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";
    let (status, _, base) = emu.get(Some(&token), &format!("{builtin}?{API}")).await;
    assert_eq!(status, StatusCode::OK);
    let version = base["properties"]["version"]
        .as_str()
        .expect("built-ins carry a version")
        .to_string();
    let (items, _) = emu
        .list_all(&token, &format!("{builtin}/versions?{API}"))
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], version.as_str());
    let (status, _, v) = emu
        .get(Some(&token), &format!("{builtin}/versions/{version}?{API}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["properties"]["policyType"], "BuiltIn");
    // Also reachable through a subscription, and read-only.
    let (status, _, _) = emu
        .get(
            Some(&token),
            &format!("{sub}{builtin}/versions/{version}?{API}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{builtin}/versions/99.0.0?{API}"),
            Some(&definition(None, "x")),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, all) = emu
        .send(
            &token,
            Method::POST,
            &format!("/providers/Microsoft.Authorization/listPolicyDefinitionVersions?{API}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let total = crate::emulator::catalogue::Catalogue::embedded()
        .expect("catalogue")
        .definitions
        .len();
    assert_eq!(all["value"].as_array().map(Vec::len), Some(total));
    let (status, _, _) = emu
        .get(
            Some(&token),
            &format!("/providers/Microsoft.Authorization/listPolicyDefinitionVersions?{API}"),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Set definitions: same shape.
    let def = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/member");
    emu.send(
        &token,
        Method::PUT,
        &format!("{def}?{API}"),
        Some(&definition(None, "member")),
    )
    .await;
    let set = format!("{sub}/providers/Microsoft.Authorization/policySetDefinitions/vset");
    let set_body = |version: &str| {
        json!({"properties": {"displayName": "set", "version": version,
            "policyDefinitions": [{"policyDefinitionId": def, "policyDefinitionReferenceId": "m"}]}})
    };
    let (status, _, created) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{set}?{API}"),
            Some(&set_body("1.0.0")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _, v) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{set}/versions/1.1.0?{API}"),
            Some(&set_body("1.1.0")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["type"],
        "Microsoft.Authorization/policySetDefinitions/versions"
    );
    let (_, _, base) = emu.get(Some(&token), &format!("{set}?{API}")).await;
    assert_eq!(base["properties"]["versions"], json!(["1.1.0", "1.0.0"]));
    let (status, _, all) = emu
        .send(
            &token,
            Method::POST,
            &format!(
                "{sub}/providers/Microsoft.Authorization/listPolicySetDefinitionVersions?{API}"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["value"].as_array().map(Vec::len), Some(2));
    let (status, _, missing) = emu
        .get(Some(&token), &format!("{set}/versions/3.0.0?{API}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "PolicySetDefinitionVersionNotFound");
    emu.running.shutdown().await;
}
