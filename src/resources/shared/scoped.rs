//! What the two resources that live at any ARM scope share — assignments and exemptions, both
//! named `<scope>/providers/Microsoft.Authorization/<collection>/<name>`: paths and import IDs,
//! the create-time existence check, the write with its consistency waits, read and delete, each
//! bounded by the resource's `timeouts`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value as Json;

use crate::arm::{
    retry_while, ArmClient, ArmError, Collection, ConsistencyOptions, ResourceId, SnapshotRead,
};
use crate::framework::private::PrivateState;
use crate::framework::timeouts::{Deadline, Operation, TimeoutDefaults};
use crate::framework::{
    ApplyResponse, Block, CallContext, Diagnostic, Diagnostics, NestingMode, Value,
};

use super::errors::arm_error_diagnostic;
use super::identity::Identity;
use super::reconcile::{fill_unknowns, kept_str_ci, same_id};
use super::waits::{wait_until_gone, GONE_BUDGET, RECENT_WRITE};
use crate::resources::provider::Configured;

/// A fresh object can answer 404 for a moment after its PUT succeeded.
const READ_BACK: ConsistencyOptions = ConsistencyOptions {
    timeout: Duration::from_secs(120),
    interval: Duration::from_secs(2),
};

/// A create or update answers before every replica sees the object, so a refresh right after
/// it can get a 404 for an object that exists. For an object this provider wrote within
/// The private-state key of the time this provider last wrote the object, in milliseconds
/// since the Unix epoch (the key earlier versions stamped, so their stamps still count). Reads
/// use it to tell a replica that has not yet seen a fresh write (404, wait) from an object
/// deleted outside Terraform (believe the 404 at once).
const WRITTEN_AT_MS: &str = "written_at_ms";

fn written_now() -> PrivateState {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut private = PrivateState::default();
    private.set(WRITTEN_AT_MS, serde_json::json!(ms));
    private
}

/// Whether this provider wrote the object less than `window` ago.
fn written_within(private: &PrivateState, window: Duration) -> bool {
    private
        .get(WRITTEN_AT_MS)
        .and_then(serde_json::Value::as_u64)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < window)
}

/// [`RECENT_WRITE`], a 404 is only believed after this long: dropping an existing object from
/// state would lose track of it. Older objects' 404s are believed at once, so drift (a delete
/// outside Terraform) shows without delay.
const NOT_FOUND_CONFIRMATION: ConsistencyOptions = ConsistencyOptions {
    timeout: Duration::from_secs(10),
    interval: Duration::from_secs(2),
};

/// The ARM body of a scoped object, as far as the shared code needs it.
pub trait ScopedBody: Serialize + DeserializeOwned + Clone + Send + Sync {
    fn id_mut(&mut self) -> &mut Option<String>;
    /// Whether a PUT answer carries everything the state is built from (id, name and the
    /// required properties); an empty or partial answer is read back instead.
    fn is_complete(&self) -> bool;
}

/// A PUT refusal that only means ARM does not see a just-created dependency yet (e.g. the
/// definition an assignment assigns), retried every [`PropagationWait::INTERVAL`] for a while.
pub struct PropagationWait {
    /// The error codes of the 400 with which ARM says it cannot find the dependency.
    pub not_found_codes: &'static [&'static str],
    /// How long the dependency may take to appear; the operation's budget may cut it shorter.
    pub bound: Duration,
    /// What is waited for, for the timeout message ("Azure to see the policy definition").
    pub waiting_for: &'static str,
}

impl PropagationWait {
    const INTERVAL: Duration = Duration::from_secs(5);

    /// Whether `e` is ARM not seeing the dependency yet.
    fn is_transient(&self, e: &ArmError) -> bool {
        e.status() == Some(400) && e.code().is_some_and(|c| self.not_found_codes.contains(&c))
    }
}

/// One kind of scoped object.
/// How a prior state spells an object's scope, name and ID.
#[derive(Clone, Copy)]
pub struct Naming<'a> {
    pub scope: Option<&'a str>,
    pub name: Option<&'a str>,
    pub id: Option<&'a str>,
}

