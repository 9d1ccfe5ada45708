//! Source-level passes that make regorus read a template the way OPA (Gatekeeper's engine)
//! does, or refuse it with a line and a fix where it would answer differently.
//!
//! regorus parses a few constructs differently from OPA's parser and resolves names lazily at
//! evaluation, so without these passes a violation could appear or disappear between `plan`
//! and the cluster. Each pass works on regorus' own tokens (strings and comments can never
//! trigger it) and keeps every line number, so errors still point at the user's line.

use std::collections::{BTreeMap, BTreeSet};

use regorus::unstable::{Lexer, Module, Rule, RuleHead, Source, TokenKind};

use super::builtins::EXTENSIONS;
use crate::policy::parameters::levenshtein;

/// A problem found in one module, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceProblem {
    pub module: usize,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokKind {
    Ident,
    Symbol,
    Literal,
}

#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub kind: TokKind,
    pub text: String,
    pub line: u32,
    pub col: u32,
    pub start: usize,
    pub end: usize,
}

/// Words that are never a rule, function or variable.
const KEYWORDS: &[&str] = &[
    "package", "import", "default", "else", "not", "some", "every", "in", "with", "as", "if",
    "contains", "true", "false", "null",
];

/// Deepest bracket nesting a module may use; regorus' parser recurses per level, and no real
/// template comes near this.
pub(crate) const MAX_REGO_NESTING: usize = 64;

/// regorus' tokens of a module; `Err` carries regorus' own message with the position.
pub(crate) fn lex(path: &str, text: &str) -> anyhow::Result<Vec<Tok>> {
    let source = Source::from_contents(path.into(), text.to_string())?;
    let mut lexer = Lexer::new(&source);
    let mut out = Vec::new();
    loop {
        let regorus::unstable::Token(kind, span) = lexer.next_token()?;
        let kind = match kind {
            TokenKind::Eof => break,
            TokenKind::Ident => TokKind::Ident,
            TokenKind::Symbol => TokKind::Symbol,
            _ => TokKind::Literal,
        };
        out.push(Tok {
            kind,
            text: span.text().to_string(),
            line: span.line,
            col: span.col,
            start: span.start as usize,
            end: span.end as usize,
        });
    }
    Ok(out)
}

fn is_open(t: &Tok) -> bool {
    t.kind == TokKind::Symbol && matches!(t.text.as_str(), "(" | "[" | "{")
}

fn is_close(t: &Tok) -> bool {
    t.kind == TokKind::Symbol && matches!(t.text.as_str(), ")" | "]" | "}")
}

/// The first place a module nests brackets deeper than [`MAX_REGO_NESTING`].
pub(crate) fn too_deep(tokens: &[Tok]) -> Option<&Tok> {
    let mut depth = 0usize;
    for t in tokens {
        if is_open(t) {
            depth += 1;
            if depth > MAX_REGO_NESTING {
                return Some(t);
            }
        } else if is_close(t) {
            depth = depth.saturating_sub(1);
        }
    }
    None
}

fn ends_a_term(t: &Tok) -> bool {
    match t.kind {
        TokKind::Ident => !KEYWORDS.contains(&t.text.as_str()),
        TokKind::Symbol => t.text == "]" || t.text == ")",
        TokKind::Literal => false,
    }
}

/// OPA ends a body statement at a line break, so a line starting with `(` begins a new
/// expression; regorus would read `x\n(a - b) < 2` as the call `x(a - b)`. A `;` after the
/// previous term makes regorus split there too. Lines and later columns are unchanged.
pub(crate) fn split_paren_continuations(text: &str, tokens: &[Tok]) -> String {
    let mut inserts = Vec::new();
    let mut open: Vec<&str> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind == TokKind::Symbol && t.text == "(" && i > 0 {
            let prev = &tokens[i - 1];
            // Inside `(` or `[` a line break continues the expression, as in OPA.
            let in_braces_or_top = matches!(open.last(), None | Some(&"{"));
            if prev.line < t.line && ends_a_term(prev) && in_braces_or_top {
                inserts.push(prev.end);
            }
        }
        if is_open(t) {
            open.push(if t.text == "(" {
                "("
            } else if t.text == "[" {
                "["
            } else {
                "{"
            });
        } else if is_close(t) {
            open.pop();
        }
    }
    insert_at(text, &inserts, |_| ";".to_string())
}

