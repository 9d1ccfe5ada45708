//! The azurerm-ordered chain of credentials, remembering the first that worked.

use super::*;

/// Tries credentials in order, remembering the first that worked.
pub struct ChainedCredential {
    sources: Vec<(String, Arc<dyn TokenCredential>, bool)>,
    winner: AtomicUsize,
}

const NO_WINNER: usize = usize::MAX;

impl ChainedCredential {
    /// `explicit` marks credentials the user configured with material (secret, certificate,
    /// OIDC token): when one fails the chain stops instead of silently acting as another
    /// identity (for example the CLI's logged-in user), like azurerm which uses the first
    /// configured method exclusively.
    pub fn new(sources: Vec<(String, Arc<dyn TokenCredential>, bool)>) -> Self {
        ChainedCredential {
            sources,
            winner: AtomicUsize::new(NO_WINNER),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.sources.iter().map(|(n, _, _)| n.as_str()).collect()
    }
}

impl TokenCredential for ChainedCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let w = self.winner.load(Ordering::Relaxed);
            if let Some((_, cred, _)) = self.sources.get(w) {
                return cred.get_token(scope).await;
            }
            let mut attempts = Vec::new();
            for (i, (name, cred, explicit)) in self.sources.iter().enumerate() {
                match cred.get_token(scope).await {
                    Ok(t) => {
                        log::debug!("authenticated with {name}");
                        self.winner.store(i, Ordering::Relaxed);
                        return Ok(t);
                    }
                    Err(e) => {
                        log::debug!("credential {name} failed: {e}");
                        attempts.push((name.clone(), e.to_string()));
                        if *explicit {
                            if self.sources.len() == 1 {
                                return Err(e);
                            }
                            break;
                        }
                    }
                }
            }
            Err(AuthError::NoCredential(attempts))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::credential::test_support::*;
    use std::sync::atomic::AtomicU32;

    struct Failing(&'static str, bool);
    impl TokenCredential for Failing {
        fn get_token<'a>(&'a self, _scope: &'a str) -> TokenFuture<'a> {
            boxed(async move {
                if self.1 {
                    Err(AuthError::Rejected {
                        flow: "x",
                        code: "invalid_client".into(),
                        description: self.0.into(),
                    })
                } else {
                    Err(AuthError::Transport {
                        flow: "x",
                        message: self.0.into(),
                    })
                }
            })
        }
    }

    #[tokio::test]
    async fn chain_lists_failures_and_stops_on_failed_explicit_credential() {
        let chain = ChainedCredential::new(vec![
            (
                "managed identity".into(),
                Arc::new(Failing("no IMDS", false)),
                false,
            ),
            (
                "azure cli".into(),
                Arc::new(Failing("not logged in", false)),
                false,
            ),
        ]);
        let text = chain.get_token("s").await.unwrap_err().to_string();
        assert!(
            text.contains("managed identity: x: no IMDS")
                && text.contains("azure cli: x: not logged in"),
            "{text}"
        );

        let cli = Arc::new(Counting(AtomicU32::new(0), 3600));
        let chain = ChainedCredential::new(vec![
            (
                "client secret".into(),
                Arc::new(Failing("bad secret", true)),
                true,
            ),
            ("azure cli".into(), cli.clone(), false),
        ]);
        assert!(chain.get_token("s").await.is_err());
        assert_eq!(
            cli.0.load(Ordering::SeqCst),
            0,
            "must not fall back to another identity"
        );
    }
}
