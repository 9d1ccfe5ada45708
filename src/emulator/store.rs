//! Persistent state: one redb file holding every emulated ARM resource, keyed by its
//! lower-cased resource id, plus a small settings table.
//!
//! Resource types share one table on purpose: ARM ids already encode the type and the parent,
//! so "children of X" is a key-prefix scan and a new resource type needs no schema change.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::timestamp::now_rfc3339;

/// Lower-cased ARM id → JSON-encoded [`StoredResource`].
const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
/// Setting name → JSON value (service principal, default subscription, ...).
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

/// Database failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redb: {0}")]
    Db(#[from] redb::Error),
    #[error("stored JSON for {key}: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

/// One ARM resource as the emulator keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredResource {
    /// The id in the casing of the request that created it (ARM echoes the creator's casing).
    pub id: String,
    /// The full response body.
    pub body: Value,
    /// Opaque change tag, new on every write.
    pub etag: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// Emulator bookkeeping never shown to clients (pending operations, timers).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub internal: Value,
}

/// What [`Store::modify`] should do with a resource.
#[derive(Debug, Clone)]
pub enum Change {
    /// Leave it as it is.
    Keep,
    /// Create or replace it (new etag; `created_at` kept).
    Put { body: Value, internal: Value },
    /// Replace it without a new etag (server-side bookkeeping such as an operation finishing).
    Settle { body: Value, internal: Value },
    /// Remove it.
    Delete,
}

impl Change {
    /// Create or replace with `body` and no bookkeeping.
    pub fn put(body: Value) -> Self {
        Change::Put {
            body,
            internal: Value::Null,
        }
    }
}

/// Handle on the state database; cheap to share behind an `Arc`.
pub struct Store {
    db: Database,
}

/// The canonical key form of an ARM id: lower case, no trailing slash.
pub fn resource_key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// The database holds the service principal's secret: only its owner may read it, whether
/// the file is new or left by an older version with the umask's mode.
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

