//! A minimal `log` backend for a plugin process.
//!
//! Terraform re-logs every stderr line of a plugin under `provider.<name>` and infers the level
//! from a leading `[LEVEL]` (or reads hclog JSON), so that is the format we write. The level
//! follows `TF_LOG_PROVIDER`, then `TF_LOG`; with neither set nothing is written, which keeps
//! the hot path (many short-lived plugin processes per command) free of formatting work.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `[LEVEL] target: message`
    Plain,
    /// hclog-compatible JSON without `@timestamp` (Terraform then logs it with zero time).
    Json,
}

/// Resolved logging settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Maximum level written.
    pub level: LevelFilter,
    /// Line format.
    pub format: LogFormat,
}

impl LogSettings {
    /// Reads `TF_LOG_PROVIDER` (preferred) or `TF_LOG` from the process environment.
    pub fn from_env() -> Self {
        let provider = std::env::var("TF_LOG_PROVIDER").ok();
        let global = std::env::var("TF_LOG").ok();
        Self::from_values(provider.as_deref(), global.as_deref())
    }

    /// Pure form of [`LogSettings::from_env`] for tests.
    pub fn from_values(provider: Option<&str>, global: Option<&str>) -> Self {
        let chosen = provider
            .filter(|v| !v.trim().is_empty())
            .or(global.filter(|v| !v.trim().is_empty()));
        let Some(value) = chosen else {
            return Self {
                level: LevelFilter::Off,
                format: LogFormat::Plain,
            };
        };
        let (level, format) = match value.trim().to_ascii_uppercase().as_str() {
            "TRACE" => (LevelFilter::Trace, LogFormat::Plain),
            "DEBUG" => (LevelFilter::Debug, LogFormat::Plain),
            "INFO" => (LevelFilter::Info, LogFormat::Plain),
            "WARN" => (LevelFilter::Warn, LogFormat::Plain),
            "ERROR" => (LevelFilter::Error, LogFormat::Plain),
            "JSON" => (LevelFilter::Trace, LogFormat::Json),
            "OFF" => (LevelFilter::Off, LogFormat::Plain),
            // Terraform treats any other non-empty value as TRACE.
            _ => (LevelFilter::Trace, LogFormat::Plain),
        };
        Self { level, format }
    }
}

struct StderrLogger {
    settings: LogSettings,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Library internals (rustls, h2, hyper) at TRACE drown the provider's own lines.
        let max = if metadata.target().starts_with("akspolicy") {
            self.settings.level
        } else {
            self.settings.level.min(LevelFilter::Warn)
        };
        metadata.level() <= max
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = render(self.settings.format, record);
        // One write call per line so concurrent RPC tasks do not interleave within a line.
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// Renders one record as a full line (with trailing newline).
fn render(format: LogFormat, record: &Record<'_>) -> String {
    match format {
        LogFormat::Plain => {
            // Terraform splits on newlines; keep one record on one line.
            let msg = record.args().to_string().replace('\n', "\\n");
            format!(
                "[{}] {}: {}\n",
                level_word(record.level()),
                record.target(),
                msg
            )
        }
        LogFormat::Json => {
            let entry = serde_json::json!({
                "@level": level_word(record.level()).to_ascii_lowercase(),
                "@message": record.args().to_string(),
                // Not "@module": that would replace Terraform's `provider.<name>` label.
                "target": record.target(),
            });
            format!("{entry}\n")
        }
    }
}

/// Installs the stderr logger once; later calls are no-ops.
pub fn init() {
    let settings = LogSettings::from_env();
    // Leaked on purpose: the logger lives for the whole process.
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger { settings }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(settings.level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_level_wins_over_global() {
        let s = LogSettings::from_values(Some("warn"), Some("trace"));
        assert_eq!(s.level, LevelFilter::Warn);
    }

    #[test]
    fn dependencies_are_capped_at_warn() {
        let logger = StderrLogger {
            settings: LogSettings::from_values(None, Some("TRACE")),
        };
        let ours = Metadata::builder()
            .level(Level::Trace)
            .target("akspolicy::plugin")
            .build();
        let theirs = Metadata::builder()
            .level(Level::Debug)
            .target("rustls::server")
            .build();
        assert!(logger.enabled(&ours));
        assert!(!logger.enabled(&theirs));
    }

    #[test]
    fn unset_means_off() {
        assert_eq!(LogSettings::from_values(None, None).level, LevelFilter::Off);
        assert_eq!(
            LogSettings::from_values(Some(""), Some(" ")).level,
            LevelFilter::Off
        );
    }

    #[test]
    fn json_is_trace_in_json() {
        let s = LogSettings::from_values(None, Some("JSON"));
        assert_eq!(s.level, LevelFilter::Trace);
        assert_eq!(s.format, LogFormat::Json);
    }

    /// The line `message` logged at `level` by `target` becomes.
    fn rendered(format: LogFormat, level: Level, target: &str, message: &str) -> String {
        render(
            format,
            &Record::builder()
                .args(format_args!("{message}"))
                .level(level)
                .target(target)
                .build(),
        )
    }

    #[test]
    fn plain_line_has_level_prefix_and_single_line() {
        assert_eq!(
            rendered(LogFormat::Plain, Level::Debug, "akspolicy", "a\nb"),
            "[DEBUG] akspolicy: a\\nb\n"
        );
    }

    #[test]
    fn json_line_is_hclog_shaped() {
        let line = rendered(LogFormat::Json, Level::Info, "t", "hello");
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["@level"], "info");
        assert_eq!(v["@message"], "hello");
        assert!(v.get("@timestamp").is_none());
        assert!(v.get("@module").is_none());
    }
}