fn insert_at(text: &str, at: &[usize], what: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(text.len() + at.len() * 8);
    let mut last = 0;
    for (n, &pos) in at.iter().enumerate() {
        let Some(chunk) = text.get(last..pos) else {
            return text.to_string();
        };
        out.push_str(chunk);
        out.push_str(&what(n));
        last = pos;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    out
}

/// OPA reads `head { a } { b }` as two rules with the same head (`a` or `b`); regorus treats the
/// second body as an `else` (an error for set rules) or drops it (functions). Repeating the head
/// before each further body gives regorus OPA's meaning, on the same line.
pub(crate) fn split_extra_bodies(text: &str, tokens: &[Tok]) -> String {
    // Per open bracket: whether it opened a top-level rule body.
    let mut open: Vec<bool> = Vec::new();
    let mut rule_start: Option<usize> = None;
    let mut first_body: Option<usize> = None;
    let mut last_closed_body = false;
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut prev_line = 0;
    for (i, t) in tokens.iter().enumerate() {
        let top = open.is_empty();
        if top && t.line != prev_line && t.kind == TokKind::Ident && t.text != "else" {
            rule_start = Some(i);
            first_body = None;
            last_closed_body = false;
        }
        if is_open(t) {
            let body = top && t.text == "{" && !is_value_brace(tokens, i);
            if body {
                let follows_body = last_closed_body && i > 0 && tokens[i - 1].text == "}";
                match (follows_body, first_body, rule_start) {
                    (true, Some(fb), Some(rs)) => {
                        let head = text
                            .get(tokens[rs].start..tokens[fb].start)
                            .unwrap_or("")
                            .replace(['\n', '\r'], " ");
                        inserts.push((t.start, format!("{} ", head.trim_end())));
                    }
                    (false, None, _) => first_body = Some(i),
                    _ => {}
                }
            }
            last_closed_body = false;
            open.push(body);
        } else if is_close(t) {
            let was_body = open.pop().unwrap_or(false);
            if open.is_empty() {
                last_closed_body = was_body;
            }
        } else if top {
            last_closed_body = false;
        }
        prev_line = t.line;
    }
    let positions: Vec<usize> = inserts.iter().map(|(p, _)| *p).collect();
    insert_at(text, &positions, |n| inserts[n].1.clone())
}

fn is_value_brace(tokens: &[Tok], i: usize) -> bool {
    i.checked_sub(1).is_some_and(|p| {
        tokens[p].kind == TokKind::Symbol && matches!(tokens[p].text.as_str(), "=" | ":=" | "==")
    })
}

/// Names a module defines and refers to, from regorus' parse of it.
struct ModuleNames {
    /// `data.a.b` of the package.
    package: String,
    /// Rule name (first path component after the package) -> (line, col, start, end of rule).
    rules: BTreeMap<String, Vec<(u32, u32, usize, usize)>>,
    /// Function names defined here.
    functions: BTreeSet<String>,
    /// Import alias -> imported path (`data.lib.x`).
    aliases: BTreeMap<String, String>,
    /// Byte offsets where rule heads start (definitions, not calls).
    head_starts: BTreeSet<usize>,
}

fn head_name(head: &RuleHead) -> (String, bool) {
    let (refr, is_fn) = match head {
        RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => (refr, false),
        RuleHead::Func { refr, .. } => (refr, true),
    };
    let text = refr.span().text();
    let name = text
        .split(['[', '.', '(', ' '])
        .next()
        .unwrap_or(text)
        .to_string();
    (name, is_fn)
}

fn names_of(module: &Module) -> ModuleNames {
    let package = format!("data.{}", module.package.refr.span().text().trim());
    let mut names = ModuleNames {
        package,
        rules: BTreeMap::new(),
        functions: BTreeSet::new(),
        aliases: BTreeMap::new(),
        head_starts: BTreeSet::new(),
    };
    for import in &module.imports {
        let path = import.refr.span().text().trim().to_string();
        if !path.starts_with("data.") {
            continue;
        }
        let alias = match &import.r#as {
            Some(a) => a.text().to_string(),
            None => path.rsplit('.').next().unwrap_or("").to_string(),
        };
        names.aliases.insert(alias, path);
    }
    for rule in &module.policy {
        let span = rule.span();
        let (name, is_fn) = match rule.as_ref() {
            Rule::Spec { head, .. } => head_name(head),
            Rule::Default { refr, args, .. } => {
                let text = refr.span().text();
                let name = text.split(['[', '.']).next().unwrap_or(text).to_string();
                (name, !args.is_empty())
            }
        };
        names.head_starts.insert(span.start as usize);
        if let Rule::Default { refr, .. } = rule.as_ref() {
            names.head_starts.insert(refr.span().start as usize);
        }
        if is_fn {
            names.functions.insert(name.clone());
        }
        names.rules.entry(name).or_default().push((
            span.line,
            span.col,
            span.start as usize,
            span.end as usize,
        ));
    }
    names
}

