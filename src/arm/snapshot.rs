//! Batched reads: when a refresh reads many objects of one collection (say 3000 assignments at
//! one subscription), one paged ARM list answers them all instead of one GET each. ARM's read
//! budget is a 250-token bucket per principal refilled at 25/s, so GETs alone cannot refresh a
//! landing zone quickly; lists of up to 1000 items a page can.
//!
//! The decision is adaptive and per collection: the first read of a collection in this process
//! is told to GET (a lone object keeps its single cheap call); from the second read on, one
//! list is fetched (single-flight: concurrent readers wait for the same list) and every later
//! read of that collection is answered from it. A snapshot is only ever a source of *found*
//! objects: an object missing from it, a list that failed or was throttled, or an item that does
//! not decode sends the caller back to its GET, so every guarantee of the GET path (404
//! confirmation for fresh writes, typed errors) still holds. Callers GET objects they wrote
//! recently themselves instead of asking a snapshot that may predate the write.
//!
//! Memory: a snapshot keeps each listed object as its JSON text, parsed only when a read asks
//! for it, and hands each object out once (a refresh reads every object once; a second read of
//! the same object GETs it). A parsed `serde_json::Value` costs several times its text, and
//! 3000 of them held for the whole refresh were most of the provider's resident memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value as Json;

use super::ArmClient;

/// How long a list answers reads. A refresh reads everything within seconds to minutes; a
/// longer-lived provider process (an apply that also plans) lists again after this.
const SNAPSHOT_TTL: Duration = Duration::from_secs(120);

/// The largest page ARM's policy lists allow (`$top`); fewer pages, fewer reads.
pub const MAX_PAGE: &str = "1000";

/// One ARM collection a snapshot lists: `path?$filter=...&$top=...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Collection {
    pub path: String,
    pub api_version: &'static str,
    /// `$filter`, e.g. `atExactScope()` or `policyType eq 'Custom'`.
    pub filter: Option<String>,
    /// Whether the collection takes `$top` (policy assignments and definitions do).
    pub paged_by_top: bool,
}

impl Collection {
    fn key(&self) -> String {
        format!(
            "{}?{}&{}",
            self.path.to_ascii_lowercase(),
            self.api_version,
            self.filter.as_deref().unwrap_or_default()
        )
    }
}

/// Items of one list not yet handed out, by lower-cased ARM id; `None` when the list could
/// not be had.
type Items = Option<Mutex<HashMap<String, Box<str>>>>;

/// One item of a list page, kept as compact JSON text. Each item is parsed on its own and
/// turned back into text at once, so at most one item's parsed form is alive at a time.
struct ListedItem {
    /// Lower-cased `id`; items without one cannot answer a read by id.
    id: Option<String>,
    text: Box<str>,
}

impl<'de> Deserialize<'de> for ListedItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ListedItem, D::Error> {
        let value = Json::deserialize(deserializer)?;
        let id = value
            .get("id")
            .and_then(Json::as_str)
            .map(str::to_ascii_lowercase);
        let text = serde_json::to_string(&value).map_err(D::Error::custom)?;
        Ok(ListedItem {
            id,
            text: text.into_boxed_str(),
        })
    }
}

struct Cell {
    readers: AtomicUsize,
    listed_at: Instant,
    items: tokio::sync::OnceCell<Items>,
}

impl Cell {
    fn new() -> Arc<Cell> {
        Arc::new(Cell {
            readers: AtomicUsize::new(0),
            listed_at: Instant::now(),
            items: tokio::sync::OnceCell::new(),
        })
    }
}

/// Per-process snapshots of ARM collections (one provider instance = one Terraform phase).
#[derive(Default)]
pub struct ListSnapshots {
    cells: Mutex<HashMap<String, Arc<Cell>>>,
    /// Objects this process wrote, by lower-cased id, and when: never answered from a list
    /// that may predate the write.
    written: Mutex<HashMap<String, Instant>>,
}

/// What a snapshot says about one object.
#[derive(Debug)]
pub enum SnapshotRead<T> {
    /// The object as the list returned it.
    Found(T),
    /// The snapshot cannot answer (first read of the collection, list failed, not in the list,
    /// undecodable): GET the object.
    Get,
}

impl ListSnapshots {
    pub fn new() -> ListSnapshots {
        ListSnapshots::default()
    }

