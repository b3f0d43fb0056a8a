//! A YAML document as a tree of values that know their line, and a checker that walks it
//! collecting *every* problem (unknown keys, wrong types, out-of-range values against a
//! [`crate::IntLimit`] or [`crate::RealLimit`]), so a user sees them all at once instead of
//! stopping at the first.

use std::fmt;
use std::str::FromStr;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::limit::{IntLimit, RealLimit};

/// One YAML value and the line it starts on (1-based; 0 when unknown).
#[derive(Debug, Clone)]
pub struct Node {
    pub line: u64,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; the key node carries the key's own line.
    Map(Vec<(Node, Node)>),
}

impl Value {
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            line: s.referenced.line(),
            value: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            v.push(n);
        }
        Ok(Value::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some((k, val)) = map.next_entry::<Node, Node>()? {
            v.push((k, val));
        }
        Ok(Value::Map(v))
    }
}

/// Parses YAML text into a [`Node`] tree (syntax errors only; no schema yet).
pub fn parse(text: &str) -> Result<Node, (u64, String)> {
    if text.trim().is_empty() {
        return Ok(Node {
            line: 1,
            value: Value::Map(Vec::new()),
        });
    }
    // YAML 1.2 booleans only: `off`, `y`, `no` stay words (`awb: off`, `crop: {x, y}`).
    let opts = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options::<Node>(text, opts).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        (line, in_users_words(&e.without_snippet().to_string()))
    })
}

/// The parser's messages that speak of its own API, said in the user's terms.
fn in_users_words(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("`{key}` is given twice in the same mapping (again here): keep one");
    }
    msg.to_string()
}

/// One problem in a configuration: where, which key, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    /// Dotted path of the key, e.g. `eyes.left.bitrate_mbps`.
    pub key: String,
    pub message: String,
}

