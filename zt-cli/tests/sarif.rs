//! SARIF output of every command, validated against the vendored SARIF 2.1.0 schema subset
//! (tests/schema/sarif-2.1.0-subset.json) and checked for what GitHub code scanning reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fixture, s, spec, zt};
use serde_json::Value;

fn validate(sarif: &Value) {
    let schema: Value = serde_json::from_str(include_str!("schema/sarif-2.1.0-subset.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(sarif).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "SARIF invalid:\n{}", errors.join("\n"));
}

fn sarif(args: &[&str]) -> Value {
    let mut all = vec!["--format", "sarif"];
    all.extend_from_slice(args);
    let run = zt(&all);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    run.json()
}

#[test]
fn lint_sarif_is_valid_and_complete() {
    let bad = fixture("lint/bad.yaml");
    let log = sarif(&["lint", s(&bad)]);
    validate(&log);
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 16);
    for rule in rules {
        for key in ["id", "name"] {
            assert!(rule[key].is_string(), "{rule}");
        }
        for key in ["shortDescription", "fullDescription", "help"] {
            assert!(rule[key]["text"].as_str().is_some_and(|t| !t.is_empty()), "{rule}");
        }
        assert!(
            ["error", "warning", "note"].contains(&rule["defaultConfiguration"]["level"].as_str().unwrap())
        );
    }
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for result in results {
        let id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], id);
        let location = &result["locations"][0];
        assert!(
            location["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("lint/bad.yaml")
        );
        assert!(location["physicalLocation"]["region"]["startLine"].as_u64().unwrap() >= 1);
        let pointer = location["logicalLocations"][0]["fullyQualifiedName"].as_str().unwrap();
        assert_eq!(result["properties"]["pointer"], pointer);
    }
}

#[test]
fn sarif_of_real_documents_is_valid() {
    for name in ["twilio_verify_v2.json", "museum-3.1.yaml", "uspto.yaml"] {
        validate(&sarif(&["lint", "--fail-on", "never", s(&spec(name))]));
    }
}

#[test]
fn diff_inventory_and_policy_sarif_are_valid() {
    let log = sarif(&["diff", s(&fixture("diff/old.yaml")), s(&fixture("diff/new.yaml"))]);
    validate(&log);
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["properties"]["class"].is_string()));
    assert!(results.iter().any(|r| r["level"] == "error" && r["properties"]["class"] == "security"));
    validate(&sarif(&[
        "inventory-check",
        s(&fixture("inventory/spec.yaml")),
        s(&fixture("inventory/inventory.json")),
    ]));
    let log = sarif(&["policy", "check", s(&fixture("policy/syntax.toml"))]);
    validate(&log);
    assert_eq!(log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"], 4);
    validate(&sarif(&["policy", "check", s(&fixture("policy/invalid.toml"))]));
    validate(&sarif(&["policy", "check", s(&fixture("policy/valid.toml"))]));
}

#[test]
fn the_schema_rejects_broken_logs() {
    let schema: Value = serde_json::from_str(include_str!("schema/sarif-2.1.0-subset.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut log = sarif(&["lint", s(&fixture("lint/bad.yaml"))]);
    assert!(validator.is_valid(&log));
    log["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&log));
    let mut log = sarif(&["lint", s(&fixture("lint/bad.yaml"))]);
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0.into();
    assert!(!validator.is_valid(&log));
    let mut log = sarif(&["lint", s(&fixture("lint/bad.yaml"))]);
    log["version"] = "2.0.0".into();
    assert!(!validator.is_valid(&log));
}
