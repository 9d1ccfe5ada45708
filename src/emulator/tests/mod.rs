//! End-to-end tests: the emulator runs in-process on a free port with a temporary state
//! directory, and a real HTTPS client (trusting only the emulator's CA) talks to it.

use std::path::{Path, PathBuf};

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use super::{start, Config, RunningEmulator};

mod admission;
mod arm_policy;
mod clusters;
mod concurrency;
mod conformance;
mod deployments;
mod faults;
mod identities;
mod insights;
mod policy;
mod versions;

/// The api-versions the tests speak, as query strings: managed clusters, Azure Policy,
/// Policy Insights, and resources (groups, management groups, deployments).
const AKS_API: &str = "api-version=2026-04-01";
const POLICY_API: &str = "api-version=2025-03-01";
const INSIGHTS_API: &str = "api-version=2024-10-01";
const RESOURCES_API: &str = "api-version=2021-04-01";

/// The built-in DeployIfNotExists that turns on the AKS policy add-on.
const ADDON_DINE: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/a8eff44f-8c92-45c3-a3fb-9880802d67a7";
const DEFINITIONS: &str = "/providers/Microsoft.Authorization/policyDefinitions";

pub(super) struct Emu {
    running: RunningEmulator,
    client: Client,
    base: String,
    /// The state directory when the emulator owns it; removed after the emulator is dropped.
    _state: Option<tempfile::TempDir>,
}

/// An emulator with its state in a fresh temporary directory, started with what `configure`
/// sets on the default configuration.
pub(super) async fn temporary(configure: impl FnOnce(&mut Config)) -> Emu {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(dir.path());
    configure(&mut config);
    let emu = start_config(config).await;
    Emu {
        _state: Some(dir),
        ..emu
    }
}

/// An emulator with the default configuration in a fresh temporary directory.
pub(super) async fn temporary_emu() -> Emu {
    temporary(|_| {}).await
}

/// An emulator on a state directory the test keeps (to look into it, or to restart on it).
pub(super) async fn start_emu(dir: &Path) -> Emu {
    start_config(Config::new(dir)).await
}

/// Starts with a given configuration (fault profile, ...).
pub(super) async fn start_config(config: Config) -> Emu {
    let running = start(config).await.expect("emulator starts");
    let ca = std::fs::read(&running.info().ca_cert).expect("ca.pem readable");
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA parses"))
        .build()
        .expect("client builds");
    let base = running
        .info()
        .arm_endpoint
        .trim_end_matches('/')
        .to_string();
    Emu {
        running,
        client,
        base,
        _state: None,
    }
}

/// A client-credentials grant with a secret, for `audience` (a v2 `scope` or a v1 `resource`).
pub(super) fn secret_grant<'a>(
    client_id: &'a str,
    client_secret: &'a str,
    audience: (&'a str, &'a str),
) -> [(&'a str, &'a str); 4] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", client_secret),
        audience,
    ]
}

const ARM_SCOPE: (&str, &str) = ("scope", "https://management.azure.com/.default");

impl Emu {
    /// The answer of the token endpoint at `path` (below the emulator's base) to `form`.
    async fn token_at(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = resp.status();
        (status, resp.json().await.expect("JSON body"))
    }

    /// The tenant's v1 or v2 token endpoint's answer to `form`.
    async fn token_response(&self, form: &[(&str, &str)], v1: bool) -> (StatusCode, Value) {
        let tenant = &self.running.info().tenant_id;
        let version = if v1 { "" } else { "/v2.0" };
        self.token_at(&format!("/{tenant}/oauth2{version}/token"), form)
            .await
    }

    /// The token endpoint's answer to the emulator's own service principal and secret, for ARM.
    pub(super) async fn secret_token_response(&self, v1: bool) -> (StatusCode, Value) {
        let info = self.running.info();
        let form = secret_grant(&info.client_id, &info.client_secret, ARM_SCOPE);
        self.token_response(&form, v1).await
    }

