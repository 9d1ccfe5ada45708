//! Fault injection profile (`POST /_emulator/faults`, `serve --faults FILE.json`): throttling,
//! random errors, dropped connections, latency, an eventual-consistency window and slow or
//! failing long-running operations.

use serde::{Deserialize, Serialize};

/// Largest `latency_ms` and `response_delay_ms`: 10 minutes, longer than any client timeout
/// worth testing, and every delayed request holds a connection.
pub const MAX_DELAY_MS: u64 = 10 * 60 * 1000;
/// Largest `consistency_ms`: one hour.
pub const MAX_CONSISTENCY_MS: u64 = 60 * 60 * 1000;
/// Largest `lro_ms`: one day.
pub const MAX_LRO_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest `policy_evaluation_ms`: one day (Azure's standard cycle is a day).
pub const MAX_POLICY_EVALUATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest `token_lifetime_s`: one day, Entra ID's own upper bound for access tokens.
pub const MAX_TOKEN_LIFETIME_S: u64 = 24 * 60 * 60;

/// The active profile. Field names are the JSON keys of the control API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultProfile {
    /// ARM token buckets per subscription and principal (429 + Retry-After when empty).
    #[serde(default)]
    pub throttle: bool,
    /// Share of ARM requests answered 500/503 (0.0–1.0).
    #[serde(default)]
    pub error_rate: f64,
    /// Share of ARM responses whose connection is dropped mid-body (0.0–1.0).
    #[serde(default)]
    pub drop_rate: f64,
    /// Added to every ARM request before it is handled.
    #[serde(default)]
    pub latency_ms: u64,
    /// Added to every ARM response after the request took effect: the window in which a
    /// client has changed Azure but not yet heard so (a crash then leaves an orphan).
    #[serde(default)]
    pub response_delay_ms: u64,
    /// A GET this soon after a PUT of the same resource answers 404.
    #[serde(default)]
    pub consistency_ms: u64,
    /// How long managed-cluster operations and remediations take.
    #[serde(default = "default_lro_ms")]
    pub lro_ms: u64,
    /// Share of long-running operations that end Failed (0.0–1.0).
    #[serde(default)]
    pub lro_failure_rate: f64,
    /// Lifetime of access tokens issued from now on, in seconds (at least 1). Short values
    /// let tests watch clients refresh after ARM's `ExpiredAuthenticationToken`.
    #[serde(default = "default_token_lifetime_s")]
    pub token_lifetime_s: u64,
    /// How long a new or changed policy assignment takes to take effect (Deny at write time,
    /// policy states): Azure's evaluation cycle. 0 evaluates at once.
    #[serde(default)]
    pub policy_evaluation_ms: u64,
    /// Microsoft.Authorization's own limit per principal, in requests per fixed minute (0:
    /// off). Azure answers past it with 429 `ResourceRequestsThrottled` ("Number of requests
    /// for Microsoft.Authorization exceeded the limit of '120' for time interval '00:01:00'"):
    /// 120 is the figure Azure has reported to landing-zone users; it is not published.
    #[serde(default)]
    pub authorization_requests_per_minute: u32,
    /// How long a new managed identity (a policy assignment's) stays unknown to Entra ID:
    /// role assignments naming it answer 400 `PrincipalNotFound` until then unless they give
    /// `principalType`, as Azure's replication delay makes them. 0: known at once.
    #[serde(default)]
    pub principal_replication_ms: u64,
}

fn default_lro_ms() -> u64 {
    1500
}

/// Entra ID's default lifetime for client-credentials tokens.
fn default_token_lifetime_s() -> u64 {
    3600
}

impl Default for FaultProfile {
    fn default() -> Self {
        Self {
            throttle: false,
            error_rate: 0.0,
            drop_rate: 0.0,
            latency_ms: 0,
            response_delay_ms: 0,
            consistency_ms: 0,
            lro_ms: default_lro_ms(),
            lro_failure_rate: 0.0,
            token_lifetime_s: default_token_lifetime_s(),
            policy_evaluation_ms: 0,
            authorization_requests_per_minute: 0,
            principal_replication_ms: 0,
        }
    }
}