pub struct ScopedKind {
    /// "policy assignment", as used in messages.
    pub noun: &'static str,
    /// `/providers/Microsoft.Authorization/policyAssignments/`
    pub segment: &'static str,
    /// `Microsoft.Authorization/policyAssignments`
    pub arm_type: &'static str,
    pub api_version: &'static str,
    /// Ends the "not an ID" import error: "." or ", e.g. ...".
    pub import_hint: &'static str,
    pub timeouts: TimeoutDefaults,
    /// Whether ARM's list of this collection takes `$top` (for batched reads).
    pub list_takes_top: bool,
}

impl ScopedKind {
    pub fn path(&self, scope: &str, name: &str) -> String {
        format!("{}{}{name}", scope.trim_end_matches('/'), self.segment)
    }

    /// The scope, name and ID a state holds for the object Azure returned as `remote_id`,
    /// named `remote_name`, at `remote_scope` (else the scope in its ID): each in the `prior`
    /// state's spelling when it means the same, the ID following the user's spelling of scope
    /// and name.
    pub fn kept_naming(
        &self,
        prior: Naming<'_>,
        remote_id: &str,
        remote_scope: Option<&str>,
        remote_name: Option<&str>,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let remote_scope = remote_scope.or_else(|| self.scope_of_id(remote_id));
        let scope = kept_str_ci(prior.scope, remote_scope);
        let name = kept_str_ci(prior.name, remote_name);
        let id = match (&scope, &name) {
            (Some(s), Some(n)) if same_id(&self.path(s, n), remote_id) => {
                kept_str_ci(prior.id, Some(&self.path(s, n)))
            }
            _ => kept_str_ci(prior.id, Some(remote_id)),
        };
        (scope, name, id)
    }

