//! Picking one built-in by its exact display name, shared by the built-in definition and
//! initiative lookups so both explain a miss or an ambiguity the same way.

use crate::framework::Diagnostic;
use crate::policy::{PolicyDefinition, PolicySetDefinition};

/// What a display-name lookup needs to know about a built-in.
pub trait Listed {
    fn name(&self) -> Option<&str>;
    fn version(&self) -> Option<&str>;
    fn display_name(&self) -> Option<&str>;
}

impl Listed for PolicyDefinition {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn version(&self) -> Option<&str> {
        self.properties.version.as_deref()
    }
    fn display_name(&self) -> Option<&str> {
        self.properties.display_name.as_deref()
    }
}

impl Listed for PolicySetDefinition {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn version(&self) -> Option<&str> {
        self.properties.version.as_deref()
    }
    fn display_name(&self) -> Option<&str> {
        self.properties.display_name.as_deref()
    }
}

/// How the messages name the kind of built-in, e.g. ("policy definition", "definition").
pub struct Noun {
    pub full: &'static str,
    pub short: &'static str,
}

/// The one item whose display name is exactly `wanted`, or an error that lists what the user
/// may have meant (close names on a miss, every match on an ambiguity).
pub fn pick_by_display_name<T: Listed>(
    all: Vec<T>,
    wanted: &str,
    noun: &Noun,
) -> Result<T, Diagnostic> {
    let (mut exact, rest): (Vec<T>, Vec<T>) = all
        .into_iter()
        .partition(|d| d.display_name() == Some(wanted));
    match exact.len() {
        1 => exact
            .pop()
            .ok_or_else(|| Diagnostic::error("Internal error", "length checked")),
        0 => {
            let lower = wanted.to_lowercase();
            let mut near: Vec<&T> = rest
                .iter()
                .filter(|d| {
                    let dn = d.display_name().unwrap_or("").to_lowercase();
                    !lower.is_empty()
                        && !dn.is_empty()
                        && (dn.contains(&lower) || lower.contains(&dn))
                })
                .collect();
            near.sort_by_key(|d| d.display_name().map(str::to_string));
            near.truncate(10);
            let hint = if near.is_empty() {
                format!(
                    "Check the spelling, or look the {} up by `name` (its GUID).",
                    noun.short
                )
            } else {
                format!(
                    "Display names must match exactly (case included). Similar built-ins:\n{}",
                    candidate_lines(near.into_iter())
                )
            };
            Err(Diagnostic::error(
                format!("No built-in {} with this display name", noun.full),
                format!("No built-in {} is named {wanted:?}. {hint}", noun.full),
            ))
        }
        n => Err(Diagnostic::error(
            format!("Several built-in {}s have this display name", noun.full),
            format!(
                "{n} built-in {}s are named {wanted:?}. Set `name` to the one you mean \
                 instead of `display_name`:\n{}",
                noun.short,
                candidate_lines(exact.iter())
            ),
        )),
    }
}

fn candidate_lines<'a, T: Listed + 'a>(items: impl Iterator<Item = &'a T>) -> String {
    items
        .map(|d| {
            format!(
                "  - name = {:?} (version {}): {}",
                d.name().unwrap_or("?"),
                d.version().unwrap_or("unversioned"),
                d.display_name().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