/// A partial update: omitted keys keep their value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub throttle: Option<bool>,
    pub error_rate: Option<f64>,
    pub drop_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub response_delay_ms: Option<u64>,
    pub consistency_ms: Option<u64>,
    pub lro_ms: Option<u64>,
    pub lro_failure_rate: Option<f64>,
    pub token_lifetime_s: Option<u64>,
    pub policy_evaluation_ms: Option<u64>,
    pub authorization_requests_per_minute: Option<u32>,
    pub principal_replication_ms: Option<u64>,
}

impl FaultProfile {
    /// Applies a patch, refusing rates outside 0.0–1.0, a token lifetime of 0 and values above
    /// the `MAX_*` bounds (nothing changes on error).
    pub fn apply(&mut self, patch: &FaultPatch) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", patch.error_rate),
            ("drop_rate", patch.drop_rate),
            ("lro_failure_rate", patch.lro_failure_rate),
        ] {
            if let Some(r) = rate {
                if !(0.0..=1.0).contains(&r) {
                    return Err(format!("{name} must be between 0.0 and 1.0, not {r}"));
                }
            }
        }
        if patch.token_lifetime_s == Some(0) {
            return Err("token_lifetime_s must be at least 1".to_string());
        }
        // Bounded so that every "now + value" the emulator computes stays far from overflow
        // (u64::MAX seconds used to wrap into tokens that were already expired).
        for (name, value, max) in [
            ("latency_ms", patch.latency_ms, MAX_DELAY_MS),
            ("response_delay_ms", patch.response_delay_ms, MAX_DELAY_MS),
            ("consistency_ms", patch.consistency_ms, MAX_CONSISTENCY_MS),
            ("lro_ms", patch.lro_ms, MAX_LRO_MS),
            (
                "policy_evaluation_ms",
                patch.policy_evaluation_ms,
                MAX_POLICY_EVALUATION_MS,
            ),
            (
                "principal_replication_ms",
                patch.principal_replication_ms,
                MAX_CONSISTENCY_MS,
            ),
            (
                "token_lifetime_s",
                patch.token_lifetime_s,
                MAX_TOKEN_LIFETIME_S,
            ),
        ] {
            if let Some(v) = value {
                if v > max {
                    return Err(format!("{name} must be at most {max}, not {v}"));
                }
            }
        }
        if let Some(v) = patch.throttle {
            self.throttle = v;
        }
        if let Some(v) = patch.error_rate {
            self.error_rate = v;
        }
        if let Some(v) = patch.drop_rate {
            self.drop_rate = v;
        }
        if let Some(v) = patch.latency_ms {
            self.latency_ms = v;
        }
        if let Some(v) = patch.response_delay_ms {
            self.response_delay_ms = v;
        }
        if let Some(v) = patch.consistency_ms {
            self.consistency_ms = v;
        }
        if let Some(v) = patch.lro_ms {
            self.lro_ms = v;
        }
        if let Some(v) = patch.lro_failure_rate {
            self.lro_failure_rate = v;
        }
        if let Some(v) = patch.token_lifetime_s {
            self.token_lifetime_s = v;
        }
        if let Some(v) = patch.policy_evaluation_ms {
            self.policy_evaluation_ms = v;
        }
        if let Some(v) = patch.authorization_requests_per_minute {
            self.authorization_requests_per_minute = v;
        }
        if let Some(v) = patch.principal_replication_ms {
            self.principal_replication_ms = v;
        }
        Ok(())
    }

    /// Reads a profile file (any subset of the keys).
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let patch: FaultPatch =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut profile = Self::default();
        profile.apply(&patch)?;
        Ok(profile)
    }
}

