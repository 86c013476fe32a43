//! `zt inventory-check`: shadow, zombie, unused endpoints and undeclared sensitive data, for
//! the documented inventory shape and for a real snapshot of zt-core's observer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::SystemTime;

use common::{fixture, found, s, scratch_file, zt};
use serde_json::Value;
use zt_core::observe::{Decision, Inventory, InventoryConfig, RequestRecord};

fn messages(report: &Value, rule: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shadow_zombie_unused_and_sensitive() {
    let run = zt(&[
        "inventory-check",
        "--format",
        "json",
        s(&fixture("inventory/spec.yaml")),
        s(&fixture("inventory/inventory.json")),
    ]);
    assert_eq!(run.code, 1, "shadow endpoints are errors: {}", run.stdout);
    let report = run.json();
    let shadow = messages(&report, "ZI001");
    assert_eq!(shadow.len(), 2, "{shadow:#?}");
    assert!(shadow.iter().any(|m| m.contains("GET /admin/debug (3 calls, seen 2025-01-01T10:00:00Z")));
    assert!(shadow.iter().any(|m| m.contains("GET /orders/{n}/export")));
    let zombie = messages(&report, "ZI002");
    assert_eq!(zombie.len(), 1);
    assert!(zombie[0].contains("GET /old"), "{zombie:?}");
    let unused = messages(&report, "ZI003");
    assert_eq!(unused.len(), 1);
    assert!(unused[0].contains("GET /unused"), "{unused:?}");
    let sensitive = messages(&report, "ZI004");
    assert_eq!(sensitive.len(), 2, "{sensitive:#?}");
    assert!(sensitive.iter().any(|m| m.starts_with("GET /orders returned email")), "{sensitive:#?}");
    assert!(sensitive.iter().any(|m| m.contains("/orders/{n}/export") && m.contains("card")));
    // GET /orders/{id} declares contact_email: no finding.
    assert!(!found(&report).iter().any(|(r, p)| r == "ZI004" && p.contains("{id}")));
    assert_eq!(report["facts"]["endpoints"]["shadow"], 2);
    assert_eq!(report["facts"]["endpoints"]["unused"], 1);
    // Findings on documented operations carry their line.
    let zombie_line =
        report["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "ZI002").unwrap()["line"].clone();
    assert!(zombie_line.as_u64().is_some());
}

#[test]
fn fail_on_and_bad_inventories() {
    let spec = fixture("inventory/spec.yaml");
    let inventory = fixture("inventory/inventory.json");
    assert_eq!(zt(&["inventory-check", "--fail-on", "never", s(&spec), s(&inventory)]).code, 0);
    let clean = scratch_file(
        "clean-inventory.json",
        r#"[{"method":"GET","route":"/orders","calls":1},{"method":"POST","route":"/orders","calls":1},
            {"method":"GET","route":"/orders/{id}","calls":1},{"method":"GET","route":"/unused","calls":1}]"#,
    );
    assert_eq!(zt(&["inventory-check", s(&spec), s(&clean)]).code, 0, "a bare array is accepted");
    assert_eq!(
        zt(&["inventory-check", "--fail-on", "note", s(&spec), s(&clean)]).code,
        0,
        "/old unused is fine"
    );
    let not_json = scratch_file("not.json", "{");
    let run = zt(&["inventory-check", s(&spec), s(&not_json)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not JSON"), "{}", run.stderr);
    let no_route = scratch_file("no-route.json", r#"{"endpoints":[{"method":"GET","calls":1}]}"#);
    let run = zt(&["inventory-check", s(&spec), s(&no_route)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("endpoints[0]"), "{}", run.stderr);
}

/// The snapshot zt-core's observer serves is accepted as it is.
#[test]
fn observer_snapshot_is_accepted() {
    let inventory = Inventory::new(InventoryConfig::default());
    for (method, route) in [("GET", "/orders"), ("POST", "/orders"), ("GET", "/orders/{id}"), ("GET", "/old")]
    {
        inventory.declare(method, route);
    }
    inventory.deprecate("GET", "/old");
    let card = br#"{"id":"7","card":"4111 1111 1111 1111"}"#;
    let mut record = RequestRecord::new(SystemTime::now(), "r1", "GET", "/orders/7", 200, Decision::Allow);
    record.route = Some("/orders/{id}");
    record.response_sample = Some(card);
    inventory.record(&record);
    let mut record = RequestRecord::new(SystemTime::now(), "r2", "GET", "/old", 200, Decision::Allow);
    record.route = Some("/old");
    inventory.record(&record);
    let record = RequestRecord::new(SystemTime::now(), "r3", "GET", "/internal/dump/42", 404, Decision::Deny);
    inventory.record(&record);
    let snapshot = serde_json::to_string(&inventory.snapshot()).unwrap();
    let path = scratch_file("snapshot.json", &snapshot);
    let run = zt(&["inventory-check", "--format", "json", s(&fixture("inventory/spec.yaml")), s(&path)]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let shadow = messages(&report, "ZI001");
    assert!(shadow.iter().any(|m| m.contains("GET /internal/dump/{id}")), "{shadow:#?}\n{snapshot}");
    assert!(messages(&report, "ZI002").iter().any(|m| m.contains("GET /old")));
    let sensitive = messages(&report, "ZI004");
    assert!(
        sensitive.iter().any(|m| m.contains("GET /orders/{id}") && m.contains("payment_card")),
        "{sensitive:#?}\n{snapshot}"
    );
    let unused = messages(&report, "ZI003");
    assert!(
        unused.iter().any(|m| m.contains("GET /unused"))
            && unused.iter().any(|m| m.contains("GET /orders was"))
    );
}
