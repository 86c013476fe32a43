//! `zt diff`: every drift class on a crafted pair, identity on the real-world documents,
//! and the `--fail-on` gate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fixture, s, spec, zt};
use serde_json::Value;

/// `(rule, class, message)` of every change.
fn changes(report: &Value) -> Vec<(String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["class"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn crafted() -> Value {
    let run = zt(&[
        "diff",
        "--format",
        "json",
        "--fail-on",
        "never",
        s(&fixture("diff/old.yaml")),
        s(&fixture("diff/new.yaml")),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

#[test]
fn every_drift_class_is_found() {
    let report = crafted();
    let all = changes(&report);
    let expect = |rule: &str, class: &str, needle: &str| {
        assert!(
            all.iter().any(|(r, c, m)| r == rule && c == class && m.contains(needle)),
            "missing {rule} {class} {needle:?} in {all:#?}"
        );
    };
    // Operations.
    expect("ZD001", "breaking", "GET /legacy was removed");
    expect("ZD002", "security", "GET /new-public was added as a public operation");
    expect("ZD002", "benign", "GET /new-secure was added");
    // Security weakened.
    expect("ZD003", "security", "GET /reports was made public");
    expect("ZD003", "security", "GET /stats: the security requirement was dropped");
    expect("ZD003", "security", "no longer needs scope \"orders:admin\"");
    expect("ZD003", "security", "plain-http server http://api.example.com was added");
    // Security tightened.
    expect("ZD004", "breaking", "callers now also need scope \"orders:admin\"");
    // Request schemas loosened.
    expect("ZD005", "security", "strict mode was disabled");
    expect("ZD005", "security", "maxLength relaxed from 64 to 1000");
    expect("ZD005", "security", "pattern \"^[a-z ]{1,64}$\" was removed");
    expect("ZD005", "security", "maximum 100 was removed");
    expect("ZD005", "security", "type changed from integer to number");
    expect("ZD005", "security", "enum widened by \"cancelled\"");
    expect("ZD005", "security", "object opened");
    expect("ZD005", "security", "property \"quantity\" is no longer required");
    // Request schemas tightened (breaking).
    expect("ZD006", "breaking", "property \"currency\" became required");
    expect("ZD006", "breaking", "type changed from number to integer");
    expect("ZD006", "breaking", "enum narrowed, removed \"app\"");
    expect("ZD007", "breaking", "required query parameter \"tenant\" was added");
    expect("ZD008", "breaking", "query parameter \"sort\" was removed");
    // Responses.
    expect("ZD009", "breaking", "response property \"status\" was removed");
    expect("ZD010", "breaking", "property \"item\" is no longer guaranteed");
    expect("ZD010", "breaking", "type changed from string to integer|string");
    expect("ZD010", "breaking", "enum widened by \"archived\"");
    // Benign.
    expect("ZD011", "benign", "optional query parameter \"q\" was added");
    expect("ZD011", "benign", "property \"created\" was added");
    expect("ZD011", "benign", "PUT /orders/{orderId} was deprecated");
    // Renaming a path parameter is no change.
    assert!(!all.iter().any(|(_, _, m)| m.contains("path parameter")), "{all:#?}");
    // Removed things point into the old file, the rest into the new one.
    for f in report["findings"].as_array().unwrap() {
        let file = f["file"].as_str().unwrap();
        let removed = f["rule"] == "ZD001" || f["rule"] == "ZD008" || f["rule"] == "ZD009";
        assert_eq!(file.ends_with("old.yaml"), removed, "{f}");
        assert!(f["line"].as_u64().is_some(), "{f}");
    }
    assert_eq!(
        report["facts"]["changes"]["security"].as_u64().unwrap(),
        all.iter().filter(|c| c.1 == "security").count() as u64
    );
}

#[test]
fn reversed_diff_swaps_the_classes() {
    let run = zt(&[
        "diff",
        "--format",
        "json",
        "--fail-on",
        "never",
        s(&fixture("diff/new.yaml")),
        s(&fixture("diff/old.yaml")),
    ]);
    let all = changes(&run.json());
    assert!(all.iter().any(|(r, c, m)| r == "ZD006"
        && c == "breaking"
        && m.contains("maxLength tightened from 1000 to 64")));
    assert!(all.iter().any(|(r, c, m)| r == "ZD004"
        && c == "breaking"
        && m.contains("GET /reports now requires credentials")));
    assert!(
        all.iter()
            .any(|(r, c, m)| r == "ZD001" && c == "breaking" && m.contains("GET /new-public was removed"))
    );
    assert!(all.iter().any(|(r, c, m)| r == "ZD002" && c == "benign" && m.contains("GET /legacy was added")));
}

#[test]
fn a_document_against_itself_has_no_changes() {
    for name in ["twilio_verify_v2.json", "museum-3.1.yaml", "petstore-expanded.yaml"] {
        let path = spec(name);
        let run = zt(&["diff", "--format", "json", "--fail-on", "any", s(&path), s(&path)]);
        assert_eq!(run.code, 0, "{name}: {}", run.stdout);
        assert_eq!(changes(&run.json()), Vec::new());
    }
}

#[test]
fn fail_on_selects_classes() {
    let old = fixture("diff/old.yaml");
    let new = fixture("diff/new.yaml");
    assert_eq!(zt(&["diff", s(&old), s(&new)]).code, 1, "security by default");
    assert_eq!(zt(&["diff", "--fail-on", "never", s(&old), s(&new)]).code, 0);
    assert_eq!(zt(&["diff", "--fail-on", "breaking", s(&old), s(&new)]).code, 1);
    assert_eq!(zt(&["diff", "--fail-on", "security,breaking", s(&old), s(&new)]).code, 1);
    // A benign-only change.
    let text = std::fs::read_to_string(&old).unwrap();
    let benign = common::scratch_file(
        "benign.yaml",
        &text.replace("            enum: [asc, desc]\n", "            enum: [asc, desc]\n        - name: q\n          in: query\n          schema:\n            type: string\n            maxLength: 8\n"),
    );
    assert_eq!(zt(&["diff", s(&old), s(&benign)]).code, 0);
    assert_eq!(zt(&["diff", "--fail-on", "breaking", s(&old), s(&benign)]).code, 0);
    assert_eq!(zt(&["diff", "--fail-on", "any", s(&old), s(&benign)]).code, 1);
    assert_eq!(zt(&["diff", "--fail-on", "benign", s(&old), s(&benign)]).code, 1);
    assert_eq!(zt(&["diff", s(&old), "/nonexistent.yaml"]).code, 2);
    assert_eq!(zt(&["diff", "--fail-on", "sometimes", s(&old), s(&new)]).code, 2);
}

#[test]
fn text_output_names_the_class() {
    let run = zt(&["diff", s(&fixture("diff/old.yaml")), s(&fixture("diff/new.yaml"))]);
    assert!(run.stdout.contains("error[ZD003] (security)"), "{}", run.stdout);
    assert!(run.stdout.contains("changes: benign"), "{}", run.stdout);
}
