//! Unit tests of the contract engine's internals. The public behaviour is tested in
//! `zt-core/tests/contract_*.rs`.

use serde_json::{Value, json};

use super::loader::{Loader, Loc};
use super::media::MediaType;
use super::operation::Lookup;
use super::params::{coerce, decode};
use super::report::Collector;
use super::router::{RouterBuilder, template_params};
use super::schema::{Direction, SchemaCompiler, Types, Version};
use crate::json::{self as body_json, push_request_segment, push_segment};

fn bundle(version: Version, doc: Value, pointer: &str, dir: Direction) -> Value {
    let mut loader = Loader::new(doc, None, None, None);
    let mut schemas = SchemaCompiler::new(version);
    let compiled = schemas.compile(&mut loader, &Loc { file: 0, pointer: pointer.into() }, dir).unwrap();
    (*compiled.bundle).clone()
}

#[test]
fn closing_goes_on_the_composing_schema_not_on_allof_parts() {
    let doc = json!({
        "components": { "schemas": {
            "A": { "type": "object", "properties": { "a": { "type": "string" } } },
            "B": { "type": "object", "properties": { "b": { "type": "integer" } } },
            "AB": { "allOf": [{ "$ref": "#/components/schemas/A" }, { "$ref": "#/components/schemas/B" }] },
            "Use": { "$ref": "#/components/schemas/AB" }
        } }
    });
    let b = bundle(Version::V31, doc, "/components/schemas/Use", Direction::Request { strict: true });
    let defs = b["$defs"].as_object().unwrap();
    // The root is a reference to the closed variant of AB; A and B appear open.
    let root_ref = b["$ref"].as_str().unwrap().trim_start_matches("#/$defs/");
    let ab = &defs[root_ref];
    assert_eq!(ab["unevaluatedProperties"], json!(false));
    for part in ab["allOf"].as_array().unwrap() {
        let key = part["$ref"].as_str().unwrap().trim_start_matches("#/$defs/");
        assert!(defs[key].get("unevaluatedProperties").is_none(), "{}", defs[key]);
        assert!(defs[key].get("additionalProperties").is_none());
    }
}

#[test]
fn openapi_30_conversion() {
    let doc = json!({ "s": {
        "type": "object",
        "properties": {
            "n": { "type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true, "maximum": 9,
                   "exclusiveMaximum": false, "example": 3, "x-note": "dropped" },
            "e": { "type": "string", "enum": ["a"], "nullable": true, "xml": { "name": "e" } },
            "c": { "nullable": true, "allOf": [{ "type": "object", "properties": { "x": {} } }], "discriminator": {} }
        }
    } });
    let b = bundle(Version::V30, doc, "/s", Direction::Response);
    let props = &b["properties"];
    assert_eq!(props["n"], json!({ "type": ["integer", "null"], "exclusiveMinimum": 1, "maximum": 9 }));
    assert_eq!(props["e"], json!({ "type": ["string", "null"], "enum": ["a", null] }));
    assert_eq!(props["c"]["anyOf"][0], json!({ "type": "null" }));
    assert!(props["c"]["anyOf"][1].get("discriminator").is_none());
    // Responses are never closed.
    assert!(b.get("unevaluatedProperties").is_none());
}

#[test]
fn read_only_becomes_a_mark_and_leaves_required() {
    let doc = json!({ "s": {
        "type": "object", "required": ["id", "name"],
        "properties": { "id": { "type": "string", "readOnly": true }, "name": { "type": "string" } }
    } });
    let b = bundle(Version::V31, doc.clone(), "/s", Direction::Request { strict: false });
    assert_eq!(b["properties"]["id"], json!({ super::schema::READ_ONLY_MARK: true }));
    assert_eq!(b["required"], json!(["name"]));
    assert!(b.get("unevaluatedProperties").is_none(), "lax mode does not close");
    let b = bundle(Version::V31, doc, "/s", Direction::Response);
    assert_eq!(b["properties"]["id"]["type"], "string");
    assert_eq!(b["required"], json!(["id", "name"]));
}

