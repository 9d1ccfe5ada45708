//! The long-running operations on a cluster: their records, polling, settling what has
//! finished on a read, and abort.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::emulator::faults::chance;
use crate::emulator::http::Response;
use crate::emulator::routes::arm::{
    empty, error::ErrorResponse, now_ms, now_rfc3339, ok_json, ArmRequest,
};
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::{Change, StoredResource};

use super::{absolute, not_found, set_header};
use crate::policy::kubernetes::MANAGED_CLUSTERS;

/// `.../locations/{loc}/operations/{id}` (Azure-AsyncOperation) and
/// `.../locations/{loc}/operationresults/{id}` (Location).
pub(crate) fn handle_operation(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    req.allow_if(req.http.method == Method::GET && req.path.is_item())?;
    let requested = req.path.resource_id();
    // Both URLs name the same operation record.
    let op_id = {
        let lower = requested.to_ascii_lowercase();
        match lower.rfind("/operationresults/") {
            Some(i) => format!(
                "{}/operations/{}",
                &requested[..i],
                &requested[i + "/operationresults/".len()..]
            ),
            None => requested.clone(),
        }
    };
    let Some(op) = state.store.get(&op_id)? else {
        return Err(ErrorResponse::not_found(
            "NotFound",
            format!(
                "Operation '{}' was not found.",
                req.path.item_name().unwrap_or_default()
            ),
        ));
    };
    let target = op.internal["target"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    settle(state, &target)?;
    let canceled = op.internal["canceled"].as_bool().unwrap_or(false);
    let done = canceled || now_ms() >= op.internal["done_ms"].as_u64().unwrap_or(0);
    let failed = op.internal["fail"].as_bool().unwrap_or(false);
    let is_results = req
        .path
        .types
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case("operationresults"));
    if is_results {
        if !done {
            let mut resp = empty(StatusCode::ACCEPTED);
            set_header(&mut resp, "location", &absolute(req, &requested));
            set_header(&mut resp, "retry-after", "1");
            return Ok(resp);
        }
        if canceled {
            return Err(canceled_error());
        }
        if failed {
            return Err(ErrorResponse::internal(
                "The operation failed (injected by the emulator's lro_failure_rate).",
            ));
        }
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let mut body = op.body.clone();
    if canceled {
        let error = canceled_error();
        body["status"] = json!("Canceled");
        body["endTime"] = op.internal["end_time"].clone();
        body["error"] = json!({"code": error.code, "message": error.message});
    } else if done {
        body["status"] = json!(if failed { "Failed" } else { "Succeeded" });
        body["endTime"] = op.internal["end_time"].clone();
        body["percentComplete"] = json!(100);
        if failed {
            body["error"] = json!({"code": "InternalOperationError",
                "message": "The operation failed (injected by the emulator's lro_failure_rate)."});
        }
    } else {
        body["status"] = json!("InProgress");
    }
    Ok(ok_json(&body))
}

/// What a canceled operation reports.
fn canceled_error() -> ErrorResponse {
    ErrorResponse::new(
        StatusCode::CONFLICT,
        "OperationCanceled",
        "The operation was canceled by a request to abort the latest operation.",
    )
}

/// Applies a finished operation to the cluster (Succeeded, Failed or gone) and returns what
/// is there now.
pub(crate) fn settle(state: &AppState, id: &str) -> Result<Option<StoredResource>, ErrorResponse> {
    let now = now_ms();
    let (_, after) = state.store.modify::<ErrorResponse, _>(id, |current| {
        let Some(current) = current else {
            return Ok(Change::Keep);
        };
        let op = &current.internal["op"];
        let Some(done_ms) = op["done_ms"].as_u64() else {
            return Ok(Change::Keep);
        };
        if now < done_ms {
            return Ok(Change::Keep);
        }
        let failed = op["fail"].as_bool().unwrap_or(false);
        if op["kind"] == "Deleting" && !failed {
            return Ok(Change::Delete);
        }
        let mut body = current.body.clone();
        body["properties"]["provisioningState"] =
            json!(if failed { "Failed" } else { "Succeeded" });
        Ok(Change::Settle {
            body,
            internal: Value::Null,
        })
    })?;
    Ok(after)
}

/// True while an operation on the cluster has not finished.
pub(super) fn running(stored: &StoredResource) -> bool {
    stored.internal["op"]["done_ms"]
        .as_u64()
        .is_some_and(|done| now_ms() < done)
}

pub(super) fn busy(stored: &StoredResource) -> ErrorResponse {
    let state = stored.body["properties"]["provisioningState"]
        .as_str()
        .unwrap_or("Updating");
    ErrorResponse::new(
        StatusCode::CONFLICT,
        "OperationNotAllowed",
        format!("Operation is not allowed: Another operation ({state}) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details"),
    )
}

/// Starts an operation: the record at the Azure-AsyncOperation URL and the cluster's timer.
pub(super) fn new_operation(
    state: &AppState,
    cluster_id: &str,
    location: &str,
    kind: &str,
) -> Result<(String, Value), ErrorResponse> {
    let profile = state.fault_profile();
    let op_name = new_guid();
    let sub = cluster_id.split('/').nth(2).unwrap_or_default();
    let location = if location.is_empty() {
        "eastus"
    } else {
        location
    };
    let op_id = format!(
        "/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{}/operations/{op_name}",
        location.to_ascii_lowercase()
    );
    let start = now_ms();
    let done_ms = start.saturating_add(profile.lro_ms);
    let fail = chance(profile.lro_failure_rate);
    let end_time = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(done_ms),
    )
    .to_string();
    state.store.modify::<ErrorResponse, _>(&op_id, |_| {
        Ok(Change::Put {
            body: json!({"id": op_id, "name": op_name, "status": "InProgress", "startTime": now_rfc3339()}),
            internal: json!({"target": cluster_id, "done_ms": done_ms, "fail": fail, "end_time": end_time}),
        })
    })?;
    Ok((
        op_id.clone(),
        json!({"kind": kind, "done_ms": done_ms, "fail": fail, "operation": op_name, "op_id": op_id}),
    ))
}

