//! Runtime bookkeeping behind fault injection and `/_emulator/metrics`: request counters,
//! ARM token buckets and the eventual-consistency window. All in memory: a restart starts
//! with full buckets and zero counters, as a fresh ARM region would.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Which ARM bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OperationKind {
    Read,
    Write,
    Delete,
}

impl OperationKind {
    /// From the HTTP method, as ARM classifies requests.
    pub(crate) fn of(method: &http::Method) -> Self {
        match *method {
            http::Method::GET | http::Method::HEAD => Self::Read,
            http::Method::DELETE => Self::Delete,
            _ => Self::Write,
        }
    }

    /// (burst, refill per second) from ARM's documented per-principal limits.
    fn limits(self) -> (f64, f64) {
        match self {
            Self::Read => (250.0, 25.0),
            Self::Write | Self::Delete => (200.0, 10.0),
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Read => "reads",
            Self::Write => "writes",
            Self::Delete => "deletes",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The outcome of taking a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Throttle {
    /// Allowed; this many tokens remain.
    Allowed(u64),
    /// Refused; retry after this many whole seconds.
    Refused(u64),
}

/// Counters and buckets shared by all requests.
#[derive(Default)]
pub(crate) struct Observer {
    metrics: Mutex<HashMap<(String, String, u16), u64>>,
    buckets: Mutex<HashMap<(String, String, OperationKind), Bucket>>,
    writes: Mutex<HashMap<String, Instant>>,
    /// Per-principal fixed windows of a resource provider's own limit: (start, count).
    provider_windows: Mutex<HashMap<(String, String), (Instant, u32)>>,
}

impl Observer {
    /// Counts one finished request.
    pub(crate) fn record(&self, method: &str, route: &str, status: u16) {
        let mut m = lock(&self.metrics);
        *m.entry((method.to_string(), route.to_string(), status))
            .or_insert(0) += 1;
    }

    /// `{"requests": [{method, route, status, count}]}`, sorted for stable output.
    pub(crate) fn metrics_json(&self) -> Value {
        let m = lock(&self.metrics);
        let mut rows: Vec<_> = m.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        json!({"requests": rows.into_iter().map(|((method, route, status), count)| json!({
            "method": method, "route": route, "status": status, "count": count
        })).collect::<Vec<_>>()})
    }

    /// Takes a token from the (subscription, principal, kind) bucket.
    pub(crate) fn take(
        &self,
        subscription: &str,
        principal: &str,
        kind: OperationKind,
    ) -> Throttle {
        let (burst, refill) = kind.limits();
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry((
                subscription.to_ascii_lowercase(),
                principal.to_string(),
                kind,
            ))
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Throttle::Allowed(bucket.tokens as u64)
        } else {
            let wait = ((1.0 - bucket.tokens) / refill).ceil().max(1.0);
            Throttle::Refused(wait as u64)
        }
    }

    /// Counts a request against a resource provider's own limit of `limit` requests per
    /// `window` for `principal` (a fixed window, as the RP's error message describes it).
    pub(crate) fn take_provider(
        &self,
        namespace: &str,
        principal: &str,
        limit: u32,
        window: Duration,
    ) -> Throttle {
        let now = Instant::now();
        let mut windows = lock(&self.provider_windows);
        let entry = windows
            .entry((namespace.to_ascii_lowercase(), principal.to_string()))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 < limit {
            entry.1 += 1;
            Throttle::Allowed(u64::from(limit - entry.1))
        } else {
            let left = window.saturating_sub(now.duration_since(entry.0));
            Throttle::Refused(left.as_secs().max(1))
        }
    }

    /// Notes a successful write of `key` (lower-cased id) for the consistency window.
    pub(crate) fn wrote(&self, key: &str) {
        let mut w = lock(&self.writes);
        // Bounded: forget entries far outside any sensible window.
        if w.len() > 10_000 {
            let cutoff = Duration::from_secs(600);
            w.retain(|_, at| at.elapsed() < cutoff);
        }
        w.insert(key.to_string(), Instant::now());
    }

    /// True when `key` was written less than `window` ago.
    pub(crate) fn within_window(&self, key: &str, window: Duration) -> bool {
        lock(&self.writes)
            .get(key)
            .is_some_and(|at| at.elapsed() < window)
    }

    /// Forgets counters, buckets and writes (for `/_emulator/reset`).
    pub(crate) fn clear(&self) {
        lock(&self.metrics).clear();
        lock(&self.provider_windows).clear();
        lock(&self.buckets).clear();
        lock(&self.writes).clear();
    }
}

/// Locks, recovering from poisoning: the maps stay consistent because every critical section
/// is a single insert or update.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The route template of a request path, for metrics: names become `{name}` placeholders,
/// keywords and provider types stay (lower-cased), e.g.
/// `/subscriptions/{}/resourcegroups/{}/providers/microsoft.containerservice/managedclusters/{}`.
pub(crate) fn route_template(segments: &[String]) -> String {
    if segments.is_empty() {
        return "/".to_string();
    }
    let first = segments[0].to_ascii_lowercase();
    if first == super::routes::templates::PREFIX {
        return format!("/{first}/{{path}}");
    }
    if first == "_emulator" || first == "metadata" {
        return format!("/{}", segments.join("/").to_ascii_lowercase());
    }
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    if lower
        .iter()
        .any(|s| s == "oauth2" || s == ".well-known" || s == "discovery")
    {
        let rest: Vec<&str> = lower[1..].iter().map(String::as_str).collect();
        return format!("/{{tenant}}/{}", rest.join("/"));
    }
    let mut out = String::new();
    let mut i = 0;
    while i < lower.len() {
        let seg = &lower[i];
        if seg == "providers" && i + 1 < lower.len() {
            out.push_str("/providers/");
            out.push_str(&lower[i + 1]);
            i += 2;
            continue;
        }
        out.push('/');
        out.push_str(seg);
        if i + 1 < lower.len() {
            out.push_str("/{}");
        }
        i += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        crate::emulator::http::raw_segments(p)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn templates_hide_names() {
        assert_eq!(
            route_template(&segs("/subscriptions/abc/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c1")),
            "/subscriptions/{}/resourcegroups/{}/providers/microsoft.containerservice/managedclusters/{}"
        );
        assert_eq!(
            route_template(&segs(
                "/providers/Microsoft.Authorization/policyDefinitions"
            )),
            "/providers/microsoft.authorization/policydefinitions"
        );
        assert_eq!(
            route_template(&segs("/t1/oauth2/v2.0/token")),
            "/{tenant}/oauth2/v2.0/token"
        );
        assert_eq!(
            route_template(&segs("/_emulator/faults")),
            "/_emulator/faults"
        );
    }

    #[test]
    fn buckets_refuse_when_empty() {
        let o = Observer::default();
        let mut refused = None;
        for _ in 0..300 {
            if let Throttle::Refused(s) = o.take("s", "p", OperationKind::Write) {
                refused = Some(s);
                break;
            }
        }
        assert_eq!(refused, Some(1));
        assert!(matches!(
            o.take("other", "p", OperationKind::Write),
            Throttle::Allowed(_)
        ));
        o.record("GET", "/x", 200);
        o.record("GET", "/x", 200);
        assert_eq!(o.metrics_json()["requests"][0]["count"], 2);
    }

    #[test]
    fn a_provider_limit_is_a_fixed_window_per_principal() {
        let o = Observer::default();
        let window = Duration::from_secs(60);
        for left in (0..3).rev() {
            assert_eq!(
                o.take_provider("Microsoft.Authorization", "p", 3, window),
                Throttle::Allowed(left)
            );
        }
        match o.take_provider("microsoft.authorization", "p", 3, window) {
            Throttle::Refused(secs) => assert!((1..=60).contains(&secs), "{secs}"),
            other => panic!("the fourth request in the window was {other:?}"),
        }
        assert!(matches!(
            o.take_provider("Microsoft.Authorization", "other", 3, window),
            Throttle::Allowed(2)
        ));
        // A new window starts afresh.
        assert!(matches!(
            o.take_provider("Microsoft.Authorization", "q", 1, Duration::ZERO),
            Throttle::Allowed(0)
        ));
        assert!(matches!(
            o.take_provider("Microsoft.Authorization", "q", 1, Duration::ZERO),
            Throttle::Allowed(0)
        ));
    }
}