fn is_builtin(name: &str) -> bool {
    name == "print"
        || EXTENSIONS.iter().any(|(extension, ..)| *extension == name)
        || regorus::unstable::BUILTINS.contains_key(name)
}

/// A dotted name ending right before an adjacent `(`: `(start index, name)`.
fn calls(tokens: &[Tok]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !(t.kind == TokKind::Symbol && t.text == "(") || i == 0 {
            continue;
        }
        let mut j = i - 1;
        if tokens[j].kind != TokKind::Ident || tokens[j].end != t.start {
            continue;
        }
        let mut parts = vec![tokens[j].text.clone()];
        while j >= 2
            && tokens[j - 1].text == "."
            && tokens[j - 2].kind == TokKind::Ident
            && tokens[j - 1].start == tokens[j - 2].end
        {
            parts.push(tokens[j - 2].text.clone());
            j -= 2;
        }
        // `x[y].f(` and `"s".f(` are not plain names; leave them to regorus.
        if j > 0 && tokens[j - 1].text == "." {
            continue;
        }
        if KEYWORDS.contains(&parts[parts.len() - 1].as_str()) && parts.len() == 1 {
            continue;
        }
        parts.reverse();
        out.push((j, parts.join(".")));
    }
    out
}

fn suggestion(name: &str, local: &BTreeSet<String>) -> String {
    let candidates = regorus::unstable::BUILTINS
        .keys()
        .copied()
        .chain(EXTENSIONS.iter().map(|(name, ..)| *name))
        .chain(local.iter().map(String::as_str));
    let best = candidates
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= 2)
        .min();
    match best {
        Some((_, c)) => format!("; did you mean `{c}`?"),
        None => ". Define it in the template or a lib, or use a builtin".to_string(),
    }
}

/// Compile-time checks OPA does and regorus leaves to evaluation: every called function exists,
/// and no rule or function depends on itself. `modules[i]` was parsed from `texts[i]`.
pub(crate) fn check_names(modules: &[&Module], tokens: &[Vec<Tok>]) -> Result<(), SourceProblem> {
    let names: Vec<ModuleNames> = modules.iter().map(|m| names_of(m)).collect();
    // Every function by full path.
    let mut all_functions = BTreeSet::new();
    let mut all_rules = BTreeSet::new();
    for n in &names {
        for f in &n.functions {
            all_functions.insert(format!("{}.{f}", n.package));
        }
        for r in n.rules.keys() {
            all_rules.insert(format!("{}.{r}", n.package));
        }
    }
    let resolve = |n: &ModuleNames, name: &str| -> Option<String> {
        let (first, rest) = match name.split_once('.') {
            Some((f, r)) => (f, Some(r)),
            None => (name, None),
        };
        if first == "data" {
            return Some(name.to_string());
        }
        if let Some(path) = n.aliases.get(first) {
            return Some(match rest {
                Some(r) => format!("{path}.{r}"),
                None => path.clone(),
            });
        }
        if n.rules.contains_key(first) {
            return Some(format!("{}.{name}", n.package));
        }
        None
    };
    for (m, (n, toks)) in names.iter().zip(tokens).enumerate() {
        for (i, name) in calls(toks) {
            let t = &toks[i];
            if n.head_starts.contains(&t.start) {
                continue;
            }
            let resolved = resolve(n, &name);
            let known = match &resolved {
                Some(path) => {
                    all_functions.contains(path)
                        || all_rules.iter().any(|r| path.starts_with(&format!("{r}.")))
                }
                None => is_builtin(&name),
            };
            if !known {
                return Err(SourceProblem {
                    module: m,
                    line: t.line,
                    column: t.col,
                    message: format!(
                        "`{name}` is not a function: no builtin, and no function of that name in the template or its libs (OPA rejects this template when compiling){}",
                        suggestion(&name, &n.functions)
                    ),
                });
            }
        }
    }
    check_recursion(&names, tokens, &resolve)
}