/// A uniform random number in [0, 1).
pub(crate) fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// True with probability `rate`.
pub(crate) fn chance(rate: f64) -> bool {
    rate > 0.0 && random_unit() < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_keeps_omitted_keys_and_checks_rates() {
        let mut p = FaultProfile::default();
        let patch: FaultPatch =
            serde_json::from_str(r#"{"throttle": true, "lro_ms": 10}"#).expect("parses");
        p.apply(&patch).expect("applies");
        assert!(p.throttle);
        assert_eq!(p.lro_ms, 10);
        assert_eq!(p.error_rate, 0.0);
        assert_eq!(p.token_lifetime_s, 3600);
        let lifetime: FaultPatch =
            serde_json::from_str(r#"{"token_lifetime_s": 5}"#).expect("parses");
        p.apply(&lifetime).expect("applies");
        assert_eq!(p.token_lifetime_s, 5);
        let delay: FaultPatch =
            serde_json::from_str(r#"{"response_delay_ms": 7}"#).expect("parses");
        p.apply(&delay).expect("applies");
        assert_eq!((p.response_delay_ms, p.latency_ms), (7, 0));
        let zero: FaultPatch =
            serde_json::from_str(r#"{"token_lifetime_s": 0, "lro_ms": 1}"#).expect("parses");
        assert!(p.apply(&zero).is_err());
        assert_eq!(p.lro_ms, 10, "a refused patch changes nothing");
        let bad: FaultPatch = serde_json::from_str(r#"{"error_rate": 2}"#).expect("parses");
        assert!(p.apply(&bad).is_err());
        assert!(serde_json::from_str::<FaultPatch>(r#"{"nope": 1}"#).is_err());
        for _ in 0..100 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
        assert!(!chance(0.0));
        assert!(chance(1.0));
    }

    #[test]
    fn numbers_have_documented_maximums() {
        let mut p = FaultProfile::default();
        for (key, max) in [
            ("latency_ms", MAX_DELAY_MS),
            ("response_delay_ms", MAX_DELAY_MS),
            ("consistency_ms", MAX_CONSISTENCY_MS),
            ("lro_ms", MAX_LRO_MS),
            ("policy_evaluation_ms", MAX_POLICY_EVALUATION_MS),
            ("token_lifetime_s", MAX_TOKEN_LIFETIME_S),
        ] {
            let at_max: FaultPatch =
                serde_json::from_str(&format!(r#"{{"{key}": {max}}}"#)).unwrap();
            p.apply(&at_max).expect(key);
            for too_big in [max + 1, u64::MAX] {
                let patch: FaultPatch =
                    serde_json::from_str(&format!(r#"{{"{key}": {too_big}}}"#)).unwrap();
                let err = p.apply(&patch).unwrap_err();
                assert!(err.contains(&format!("at most {max}")), "{err}");
            }
        }
        // Beyond u64 or negative is refused when parsing.
        assert!(serde_json::from_str::<FaultPatch>(r#"{"lro_ms": 18446744073709551616}"#).is_err());
        assert!(serde_json::from_str::<FaultPatch>(r#"{"lro_ms": -1}"#).is_err());
    }

    #[test]
    fn profile_file_for_serve_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("faults.json");
        std::fs::write(&path, r#"{"latency_ms": 5, "lro_failure_rate": 0.5}"#).expect("write");
        let p = FaultProfile::from_file(&path).expect("loads");
        assert_eq!(p.latency_ms, 5);
        assert_eq!(p.lro_failure_rate, 0.5);
        assert_eq!(p.lro_ms, FaultProfile::default().lro_ms);
        std::fs::write(&path, r#"{"token_lifetime_s": 7}"#).expect("write");
        let p = FaultProfile::from_file(&path).expect("loads");
        assert_eq!(p.token_lifetime_s, 7);
        std::fs::write(&path, r#"{"token_lifetime_s": 0}"#).expect("write");
        assert!(FaultProfile::from_file(&path).is_err());
        std::fs::write(&path, r#"{"latency": 5}"#).expect("write");
        assert!(
            FaultProfile::from_file(&path).is_err(),
            "unknown keys are refused"
        );
        assert!(FaultProfile::from_file(&dir.path().join("missing.json")).is_err());
    }
}
