//! Bounded retries for ARM's eventual consistency: right after a create, reads can 404, new role
//! assignments answer 403 `AuthorizationFailed` for minutes, and an assignment that references a
//! just-created definition can get 400 `PolicyDefinitionNotFound`.

use super::error::ArmError;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long and how often to retry.
#[derive(Debug, Clone)]
pub struct ConsistencyOptions {
    /// Total time budget (default 5 min).
    pub timeout: Duration,
    /// Pause between attempts (default 5 s).
    pub interval: Duration,
}

impl Default for ConsistencyOptions {
    fn default() -> Self {
        ConsistencyOptions {
            timeout: Duration::from_secs(300),
            interval: Duration::from_secs(5),
        }
    }
}

/// True for errors that typically clear up once ARM caches and RBAC catch up.
pub fn is_propagation_error(e: &ArmError) -> bool {
    match e {
        ArmError::Api(a) => match a.status {
            404 => true,
            403 => matches!(
                a.code.as_str(),
                "AuthorizationFailed" | "LinkedAuthorizationFailed"
            ),
            400 => matches!(
                a.code.as_str(),
                "PolicyDefinitionNotFound" | "PolicySetDefinitionNotFound" | "PrincipalNotFound"
            ),
            _ => false,
        },
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails with an error `transient` rejects, or the budget is
/// spent (then the last error is returned).
pub async fn retry_while<T, F, Fut>(
    opts: &ConsistencyOptions,
    transient: impl Fn(&ArmError) -> bool,
    mut op: F,
) -> Result<T, ArmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ArmError>>,
{
    let started = Instant::now();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) && started.elapsed() + opts.interval <= opts.timeout => {
                log::debug!(
                    "waiting {}ms for ARM consistency: {}",
                    opts.interval.as_millis(),
                    e.to_string().lines().next().unwrap_or("")
                );
                tokio::time::sleep(opts.interval).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(status: u16, code: &str) -> ArmError {
        ArmError::from_response(
            status,
            format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#).as_bytes(),
            "GET",
            "https://x/y",
            None,
            None,
        )
    }

    #[test]
    fn classifies_propagation_errors() {
        assert!(is_propagation_error(&api(404, "ResourceNotFound")));
        assert!(is_propagation_error(&api(403, "AuthorizationFailed")));
        assert!(is_propagation_error(&api(400, "PolicyDefinitionNotFound")));
        assert!(!is_propagation_error(&api(
            403,
            "RequestDisallowedByPolicy"
        )));
        assert!(!is_propagation_error(&api(400, "InvalidPolicyRule")));
    }

    #[tokio::test]
    async fn retries_until_success_or_budget() {
        let opts = ConsistencyOptions {
            timeout: Duration::from_millis(200),
            interval: Duration::from_millis(10),
        };
        let n = AtomicU32::new(0);
        let v = retry_while(&opts, is_propagation_error, || async {
            if n.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(api(404, "NotFound"))
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 7);

        let started = Instant::now();
        let e = retry_while(&opts, is_propagation_error, || async {
            Err::<(), _>(api(404, "NotFound"))
        })
        .await
        .unwrap_err();
        assert!(e.is_not_found());
        assert!(started.elapsed() < Duration::from_millis(400));

        let calls = AtomicU32::new(0);
        let e = retry_while(&opts, is_propagation_error, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api(400, "InvalidPolicyRule"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), Some("InvalidPolicyRule"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
