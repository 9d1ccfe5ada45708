//! Waiting out ARM's eventual consistency after deletes: Azure Policy answers a DELETE before
//! every replica has forgotten the object, so a replacement that creates the same name right
//! away could still find the old one.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::arm::{ArmClient, ArmError};

/// How long a deleted object may stay visible before we give up waiting (it is gone for ARM's
/// purposes either way; this only avoids a confusing "already exists" on an immediate create).
const GONE_BUDGET: Duration = Duration::from_secs(120);
const GONE_INTERVAL: Duration = Duration::from_secs(2);

/// Polls `GET path` until it answers 404 or the budget is spent (then logs and returns).
pub async fn wait_until_gone(
    client: &ArmClient,
    path: &str,
    api_version: &str,
) -> Result<(), ArmError> {
    let started = Instant::now();
    loop {
        match client.get_optional::<Json>(path, api_version).await? {
            None => return Ok(()),
            Some(_) if started.elapsed() + GONE_INTERVAL > GONE_BUDGET => {
                log::warn!("{path} is still readable {GONE_BUDGET:?} after its deletion");
                return Ok(());
            }
            Some(_) => {
                log::debug!("{path} still readable after delete; waiting");
                tokio::time::sleep(GONE_INTERVAL).await;
            }
        }
    }
}
