//! Response validation: status selection, media types, schema violations and undeclared
//! (exposed) fields.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract_common;

use contract_common::*;
use zt_core::contract::{Contract, ContractOptions, Lookup, ResponseReport};

const RESPONSES: &str = r#"
openapi: 3.0.3
info: { title: r, version: "1" }
components:
  schemas:
    User:
      type: object
      required: [id]
      properties:
        id: { type: integer }
        name: { type: string }
        profile:
          type: object
          properties: { bio: { type: string } }
        settings: { type: object }
        labels: { type: object, additionalProperties: { type: string } }
        extra: { type: object, additionalProperties: true, properties: { a: { type: string } } }
        friends: { type: array, items: { $ref: '#/components/schemas/User' } }
      oneOf:
        - properties: { kind: { type: string, enum: [person] } }
        - properties: { kind: { type: string, enum: [robot] }, model: { type: string } }
paths:
  /users/{id}:
    get:
      parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]
      responses:
        "200":
          description: the user
          content:
            application/json: { schema: { $ref: '#/components/schemas/User' } }
            text/csv: { schema: { type: string } }
        "204": { description: nothing }
        4XX:
          description: client error
          content:
            application/problem+json: { schema: { type: object, required: [title], properties: { title: { type: string } } } }
        default:
          description: anything else
          content:
            application/json: { schema: { type: object, required: [error], properties: { error: { type: string } } } }
  /plain:
    get: {}
"#;

fn respond(c: &Contract, status: u16, content_type: Option<&str>, body: &str) -> ResponseReport {
    let Lookup::Found { op, .. } = c.lookup("GET", "/users/1") else { panic!() };
    c.validate_response(op, status, content_type, body.as_bytes())
}

fn violations(r: &ResponseReport) -> Vec<(&str, &str)> {
    r.violations.iter().map(|v| (v.pointer.as_str(), v.keyword.as_str())).collect()
}

#[test]
fn status_selection() {
    let c = contract(RESPONSES);
    assert!(respond(&c, 200, Some("application/json"), r#"{"id":1,"kind":"person"}"#).is_clean());
    // 404 falls to 4XX, 500 to default.
    assert!(respond(&c, 404, Some("application/problem+json"), r#"{"title":"nope"}"#).is_clean());
    assert_eq!(
        violations(&respond(&c, 404, Some("application/problem+json"), "{}")),
        [("/body/title", "required")]
    );
    assert!(respond(&c, 500, Some("application/json"), r#"{"error":"x"}"#).is_clean());
    assert_eq!(violations(&respond(&c, 503, Some("application/json"), "{}")), [("/body/error", "required")]);
    // 204 declares no content.
    assert!(respond(&c, 204, None, "").is_clean());
    assert_eq!(violations(&respond(&c, 204, Some("application/json"), "{}")), [("/body", "unexpected")]);
    let Lookup::Found { op, .. } = c.lookup("GET", "/plain") else { panic!() };
    assert!(
        c.validate_response(op, 200, Some("application/json"), b"{\"any\":1}").is_clean(),
        "no responses: not judged"
    );
}

#[test]
fn media_types_and_syntax() {
    let c = contract(RESPONSES);
    assert_eq!(
        violations(&respond(&c, 200, Some("application/xml"), "<x/>")),
        [("/header/content-type", "mediaType")]
    );
    assert_eq!(violations(&respond(&c, 200, None, "{}")), [("/header/content-type", "missing")]);
    assert!(
        respond(&c, 200, Some("text/csv; charset=utf-8"), "id,name").is_clean(),
        "not JSON: not inspected"
    );
    assert_eq!(violations(&respond(&c, 200, Some("application/json"), "{")), [("/body", "syntax")]);
    assert_eq!(
        violations(&respond(&c, 200, Some("application/json"), r#"{"id":1,"id":2}"#)),
        [("/body/id", "duplicate")]
    );
    assert!(respond(&c, 200, Some("application/json"), "").is_clean(), "empty bodies are not judged");
}

#[test]
fn undeclared_fields_are_reported_wherever_the_schema_is_silent() {
    let c = contract(RESPONSES);
    let r = respond(
        &c,
        200,
        Some("application/json"),
        r#"{"id":1,"kind":"robot","model":"r2","password_hash":"x","profile":{"bio":"b","ssn":"1"},
            "settings":{"anything":true},"labels":{"k":"v"},"extra":{"a":"x","leak":1},
            "friends":[{"id":2,"kind":"person","token":"t"}]}"#,
    );
    assert!(r.violations.is_empty(), "{r:?}");
    assert_eq!(
        r.undeclared_fields,
        ["/body/extra/leak", "/body/friends/0/token", "/body/password_hash", "/body/profile/ssn"]
    );
    assert!(!r.truncated);
    let bounded =
        contract_with(RESPONSES, ContractOptions { max_violations: 1, ..ContractOptions::default() });
    let r = respond(&bounded, 200, Some("application/json"), r#"{"id":1,"kind":"person","a":1,"b":2}"#);
    assert_eq!(r.undeclared_fields.len(), 1);
    assert!(r.truncated);
}

#[test]
fn response_violations_never_carry_values() {
    let c = contract(RESPONSES);
    let secret = "4111111111111111-SECRET";
    let r = respond(
        &c,
        200,
        Some("application/json"),
        &format!(r#"{{"id":"{secret}","kind":"{secret}","note":"{secret}"}}"#),
    );
    let text = format!("{r:?}");
    assert!(!text.contains("SECRET"), "{text}");
    assert_eq!(r.undeclared_fields, ["/body/note"]);
    // Names are pointers, but long or non-printable ones are redacted.
    let long_key = format!("{secret}{}", "x".repeat(64));
    let r =
        respond(&c, 200, Some("application/json"), &format!(r#"{{"id":1,"kind":"person","{long_key}":1}}"#));
    assert_eq!(r.undeclared_fields, ["/body/*"]);
    let r = respond(&c, 200, Some("application/json"), &format!(r#"{{"id":"{secret}","kind":"person"}}"#));
    assert!(!r.violations.is_empty());
}
