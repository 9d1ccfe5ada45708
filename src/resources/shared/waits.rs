//! Waiting out ARM's eventual consistency after deletes: Azure Policy answers a DELETE before
//! every replica has forgotten the object, so a replacement that creates the same name right
//! away could still find the old one. Also the `timeouts` defaults of the policy resources,
//! which bound these waits.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::arm::{ArmClient, ArmError};
use crate::framework::timeouts::TimeoutDefaults;

/// Policy objects answer in seconds; these match azurerm's policy resources.
pub const POLICY_TIMEOUTS: TimeoutDefaults = TimeoutDefaults {
    create: Duration::from_secs(30 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(30 * 60),
    delete: Duration::from_secs(30 * 60),
};

/// How long a deleted object may stay visible before we give up waiting (it is gone for ARM's
/// purposes either way; this only avoids a confusing "already exists" on an immediate create).
pub const GONE_BUDGET: Duration = Duration::from_secs(120);

/// How long after a write a 404 may still be a replica lagging behind, and a list may predate
/// the object: reads of objects written this recently GET them, and confirm a 404.
pub const RECENT_WRITE: Duration = Duration::from_secs(300);
const GONE_INTERVAL: Duration = Duration::from_secs(2);

/// Polls `GET path` until it answers 404 or `budget` (at most [`GONE_BUDGET`], less when the
/// delete's own timeout has less left) is spent; then logs and returns.
pub async fn wait_until_gone(
    client: &ArmClient,
    path: &str,
    api_version: &str,
    budget: Duration,
) -> Result<(), ArmError> {
    let started = Instant::now();
    loop {
        match client.get_optional::<Json>(path, api_version).await? {
            None => return Ok(()),
            Some(_) if started.elapsed() + GONE_INTERVAL > budget => {
                log::warn!("{path} is still readable {budget:?} after its deletion");
                return Ok(());
            }
            Some(_) => {
                log::debug!("{path} still readable after delete; waiting");
                tokio::time::sleep(GONE_INTERVAL).await;
            }
        }
    }
}
