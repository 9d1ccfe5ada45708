//! Client-side pacing per subscription and operation kind, so a large parallel apply slows
//! down before ARM's token buckets run dry instead of provoking a storm of 429s.
//!
//! Each (subscription, kind) has a local estimate of ARM's bucket: every request takes a
//! token, the estimate refills at ARM's documented rate, and every response's
//! `x-ms-ratelimit-remaining-subscription-*` header resets it to what ARM says. When the
//! estimate falls to a small reserve, requests wait for the refill.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;

/// ARM's bucket kinds (reads, writes, deletes are throttled separately).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
    Delete,
}

impl Kind {
    pub fn of(method: &Method) -> Kind {
        match *method {
            Method::GET | Method::HEAD => Kind::Read,
            Method::DELETE => Kind::Delete,
            _ => Kind::Write,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Kind::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Kind::Write => "x-ms-ratelimit-remaining-subscription-writes",
            Kind::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    /// (capacity, refill per second) as ARM documents them for a subscription.
    fn bucket(self) -> (f64, f64) {
        match self {
            Kind::Read => (250.0, 25.0),
            Kind::Write | Kind::Delete => (200.0, 10.0),
        }
    }
}

/// Tokens kept back so concurrent requests never drain the bucket to zero.
const RESERVE: f64 = 5.0;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Default)]
pub struct Pacer {
    buckets: Mutex<HashMap<(String, Kind), Bucket>>,
}

/// The subscription a request URL is throttled under (`tenant` for tenant-level calls).
pub fn subscription_of(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    lower
        .split("/subscriptions/")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .filter(|s| !s.is_empty())
        .unwrap_or("tenant")
        .to_string()
}

impl Pacer {
    /// Takes a token and returns how long to wait before sending.
    pub fn acquire(&self, subscription: &str, kind: Kind) -> Duration {
        let (capacity, refill) = kind.bucket();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let b = buckets
            .entry((subscription.to_string(), kind))
            .or_insert(Bucket {
                tokens: capacity,
                updated: now,
            });
        b.tokens = (b.tokens + now.duration_since(b.updated).as_secs_f64() * refill).min(capacity);
        b.updated = now;
        b.tokens -= 1.0;
        if b.tokens >= RESERVE {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((RESERVE - b.tokens) / refill)
        }
    }

    /// Adopts ARM's own count of what is left.
    pub fn observe(&self, subscription: &str, kind: Kind, headers: &reqwest::header::HeaderMap) {
        let Some(remaining) = headers
            .get(kind.header())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            return;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets
            .entry((subscription.to_string(), kind))
            .or_insert(Bucket {
                tokens: remaining,
                updated: Instant::now(),
            });
        b.tokens = remaining;
        b.updated = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_subscription() {
        assert_eq!(
            subscription_of("https://x/subscriptions/ABC/resourceGroups/r?api-version=1"),
            "abc"
        );
        assert_eq!(
            subscription_of("https://x/providers/Microsoft.Authorization/policyDefinitions"),
            "tenant"
        );
    }

    #[test]
    fn waits_only_when_arm_says_the_bucket_is_low() {
        let p = Pacer::default();
        assert_eq!(p.acquire("s", Kind::Write), Duration::ZERO);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            "3".parse().unwrap(),
        );
        p.observe("s", Kind::Write, &h);
        let wait = p.acquire("s", Kind::Write);
        assert!(
            wait > Duration::from_millis(200) && wait < Duration::from_secs(2),
            "{wait:?}"
        );
        // Reads are a separate bucket.
        assert_eq!(p.acquire("s", Kind::Read), Duration::ZERO);
    }
}
