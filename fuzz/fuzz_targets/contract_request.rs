//! Parameters, headers and bodies against the demo contract (`examples/orders.openapi.yaml`),
//! through `Contract::lookup`, `check_media_type` and `validate_request`, as the Guard calls
//! them.
//!
//! Input (HTTP-like text): `METHOD TARGET` on the first line (`TARGET` is `path[?query]`),
//! then `name: value` header lines; an empty line, then the body (no empty line: no body).
//!
//! Properties: never panics; and nothing the demo's handlers would call a contract bypass
//! (they answer 500 then) is accepted: an accepted `POST /orders` body is a `NewOrder` the
//! handler takes (closed object, `item` 1..64 characters, integer `quantity` 1..1000, `note`
//! <= 256 characters); an accepted order id is 1..12 ASCII digits once decoded; an accepted
//! `GET /orders` query holds only single `limit` (integer 1..100) and `cursor` (<= 64
//! characters); a body sent to an operation that declares none is never accepted.
//!
//! Integers (issue 14, finding 7): whatever the contract admits as `integer` parses as
//! `i64`/`u64` the way handlers parse integers (serde into an integer type, `str::parse`):
//! `quantity` and the controls' `seconds`, `expires_at` and numeric `jti` deserialize into
//! `u64`/`i64` fields, and `limit` parses with `str::parse::<u64>`. `2.0`, `2e0` and `1e20`,
//! which JSON Schema alone would count as integers, must be refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use zt::canonical::{PathPolicy, canonicalize};
use zt::contract::{Contract, ContractOptions, ContractRequest, Lookup};
use zt::request::HeaderList;

const OPENAPI: &str = include_str!("../../examples/orders.openapi.yaml");
const BODY_LIMIT: usize = 16 * 1024;

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let options = ContractOptions { default_body_limit: BODY_LIMIT, ..ContractOptions::default() };
        Contract::from_text(OPENAPI, None, options).expect("fuzz harness: the demo contract compiles")
    })
}

/// The demo handler's body type (examples/orders/mod.rs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NewOrder {
    item: String,
    quantity: u64,
    #[serde(default)]
    note: Option<String>,
}

/// The checks of the demo's `OrderStore::create`: `Err` is what it reports as a bypass.
fn demo_accepts_order(body: &[u8]) -> Result<(), String> {
    let new: NewOrder = serde_json::from_slice(body).map_err(|e| format!("handler cannot parse: {e}"))?;
    if !(1..=1000).contains(&new.quantity) {
        return Err(format!("quantity {}", new.quantity));
    }
    if !(1..=64).contains(&new.item.chars().count()) {
        return Err(format!("item of {} characters", new.item.chars().count()));
    }
    if new.note.as_ref().is_some_and(|n| n.chars().count() > 256) {
        return Err("note longer than 256 characters".into());
    }
    Ok(())
}

/// `POST /zt/controls/blocks` as an integer-typed handler reads it.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct NewBlock {
    kind: String,
    value: String,
    seconds: u64,
    #[serde(default)]
    reason: Option<String>,
}

/// A revocation's `jti`: a string, or an integer parsed as one.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Jti {
    Text(String),
    Signed(i64),
    Unsigned(u64),
}

/// `POST /zt/controls/revocations` as an integer-typed handler reads it.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct NewRevocation {
    jti: Jti,
    expires_at: u64,
}

/// An accepted control body parses into the integer-typed struct `T`.
fn check_integers<T: serde::de::DeserializeOwned>(what: &str, body: Option<&[u8]>) {
    let body = body.unwrap_or_else(|| panic!("{what} accepted without a body"));
    if let Err(e) = serde_json::from_slice::<T>(body) {
        panic!("contract bypass: {what} body {:?} accepted, an integer parser says {e}", String::from_utf8_lossy(body));
    }
}

fn check_query(query: Option<&str>) {
    let Some(query) = query else { return };
    let mut seen_limit = false;
    let mut seen_cursor = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "limit" => {
                assert!(!seen_limit, "duplicate limit accepted: {query:?}");
                seen_limit = true;
                // As a handler parses an integer parameter: no trimming, no fraction.
                let n: u64 = value.parse().unwrap_or_else(|_| panic!("limit {value:?} accepted"));
                assert!((1..=100).contains(&n), "limit {value:?} accepted");
            }
            "cursor" => {
                assert!(!seen_cursor, "duplicate cursor accepted: {query:?}");
                seen_cursor = true;
                assert!(
                    value.chars().count() <= 64,
                    "cursor of {} characters accepted",
                    value.chars().count()
                );
            }
            "" if value.is_empty() => {}
            other => panic!("unknown query parameter {other:?} accepted: {query:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, body) = match text.split_once("\n\n") {
        Some((head, body)) => (head, Some(body.as_bytes())),
        None => (&*text, None),
    };
    let mut lines = head.split('\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, target) = request_line.split_once(' ').unwrap_or((request_line, "/"));
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut headers = HeaderList::default();
    for line in lines.take(16) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        headers = headers.with(name.trim(), value.trim_start());
    }

    // The Guard canonicalizes (strict by default) before it looks anything up.
    let Ok(path) = canonicalize(path, &PathPolicy::default()) else { return };
    let contract = contract();
    let Lookup::Found { op, path_params } = contract.lookup(method, &path) else { return };
    let operation = contract.operation(op).expect("lookup returns a valid operation");
    let body = body.filter(|b| !b.is_empty());
    if let Some(b) = body {
        // The Guard answers 413 before reading more, and 415 before reading the body at all.
        if b.len() > operation.body_limit || contract.check_media_type(op, &headers).is_err() {
            return;
        }
    }
    let request = ContractRequest { path_params: &path_params, query, headers: &headers, body };
    if contract.validate_request(op, &request).is_err() {
        return;
    }

    if body.is_some() {
        assert!(operation.has_body, "a body accepted by {} {}", operation.method, operation.template);
    }
    match (operation.method.as_str(), operation.template.as_str()) {
        ("POST", "/orders") => {
            let body = body.expect("POST /orders accepted without a body");
            if let Err(why) = demo_accepts_order(body) {
                panic!(
                    "contract bypass: POST /orders body {:?} accepted, handler says {why}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        (_, "/orders/{id}") => {
            let raw = path_params.iter().find(|(n, _)| n == "id").map(|(_, v)| v.as_str()).unwrap_or("");
            let id = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            assert!(
                (1..=12).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()),
                "order id {raw:?} accepted"
            );
        }
        ("GET", "/orders") => check_query(query),
        ("POST", "/zt/controls/blocks") => check_integers::<NewBlock>("POST /zt/controls/blocks", body),
        ("POST", "/zt/controls/revocations") => {
            check_integers::<NewRevocation>("POST /zt/controls/revocations", body)
        }
        _ => {}
    }
});
