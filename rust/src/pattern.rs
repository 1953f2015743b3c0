//! Ignore patterns: gitignore-like globs, compiled to Unicode regexes.
//!
//! The grammar (the Python fallback in `roost/_chunker_glob.py` implements the same one, token for
//! token, and builds the same regex text; a Hypothesis test checks that they agree):
//!
//! - `\c` is the literal `c` (any character but `/`; a trailing `\` is an error).
//! - `?` matches one character other than `/`; `*` any run of them.
//! - `[...]` is a character class: `[!...]` or `[^...]` negates it, a `]` right after the opening
//!   (or after the negation) is literal, `a-z` is a range, a `-` first or last is literal, `\`
//!   escapes the next character. A class never matches `/`. An unclosed class is an error.
//! - `/` separates path components. One leading `/` anchors the pattern to the root; one trailing
//!   `/` makes it match directories only. A pattern that still contains a `/` (or had a leading
//!   one) matches the whole relative POSIX path from the root; one without `/` matches any single
//!   path component (the entry's own name, checked at every depth).
//! - A path component that is exactly `**` matches zero or more components (`**/x`, `a/**/b`,
//!   `a/**`); elsewhere `**` is the same as `*`.
//! - `{`, `}` and `,` are plain characters (no brace expansion). Matching is case-sensitive.
//!
//! Why not globset: it matches bytes, so `?` does not match a non-ASCII character and `[é]`
//! matches neither byte of `é`. Using the regex engine that globset is built on, in Unicode mode,
//! gives the same speed for the handful of patterns a push has and the semantics above.

use std::fmt;

use std::sync::atomic::{AtomicBool, Ordering};

use regex::Regex;

/// A pattern that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid ignore pattern \"{}\": {}",
            self.pattern, self.reason
        )
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    /// A run of `n` unescaped `*`.
    Stars(usize),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Sep,
}

fn tokenize(pattern: &str) -> Result<Vec<Tok>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                let Some(&next) = chars.get(i) else {
                    return Err("trailing backslash");
                };
                if next == '/' {
                    return Err("a '/' cannot be escaped");
                }
                toks.push(Tok::Lit(next));
                i += 1;
            }
            '/' => toks.push(Tok::Sep),
            '?' => toks.push(Tok::Any),
            '*' => {
                let mut n = 1;
                while chars.get(i) == Some(&'*') {
                    n += 1;
                    i += 1;
                }
                toks.push(Tok::Stars(n));
            }
            '[' => {
                let (tok, next) = parse_class(&chars, i)?;
                toks.push(tok);
                i = next;
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Parses a class whose `[` is just before `start`; returns the token and the index after `]`.
fn parse_class(chars: &[char], start: usize) -> Result<(Tok, usize), &'static str> {
    const UNCLOSED: &str = "unclosed character class";
    let mut i = start;
    let mut negated = false;
    if matches!(chars.get(i), Some('!' | '^')) {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(UNCLOSED);
        };
        i += 1;
        if c == ']' && !first {
            break;
        }
        let lo = if c == '\\' {
            let Some(&e) = chars.get(i) else {
                return Err(UNCLOSED);
            };
            i += 1;
            e
        } else {
            c
        };
        let is_range =
            chars.get(i) == Some(&'-') && matches!(chars.get(i + 1), Some(&n) if n != ']');
        if is_range {
            i += 1;
            let Some(&h) = chars.get(i) else {
                return Err(UNCLOSED);
            };
            i += 1;
            let hi = if h == '\\' {
                let Some(&e) = chars.get(i) else {
                    return Err(UNCLOSED);
                };
                i += 1;
                e
            } else {
                h
            };
            if hi < lo {
                return Err("invalid character range");
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
        first = false;
    }
    Ok((Tok::Class { negated, ranges }, i))
}

/// A parsed pattern: which text it matches, whether only directories, and its regex body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// Matches the relative path (true) or a single component name (false).
    pub is_path: bool,
    pub dir_only: bool,
    /// Regex text without anchors or flags; match it in full, with `.` matching newlines.
    pub body: String,
}

