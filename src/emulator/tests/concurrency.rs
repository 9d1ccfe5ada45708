//! Concurrency and durability: many clients at once lose no update and see no 5xx that was
//! not injected; a `kill -9` mid-write loses nothing that was acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::clusters::{create_cluster, fast_emu};
use super::{start_config, start_emu};
use super::{ADDON_DINE, AKS_API, POLICY_API, RESOURCES_API};
use crate::emulator::client::EmulatorClient;
use crate::emulator::Config;

const CLIENTS: usize = 32;
/// Short by default so the suite stays fast; raise with AKSPOLICY_EMULATOR_SOAK_SECS.
fn soak() -> Duration {
    let secs = std::env::var("AKSPOLICY_EMULATOR_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_lose_no_update() {
    let (emu, token, sub) = fast_emu(20).await;
    let emu = Arc::new(emu);
    let cluster = format!("{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/shared?{AKS_API}");
    create_cluster(
        &emu,
        &token,
        &cluster,
        &json!({"location": "westeurope", "tags": {"n": "0"}}),
    )
    .await;

    let increments = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + soak();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let emu = emu.clone();
        let token = token.clone();
        let sub = sub.clone();
        let cluster = cluster.clone();
        let increments = increments.clone();
        tasks.push(tokio::spawn(async move {
            let mut last_written: Option<(String, u64)> = None;
            let mut round = 0u64;
            let mut server_errors = Vec::new();
            while Instant::now() < deadline {
                round += 1;
                // Own resource: create/update/read/delete cycle.
                let name = format!("c{client}-{}", round % 3);
                let url = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/{name}?{POLICY_API}");
                let body = json!({"properties": {
                    "policyDefinitionId": ADDON_DINE,
                    "metadata": {"round": round}}});
                let (status, _) = emu.put(&token, &url, &body).await;
                if status.is_server_error() {
                    server_errors.push(format!("PUT {status}"));
                }
                if status == StatusCode::CREATED {
                    last_written = Some((url.clone(), round));
                }
                if round.is_multiple_of(5) {
                    let (status, _) = emu.delete(&token, &url).await;
                    if status.is_server_error() {
                        server_errors.push(format!("DELETE {status}"));
                    }
                    if last_written.as_ref().is_some_and(|(u, _)| u == &url) {
                        last_written = None;
                    }
                }
                let (status, _, _) = emu.get(Some(&token), &format!("{sub}/providers/Microsoft.Authorization/policyAssignments?{POLICY_API}")).await;
                if status.is_server_error() {
                    server_errors.push(format!("LIST {status}"));
                }
                // Shared resource: optimistic increment with If-Match.
                let (status, _, current) = emu.get(Some(&token), &cluster).await;
                if status.is_server_error() {
                    server_errors.push(format!("GET {status}"));
                }
                if status != StatusCode::OK {
                    continue;
                }
                let n: u64 = current["tags"]["n"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                let etag = current["eTag"].as_str().unwrap_or_default().to_string();
                let resp = emu
                    .client
                    .patch(format!("{}{cluster}", emu.base))
                    .bearer_auth(&token)
                    .header("If-Match", etag)
                    .json(&json!({"tags": {"n": (n + 1).to_string()}}))
                    .send()
                    .await
                    .expect("patch");
                match resp.status() {
                    StatusCode::OK => {
                        increments.fetch_add(1, Ordering::SeqCst);
                    }
                    // Lost the race: a stale eTag, or another PATCH still running.
                    StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {}
                    s => server_errors.push(format!("PATCH {s}")),
                }
            }
            // The last acknowledged write of this client's live resource is what a read sees.
            if let Some((url, round)) = last_written {
                let (status, _, body) = emu.get(Some(&token), &url).await;
                if status == StatusCode::OK {
                    let seen = body["properties"]["metadata"]["round"].as_u64().unwrap_or(0);
                    assert!(seen >= round, "{url}: wrote round {round}, read {seen}");
                }
            }
            server_errors
        }));
    }
    let mut errors: Vec<String> = Vec::new();
    for t in tasks {
        errors.extend(t.await.expect("client task"));
    }
    assert!(errors.is_empty(), "5xx without injection: {errors:?}");
    let (_, _, current) = emu.get(Some(&token), &cluster).await;
    let n: u64 = current["tags"]["n"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ok = increments.load(Ordering::SeqCst);
    assert!(ok > 0, "some increments must win");
    assert_eq!(n, ok, "every acknowledged increment is in the final value");
}

/// Run only as the child of `kill_dash_nine_keeps_acknowledged_writes`.
#[tokio::test]
#[ignore = "spawned by kill_dash_nine_keeps_acknowledged_writes"]
async fn durability_child_server() {
    let Ok(dir) = std::env::var("AKSPOLICY_EMULATOR_CHILD_DIR") else {
        return;
    };
    let _emu = start_emu(std::path::Path::new(&dir)).await;
    // Serve until killed.
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn kill_dash_nine_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "emulator::tests::concurrency::durability_child_server",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AKSPOLICY_EMULATOR_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("child starts");
    // Ready once the child has written its own emulator.json.
    let info_path = dir.path().join("emulator.json");
    let pid = child.id();
    let ready = || {
        let text = std::fs::read_to_string(&info_path).unwrap_or_default();
        serde_json::from_str::<Value>(&text).is_ok_and(|info| info["pid"] == pid)
    };
    let patience = super::Patience::new();
    while !ready() && patience.lasts() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !ready() {
        let _ = child.kill();
        panic!("child emulator did not become ready");
    }
    // The child's own identity, CA and token, found through its state directory.
    let client = EmulatorClient::from_state_dir(dir.path())
        .await
        .expect("client connects");
    let sub = format!("/subscriptions/{}", client.subscription_id);
    let client = Arc::new(client);

    // Writers run until the kill; each records what was acknowledged.
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, sub, acked) = (client.clone(), sub.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let group = json!({"location": "westeurope"});
            for i in 0.. {
                let id = format!("{sub}/resourceGroups/w{w}-{i}");
                let url = format!("{id}?{RESOURCES_API}");
                match client.call(Method::PUT, &url, Some(&group)).await {
                    Ok((201, _)) => {
                        if let Ok(mut a) = acked.lock() {
                            a.push(id);
                        }
                    }
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // SIGKILL: no shutdown path runs.
    child.kill().expect("kill -9");
    let _ = child.wait();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(
        acked.len() > 5,
        "writes happened before the kill ({})",
        acked.len()
    );

    let mut config = Config::new(dir.path());
    config.faults.lro_ms = 10;
    let emu = start_config(config).await;
    let token = emu.token().await;
    for id in &acked {
        let url = format!("{id}?{RESOURCES_API}");
        let (status, _, body) = emu.get(Some(&token), &url).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{id} was acknowledged before the kill: {body}"
        );
    }
}