fn check_recursion(
    names: &[ModuleNames],
    tokens: &[Vec<Tok>],
    resolve: &dyn Fn(&ModuleNames, &str) -> Option<String>,
) -> Result<(), SourceProblem> {
    // Node: full rule path; value: (module, line, col, deps).
    let mut graph: BTreeMap<String, (usize, u32, u32, BTreeSet<String>)> = BTreeMap::new();
    let rule_paths: BTreeSet<String> = names
        .iter()
        .flat_map(|n| n.rules.keys().map(move |r| format!("{}.{r}", n.package)))
        .collect();
    for (m, (n, toks)) in names.iter().zip(tokens).enumerate() {
        for (rule, spans) in &n.rules {
            let path = format!("{}.{rule}", n.package);
            for &(line, col, start, end) in spans {
                let inside: Vec<&Tok> = toks
                    .iter()
                    .filter(|t| t.start >= start && t.end <= end)
                    .collect();
                let locals = local_names(&inside);
                let entry = graph
                    .entry(path.clone())
                    .or_insert_with(|| (m, line, col, BTreeSet::new()));
                for (k, t) in inside.iter().enumerate() {
                    if t.kind != TokKind::Ident || locals.contains(t.text.as_str()) {
                        continue;
                    }
                    // Only the start of a dotted name.
                    if k > 0 && inside[k - 1].text == "." && inside[k - 1].end == t.start {
                        continue;
                    }
                    let mut name = t.text.clone();
                    let mut j = k;
                    while j + 2 < inside.len()
                        && inside[j + 1].text == "."
                        && inside[j + 2].kind == TokKind::Ident
                    {
                        name.push('.');
                        name.push_str(&inside[j + 2].text);
                        j += 2;
                    }
                    let Some(full) = resolve(n, &name) else {
                        continue;
                    };
                    // The longest rule path this name refers to.
                    if let Some(dep) = rule_paths
                        .iter()
                        .filter(|r| full == **r || full.starts_with(&format!("{r}.")))
                        .max_by_key(|r| r.len())
                    {
                        // The head itself names the rule.
                        if k == 0 && *dep == path {
                            continue;
                        }
                        entry.3.insert(dep.clone());
                    }
                }
            }
        }
    }
    // Depth-first search for a cycle.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    for start in graph.keys() {
        let mut stack: Vec<(&str, Vec<&str>)> = Vec::new();
        if state.get(start.as_str()).copied().unwrap_or(0) != 0 {
            continue;
        }
        stack.push((start, graph[start].3.iter().map(String::as_str).collect()));
        state.insert(start, 1);
        while let Some((node, pending)) = stack.last_mut() {
            let node: &str = node;
            match pending.pop() {
                None => {
                    state.insert(node, 2);
                    stack.pop();
                }
                Some(next) => match state.get(next).copied().unwrap_or(0) {
                    0 if graph.contains_key(next) => {
                        state.insert(next, 1);
                        let deps = graph[next].3.iter().map(String::as_str).collect();
                        stack.push((next, deps));
                    }
                    1 => {
                        let pos = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[pos..].iter().map(|(n, _)| *n).collect();
                        cycle.push(next);
                        let (module, line, column, _) = &graph[next];
                        let short: Vec<&str> = cycle
                            .iter()
                            .map(|p| p.rsplit('.').next().unwrap_or(p))
                            .collect();
                        return Err(SourceProblem {
                            module: *module,
                            line: *line,
                            column: *column,
                            message: format!(
                                "`{}` depends on itself ({}); OPA rejects recursive rules and functions when compiling. Rewrite it without recursion (e.g. with `walk` or a comprehension)",
                                short[0],
                                short.join(" -> ")
                            ),
                        });
                    }
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

/// Names a rule binds itself: function arguments, `x :=`, `some x`, `every k, v in`.
fn local_names(tokens: &[&Tok]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Function arguments: identifiers inside the first `(...)` of the head.
    if tokens.get(1).is_some_and(|t| t.text == "(") {
        for t in tokens.iter().skip(2) {
            if t.text == ")" {
                break;
            }
            if t.kind == TokKind::Ident {
                out.insert(t.text.clone());
            }
        }
    }
    for (k, t) in tokens.iter().enumerate() {
        if t.kind != TokKind::Ident {
            continue;
        }
        if tokens.get(k + 1).is_some_and(|n| n.text == ":=") {
            out.insert(t.text.clone());
        }
        if k > 0 && matches!(tokens[k - 1].text.as_str(), "some" | "every" | ",") {
            // `some a, b` / `every k, v in`: walk back to the keyword on the same line.
            let same_stmt = tokens[..k]
                .iter()
                .rev()
                .take_while(|p| p.line == t.line)
                .any(|p| p.text == "some" || p.text == "every");
            if same_stmt {
                out.insert(t.text.clone());
            }
        }
    }
    out
}