impl Store {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        restrict_to_owner(path).map_err(db_err)?;
        let mut db = Database::create(path).map_err(db_err)?;
        // redb reuses freed pages but never returns them to the file system; compacting at
        // start keeps a long-lived state directory near the size of its data.
        let _ = db.compact().map_err(db_err)?;
        // Tables must exist before a read transaction can open them.
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(RESOURCES).map_err(db_err)?;
        tx.open_table(SETTINGS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// The resource with this id (any casing), if present.
    pub fn get(&self, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let key = resource_key(id);
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(RESOURCES).map_err(db_err)?;
        let Some(guard) = table.get(key.as_str()).map_err(db_err)? else {
            return Ok(None);
        };
        decode(&key, guard.value()).map(Some)
    }

    /// Creates or replaces a resource; keeps `created_at` of an existing one.
    pub fn put(&self, id: &str, body: Value) -> Result<StoredResource, StoreError> {
        let (_, after) = self.modify::<StoreError, _>(id, |_| Ok(Change::put(body)))?;
        // A Put change always leaves a resource behind.
        after.ok_or_else(|| StoreError::Corrupt {
            key: resource_key(id),
            source: serde::de::Error::custom("put left no resource"),
        })
    }

    /// Reads, decides and writes one resource in a single write transaction, so concurrent
    /// writers never lose each other's updates (redb serialises write transactions).
    /// Returns the resource before and after.
    pub fn modify<E, F>(
        &self,
        id: &str,
        decide: F,
    ) -> Result<(Option<StoredResource>, Option<StoredResource>), E>
    where
        E: From<StoreError>,
        F: FnOnce(Option<&StoredResource>) -> Result<Change, E>,
    {
        let key = resource_key(id);
        let tx = self.db.begin_write().map_err(db_err)?;
        let result = {
            let mut table = tx.open_table(RESOURCES).map_err(db_err)?;
            let previous = match table.get(key.as_str()).map_err(db_err)? {
                Some(guard) => Some(decode(&key, guard.value())?),
                None => None,
            };
            match decide(previous.as_ref())? {
                Change::Keep => {
                    let same = previous.clone();
                    (previous, same)
                }
                Change::Delete => {
                    table.remove(key.as_str()).map_err(db_err)?;
                    (previous, None)
                }
                change @ (Change::Put { .. } | Change::Settle { .. }) => {
                    let (body, internal, keep_etag) = match change {
                        Change::Put { body, internal } => (body, internal, false),
                        Change::Settle { body, internal } => (body, internal, true),
                        // Excluded by the outer pattern.
                        Change::Keep | Change::Delete => (Value::Null, Value::Null, false),
                    };
                    let now = now_rfc3339();
                    let stored = StoredResource {
                        id: previous
                            .as_ref()
                            .map(|p| p.id.clone())
                            .unwrap_or_else(|| id.trim_end_matches('/').to_string()),
                        body,
                        etag: match (&previous, keep_etag) {
                            (Some(p), true) => p.etag.clone(),
                            _ => format!("\"{}\"", uuid::Uuid::new_v4()),
                        },
                        created_at: previous
                            .as_ref()
                            .map(|p| p.created_at.clone())
                            .unwrap_or_else(|| now.clone()),
                        updated_at: now,
                        internal,
                    };
                    let bytes = encode(&key, &stored)?;
                    table
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(db_err)?;
                    (previous, Some(stored))
                }
            }
        };
        tx.commit().map_err(db_err)?;
        Ok(result)
    }

    /// Removes `id` and every resource below it (`id/...`), in one transaction; returns how
    /// many were removed.
    pub fn delete_tree(&self, id: &str) -> Result<usize, StoreError> {
        let key = resource_key(id);
        let below = format!("{key}/");
        let tx = self.db.begin_write().map_err(db_err)?;
        let removed = {
            let mut table = tx.open_table(RESOURCES).map_err(db_err)?;
            let mut keys = Vec::new();
            if table.get(key.as_str()).map_err(db_err)?.is_some() {
                keys.push(key.clone());
            }
            for entry in table.range(below.as_str()..).map_err(db_err)? {
                let (k, _) = entry.map_err(db_err)?;
                if !k.value().starts_with(below.as_str()) {
                    break;
                }
                keys.push(k.value().to_string());
            }
            for k in &keys {
                table.remove(k.as_str()).map_err(db_err)?;
            }
            keys.len()
        };
        tx.commit().map_err(db_err)?;
        Ok(removed)
    }

    /// Removes every resource (settings stay).
    pub fn clear_resources(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(RESOURCES).map_err(db_err)?;
            table.retain(|_, _| false).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Removes a resource, returning what was there.
    pub fn delete(&self, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let key = resource_key(id);
        let tx = self.db.begin_write().map_err(db_err)?;
        let removed = {
            let mut table = tx.open_table(RESOURCES).map_err(db_err)?;
            let removed = table.remove(key.as_str()).map_err(db_err)?;
            match removed {
                Some(guard) => Some(decode(&key, guard.value())?),
                None => None,
            }
        };
        tx.commit().map_err(db_err)?;
        Ok(removed)
    }

    /// Every resource whose key starts with `prefix` (matched case-insensitively), key order.
    pub fn list_prefix(&self, prefix: &str) -> Result<Vec<StoredResource>, StoreError> {
        let prefix = prefix.to_ascii_lowercase();
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(RESOURCES).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.range(prefix.as_str()..).map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let key = key.value();
            if !key.starts_with(prefix.as_str()) {
                break;
            }
            out.push(decode(key, value.value())?);
        }
        Ok(out)
    }

    /// Every resource whose (lower-case) key `keep` accepts, key order. Only accepted entries
    /// are decoded: a store full of large definitions must not be parsed to find assignments.
    pub fn list_matching(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(RESOURCES).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let key = key.value();
            if keep(key) {
                out.push(decode(key, value.value())?);
            }
        }
        Ok(out)
    }