    /// Records that this process is writing `id` (call before the write is sent).
    pub fn note_write(&self, id: &str) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_ascii_lowercase(), Instant::now());
    }

    fn written_since(&self, id: &str, since: Instant) -> bool {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id.to_ascii_lowercase())
            .is_some_and(|at| *at >= since)
    }

    /// Looks `id` up in the snapshot of `collection`, listing it when this is the collection's
    /// second read (or later) and no fresh snapshot exists yet.
    pub async fn read<T: DeserializeOwned>(
        &self,
        client: &ArmClient,
        collection: &Collection,
        id: &str,
    ) -> SnapshotRead<T> {
        let cell = self.cell(collection);
        if cell.readers.fetch_add(1, Ordering::SeqCst) == 0 {
            return SnapshotRead::Get;
        }
        let items = cell.items.get_or_init(|| list(client, collection)).await;
        if self.written_since(id, cell.listed_at) {
            return SnapshotRead::Get;
        }
        let Some(text) = items.as_ref().and_then(|m| {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id.to_ascii_lowercase())
        }) else {
            return SnapshotRead::Get;
        };
        match serde_json::from_str(&text) {
            Ok(v) => SnapshotRead::Found(v),
            Err(e) => {
                log::debug!("listed {id} does not decode ({e}); reading it with GET");
                SnapshotRead::Get
            }
        }
    }

    fn cell(&self, collection: &Collection) -> Arc<Cell> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let cell = cells.entry(collection.key()).or_insert_with(Cell::new);
        if cell.listed_at.elapsed() > SNAPSHOT_TTL && cell.items.initialized() {
            // Keep the reader count: the collection is known to be read in bulk.
            let fresh = Cell::new();
            fresh.readers.store(1, Ordering::SeqCst);
            *cell = fresh;
        }
        cell.clone()
    }
}

async fn list(client: &ArmClient, collection: &Collection) -> Items {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(filter) = collection.filter.as_deref() {
        query.push(("$filter", filter));
    }
    if collection.paged_by_top {
        query.push(("$top", MAX_PAGE));
    }
    match client
        .list::<ListedItem>(&collection.path, collection.api_version, &query)
        .await
    {
        Ok(items) => {
            log::debug!(
                "listed {} item(s) of {} to answer reads",
                items.len(),
                collection.path
            );
            Some(Mutex::new(
                items
                    .into_iter()
                    .filter_map(|item| Some((item.id?, item.text)))
                    .collect(),
            ))
        }
        Err(e) => {
            log::info!(
                "listing {} failed ({e}); reading its objects one GET each",
                collection.path
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::client::tests::{client_for, fast};
    use crate::arm::testutil::{Response, TestServer};

    const ASSIGNMENTS: &str =
        "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments";

    fn collection() -> Collection {
        Collection {
            path: ASSIGNMENTS.to_string(),
            api_version: "2023-04-01",
            filter: Some("atExactScope()".into()),
            paged_by_top: true,
        }
    }

    fn count(server: &TestServer) -> usize {
        server.requests.lock().expect("lock").len()
    }

    #[tokio::test]
    async fn first_read_gets_then_one_list_answers_the_rest() {
        let server = TestServer::start(|req| {
            assert!(req.path.starts_with(ASSIGNMENTS), "{}", req.path);
            req.assert_path_has("%24top=1000");
            req.assert_path_has("atExactScope");
            Response::json(
                200,
                &format!(
                    r#"{{"value": [{{"id": "{ASSIGNMENTS}/A", "name": "A"}}, {{"id": "{ASSIGNMENTS}/b", "name": "b"}}, {{"id": "{ASSIGNMENTS}/c", "name": "c"}}]}}"#
                ),
            )
        })
        .await;
        let client = client_for(&server, fast()).await;
        let snapshots = ListSnapshots::new();
        let c = collection();
        let first = snapshots
            .read::<Json>(&client, &c, &format!("{ASSIGNMENTS}/a"))
            .await;
        assert!(
            matches!(first, SnapshotRead::Get),
            "a lone read keeps its GET"
        );
        assert_eq!(count(&server), 0);
        for name in ["a", "B"] {
            match snapshots
                .read::<Json>(&client, &c, &format!("{ASSIGNMENTS}/{name}"))
                .await
            {
                SnapshotRead::Found(v) => {
                    assert!(v["name"]
                        .as_str()
                        .unwrap_or_default()
                        .eq_ignore_ascii_case(name))
                }
                SnapshotRead::Get => panic!("{name} should come from the list"),
            }
        }
        // Not in the list: the caller GETs, and so meets a 404 the usual way.
        let missing = snapshots
            .read::<Json>(&client, &c, &format!("{ASSIGNMENTS}/gone"))
            .await;
        assert!(matches!(missing, SnapshotRead::Get));
        // Each listed object answers one read; a second read of it GETs.
        let again = snapshots
            .read::<Json>(&client, &c, &format!("{ASSIGNMENTS}/a"))
            .await;
        assert!(matches!(again, SnapshotRead::Get));
        assert_eq!(count(&server), 1, "one list answers every read");

        // Written by this process after the list: only a GET can tell its new content.
        snapshots.note_write(&format!("{ASSIGNMENTS}/c"));
        let written = snapshots
            .read::<Json>(&client, &c, &format!("{ASSIGNMENTS}/c"))
            .await;
        assert!(matches!(written, SnapshotRead::Get));
    }

    #[tokio::test]
    async fn a_failed_list_sends_every_reader_back_to_get() {
        let server = TestServer::answering(Response::arm_error(400, "InvalidFilter", "no")).await;
        let client = client_for(&server, fast()).await;
        let snapshots = ListSnapshots::new();
        let c = collection();
        for _ in 0..3 {
            let read = snapshots
                .read::<Json>(&client, &c, &format!("{ASSIGNMENTS}/a"))
                .await;
            assert!(matches!(read, SnapshotRead::Get));
        }
        assert_eq!(count(&server), 1, "a failed list is not repeated");
    }
}
