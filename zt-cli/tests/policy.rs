//! `zt policy check`: the library's own start-up errors, with file and line or key path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fixture, s, zt};
use serde_json::json;

#[test]
fn a_valid_policy_passes() {
    for name in ["policy/valid.toml", "policy/valid.yaml"] {
        let run = zt(&["policy", "check", s(&fixture(name))]);
        assert_eq!(run.code, 0, "{name}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("0 error(s)"), "{}", run.stdout);
        assert!(run.stdout.contains("mode enforce"), "{}", run.stdout);
    }
}

#[test]
fn syntax_errors_name_file_and_line() {
    let file = fixture("policy/syntax.toml");
    let run = zt(&["policy", "check", "--format", "json", s(&file)]);
    assert_eq!(run.code, 1);
    let report = run.json();
    let f = &report["findings"][0];
    assert_eq!(f["rule"], "ZP001");
    assert_eq!(f["line"], json!(4));
    let error = zt_core::policy::Policy::from_file(&file).unwrap_err();
    let zt_core::PolicyError::Parse { message, .. } = &error else { panic!("{error}") };
    assert_eq!(f["message"], json!(message), "the library's message; file and line are the finding's");
    // Printed once: `file:line: error[ZP001]: message`, the location not repeated.
    let text = zt(&["policy", "check", s(&file)]).stdout;
    let line = text.lines().next().unwrap();
    assert!(line.contains("syntax.toml:4: error[ZP001]"), "{line}");
    assert_eq!(line.matches("syntax.toml").count(), 1, "{line}");
    assert!(!line.contains("line 4"), "{line}");
}

#[test]
fn invalid_entries_name_the_key_path() {
    let file = fixture("policy/invalid.toml");
    let run = zt(&["policy", "check", s(&file)]);
    assert_eq!(run.code, 1);
    let policy = zt_core::policy::Policy::from_file(&file).unwrap();
    let error = zt_core::Guard::new(policy).err().unwrap();
    let zt_core::PolicyError::Invalid { at, message, .. } = &error else { panic!("{error}") };
    assert_eq!(at, "issuers[0].jwks_url");
    let line = run.stdout.lines().next().unwrap();
    assert!(line.contains(message.as_str()), "{}", run.stdout);
    // File, line and key path each once.
    assert!(
        line.starts_with("invalid.toml:4: error[ZP001]") || line.contains("/invalid.toml:4: error[ZP001]"),
        "{line}"
    );
    assert_eq!(line.matches("invalid.toml").count(), 1, "{line}");
    assert_eq!(line.matches("issuers[0].jwks_url").count(), 1, "{line}");
    let report = zt(&["policy", "check", "--format", "json", s(&file)]).json();
    assert!(report["findings"][0]["pointer"].as_str().unwrap().starts_with("issuers[0]"));
}

#[test]
fn unreadable_policies_fail() {
    let run = zt(&["policy", "check", "/nonexistent/zt.toml"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("cannot read policy file /nonexistent/zt.toml"), "{}", run.stdout);
    assert_eq!(zt(&["policy"]).code, 2, "usage");
}

#[test]
fn limits_and_zones_that_match_nothing_are_named_and_operations_counted() {
    let file = fixture("policy/unmatched.toml");
    let dir = file.parent().unwrap();
    let run = common::zt_in(Some(dir), &["policy", "check", "--format", "json", "unmatched.toml"]);
    assert_eq!(run.code, 0, "warnings do not fail the check: {}", run.stdout);
    let report = run.json();
    assert_eq!(report["facts"]["policy"]["contract_operations"], json!(6), "{report}");
    let findings: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["pointer"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        findings,
        [
            ("ZP002".to_string(), "limits.routes[1]".to_string()),
            ("ZP003".into(), "zones[0].routes[1]".into())
        ],
        "{report}"
    );
    let text = common::zt_in(Some(dir), &["policy", "check", "unmatched.toml"]).stdout;
    assert!(text.contains("GET /order matches no route"), "{text}");
    assert!(text.contains("\"DELETE /orderz/{id}\""), "{text}");
    assert!(text.contains("contract_operations 6"), "{text}");
}