#[test]
fn router_maps_positional_names_back() {
    let mut builder = RouterBuilder::default();
    builder.add("/users/{id}", "GET", 0);
    builder.add("/users/{userId}/posts", "GET", 1);
    builder.add("/users/{id}", "DELETE", 2);
    builder.add("/f/{name}.{ext}", "GET", 3);
    builder.add("/f/{stem}-{n}.tar", "GET", 4);
    let router = builder.build().unwrap();
    let found = |p: &str| match router.lookup("GET", p) {
        Lookup::Found { op, path_params } => (op, path_params),
        other => panic!("{p}: {other:?}"),
    };
    assert_eq!(found("/users/1"), (0, vec![("id".into(), "1".into())]));
    assert_eq!(found("/users/1/posts"), (1, vec![("userId".into(), "1".into())]));
    assert_eq!(found("/f/a.b.c"), (3, vec![("name".into(), "a".into()), ("ext".into(), "b.c".into())]));
    assert_eq!(found("/f/x-1.tar"), (4, vec![("stem".into(), "x".into()), ("n".into(), "1".into())]));
    assert_eq!(
        router.lookup("PUT", "/users/1"),
        Lookup::MethodNotAllowed { allowed: vec!["DELETE".into(), "GET".into()] }
    );
    assert_eq!(router.lookup("GET", "/f/.x"), Lookup::NotFound);
    assert_eq!(router.lookup("GET", "/f/x."), Lookup::NotFound);
}

#[test]
fn template_errors() {
    assert_eq!(template_params("/a/{x}/{y}.json").unwrap(), ["x", "y"]);
    for bad in ["a", "/a/{", "/a/}", "/a/{}", "/a/{x}{y}", "/a/{x}/{x}"] {
        assert!(template_params(bad).is_err(), "{bad}");
    }
}

