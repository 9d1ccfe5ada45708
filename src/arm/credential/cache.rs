//! The per-client token cache in front of every credential.

use super::*;

/// Per-client token cache: refreshes 5 minutes before expiry (half-way through the lifetime of
/// tokens shorter than 10 minutes); concurrent callers wait for one refresh instead of each
/// asking Entra ID.
pub struct TokenCache {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    current: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: AccessToken,
    refresh_at: SystemTime,
}

impl CachedToken {
    fn new(token: AccessToken, now: SystemTime) -> Self {
        // A fixed 5-minute margin would make a short-lived token (workload identity
        // exchanges, test endpoints) count as expired on arrival, so every request would
        // fetch a new one.
        let lifetime = token.expires_on.duration_since(now).unwrap_or_default();
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let refresh_at = token.expires_on - margin;
        CachedToken { token, refresh_at }
    }
}

const REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl TokenCache {
    pub fn new(credential: Arc<dyn TokenCredential>, scope: String) -> Self {
        TokenCache {
            credential,
            scope,
            current: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut guard = self.current.lock().await;
        if let Some(cached) = guard.as_ref() {
            if SystemTime::now() < cached.refresh_at {
                return Ok(cached.token.clone());
            }
        }
        let fresh = self.credential.get_token(&self.scope).await?;
        *guard = Some(CachedToken::new(fresh.clone(), SystemTime::now()));
        Ok(fresh)
    }

    /// Drops the cached token (after a 401 with it).
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::credential::test_support::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn cache_shares_one_refresh_and_refreshes_near_expiry() {
        let cred = Arc::new(Counting(AtomicU32::new(0), 3600));
        let cache = Arc::new(TokenCache::new(cred.clone(), "s".into()));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.token().await.unwrap().token })
            })
            .collect();
        for h in handles {
            assert_eq!(h.await.unwrap(), "t0");
        }
        assert_eq!(cred.0.load(Ordering::SeqCst), 1);

        // A 2-minute token is used for its first minute, not refreshed on every call.
        let short = Arc::new(Counting(AtomicU32::new(0), 120));
        let cache = TokenCache::new(short.clone(), "s".into());
        cache.token().await.unwrap();
        cache.token().await.unwrap();
        assert_eq!(short.0.load(Ordering::SeqCst), 1);

        // An already expired token is replaced at once.
        let expired = Arc::new(Counting(AtomicU32::new(0), 0));
        let cache = TokenCache::new(expired.clone(), "s".into());
        cache.token().await.unwrap();
        cache.token().await.unwrap();
        assert_eq!(expired.0.load(Ordering::SeqCst), 2);
    }
}
