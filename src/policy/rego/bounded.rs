//! Evaluation in bounded time, stack and memory: a thread of its own per evaluation, regorus'
//! execution timer, and cancellation (one evaluation's flag, or all at once on Stop).

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::builtins::{self, ExternalData};
use super::{CompiledRego, RegoError, Violation};

/// How long one evaluation may run unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Stack for evaluation threads: regorus recurses per nested call and value, and a stack
/// overflow would abort the whole process.
const EVAL_STACK_BYTES: usize = 256 << 20;

/// Bumped by [`cancel_evaluations`]; an evaluation started under an older epoch gives up.
static CANCEL_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Stops every evaluation in progress (Terraform's Stop, Ctrl-C): each returns
/// [`RegoError::Cancelled`] within a fraction of a second.
pub fn cancel_evaluations() {
    CANCEL_EPOCH.fetch_add(1, Ordering::SeqCst);
}

thread_local! {
    static ON_EVALUATION_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` (which evaluates many times, e.g. all `test` blocks of a resource) on one
/// evaluation thread: big stack and memory ceiling for the whole batch, each evaluation still
/// under its own timer, and Stop ends the wait. One thread hand-off per batch instead of one
/// per evaluation keeps many small tests as fast as evaluating inline.
pub fn on_evaluation_thread<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, RegoError> {
    if ON_EVALUATION_THREAD.with(Cell::get) {
        return Ok(work());
    }
    on_bounded_thread("rego-batch", work, None, None)
}

/// What one evaluation may use and sees besides its input.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Wall-clock budget; the evaluation ends with [`RegoError::Timeout`] after it.
    pub timeout: Duration,
    /// Answers of Gatekeeper external data providers, for `external_data`.
    pub external_data: ExternalData,
    /// Stops this evaluation when set, like [`cancel_evaluations`] stops all of them.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            timeout: DEFAULT_TIMEOUT,
            external_data: ExternalData::new(),
            cancel: None,
        }
    }
}

impl CompiledRego {
    /// Runs on a thread of its own with a big stack and regorus' execution timer, so hostile
    /// Rego ends as an error in bounded time; the caller stops waiting on timeout or Stop.
    pub(super) fn run_bounded(
        &self,
        input: Json,
        inventory: Json,
        options: &EvalOptions,
    ) -> Result<Vec<Violation>, RegoError> {
        let mut compiled = self.clone();
        let timeout = options.timeout;
        compiled
            .engine
            .set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                limit: timeout,
                check_interval: NonZeroU32::MIN.saturating_add(63),
            });
        let external_data = options.external_data.clone();
        if ON_EVALUATION_THREAD.with(Cell::get) {
            // Already bounded by `on_evaluation_thread`: no hand-off per evaluation.
            builtins::set_external_data(external_data);
            return compiled.run(&input, &inventory, timeout);
        }
        on_bounded_thread(
            "rego-eval",
            move || {
                builtins::set_external_data(external_data);
                compiled.run(&input, &inventory, timeout)
            },
            options.cancel.as_deref(),
            Some(timeout),
        )?
    }
}

/// A builtin may hold an evaluation thread past regorus' timer; its answer is abandoned this
/// long after the timeout.
const TIMER_GRACE: Duration = Duration::from_secs(1);

/// Runs `work` on a thread of its own (big stack, memory ceiling) and waits for it, giving up
/// when memory runs out, on Stop ([`cancel_evaluations`]) or this evaluation's `cancel` flag,
/// and after `timeout` (plus [`TIMER_GRACE`]) when one is given.
fn on_bounded_thread<R: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> R + Send + 'static,
    cancel: Option<&AtomicBool>,
    timeout: Option<Duration>,
) -> Result<R, RegoError> {
    if !crate::policy::eval_memory::has_room() {
        return Err(RegoError::MemoryLimit);
    }
    let epoch = CANCEL_EPOCH.load(Ordering::SeqCst);
    let exceeded = Arc::new(AtomicBool::new(false));
    let flag = exceeded.clone();
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            ON_EVALUATION_THREAD.with(|t| t.set(true));
            crate::policy::eval_memory::enter(&flag);
            let result = work();
            crate::policy::eval_memory::leave();
            let _ = tx.send(result);
        })
        .map_err(|e| RegoError::Evaluation(format!("starting the evaluation thread: {e}")))?;
    let started = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(25)) {
            Ok(result) => return Ok(result),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(RegoError::Evaluation(
                    "the evaluation thread failed (see the provider log)".into(),
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if exceeded.load(Ordering::SeqCst) {
                    return Err(RegoError::MemoryLimit);
                }
                let cancelled = cancel.is_some_and(|c| c.load(Ordering::SeqCst));
                if cancelled || CANCEL_EPOCH.load(Ordering::SeqCst) != epoch {
                    return Err(RegoError::Cancelled);
                }
                if let Some(timeout) = timeout.filter(|t| started.elapsed() > *t + TIMER_GRACE) {
                    return Err(RegoError::Timeout(timeout));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rego::compile;
    use crate::policy::rego::test_support::src;
    use serde_json::json;

    #[test]
    fn hostile_rego_ends_with_an_error_in_bounded_time() {
        let product = "package x\nviolation[{\"msg\": m}] {\n  n := numbers.range(1, input.parameters.n)\n  c := count([1 | n[_]; n[_]; n[_]])\n  m := sprintf(\"%v\", [c])\n}\n";
        let compiled = compile(&src(product)).unwrap();
        let options = EvalOptions {
            timeout: Duration::from_millis(500),
            ..Default::default()
        };
        let started = Instant::now();
        let err = compiled
            .evaluate_with(&json!({}), &json!({"n": 100000}), &json!({}), &options)
            .unwrap_err();
        assert!(matches!(err, RegoError::Timeout(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
        // A string of 100 GB: frozen at the allocation, reported, process alive.
        let huge = "package x\nviolation[{\"msg\": m}] {\n  s0 := concat(\"\", [\"x\" | numbers.range(1, input.parameters.n)[_]])\n  s1 := concat(\"\", [s0 | numbers.range(1, 1000)[_]])\n  s2 := concat(\"\", [s1 | numbers.range(1, 1000)[_]])\n  m := sprintf(\"%v\", [count(s2)])\n}\n";
        let err = compile(&src(huge))
            .unwrap()
            .evaluate(&json!({}), &json!({"n": 100000}), &json!({}))
            .unwrap_err();
        assert!(matches!(err, RegoError::MemoryLimit), "{err:?}");
        let deep = format!(
            "package x\nviolation[{{\"msg\": \"m\"}}] {{ x := {}1{} }}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(matches!(
            compile(&src(&deep)),
            Err(RegoError::Syntax { .. })
        ));
    }

    #[test]
    fn cancelling_stops_evaluations_in_progress() {
        let slow = "package x\nviolation[{\"msg\": m}] {\n  n := numbers.range(1, input.parameters.n)\n  c := count([1 | n[_]; n[_]])\n  m := sprintf(\"%v\", [c])\n}\n";
        let compiled = compile(&src(slow)).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let options = EvalOptions {
            cancel: Some(stop.clone()),
            ..Default::default()
        };
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::SeqCst);
        });
        let started = Instant::now();
        let err = compiled
            .evaluate_with(&json!({}), &json!({"n": 100000}), &json!({}), &options)
            .unwrap_err();
        assert!(started.elapsed() < DEFAULT_TIMEOUT);
        canceller.join().unwrap();
        assert!(matches!(err, RegoError::Cancelled), "{err:?}");
    }
}
