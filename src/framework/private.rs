//! The provider's private per-resource data that Terraform stores beside the state and hands
//! back unchanged: when the provider last wrote the remote object. Reads use it to tell a
//! replica that has not yet seen a fresh write (answer 404, wait) from an object deleted
//! outside Terraform (believe the 404 at once).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateData {
    /// Milliseconds since the Unix epoch of the last successful create or update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at_ms: Option<u64>,
}

impl PrivateData {
    /// Stamped now.
    pub fn written_now() -> PrivateData {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        PrivateData {
            written_at_ms: Some(ms),
        }
    }

    /// Decodes what Terraform handed back; anything unreadable (another provider version's
    /// format, nothing at all) counts as no data.
    pub fn decode(bytes: &[u8]) -> PrivateData {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// When the provider last wrote the object, if it recorded it.
    pub fn written_at(&self) -> Option<SystemTime> {
        self.written_at_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_foreign_bytes() {
        let stamp = PrivateData::written_now();
        assert_eq!(PrivateData::decode(&stamp.encode()), stamp);
        let age = SystemTime::now()
            .duration_since(stamp.written_at().expect("stamped"))
            .unwrap_or_default();
        assert!(age < Duration::from_secs(5));
        assert_eq!(PrivateData::decode(b""), PrivateData::default());
        assert_eq!(PrivateData::decode(b"\x00garbage"), PrivateData::default());
        assert_eq!(PrivateData::default().written_at(), None);
    }
}
