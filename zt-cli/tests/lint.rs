//! `zt lint`: every rule on crafted documents, configuration, exit codes, and golden
//! summaries of the real-world documents in shared/specs.
//!
//! Regenerate the golden files with `ZT_UPDATE_GOLDEN=1 cargo test -p zt-cli --test lint`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{fixture, found, rules, s, scratch_file, spec, zt, zt_in};
use serde_json::{Value, json};

fn has(report: &Value, rule: &str, pointer: &str) -> bool {
    found(report).iter().any(|(r, p)| r == rule && p == pointer)
}

#[test]
fn every_rule_fires_on_the_bad_document() {
    let bad = fixture("lint/bad.yaml");
    // For a document other consumers read too: ZT005 also where zt's strict mode closes it.
    let config = scratch_file("open-runtime.toml", "runtime-strict = false\n");
    let run = zt(&["lint", "--format", "json", "--config", s(&config), s(&bad)]);
    assert_eq!(run.code, 1, "errors fail by default: {}", run.stdout);
    let report = run.json();
    let expected = [
        ("ZT001", "/paths/~1open/get"),
        ("ZT002", "/paths/~1orders/get/security/0/oauth"),
        ("ZT003", "/paths/~1orders/post/security"),
        ("ZT004", "/paths/~1orders~1{id}/delete"),
        ("ZT005", "/components/schemas/NewOrder"),
        ("ZT006", "/components/schemas/NewOrder/properties/item"),
        ("ZT007", "/components/schemas/NewOrder/properties/tags"),
        ("ZT008", "/components/schemas/NewOrder/properties/quantity"),
        ("ZT009", "/paths/~1orders~1{id}/parameters/0"),
        ("ZT010", "/paths/~1orders~1{id}/get/responses"),
        ("ZT011", "/paths/~1orders~1{id}/get/responses"),
        ("ZT012", "/paths/~1orders~1{id}/get/responses"),
        ("ZT013", "/servers/0/url"),
        ("ZT014", "/components/schemas/Order/properties/password"),
        ("ZT014", "/components/schemas/Order/properties/card_number"),
        ("ZT015", "/paths/~1orders~1{id}~1cancel/post"),
    ];
    for (rule, pointer) in expected {
        assert!(has(&report, rule, pointer), "{rule} at {pointer} missing from {:#?}", found(&report));
    }
    // Things that must not fire.
    let all = found(&report);
    assert!(!all.iter().any(|(_, p)| p == "/servers/1/url"), "localhost is fine");
    assert!(!all.iter().any(|(_, p)| p.ends_with("next_page_token")), "pagination tokens are not secrets");
    assert!(!all.iter().any(|(r, p)| r == "ZT009" && p.contains("cancel")), "integer ids are constrained");
    assert!(!all.iter().any(|(r, p)| r == "ZT010" && p.starts_with("/paths/~1orders/")), "4XX covers 401");
    assert!(!rules(&report).contains(&"ZT000".to_string()), "the bad document still compiles");
    // Each finding has a line.
    for f in report["findings"].as_array().unwrap() {
        assert!(f["line"].as_u64().is_some_and(|l| l > 0), "no line: {f}");
    }
}

#[test]
fn zt005_is_quiet_where_the_runtime_strict_mode_closes_the_object() {
    let bad = fixture("lint/bad.yaml");
    // By default zt enforces the document in strict mode: NewOrder declares properties and
    // no additionalProperties, so the runtime rejects undeclared ones.
    let report = zt(&["lint", "--format", "json", s(&bad)]).json();
    assert!(!has(&report, "ZT005", "/components/schemas/NewOrder"), "{:#?}", found(&report));
    let doc = |strict: &str, extra: &str| {
        format!(
            r#"openapi: 3.1.0
info: {{ title: t, version: "1" }}
paths:
  /a:
    post:
      {strict}
      security: []
      requestBody:
        content:
          application/json:
            schema:
              type: object
              {extra}
              properties: {{ name: {{ type: string, maxLength: 5 }} }}
      responses: {{ "204": {{ description: ok }} }}
"#
        )
    };
    let zt005 = |text: String| {
        let file = scratch_file("zt005.yaml", &text);
        rules(&zt(&["lint", "--format", "json", s(&file)]).json()).contains(&"ZT005".to_string())
    };
    assert!(!zt005(doc("", "")), "closed by strict mode");
    assert!(zt005(doc("x-zt-strict: false", "")), "the operation opts out of strict mode");
    assert!(zt005(doc("", "additionalProperties: true")), "explicitly open stays open at run time");
    assert!(!zt005(doc("", "additionalProperties: false")), "closed in the document");
}

