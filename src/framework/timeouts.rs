//! The conventional `timeouts` block (`create = "30m"` ...) of long-running resources, and
//! how a resource reads its limit for one operation.

use std::time::Duration;

use super::diag::{AttributePath, Diagnostics};
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
    NestedBlock::single("timeouts", b)
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
}
