//! Long-running operations (ARM RPC async pattern): `Azure-AsyncOperation`, `Location` and
//! `provisioningState` polling.

use super::client::{retry_after, ArmClient, RawResponse};
use super::error::ArmError;
use reqwest::Method;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Polling cadence and budget.
#[derive(Debug, Clone)]
pub struct LroOptions {
    /// Delay when the service sends no `Retry-After` (default 10 s).
    pub default_delay: Duration,
    /// Lower bound for any delay, even `Retry-After: 0` (default 1 s).
    pub min_delay: Duration,
    /// Upper bound for a server-requested delay (default 2 min).
    pub max_delay: Duration,
    /// Give up after this long (default 3 h; Terraform timeouts usually cancel earlier).
    pub timeout: Duration,
}

impl Default for LroOptions {
    fn default() -> Self {
        LroOptions {
            default_delay: Duration::from_secs(10),
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(120),
            timeout: Duration::from_secs(3 * 3600),
        }
    }
}

impl LroOptions {
    /// Millisecond cadence for tests against local fakes.
    pub fn fast_for_tests() -> Self {
        LroOptions {
            default_delay: Duration::from_millis(10),
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }

    fn delay_after(&self, resp: &RawResponse) -> Duration {
        retry_after(&resp.headers)
            .unwrap_or(self.default_delay)
            .clamp(self.min_delay, self.max_delay)
    }
}

#[derive(Deserialize, Default)]
struct OperationStatus {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<OpError>,
    #[serde(default)]
    properties: Option<StateProps>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StateProps {
    #[serde(default)]
    provisioning_state: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
struct OpError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

enum State {
    Running,
    Succeeded,
    Failed(String, OpError),
}

fn classify(state: Option<&str>) -> State {
    match state.map(str::to_ascii_lowercase).as_deref() {
        // A missing state means the RP does not do async work: treat as done.
        None | Some("succeeded") => State::Succeeded,
        Some(s @ ("failed" | "canceled" | "cancelled")) => {
            State::Failed(s.to_string(), OpError::default())
        }
        Some(_) => State::Running,
    }
}

fn provisioning_state(resp: &RawResponse) -> Option<String> {
    serde_json::from_slice::<OperationStatus>(&resp.body)
        .ok()
        .and_then(|s| s.properties)
        .and_then(|p| p.provisioning_state)
}

/// True when the initial response asks the caller to wait.
pub(crate) fn is_long_running(resp: &RawResponse) -> bool {
    resp.status == 202
        || resp.header("azure-asyncoperation").is_some()
        || matches!(
            classify(provisioning_state(resp).as_deref()),
            State::Running
        )
}

fn failed(status: String, err: OpError) -> ArmError {
    ArmError::OperationFailed {
        status,
        code: if err.code.is_empty() {
            "-".into()
        } else {
            err.code
        },
        message: if err.message.is_empty() {
            "no error details were returned".into()
        } else {
            err.message
        },
    }
}

/// Polls until the operation is terminal. Returns the final `Location` response when the
/// operation was tracked through `Location` (its body is the action's result).
pub(crate) async fn wait(
    client: &ArmClient,
    initial: &RawResponse,
    opts: &LroOptions,
) -> Result<Option<RawResponse>, ArmError> {
    let started = Instant::now();
    let mut delay = opts.delay_after(initial);
    let check_deadline = |what: &str| {
        if started.elapsed() > opts.timeout {
            Err(ArmError::Timeout(format!(
                "{what} did not finish within {}s",
                opts.timeout.as_secs()
            )))
        } else {
            Ok(())
        }
    };

    if let Some(op_url) = initial.header("azure-asyncoperation").map(str::to_string) {
        loop {
            tokio::time::sleep(delay).await;
            check_deadline("the long-running operation")?;
            let resp = client.send(Method::GET, &op_url, None).await?;
            // go-azure-sdk treats 404/202 from the status monitor as still running.
            if resp.status == 404 || resp.status == 202 {
                delay = opts.delay_after(&resp);
                continue;
            }
            if !(200..300).contains(&resp.status) {
                return Err(resp_error(resp));
            }
            let st: OperationStatus = resp.json()?;
            match classify(st.status.as_deref()) {
                State::Running => delay = opts.delay_after(&resp),
                State::Succeeded => break,
                State::Failed(s, _) => return Err(failed(s, st.error.unwrap_or_default())),
            }
        }
        // For POST with a Location the result lives there.
        if initial.method == "POST" {
            if let Some(loc) = initial.header("location") {
                let r = client.expect_success(Method::GET, loc, None).await?;
                return Ok(Some(r));
            }
        }
        return Ok(None);
    }

    if let Some(loc) = initial.header("location").map(str::to_string) {
        loop {
            tokio::time::sleep(delay).await;
            check_deadline("the long-running operation")?;
            let resp = client.send(Method::GET, &loc, None).await?;
            match resp.status {
                202 => delay = opts.delay_after(&resp),
                200..=299 => return Ok(Some(resp)),
                _ => return Err(resp_error(resp)),
            }
        }
    }

    // No headers: poll the resource's provisioningState (PUT/PATCH pattern).
    if initial.method == "PUT" || initial.method == "PATCH" {
        loop {
            tokio::time::sleep(delay).await;
            check_deadline("provisioning")?;
            let resp = client
                .expect_success(Method::GET, &initial.url, None)
                .await?;
            match classify(provisioning_state(&resp).as_deref()) {
                State::Running => delay = opts.delay_after(&resp),
                State::Succeeded => return Ok(None),
                State::Failed(s, e) => return Err(failed(s, e)),
            }
        }
    }
    Ok(None)
}

fn resp_error(resp: RawResponse) -> ArmError {
    let rid = resp.header("x-ms-request-id").map(str::to_string);
    ArmError::from_response(
        resp.status,
        &resp.body,
        &resp.method,
        &super::error::Redacted(&resp.url).to_string(),
        rid,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::client::tests::{client_for, fast};
    use crate::arm::testutil::{Response, TestServer};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn put_follows_azure_async_operation_then_gets_resource() {
        let polls = Arc::new(AtomicU32::new(0));
        let p2 = polls.clone();
        let server = TestServer::start(move |req| {
            let base = req.base_url();
            match (
                req.method.as_str(),
                req.path.split('?').next().unwrap_or(""),
            ) {
                ("PUT", "/mc") => {
                    Response::json(201, r#"{"properties":{"provisioningState":"Creating"}}"#)
                        .with_header(
                            "Azure-AsyncOperation",
                            &format!("{base}/ops/1?api-version=1"),
                        )
                        .with_header("Retry-After", "0")
                }
                ("GET", "/ops/1") => {
                    let n = p2.fetch_add(1, Ordering::SeqCst);
                    if n == 0 {
                        // Status monitors can 404 briefly right after the operation starts.
                        Response::arm_error(404, "NotFound", "x")
                    } else if n < 2 {
                        Response::json(200, r#"{"status":"InProgress"}"#)
                    } else {
                        Response::json(200, r#"{"status":"Succeeded"}"#)
                    }
                }
                ("GET", "/mc") => {
                    Response::json(200, r#"{"properties":{"provisioningState":"Succeeded"}}"#)
                }
                _ => Response::empty(400),
            }
        })
        .await;
        let c = client_for(&server, fast()).await;
        let v: serde_json::Value = c
            .put("/mc", "1", &serde_json::json!({"x": 1}))
            .await
            .unwrap();
        assert_eq!(v["properties"]["provisioningState"], "Succeeded");
        assert_eq!(polls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn failed_operation_surfaces_error_details() {
        let server = TestServer::start(|req| {
            let base = req.base_url();
            if req.method == "DELETE" {
                Response::empty(202).with_header("Azure-AsyncOperation", &format!("{base}/ops/2"))
            } else {
                Response::json(200, r#"{"status":"Failed","error":{"code":"ReconcileError","message":"node pool broke"}}"#)
            }
        })
        .await;
        let c = client_for(&server, fast()).await;
        let e = c.delete("/mc", "1").await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("ReconcileError") && text.contains("node pool broke"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn post_202_location_returns_final_body_and_honours_retry_after() {
        let polls = Arc::new(AtomicU32::new(0));
        let p2 = polls.clone();
        let server = TestServer::start(move |req| {
            let base = req.base_url();
            if req.method == "POST" {
                return Response::empty(202)
                    .with_header("Location", &format!("{base}/results/1"))
                    .with_header("Retry-After", "1");
            }
            if p2.fetch_add(1, Ordering::SeqCst) == 0 {
                Response::empty(202).with_header("Retry-After", "0")
            } else {
                Response::json(200, r#"{"done":true}"#)
            }
        })
        .await;
        let c = client_for(&server, fast()).await;
        let t = Instant::now();
        let v: serde_json::Value = c
            .post("/triggerEvaluation", "1", None::<&serde_json::Value>)
            .await
            .unwrap();
        assert!(t.elapsed() >= Duration::from_secs(1));
        assert_eq!(v["done"], true);
    }

    #[tokio::test]
    async fn provisioning_state_polling_and_cancelled() {
        let gets = Arc::new(AtomicU32::new(0));
        let g2 = gets.clone();
        let server = TestServer::start(move |req| {
            if req.method == "PUT" {
                return Response::json(200, r#"{"properties":{"provisioningState":"Accepted"}}"#);
            }
            if g2.fetch_add(1, Ordering::SeqCst) == 0 {
                Response::json(200, r#"{"properties":{"provisioningState":"Evaluating"}}"#)
            } else {
                Response::json(200, r#"{"properties":{"provisioningState":"Cancelled"}}"#)
            }
        })
        .await;
        let c = client_for(&server, fast()).await;
        let e = c
            .put::<_, serde_json::Value>("/rem", "1", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(e, ArmError::OperationFailed { .. }), "{e}");
        assert!(e.to_string().contains("cancelled"));
    }
}
