//! The one strict JSON reader: request bodies and parameters (contract), GraphQL requests,
//! and token headers and claims all parse JSON here, under one set of rules.
//!
//! Two components that read the same bytes differently are a smuggling channel: a
//! validator that keeps the last of two equal keys and an application that keeps the
//! first, or one reader that turns a number it cannot represent into `null` while another
//! refuses it. So every reader in zt refuses, rather than interprets, each of these:
//!
//! | input | rule | [`JsonErrorKind`] |
//! |---|---|---|
//! | text longer than the caller's bound | refused before any byte is read | `TooLarge` |
//! | a leading byte-order mark | refused (RFC 8259 s.8.1: senders must not add one) | `Syntax` |
//! | invalid UTF-8, a lone surrogate escape (`"\ud800"`) | refused | `Syntax` |
//! | a key twice in one object, at any depth | refused | `Duplicate` |
//! | arrays and objects nested deeper than [`MAX_DEPTH`] | refused | `Depth` |
//! | a number outside `f64` (`1e999`, `-1e999`) | refused, never `null` or infinity | `Syntax` (serde_json: out of range) or `NonFinite` |
//! | anything after the value but whitespace | refused | `Syntax` |
//!
//! Errors carry a JSON pointer to where the problem is (client-chosen key names are
//! written only when short and printable, see [`push_request_segment`]), never a value.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Arrays and objects may nest this deep (serde_json's own limit is 128). Every zt reader
/// uses this one bound, so a document one accepts is never too deep for another.
pub(crate) const MAX_DEPTH: usize = 64;

/// The bound to pass to [`parse`] when the text was already bounded before it got here
/// (a token by `tokens.max_token_length`, a response body by the response-validation
/// limit, a parameter by the server's request-line and header limits): the caller names
/// that fact instead of repeating a number it does not have.
pub(crate) const BOUNDED_BY_CALLER: usize = usize::MAX;

/// What was wrong with a JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonErrorKind {
    /// Longer than the caller's bound.
    TooLarge,
    /// Not JSON: syntax, encoding (BOM, invalid UTF-8, lone surrogate), an out-of-range
    /// number, or trailing data.
    Syntax,
    /// A key repeated in one object.
    Duplicate,
    /// Nested deeper than [`MAX_DEPTH`].
    Depth,
    /// A number that is not finite.
    NonFinite,
}

/// Why a text was refused, and where (a JSON pointer relative to the text; empty for the
/// whole text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    pub(crate) kind: JsonErrorKind,
    pub(crate) pointer: String,
}

impl JsonError {
    /// The contract's violation keyword for this error (`syntax`, `duplicate`, `depth`,
    /// `size`), the word a 400 body names.
    pub(crate) fn keyword(&self) -> &'static str {
        match self.kind {
            JsonErrorKind::TooLarge => "size",
            JsonErrorKind::Syntax | JsonErrorKind::NonFinite => "syntax",
            JsonErrorKind::Duplicate => "duplicate",
            JsonErrorKind::Depth => "depth",
        }
    }
}

/// Parses one JSON text of at most `max_bytes` bytes under the rules above.
pub(crate) fn parse(text: &[u8], max_bytes: usize) -> Result<Value, JsonError> {
    let whole = |kind| JsonError { kind, pointer: String::new() };
    if text.len() > max_bytes {
        return Err(whole(JsonErrorKind::TooLarge));
    }
    // serde_json refuses a BOM as a syntax error too; saying so here keeps the rule
    // independent of that detail.
    if text.starts_with(b"\xEF\xBB\xBF") {
        return Err(whole(JsonErrorKind::Syntax));
    }
    let issue = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let seed = Seed { depth: 0, path: None, issue: &issue };
    let result = seed.deserialize(&mut deserializer).and_then(|v| deserializer.end().map(|()| v));
    match result {
        Ok(value) => Ok(value),
        Err(_) => Err(issue.into_inner().unwrap_or_else(|| whole(JsonErrorKind::Syntax))),
    }
}

/// A number's integer value when it has one that fits `i64` or `u64`, whatever its
/// spelling: `60`, `60.0` and `6e1` are all 60 (JSON Schema's reading of `integer`).
/// `None` for a fraction (`1.5`) and for integers beyond 64 bits (`1e20`). What zt itself
/// takes where it reads an integer (the runtime controls, a numeric `jti`), so a value is
/// one integer everywhere zt hands it on.
pub(crate) fn integral(n: &serde_json::Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    // Every integral f64 in this range is exact in i128; `u64::MAX as f64` rounds up to
    // 2^64, hence the strict upper bound.
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < u64::MAX as f64).then_some(f as i128)
}

/// Appends an escaped JSON-pointer segment (`~` -> `~0`, `/` -> `~1`).
pub(crate) fn push_segment(pointer: &mut String, segment: &str) {
    pointer.push('/');
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// Appends a segment the client chose (a parameter or property name): kept when it is at
/// most 64 printable ASCII characters, otherwise written as `*`, so pointers never carry
/// long or binary client data into logs.
pub(crate) fn push_request_segment(pointer: &mut String, segment: &str) {
    if segment.len() <= 64 && segment.bytes().all(|b| b.is_ascii_graphic()) {
        push_segment(pointer, segment);
    } else {
        pointer.push_str("/*");
    }
}

/// The path to the value being parsed, as a linked list on the stack: built only into a
/// pointer when something fails, so accepted texts cost no allocation for it.
struct PathNode<'a> {
    parent: Option<&'a PathNode<'a>>,
    segment: Segment<'a>,
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer_of(node: Option<&PathNode<'_>>) -> String {
    let mut segments = Vec::new();
    let mut current = node;
    while let Some(n) = current {
        segments.push(&n.segment);
        current = n.parent;
    }
    let mut pointer = String::new();
    for segment in segments.into_iter().rev() {
        match segment {
            Segment::Key(k) => push_request_segment(&mut pointer, k),
            Segment::Index(i) => {
                pointer.push('/');
                pointer.push_str(itoa::Buffer::new().format(*i));
            }
        }
    }
    pointer
}

struct Seed<'a> {
    depth: usize,
    path: Option<&'a PathNode<'a>>,
    issue: &'a RefCell<Option<JsonError>>,
}

