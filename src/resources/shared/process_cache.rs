//! Values the provider process (one Terraform phase) fetches from Azure at most once per key
//! and cloud, while callers running side by side wait for the one fetch instead of each
//! missing the cache at once. A failed fetch is not kept: the next caller tries again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::OnceCell;

use crate::arm::ArmClient;

type Cells<T> = Mutex<HashMap<String, Arc<OnceCell<T>>>>;

pub struct ProcessCache<T> {
    cells: OnceLock<Cells<T>>,
}

impl<T: Clone> Default for ProcessCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> ProcessCache<T> {
    pub const fn new() -> Self {
        ProcessCache {
            cells: OnceLock::new(),
        }
    }

    /// The value for `key` (compared ignoring case) in `client`'s cloud: the one an earlier
    /// caller fetched, else what `fetch` returns, kept when it is `Ok`.
    pub async fn get_or_try_fetch<E, F, Fut>(
        &self,
        client: &ArmClient,
        key: &str,
        fetch: F,
    ) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = format!(
            "{}|{}",
            client.cloud().resource_manager_endpoint,
            key.to_ascii_lowercase()
        );
        let cell = self
            .cells
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_try_init(fetch).await.cloned()
    }
}
