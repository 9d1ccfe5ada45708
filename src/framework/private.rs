//! Private state: what a resource keeps about one object beside its Terraform state, under
//! keys the resource chooses. Terraform stores it as opaque bytes with the state and hands it
//! back on the next read, plan and apply; the framework only carries it.

use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrivateState(Map<String, Json>);

impl PrivateState {
    /// Bytes Terraform handed back; empty or foreign bytes (another provider version's) read
    /// as an empty private state.
    pub fn decode(bytes: &[u8]) -> PrivateState {
        match serde_json::from_slice(bytes) {
            Ok(Json::Object(m)) => PrivateState(m),
            _ => PrivateState::default(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key)
    }

    pub fn set(&mut self, key: &str, value: Json) {
        self.0.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_foreign_bytes() {
        let mut p = PrivateState::default();
        p.set("written_at_ms", serde_json::json!(17));
        assert_eq!(PrivateState::decode(&p.encode()), p);
        assert_eq!(p.get("written_at_ms"), Some(&serde_json::json!(17)));
        assert_eq!(PrivateState::decode(b""), PrivateState::default());
        assert_eq!(
            PrivateState::decode(b"\x00garbage"),
            PrivateState::default()
        );
        assert_eq!(PrivateState::decode(b"[1]"), PrivateState::default());
    }
}