    pub(super) async fn token(&self) -> String {
        let (status, body) = self.secret_token_response(false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// GET with a token; `path_and_query` may also be an absolute URL (a nextLink).
    pub(super) async fn get(
        &self,
        token: Option<&str>,
        path_and_query: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = if path_and_query.starts_with("https://") {
            path_and_query.to_string()
        } else {
            format!("{}{path_and_query}", self.base)
        };
        let mut req = self.client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// How many items the list at `first` holds over all its pages.
    pub(super) async fn count(&self, token: &str, first: &str) -> usize {
        self.list_all(token, first).await.0.len()
    }

    /// Follows nextLinks, returning every item and the page sizes seen.
    pub(super) async fn list_all(&self, token: &str, first: &str) -> (Vec<Value>, Vec<usize>) {
        let mut items = Vec::new();
        let mut sizes = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(url) = next.take() {
            let (status, _, body) = self.get(Some(token), &url).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            let page = body["value"].as_array().expect("value array").clone();
            sizes.push(page.len());
            items.extend(page);
            if let Some(link) = body.get("nextLink").and_then(Value::as_str) {
                assert!(link.starts_with("https://"), "nextLink is absolute: {link}");
                assert!(link.contains("api-version="), "{link}");
                assert!(link.contains("skiptoken"), "{link}");
                next = Some(link.to_string());
            }
            assert!(sizes.len() < 100, "paging does not terminate");
        }
        (items, sizes)
    }
}

/// A temporary emulator configured by `configure`, a token for it and its subscription's scope.
pub(super) async fn signed_in(configure: impl FnOnce(&mut Config)) -> (Emu, String, String) {
    let emu = temporary(configure).await;
    let token = emu.token().await;
    let sub = emu.subscription();
    (emu, token, sub)
}

impl Emu {
    /// Changes the fault profile through the control API, as `POST /_emulator/faults` does for a
    /// test harness; the status and the whole profile it answers with.
    pub(super) async fn set_faults(&self, token: &str, change: Value) -> (StatusCode, Value) {
        let (status, _, profile) = self
            .send(
                token,
                reqwest::Method::POST,
                "/_emulator/faults",
                Some(&change),
            )
            .await;
        (status, profile)
    }

    /// A request that must answer `expected`; its JSON body.
    pub(super) async fn expect(
        &self,
        token: &str,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Value {
        let (status, _, answer) = self.send(token, method, path_and_query, body).await;
        assert_eq!(status, expected, "{path_and_query}: {answer}");
        answer
    }

    /// The token's `appid`, after checking ARM accepts it.
    pub(super) async fn arm_accepts(&self, token: &str) -> String {
        use base64::Engine;
        self.get_ok(token, "/subscriptions?api-version=2022-12-01")
            .await;
        let payload = token.split('.').nth(1).expect("JWT payload");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64");
        let claims: Value = serde_json::from_slice(&json).expect("json");
        claims["appid"].as_str().expect("appid").to_string()
    }

    /// A GET that must answer 200; its JSON body.
    pub(super) async fn get_ok(&self, token: &str, path_and_query: &str) -> Value {
        self.expect(token, Method::GET, path_and_query, None, StatusCode::OK)
            .await
    }

    /// A POST without a body (an action or a query) that must answer 200; its JSON body.
    pub(super) async fn post_ok(&self, token: &str, url: &str) -> Value {
        self.expect(token, Method::POST, url, None, StatusCode::OK)
            .await
    }

    /// ARM's DELETE of a resource that exists: 200 with its body, and 204 when asked again.
    pub(super) async fn delete_twice(&self, token: &str, url: &str) -> Value {
        let (status, _, body) = self.send(token, reqwest::Method::DELETE, url, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, again) = self.send(token, reqwest::Method::DELETE, url, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{again}");
        body
    }

    /// A PUT of `body`; ARM's status and answer.
    pub(super) async fn put(&self, token: &str, url: &str, body: &Value) -> (StatusCode, Value) {
        let (status, _, answer) = self
            .send(token, reqwest::Method::PUT, url, Some(body))
            .await;
        (status, answer)
    }

    /// A POST without a body (an action or a query); ARM's status and answer.
    pub(super) async fn post(&self, token: &str, url: &str) -> (StatusCode, Value) {
        let (status, _, answer) = self.send(token, reqwest::Method::POST, url, None).await;
        (status, answer)
    }

    /// A DELETE; ARM's status and answer.
    pub(super) async fn delete(&self, token: &str, url: &str) -> (StatusCode, Value) {
        let (status, _, answer) = self.send(token, reqwest::Method::DELETE, url, None).await;
        (status, answer)
    }

    /// A request that ARM must refuse with `status` and error `code`; the error body.
    pub(super) async fn expect_error(
        &self,
        token: &str,
        request: (reqwest::Method, &str, Option<&Value>),
        status: StatusCode,
        code: &str,
    ) -> Value {
        let (method, url, body) = request;
        let (got, _, answer) = self.send(token, method, url, body).await;
        assert_eq!(got, status, "{url}: {answer}");
        assert_eq!(error_code(&answer), code, "{url}: {answer}");
        answer
    }

    /// A GET that ARM answers 404 with error `code`; the error body.
    pub(super) async fn not_found(&self, token: &str, url: &str, code: &str) -> Value {
        let get = (Method::GET, url, None);
        self.expect_error(token, get, StatusCode::NOT_FOUND, code)
            .await
    }

    /// The emulator's (first) subscription as an ARM scope, `/subscriptions/{id}`.
    pub(super) fn subscription(&self) -> String {
        format!("/subscriptions/{}", self.running.info().subscription_id)
    }

    /// PUTs resource group `name` in westeurope under `sub`; ARM's status and answer.
    pub(super) async fn put_group(
        &self,
        token: &str,
        sub: &str,
        name: &str,
    ) -> (StatusCode, Value) {
        let url = format!("{sub}/resourceGroups/{name}?{RESOURCES_API}");
        self.put(token, &url, &serde_json::json!({"location": "westeurope"}))
            .await
    }

    /// Moves subscription `sub_id` below management group `group` (its id); ARM's status.
    pub(super) async fn move_subscription(
        &self,
        token: &str,
        group: &str,
        sub_id: &str,
    ) -> StatusCode {
        let url = format!("{group}/subscriptions/{sub_id}?{RESOURCES_API}");
        let (status, _, _) = self.send(token, reqwest::Method::PUT, &url, None).await;
        status
    }

    /// GETs `url` every `every_ms` until `done` accepts an answer or patience runs out (the
    /// caller asserts on what it got); the last status and body.
    pub(super) async fn poll(
        &self,
        token: &str,
        url: &str,
        every_ms: u64,
        mut done: impl FnMut(StatusCode, &reqwest::header::HeaderMap, &Value) -> bool,
    ) -> (StatusCode, Value) {
        let patience = Patience::new();
        loop {
            let (status, headers, body) = self.get(Some(token), url).await;
            if done(status, &headers, &body) || !patience.lasts() {
                return (status, body);
            }
            tokio::time::sleep(std::time::Duration::from_millis(every_ms)).await;
        }
    }

    /// Any method with an optional JSON body; returns status, headers and JSON (Null if none).
    pub(super) async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = if path_and_query.starts_with("https://") {
            path_and_query.to_string()
        } else {
            format!("{}{path_and_query}", self.base)
        };
        let mut req = self.client.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }
}

/// How long a test waits for the emulator's background work (LROs, remediations, deployments)
/// before it gives up: a liveness bound, generous for a loaded machine, never a speed target.
pub(super) struct Patience(std::time::Instant);

impl Patience {
    pub(super) fn new() -> Self {
        Self(std::time::Instant::now() + std::time::Duration::from_secs(60))
    }

    pub(super) fn lasts(&self) -> bool {
        std::time::Instant::now() < self.0
    }
}

/// ARM's `WWW-Authenticate` answer to a missing or refused token, checked; the whole challenge.
pub(super) fn bearer_challenge(headers: &reqwest::header::HeaderMap) -> &str {
    let challenge = headers["www-authenticate"].to_str().expect("ascii");
    assert!(
        challenge.starts_with("Bearer authorization_uri=\""),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    challenge
}

pub(super) fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn token_grants_access_and_arm_headers_are_set() {
    let emu = temporary_emu().await;
    let token = emu.token().await;
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let info = emu.running.info().clone();

    let resp = emu
        .client
        .get(format!("{}/subscriptions?api-version=2022-12-01", emu.base))
        .bearer_auth(&token)
        .header("x-ms-correlation-request-id", "corr-1")
        .header("x-ms-client-request-id", "client-1")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert!(h.contains_key("x-ms-request-id"));
    assert_eq!(h["x-ms-correlation-request-id"], "corr-1");
    assert_eq!(h["x-ms-client-request-id"], "client-1");
    let remaining: u64 = h["x-ms-ratelimit-remaining-subscription-reads"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    assert!(remaining > 0);
    let body: Value = resp.json().await.expect("json");
    let subs = body["value"].as_array().expect("value");
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["subscriptionId"], info.subscription_id.as_str());

    let sub = emu
        .get_ok(
            &token,
            &format!(
                "/subscriptions/{}?api-version=2020-01-01",
                info.subscription_id
            ),
        )
        .await;
    assert_eq!(sub["state"], "Enabled");
    assert_eq!(sub["tenantId"], info.tenant_id.as_str());
    assert_eq!(
        sub["id"],
        format!("/subscriptions/{}", info.subscription_id)
    );
    assert!(sub["displayName"].is_string());

    let (status, _, err) = emu
        .get(
            Some(&token),
            "/subscriptions/00000000-0000-0000-0000-000000000001?api-version=2022-12-01",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&err), "SubscriptionNotFound");

    let tenants = emu.get_ok(&token, "/tenants?api-version=2022-12-01").await;
    assert_eq!(tenants["value"][0]["tenantId"], info.tenant_id.as_str());

    // v1 endpoint with the other ARM audience.
    let classic = ("resource", "https://management.core.windows.net/");
    let form = secret_grant(&info.client_id, &info.client_secret, classic);
    let (status, v1) = emu.token_response(&form, true).await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_eq!(v1["resource"], "https://management.core.windows.net/");
    assert!(v1["expires_on"].is_string());
    emu.arm_accepts(v1["access_token"].as_str().expect("v1 token"))
        .await;
    emu.running.shutdown().await;
}

#[tokio::test]
async fn token_endpoint_rejects_bad_requests() {
    let emu = temporary_emu().await;
    let info = emu.running.info().clone();
    let wrong_secret = "not-the-secret-Zq9";
    let form = secret_grant(&info.client_id, wrong_secret, ARM_SCOPE);
    let (status, body) = emu.token_response(&form, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with("AADSTS7000215: Invalid client secret provided"),
        "{description}"
    );
    assert!(!body.to_string().contains(wrong_secret), "secret echoed");
    for key in ["trace_id", "correlation_id", "timestamp"] {
        assert!(body[key].is_string(), "{key} missing");
    }

    let (id, secret) = (info.client_id.as_str(), info.client_secret.as_str());
    let v2 = format!("/{}/oauth2/v2.0/token", info.tenant_id);
    let v2 = v2.as_str();
    let graph = ("scope", "https://graph.microsoft.com/.default");
    // The CLI's double-slash scope form names the classic audience.
    let classic = ("scope", "https://management.core.windows.net//.default");
    // (token endpoint, form, status, Entra ID's error if any)
    let cases = [
        (
            v2,
            secret_grant("11111111-1111-1111-1111-111111111111", secret, ARM_SCOPE).to_vec(),
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        (
            v2,
            vec![("grant_type", "password"), ("client_id", id)],
            StatusCode::BAD_REQUEST,
            Some("unsupported_grant_type"),
        ),
        (
            v2,
            secret_grant(id, secret, graph).to_vec(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            v2,
            secret_grant(id, secret, classic).to_vec(),
            StatusCode::OK,
            None,
        ),
        // MSAL against the ADFS-shaped authority posts `scope` to the v1 path.
        (
            "/adfs/oauth2/token",
            secret_grant(id, secret, classic).to_vec(),
            StatusCode::OK,
            None,
        ),
        (
            "/not-a-tenant/oauth2/v2.0/token",
            vec![("grant_type", "client_credentials")],
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (path, form, want, error) in cases {
        let (status, body) = emu.token_at(path, &form).await;
        assert_eq!(status, want, "{path} {form:?}: {body}");
        if let Some(error) = error {
            assert_eq!(body["error"], error, "{form:?}");
        }
    }

    let resp = emu
        .client
        .post(format!("{}{v2}", emu.base))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ARM_SCOPE])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK, "client_secret_basic");
    emu.running.shutdown().await;
}

#[tokio::test]
async fn arm_rejects_missing_or_bad_tokens_and_api_versions() {
    let emu = temporary_emu().await;
    let url = format!("{DEFINITIONS}?{POLICY_API}");

    let (status, headers, body) = emu.get(None, &url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "AuthenticationFailed");
    assert_eq!(
        body["error"]["message"],
        "Authentication failed. The 'Authorization' header is missing."
    );
    bearer_challenge(&headers);
    assert!(headers.contains_key("x-ms-request-id"));

    let (status, _, body) = emu.get(Some("not.a.jwt"), &url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");

    let token = emu.token().await;
    let body = emu
        .expect_error(
            &token,
            (Method::GET, DEFINITIONS, None),
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
        )
        .await;
    assert_eq!(
        body["error"]["message"],
        "The api-version query parameter (?api-version=) is required for all requests."
    );
    // (path, status, code, part of the message)
    for (path, status, code, says) in [
        (
            format!("{DEFINITIONS}?api-version=1999-01-01"),
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            "2025-03-01",
        ),
        (
            format!("/providers/Microsoft.Authorization/policyUnicorns?{POLICY_API}"),
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            "",
        ),
        (
            format!("/providers/Contoso.Nothing/things?{POLICY_API}"),
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            "",
        ),
    ] {
        let body = emu
            .expect_error(&token, (Method::GET, &path, None), status, code)
            .await;
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{body}");
    }
    emu.running.shutdown().await;
}

#[tokio::test]
async fn builtin_definitions_page_filter_and_get() {
    let emu = temporary_emu().await;
    let token = emu.token().await;
    let total = super::catalogue::Catalogue::embedded()
        .expect("catalogue")
        .definitions
        .len();

    let (items, sizes) = emu
        .list_all(&token, &format!("{DEFINITIONS}?{POLICY_API}"))
        .await;
    assert_eq!(items.len(), total);
    assert!(sizes.len() > 1, "more than one page");
    assert!(sizes.iter().all(|&s| s <= 4), "{sizes:?}");
    assert!(items
        .iter()
        .all(|d| d["type"] == "Microsoft.Authorization/policyDefinitions"));

    let (items, sizes) = emu
        .list_all(&token, &format!("{DEFINITIONS}?{POLICY_API}&$top=2"))
        .await;
    assert_eq!(items.len(), total);
    assert!(sizes.iter().all(|&s| s <= 2), "{sizes:?}");

    let filtered = |f: &str| format!("{DEFINITIONS}?{POLICY_API}&$filter={}", urlencode(f));
    for (filter, want) in [
        ("policyType eq 'BuiltIn'", total),
        ("policyType -eq BuiltIn", total),
        ("policyType eq 'Custom'", 0),
        ("category eq 'Kubernetes'", total - 1),
    ] {
        assert_eq!(emu.count(&token, &filtered(filter)).await, want, "{filter}");
    }
    let (status, _, body) = emu.get(Some(&token), &filtered("displayName eq 'x'")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Names compare case-insensitively; the id keeps the canonical casing.
    let def = emu.get_ok(&token, &format!("/PROVIDERS/microsoft.authorization/POLICYDEFINITIONS/95EDB821-DDAF-4404-9732-666045E056B4?{POLICY_API}")).await;
    assert_eq!(
        def["id"],
        "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4"
    );
    assert_eq!(def["properties"]["mode"], "Microsoft.Kubernetes.Data");

    // Built-ins are seen from a subscription and from the tenant root group, which exists
    // without being created.
    let info = emu.running.info();
    let sub = format!("/subscriptions/{}", info.subscription_id);
    let root = format!(
        "/providers/Microsoft.Management/managementGroups/{}",
        info.tenant_id
    );
    let one =
        format!("{sub}{DEFINITIONS}/95edb821-ddaf-4404-9732-666045e056b4?api-version=2021-06-01");
    emu.get_ok(&token, &one).await;
    for scope in [sub, root] {
        let list = format!("{scope}{DEFINITIONS}?{POLICY_API}");
        assert_eq!(emu.count(&token, &list).await, total, "{scope}");
    }

    let missing = format!("{DEFINITIONS}/does-not-exist?{POLICY_API}");
    let (status, _, body) = emu.get(Some(&token), &missing).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "PolicyDefinitionNotFound",
            "message": "The policy definition 'does-not-exist' could not be found."}})
    );

    let resp = emu
        .client
        .put(format!(
            "{}{DEFINITIONS}/95edb821-ddaf-4404-9732-666045e056b4?{POLICY_API}",
            emu.base
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"properties": {}}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);

    let set = emu.get_ok(&token, &format!("/providers/Microsoft.Authorization/policySetDefinitions/A8640138-9b0a-4a28-b8cb-1666c838647d?{POLICY_API}")).await;
    assert_eq!(set["type"], "Microsoft.Authorization/policySetDefinitions");
    assert!(!set["properties"]["policyDefinitions"]
        .as_array()
        .expect("members")
        .is_empty());
    emu.running.shutdown().await;
}

#[tokio::test]
async fn metadata_and_discovery_need_no_token() {
    let emu = temporary_emu().await;
    let (status, _, cloud) = emu
        .get(None, "/metadata/endpoints?api-version=2022-09-01")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cloud["resourceManager"],
        emu.running.info().arm_endpoint.as_str()
    );
    assert!(cloud["authentication"]["audiences"].is_array());
    assert!(cloud["authentication"]["loginEndpoint"].is_string());
    assert!(cloud["microsoftGraphResourceId"].is_string());
    assert!(cloud["suffixes"].is_object());
    let (_, _, clouds) = emu
        .get(None, "/metadata/endpoints?api-version=2019-05-01")
        .await;
    assert_eq!(clouds.as_array().map(Vec::len), Some(1));
    let (_, _, stack) = emu
        .get(None, "/metadata/endpoints?api-version=2015-01-01")
        .await;
    assert!(stack["authentication"]["loginEndpoint"].is_string());
    let (status, _, _) = emu.get(None, "/metadata/endpoints").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let tenant = emu.running.info().tenant_id.clone();
    // (discovery document, a URL it names, how that URL ends)
    let v2 = |t: &str| format!("/{t}/v2.0/.well-known/openid-configuration");
    for (document, field, ends) in [
        (v2(&tenant), "token_endpoint", "/oauth2/v2.0/token"),
        (v2("organizations"), "token_endpoint", "/oauth2/v2.0/token"),
        (v2("adfs"), "token_endpoint", "/oauth2/v2.0/token"),
        (
            format!("/{tenant}/.well-known/openid-configuration"),
            "jwks_uri",
            "/discovery/keys",
        ),
    ] {
        let (status, _, oidc) = emu.get(None, &document).await;
        assert_eq!(status, StatusCode::OK, "{document}");
        let url = oidc[field].as_str().unwrap_or_default();
        assert!(url.ends_with(ends), "{document}: {oidc}");
    }
    let (status, _, jwks) = emu
        .get(None, &format!("/{tenant}/discovery/v2.0/keys"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    emu.running.shutdown().await;
}

#[tokio::test]
async fn secrets_on_disk_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("state");
    // A directory left group- and world-readable, and a database from before 0600.
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join(super::DB_FILE), b"").expect("empty db");
    std::fs::set_permissions(
        dir.join(super::DB_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::fs::write(dir.join("env.sh"), b"").expect("old env.sh");
    std::fs::set_permissions(dir.join("env.sh"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let emu = start_emu(&dir).await;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(super::DB_FILE)), 0o600);
    for f in ["ca-key.pem", "server-key.pem", "emulator.json", "env.sh"] {
        assert_eq!(mode(&dir.join(f)) & 0o077, 0, "{f}");
    }
    emu.running.shutdown().await;
}

#[test]
fn non_loopback_listen_is_warned_about() {
    assert!(super::listen_warning("127.0.0.1:0".parse().unwrap()).is_none());
    assert!(super::listen_warning("[::1]:8443".parse().unwrap()).is_none());
    let warning = super::listen_warning("0.0.0.0:8443".parse().unwrap()).expect("warning");
    assert!(warning.contains("not a loopback address"), "{warning}");
}

#[tokio::test]
async fn restart_keeps_identity_ca_and_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start_emu(dir.path()).await;
    let info1 = first.running.info().clone();
    let ca1 = std::fs::read(&info1.ca_cert).expect("ca");
    let token = first.token().await;
    first.running.shutdown().await;

    let second = start_emu(dir.path()).await;
    let info2 = second.running.info().clone();
    assert_eq!(info1.subscription_id, info2.subscription_id);
    assert_eq!(info1.tenant_id, info2.tenant_id);
    assert_eq!(info1.client_id, info2.client_id);
    assert_eq!(info1.client_secret, info2.client_secret);
    assert_eq!(ca1, std::fs::read(&info2.ca_cert).expect("ca"));
    let body = second
        .get_ok(&token, "/subscriptions?api-version=2022-12-01")
        .await;
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1));

    let env = std::fs::read_to_string(&info2.env_file).expect("env.sh");
    for var in [
        "ARM_ENVIRONMENT='custom'",
        "ARM_RESOURCE_MANAGER_ENDPOINT=",
        "ARM_RESOURCE_MANAGER_AUDIENCE='https://management.core.windows.net/'",
        "ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST=",
        "ARM_METADATA_HOSTNAME=",
        "ARM_CLIENT_SECRET=",
        "SSL_CERT_FILE=",
        "REQUESTS_CA_BUNDLE=",
        "CURL_CA_BUNDLE=",
    ] {
        assert!(env.contains(var), "env.sh lacks {var}");
    }
    let bundle = std::fs::read(&info2.ca_bundle).expect("bundle");
    assert!(bundle.ends_with(&ca1));
    let json: super::ReadyInfo = serde_json::from_slice(
        &std::fs::read(dir.path().join("emulator.json")).expect("emulator.json"),
    )
    .expect("ready info parses");
    assert_eq!(json, info2);
    second.running.shutdown().await;
}

#[tokio::test]
async fn several_subscriptions_are_created_listed_exported_and_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(dir.path());
    config.subscriptions = 3;
    let first = start_config(config).await;
    let info = first.running.info().clone();
    assert_eq!(info.subscription_ids.len(), 3);
    assert_eq!(info.subscription_ids[0], info.subscription_id);
    let token = first.token().await;
    let (items, _) = first
        .list_all(&token, "/subscriptions?api-version=2022-12-01")
        .await;
    let mut listed: Vec<String> = items
        .iter()
        .filter_map(|s| s["subscriptionId"].as_str().map(str::to_string))
        .collect();
    listed.sort();
    let mut want = info.subscription_ids.clone();
    want.sort();
    assert_eq!(listed, want);
    // Every subscription takes resource groups, as Azure's would.
    let rg = format!(
        "/subscriptions/{}/resourceGroups/second-rg?api-version=2021-04-01",
        info.subscription_ids[2]
    );
    let (status, _, body) = first
        .send(
            &token,
            reqwest::Method::PUT,
            &rg,
            Some(&serde_json::json!({"location": "westeurope"})),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let env = std::fs::read_to_string(&info.env_file).expect("env.sh");
    assert!(
        env.contains(&format!(
            "AKSPOLICY_EMULATOR_SUBSCRIPTION_IDS='{}'",
            info.subscription_ids.join(" ")
        )),
        "{env}"
    );
    first.running.shutdown().await;

    // A restart without the flag keeps every subscription and its ids.
    let second = start_emu(dir.path()).await;
    assert_eq!(
        second.running.info().subscription_ids,
        info.subscription_ids
    );
    second.running.shutdown().await;

    let mut none = Config::new(dir.path());
    none.subscriptions = 0;
    assert!(start(none).await.is_err());
}

#[tokio::test]
async fn flags_override_identity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(dir.path());
    config.subscription_id = Some("3f2c1a9e-8d7b-4c6a-9e5f-0a1b2c3d4e5f".to_string());
    config.client_secret = Some("fixed-secret".to_string());
    let running = start(config).await.expect("starts");
    assert_eq!(
        running.info().subscription_id,
        "3f2c1a9e-8d7b-4c6a-9e5f-0a1b2c3d4e5f"
    );
    assert_eq!(running.info().client_secret, "fixed-secret");
    running.shutdown().await;

