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
    let expected = zt_core::policy::Policy::from_file(&file).unwrap_err().to_string();
    assert_eq!(f["message"], json!(expected), "exactly the library's error");
    assert!(expected.contains("syntax.toml: line 4"), "{expected}");
}

#[test]
fn invalid_entries_name_the_key_path() {
    let file = fixture("policy/invalid.toml");
    let run = zt(&["policy", "check", s(&file)]);
    assert_eq!(run.code, 1);
    let policy = zt_core::policy::Policy::from_file(&file).unwrap();
    let expected = zt_core::Guard::new(policy).err().unwrap().to_string();
    assert!(expected.contains("issuers[0]"), "{expected}");
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
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