#[test]
fn the_good_document_is_clean() {
    let run = zt(&["lint", "--format", "json", "--fail-on", "note", s(&fixture("lint/good.yaml"))]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(found(&run.json()), Vec::<(String, String)>::new());
}

#[test]
fn a_document_zt_refuses_is_zt000_with_its_pointer() {
    let run = zt(&["lint", "--format", "json", s(&fixture("lint/broken.yaml"))]);
    assert_eq!(run.code, 1);
    let report = run.json();
    assert!(has(&report, "ZT000", "/paths/~1orders/get/security/0/nowhere"), "{:#?}", found(&report));
    let f = &report["findings"][0];
    assert!(f["message"].as_str().unwrap().contains("not defined"), "{f}");
    assert_eq!(f["line"], json!(9));
}

#[test]
fn lines_point_into_the_document() {
    let bad = fixture("lint/bad.yaml");
    let report = zt(&["lint", "--format", "json", s(&bad)]).json();
    let text = std::fs::read_to_string(&bad).unwrap();
    let line_of = |rule: &str, pointer: &str| {
        let f = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule && f["pointer"] == pointer)
            .unwrap();
        let n = f["line"].as_u64().unwrap() as usize;
        text.lines().nth(n - 1).unwrap().trim().to_string()
    };
    assert_eq!(line_of("ZT013", "/servers/0/url"), "- url: http://api.example.com/v1");
    assert_eq!(line_of("ZT014", "/components/schemas/Order/properties/password"), "password:");
    assert_eq!(line_of("ZT001", "/paths/~1open/get"), "get:");
}

#[test]
fn fail_on_sets_the_exit_code() {
    let good = fixture("lint/good.yaml");
    let bad = fixture("lint/bad.yaml");
    let warnings_only = scratch_file(
        "warnings.yaml",
        &std::fs::read_to_string(&bad)
            .unwrap()
            .replace("http://api", "https://api")
            .replace("  /open:\n    get:\n", "  /open:\n    get:\n      security: []\n"),
    );
    let report = zt(&["lint", "--format", "json", s(&warnings_only)]).json();
    assert_eq!(report["summary"]["error"], json!(0), "{:#?}", found(&report));
    assert_eq!(zt(&["lint", s(&warnings_only)]).code, 0);
    assert_eq!(zt(&["lint", "--fail-on", "warning", s(&warnings_only)]).code, 1);
    assert_eq!(zt(&["lint", "--fail-on", "note", s(&good)]).code, 0);
    assert_eq!(zt(&["lint", "--fail-on", "never", s(&bad)]).code, 0);
    assert_eq!(zt(&["lint", s(&bad)]).code, 1);
    assert_eq!(zt(&["lint", s(&good), s(&bad)]).code, 1, "several documents");
}

#[test]
fn configuration_disables_and_reclassifies_rules() {
    let bad = fixture("lint/bad.yaml");
    let config = scratch_file(
        "zt-lint.toml",
        "fail-on = \"never\"\n[rules]\nZT001 = \"off\"\ninsecure-server = \"note\"\nZT006 = \"error\"\n",
    );
    let run = zt(&["lint", "--format", "json", "--config", s(&config), s(&bad)]);
    assert_eq!(run.code, 0, "fail-on from the config");
    let report = run.json();
    let by_rule: BTreeMap<String, String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["level"].as_str().unwrap().to_string()))
        .collect();
    assert!(!by_rule.contains_key("ZT001"));
    assert_eq!(by_rule["ZT013"], "note");
    assert_eq!(by_rule["ZT006"], "error");
    // The command line wins over the config.
    assert_eq!(zt(&["lint", "--config", s(&config), "--fail-on", "error", s(&bad)]).code, 1);
    // ./zt-lint.toml is picked up.
    let dir = config.parent().unwrap();
    assert_eq!(zt_in(Some(dir), &["lint", s(&bad)]).code, 0);
}

