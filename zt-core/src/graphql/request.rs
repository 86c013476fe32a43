//! GraphQL-over-HTTP requests: the JSON body of a POST (one request or a batch) and the
//! query string of a GET, read strictly.
//!
//! JSON is parsed once, refusing duplicate keys (two parsers reading `{"query": a,
//! "query": b}` differently would let one document be checked and another run) and
//! nesting deeper than [`MAX_JSON_DEPTH`]. Members other than `query`, `operationName`,
//! `variables` and `extensions` are refused, as are GET parameters other than those four
//! and repeated GET parameters.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::GraphqlReason;
use super::config::is_sha256_hex;

/// JSON (bodies, variables, extensions) may nest this deep.
pub(super) const MAX_JSON_DEPTH: usize = 64;

/// One GraphQL request as sent, before its document is looked at.
#[derive(Debug, Default)]
pub(super) struct RawOperation {
    pub(super) query: Option<String>,
    pub(super) operation_name: Option<String>,
    pub(super) variables: Map<String, Value>,
    /// `extensions.persistedQuery.sha256Hash`, validated as lowercase SHA-256 hex.
    pub(super) persisted_hash: Option<String>,
}

/// A request body: one operation or a batch.
#[derive(Debug)]
pub(super) enum RawRequest {
    Single(RawOperation),
    Batch(Vec<Value>),
}

/// Reads a POST body (`application/json`).
pub(super) fn parse_json_body(body: &[u8]) -> Result<RawRequest, GraphqlReason> {
    match parse_strict_json(body)? {
        Value::Array(items) => Ok(RawRequest::Batch(items)),
        value @ Value::Object(_) => Ok(RawRequest::Single(operation_from_json(value)?)),
        _ => Err(GraphqlReason::BadRequest),
    }
}

/// Reads one member of a batch (or a single request object).
pub(super) fn operation_from_json(value: Value) -> Result<RawOperation, GraphqlReason> {
    let Value::Object(members) = value else {
        return Err(GraphqlReason::BadRequest);
    };
    let mut operation = RawOperation::default();
    for (key, value) in members {
        match (key.as_str(), value) {
            // `null` means absent for every member (GraphQL-over-HTTP).
            ("query" | "operationName" | "variables" | "extensions", Value::Null) => {}
            ("query", Value::String(query)) => operation.query = Some(query),
            ("operationName", Value::String(name)) => operation.operation_name = Some(name),
            ("variables", Value::Object(variables)) => operation.variables = variables,
            ("extensions", Value::Object(extensions)) => {
                operation.persisted_hash = persisted_hash(&extensions)?;
            }
            _ => return Err(GraphqlReason::BadRequest),
        }
    }
    Ok(operation)
}

/// Reads a GET query string (raw, still percent-encoded).
pub(super) fn parse_query_string(query: &str) -> Result<RawOperation, GraphqlReason> {
    let mut operation = RawOperation::default();
    let (mut seen_query, mut seen_name, mut seen_variables, mut seen_extensions) =
        (false, false, false, false);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_component(name)?;
        let value = decode_component(value)?;
        let seen = match name.as_str() {
            "query" => &mut seen_query,
            "operationName" => &mut seen_name,
            "variables" => &mut seen_variables,
            "extensions" => &mut seen_extensions,
            _ => return Err(GraphqlReason::BadRequest),
        };
        if std::mem::replace(seen, true) {
            return Err(GraphqlReason::BadRequest);
        }
        match name.as_str() {
            "query" => operation.query = Some(value),
            "operationName" => operation.operation_name = Some(value).filter(|v| !v.is_empty()),
            "variables" => match parse_strict_json(value.as_bytes())? {
                Value::Object(variables) => operation.variables = variables,
                Value::Null => {}
                _ => return Err(GraphqlReason::BadRequest),
            },
            _ => match parse_strict_json(value.as_bytes())? {
                Value::Object(extensions) => operation.persisted_hash = persisted_hash(&extensions)?,
                Value::Null => {}
                _ => return Err(GraphqlReason::BadRequest),
            },
        }
    }
    Ok(operation)
}

/// `application/x-www-form-urlencoded` decoding of one component: `+` is a space, then
/// percent-decoding exactly once, then strict UTF-8.
fn decode_component(component: &str) -> Result<String, GraphqlReason> {
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| GraphqlReason::BadRequest)
}