/// Parses one pattern into its regex body.
pub fn compile(pattern: &str) -> Result<Compiled, PatternError> {
    let err = |reason| PatternError {
        pattern: pattern.to_owned(),
        reason,
    };
    let mut toks = tokenize(pattern).map_err(err)?;
    let anchored = toks.first() == Some(&Tok::Sep);
    if anchored {
        toks.remove(0);
    }
    let dir_only = toks.last() == Some(&Tok::Sep);
    if dir_only {
        toks.pop();
    }
    if toks.is_empty() {
        return Err(err("empty pattern"));
    }
    let is_path = anchored || toks.contains(&Tok::Sep);
    let comps: Vec<&[Tok]> = toks.split(|t| *t == Tok::Sep).collect();
    if comps.iter().any(|c| c.is_empty()) {
        return Err(err("empty path component"));
    }
    let body = if is_path {
        path_body(&comps)
    } else {
        atoms(&toks)
    };
    Ok(Compiled {
        is_path,
        dir_only,
        body,
    })
}

fn is_rec(comp: &[Tok]) -> bool {
    comp == [Tok::Stars(2)]
}

fn path_body(comps: &[&[Tok]]) -> String {
    // Consecutive `**` components mean the same as one.
    let mut merged: Vec<&[Tok]> = Vec::with_capacity(comps.len());
    for c in comps {
        if is_rec(c) && merged.last().is_some_and(|p| is_rec(p)) {
            continue;
        }
        merged.push(c);
    }
    let n = merged.len();
    if n == 1 && is_rec(merged[0]) {
        return ".*".to_owned();
    }
    let mut out = String::new();
    for (i, comp) in merged.iter().enumerate() {
        if is_rec(comp) {
            if i == 0 {
                out.push_str("(?:.*/)?");
            } else if i == n - 1 {
                out.push_str("/.*");
            } else {
                out.push_str("(?:/.*)?");
            }
        } else {
            if i > 0 && !(i == 1 && is_rec(merged[0])) {
                out.push('/');
            }
            out.push_str(&atoms(comp));
        }
    }
    out
}

fn esc(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() || c == '_' {
        out.push(c);
    } else {
        out.push_str(&format!("\\U{:08X}", u32::from(c)));
    }
}

fn atoms(toks: &[Tok]) -> String {
    let mut out = String::new();
    for t in toks {
        match t {
            Tok::Lit(c) => esc(*c, &mut out),
            Tok::Any => out.push_str("[^/]"),
            Tok::Stars(_) => out.push_str("[^/]*"),
            Tok::Class { negated, ranges } => class(*negated, ranges, &mut out),
            Tok::Sep => out.push('/'),
        }
    }
    out
}

