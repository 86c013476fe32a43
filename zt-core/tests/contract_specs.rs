//! Every public OpenAPI document in `shared/specs` compiles into a contract.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use zt_core::contract::{Contract, ContractOptions};

fn specs_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/specs"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} is absent (clone shared/ beside the repository)", dir.display());
        None
    }
}

#[test]
fn every_shared_spec_compiles() {
    let Some(dir) = specs_dir() else { return };
    let mut largest: Option<(u64, String, std::time::Duration)> = None;
    for name in [
        "museum-3.1.yaml",
        "petstore-expanded.yaml",
        "twilio_messaging_v1.json",
        "twilio_verify_v2.json",
        "uspto.yaml",
    ] {
        let path = dir.join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        let started = Instant::now();
        let contract = Contract::from_file(&path, ContractOptions::default())
            .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
        let took = started.elapsed();
        assert!(!contract.operations().is_empty(), "{name} has operations");
        eprintln!("{name}: {} operations compiled in {took:?}", contract.operations().len());
        if largest.as_ref().is_none_or(|(s, _, _)| size > *s) {
            largest = Some((size, name.to_string(), took));
        }
    }
    if let Some((size, name, took)) = largest {
        eprintln!("largest spec {name} ({size} bytes) compiled in {took:?}");
    }
}

fn load(name: &str) -> Option<Contract> {
    let dir = specs_dir()?;
    Some(Contract::from_file(dir.join(name), ContractOptions::default()).unwrap())
}

fn run(c: &Contract, method: &str, target: &str, body: Option<&str>) -> Vec<(String, String)> {
    use zt_core::contract::{ContractRequest, Lookup};
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    let Lookup::Found { op, path_params } = c.lookup(method, path) else {
        panic!("{method} {path} does not route")
    };
    let headers = zt_core::request::HeaderList::default().with("content-type", "application/json");
    let request = ContractRequest {
        path_params: &path_params,
        query,
        headers: &headers,
        body: body.map(str::as_bytes),
    };
    match c.validate_request(op, &request) {
        Ok(()) => Vec::new(),
        Err(v) => v.items.into_iter().map(|i| (i.pointer, i.keyword)).collect(),
    }
}

fn expect(found: Vec<(String, String)>, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> =
        expected.iter().map(|(p, k)| (p.to_string(), k.to_string())).collect();
    assert_eq!(found, expected);
}

#[test]
fn petstore_requests() {
    let Some(c) = load("petstore-expanded.yaml") else { return };
    expect(run(&c, "GET", "/pets?tags=cat&tags=dog&limit=5", None), &[]);
    expect(run(&c, "GET", "/pets?limit=2147483648", None), &[("/query/limit", "maximum")]);
    expect(run(&c, "POST", "/pets", Some(r#"{"name":"rex","tag":"dog"}"#)), &[]);
    // NewPet is closed in strict mode: the server assigns `id` (Pet extends NewPet with it).
    expect(
        run(&c, "POST", "/pets", Some(r#"{"name":"rex","id":7}"#)),
        &[("/body/id", "unevaluatedProperties")],
    );
    expect(run(&c, "POST", "/pets", Some(r#"{"tag":"dog"}"#)), &[("/body/name", "required")]);
    expect(run(&c, "GET", "/pets/12", None), &[]);
    expect(run(&c, "DELETE", "/pets/x", None), &[("/path/id", "type")]);
    let zt_core::contract::Lookup::Found { op, .. } = c.lookup("GET", "/pets/1") else { panic!() };
    let report =
        c.validate_response(op, 200, Some("application/json"), br#"{"id":1,"name":"rex","ssn":"x"}"#);
    assert!(report.violations.is_empty(), "{report:?}");
    assert_eq!(report.undeclared_fields, ["/body/ssn"]);
    let error = c.validate_response(op, 500, Some("application/json"), br#"{"code":1,"message":"boom"}"#);
    assert!(error.is_clean(), "default response: {error:?}");
}

#[test]
fn museum_requests() {
    let Some(c) = load("museum-3.1.yaml") else { return };
    assert!(c.operations().iter().all(|o| o.requirement.is_some()));
    let ticket = r#"{"ticketType":"general","ticketDate":"2023-10-29","email":"visitor@example.com"}"#;
    expect(run(&c, "POST", "/tickets", Some(ticket)), &[]);
    expect(
        run(
            &c,
            "POST",
            "/tickets",
            Some(r#"{"ticketType":"general","ticketDate":"2023-10-29","discount":100}"#),
        ),
        &[("/body/discount", "unevaluatedProperties")],
    );
    expect(
        run(&c, "POST", "/tickets", Some(r#"{"ticketType":"vip","ticketDate":"2023-10-29"}"#)),
        &[("/body/ticketType", "enum")],
    );
    expect(
        run(&c, "POST", "/tickets", Some(r#"{"ticketType":"event","ticketDate":"29/10/2023"}"#)),
        &[("/body/ticketDate", "format")],
    );
    expect(run(&c, "GET", "/museum-hours?startDate=2023-10-29&page=2&limit=10", None), &[]);
    expect(run(&c, "GET", "/museum-hours?startDate=tomorrow", None), &[("/query/startDate", "format")]);
    expect(run(&c, "GET", "/special-events/3be6453c-03eb-4357-ae5a-984a0e574a54", None), &[]);
    expect(run(&c, "GET", "/special-events/42", None), &[("/path/eventId", "format")]);
}
