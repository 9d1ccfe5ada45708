//! The per-cluster Gatekeeper over HTTPS: an initiative assigned with DoNotEnforce and an
//! override, a direct deny assignment, the webhook answer and the describe view.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::clusters::fast_emu;
use super::Emu;
use super::{AKS_API, POLICY_API};
use crate::policy::constraint_template::TemplateSpec;
use crate::policy::kubernetes_body::{KindMatch, KubernetesDefinitionSpec, TemplateSource};

fn privileged_deployment(ns: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "operation": "CREATE",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": ns, "name": "web",
        "object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "app", "image": "nginx", "securityContext": {"privileged": true}}]}}}}}})
}

/// The webhook's answer to one AdmissionReview on `cluster`.
async fn admit(emu: &Emu, token: &str, cluster: &str, review: Value) -> Value {
    let path = format!("/_emulator/admission{cluster}");
    emu.expect(token, Method::POST, &path, Some(&review), StatusCode::OK)
        .await
}

/// What the emulator shows of `cluster`'s Gatekeeper: constraints, admitted objects, errors.
async fn admission_state(emu: &Emu, token: &str, cluster: &str) -> Value {
    let path = format!("/_emulator/admission{cluster}");
    emu.expect(token, Method::GET, &path, None, StatusCode::OK)
        .await
}

