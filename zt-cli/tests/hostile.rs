//! Odd and hostile inputs: every command answers with a report or an input error (exit 0,
//! 1 or 2), never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fixture, s, scratch_file, zt};

const DOCUMENTS: &[(&str, &str)] = &[
    ("list.yaml", "- a\n- b\n"),
    ("scalar.yaml", "just text\n"),
    ("empty.yaml", ""),
    ("paths-list.yaml", "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: [1, 2]\n"),
    (
        "op-scalar.yaml",
        "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get: 3\n    post: [1]\n",
    ),
    (
        "odd-types.yaml",
        "openapi: 3.1.0\ninfo: {title: x, version: '1'}\nsecurity: {a: 1}\nservers: [{url: 3}, 4, {url: 'http://[::1'}]\npaths:\n  /a/{b}:\n    parameters: [{$ref: '#/nowhere'}, 7, {in: path, name: b, schema: true}]\n    get:\n      security: [[], {x: 5}]\n      requestBody: {content: {a/b: {schema: {type: [1, null], properties: 3, items: [], allOf: {}}}}}\n      responses: {'200': {content: {a/b: {schema: {properties: {password: false}}}}}}\n",
    ),
    (
        "cycle.yaml",
        "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    $ref: '#/paths/~1a'\n  /b:\n    post:\n      requestBody: {$ref: '#/components/requestBodies/B'}\n      responses: {'200': {$ref: '#/components/responses/R'}}\ncomponents:\n  requestBodies:\n    B: {$ref: '#/components/requestBodies/B'}\n  responses:\n    R: {content: {application/json: {schema: {$ref: '#/components/schemas/S'}}}}\n  schemas:\n    S: {type: object, properties: {s: {$ref: '#/components/schemas/S'}, t: {$ref: 'other.yaml#/x'}}, allOf: [{$ref: '#/components/schemas/S'}]}\n",
    ),
    (
        "unicode.yaml",
        "openapi: 3.0.0\ninfo: {title: \"\u{00e9}\u{1F600}\", version: '1'}\npaths:\n  \"/\u{00e9}/{\u{1F600}}\":\n    get:\n      responses: {'200': {description: \"\u{2028}\"}}\n",
    ),
    (
        "json-escapes.json",
        "{\"openapi\":\"3.0.0\",\"info\":{\"title\":\"x\",\"version\":\"1\"},\"paths\":{\"/a\\u002fb\\\"\":{\"get\":{\"responses\":{}}}}}",
    ),
];

fn ok(run: &common::Run, what: &str) {
    assert!(matches!(run.code, 0..=2), "{what}: exit {}\n{}", run.code, run.stderr);
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
}

#[test]
fn odd_documents_never_panic() {
    let good = fixture("lint/good.yaml");
    for (name, text) in DOCUMENTS {
        let path = scratch_file(name, text);
        for format in ["text", "json", "sarif"] {
            ok(&zt(&["lint", "--format", format, s(&path)]), name);
        }
        ok(&zt(&["diff", s(&path), s(&good)]), name);
        ok(&zt(&["diff", s(&good), s(&path)]), name);
        ok(&zt(&["diff", s(&path), s(&path)]), name);
        ok(&zt(&["inventory-check", s(&path), s(&fixture("inventory/inventory.json"))]), name);
    }
}

#[test]
fn odd_inventories_and_policies_never_panic() {
    let spec = fixture("inventory/spec.yaml");
    for (name, text) in [
        ("inv-null.json", "null"),
        ("inv-num.json", "{\"endpoints\": 3}"),
        ("inv-types.json", "{\"endpoints\": [{\"method\": 1, \"route\": 2}]}"),
        (
            "inv-odd.json",
            "[{\"method\": \"BREW\", \"route\": \"\", \"calls\": 18446744073709551615, \"sensitive\": [\"\u{1F600}\"]}, {\"method\": \"get\", \"path_shape\": \"////{\"}]",
        ),
    ] {
        ok(&zt(&["inventory-check", s(&spec), s(&scratch_file(name, text))]), name);
    }
    for (name, text) in [
        ("p-empty.toml", ""),
        ("p-binary.toml", "\u{0}\u{1}\u{2}"),
        ("p-list.yaml", "- 1\n"),
        ("p-contract.toml", "[contract]\nfile = \"/nonexistent.yaml\"\n"),
    ] {
        ok(&zt(&["policy", "check", s(&scratch_file(name, text))]), name);
    }
}
