//! The ARM request pipeline, in the spirit of azure_core's: small policies that each do one
//! thing, composed in a fixed order (outermost first):
//!
//! [`Deadline`] → [`Retry`] → [`Throttle`] → [`Auth`] → [`Pacing`] → [`Logging`] → [`Transport`]
//!
//! The deadline bounds everything below it (token fetches, pacing waits, body reads); the retry
//! and throttling policies also refuse to start a wait that would end past it, so the error
//! says why instead of just "timed out". azure_core's own retry policy is not used: it retries
//! POST on 5xx and retries TLS trust failures for over a minute.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::Method;

use super::client::{describe_reqwest_error, retry_after, RawResponse, RetryPolicy};
use super::credential::TokenCache;
use super::error::{ArmError, Redacted, TlsHint};
use super::pacing::{subscription_of, Kind, Pacer};

/// One ARM request as the policies see it.
#[derive(Clone)]
pub(crate) struct Request {
    pub method: Method,
    pub url: String,
    pub body: Option<Vec<u8>>,
    /// Extra headers (`If-Match`, ...).
    pub headers: Vec<(String, String)>,
    /// Set by [`Auth`] for the attempt.
    bearer: Option<String>,
}

impl Request {
    pub(crate) fn new(method: Method, url: &str, body: Option<Vec<u8>>) -> Self {
        Request {
            method,
            url: url.to_string(),
            body,
            headers: Vec::new(),
            bearer: None,
        }
    }

    /// Methods ARM defines as safe to repeat; POST actions may not be.
    fn idempotent(&self) -> bool {
        self.method != Method::POST
    }

    fn shown(&self) -> Redacted<'_> {
        Redacted(&self.url)
    }

    fn with_bearer(&self, token: &str) -> Request {
        Request {
            bearer: Some(token.to_string()),
            ..self.clone()
        }
    }
}

/// Why an attempt produced no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Nothing reached the service (connection refused): any method may be retried.
    NotSent(ArmError),
    /// The request may have reached the service (timeout, reset, body cut off): only
    /// idempotent methods are retried.
    MaybeSent(ArmError),
    /// Retrying cannot help: TLS trust, authentication, the deadline, a spent budget.
    Final(ArmError),
}

impl SendError {
    fn into_arm(self) -> ArmError {
        match self {
            SendError::NotSent(e) | SendError::MaybeSent(e) | SendError::Final(e) => e,
        }
    }
}

pub(crate) type Outcome = Result<RawResponse, SendError>;

/// State of one call across its attempts.
pub(crate) struct Call {
    started: Instant,
    deadline: Option<Duration>,
    /// 429s waited out as ARM asked, counted per call (not per attempt).
    throttled: AtomicU32,
}

impl Call {
    pub(crate) fn new(deadline: Option<Duration>) -> Self {
        Call {
            started: Instant::now(),
            deadline,
            throttled: AtomicU32::new(0),
        }
    }

    /// Whether waiting `wait` from now still ends before the deadline.
    fn allows(&self, wait: Duration) -> bool {
        self.deadline
            .is_none_or(|d| self.started.elapsed() + wait <= d)
    }
}

#[async_trait]
pub(crate) trait Policy: Send + Sync {
    async fn send(&self, call: &Call, req: &Request, next: Next<'_>) -> Outcome;
}

/// The policies after the current one.
#[derive(Clone, Copy)]
pub(crate) struct Next<'a>(&'a [Arc<dyn Policy>]);

impl Next<'_> {
    pub(crate) async fn send(self, call: &Call, req: &Request) -> Outcome {
        match self.0.split_first() {
            Some((policy, rest)) => policy.send(call, req, Next(rest)).await,
            None => Err(SendError::Final(ArmError::Config(
                "the request pipeline ends without a transport".into(),
            ))),
        }
    }
}

/// The composed policies of one client.
pub(crate) struct Pipeline {
    policies: Vec<Arc<dyn Policy>>,
    deadline: Option<Duration>,
}

