//! GraphQL-over-HTTP requests: the JSON body of a POST (one request or a batch) and the
//! query string of a GET, read strictly.
//!
//! JSON is parsed once by zt's strict reader ([`crate::json`]), refusing duplicate keys (two
//! parsers reading `{"query": a, "query": b}` differently would let one document be
//! checked and another run), nesting deeper than 64 and non-finite numbers. Members other than `query`, `operationName`,
//! `variables` and `extensions` are refused, as are GET parameters other than those four
//! and repeated GET parameters.

use serde_json::{Map, Value};

use super::GraphqlReason;
use super::config::is_sha256_hex;
use crate::json::{self, JsonErrorKind};

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

/// Reads a POST body (`application/json`) of at most `max_bytes` (`max_request_bytes`).
pub(super) fn parse_json_body(body: &[u8], max_bytes: usize) -> Result<RawRequest, GraphqlReason> {
    match parse_strict_json(body, max_bytes)? {
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

/// Reads a GET query string (raw, still percent-encoded); its JSON parameters are at most
/// `max_bytes` long (`max_request_bytes`, which already bounds the query string).
pub(super) fn parse_query_string(query: &str, max_bytes: usize) -> Result<RawOperation, GraphqlReason> {
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
            "variables" => match parse_strict_json(value.as_bytes(), max_bytes)? {
                Value::Object(variables) => operation.variables = variables,
                Value::Null => {}
                _ => return Err(GraphqlReason::BadRequest),
            },
            _ => match parse_strict_json(value.as_bytes(), max_bytes)? {
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

/// Parses JSON with zt's one strict reader ([`crate::json`]: duplicate keys, nesting over
/// 64, non-finite numbers, BOM, invalid UTF-8 and trailing data are refused).
fn parse_strict_json(text: &[u8], max_bytes: usize) -> Result<Value, GraphqlReason> {
    json::parse(text, max_bytes).map_err(|e| match e.kind {
        JsonErrorKind::TooLarge => GraphqlReason::RequestTooLarge,
        JsonErrorKind::Syntax
        | JsonErrorKind::Duplicate
        | JsonErrorKind::Depth
        | JsonErrorKind::NonFinite => GraphqlReason::BadRequest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;

    #[test]
    fn strict_json_refuses_duplicates_and_depth() {
        assert!(parse_strict_json(br#"{"a":1,"b":{"c":[1,2]}}"#, MAX).is_ok());
        assert_eq!(parse_strict_json(br#"{"a":1,"a":2}"#, MAX), Err(GraphqlReason::BadRequest));
        assert_eq!(parse_strict_json(br#"{"v":{"x":1,"x":1}}"#, MAX), Err(GraphqlReason::BadRequest));
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(parse_strict_json(deep.as_bytes(), MAX), Err(GraphqlReason::BadRequest));
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_strict_json(ok.as_bytes(), MAX).is_ok());
        assert_eq!(parse_strict_json(b"{} x", MAX), Err(GraphqlReason::BadRequest));
        assert_eq!(parse_strict_json(b"", MAX), Err(GraphqlReason::BadRequest));
    }

    #[test]
    fn json_members() {
        let RawRequest::Single(op) = parse_json_body(
            br#"{"query":"{a}","operationName":null,"variables":{"x":1},"extensions":{}}"#,
            MAX,
        )
        .unwrap() else {
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
            assert!(parse_json_body(bad, MAX).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let hash = "A".repeat(64);
        let body = format!(r#"{{"extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}}}"#);
        let RawRequest::Single(op) = parse_json_body(body.as_bytes(), MAX).unwrap() else { panic!() };
        assert_eq!(op.persisted_hash, Some("a".repeat(64)));
        assert!(
            matches!(parse_json_body(b"[{},{}]", MAX).unwrap(), RawRequest::Batch(items) if items.len() == 2)
        );
    }

    #[test]
    fn query_strings() {
        let op =
            parse_query_string("query=%7B+a+%7D&operationName=&variables=%7B%22x%22%3A1%7D", MAX).unwrap();
        assert_eq!(op.query.as_deref(), Some("{ a }"));
        assert_eq!(op.operation_name, None);
        assert_eq!(op.variables.get("x"), Some(&Value::from(1)));
        assert!(parse_query_string("query=a&query=b", MAX).is_err());
        assert!(parse_query_string("query=a&debug=1", MAX).is_err());
        assert!(parse_query_string("query=%FF", MAX).is_err());
        assert!(parse_query_string("query=a&variables=%5B%5D", MAX).is_err());
        assert!(parse_query_string("", MAX).unwrap().query.is_none());
    }
}