/// Collects problems while a document is checked.
#[derive(Debug, Default)]
pub struct Checker {
    pub problems: Vec<Problem>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Checker {
    pub fn problem(&mut self, line: u64, key: &str, message: impl fmt::Display) {
        // A hostile file's 30 MB key or value is named, not echoed.
        self.problems.push(Problem {
            line,
            key: shorten(key, 120),
            message: shorten(&message.to_string(), 400),
        });
    }

    /// Opens a mapping for reading its keys; `null` reads as an empty mapping.
    pub fn map<'a>(&mut self, node: &'a Node, path: &str) -> Option<MapReader<'a>> {
        match &node.value {
            Value::Map(entries) => Some(MapReader {
                line: node.line,
                path: path.to_string(),
                entries: entries.as_slice(),
                used: vec![false; entries.len()],
            }),
            Value::Null => Some(MapReader {
                line: node.line,
                path: path.to_string(),
                entries: &[],
                used: Vec::new(),
            }),
            other => {
                self.problem(
                    node.line,
                    path,
                    format!("expected a mapping, found {}", other.kind()),
                );
                None
            }
        }
    }

    pub fn number(&mut self, n: &Node, key: &str) -> Option<f64> {
        match n.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) if f.is_finite() => Some(f),
            ref other => {
                self.problem(
                    n.line,
                    key,
                    format!("expected a number, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A number within `limit`.
    pub fn real_in(&mut self, n: &Node, key: &str, limit: RealLimit) -> Option<f64> {
        let v = self.number(n, key)?;
        limit
            .check(v)
            .map_err(|why| self.problem(n.line, key, why))
            .ok()
    }

    /// A number within `lo..=hi` (`lo_open`: strictly above `lo`).
    pub fn number_in(
        &mut self,
        n: &Node,
        key: &str,
        lo: f64,
        lo_open: bool,
        hi: f64,
    ) -> Option<f64> {
        let limit = if lo_open {
            RealLimit::above("", lo, hi)
        } else {
            RealLimit::closed("", lo, hi)
        };
        self.real_in(n, key, limit)
    }

    /// A whole number within `limit`.
    pub fn int_in(&mut self, n: &Node, key: &str, limit: IntLimit) -> Option<i64> {
        let v = self.whole(n, key)?;
        limit
            .check(v)
            .map_err(|why| self.problem(n.line, key, why))
            .ok()
    }

    /// A whole number within `lo..=hi`.
    pub fn integer(&mut self, n: &Node, key: &str, lo: i64, hi: i64) -> Option<i64> {
        self.int_in(n, key, IntLimit::new("", lo, hi))
    }

    pub fn whole(&mut self, n: &Node, key: &str) -> Option<i64> {
        match n.value {
            Value::Int(i) => Some(i),
            ref other => {
                self.problem(
                    n.line,
                    key,
                    format!("expected a whole number, found {}", describe(other)),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, n: &Node, key: &str) -> Option<bool> {
        match n.value {
            Value::Bool(b) => Some(b),
            ref other => {
                self.problem(
                    n.line,
                    key,
                    format!("expected true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    pub fn string<'a>(&mut self, n: &'a Node, key: &str) -> Option<&'a str> {
        match &n.value {
            Value::Str(s) => Some(s),
            other => {
                self.problem(
                    n.line,
                    key,
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A scalar parsed with `FromStr` (numbers are read as their text, so `size: 640x480`
    /// and `camera: 0` both work).
    pub fn parsed<T: FromStr<Err = String>>(&mut self, n: &Node, key: &str) -> Option<T> {
        let text = match &n.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => {
                self.problem(
                    n.line,
                    key,
                    format!("expected a string, found {}", describe(other)),
                );
                return None;
            }
        };
        match text.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(n.line, key, e);
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(&mut self, n: &Node, key: &str, options: &[(&str, T)]) -> Option<T> {
        let word = match &n.value {
            Value::Str(s) => s.clone(),
            Value::Bool(false) => "false".into(),
            Value::Bool(true) => "true".into(),
            Value::Null => "null".into(),
            Value::Int(i) => i.to_string(),
            other => {
                self.problem(
                    n.line,
                    key,
                    format!("expected a word, found {}", describe(other)),
                );
                return None;
            }
        };
        if let Some((_, v)) = options.iter().find(|(w, _)| *w == word) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
        self.problem(
            n.line,
            key,
            format!(
                "unknown value `{word}` (expected one of: {})",
                names.join(", ")
            ),
        );
        None
    }
}

/// `s` cut to `max` characters, saying how long it was.
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("`{s}`"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.kind().to_string(),
    }
}

/// Reads the keys of one mapping; [`MapReader::finish`] reports the keys nobody asked for.
pub struct MapReader<'a> {
    pub line: u64,
    pub path: String,
    entries: &'a [(Node, Node)],
    used: Vec<bool>,
}

impl<'a> MapReader<'a> {
    /// The value under `key`, if present (marks the key as known).
    pub fn get(&mut self, key: &str) -> Option<&'a Node> {
        let entries = self.entries;
        for (i, (k, v)) in entries.iter().enumerate() {
            if matches!(&k.value, Value::Str(s) if s == key) {
                self.used[i] = true;
                return Some(v);
            }
        }
        None
    }

    /// The dotted path of `key` inside this mapping.
    pub fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// `key`'s value read with `read`: `None` when absent or invalid (the problem is recorded),
    /// `Some(None)` for an explicit `null`.
    fn read_key<T>(
        &mut self,
        c: &mut Checker,
        key: &str,
        read: impl FnOnce(&mut Checker, &Node, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        let n = self.get(key)?;
        if matches!(n.value, Value::Null) {
            return Some(None);
        }
        let path = self.key(key);
        read(c, n, &path).map(Some)
    }

    /// Reads `key` with `read` and stores the result in `slot` when the value is valid;
    /// an explicit `null` keeps the default.
    pub fn set<T>(
        &mut self,
        c: &mut Checker,
        key: &str,
        slot: &mut T,
        read: impl FnOnce(&mut Checker, &Node, &str) -> Option<T>,
    ) {
        if let Some(Some(v)) = self.read_key(c, key, read) {
            *slot = v;
        }
    }

    /// Like [`MapReader::set`] for optional settings: `null` clears them.
    pub fn set_opt<T>(
        &mut self,
        c: &mut Checker,
        key: &str,
        slot: &mut Option<T>,
        read: impl FnOnce(&mut Checker, &Node, &str) -> Option<T>,
    ) {
        match self.read_key(c, key, read) {
            Some(Some(v)) => *slot = Some(v),
            Some(None) => *slot = None,
            None => {}
        }
    }

    /// The line of `key` (or of the mapping when the key is absent).
    pub fn line_of(&self, key: &str) -> u64 {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map_or(self.line, |(k, _)| k.line)
    }

    /// Reports every key that was not read, naming the keys that would have been.
    pub fn finish(self, c: &mut Checker, known: &[&str]) {
        for ((k, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let name = match &k.value {
                Value::Str(s) => s.clone(),
                other => describe(other),
            };
            let hint = known
                .iter()
                .find(|w| close(w, &name))
                .map(|w| format!("; did you mean `{w}`?"))
                .unwrap_or_default();
            c.problem(
                k.line,
                &join(&self.path, &name),
                format!("unknown key (expected one of: {}){hint}", known.join(", ")),
            );
        }
    }
}

/// Edit distance ≤ 2: a likely typo.
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

#[cfg(test)]
mod duplicate_tests {
    use super::*;

    #[test]
    fn a_duplicate_key_is_named_in_the_users_words() {
        let (line, msg) = parse("a:\n  fps: 30\n  fps: 60\n").unwrap_err();
        assert_eq!(line, 3);
        assert_eq!(
            msg,
            "`fps` is given twice in the same mapping (again here): keep one"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_key_or_value_is_named_not_echoed() {
        let huge = "k".repeat(1_000_000);
        let mut c = Checker::default();
        c.problem(3, &huge, format!("unknown key `{huge}`"));
        let p = &c.problems[0];
        assert!(
            p.key.len() < 200 && p.key.contains("1000000 bytes"),
            "{}",
            p.key.len()
        );
        assert!(p.message.len() < 500, "{}", p.message.len());
        assert_eq!(shorten("short", 120), "short");
        assert_eq!(shorten("ééé", 2), "éé… (6 bytes in all)");
    }

    #[test]
    fn tree_keeps_lines_and_types() {
        let n = parse("a: 1\nb:\n  c: [x, 2.5]\n  d: null\ne: true\n").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].0.line, 1);
        assert!(matches!(m[0].1.value, Value::Int(1)));
        assert_eq!(m[1].0.line, 2);
        let Value::Map(b) = &m[1].1.value else {
            panic!()
        };
        assert_eq!(b[0].0.line, 3);
        let Value::Seq(s) = &b[0].1.value else {
            panic!()
        };
        assert!(matches!(&s[0].value, Value::Str(x) if x == "x"));
        assert!(matches!(s[1].value, Value::Float(f) if f == 2.5));
        assert!(matches!(b[1].1.value, Value::Null));
        assert_eq!(m[2].0.line, 5);
        assert!(matches!(m[2].1.value, Value::Bool(true)));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let (line, msg) = parse("a: 1\nb: [unclosed\nc: 2\n").unwrap_err();
        assert!(line >= 2, "{line} {msg}");
    }

    #[test]
    fn checker_collects_every_problem() {
        let n = parse("x: fast\ny: -1\nz: 3\ntypo_kee: 1\n").unwrap();
        let mut c = Checker::default();
        let mut m = c.map(&n, "").unwrap();
        let (mut x, mut y, mut z) = (0.0, 0.0, 0i64);
        m.set(&mut c, "x", &mut x, |c, n, k| c.number(n, k));
        m.set(&mut c, "y", &mut y, |c, n, k| {
            c.number_in(n, k, 0.0, true, 10.0)
        });
        m.set(&mut c, "z", &mut z, |c, n, k| c.integer(n, k, 0, 5));
        m.finish(&mut c, &["x", "y", "z", "typo_key"]);
        let keys: Vec<(&str, u64)> = c
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line))
            .collect();
        assert_eq!(keys, vec![("x", 1), ("y", 2), ("typo_kee", 4)]);
        assert_eq!(z, 3);
        assert!(c.problems[2].message.contains("did you mean `typo_key`"));
    }
}