impl Pipeline {
    /// ARM's pipeline in its fixed order.
    pub(crate) fn arm(retry: &RetryPolicy, tokens: TokenCache, transport: Transport) -> Self {
        Pipeline {
            policies: vec![
                Arc::new(Deadline),
                Arc::new(Retry {
                    policy: retry.clone(),
                }),
                Arc::new(Throttle {
                    max_waits: retry.max_throttled_retries,
                    cap: retry.max_retry_after,
                }),
                Arc::new(Auth { tokens }),
                Arc::new(Pacing::default()),
                Arc::new(Logging),
                Arc::new(transport),
            ],
            deadline: retry.deadline,
        }
    }

    pub(crate) async fn send(&self, req: &Request) -> Result<RawResponse, ArmError> {
        let call = Call::new(self.deadline);
        Next(&self.policies)
            .send(&call, req)
            .await
            .map_err(SendError::into_arm)
    }
}

/// Bounds the whole call, retries and waits included, by [`RetryPolicy::deadline`].
pub(crate) struct Deadline;

#[async_trait]
impl Policy for Deadline {
    async fn send(&self, call: &Call, req: &Request, next: Next<'_>) -> Outcome {
        let Some(deadline) = call.deadline else {
            return next.send(call, req).await;
        };
        let left = deadline.saturating_sub(call.started.elapsed());
        match tokio::time::timeout(left, next.send(call, req)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SendError::Final(ArmError::Timeout(format!(
                "{} {}: no response within the {}s deadline",
                req.method,
                req.shown(),
                deadline.as_secs_f64()
            )))),
        }
    }
}

/// Retries transport failures, 408, 429 and (for idempotent methods) 500/502/503/504 with
/// exponential backoff or the server's `Retry-After`, `max_retries` times.
pub(crate) struct Retry {
    pub policy: RetryPolicy,
}

/// Whether an outcome is worth another attempt.
fn retryable(outcome: &Outcome, idempotent: bool) -> bool {
    match outcome {
        Ok(raw) => match raw.status {
            408 | 429 => true,
            500 | 502 | 503 | 504 => idempotent,
            _ => false,
        },
        Err(SendError::NotSent(_)) => true,
        Err(SendError::MaybeSent(_)) => idempotent,
        Err(SendError::Final(_)) => false,
    }
}

