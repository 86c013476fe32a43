//! Helpers shared by the contract tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use zt_core::contract::{Contract, ContractOptions, ContractRequest, Lookup, Violations};
use zt_core::request::HeaderList;

/// Compiles YAML/JSON text with default options (panics with the error).
pub fn contract(text: &str) -> Contract {
    contract_with(text, ContractOptions::default())
}

/// Compiles YAML/JSON text with `options`.
pub fn contract_with(text: &str, options: ContractOptions) -> Contract {
    Contract::from_text(text, None, options).unwrap_or_else(|e| panic!("contract does not compile: {e}"))
}

/// A request: method, `path?query`, headers, body.
pub fn check(
    c: &Contract,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(), Violations> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let Lookup::Found { op, path_params } = c.lookup(method, path) else {
        panic!("{method} {path} does not route: {:?}", c.lookup(method, path));
    };
    let mut list = HeaderList::default();
    for (n, v) in headers {
        list = list.with(n, v);
    }
    let request =
        ContractRequest { path_params: &path_params, query, headers: &list, body: body.map(str::as_bytes) };
    c.validate_request(op, &request)
}

/// `check` with a JSON body.
pub fn json(c: &Contract, method: &str, target: &str, body: &str) -> Result<(), Violations> {
    check(c, method, target, &[("content-type", "application/json")], Some(body))
}

/// `(pointer, keyword)` pairs of a result (empty when accepted).
pub fn found(result: Result<(), Violations>) -> Vec<(String, String)> {
    match result {
        Ok(()) => Vec::new(),
        Err(v) => v.items.into_iter().map(|i| (i.pointer, i.keyword)).collect(),
    }
}

/// Asserts a request is accepted.
#[track_caller]
pub fn accepted(result: Result<(), Violations>) {
    if let Err(v) = result {
        panic!("expected acceptance, got {v}");
    }
}

/// Asserts a request is rejected with exactly these `(pointer, keyword)` pairs.
#[track_caller]
pub fn rejected(result: Result<(), Violations>, expected: &[(&str, &str)]) {
    let got = found(result);
    let expected: Vec<(String, String)> =
        expected.iter().map(|(p, k)| (p.to_string(), k.to_string())).collect();
    assert_eq!(got, expected);
}
