//! Shared server state and the emulated tenant's identity (tenant, service principal, default
//! subscription), which is created on first start and persisted in the store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::catalogue::Catalogue;
use super::error::EmulatorError;
use super::faults::FaultProfile;
use super::gatekeeper::Templates;
use super::identities::Identities;
use super::observe::Observer;
use super::store::Store;
use super::token::TokenSigner;
use crate::policy::constraint_template::CompileCache;

const IDENTITY_SETTING: &str = "identity";

/// The tenant and its single service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Object id of the service principal (`oid` claim, used in AuthorizationFailed texts).
    pub object_id: String,
    pub subscription_id: String,
    /// Further subscriptions of the tenant (`serve --subscriptions N`), in creation order.
    #[serde(default)]
    pub extra_subscription_ids: Vec<String>,
}

impl Identity {
    /// Every subscription of the tenant, the default one first.
    pub(crate) fn subscription_ids(&self) -> Vec<String> {
        std::iter::once(self.subscription_id.clone())
            .chain(self.extra_subscription_ids.iter().cloned())
            .collect()
    }
}

/// Overrides from flags; `None` keeps the stored (or generated) value.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityOverrides {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub subscription_id: Option<String>,
    /// How many subscriptions the tenant has at least (the default one included).
    pub subscriptions: usize,
}

impl Identity {
    /// Loads the stored identity (or makes a new one), applies overrides, persists the result
    /// and makes sure the default subscription exists.
    pub(crate) fn load_or_create(
        store: &Store,
        overrides: &IdentityOverrides,
    ) -> Result<Self, EmulatorError> {
        let mut identity = match store.setting::<Identity>(IDENTITY_SETTING)? {
            Some(existing) => existing,
            None => Identity {
                tenant_id: new_guid(),
                client_id: new_guid(),
                client_secret: new_secret()?,
                object_id: new_guid(),
                subscription_id: new_guid(),
                extra_subscription_ids: Vec::new(),
            },
        };
        if let Some(v) = &overrides.tenant_id {
            identity.tenant_id = v.to_ascii_lowercase();
        }
        if let Some(v) = &overrides.client_id {
            identity.client_id = v.to_ascii_lowercase();
        }
        if let Some(v) = &overrides.client_secret {
            identity.client_secret = v.clone();
        }
        if let Some(v) = &overrides.subscription_id {
            identity.subscription_id = v.to_ascii_lowercase();
        }
        // Subscriptions are only ever added: a restart with a smaller count keeps them all.
        while identity.extra_subscription_ids.len() + 1 < overrides.subscriptions {
            identity.extra_subscription_ids.push(new_guid());
        }
        store.set_setting(IDENTITY_SETTING, &identity)?;

        for subscription in identity.subscription_ids() {
            let sub_id = format!("/subscriptions/{subscription}");
            if store.get(&sub_id)?.is_none() {
                store.put(
                    &sub_id,
                    subscription_body(&subscription, &identity.tenant_id),
                )?;
            }
        }
        Ok(identity)
    }
}

/// The ARM body of a subscription.
pub(crate) fn subscription_body(subscription_id: &str, tenant_id: &str) -> serde_json::Value {
    json!({
        "id": format!("/subscriptions/{subscription_id}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": subscription_id,
        "tenantId": tenant_id,
        "displayName": "akspolicy emulator subscription",
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        }
    })
}

pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn new_secret() -> Result<String, EmulatorError> {
    let mut bytes = [0u8; 30];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EmulatorError::SigningKey("no system randomness".to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Everything request handlers share.
pub(crate) struct AppState {
    pub store: Store,
    pub signer: TokenSigner,
    pub identity: Identity,
    /// The certificate and federated applications and the managed identity.
    pub identities: Identities,
    pub catalogue: Catalogue,
    /// Used for absolute links when a request carries no Host header.
    pub fallback_base_url: String,
    /// Active fault profile.
    pub faults: RwLock<FaultProfile>,
    /// The profile given at start, restored by `/_emulator/reset`.
    pub startup_faults: FaultProfile,
    /// Metrics, token buckets, recent writes.
    pub observer: Observer,
    /// Where Gatekeeper templates named by URL come from.
    pub templates: Templates,
    /// Compiled Gatekeeper templates.
    pub rego_cache: CompileCache,
    /// How the cluster's Gatekeeper evaluates: deadline and external data providers.
    pub evaluation: RwLock<EvaluationSettings>,
    requests: AtomicU64,
}

/// `/_emulator/evaluation`: the Gatekeeper evaluation deadline and the answers of external
/// data providers (Gatekeeper's `external_data`), which a real cluster gets from its Provider
/// resources.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSettings {
    /// Per evaluation, in milliseconds (1 to [`MAX_EVALUATION_TIMEOUT_MS`]).
    #[serde(default = "default_evaluation_timeout_ms")]
    pub timeout_ms: u64,
    /// provider -> key -> `{"value": v}` | `{"error": "..."}` (or a bare value).
    #[serde(default)]
    pub external_data: crate::policy::rego::ExternalData,
}

/// Gatekeeper's own webhook times out after seconds; a minute is more than any real template.
pub const MAX_EVALUATION_TIMEOUT_MS: u64 = 60_000;

fn default_evaluation_timeout_ms() -> u64 {
    crate::policy::rego::DEFAULT_TIMEOUT.as_millis() as u64
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        EvaluationSettings {
            timeout_ms: default_evaluation_timeout_ms(),
            external_data: Default::default(),
        }
    }
}

impl EvaluationSettings {
    /// Checks a new value: the deadline's range and the external data's shape.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_EVALUATION_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(format!(
                "timeout_ms must be from 1 to {MAX_EVALUATION_TIMEOUT_MS}, not {}",
                self.timeout_ms
            ));
        }
        if let Some((name, _)) = self.external_data.iter().find(|(_, v)| !v.is_object()) {
            return Err(format!(
                "external_data.{name} must be an object of key -> answer"
            ));
        }
        Ok(())
    }
}

impl AppState {
    #[allow(clippy::too_many_arguments)] // one per part of the state, each built at start
    pub(crate) fn new(
        store: Store,
        signer: TokenSigner,
        identity: Identity,
        identities: Identities,
        catalogue: Catalogue,
        fallback_base_url: String,
        faults: FaultProfile,
        templates: Templates,
    ) -> Self {
        Self {
            store,
            signer,
            identity,
            identities,
            catalogue,
            fallback_base_url,
            startup_faults: faults.clone(),
            faults: RwLock::new(faults),
            observer: Observer::default(),
            templates,
            rego_cache: CompileCache::default(),
            evaluation: RwLock::new(EvaluationSettings::default()),
            requests: AtomicU64::new(0),
        }
    }

    /// The limits and external data answers every Gatekeeper evaluation gets.
    pub(crate) fn eval_options(&self) -> crate::policy::rego::EvalOptions {
        let settings = match self.evaluation.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        crate::policy::rego::EvalOptions {
            timeout: std::time::Duration::from_millis(settings.timeout_ms),
            external_data: settings.external_data,
            ..Default::default()
        }
    }

    /// A copy of the active fault profile.
    pub(crate) fn fault_profile(&self) -> FaultProfile {
        // A poisoned lock only means a panic elsewhere; the profile itself is still whole.
        match self.faults.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Remaining budget reported in `x-ms-ratelimit-remaining-*`: counts down per request so
    /// clients that log it see movement, and wraps instead of ever throttling.
    pub(crate) fn remaining_budget(&self, bucket: u64) -> u64 {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        bucket - 1 - (n % bucket)
    }
}