#[test]
fn media_types() {
    let m = MediaType::parse("Application/Problem+JSON; charset=\"utf-8\"").unwrap();
    assert!(m.is_json());
    assert!(MediaType::parse("application/x-www-form-urlencoded").unwrap().is_form());
    assert!(!MediaType::parse("text/json").unwrap().is_json());
    // Borrowed when lower case already, lowered otherwise; parameters after any `;`.
    let m = MediaType::parse(" application/json ;charset=UTF-8;").unwrap();
    assert!(m.is_json() && m.utf8());
    assert_eq!(m, MediaType::parse("APPLICATION/JSON; Charset=utf-8").unwrap());
    assert!(!MediaType::parse("application/json; charset=latin1").unwrap().utf8());
    assert!(MediaType::parse("application/vnd.api+json").unwrap().is_json());
    for bad in ["", "json", "/json", "application/", "a b/c", "application/json; charset", "a/b/c", "a;b/c"] {
        assert!(MediaType::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn json_parser_bounds_and_duplicates() {
    assert_eq!(
        body_json::parse(br#"{"a":[1,{"b":2}]}"#, body_json::BOUNDED_BY_CALLER).unwrap(),
        json!({ "a": [1, { "b": 2 }] })
    );
    let issue = body_json::parse(br#"{"a":[1,{"b":2,"b":3}]}"#, body_json::BOUNDED_BY_CALLER).unwrap_err();
    assert_eq!((issue.pointer.as_str(), issue.keyword()), ("/a/1/b", "duplicate"));
    let deep = format!("{}1{}", "[".repeat(64), "]".repeat(64));
    assert!(body_json::parse(deep.as_bytes(), body_json::BOUNDED_BY_CALLER).is_ok());
    let deeper = format!("{}1{}", "[".repeat(65), "]".repeat(65));
    assert_eq!(
        body_json::parse(deeper.as_bytes(), body_json::BOUNDED_BY_CALLER).unwrap_err().keyword(),
        "depth"
    );
    for bad in [&b""[..], b"{", b"nul", b"[1,]", b"{} {}", b"\"\\ud800\"", b"\xff"] {
        assert_eq!(
            body_json::parse(bad, body_json::BOUNDED_BY_CALLER).unwrap_err().keyword(),
            "syntax",
            "{bad:?}"
        );
    }
}

#[test]
fn coercion_and_decoding() {
    assert_eq!(coerce("12", Types::INTEGER), json!(12));
    assert_eq!(coerce("-1.5e3", Types::NUMBER), json!(-1500.0));
    assert_eq!(coerce("007", Types::INTEGER), json!("007"));
    assert_eq!(coerce("+1", Types::INTEGER), json!("+1"));
    assert_eq!(coerce(" 1", Types::INTEGER), json!(" 1"));
    assert_eq!(coerce("NaN", Types::NUMBER), json!("NaN"));
    assert_eq!(coerce("1e999", Types::NUMBER), json!("1e999"));
    assert_eq!(coerce("true", Types::BOOLEAN), json!(true));
    assert_eq!(coerce("True", Types::BOOLEAN), json!("True"));
    assert_eq!(coerce("12", Types::STRING), json!("12"));
    assert_eq!(coerce("12", Types::ALL), json!(12));
    assert_eq!(decode("a+b%20c%2B", true).as_deref(), Some("a b c+"));
    assert_eq!(decode("a+b", false).as_deref(), Some("a+b"));
    assert_eq!(decode("%2541", true).as_deref(), Some("%41"));
    assert_eq!(decode("%zz", true).as_deref(), Some("%zz"));
    assert_eq!(decode("%C3%A9", true).as_deref(), Some("\u{e9}"));
    assert_eq!(decode("%C3", true), None);
    // Nothing to decode: the text is borrowed, not copied.
    assert!(matches!(decode("limit", true), Some(std::borrow::Cow::Borrowed("limit"))));
    assert!(matches!(decode("a+b", false), Some(std::borrow::Cow::Borrowed("a+b"))));
    assert_eq!(decode("%C0%AF", true), None);
}

#[test]
fn pointers_escape_and_redact() {
    let mut p = String::new();
    push_segment(&mut p, "a/b~c");
    assert_eq!(p, "/a~1b~0c");
    let mut p = String::from("/body");
    push_request_segment(&mut p, &"x".repeat(65));
    push_request_segment(&mut p, "caf\u{e9}");
    push_request_segment(&mut p, "with space");
    push_request_segment(&mut p, "ok_1");
    assert_eq!(p, "/body/*/*/*/ok_1");
}

#[test]
fn collector_bounds_and_prefers_specific_findings() {
    let mut c = Collector::new(2);
    c.push("/body/x".into(), "unevaluatedProperties");
    c.push("/body/x".into(), "readOnly");
    c.push("/body/x".into(), "type");
    c.push("/body/y".into(), "type");
    assert!(!c.is_full());
    c.push("/body/z".into(), "type");
    assert!(c.is_full());
    let items = c.into_violations(super::ViolationKind::Body).items;
    let found: Vec<_> = items.iter().map(|v| (v.pointer.as_str(), v.keyword.as_str())).collect();
    assert_eq!(found, [("/body/x", "readOnly"), ("/body/y", "type")]);
}

#[test]
fn loader_refuses_remote_and_absolute_references() {
    let mut loader = Loader::new(json!({ "a": 1 }), None, Some(std::env::temp_dir()), None);
    let from = Loc { file: 0, pointer: "/x".into() };
    for bad in [
        "https://example.com/s.json",
        "file:///etc/passwd",
        "//host/s.json",
        "/etc/passwd#/a",
        "urn:x:y",
        "#a",
        "#/missing",
    ] {
        assert!(loader.resolve(&from, bad).is_err(), "{bad}");
    }
    assert_eq!(loader.resolve(&from, "#/a").unwrap(), Loc { file: 0, pointer: "/a".into() });
}

#[test]
fn yaml_integer_keys_become_strings() {
    let v = super::loader::parse_text("responses:\n  200: { description: ok }\n  true: 1\n", false).unwrap();
    assert_eq!(v, json!({ "responses": { "200": { "description": "ok" }, "true": 1 } }));
    assert!(super::loader::parse_text("? [a, b]\n: 1\n", false).is_err());
    assert!(super::loader::parse_text("a: .nan\n", false).is_err());
}

#[test]
fn request_integers_must_be_written_as_integers() {
    use crate::contract::{Contract, ContractOptions, ContractRequest, Lookup};
    use crate::request::HeaderList;
    let document = json!({
        "openapi": "3.1.0",
        "info": { "title": "t", "version": "1" },
        "paths": { "/n": { "post": {
            "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer" } }],
            "requestBody": { "content": { "application/json": { "schema": {
                "type": "object",
                "properties": {
                    "i": { "type": "integer" },
                    "maybe": { "type": ["integer", "null"] },
                    "either": { "oneOf": [{ "type": "string" }, { "type": "integer" }] },
                    "x": { "type": "number" },
                    "any": { "type": ["integer", "number"] }
                }
            } } } },
            "responses": { "200": { "description": "ok" } } } } }
    });
    let contract = Contract::from_value(document, None, ContractOptions::default()).unwrap();
    let headers = HeaderList::default().with("content-type", "application/json");
    let Lookup::Found { op, path_params } = contract.lookup("POST", "/n") else { panic!("found") };
    let check = |query: Option<&str>, body: &str| {
        let request = ContractRequest {
            path_params: &path_params,
            query,
            headers: &headers,
            body: Some(body.as_bytes()),
        };
        contract
            .validate_request(op, &request)
            .map_err(|v| v.items.iter().map(|v| format!("{} {}", v.pointer, v.keyword)).collect::<Vec<_>>())
    };
    for body in [
        r#"{"i": 60}"#,
        r#"{"i": -9223372036854775808}"#,
        r#"{"i": 18446744073709551615}"#,
        r#"{"maybe": null}"#,
        r#"{"either": 7}"#,
        r#"{"x": 60.0, "any": 6e1}"#,
    ] {
        assert_eq!(check(None, body), Ok(()), "{body}");
    }
    for (body, want) in [
        (r#"{"i": 60.0}"#, "/body/i type"),
        (r#"{"i": 6e1}"#, "/body/i type"),
        (r#"{"i": 18446744073709551616}"#, "/body/i type"),
        (r#"{"maybe": 1.0}"#, "/body/maybe type"),
        (r#"{"either": 7.0}"#, "/body/either oneOf"),
    ] {
        assert_eq!(check(None, body), Err(vec![want.to_string()]), "{body}");
    }
    assert_eq!(check(Some("limit=5"), "{}"), Ok(()));
    assert_eq!(check(Some("limit=5.0"), "{}"), Err(vec!["/query/limit type".to_string()]));
    assert_eq!(check(Some("limit=5e0"), "{}"), Err(vec!["/query/limit type".to_string()]));
}

#[test]
fn response_properties_with_scopes_are_withheld_wherever_the_schema_puts_them() {
    use crate::contract::{Contract, ContractOptions, Withheld};
    let document = json!({
        "openapi": "3.1.0",
        "info": { "title": "t", "version": "1" },
        "components": { "schemas": {
            "Secret": { "type": "string", "x-zt-scopes": ["s:admin"] },
            "Order": { "type": "object", "properties": {
                "id": { "type": "integer" },
                "note": { "type": "string", "x-zt-scopes": ["s:admin", "s:staff"] },
                "code": { "$ref": "#/components/schemas/Secret" },
                "meta": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Secret" } }
            } }
        } },
        "paths": { "/o": { "get": {
            "requestBody": { "content": { "application/json": { "schema": {
                "type": "object", "properties": { "note": { "type": "string", "x-zt-scopes": ["s:admin"] } }
            } } } },
            "responses": {
                "200": { "description": "ok", "content": { "application/json": { "schema": {
                    "allOf": [{ "type": "object", "properties": {
                        "orders": { "type": "array", "items": { "$ref": "#/components/schemas/Order" } } } }]
                } } } },
                "404": { "description": "none", "content": { "application/json": { "schema": { "type": "object" } } } }
            } } } }
    });
    let contract = Contract::from_value(document, None, ContractOptions::default()).unwrap();
    assert!(contract.guards_response_fields(0));
    let body = json!({"orders": [
        {"id": 1, "note": "n1", "code": "c1", "meta": {"a": "x"}},
        {"id": 2, "note": "n2"}
    ]})
    .to_string();
    let withhold = |grants: &'static [&'static str]| {
        contract
            .withhold_response(0, 200, Some("application/json"), body.as_bytes(), &|s| grants.contains(&s))
    };
    let Withheld::Removed { body: out, fields } = withhold(&[]) else { panic!("withheld") };
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap(),
        json!({"orders": [{"id": 1, "meta": {}}, {"id": 2}]})
    );
    assert_eq!(fields, ["/body/orders/*/code", "/body/orders/*/meta/a", "/body/orders/*/note"]);
    // `note` needs both scopes; `code` and the map's values need s:admin only.
    let Withheld::Removed { body: out, fields } = withhold(&["s:admin"]) else { panic!("withheld") };
    assert_eq!(fields, ["/body/orders/*/note"]);
    assert!(!String::from_utf8(out).unwrap().contains("n1"));
    assert_eq!(withhold(&["s:admin", "s:staff"]), Withheld::Nothing);
    // Other statuses' schemas guard nothing; unreadable JSON is never sent half-checked.
    assert_eq!(
        contract.withhold_response(0, 404, Some("application/json"), b"{}", &|_| false),
        Withheld::Nothing
    );
    assert_eq!(
        contract.withhold_response(0, 200, Some("application/json"), b"{\"orders\": [", &|_| false),
        Withheld::Unreadable
    );
    assert_eq!(contract.withhold_response(0, 200, Some("text/plain"), b"x", &|_| false), Withheld::Nothing);

    // A malformed `x-zt-scopes` is a load error naming it.
    for bad in [json!([]), json!("s:admin"), json!([""]), json!(["two words"]), json!([1])] {
        let document = json!({
            "openapi": "3.1.0", "info": { "title": "t", "version": "1" },
            "paths": { "/o": { "get": { "responses": { "200": { "description": "ok", "content": {
                "application/json": { "schema": { "type": "object", "properties": {
                    "note": { "type": "string", "x-zt-scopes": bad.clone() } } } } } } } } } }
        });
        let Err(error) = Contract::from_value(document, None, ContractOptions::default()) else {
            panic!("{bad} refused")
        };
        assert!(error.to_string().contains("x-zt-scopes"), "{bad}: {error}");
    }
}
