//! Policy definition and set definition versions over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::POLICY_API;
use super::{signed_in, Emu};

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

/// The list-all action for `kind` (`PolicyDefinition`, `PolicySetDefinition`) at `scope`
/// (empty for the tenant's built-ins): every version it answers with.
async fn list_versions(emu: &Emu, token: &str, scope: &str, kind: &str) -> Vec<Value> {
    let url = format!("{scope}/providers/Microsoft.Authorization/list{kind}Versions?{POLICY_API}");
    let all = emu
        .expect(token, Method::POST, &url, None, StatusCode::OK)
        .await;
    all["value"].as_array().cloned().expect("value array")
}

#[tokio::test]
async fn definition_versions_at_every_scope() {
    let (emu, token, sub) = signed_in(|_| {}).await;
    let def = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/versioned");
    let base_url = format!("{def}?{POLICY_API}");
    let version_url = |v: &str| format!("{def}/versions/{v}?{POLICY_API}");

    // A PUT with a version records it; the definition lists it.
    for (version, display, versions) in [
        ("1.0.0", "one", json!(["1.0.0"])),
        ("2.1.0", "two", json!(["2.1.0", "1.0.0"])),
    ] {
        let body = definition(Some(version), display);
        let body = emu
            .expect(
                &token,
                Method::PUT,
                &base_url,
                Some(&body),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(body["properties"]["version"], version);
        assert_eq!(body["properties"]["versions"], versions);
    }

    // Versions list and get.
    let (items, _) = emu
        .list_all(&token, &format!("{def}/versions?{POLICY_API}"))
        .await;
    let names: Vec<&str> = items.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["2.1.0", "1.0.0"]);
    assert_eq!(
        items[0]["type"],
        "Microsoft.Authorization/policyDefinitions/versions"
    );
    assert!(items[0]["properties"].get("versions").is_none());
    let one = emu.get_ok(&token, &version_url("1.0.0")).await;
    assert_eq!(one["properties"]["displayName"], "one");
    assert_eq!(one["id"], format!("{def}/versions/1.0.0"));
    let missing = "PolicyDefinitionVersionNotFound";
    emu.not_found(&token, &version_url("9.9.9"), missing).await;

    // A version PUT: 201 then 200; the definition shows the newest version.
    let url = version_url("10.0.0");
    let ten = definition(None, "ten");
    let v = emu
        .expect(&token, Method::PUT, &url, Some(&ten), StatusCode::CREATED)
        .await;
    assert_eq!(v["properties"]["version"], "10.0.0");
    let (status, _) = emu.put(&token, &url, &definition(None, "ten!")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, base) = emu.get(Some(&token), &base_url).await;
    assert_eq!(base["properties"]["version"], "10.0.0");
    assert_eq!(base["properties"]["displayName"], "ten!");
    assert_eq!(
        base["properties"]["versions"],
        json!(["10.0.0", "2.1.0", "1.0.0"])
    );
    // A definition PUT without a version updates the version shown.
    let again = definition(None, "ten again");
    let body = emu
        .expect(
            &token,
            Method::PUT,
            &base_url,
            Some(&again),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(body["properties"]["version"], "10.0.0");
    assert_eq!(
        body["properties"]["versions"].as_array().map(Vec::len),
        Some(3)
    );

    // Bad versions and mismatches; versions need api-version 2023-04-01 or later.
    let old_api = format!("{def}/versions?api-version=2021-06-01");
    for (method, url, body, code) in [
        (
            Method::PUT,
            version_url("1.0"),
            Some(definition(None, "x")),
            "InvalidPolicyDefinitionVersion",
        ),
        (
            Method::PUT,
            version_url("3.0.0"),
            Some(definition(Some("4.0.0"), "x")),
            "InvalidRequestContent",
        ),
        (Method::GET, old_api, None, "InvalidApiVersionParameter"),
    ] {
        let request = (method, url.as_str(), body.as_ref());
        emu.expect_error(&token, request, StatusCode::BAD_REQUEST, code)
            .await;
    }

    // Delete a version: the definition falls back to the next newest.
    emu.delete_twice(&token, &url).await;
    let (_, _, base) = emu.get(Some(&token), &base_url).await;
    assert_eq!(base["properties"]["version"], "2.1.0");
    assert_eq!(base["properties"]["displayName"], "two");
    assert_eq!(base["properties"]["versions"], json!(["2.1.0", "1.0.0"]));

    // The list-all action at the subscription.
    let all = list_versions(&emu, &token, &sub, "PolicyDefinition").await;
    assert_eq!(all.len(), 2);

    // Management group definitions have versions too.
    let mg = "/providers/Microsoft.Management/managementGroups/vmg";
    let group = json!({"properties": {"displayName": "vmg"}});
    let (status, _) = emu
        .put(&token, &format!("{mg}?api-version=2021-04-01"), &group)
        .await;
    assert!(status.is_success());
    let mg_def = format!("{mg}/providers/Microsoft.Authorization/policyDefinitions/mgdef");
    let mg_version = format!("{mg_def}/versions/1.2.3?{POLICY_API}");
    let (status, _) = emu
        .put(
            &token,
            &format!("{mg_def}/versions/1.0.0?{POLICY_API}"),
            &definition(None, "mg"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the definition must exist");
    let versioned = definition(Some("1.2.3"), "mg");
    let (status, _) = emu
        .put(&token, &format!("{mg_def}?{POLICY_API}"), &versioned)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    emu.get_ok(&token, &mg_version).await;
    let all = list_versions(&emu, &token, mg, "PolicyDefinition").await;
    assert_eq!(all[0]["name"], "1.2.3");

    // The only version cannot go; deleting the definition takes its versions.
    let (status, resp) = emu.delete(&token, &mg_version).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    let (status, _) = emu.delete(&token, &base_url).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = emu.get(Some(&token), &version_url("1.0.0")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    emu.running.shutdown().await;
}

#[tokio::test]
async fn builtin_and_set_definition_versions() {
    let (emu, token, sub) = signed_in(|_| {}).await;
    let builtin =
        "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";
    let base = emu.get_ok(&token, &format!("{builtin}?{POLICY_API}")).await;
    let version = base["properties"]["version"]
        .as_str()
        .expect("built-ins carry a version")
        .to_string();
    let (items, _) = emu
        .list_all(&token, &format!("{builtin}/versions?{POLICY_API}"))
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], version.as_str());
    let v = emu
        .get_ok(
            &token,
            &format!("{builtin}/versions/{version}?{POLICY_API}"),
        )
        .await;
    assert_eq!(v["properties"]["policyType"], "BuiltIn");
    // Also reachable through a subscription, and read-only.
    let _ = emu
        .get_ok(
            &token,
            &format!("{sub}{builtin}/versions/{version}?{POLICY_API}"),
        )
        .await;
    let read_only = format!("{builtin}/versions/99.0.0?{POLICY_API}");
    let (status, _) = emu.put(&token, &read_only, &definition(None, "x")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let all = list_versions(&emu, &token, "", "PolicyDefinition").await;
    let total = crate::emulator::catalogue::Catalogue::embedded()
        .expect("catalogue")
        .definitions
        .len();
    assert_eq!(all.len(), total);
    let (status, _, _) = emu
        .get(
            Some(&token),
            &format!(
                "/providers/Microsoft.Authorization/listPolicyDefinitionVersions?{POLICY_API}"
            ),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Set definitions: same shape.
    let def = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/member");
    emu.put(
        &token,
        &format!("{def}?{POLICY_API}"),
        &definition(None, "member"),
    )
    .await;
    let set = format!("{sub}/providers/Microsoft.Authorization/policySetDefinitions/vset");
    let set_body = |version: &str| {
        json!({"properties": {"displayName": "set", "version": version,
            "policyDefinitions": [{"policyDefinitionId": def, "policyDefinitionReferenceId": "m"}]}})
    };
    let (status, created) = emu
        .put(&token, &format!("{set}?{POLICY_API}"), &set_body("1.0.0"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, v) = emu
        .put(
            &token,
            &format!("{set}/versions/1.1.0?{POLICY_API}"),
            &set_body("1.1.0"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["type"],
        "Microsoft.Authorization/policySetDefinitions/versions"
    );
    let (_, _, base) = emu.get(Some(&token), &format!("{set}?{POLICY_API}")).await;
    assert_eq!(base["properties"]["versions"], json!(["1.1.0", "1.0.0"]));
    let all = list_versions(&emu, &token, &sub, "PolicySetDefinition").await;
    assert_eq!(all.len(), 2);
    let missing = format!("{set}/versions/3.0.0?{POLICY_API}");
    emu.not_found(&token, &missing, "PolicySetDefinitionVersionNotFound")
        .await;
    emu.running.shutdown().await;
}