    /// The scope part of an ID (`<scope>/providers/Microsoft.Authorization/...`).
    pub fn scope_of_id<'a>(&self, id: &'a str) -> Option<&'a str> {
        let lower = id.to_ascii_lowercase();
        let at = lower.rfind(&self.segment.to_ascii_lowercase())?;
        Some(&id[..at])
    }

    /// The ARM list of the objects exactly at the scope of `path`, for batched reads.
    fn collection_of(&self, path: &str) -> Option<Collection> {
        let scope = self.scope_of_id(path)?;
        Some(Collection {
            path: format!("{scope}{}", self.segment.trim_end_matches('/')),
            api_version: self.api_version,
            filter: Some("atExactScope()".to_string()),
            paged_by_top: self.list_takes_top,
        })
    }

    /// The path of the object a state tracks: its id, else scope and name.
    fn path_of_state(&self, state: &Value, diags: &mut Diagnostics) -> Option<String> {
        let tracked = Identity::of(state);
        match (
            tracked.id.as_deref(),
            tracked.scope.as_deref(),
            tracked.name.as_deref(),
        ) {
            (Some(id), _, _) => Some(id.to_string()),
            (None, Some(scope), Some(name)) => Some(self.path(scope, name)),
            _ => {
                diags.error(
                    format!("{} state has no id", capitalized(self.noun)),
                    format!(
                        "The state has neither id nor scope and name; remove it from the state \
                         (terraform state rm) and import the {}.",
                        self.noun
                    ),
                );
                None
            }
        }
    }

    /// Reads the object a state tracks; `None` (and no error) once it is gone, i.e. 404 (still
    /// 404 after [`NOT_FOUND_CONFIRMATION`] for objects written recently).
    pub async fn read<T: ScopedBody>(
        &self,
        ctx: &CallContext,
        state: &Value,
        diags: &mut Diagnostics,
        state_from: impl Fn(&T, &Value) -> Value,
    ) -> Option<Value> {
        let configured = Configured::from_context(ctx, diags)?;
        let path = self.path_of_state(state, diags)?;
        let deadline = Deadline::start(state, Operation::Read, self.timeouts);
        // A listed object is as current as a GET's answer; one missing from the list is
        // asked for with a GET below, where a recent write's 404 is confirmed.
        if let Some(collection) = self.collection_of(&path) {
            let listed = deadline
                .run(
                    configured
                        .snapshots
                        .read::<T>(&configured.client, &collection, &path),
                )
                .await;
            if let Some(SnapshotRead::Found(remote)) = listed {
                return Some(state_from(&remote, state));
            }
        }
        let confirm = ConsistencyOptions {
            timeout: if written_within(&ctx.private, RECENT_WRITE) {
                deadline.cap(NOT_FOUND_CONFIRMATION.timeout)
            } else {
                Duration::ZERO
            },
            interval: NOT_FOUND_CONFIRMATION.interval,
        };
        let read = deadline
            .run(retry_while(
                &confirm,
                |e| e.is_not_found(),
                || configured.client.get::<T>(&path, self.api_version),
            ))
            .await;
        match read {
            Some(Ok(remote)) => Some(state_from(&remote, state)),
            Some(Err(e)) if e.is_not_found() => {
                log::info!(
                    "{} {path} no longer exists; removing it from state",
                    self.noun
                );
                None
            }
            Some(Err(e)) => {
                diags.push(arm_error_diagnostic(
                    &format!("Reading the {} failed", self.noun),
                    &e,
                ));
                None
            }
            None => {
                diags.push(deadline.exceeded(
                    &format!("Timed out reading the {}", self.noun),
                    &format!("reading {path}"),
                ));
                None
            }
        }
    }

    /// Deletes the object and waits (within the delete's budget) until reads stop finding it.
    pub async fn delete(&self, ctx: &CallContext, prior: &Value, diags: &mut Diagnostics) {
        let Some(configured) = Configured::from_context(ctx, diags) else {
            return;
        };
        let tracked = Identity::of(prior);
        let Some(id) = tracked.id.as_deref() else {
            return;
        };
        let client = &configured.client;
        let deadline = Deadline::start(prior, Operation::Delete, self.timeouts);
        // Abandoning a DELETE is safe: the object stays in state and the next destroy retries.
        let deleted = match deadline.run(client.delete(id, self.api_version)).await {
            Some(Ok(())) => {
                wait_until_gone(client, id, self.api_version, deadline.cap(GONE_BUDGET)).await
            }
            Some(Err(e)) => Err(e),
            None => {
                diags.push(deadline.exceeded(
                    &format!("Timed out deleting the {}", self.noun),
                    &format!("waiting for Azure to delete {id}"),
                ));
                return;
            }
        };
        if let Err(e) = deleted {
            diags.push(arm_error_diagnostic(
                &format!("Deleting the {} failed", self.noun),
                &e,
            ));
        }
    }

    /// The state `terraform import` starts from: only id, scope and name known; `read` fills
    /// in the rest, and `timeouts` stays null so the import plans empty.
    pub fn import(&self, block: &Block, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        let parsed = ResourceId::parse(id)
            .ok()
            .filter(|r| r.is_type(self.arm_type));
        let (Some(parsed), Some(scope)) = (parsed, self.scope_of_id(id)) else {
            diags.error(
                format!("Invalid {} ID", self.noun),
                format!(
                    "{id:?} is not a {} ID. Expected <scope>{}<name>{}",
                    self.noun, self.segment, self.import_hint
                ),
            );
            return None;
        };
        let scope = if scope.is_empty() { "/" } else { scope };
        Some(identifying_state(
            block,
            id.trim_end_matches('/'),
            scope,
            parsed.name(),
        ))
    }

    /// Creates or updates the object from `body` and returns the new state. A create first
    /// checks that the name is free; the PUT's own answer becomes the state when it is
    /// complete, else the object is read back. Whatever the PUT created stays in state, even
    /// when reading it back fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn write<T: ScopedBody>(
        &self,
        configured: &Configured,
        planned: &Value,
        deadline: &Deadline,
        body: &T,
        wait: &PropagationWait,
        mut diags: Diagnostics,
        state_from: impl Fn(&T, &Value) -> Value,
    ) -> ApplyResponse {
        let creating = deadline.operation() == Operation::Create;
        let planned_identity = Identity::of(planned);
        let (Some(scope), Some(name)) = (
            planned_identity.scope.as_deref(),
            planned_identity.name.as_deref(),
        ) else {
            diags.push(Diagnostic::error(
                "Missing scope or name",
                "scope and name must be known at apply.",
            ));
            return ApplyResponse::failed(diags);
        };
        let path = self.path(scope, name);
        let client = &configured.client;
        configured.snapshots.note_write(&path);
        let doing = deadline.operation().doing();
        let timed_out = format!("Timed out {doing} the {}", self.noun);
        if creating {
            if let Err(d) = self
                .check_name_free(client, scope, name, &path, deadline)
                .await
            {
                diags.push(d);
                return ApplyResponse::failed(diags);
            }
        }
        let put_wait = ConsistencyOptions {
            timeout: deadline.cap(wait.bound),
            interval: PropagationWait::INTERVAL,
        };
        let written = retry_while(
            &put_wait,
            |e| wait.is_transient(e),
            || client.put::<_, Json>(&path, self.api_version, body),
        )
        .await;
        let written = match written {
            Ok(w) => w,
            Err(e)
                if wait.is_transient(&e) && deadline.runs_out_within(PropagationWait::INTERVAL) =>
            {
                // Azure refused the write, so there is nothing new to track.
                diags.push(deadline.exceeded(
                    &timed_out,
                    &format!(
                        "waiting for {} ({})",
                        wait.waiting_for,
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                ));
                return ApplyResponse::failed(diags);
            }
            Err(e) => {
                diags.push(arm_error_diagnostic(
                    &format!("{} the {} failed", capitalized(doing), self.noun),
                    &e,
                ));
                return ApplyResponse::failed(diags);
            }
        };
        let answer = serde_json::from_value::<T>(written).ok();
        let remote = match answer {
            Some(a) if a.is_complete() => a,
            answer => {
                // An empty or partial answer: read the object back, waiting out a brief 404.
                let read_wait = ConsistencyOptions {
                    timeout: deadline.cap(READ_BACK.timeout),
                    interval: READ_BACK.interval,
                };
                let read = retry_while(
                    &read_wait,
                    |e| e.is_not_found(),
                    || client.get::<T>(&path, self.api_version),
                )
                .await;
                match read {
                    Ok(r) => r,
                    Err(e) => {
                        if e.is_not_found() && deadline.runs_out_within(READ_BACK.interval) {
                            diags.push(deadline.exceeded(
                                &timed_out,
                                &format!("waiting to read back the {} it wrote", self.noun),
                            ));
                        } else {
                            diags.push(arm_error_diagnostic(
                                &format!(
                                    "{} the {} succeeded, but reading it back failed",
                                    capitalized(doing),
                                    self.noun
                                ),
                                &e,
                            ));
                        }
                        // The object exists: keep tracking it (Terraform taints it) instead of
                        // losing it; what was sent stands in for what Azure would have said.
                        let mut echoed = answer.unwrap_or_else(|| body.clone());
                        echoed.id_mut().get_or_insert_with(|| path.clone());
                        echoed
                    }
                }
            }
        };
        let fresh = state_from(&remote, planned);
        ApplyResponse {
            state: Some(fill_unknowns(planned, &fresh)),
            diags,
            private: Some(written_now()),
        }
    }

    /// A create must not take over an object someone else made: it is imported instead.
    async fn check_name_free(
        &self,
        client: &ArmClient,
        scope: &str,
        name: &str,
        path: &str,
        deadline: &Deadline,
    ) -> Result<(), Diagnostic> {
        let found = deadline
            .run(client.get_optional::<Json>(path, self.api_version))
            .await;
        match found {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(_))) => Err(Diagnostic::error(
                format!("{} already exists", capitalized(self.noun)),
                format!(
                    "A {} named {name:?} already exists at {scope}. To manage it with \
                     Terraform, import it:\n  terraform import <address> {path}",
                    self.noun
                ),
            )),
            Some(Err(e)) => Err(arm_error_diagnostic(
                &format!("Checking for an existing {} failed", self.noun),
                &e,
            )),
            None => Err(deadline.exceeded(
                &format!("Timed out creating the {}", self.noun),
                &format!("checking whether {path} already exists"),
            )),
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A state with only the identifying attributes set: every other attribute null, list blocks
/// empty and single blocks (`timeouts`) null.
pub fn identifying_state(block: &Block, id: &str, scope: &str, name: &str) -> Value {
    let mut state = Value::Object(
        block
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null))
            .collect(),
    );
    for b in &block.blocks {
        let empty = match b.nesting {
            NestingMode::Single | NestingMode::Group => Value::Null,
            _ => Value::List(Vec::new()),
        };
        state.set(&b.type_name, empty);
    }
    state.set("id", Value::string(id));
    state.set("scope", Value::string(scope));
    state.set("name", Value::string(name));
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::timeouts;
    use crate::framework::{Attribute, NestedBlock};
    use crate::resources::shared::testing::assert_first_detail;

    const KIND: ScopedKind = ScopedKind {
        noun: "policy exemption",
        segment: "/providers/Microsoft.Authorization/policyExemptions/",
        arm_type: crate::policy::definition_body::POLICY_EXEMPTION_TYPE,
        api_version: crate::arm::api_version::POLICY_EXEMPTIONS,
        import_hint: ".",
        timeouts: super::super::waits::POLICY_TIMEOUTS,
        list_takes_top: false,
    };

    #[test]
    fn only_a_400_naming_the_dependency_waits_for_propagation() {
        let wait = PropagationWait {
            not_found_codes: &["PolicyAssignmentNotFound"],
            bound: Duration::from_secs(1),
            waiting_for: "Azure to see the assignment",
        };
        let error = |status: u16, code: &str| {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
            ArmError::from_response(status, body.as_bytes(), "PUT", "https://x/y", None, None)
        };
        assert!(wait.is_transient(&error(400, "PolicyAssignmentNotFound")));
        assert!(!wait.is_transient(&error(404, "PolicyAssignmentNotFound")));
        assert!(!wait.is_transient(&error(400, "InvalidRequestContent")));
    }

    #[test]
    fn paths_and_scopes() {
        assert_eq!(
            KIND.path("/subscriptions/s/", "x"),
            "/subscriptions/s/providers/Microsoft.Authorization/policyExemptions/x"
        );
        assert_eq!(
            KIND.scope_of_id(
                "/subscriptions/s/providers/microsoft.authorization/policyexemptions/x"
            ),
            Some("/subscriptions/s")
        );
        assert_eq!(capitalized("policy exemption"), "Policy exemption");
    }

    #[test]
    fn import_leaves_timeouts_null_and_lists_empty() {
        let block = Block::new()
            .attribute(Attribute::string("id").computed())
            .attribute(Attribute::string("scope").required())
            .attribute(Attribute::string("name").required())
            .attribute(Attribute::string("description").optional())
            .block(NestedBlock::list("resource_selectors", Block::new()))
            .block(timeouts::block(KIND.timeouts));
        let mut d = Diagnostics::new();
        let id = "/subscriptions/s/providers/Microsoft.Authorization/policyExemptions/x";
        let state = KIND.import(&block, id, &mut d).expect("valid id");
        assert!(d.is_empty());
        assert_eq!(state.get("timeouts"), &Value::Null);
        assert_eq!(state.get("resource_selectors"), &Value::List(vec![]));
        let identity = Identity::of(&state);
        assert_eq!(identity.scope.as_deref(), Some("/subscriptions/s"));
        assert_eq!(identity.name.as_deref(), Some("x"));
        let mut d = Diagnostics::new();
        assert!(KIND
            .import(&block, "/subscriptions/s/resourceGroups/rg", &mut d)
            .is_none());
        assert_first_detail(&d, "not a policy exemption ID");
    }
}