#[async_trait]
impl Policy for Retry {
    async fn send(&self, call: &Call, req: &Request, next: Next<'_>) -> Outcome {
        let policy = &self.policy;
        let mut retry = 0u32;
        loop {
            let outcome = next.send(call, req).await;
            if !retryable(&outcome, req.idempotent()) {
                return outcome;
            }
            if retry >= policy.max_retries {
                return match outcome {
                    Ok(raw) if raw.status == 429 => Err(SendError::Final(ArmError::Throttled {
                        method: req.method.to_string(),
                        url: req.shown().to_string(),
                        attempts: retry + 1,
                    })),
                    other => other,
                };
            }
            let (delay, last) = match &outcome {
                Ok(raw) => (
                    retry_after(&raw.headers)
                        .map(|d| d.min(policy.max_retry_after))
                        .unwrap_or_else(|| policy.backoff(retry)),
                    format!("HTTP {}", raw.status),
                ),
                Err(_) => (policy.backoff(retry), "transport error".to_string()),
            };
            if !call.allows(delay) {
                return Err(SendError::Final(ArmError::Timeout(format!(
                    "{} {}: gave up after {} attempts (last: {last}); the {}s deadline would pass before the next retry",
                    req.method,
                    req.shown(),
                    retry + 1,
                    call.deadline.unwrap_or_default().as_secs_f64()
                ))));
            }
            log::debug!(
                "{} {}: retry {} in {}ms",
                req.method,
                req.shown(),
                retry + 1,
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

/// Waits out a 429 that says when to come back (`Retry-After`, capped), up to `max_waits`
/// times per call without spending [`Retry`]'s budget: throttling is expected under a large
/// parallel apply, and waiting is the right answer.
pub(crate) struct Throttle {
    pub max_waits: u32,
    pub cap: Duration,
}

#[async_trait]
impl Policy for Throttle {
    async fn send(&self, call: &Call, req: &Request, next: Next<'_>) -> Outcome {
        loop {
            let outcome = next.send(call, req).await;
            let asked = match &outcome {
                Ok(raw) if raw.status == 429 => retry_after(&raw.headers),
                _ => None,
            };
            let Some(asked) = asked else {
                return outcome;
            };
            if call.throttled.load(Ordering::Relaxed) >= self.max_waits {
                return outcome;
            }
            call.throttled.fetch_add(1, Ordering::Relaxed);
            let wait = asked.min(self.cap);
            if !call.allows(wait) {
                return Err(SendError::Final(ArmError::Timeout(format!(
                    "{} {}: throttled (429) and the {}s deadline would pass before ARM's Retry-After",
                    req.method,
                    req.shown(),
                    call.deadline.unwrap_or_default().as_secs_f64()
                ))));
            }
            log::debug!(
                "{} {}: throttled, waiting {}ms as ARM asks",
                req.method,
                req.shown(),
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// Adds the bearer token; after a 401 drops the cached token and tries once more with a
/// fresh one (it may have been revoked or rotated).
pub(crate) struct Auth {
    pub tokens: TokenCache,
}

#[async_trait]
impl Policy for Auth {
    async fn send(&self, call: &Call, req: &Request, next: Next<'_>) -> Outcome {
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| SendError::Final(e.into()))?;
        let outcome = next.send(call, &req.with_bearer(&token.token)).await;
        match &outcome {
            Ok(raw) if raw.status == 401 => {
                self.tokens.invalidate().await;
                let fresh = self
                    .tokens
                    .token()
                    .await
                    .map_err(|e| SendError::Final(e.into()))?;
                next.send(call, &req.with_bearer(&fresh.token)).await
            }
            _ => outcome,
        }
    }
}

/// Paces each attempt by the subscription's estimated ARM bucket and feeds it the remaining
/// quota ARM reports (see [`Pacer`]).
#[derive(Default)]
pub(crate) struct Pacing {
    pub pacer: Pacer,
}

#[async_trait]
impl Policy for Pacing {
    async fn send(&self, call: &Call, req: &Request, next: Next<'_>) -> Outcome {
        let subscription = subscription_of(&req.url);
        let kind = Kind::of(&req.method);
        let wait = self.pacer.acquire(&subscription, kind);
        if !wait.is_zero() {
            log::debug!(
                "pacing {} for {}ms: subscription {subscription} is near ARM's limit",
                req.method,
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
        let outcome = next.send(call, req).await;
        if let Ok(raw) = &outcome {
            self.pacer.observe(&subscription, kind, &raw.headers);
        }
        outcome
    }
}

/// Logs every attempt: method, URL without its query (it may carry tokens), status, request
/// id and time. Never headers or bodies.
pub(crate) struct Logging;

fn attempt_line(req: &Request, outcome: &Outcome, took: Duration) -> String {
    match outcome {
        Ok(raw) => format!(
            "{} {} -> {} x-ms-request-id={} in {}ms",
            req.method,
            req.shown(),
            raw.status,
            raw.header("x-ms-request-id").unwrap_or("-"),
            took.as_millis()
        ),
        Err(e) => {
            let (SendError::NotSent(e) | SendError::MaybeSent(e) | SendError::Final(e)) = e;
            format!(
                "{} {} -> failed after {}ms: {e}",
                req.method,
                req.shown(),
                took.as_millis()
            )
        }
    }
}

#[async_trait]
impl Policy for Logging {
    async fn send(&self, call: &Call, req: &Request, next: Next<'_>) -> Outcome {
        let started = Instant::now();
        let outcome = next.send(call, req).await;
        log::debug!("{}", attempt_line(req, &outcome, started.elapsed()));
        outcome
    }
}

/// Sends the request with the client's identity headers and reads the whole body.
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub user_agent: String,
    pub correlation_id: Option<String>,
}

fn transport_error(req: &Request, e: &reqwest::Error) -> SendError {
    let tls = TlsHint::of(e);
    let err = ArmError::Transport {
        method: req.method.to_string(),
        url: req.shown().to_string(),
        message: describe_reqwest_error(e),
        tls,
    };
    // An untrusted CA will not fix itself; a refused connection proves nothing was sent.
    if tls.is_some() {
        SendError::Final(err)
    } else if e.is_connect() {
        SendError::NotSent(err)
    } else if e.is_timeout() || e.is_request() {
        SendError::MaybeSent(err)
    } else {
        SendError::Final(err)
    }
}

#[async_trait]
impl Policy for Transport {
    async fn send(&self, _call: &Call, req: &Request, _next: Next<'_>) -> Outcome {
        let mut builder = self
            .http
            .request(req.method.clone(), &req.url)
            .header("User-Agent", &self.user_agent)
            .header("Accept", "application/json")
            .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
        if let Some(token) = &req.bearer {
            builder = builder.bearer_auth(token);
        }
        if let Some(c) = &self.correlation_id {
            builder = builder.header("x-ms-correlation-request-id", c);
        }
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &req.body {
            builder = builder
                .header("Content-Type", "application/json")
                .body(body.clone());
        }
        let resp = builder.send().await.map_err(|e| transport_error(req, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // A body cut off mid-way is a response we cannot use; the service may have acted.
        let body = resp.bytes().await.map_err(|e| {
            SendError::MaybeSent(ArmError::Transport {
                method: req.method.to_string(),
                url: req.shown().to_string(),
                message: format!("reading response body: {}", describe_reqwest_error(&e)),
                tls: None,
            })
        })?;
        Ok(RawResponse {
            status,
            headers,
            body: body.to_vec(),
            method: req.method.to_string(),
            url: req.url.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::credential::{AccessToken, TokenCredential, TokenFuture};
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::SystemTime;

    fn raw(status: u16, headers: &[(&str, &str)]) -> RawResponse {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        RawResponse {
            status,
            headers: map,
            body: Vec::new(),
            method: "GET".into(),
            url: "https://arm/x".into(),
        }
    }

    fn transport(kind: fn(ArmError) -> SendError) -> Outcome {
        Err(kind(ArmError::Transport {
            method: "GET".into(),
            url: "https://arm/x".into(),
            message: "connection reset".into(),
            tls: None,
        }))
    }

    /// The end of a test pipeline: answers from a script and records what it was sent.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Outcome>>,
        seen: Mutex<Vec<Request>>,
    }

    impl Scripted {
        fn new(answers: Vec<Outcome>) -> Arc<Self> {
            Arc::new(Scripted {
                answers: Mutex::new(answers.into()),
                seen: Mutex::default(),
            })
        }

        fn sent(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl Policy for Scripted {
        async fn send(&self, _: &Call, req: &Request, _: Next<'_>) -> Outcome {
            self.seen.lock().unwrap().push(req.clone());
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Ok(raw(200, &[])))
        }
    }

    /// A policy that never answers.
    struct Hang;

    #[async_trait]
    impl Policy for Hang {
        async fn send(&self, _: &Call, _: &Request, _: Next<'_>) -> Outcome {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(raw(200, &[]))
        }
    }

    async fn run(
        policy: Arc<dyn Policy>,
        end: Arc<dyn Policy>,
        method: Method,
        deadline: Option<Duration>,
    ) -> Outcome {
        let chain = [policy, end];
        Next(&chain)
            .send(
                &Call::new(deadline),
                &Request::new(method, "https://arm/subscriptions/s1/x?sig=secret", None),
            )
            .await
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
            deadline: None,
            max_throttled_retries: 2,
        }
    }

    fn status(outcome: &Outcome) -> u16 {
        outcome.as_ref().map(|r| r.status).unwrap_or(0)
    }

    struct Counting(AtomicU32);
    impl TokenCredential for Counting {
        fn get_token<'a>(&'a self, _: &'a str) -> TokenFuture<'a> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Ok(AccessToken {
                    token: format!("t{n}"),
                    expires_on: SystemTime::now() + Duration::from_secs(3600),
                })
            })
        }
    }

    #[tokio::test]
    async fn auth_adds_the_token_and_refreshes_it_once_after_a_401() {
        let credential = Arc::new(Counting(AtomicU32::new(0)));
        let auth = Arc::new(Auth {
            tokens: TokenCache::new(credential.clone(), "s".into()),
        });
        let end = Scripted::new(vec![Ok(raw(401, &[])), Ok(raw(200, &[]))]);
        let outcome = run(auth.clone(), end.clone(), Method::GET, None).await;
        assert_eq!(status(&outcome), 200);
        let bearers: Vec<_> = end
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.bearer.clone().unwrap_or_default())
            .collect();
        assert_eq!(bearers, ["t0", "t1"]);

        // A second 401 in a row is the answer: the identity lacks access, no loop.
        let end = Scripted::new(vec![Ok(raw(401, &[])), Ok(raw(401, &[]))]);
        let outcome = run(auth.clone(), end.clone(), Method::GET, None).await;
        assert_eq!(status(&outcome), 401);
        assert_eq!(end.sent(), 2);
        // The cached token is reused while it is good.
        let end = Scripted::new(vec![]);
        run(auth, end.clone(), Method::GET, None).await.unwrap();
        assert_eq!(end.seen.lock().unwrap()[0].bearer.as_deref(), Some("t2"));
        assert_eq!(credential.0.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn pacing_slows_a_subscription_arm_reports_nearly_drained() {
        let pacing = Arc::new(Pacing::default());
        let end = Scripted::new(vec![Ok(raw(
            200,
            &[("x-ms-ratelimit-remaining-subscription-reads", "0")],
        ))]);
        run(pacing.clone(), end, Method::GET, None).await.unwrap();
        assert!(!pacing.pacer.acquire("s1", Kind::Read).is_zero());
        // Other subscriptions and other kinds have their own buckets.
        assert!(pacing.pacer.acquire("s2", Kind::Read).is_zero());
        assert!(pacing.pacer.acquire("s1", Kind::Write).is_zero());
    }

    #[tokio::test]
    async fn throttle_waits_capped_retry_after_within_its_own_budget() {
        let throttle = Arc::new(Throttle {
            max_waits: 2,
            cap: Duration::from_millis(5),
        });
        // An hour's Retry-After is capped; two waits, then the answer.
        let end = Scripted::new(vec![
            Ok(raw(429, &[("retry-after-ms", "1")])),
            Ok(raw(429, &[("Retry-After", "3600")])),
            Ok(raw(200, &[])),
        ]);
        let started = Instant::now();
        let outcome = run(throttle.clone(), end.clone(), Method::GET, None).await;
        assert_eq!(status(&outcome), 200);
        assert_eq!(end.sent(), 3);
        assert!(started.elapsed() < Duration::from_secs(60));

        // The budget is per call: the third hinted 429 goes back to the caller.
        let end = Scripted::new(vec![
            Ok(raw(429, &[("retry-after-ms", "1")])),
            Ok(raw(429, &[("retry-after-ms", "1")])),
            Ok(raw(429, &[("retry-after-ms", "1")])),
        ]);
        let outcome = run(throttle.clone(), end.clone(), Method::GET, None).await;
        assert_eq!(status(&outcome), 429);
        assert_eq!(end.sent(), 3);

        // Without Retry-After it is not this policy's to wait.
        let end = Scripted::new(vec![Ok(raw(429, &[]))]);
        let outcome = run(throttle.clone(), end.clone(), Method::GET, None).await;
        assert_eq!((status(&outcome), end.sent()), (429, 1));

        // A wait past the deadline fails at once, saying so.
        let patient = Arc::new(Throttle {
            max_waits: 2,
            cap: Duration::from_secs(300),
        });
        let end = Scripted::new(vec![Ok(raw(429, &[("Retry-After", "60")]))]);
        let outcome = run(patient, end, Method::GET, Some(Duration::from_secs(1))).await;
        match outcome {
            Err(SendError::Final(ArmError::Timeout(m))) => {
                assert!(m.contains("Retry-After"), "{m}")
            }
            other => panic!("{:?}", other.map(|r| r.status)),
        }
    }

    #[tokio::test]
    async fn retry_repeats_only_what_is_safe_to_repeat() {
        let retry = || Arc::new(Retry { policy: fast() });
        let end = Scripted::new(vec![Ok(raw(503, &[])), Ok(raw(200, &[]))]);
        assert_eq!(
            status(&run(retry(), end.clone(), Method::GET, None).await),
            200
        );
        assert_eq!(end.sent(), 2);

        // POST is not repeated after a 5xx or when it may have reached ARM...
        let end = Scripted::new(vec![Ok(raw(503, &[]))]);
        assert_eq!(
            status(&run(retry(), end.clone(), Method::POST, None).await),
            503
        );
        assert_eq!(end.sent(), 1);
        let end = Scripted::new(vec![transport(SendError::MaybeSent)]);
        assert!(run(retry(), end.clone(), Method::POST, None).await.is_err());
        assert_eq!(end.sent(), 1);
        // ...but is when the connection was refused.
        let end = Scripted::new(vec![transport(SendError::NotSent)]);
        assert_eq!(
            status(&run(retry(), end.clone(), Method::POST, None).await),
            200
        );
        // A body cut off is retried for GET; a final error never.
        let end = Scripted::new(vec![transport(SendError::MaybeSent)]);
        assert_eq!(
            status(&run(retry(), end.clone(), Method::GET, None).await),
            200
        );
        let end = Scripted::new(vec![transport(SendError::Final)]);
        assert!(run(retry(), end.clone(), Method::GET, None).await.is_err());
        assert_eq!(end.sent(), 1);

        // Still throttled after every retry: a Throttled error with the attempts.
        let end = Scripted::new((0..4).map(|_| Ok(raw(429, &[]))).collect());
        match run(retry(), end, Method::GET, None).await {
            Err(SendError::Final(ArmError::Throttled { attempts, .. })) => assert_eq!(attempts, 4),
            other => panic!("{:?}", other.map(|r| r.status)),
        }
        // Other statuses come back as they are once retries are spent.
        let end = Scripted::new((0..4).map(|_| Ok(raw(502, &[]))).collect());
        assert_eq!(
            status(&run(retry(), end.clone(), Method::GET, None).await),
            502
        );
        assert_eq!(end.sent(), 4);
    }

    #[tokio::test]
    async fn retry_of_a_cut_off_body_respects_the_deadline() {
        let mut policy = fast();
        policy.base_delay = Duration::from_secs(5);
        policy.max_delay = Duration::from_secs(5);
        let retry = Arc::new(Retry { policy });
        let end = Scripted::new((0..4).map(|_| transport(SendError::MaybeSent)).collect());
        let started = Instant::now();
        let outcome = run(
            retry,
            end.clone(),
            Method::GET,
            Some(Duration::from_secs(1)),
        )
        .await;
        match outcome {
            Err(SendError::Final(ArmError::Timeout(m))) => {
                assert!(
                    m.contains("gave up after 1 attempts (last: transport error)"),
                    "{m}"
                )
            }
            other => panic!("{:?}", other.map(|r| r.status)),
        }
        assert_eq!(end.sent(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn deadline_bounds_everything_below_it() {
        let outcome = run(
            Arc::new(Deadline),
            Arc::new(Hang),
            Method::GET,
            Some(Duration::from_millis(50)),
        )
        .await;
        match outcome {
            Err(SendError::Final(ArmError::Timeout(m))) => {
                assert!(m.contains("no response within"), "{m}");
                assert!(!m.contains("secret"), "{m}");
            }
            other => panic!("{:?}", other.map(|r| r.status)),
        }
        // Without a deadline the call is left alone.
        let end = Scripted::new(vec![]);
        assert_eq!(
            status(&run(Arc::new(Deadline), end, Method::GET, None).await),
            200
        );
    }

    #[test]
    fn attempt_lines_drop_the_query_and_name_the_request_id() {
        let req = Request::new(Method::GET, "https://arm/x?$skiptoken=secret", None);
        let line = attempt_line(
            &req,
            &Ok(raw(200, &[("x-ms-request-id", "rid-1")])),
            Duration::from_millis(7),
        );
        assert_eq!(
            line,
            "GET https://arm/x?… -> 200 x-ms-request-id=rid-1 in 7ms"
        );
        let line = attempt_line(
            &req.with_bearer("eyJ-token"),
            &transport(SendError::NotSent),
            Duration::from_millis(3),
        );
        assert!(
            line.starts_with("GET https://arm/x?… -> failed after 3ms"),
            "{line}"
        );
        assert!(!line.contains("secret") && !line.contains("eyJ"), "{line}");
    }
}
