//! Policy events: what evaluation and admission decided, kept for
//! `.../Microsoft.PolicyInsights/policyEvents/default/queryResults`.
//!
//! Events are recorded when a compliance evaluation (`triggerEvaluation`) finds a resource
//! non-compliant and when a cluster's Gatekeeper denies or audits an admission request. They
//! live at tenant level in the store (`/providers/Microsoft.PolicyInsights/policyEvents/...`),
//! so they outlive the resources they describe, as in Azure; the key starts with the time so
//! a prefix scan returns them in order.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::emulator::compliance::{PolicyStateRow, StatesQuery};
use crate::emulator::routes::arm::{now_ms, now_rfc3339, ErrorResponse, Scope};
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, Change};

const EVENT_PREFIX: &str = "/providers/Microsoft.PolicyInsights/policyEvents/";

/// Tie-breaker for events recorded in the same millisecond.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Records one event per row, stamped now and attributed to `principal_oid`.
pub(crate) fn record(
    state: &AppState,
    rows: &[PolicyStateRow],
    principal_oid: &str,
) -> Result<(), ErrorResponse> {
    let timestamp = now_rfc3339();
    for row in rows {
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let id = format!("{EVENT_PREFIX}{:015}-{sequence:06}", now_ms());
        let body = row.to_event_json(&timestamp, &state.identity.tenant_id, principal_oid);
        state.store.modify::<ErrorResponse, _>(&id, |_| {
            Ok(Change::Put {
                body: body.clone(),
                internal: Value::Null,
            })
        })?;
    }
    Ok(())
}

/// Events about resources in `scope`, narrowed like policy states, newest first.
pub(crate) fn events_in(
    state: &AppState,
    scope: &Scope,
    query: &StatesQuery,
) -> Result<Vec<Value>, ErrorResponse> {
    let mut out = Vec::new();
    for stored in state.store.list_prefix(&resource_key(EVENT_PREFIX))? {
        let event = stored.body;
        let field = |name: &str| event[name].as_str().unwrap_or_default().to_string();
        if let Some(want) = &query.assignment_id {
            if resource_key(want) != resource_key(&field("policyAssignmentId")) {
                continue;
            }
        }
        if let Some(want) = &query.definition_id {
            let want = resource_key(want);
            if want != resource_key(&field("policyDefinitionId"))
                && want != resource_key(&field("policySetDefinitionId"))
            {
                continue;
            }
        }
        if !scope.contains(state, &field("resourceId"))? {
            continue;
        }
        out.push(event);
    }
    out.reverse();
    Ok(out)
}