/// Sorted, merged, non-overlapping ranges.
fn merge(mut r: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    r.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(r.len());
    for (a, b) in r {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn class(negated: bool, ranges: &[(char, char)], out: &mut String) {
    const SLASH: u32 = '/' as u32;
    let mut items: Vec<(u32, u32)> = ranges
        .iter()
        .map(|&(a, b)| (u32::from(a), u32::from(b)))
        .collect();
    if negated {
        items.push((SLASH, SLASH));
    }
    let mut items = merge(items);
    if !negated {
        let mut split = Vec::with_capacity(items.len() + 1);
        for (a, b) in items {
            if a <= SLASH && SLASH <= b {
                if a < SLASH {
                    split.push((a, SLASH - 1));
                }
                if SLASH < b {
                    split.push((SLASH + 1, b));
                }
            } else {
                split.push((a, b));
            }
        }
        items = split;
    }
    if items.is_empty() {
        // A class of only `/` can never match a component character.
        out.push_str("[^\\x00-\\U0010FFFF]");
        return;
    }
    out.push('[');
    if negated {
        out.push('^');
    }
    for (a, b) in items {
        out.push_str(&format!("\\U{a:08X}"));
        if b != a {
            out.push_str(&format!("-\\U{b:08X}"));
        }
    }
    out.push(']');
}

/// One pattern of the set, tried only when the combined regexes say some pattern matches.
#[derive(Debug)]
struct Rule {
    text: String,
    is_path: bool,
    dir_only: bool,
    negated: bool,
    re: Regex,
    /// Whether it matched an entry yet (for `unmatched`).
    hit: AtomicBool,
}

/// The compiled ignore set, in order: the last pattern that matches an entry decides, and one
/// starting with `!` re-includes it (as in git).
///
/// The patterns are first tried as one regex per kind (component or path, any entry or
/// directories only): an entry that none matches, the common case, costs four regex calls
/// whatever the number of patterns. Only a hit walks the rules from the last one.
#[derive(Debug)]
pub struct IgnoreMatcher {
    name_any: Option<Regex>,
    name_dir: Option<Regex>,
    path_any: Option<Regex>,
    path_dir: Option<Regex>,
    rules: Vec<Rule>,
    /// How many leading rules are the defaults (never reported as unmatched).
    defaults: usize,
}

/// The names every walk skips at any depth unless told otherwise (`roost.chunker` holds the same
/// list and checks it against this one on import).
pub const DEFAULT_IGNORES: [&str; 6] = [
    ".git",
    "node_modules",
    "Backup/",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
];

fn build(bodies: &[String]) -> Option<Regex> {
    if bodies.is_empty() {
        return None;
    }
    let text = format!("(?s)^(?:{})$", bodies.join("|"));
    // The bodies come from `compile`, so they always parse; a failure here (for example a size
    // limit on an enormous pattern list) would be reported by `new` below.
    Regex::new(&text).ok()
}

fn too_large<S: AsRef<str>>(patterns: &[S]) -> PatternError {
    PatternError {
        pattern: patterns
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", "),
        reason: "too large to compile",
    }
}

impl IgnoreMatcher {
    /// Compiles the default ignores (when `defaults` is set) followed by `patterns`.
    pub fn new<S: AsRef<str>>(patterns: &[S], defaults: bool) -> Result<Self, PatternError> {
        let mut groups: [Vec<String>; 4] = Default::default();
        let defaults: &[&str] = if defaults { &DEFAULT_IGNORES[..] } else { &[] };
        let mut rules = Vec::with_capacity(defaults.len() + patterns.len());
        for p in defaults
            .iter()
            .copied()
            .chain(patterns.iter().map(AsRef::as_ref))
        {
            let (negated, glob) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p),
            };
            let c = compile(glob).map_err(|e| PatternError {
                pattern: p.to_owned(),
                reason: e.reason,
            })?;
            let re = Regex::new(&format!("(?s)^(?:{})$", c.body)).map_err(|_| too_large(&[p]))?;
            groups[usize::from(c.is_path) * 2 + usize::from(c.dir_only)].push(c.body);
            rules.push(Rule {
                text: p.to_owned(),
                is_path: c.is_path,
                dir_only: c.dir_only,
                negated,
                re,
                hit: AtomicBool::new(false),
            });
        }
        let mut out = [None, None, None, None];
        for (slot, bodies) in out.iter_mut().zip(&groups) {
            *slot = build(bodies);
            if slot.is_none() && !bodies.is_empty() {
                return Err(too_large(patterns));
            }
        }
        let [name_any, name_dir, path_any, path_dir] = out;
        Ok(Self {
            name_any,
            name_dir,
            path_any,
            path_dir,
            rules,
            defaults: defaults.len(),
        })
    }

    /// Whether the entry named `name`, at relative path `rel`, is ignored.
    #[must_use]
    pub fn is_ignored(&self, name: &str, rel: &str, is_dir: bool) -> bool {
        let hit = |re: &Option<Regex>, text: &str| re.as_ref().is_some_and(|r| r.is_match(text));
        let any = hit(&self.name_any, name)
            || hit(&self.path_any, rel)
            || (is_dir && (hit(&self.name_dir, name) || hit(&self.path_dir, rel)));
        if !any {
            return false;
        }
        let mut decision = None;
        for rule in self.rules.iter().rev() {
            if rule.dir_only && !is_dir {
                continue;
            }
            if rule.re.is_match(if rule.is_path { rel } else { name }) {
                rule.hit.store(true, Ordering::Relaxed);
                decision.get_or_insert(!rule.negated);
            }
        }
        decision.unwrap_or(false)
    }

    /// The given patterns (not the defaults) that matched no entry so far, in order.
    #[must_use]
    pub fn unmatched(&self) -> Vec<String> {
        self.rules
            .iter()
            .skip(self.defaults)
            .filter(|r| !r.hit.load(Ordering::Relaxed))
            .map(|r| r.text.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str]) -> IgnoreMatcher {
        IgnoreMatcher::new(patterns, true).unwrap()
    }

    fn ignored(patterns: &[&str], rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap();
        m(patterns).is_ignored(name, rel, is_dir)
    }

    #[test]
    fn component_patterns_match_names() {
        assert!(ignored(&["*.tmp"], "a/b/x.tmp", false));
        assert!(!ignored(&["*.tmp"], "a/b/x.tmpl", false));
        assert!(ignored(&["__pycache__"], "pkg/__pycache__", true));
        assert!(ignored(&["Backup*"], "Backup 2024", true));
        assert!(ignored(&[], ".git", true));
        assert!(ignored(&[], "x/node_modules", true));
        assert!(!ignored(&[], ".gitignore", false));
    }

    #[test]
    fn path_patterns_match_relative_paths() {
        assert!(ignored(
            &["renders/cache/**"],
            "renders/cache/a/b.exr",
            false
        ));
        assert!(!ignored(&["renders/cache/**"], "renders/cache", true));
        assert!(!ignored(&["renders/cache/**"], "x/renders/cache/a", false));
        assert!(ignored(&["**/*.log"], "a.log", false));
        assert!(ignored(&["**/*.log"], "a/b/c.log", false));
        assert!(ignored(&["a/**/b"], "a/b", false));
        assert!(ignored(&["a/**/b"], "a/x/y/b", false));
        assert!(!ignored(&["a/*/b"], "a/x/y/b", false));
        assert!(ignored(&["/top.txt"], "top.txt", false));
        assert!(!ignored(&["/top.txt"], "sub/top.txt", false));
    }

    #[test]
    fn dir_only_patterns() {
        assert!(ignored(&["build/"], "x/build", true));
        assert!(!ignored(&["build/"], "x/build", false));
    }

    #[test]
    fn unicode_and_classes() {
        assert!(ignored(&["caf?"], "café", false));
        assert!(ignored(&["[é]"], "é", false));
        assert!(ignored(&["[!a]"], "b", false));
        assert!(!ignored(&["[!a]"], "a", false));
        assert!(ignored(&["[]]"], "]", false));
        assert!(ignored(&["[a-]"], "-", false));
        assert!(ignored(&["\\*"], "*", false));
        assert!(!ignored(&["\\*"], "x", false));
        assert!(ignored(&["{a,b}"], "{a,b}", false));
        assert!(ignored(&["a\nb"], "a\nb", false));
        assert!(ignored(&["*"], "a\nb", false));
    }

    #[test]
    fn errors() {
        for (p, reason) in [
            ("", "empty pattern"),
            ("/", "empty pattern"),
            ("a//b", "empty path component"),
            ("x\\", "trailing backslash"),
            ("a\\/b", "a '/' cannot be escaped"),
            ("[abc", "unclosed character class"),
            ("[]", "unclosed character class"),
            ("[z-a]", "invalid character range"),
        ] {
            let e = compile(p).unwrap_err();
            assert_eq!(e.reason, reason, "{p}");
        }
        assert_eq!(
            compile("[z-a]").unwrap_err().to_string(),
            "invalid ignore pattern \"[z-a]\": invalid character range"
        );
    }

    #[test]
    fn slash_only_class_never_matches() {
        assert!(!ignored(&["a[/]b"], "a/b", false));
        let c = compile("[/]").unwrap();
        assert_eq!(c.body, "[^\\x00-\\U0010FFFF]");
        assert!(IgnoreMatcher::new(&["[/]"], false).is_ok());
    }

    #[test]
    fn the_last_match_decides_and_unmatched_patterns_are_listed() {
        let m = IgnoreMatcher::new(&["*.tmp", "!keep.tmp", "never", "!also-never"], true).unwrap();
        assert!(m.is_ignored("a.tmp", "a.tmp", false));
        assert!(!m.is_ignored("keep.tmp", "d/keep.tmp", false));
        assert!(m.is_ignored("Backup", "x/Backup", true));
        assert!(!m.is_ignored("Backup", "x/Backup", false));
        assert_eq!(m.unmatched(), ["never", "!also-never"]);
        let err = IgnoreMatcher::new(&["!"], false).unwrap_err();
        assert_eq!((err.pattern.as_str(), err.reason), ("!", "empty pattern"));
    }
}