#[test]
fn bad_configuration_and_missing_files_exit_2() {
    let bad = fixture("lint/bad.yaml");
    let unknown = scratch_file("unknown-rule.toml", "[rules]\nZT999 = \"off\"\n");
    let run = zt(&["lint", "--config", s(&unknown), s(&bad)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("ZT999"), "{}", run.stderr);
    let typo = scratch_file("typo.toml", "[rules]\nZT001 = \"loud\"\n");
    let run = zt(&["lint", "--config", s(&typo), s(&bad)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    let run = zt(&["lint", "/nonexistent/openapi.yaml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent/openapi.yaml"), "{}", run.stderr);
    let garbage = scratch_file("garbage.yaml", "openapi: [unclosed\n");
    assert_eq!(zt(&["lint", s(&garbage)]).code, 2);
    assert_eq!(zt(&["lint"]).code, 2, "a usage error");
    assert_eq!(zt(&["frobnicate"]).code, 2);
}

#[test]
fn operations_can_ignore_rules() {
    let text = std::fs::read_to_string(fixture("lint/bad.yaml"))
        .unwrap()
        .replace("  /open:\n    get:\n", "  /open:\n    get:\n      x-zt-lint-ignore: [missing-security]\n");
    let path = scratch_file("ignore.yaml", &text);
    let report = zt(&["lint", "--format", "json", s(&path)]).json();
    assert!(!has(&report, "ZT001", "/paths/~1open/get"));
}

#[test]
fn text_output_is_plain_off_a_terminal_and_colours_on_request() {
    let bad = fixture("lint/bad.yaml");
    let run = zt(&["lint", s(&bad)]);
    assert!(!run.stdout.contains('\x1b'), "no colour when piped");
    assert!(run.stdout.contains("error[ZT001]"), "{}", run.stdout);
    assert!(run.stdout.contains("bad.yaml:"), "{}", run.stdout);
    assert!(run.stdout.lines().last().unwrap().contains("in 1 file(s)") || run.stdout.contains("lint: "));
    let run = zt(&["lint", "--color", "always", s(&bad)]);
    assert!(run.stdout.contains("\x1b[1;31merror"), "{}", run.stdout);
    let listed = zt(&["lint", "--list-rules"]);
    assert_eq!(listed.code, 0);
    assert_eq!(listed.stdout.lines().count(), 16);
}

#[test]
fn output_goes_to_a_file() {
    let out = std::env::temp_dir().join(format!("zt-cli-out-{}.sarif", std::process::id()));
    let run = zt(&["lint", "--format", "sarif", "-o", s(&out), s(&fixture("lint/bad.yaml"))]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
}

/// Golden summaries (finding counts by rule, and operations) of the real-world documents.
#[test]
fn golden_shared_specs() {
    let update = std::env::var_os("ZT_UPDATE_GOLDEN").is_some();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for name in [
        "petstore-expanded.yaml",
        "uspto.yaml",
        "museum-3.1.yaml",
        "twilio_messaging_v1.json",
        "twilio_verify_v2.json",
    ] {
        let path = spec(name);
        let run = zt(&["lint", "--format", "json", "--fail-on", "never", s(&path)]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let report = run.json();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for f in report["findings"].as_array().unwrap() {
            *counts.entry(f["rule"].as_str().unwrap().to_string()).or_default() += 1;
            assert!(f["line"].as_u64().is_some(), "{name}: finding without a line: {f}");
        }
        let summary = json!({ "operations": report["facts"]["operations"], "findings_by_rule": counts });
        let golden = golden_dir.join(format!("{name}.lint.json"));
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&golden, serde_json::to_string_pretty(&summary).unwrap() + "\n").unwrap();
            continue;
        }
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(&golden)
                .unwrap_or_else(|_| panic!("{} missing: run with ZT_UPDATE_GOLDEN=1", golden.display())),
        )
        .unwrap();
        assert_eq!(summary, expected, "{name} (regenerate with ZT_UPDATE_GOLDEN=1 if intended)");
    }
}
