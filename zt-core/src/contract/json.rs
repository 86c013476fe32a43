//! JSON request and response bodies, parsed once with bounds.
//!
//! `serde_json::Value` keeps the last of two equal keys, while many applications (serde
//! structs, other languages' parsers) reject duplicates or keep the first: a validator and an
//! application reading `{"role":"user","role":"admin"}` differently is a smuggling channel.
//! This parser builds the same `Value` but refuses duplicate keys and nesting deeper than a
//! bound, and reports where, as a JSON pointer (never the values).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::push_request_segment;

/// Bodies may nest this deep (serde_json's own limit is 128).
pub(super) const MAX_DEPTH: usize = 64;

/// Why a body is not acceptable JSON: a pointer relative to the body and a keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JsonIssue {
    pub(super) pointer: String,
    pub(super) keyword: &'static str,
}

/// The path to the value being parsed, as a linked list on the stack.
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
            Segment::Index(i) => pointer.push_str(&format!("/{i}")),
        }
    }
    pointer
}

struct Seed<'a> {
    depth: usize,
    path: Option<&'a PathNode<'a>>,
    issue: &'a RefCell<Option<JsonIssue>>,
}

impl Seed<'_> {
    fn fail<E: de::Error>(&self, pointer: String, keyword: &'static str) -> E {
        *self.issue.borrow_mut() = Some(JsonIssue { pointer, keyword });
        E::custom(keyword)
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
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
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
            return Err(self.fail(pointer_of(self.path), "depth"));
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
            return Err(self.fail(pointer_of(self.path), "depth"));
        }
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let node = PathNode { parent: self.path, segment: Segment::Key(&key) };
            if map.contains_key(&key) {
                return Err(self.fail(pointer_of(Some(&node)), "duplicate"));
            }
            let seed = Seed { depth: self.depth + 1, path: Some(&node), issue: self.issue };
            let value = access.next_value_seed(seed)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// Parses a JSON text: duplicate keys -> `duplicate`, nesting beyond [`MAX_DEPTH`] ->
/// `depth`, anything else malformed (syntax, invalid UTF-8, lone surrogates, trailing
/// data) -> `syntax` at the root.
pub(super) fn parse(text: &[u8]) -> Result<Value, JsonIssue> {
    let issue = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let seed = Seed { depth: 0, path: None, issue: &issue };
    let result = seed.deserialize(&mut deserializer).and_then(|v| deserializer.end().map(|()| v));
    match result {
        Ok(value) => Ok(value),
        Err(_) => Err(issue.into_inner().unwrap_or(JsonIssue { pointer: String::new(), keyword: "syntax" })),
    }
}