    let mut bad = Config::new(dir.path());
    bad.tenant_id = Some("not-a-guid".to_string());
    assert!(start(bad).await.is_err());
}

#[tokio::test]
async fn real_builtins_directory_is_served() {
    let specs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/specs/azure-policy");
    if !specs.is_dir() {
        eprintln!("skipping: {} not present", specs.display());
        return;
    }
    let emu = temporary(|config| config.builtins_dir = Some(specs.clone())).await;
    let token = emu.token().await;
    let filter = urlencode("category eq 'Kubernetes'");
    let (items, _) = emu
        .list_all(
            &token,
            &format!("{DEFINITIONS}?{POLICY_API}&$filter={filter}&$top=50"),
        )
        .await;
    // As many as the data holds with that category (the data set grows over time).
    let expected = std::fs::read_dir(specs.join("built-in-policies/policyDefinitions/Kubernetes"))
        .expect("Kubernetes built-ins")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .filter(|d| {
            d.pointer("/properties/metadata/category")
                .and_then(Value::as_str)
                == Some("Kubernetes")
        })
        .count();
    assert!(expected >= 18, "{expected}");
    assert_eq!(items.len(), expected);
    let def = emu
        .get_ok(
            &token,
            &format!("{DEFINITIONS}/95edb821-ddaf-4404-9732-666045e056b4?{POLICY_API}"),
        )
        .await;
    assert_eq!(
        def["properties"]["displayName"],
        "Kubernetes cluster should not allow privileged containers"
    );
    assert_eq!(def["type"], "Microsoft.Authorization/policyDefinitions");
    emu.running.shutdown().await;
}

