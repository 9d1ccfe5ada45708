//! The conventional `timeouts` block (`create = "30m"` ...) of long-running resources, and
//! how a resource reads its limit for one operation.

use std::future::Future;
use std::time::{Duration, Instant};

use super::diag::{AttributePath, Diagnostic, Diagnostics};
use super::schema::{Attribute, Block, NestedBlock};
use super::value::Value;

/// One CRUD operation a timeout may bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Read,
    Update,
    Delete,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    /// "creating", ..., for messages.
    pub fn doing(self) -> &'static str {
        match self {
            Operation::Create => "creating",
            Operation::Read => "reading",
            Operation::Update => "updating",
            Operation::Delete => "deleting",
        }
    }
}

/// The default limit of each operation, shown in the docs.
#[derive(Clone, Copy, Debug)]
pub struct TimeoutDefaults {
    pub create: Duration,
    pub read: Duration,
    pub update: Duration,
    pub delete: Duration,
}

impl TimeoutDefaults {
    fn of(&self, op: Operation) -> Duration {
        match op {
            Operation::Create => self.create,
            Operation::Read => self.read,
            Operation::Update => self.update,
            Operation::Delete => self.delete,
        }
    }
}

fn minutes(d: Duration) -> String {
    format!("{}m", d.as_secs().div_ceil(60))
}

/// The `timeouts` block; its values are durations such as `30s`, `45m` or `1h30m`.
/// The block's name in every resource schema.
pub const BLOCK_NAME: &str = "timeouts";

pub fn block(defaults: TimeoutDefaults) -> NestedBlock {
    let mut b = Block::new().description("How long each operation may take.");
    for op in [
        Operation::Create,
        Operation::Read,
        Operation::Update,
        Operation::Delete,
    ] {
        b = b.attribute(
            Attribute::string(op.name())
                .optional()
                .description(format!(
                    "Limit for {} (e.g. `30m`, `1h`). Defaults to `{}`.",
                    op.name(),
                    minutes(defaults.of(op))
                ))
                .validate_with(|v, path, diags| {
                    if let Some(s) = v.as_str() {
                        if parse_duration(s).is_none() {
                            invalid(path, s, diags);
                        }
                    }
                }),
        );
    }
    NestedBlock::single(BLOCK_NAME, b)
}

fn invalid(path: &AttributePath, s: &str, diags: &mut Diagnostics) {
    diags.error_at(
        path.clone(),
        "Invalid duration",
        format!("{s:?} is not a duration; use a number with s, m or h units, such as \"90s\", \"30m\" or \"1h30m\"."),
    );
}

/// The configured limit for `op` in a resource value with a `timeouts` block, or the default.
pub fn for_operation(resource: &Value, op: Operation, defaults: TimeoutDefaults) -> Duration {
    resource
        .get("timeouts")
        .get(op.name())
        .as_str()
        .and_then(parse_duration)
        .unwrap_or_else(|| defaults.of(op))
}

/// The time budget of one running operation: started when the operation starts, so every wait
/// inside it (consistency retries, polling) takes at most what is left of the user's limit.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    op: Operation,
    limit: Duration,
    started: Instant,
}

impl Deadline {
    /// Starts the budget of `op` as configured in `resource` (or the default).
    pub fn start(resource: &Value, op: Operation, defaults: TimeoutDefaults) -> Deadline {
        Deadline::new(op, for_operation(resource, op, defaults))
    }

    pub fn new(op: Operation, limit: Duration) -> Deadline {
        Deadline {
            op,
            limit,
            started: Instant::now(),
        }
    }

    pub fn operation(&self) -> Operation {
        self.op
    }

    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed())
    }

    /// A wait's own bound, shortened to what is left of the operation's budget.
    pub fn cap(&self, own: Duration) -> Duration {
        own.min(self.remaining())
    }

    /// Whether less than `step` is left, i.e. another pause of `step` would overrun the budget.
    pub fn runs_out_within(&self, step: Duration) -> bool {
        self.remaining() < step
    }

    /// Runs `f` for at most the remaining budget; `None` when the budget ran out first. Only
    /// for steps that may be abandoned half-way (reads, waits), never for a write whose outcome
    /// must be known.
    pub async fn run<F: Future>(&self, f: F) -> Option<F::Output> {
        tokio::time::timeout(self.remaining(), f).await.ok()
    }

    /// The error for a budget that ran out while `doing` (e.g. "waiting for Azure to see the
    /// definition"); it names the limit and how to raise it.
    pub fn exceeded(&self, summary: &str, doing: &str) -> Diagnostic {
        let op = self.op.name();
        Diagnostic::error(
            summary,
            format!(
                "The {op} timeout of {} ran out after {}s while {doing}. If this needs longer, \
                 raise the limit in the resource's `timeouts` block, e.g. \
                 `timeouts {{ {op} = \"{}\" }}`.",
                go_duration(self.limit),
                self.started.elapsed().as_secs(),
                go_duration(suggested(self.limit)),
            ),
        )
    }
}

/// A larger limit worth suggesting: twice the current one, at least a minute.
fn suggested(limit: Duration) -> Duration {
    (limit * 2).max(Duration::from_secs(60))
}

/// `90s`, `30m`, `1h30m`: the way users write durations in `timeouts`.
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Go-style durations limited to h, m and s, which is what users write in `timeouts`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut saw_unit = false;
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        saw_unit = true;
    }
    if !number.is_empty() || !saw_unit {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn reads_the_configured_limit_or_the_default() {
        let defaults = TimeoutDefaults {
            create: Duration::from_secs(60),
            read: Duration::from_secs(5),
            update: Duration::from_secs(60),
            delete: Duration::from_secs(60),
        };
        let v = Value::object([("timeouts", Value::object([("create", Value::string("2m"))]))]);
        assert_eq!(
            for_operation(&v, Operation::Create, defaults),
            Duration::from_secs(120)
        );
        assert_eq!(
            for_operation(&v, Operation::Read, defaults),
            Duration::from_secs(5)
        );
        block(defaults).block.validate().unwrap();
    }

    #[test]
    fn durations_print_as_users_write_them() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(go_duration(Duration::from_secs(5430)), "1h30m30s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn a_deadline_caps_waits_and_names_the_limit() {
        let d = Deadline::new(Operation::Create, Duration::from_secs(10));
        assert!(d.cap(Duration::from_secs(180)) <= Duration::from_secs(10));
        assert_eq!(d.cap(Duration::from_secs(1)), Duration::from_secs(1));
        assert!(!d.runs_out_within(Duration::from_secs(1)));
        let diag = d.exceeded("Timed out", "waiting");
        assert!(
            diag.detail.contains("create timeout of 10s"),
            "{}",
            diag.detail
        );
        assert!(
            diag.detail.contains(r#"timeouts { create = "1m" }"#),
            "{}",
            diag.detail
        );
        let gone = Deadline::new(Operation::Read, Duration::ZERO);
        assert!(gone.runs_out_within(Duration::from_millis(1)));
    }
}
