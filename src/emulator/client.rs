//! A small client for a running emulator, found through its state directory's
//! `emulator.json`: token acquisition, ARM calls and the per-cluster admission webhook. The
//! `akspolicy-emulator admit` and `cluster` subcommands use it; going through the server
//! (rather than opening the database) is what lets them run while the emulator does.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ReadyInfo;

/// Why talking to the emulator failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading {path}: {source} (is the emulator running with this --state-dir?)")]
    Info {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{status}: {body}")]
    Status { status: u16, body: String },
}

/// A connection to a running emulator.
pub struct EmulatorClient {
    http: reqwest::Client,
    base: String,
    token: String,
    /// The emulator's default subscription.
    pub subscription_id: String,
}

impl EmulatorClient {
    /// Connects using `DIR/emulator.json` and the service principal it names.
    pub async fn from_state_dir(dir: &Path) -> Result<Self, ClientError> {
        let path = dir.join(super::INFO_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ClientError::Info {
            path: path.display().to_string(),
            source,
        })?;
        let info: ReadyInfo = serde_json::from_str(&text)
            .map_err(|e| ClientError::Invalid(format!("{}: {e}", path.display())))?;
        let ca = std::fs::read(&info.ca_cert).map_err(|source| ClientError::Info {
            path: info.ca_cert.display().to_string(),
            source,
        })?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = info.arm_endpoint.trim_end_matches('/').to_string();
        let resp = http
            .post(format!("{base}/{}/oauth2/v2.0/token", info.tenant_id))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", info.client_id.as_str()),
                ("client_secret", info.client_secret.as_str()),
                ("scope", "https://management.azure.com/.default"),
            ])
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let Some(token) = body["access_token"].as_str() else {
            return Err(ClientError::Status {
                status,
                body: body.to_string(),
            });
        };
        Ok(Self {
            http,
            base,
            token: token.to_string(),
            subscription_id: info.subscription_id,
        })
    }

    /// Any request to the emulator; answers (status, JSON body or null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let mut req = self
            .http
            .request(method, format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Sends one AdmissionReview to a cluster's Gatekeeper and returns the answer.
    pub async fn admit(&self, cluster_id: &str, review: &Value) -> Result<Value, ClientError> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/_emulator/admission{}", cluster_id.trim_end_matches('/')),
                Some(review),
            )
            .await?;
        if status != 200 {
            return Err(ClientError::Status {
                status,
                body: body.to_string(),
            });
        }
        Ok(body)
    }

    /// Creates (or updates) a resource group and an AKS cluster, optionally with the policy
    /// add-on, and waits for provisioning. Returns the cluster id.
    pub async fn create_cluster(
        &self,
        subscription: Option<&str>,
        resource_group: &str,
        name: &str,
        location: &str,
        policy_addon: bool,
    ) -> Result<String, ClientError> {
        let sub = subscription.unwrap_or(&self.subscription_id);
        let rg = format!("/subscriptions/{sub}/resourceGroups/{resource_group}");
        self.expect_ok(
            reqwest::Method::PUT,
            &format!("{rg}?api-version=2021-04-01"),
            &json!({"location": location}),
        )
        .await?;
        let id = format!("{rg}/providers/Microsoft.ContainerService/managedClusters/{name}");
        self.expect_ok(
            reqwest::Method::PUT,
            &format!("{id}?{AKS_API}"),
            &json!({
                "location": location,
                "properties": {
                    "dnsPrefix": name,
                    "agentPoolProfiles": [{"name": "nodepool1", "count": 1, "vmSize": "Standard_B2s", "mode": "System"}],
                    "addonProfiles": {"azurepolicy": {"enabled": policy_addon}}
                }
            }),
        )
        .await?;
        self.wait_cluster(&id).await?;
        Ok(id)
    }

    async fn expect_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let (status, value) = self.call(method, path, Some(body)).await?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Status {
                status,
                body: value.to_string(),
            });
        }
        Ok(value)
    }

    async fn wait_cluster(&self, id: &str) -> Result<(), ClientError> {
        let started = Instant::now();
        loop {
            let (status, body) = self
                .call(reqwest::Method::GET, &format!("{id}?{AKS_API}"), None)
                .await?;
            let state = body["properties"]["provisioningState"]
                .as_str()
                .unwrap_or("Succeeded");
            if status == 200 && ["Succeeded", "Failed", "Canceled"].contains(&state) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(ClientError::Invalid(format!(
                    "cluster {id} still {state} after 2 minutes"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

const AKS_API: &str = "api-version=2026-04-01";