pub(super) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Names that would decode into something else, or that ARM refuses, never reach the store:
/// an encoded `/` would shift the id's structure and invalid UTF-8 would decode lossily, so
/// two distinct names could land on the same key.
#[tokio::test]
async fn management_group_and_remediation_names_are_checked() {
    let emu = temporary_emu().await;
    let token = emu.token().await;
    let sub = emu.running.info().subscription_id.clone();
    let mg = |name: &str| {
        format!("/providers/Microsoft.Management/managementGroups/{name}?api-version=2021-04-01")
    };
    let remediation = |name: &str| {
        format!(
            "/subscriptions/{sub}/providers/Microsoft.PolicyInsights/remediations/{name}?api-version=2021-10-01"
        )
    };
    let body = serde_json::json!({"properties": {"displayName": "x"}});
    let long = "a".repeat(91);
    for name in [
        "a%2Fb",
        "a%2fsubscriptions",
        "nul%00x",
        "%FF",
        "%FE",
        "a%5Cb",
        long.as_str(),
        "a!b",
        "a%20b",
    ] {
        let (status, err) = emu.put(&token, &mg(name), &body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "management group {name}: {err}"
        );
        let (status, err) = emu.put(&token, &remediation(name), &body).await;
        // `a!b` and `a%20b` (a space inside) are fine remediation names; the rest are not.
        if name != "a!b" && name != "a%20b" && name != long {
            assert_eq!(status, StatusCode::BAD_REQUEST, "remediation {name}: {err}");
        }
    }
    let too_long = remediation(&"r".repeat(261));
    let put = (Method::PUT, too_long.as_str(), Some(&body));
    emu.expect_error(&token, put, StatusCode::BAD_REQUEST, "InvalidResourceName")
        .await;
    let (status, err) = emu.put(&token, &mg("team-a_(prod).1"), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{err}");
    let groups = "/providers/Microsoft.Management/managementGroups?api-version=2021-04-01";
    let list = emu.get_ok(&token, groups).await;
    let names: Vec<&str> = list["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(names.contains(&"team-a_(prod).1"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| !n.contains('/') && !n.contains('\u{fffd}')),
        "{names:?}"
    );
    emu.running.shutdown().await;
}

/// Listing assignments reads assignment entries only: the store may hold thousands of large
/// definitions (an entry that cannot even be decoded stands for them here).
#[tokio::test]
async fn listing_assignments_does_not_decode_other_objects() {
    let emu = temporary_emu().await;
    let token = emu.token().await;
    let sub = emu.running.info().subscription_id.clone();
    emu.running
        .state
        .store
        .insert_raw(
            &format!(
                "/subscriptions/{sub}/providers/microsoft.authorization/policydefinitions/huge"
            ),
            b"not json",
        )
        .expect("raw entry");
    let assignments =
        format!("/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments");
    emu.get_ok(&token, &format!("{assignments}?{POLICY_API}"))
        .await;
    emu.running.shutdown().await;
}