/// `extensions.persistedQuery` (Apollo's automatic persisted queries): `{"version": 1,
/// "sha256Hash": "<64 hex>"}`. Other extensions are not interpreted.
fn persisted_hash(extensions: &Map<String, Value>) -> Result<Option<String>, GraphqlReason> {
    let Some(persisted) = extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let Value::Object(persisted) = persisted else {
        return Err(GraphqlReason::BadRequest);
    };
    if persisted.get("version").and_then(Value::as_u64) != Some(1) {
        return Err(GraphqlReason::BadRequest);
    }
    let hash = persisted.get("sha256Hash").and_then(Value::as_str).map(str::to_ascii_lowercase);
    match hash {
        Some(hash) if is_sha256_hex(&hash) => Ok(Some(hash)),
        _ => Err(GraphqlReason::BadRequest),
    }
}

/// Parses JSON like `serde_json::from_slice::<Value>`, but refuses duplicate object keys
/// and nesting deeper than [`MAX_JSON_DEPTH`].
pub(super) fn parse_strict_json(text: &[u8]) -> Result<Value, GraphqlReason> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value =
        StrictSeed { depth: 0 }.deserialize(&mut deserializer).map_err(|_| GraphqlReason::BadRequest)?;
    deserializer.end().map_err(|_| GraphqlReason::BadRequest)?;
    Ok(value)
}

struct StrictSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
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
        let depth = self.nested::<A::Error>()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed { depth })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.nested::<A::Error>()?;
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictSeed { depth })?;
            if members.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(members))
    }
}

impl StrictSeed {
    fn nested<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_JSON_DEPTH { Err(E::custom("nested too deeply")) } else { Ok(depth) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_json_refuses_duplicates_and_depth() {
        assert!(parse_strict_json(br#"{"a":1,"b":{"c":[1,2]}}"#).is_ok());
        assert_eq!(parse_strict_json(br#"{"a":1,"a":2}"#), Err(GraphqlReason::BadRequest));
        assert_eq!(parse_strict_json(br#"{"v":{"x":1,"x":1}}"#), Err(GraphqlReason::BadRequest));
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(parse_strict_json(deep.as_bytes()), Err(GraphqlReason::BadRequest));
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_strict_json(ok.as_bytes()).is_ok());
        assert_eq!(parse_strict_json(b"{} x"), Err(GraphqlReason::BadRequest));
        assert_eq!(parse_strict_json(b""), Err(GraphqlReason::BadRequest));
    }

    #[test]
    fn json_members() {
        let RawRequest::Single(op) =
            parse_json_body(br#"{"query":"{a}","operationName":null,"variables":{"x":1},"extensions":{}}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(op.query.as_deref(), Some("{a}"));
        assert_eq!(op.operation_name, None);
        assert_eq!(op.variables.len(), 1);
        for bad in [
            &br#"{"query":"{a}","extra":1}"#[..],
            br#"{"query":1}"#,
            br#"{"query":"{a}","variables":[1]}"#,
            br#"{"query":"{a}","operationName":1}"#,
            br#""{a}""#,
            br#"{"query":"{a}","extra":null}"#,
            br#"{"extensions":{"persistedQuery":{"version":2,"sha256Hash":"00"}}}"#,
        ] {
            assert!(parse_json_body(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let hash = "A".repeat(64);
        let body = format!(r#"{{"extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}}}"#);
        let RawRequest::Single(op) = parse_json_body(body.as_bytes()).unwrap() else { panic!() };
        assert_eq!(op.persisted_hash, Some("a".repeat(64)));
        assert!(matches!(parse_json_body(b"[{},{}]").unwrap(), RawRequest::Batch(items) if items.len() == 2));
    }

    #[test]
    fn query_strings() {
        let op = parse_query_string("query=%7B+a+%7D&operationName=&variables=%7B%22x%22%3A1%7D").unwrap();
        assert_eq!(op.query.as_deref(), Some("{ a }"));
        assert_eq!(op.operation_name, None);
        assert_eq!(op.variables.get("x"), Some(&Value::from(1)));
        assert!(parse_query_string("query=a&query=b").is_err());
        assert!(parse_query_string("query=a&debug=1").is_err());
        assert!(parse_query_string("query=%FF").is_err());
        assert!(parse_query_string("query=a&variables=%5B%5D").is_err());
        assert!(parse_query_string("").unwrap().query.is_none());
    }
}