#[tokio::test]
async fn webhook_denies_and_audit_reports() {
    let (emu, token, sub) = fast_emu(0).await;
    let rg = format!("{sub}/resourceGroups/rg");
    let cluster = format!("{rg}/providers/Microsoft.ContainerService/managedClusters/c1");
    let (status, body) = emu
        .put(&token, &format!("{cluster}?{AKS_API}"), &json!({
            "location": "westeurope",
            "properties": {"dnsPrefix": "c1", "addonProfiles": {"azurepolicy": {"enabled": true}}}
        }))
        .await;
    assert!(status.is_success(), "{body}");
    let admit = |review: Value| admit(&emu, &token, &cluster, review);
    // No assignment yet: admitted.
    let answer = admit(privileged_deployment("apps")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    // The baseline initiative with DoNotEnforce only audits.
    let set = "/providers/Microsoft.Authorization/policySetDefinitions/a8640138-9b0a-4a28-b8cb-1666c838647d";
    let (status, body) = emu
        .put(
            &token,
            &format!(
                "{rg}/providers/Microsoft.Authorization/policyAssignments/baseline?{POLICY_API}"
            ),
            &json!({"properties": {"policyDefinitionId": set, "enforcementMode": "DoNotEnforce"}}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let answer = admit(privileged_deployment("apps")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    // A direct assignment with deny and expansion refuses it, in Gatekeeper's format.
    let def =
        "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";
    let (status, body) = emu
        .put(
            &token,
            &format!("{rg}/providers/Microsoft.Authorization/policyAssignments/deny?{POLICY_API}"),
            &json!({"properties": {"policyDefinitionId": def, "parameters": {
                "effect": {"value": "Deny"}, "source": {"value": "Generated"}}}}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let answer = admit(privileged_deployment("apps")).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(answer["response"]["uid"], "u-1");
    assert_eq!(answer["response"]["status"]["code"], 403);
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("[azurepolicy-k8sazurev2noprivilege-"),
        "{message}"
    );
    assert!(
        message.contains("Privileged container is not allowed: app"),
        "{message}"
    );

    // The add-on's own namespaces are never reviewed, so this one is admitted and audited
    // by nothing; the describe view lists the constraints and the admitted objects.
    let answer = admit(privileged_deployment("kube-system")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let view = admission_state(&emu, &token, &cluster).await;
    let actions: Vec<&str> = view["constraints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["spec"]["enforcementAction"].as_str())
        .collect();
    assert!(
        actions.contains(&"deny") && actions.contains(&"dryrun"),
        "{actions:?}"
    );
    // Two objects: the first admitted Deployment in apps (replaced) and the kube-system one.
    assert_eq!(view["objects"].as_array().map(Vec::len), Some(2), "{view}");

    // The admitted privileged Deployment makes the cluster non-compliant with the deny
    // assignment (its audit sees the generated Pod).
    let summary = emu.post_ok(&token, &format!("{rg}/providers/Microsoft.Authorization/policyAssignments/deny/providers/Microsoft.PolicyInsights/policyStates/latest/summarize?api-version=2019-10-01")).await;
    assert_eq!(
        summary["value"][0]["results"]["nonCompliantResources"], 1,
        "{summary}"
    );

    // Admission decisions are policy events: the DoNotEnforce audits and the deny.
    let events = |filter: &str| {
        format!(
            "{cluster}/providers/Microsoft.PolicyInsights/policyEvents/default/queryResults?api-version=2024-10-01&$filter={}",
            super::urlencode(filter)
        )
    };
    let denied = emu
        .post_ok(&token, &events("policyDefinitionAction eq 'deny'"))
        .await;
    let denied = denied["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["complianceState"], "NonCompliant");
    assert_eq!(denied[0]["policyAssignmentName"], "deny");
    assert_eq!(denied[0]["resourceId"], cluster.as_str());
    assert!(denied[0]["tenantId"].is_string() && denied[0]["principalOid"].is_string());
    assert!(denied[0]["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("policyEvents/$metadata#PolicyEvents/$entity")));
    // The baseline initiative's members do not expand Deployments, so its DoNotEnforce
    // assignment saw nothing; every event is the deny assignment's.
    let (_, all) = emu
        .post(&token, &events("policyDefinitionAction ne 'deny'"))
        .await;
    assert_eq!(all["value"].as_array().map(Vec::len), Some(0), "{all}");
    emu.running.shutdown().await;
}

/// A cluster with the add-on and a deny assignment, at its resource group, of a custom
/// definition of `rego` (ConstraintTemplate kind `kind`, Pods only). Returns the cluster id.
async fn cluster_with_template(
    emu: &super::Emu,
    token: &str,
    sub: &str,
    kind: &str,
    rego: &str,
) -> String {
    let rg = format!("{sub}/resourceGroups/rg");
    let cluster = format!("{rg}/providers/Microsoft.ContainerService/managedClusters/c1");
    let (status, body) = emu
        .put(token, &format!("{cluster}?{AKS_API}"), &json!({
            "location": "westeurope",
            "properties": {"dnsPrefix": "c1", "addonProfiles": {"azurepolicy": {"enabled": true}}}
        }))
        .await;
    assert!(status.is_success(), "{body}");
    let (yaml, _) = TemplateSpec {
        kind: kind.into(),
        rego: rego.into(),
        libs: vec![],
        parameters_schema: None,
    }
    .render()
    .expect("render");
    let spec = KubernetesDefinitionSpec {
        display_name: Some(kind.into()),
        description: None,
        version: None,
        metadata: serde_json::Map::new(),
        template: TemplateSource::Embedded(yaml),
        template_parameters: vec![],
        matches: vec![KindMatch {
            api_groups: vec!["".into()],
            kinds: vec!["Pod".into()],
        }],
        effects: vec!["deny".into(), "audit".into()],
        default_effect: "deny".into(),
    };
    let properties = serde_json::to_value(spec.properties().expect("properties")).expect("json");
    let definition = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/{kind}");
    let (status, body) = emu
        .put(
            token,
            &format!("{definition}?{POLICY_API}"),
            &json!({"properties": properties}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = emu
        .put(
            token,
            &format!(
                "{rg}/providers/Microsoft.Authorization/policyAssignments/{kind}?{POLICY_API}"
            ),
            &json!({"properties": {"policyDefinitionId": definition}}),
        )
        .await;
    assert!(status.is_success(), "{body}");

    cluster
}

/// A template whose Rego never finishes: the webhook fails open and says why, and the emulator
/// keeps answering other requests meanwhile.
#[tokio::test]
async fn hostile_template_fails_open_and_the_emulator_keeps_answering() {
    let (emu, token, sub) = fast_emu(0).await;
    let rego = "package k8shostile\n\nviolation[{\"msg\": \"never\"}] {\n  n := numbers.range(1, count(input.review.object.spec.containers) * 100000)\n  count([1 | n[_]; n[_]]) > 0\n}\n";
    let cluster = cluster_with_template(&emu, &token, &sub, "K8sHostile", rego).await;

    let pod = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-2", "operation": "CREATE",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "apps", "name": "web",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}});
    let admission_path = format!("/_emulator/admission{cluster}");
    let admission = emu.send(&token, Method::POST, &admission_path, Some(&pod));
    let other = async {
        // Give the admission a head start, then ask for something else.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (status, _, _) = emu
            .send(&token, Method::GET, &format!("{cluster}?{AKS_API}"), None)
            .await;
        (status, std::time::Instant::now())
    };
    let admitted = async {
        let answer = admission.await;
        (answer, std::time::Instant::now())
    };
    let (((status, _, answer), admitted_at), (other_status, other_at)) =
        tokio::join!(admitted, other);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(other_status.is_success());
    assert!(
        other_at < admitted_at,
        "the cluster GET waited for the hostile admission"
    );
    // Fail-open, as Gatekeeper's webhook (failurePolicy Ignore), but visible.
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    // Whichever bound the product meets first, time or memory, ends it.
    let errors = answer["evaluationErrors"].to_string();
    assert!(
        errors.contains("k8shostile")
            && (errors.contains("did not finish") || errors.contains("MiB of memory")),
        "{answer}"
    );
    let state = admission_state(&emu, &token, &cluster).await;
    let recorded = state["admissionErrors"].to_string();
    assert!(
        recorded.contains("did not finish") || recorded.contains("MiB of memory"),
        "{state}"
    );
}

/// Gatekeeper's `external_data` in the emulator answers from `/_emulator/evaluation`, as a
/// cluster's Provider resources would; bad settings are refused.
#[tokio::test]
async fn external_data_answers_come_from_the_evaluation_settings() {
    let (emu, token, sub) = fast_emu(0).await;
    let rego = "package k8sverified\n\nviolation[{\"msg\": msg}] {\n  images := [c.image | c := input.review.object.spec.containers[_]]\n  response := external_data({\"provider\": \"signatures\", \"keys\": images})\n  count(response.errors) > 0\n  msg := sprintf(\"unverified images: %v\", [response.errors])\n}\n";
    let cluster = cluster_with_template(&emu, &token, &sub, "K8sVerified", rego).await;
    let admit = |uid: &'static str| {
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": uid, "operation": "CREATE", "dryRun": true,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "apps", "name": "web",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}});
        admit(&emu, &token, &cluster, review)
    };
    let settle = |body: Value| {
        let (emu, token) = (&emu, &token);
        async move { emu.put(token, "/_emulator/evaluation", &body).await }
    };

    let (status, body) =
        settle(json!({"external_data": {"signatures": {"nginx": {"error": "no signature"}}}}))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let denied = admit("u-1").await;
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    assert!(denied.to_string().contains("no signature"), "{denied}");

    let (status, body) =
        settle(json!({"external_data": {"signatures": {"nginx": {"value": "signed"}}}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admitted = admit("u-2").await;
    assert_eq!(admitted["response"]["allowed"], true, "{admitted}");

    for bad in [
        json!({"timeout_ms": 0}),
        json!({"external_data": {"signatures": 1}}),
        json!({"nope": 1}),
    ] {
        let (status, body) = settle(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
    }
    let (_, _, current) = emu
        .send(&token, Method::GET, "/_emulator/evaluation", None)
        .await;
    assert_eq!(
        current["external_data"]["signatures"]["nginx"]["value"],
        "signed"
    );
    emu.running.shutdown().await;
}
