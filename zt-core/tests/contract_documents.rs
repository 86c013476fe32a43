//! Loading: versions, JSON/YAML, `$ref`s within and across files, cycles, security
//! mapping, routing, extensions, and every kind of bad document as a typed error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract_common;

use std::path::PathBuf;

use contract_common::*;
use serde_json::json;
use zt_core::contract::{Contract, ContractError, ContractOptions, Lookup};
use zt_core::scopes::{self, Requirement};

fn compile_err(text: &str) -> ContractError {
    match Contract::from_text(text, None, ContractOptions::default()) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn minimal(paths: &str) -> String {
    format!("openapi: 3.0.3\ninfo: {{ title: t, version: '1' }}\npaths:\n{paths}")
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("zt-contract-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn versions() {
    for ok in ["3.0.0", "3.0.3", "3.1.0", "3.1.1"] {
        let text = format!("openapi: {ok}\ninfo: {{ title: t, version: '1' }}\npaths: {{}}");
        assert!(Contract::from_text(&text, None, ContractOptions::default()).is_ok(), "{ok}");
    }
    for bad in ["2.0", "3.2.0", "3", "4.0.0", "3.0", "3.1.x"] {
        let err = compile_err(&format!("openapi: '{bad}'\ninfo: {{ title: t, version: '1' }}\npaths: {{}}"));
        assert!(matches!(err, ContractError::Version { found: Some(ref f), .. } if f == bad), "{bad}: {err}");
    }
    let err = compile_err("swagger: '2.0'\ninfo: { title: t, version: '1' }\npaths: {}");
    assert!(matches!(err, ContractError::Version { found: Some(ref f), .. } if f.contains("2.0")), "{err}");
    let err = compile_err("info: { title: t, version: '1' }\npaths: {}");
    assert!(matches!(err, ContractError::Version { found: None, .. }));
    assert_eq!(err.pointer(), Some("/openapi"));
}

#[test]
fn malformed_documents_are_errors_not_panics() {
    for text in [
        "{ not yaml: [",
        "- just\n- a list",
        "\"a string\"",
        "42",
        "openapi: 3.1.0\npaths: [1, 2]",
        "",
        "\u{0}\u{1}\u{2}",
    ] {
        let result = Contract::from_text(text, None, ContractOptions::default());
        assert!(result.is_err(), "{text:?}");
    }
    assert!(matches!(compile_err("{ not yaml: ["), ContractError::Syntax { .. }));
    let err = compile_err("openapi: 3.1.0\ninfo: { title: t, version: '1' }\n");
    assert_eq!(err.pointer(), Some("/paths"), "{err}");
    assert!(err.to_string().contains("#/paths"), "{err}");

    let dir = TempDir::new("malformed");
    let path = dir.write("broken.json", "{\"openapi\": \"3.1.0\", ");
    let err = Contract::from_file(&path, ContractOptions::default()).unwrap_err();
    assert!(matches!(err, ContractError::Syntax { file: Some(_), .. }), "{err}");
    let err = Contract::from_file(dir.0.join("absent.yaml"), ContractOptions::default()).unwrap_err();
    assert!(matches!(err, ContractError::Io { .. }), "{err}");

    let cases: &[(&str, &str)] = &[
        ("  /a:\n    get: 5\n", "/paths/~1a/get"),
        ("  /a:\n    gett: {}\n", "/paths/~1a/gett"),
        ("  /a:\n    get:\n      parameters: [5]\n", "/paths/~1a/get/parameters/0"),
        (
            "  /a:\n    get:\n      parameters: [{ in: query, schema: {} }]\n",
            "/paths/~1a/get/parameters/0/name",
        ),
        ("  /a:\n    get:\n      parameters: [{ name: q, in: query }]\n", "/paths/~1a/get/parameters/0"),
        ("  /a/{id}:\n    get: {}\n", "/paths/~1a~1{id}/get"),
        (
            "  /a:\n    get:\n      parameters: [{ name: id, in: path, required: true, schema: {} }]\n",
            "/paths/~1a/get/parameters/0",
        ),
        (
            "  /a/{id}:\n    get:\n      parameters: [{ name: id, in: path, schema: {} }]\n",
            "/paths/~1a~1{id}/get/parameters/0/required",
        ),
        (
            "  /a:\n    get:\n      parameters: [{ name: q, in: query, schema: { type: strin } }]\n",
            "/paths/~1a/get/parameters/0/schema/type",
        ),
        (
            "  /a:\n    get:\n      parameters: [{ name: q, in: query, schema: { type: string, pattern: '[' } }]\n",
            "/paths/~1a/get/parameters/0/schema/pattern",
        ),
        (
            "  /a:\n    get:\n      parameters: [{ name: q, in: query, schema: {} }, { name: q, in: query, schema: {} }]\n",
            "/paths/~1a/get/parameters/1",
        ),
        ("  /a:\n    get:\n      responses: { '2X0': { description: x } }\n", "/paths/~1a/get/responses/2X0"),
        (
            "  /a:\n    post:\n      requestBody: { content: { 'not a type': {} } }\n",
            "/paths/~1a/post/requestBody/content/not a type",
        ),
        ("  /a:\n    post:\n      requestBody: {}\n", "/paths/~1a/post/requestBody/content"),
        ("  /a:\n    get:\n      x-zt-body-limit: -1\n", "/paths/~1a/get/x-zt-body-limit"),
        ("  /a:\n    get:\n      x-zt-strict: 'no'\n", "/paths/~1a/get/x-zt-strict"),
        ("  /a:\n    get:\n      security: [{ nope: [] }]\n", "/paths/~1a/get/security/0/nope"),
        ("  a:\n    get: {}\n", "/paths/a"),
        ("  /a/{b:\n    get: {}\n", "/paths/~1a~1{b"),
    ];
    for (paths, pointer) in cases {
        let err = compile_err(&minimal(paths));
        assert_eq!(err.pointer(), Some(*pointer), "{paths}: {err}");
    }
}

#[test]
fn unsupported_constructs_name_their_pointer() {
    let cases: &[(&str, &str)] = &[
        ("parameters: [{ name: q, in: body, schema: {} }]", "/paths/~1a/get/parameters/0/in"),
        (
            "parameters: [{ name: q, in: query, style: matrix, schema: {} }]",
            "/paths/~1a/get/parameters/0/style",
        ),
        (
            "parameters: [{ name: q, in: header, style: form, schema: {} }]",
            "/paths/~1a/get/parameters/0/style",
        ),
        (
            "parameters: [{ name: q, in: query, style: deepObject, schema: { type: string } }]",
            "/paths/~1a/get/parameters/0/style",
        ),
        (
            "parameters: [{ name: q, in: query, allowReserved: true, schema: { type: array, items: {} } }]",
            "/paths/~1a/get/parameters/0/allowReserved",
        ),
        (
            "parameters: [{ name: c, in: cookie, schema: { type: object, properties: { a: {} } } }]",
            "/paths/~1a/get/parameters/0/explode",
        ),
        (
            "parameters: [{ name: q, in: query, content: { text/plain: {} } }]",
            "/paths/~1a/get/parameters/0/content/text~1plain",
        ),
        (
            "parameters: [{ name: q, in: query, schema: { type: array, items: [{}] } }]",
            "/paths/~1a/get/parameters/0/schema/items",
        ),
        (
            "parameters: [{ name: q, in: query, schema: { $id: 'https://x', type: string } }]",
            "/paths/~1a/get/parameters/0/schema/$id",
        ),
        (
            "parameters: [{ name: q, in: query, schema: { dependencies: {} } }]",
            "/paths/~1a/get/parameters/0/schema/dependencies",
        ),
    ];
    for (op, pointer) in cases {
        let err = compile_err(&minimal(&format!("  /a:\n    get:\n      {op}\n")));
        assert!(matches!(err, ContractError::Unsupported { .. }), "{op}: {err}");
        assert_eq!(err.pointer(), Some(*pointer), "{op}: {err}");
    }
    let err = compile_err(&minimal(
        "  /a:\n    get:\n      parameters: [{ name: q, in: query, schema: { $ref: 'https://evil.example/s.json' } }]\n",
    ));
    assert!(
        matches!(err, ContractError::Reference { ref reference, .. } if reference.starts_with("https:")),
        "{err}"
    );
    assert_eq!(err.pointer(), Some("/paths/~1a/get/parameters/0/schema"));
    let err = compile_err(&minimal(
        "  /a:\n    get:\n      parameters: [{ $ref: '#/components/parameters/Missing' }]\n",
    ));
    assert!(matches!(err, ContractError::Reference { .. }), "{err}");
    assert_eq!(err.pointer(), Some("/paths/~1a/get/parameters/0"));
    let err = compile_err(&minimal("  /a:\n    get:\n      parameters: [{ $ref: '#anchor' }]\n"));
    assert!(matches!(err, ContractError::Reference { .. }), "{err}");
    let err = compile_err(&minimal("  /a:\n    get:\n      parameters: [{ $ref: 'other.yaml#/x' }]\n"));
    assert!(err.to_string().contains("base directory"), "{err}");
}

#[test]
fn reference_cycles() {
    let doc = |schemas: &str| {
        format!(
            "openapi: 3.1.0\ninfo: {{ title: t, version: '1' }}\ncomponents:\n  schemas:\n{schemas}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {{ $ref: '#/components/schemas/A' }}\n"
        )
    };
    // A cycle that never consumes input would recurse forever: refused at start-up.
    for schemas in [
        "    A: { $ref: '#/components/schemas/A' }",
        "    A: { $ref: '#/components/schemas/B' }\n    B: { $ref: '#/components/schemas/A' }",
        "    A: { allOf: [{ $ref: '#/components/schemas/B' }] }\n    B: { anyOf: [{ $ref: '#/components/schemas/A' }] }",
        "    A: { properties: { x: {} }, not: { $ref: '#/components/schemas/A' } }",
    ] {
        let err = compile_err(&doc(schemas));
        assert!(matches!(err, ContractError::Reference { .. }), "{schemas}: {err}");
    }
    // Through a property or item it is an ordinary recursive schema.
    let c = contract(&doc(
        "    A: { type: object, properties: { b: { $ref: '#/components/schemas/B' } } }\n    B: { type: array, items: { $ref: '#/components/schemas/A' } }",
    ));
    accepted(json(&c, "POST", "/a", r#"{"b":[{"b":[{}]}]}"#));
    rejected(json(&c, "POST", "/a", r#"{"b":[{"c":1}]}"#), &[("/body/b/0/c", "unevaluatedProperties")]);
    // Cycles among non-schema references.
    let err = compile_err(
        "openapi: 3.1.0\ninfo: { title: t, version: '1' }\ncomponents:\n  parameters:\n    P: { $ref: '#/components/parameters/Q' }\n    Q: { $ref: '#/components/parameters/P' }\npaths:\n  /a:\n    get:\n      parameters: [{ $ref: '#/components/parameters/P' }]\n",
    );
    assert!(matches!(err, ContractError::Reference { .. }), "{err}");
}

#[test]
fn relative_file_references() {
    let dir = TempDir::new("refs");
    dir.write(
        "schemas/common.yaml",
        "components:\n  schemas:\n    Money:\n      type: object\n      required: [amount]\n      properties:\n        amount: { type: integer, minimum: 0 }\n        currency: { $ref: 'currency.json#/Currency' }\n  parameters:\n    Limit: { name: limit, in: query, schema: { type: integer, maximum: 10 } }\n",
    );
    dir.write("schemas/currency.json", r#"{"Currency": {"type": "string", "enum": ["EUR", "USD"]}}"#);
    let root = dir.write(
        "api.yaml",
        "openapi: 3.0.3\ninfo: { title: t, version: '1' }\npaths:\n  /pay:\n    post:\n      parameters: [{ $ref: 'schemas/common.yaml#/components/parameters/Limit' }]\n      requestBody:\n        content:\n          application/json:\n            schema: { $ref: './schemas/common.yaml#/components/schemas/Money' }\n      responses: { '200': { description: ok } }\n",
    );
    let c = Contract::from_file(&root, ContractOptions::default()).unwrap();
    accepted(json(&c, "POST", "/pay?limit=3", r#"{"amount":5,"currency":"EUR"}"#));
    rejected(json(&c, "POST", "/pay?limit=30", r#"{"amount":5}"#), &[("/query/limit", "maximum")]);
    rejected(json(&c, "POST", "/pay", r#"{"amount":5,"currency":"GBP"}"#), &[("/body/currency", "enum")]);
    rejected(
        json(&c, "POST", "/pay", r#"{"amount":-1,"tip":1}"#),
        &[("/body/amount", "minimum"), ("/body/tip", "unevaluatedProperties")],
    );

    // A document value (e.g. generated by utoipa) with a base directory.
    let text = std::fs::read_to_string(&root).unwrap();
    let value: serde_json::Value = serde_json::to_value(serde_yaml_like(&text)).unwrap();
    let c = Contract::from_value(value.clone(), Some(&dir.0), ContractOptions::default()).unwrap();
    accepted(json(&c, "POST", "/pay", r#"{"amount":5}"#));
    let err = Contract::from_value(value, None, ContractOptions::default()).unwrap_err();
    assert!(matches!(err, ContractError::Reference { .. }), "{err}");

    // A missing file and a missing target inside an existing file.
    let missing = dir.write(
        "missing.yaml",
        &text.replace("schemas/common.yaml#/components/parameters/Limit", "nope.yaml#/x"),
    );
    let err = Contract::from_file(&missing, ContractOptions::default()).unwrap_err();
    assert!(
        matches!(err, ContractError::Reference { ref file, .. } if file.as_deref().is_some_and(|f| f.ends_with("missing.yaml"))),
        "{err}"
    );
    let bad_target =
        dir.write("target.yaml", &text.replace("components/schemas/Money", "components/schemas/Nope"));
    let err = Contract::from_file(&bad_target, ContractOptions::default()).unwrap_err();
    assert_eq!(
        err.pointer(),
        Some("/paths/~1pay/post/requestBody/content/application~1json/schema"),
        "{err}"
    );
    // An error inside a referenced file names that file.
    dir.write("schemas/bad.yaml", "Bad: { type: object, properties: { x: { type: nope } } }\n");
    let bad = dir.write(
        "bad.yaml",
        &text.replace("./schemas/common.yaml#/components/schemas/Money", "schemas/bad.yaml#/Bad"),
    );
    let err = Contract::from_file(&bad, ContractOptions::default()).unwrap_err();
    assert!(
        matches!(err, ContractError::Schema { ref file, .. } if file.as_deref().is_some_and(|f| f.ends_with("bad.yaml"))),
        "{err}"
    );
}

/// Parses YAML text into JSON through the public API's own YAML support.
fn serde_yaml_like(text: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn json_documents_and_from_value() {
    let doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "t", "version": "1" },
        "paths": { "/x": { "get": { "operationId": "getX", "tags": ["a", "b"], "deprecated": true,
            "x-zt-zone": "internal", "x-zt-body-limit": 512, "responses": { "200": { "description": "ok" } } } } }
    });
    let c = Contract::from_value(doc.clone(), None, ContractOptions::default()).unwrap();
    let op = &c.operations()[0];
    assert_eq!(op.operation_id.as_deref(), Some("getX"));
    assert_eq!(op.tags, ["a", "b"]);
    assert!(op.deprecated);
    assert_eq!(op.zone.as_deref(), Some("internal"));
    assert_eq!(op.body_limit, 512);
    assert_eq!(op.requirement, None);
    let dir = TempDir::new("json");
    let path = dir.write("api.json", &doc.to_string());
    assert_eq!(Contract::from_file(&path, ContractOptions::default()).unwrap().operations().len(), 1);
}

#[test]
fn security_mapping() {
    let text = r#"
openapi: 3.0.3
info: { title: s, version: "1" }
security: [{ oauth: [read] }]
components:
  securitySchemes:
    oauth: { type: oauth2, flows: { implicit: { authorizationUrl: "https://x", scopes: { read: r, write: w, admin: a } } } }
    oidc: { type: openIdConnect, openIdConnectUrl: "https://x/.well-known/openid-configuration" }
    key: { type: apiKey, in: header, name: X-Key }
    basic: { type: http, scheme: basic }
    shared: { $ref: '#/components/securitySchemes/oidc' }
paths:
  /global: { get: { responses: { "200": { description: ok } } } }
  /public: { get: { security: [], responses: { "200": { description: ok } } } }
  /optional: { get: { security: [{}, { oauth: [read] }], responses: { "200": { description: ok } } } }
  /override: { get: { security: [{ oauth: [write, admin] }, { oidc: [admin] }], responses: { "200": { description: ok } } } }
  /and: { get: { security: [{ oauth: [write], shared: [profile] }], responses: { "200": { description: ok } } } }
  /key: { get: { security: [{ key: [] }], responses: { "200": { description: ok } } } }
  /basic-or-oauth: { get: { security: [{ basic: [] }, { oauth: [read] }], responses: { "200": { description: ok } } } }
"#;
    let c = contract(text);
    let req = |t: &str| c.operations().iter().find(|o| o.template == t).unwrap().requirement.clone();
    assert_eq!(req("/global"), Some(scopes::all(["read"])));
    assert_eq!(req("/public"), Some(Requirement::Public));
    assert_eq!(req("/optional"), Some(Requirement::Public));
    assert_eq!(req("/override"), Some(scopes::all(["write", "admin"]).or(scopes::all(["admin"]))));
    assert_eq!(req("/and"), Some(scopes::all(["write", "profile"])));
    assert_eq!(req("/key"), Some(scopes::authenticated()));
    assert_eq!(req("/basic-or-oauth"), Some(scopes::authenticated().or(scopes::all(["read"]))));
    let undefined =
        text.replace("security: [{ oauth: [read] }]\ncomponents", "security: [{ ghost: [] }]\ncomponents");
    let err = compile_err(&undefined);
    assert_eq!(err.pointer(), Some("/security/0/ghost"), "{err}");
    let bad_scope = text.replace("[{ oauth: [read] }]\ncomponents", "[{ oauth: ['has space'] }]\ncomponents");
    assert!(matches!(compile_err(&bad_scope), ContractError::Invalid { .. }));
}

#[test]
fn routing_with_differently_named_parameters() {
    let c = contract(&minimal(
        r#"  /users/{id}:
    get:
      parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]
  /users/{userId}/posts:
    get:
      parameters: [{ name: userId, in: path, required: true, schema: { type: string } }]
  /users/me:
    get: {}
  /files/{name}.{ext}:
    get:
      parameters:
        - { name: name, in: path, required: true, schema: { type: string } }
        - { name: ext, in: path, required: true, schema: { type: string, enum: [json, txt] } }
  /files/{name}.backup.{ext}:
    get:
      parameters:
        - { name: name, in: path, required: true, schema: { type: string } }
        - { name: ext, in: path, required: true, schema: { type: string } }
  /v{version}/status:
    get:
      parameters: [{ name: version, in: path, required: true, schema: { type: integer } }]
  /a b:
    get: {}
"#,
    ));
    let params = |m: &str, p: &str| match c.lookup(m, p) {
        Lookup::Found { op, path_params } => (c.operations()[op].template.clone(), path_params),
        other => panic!("{p}: {other:?}"),
    };
    let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
    assert_eq!(params("GET", "/users/7"), ("/users/{id}".into(), vec![pair("id", "7")]));
    assert_eq!(params("GET", "/users/7/posts"), ("/users/{userId}/posts".into(), vec![pair("userId", "7")]));
    assert_eq!(params("GET", "/users/me"), ("/users/me".into(), vec![]));
    assert_eq!(
        params("GET", "/users/me/posts"),
        ("/users/{userId}/posts".into(), vec![pair("userId", "me")])
    );
    assert_eq!(
        params("GET", "/files/report.json"),
        ("/files/{name}.{ext}".into(), vec![pair("name", "report"), pair("ext", "json")])
    );
    assert_eq!(
        params("GET", "/files/db.backup.gz"),
        ("/files/{name}.backup.{ext}".into(), vec![pair("name", "db"), pair("ext", "gz")])
    );
    assert_eq!(params("GET", "/v2/status"), ("/v{version}/status".into(), vec![pair("version", "2")]));
    assert_eq!(params("GET", "/a%20b"), ("/a b".into(), vec![]));
    assert_eq!(c.lookup("GET", "/files/noext"), Lookup::NotFound);
    assert_eq!(c.lookup("GET", "/users"), Lookup::NotFound);
    assert_eq!(c.lookup("POST", "/users/7"), Lookup::MethodNotAllowed { allowed: vec!["GET".into()] });
    accepted(check(&c, "GET", "/users/7", &[], None));
    rejected(check(&c, "GET", "/users/x", &[], None), &[("/path/id", "type")]);
    rejected(check(&c, "GET", "/files/a.exe", &[], None), &[("/path/ext", "enum")]);

    let err = compile_err(&minimal(
        "  /users/{id}:\n    get:\n      parameters: [{ name: id, in: path, required: true, schema: {} }]\n  /users/{uid}:\n    get:\n      parameters: [{ name: uid, in: path, required: true, schema: {} }]\n",
    ));
    assert!(err.to_string().contains("same path"), "{err}");
}

#[test]
fn path_level_parameters_are_overridden_by_operation_level() {
    let c = contract(&minimal(
        r#"  /items/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: integer } }
      - { name: v, in: query, schema: { type: integer } }
    get:
      parameters:
        - { name: v, in: query, schema: { type: string, enum: [x] } }
    delete: {}
"#,
    ));
    accepted(check(&c, "GET", "/items/1?v=x", &[], None));
    rejected(check(&c, "GET", "/items/1?v=1", &[], None), &[("/query/v", "enum")]);
    accepted(check(&c, "DELETE", "/items/1?v=1", &[], None));
    rejected(check(&c, "DELETE", "/items/1?v=x", &[], None), &[("/query/v", "type")]);
}

#[test]
fn contract_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Contract>();
}
