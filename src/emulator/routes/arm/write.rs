//! Writing a resource the way ARM's PUT and PATCH do: read, decide and write in one store
//! transaction, then answer with the resource as stored.

use http::StatusCode;
use serde_json::Value;

use super::{
    error::ErrorResponse, ok_json, parse_body, status_json, system_data, with_id, ArmRequest,
};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;
use crate::emulator::store::{Change, StoredResource};

/// A resource after a write, and whether the write created it.
pub(crate) struct Written {
    pub stored: StoredResource,
    pub created: bool,
}

impl Written {
    /// 201 for a new resource, 200 for a replaced one.
    pub(crate) fn status(&self) -> StatusCode {
        if self.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }
    }

    /// The stored body with the id in its creator's casing.
    pub(crate) fn body(&self) -> Value {
        with_id(&self.stored.body, &self.stored.id)
    }

    /// ARM's usual answer to a PUT: [`Self::status`] and [`Self::body`].
    pub(crate) fn respond(&self) -> Response {
        status_json(self.status(), &self.body())
    }
}

/// Writes `id` with what `decide` makes of the resource stored there now. `what` names the
/// resource type in the error for a write that leaves nothing behind.
pub(crate) fn write(
    state: &AppState,
    id: &str,
    what: &str,
    decide: impl FnOnce(Option<&StoredResource>) -> Result<Change, ErrorResponse>,
) -> Result<Written, ErrorResponse> {
    let (before, after) = state.store.modify::<ErrorResponse, _>(id, decide)?;
    let stored = after.ok_or_else(|| ErrorResponse::internal(format!("{what} write lost")))?;
    Ok(Written {
        stored,
        created: before.is_none(),
    })
}

/// Changes the resource stored at `id` (a PATCH): `edit` gets it and says what to write; a
/// missing resource fails with `missing`.
pub(crate) fn modify_existing(
    state: &AppState,
    id: &str,
    what: &str,
    missing: impl FnOnce() -> ErrorResponse,
    edit: impl FnOnce(&StoredResource) -> Result<Change, ErrorResponse>,
) -> Result<Written, ErrorResponse> {
    write(state, id, what, |previous| match previous {
        Some(previous) => edit(previous),
        None => Err(missing()),
    })
}

/// Answers a PATCH of the policy resource `id`: `edit` applies the request body to a copy of
/// the stored resource (`missing` answers when there is none), `systemData` is renewed, and
/// the result comes back with 200.
pub(crate) fn patch(
    state: &AppState,
    req: &ArmRequest<'_>,
    id: &str,
    what: &str,
    missing: impl FnOnce() -> ErrorResponse,
    edit: impl FnOnce(&Value, &Value, &mut Value) -> Result<(), ErrorResponse>,
) -> Result<Response, ErrorResponse> {
    let update: Value = parse_body(req)?;
    let written = modify_existing(state, id, what, missing, |previous| {
        let mut body = previous.body.clone();
        edit(&update, &previous.body, &mut body)?;
        body["systemData"] = system_data(req, Some(&previous.body));
        Ok(Change::put(body))
    })?;
    Ok(ok_json(&written.body()))
}

/// Copies the members named `keys` that `from` has into `to`, both taken at `section` (a
/// member name such as `properties`, or `None` for the top level).
pub(crate) fn copy_members(from: &Value, to: &mut Value, section: Option<&str>, keys: &[&str]) {
    let from = match section {
        Some(s) => &from[s],
        None => from,
    };
    for key in keys {
        if let Some(value) = from.get(key) {
            let to = match section {
                Some(s) => &mut to[s],
                None => &mut *to,
            };
            to[*key] = value.clone();
        }
    }
}