    /// Stores raw bytes under a key, bypassing encoding (tests of what listings decode).
    #[cfg(test)]
    pub(crate) fn insert_raw(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(RESOURCES).map_err(db_err)?;
            table.insert(key, bytes).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Direct children of `parent_id` of one type, e.g. parent `/subscriptions/x` and
    /// `child_type` `providers/Microsoft.Authorization/policyAssignments` or `resourceGroups`.
    /// Grandchildren (ids with more segments) are excluded.
    pub fn list_children(
        &self,
        parent_id: &str,
        child_type: &str,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let parent = resource_key(parent_id);
        let prefix = format!("{parent}/{}/", child_type.trim_matches('/'));
        let all = self.list_prefix(&prefix)?;
        Ok(all
            .into_iter()
            .filter(|r| {
                let key = resource_key(&r.id);
                key.get(prefix.len()..)
                    .is_some_and(|rest| !rest.contains('/'))
            })
            .collect())
    }

    /// Reads a setting.
    pub fn setting<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(SETTINGS).map_err(db_err)?;
        let Some(guard) = table.get(name).map_err(db_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(guard.value())
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                key: name.to_string(),
                source,
            })
    }

    /// Writes a setting.
    pub fn set_setting<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
            key: name.to_string(),
            source,
        })?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(SETTINGS).map_err(db_err)?;
            table.insert(name, bytes.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<StoredResource, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}

fn encode(key: &str, stored: &StoredResource) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(stored).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}

#[cfg(test)]
impl Store {
    /// A store in a new temporary directory, which lives as long as the returned handle.
    pub(crate) fn temporary() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.redb")).expect("open store");
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listing_by_key_decodes_only_what_it_returns() {
        let (_dir, store) = Store::temporary();
        store
            .put(
                "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a",
                json!({"n": 1}),
            )
            .expect("put");
        // An entry that cannot be decoded stands for any object the listing has no business
        // parsing (such as a large definition).
        store
            .insert_raw(
                "/providers/microsoft.authorization/policydefinitions/big",
                b"not json",
            )
            .expect("insert");
        let found = store
            .list_matching(|k| k.contains("/policyassignments/"))
            .expect("not decoded");
        assert_eq!(found.len(), 1);
        assert!(
            store.list_prefix("").is_err(),
            "the bad entry is really there"
        );
    }

    #[test]
    fn database_stays_near_the_size_of_its_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.redb");
        let pad = "x".repeat(50_000);
        let mut data = 0;
        {
            let store = Store::open(&path).expect("open");
            // Rewrites as a long test session makes them: every object several times.
            for round in 0..5 {
                data = 0;
                for i in 0..50 {
                    let body = json!({"pad": pad, "round": round});
                    data += serde_json::to_vec(&body).expect("json").len() as u64;
                    store
                        .put(
                            &format!("/providers/microsoft.authorization/policydefinitions/d{i}"),
                            body,
                        )
                        .expect("put");
                }
            }
        }
        drop(Store::open(&path).expect("reopen"));
        let size = std::fs::metadata(&path).expect("stat").len();
        assert!(
            size < 2 * data,
            "database {size} bytes for {data} bytes of data"
        );
    }

    #[test]
    fn put_get_list_delete() {
        let (_dir, store) = Store::temporary();
        let a = "/subscriptions/S1/providers/Microsoft.Authorization/policyAssignments/A";
        let nested = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Authorization/policyAssignments/b";
        store.put(a, json!({"name": "A"})).expect("put");
        store.put(nested, json!({"name": "b"})).expect("put");
        let first = store.get(&a.to_lowercase()).expect("get").expect("present");
        assert_eq!(first.id, a);
        let again = store.put(a, json!({"name": "A2"})).expect("put");
        assert_eq!(again.created_at, first.created_at);
        assert_ne!(again.etag, first.etag);

        let kids = store
            .list_children(
                "/subscriptions/s1",
                "providers/microsoft.authorization/policyassignments",
            )
            .expect("list");
        assert_eq!(kids.len(), 1);
        assert_eq!(
            store.list_prefix("/subscriptions/s1/").expect("list").len(),
            2
        );

        assert!(store.delete(a).expect("delete").is_some());
        assert!(store.get(a).expect("get").is_none());
    }

    #[test]
    fn settings_persist_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path).expect("open");
            store.set_setting("k", &json!({"v": 1})).expect("set");
        }
        let store = Store::open(&path).expect("reopen");
        let v: Option<Value> = store.setting("k").expect("read");
        assert_eq!(v, Some(json!({"v": 1})));
    }
}