/// `POST .../managedClusters/{name}/abort`: cancels the running operation. The cluster ends
/// `Canceled` (a canceled delete leaves it in place) and so does the operation status.
pub(crate) fn handle_abort(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let scope = req.action_scope(state)?;
    let name = req.path.names.first().cloned().unwrap_or_default();
    req.allow_if(req.path.names.len() == 1)?;
    let id = format!("{}/providers/{MANAGED_CLUSTERS}/{name}", scope.id);
    settle(state, &id)?;
    let mut aborted: Option<Value> = None;
    state.store.modify::<ErrorResponse, _>(&id, |current| {
        let Some(current) = current else {
            return Err(not_found(&id));
        };
        if !running(current) {
            // Checked again inside the transaction: the operation may have just finished.
            return Err(nothing_to_abort(&name));
        }
        aborted = Some(current.internal["op"].clone());
        let mut body = current.body.clone();
        body["properties"]["provisioningState"] = json!("Canceled");
        Ok(Change::Settle {
            body,
            internal: Value::Null,
        })
    })?;
    let op = aborted.unwrap_or_default();
    let op_id = match op["op_id"].as_str() {
        Some(op_id) => op_id.to_string(),
        // Operations started before the id was kept in the timer.
        None => {
            let current = state.store.get(&id)?;
            let location = current
                .as_ref()
                .and_then(|c| c.body["location"].as_str())
                .unwrap_or("eastus")
                .to_ascii_lowercase();
            format!(
                "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}/operations/{}",
                id.split('/').nth(2).unwrap_or_default(),
                op["operation"].as_str().unwrap_or_default()
            )
        }
    };
    let end_time = now_rfc3339();
    state.store.modify::<ErrorResponse, _>(&op_id, |record| {
        let Some(record) = record else {
            return Ok(Change::Keep);
        };
        let mut internal = record.internal.clone();
        internal["canceled"] = json!(true);
        internal["end_time"] = json!(end_time);
        Ok(Change::Settle {
            body: record.body.clone(),
            internal,
        })
    })?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn nothing_to_abort(name: &str) -> ErrorResponse {
    ErrorResponse::new(
        StatusCode::CONFLICT,
        "OperationNotAllowed",
        format!("Operation is not allowed: there is no ongoing operation on managed cluster '{name}' to abort; the latest operation has already completed."),
    )
}