impl Seed<'_> {
    /// Records why parsing stops (serde's error only carries text) and stops it.
    fn fail<E: de::Error>(&self, pointer: String, kind: JsonErrorKind) -> E {
        *self.issue.borrow_mut() = Some(JsonError { kind, pointer });
        E::custom("refused")
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        match serde_json::Number::from_f64(v) {
            Some(number) => Ok(Value::Number(number)),
            None => Err(self.fail(pointer_of(self.path), JsonErrorKind::NonFinite)),
        }
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(pointer_of(self.path), JsonErrorKind::Depth));
        }
        let mut items = Vec::new();
        loop {
            let node = PathNode { parent: self.path, segment: Segment::Index(items.len()) };
            let seed = Seed { depth: self.depth + 1, path: Some(&node), issue: self.issue };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(pointer_of(self.path), JsonErrorKind::Depth));
        }
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let node = PathNode { parent: self.path, segment: Segment::Key(&key) };
            if map.contains_key(&key) {
                return Err(self.fail(pointer_of(Some(&node)), JsonErrorKind::Duplicate));
            }
            let seed = Seed { depth: self.depth + 1, path: Some(&node), issue: self.issue };
            let value = access.next_value_seed(seed)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integral_numbers_in_any_spelling() {
        let read = |text: &str| integral(&serde_json::from_str::<serde_json::Number>(text).unwrap());
        for (text, want) in [
            ("60", Some(60)),
            ("60.0", Some(60)),
            ("6e1", Some(60)),
            ("6.0E+1", Some(60)),
            ("-0.0", Some(0)),
            ("-9223372036854775808", Some(i128::from(i64::MIN))),
            ("18446744073709551615", Some(i128::from(u64::MAX))),
            ("1.5", None),
            ("1e20", None),
            ("18446744073709551616", None),
            ("-1e19", None),
        ] {
            assert_eq!(read(text), want, "{text}");
        }
    }

    fn kind(text: &[u8]) -> JsonErrorKind {
        match parse(text, BOUNDED_BY_CALLER) {
            Ok(value) => panic!("accepted {value}"),
            Err(e) => e.kind,
        }
    }

    #[test]
    fn accepts_what_serde_json_accepts_when_nothing_is_ambiguous() {
        let text = br#" {"a":[1,-2,3.5,1e308,true,null,"\u00e9\ud83d\ude00"],"b":{"c":{}}} "#;
        let expected: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(parse(text, BOUNDED_BY_CALLER).unwrap(), expected);
        assert_eq!(parse(b"\"x\"", 3).unwrap(), json!("x"));
    }

    #[test]
    fn refuses_every_ambiguous_input_with_its_kind() {
        assert_eq!(parse(b"\"xy\"", 3).unwrap_err().kind, JsonErrorKind::TooLarge);
        assert_eq!(kind(b"\xEF\xBB\xBF{}"), JsonErrorKind::Syntax);
        assert_eq!(kind(b"{\"a\":\"\xFF\"}"), JsonErrorKind::Syntax);
        assert_eq!(kind(br#"{"a":"\ud800"}"#), JsonErrorKind::Syntax);
        assert_eq!(kind(br#"{"a":"\udc00x"}"#), JsonErrorKind::Syntax);
        assert_eq!(kind(br#"{"a":1e999}"#), JsonErrorKind::Syntax);
        assert_eq!(kind(b"-1e999"), JsonErrorKind::Syntax);
        assert_eq!(kind(b"{} x"), JsonErrorKind::Syntax);
        assert_eq!(kind(b"{}{}"), JsonErrorKind::Syntax);
        assert_eq!(kind(b""), JsonErrorKind::Syntax);
    }

    #[test]
    fn duplicates_and_depth_are_located() {
        let e = parse(br#"{"a":[1,{"b":2,"b":3}]}"#, BOUNDED_BY_CALLER).unwrap_err();
        assert_eq!((e.kind, e.pointer.as_str()), (JsonErrorKind::Duplicate, "/a/1/b"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes(), BOUNDED_BY_CALLER).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = parse(deep.as_bytes(), BOUNDED_BY_CALLER).unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::Depth);
        assert_eq!(e.pointer, "/0".repeat(MAX_DEPTH));
        // A key the client chose is not repeated when long or not printable.
        let long = format!(r#"{{"{k}":1,"{k}":2}}"#, k = "k".repeat(65));
        assert_eq!(parse(long.as_bytes(), BOUNDED_BY_CALLER).unwrap_err().pointer, "/*");
    }

    #[test]
    fn pointer_segments_are_escaped() {
        let mut p = String::new();
        push_segment(&mut p, "a/b~c");
        assert_eq!(p, "/a~1b~0c");
        push_request_segment(&mut p, "x y");
        assert_eq!(p, "/a~1b~0c/*");
    }
}
