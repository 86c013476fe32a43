//! The demo service's contract: accept/reject outcomes for the orders API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract_common;

use contract_common::*;
use zt_core::contract::{Lookup, ViolationKind};
use zt_core::scopes;

const ORDERS: &str = r#"
openapi: 3.1.0
info: { title: orders, version: "1" }
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://issuer.example/token
          scopes: { "orders:read": read, "orders:write": write, "orders:admin": admin }
  schemas:
    NewOrder:
      type: object
      required: [item, quantity]
      properties:
        item: { type: string, minLength: 1, maxLength: 64 }
        quantity: { type: integer, minimum: 1, maximum: 1000 }
        note: { type: string, maxLength: 256 }
    Order:
      allOf:
        - $ref: '#/components/schemas/NewOrder'
        - type: object
          required: [id]
          properties:
            id: { type: string, readOnly: true }
paths:
  /health:
    get:
      security: []
      responses: { "200": { description: ok } }
  /orders:
    get:
      security: [{ oauth: ["orders:read"] }]
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100 } }
        - { name: cursor, in: query, schema: { type: string, maxLength: 64 } }
      responses:
        "200":
          description: orders
          content:
            application/json:
              schema: { type: array, items: { $ref: '#/components/schemas/Order' } }
    post:
      security: [{ oauth: ["orders:write"] }]
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: '#/components/schemas/NewOrder' }
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: { $ref: '#/components/schemas/Order' }
  /orders/{id}:
    parameters:
      - name: id
        in: path
        required: true
        schema: { type: string, pattern: '^[0-9]{1,12}$' }
    get:
      security: [{ oauth: ["orders:read"] }]
      responses: { "200": { description: the order } }
    delete:
      security: [{ oauth: ["orders:admin"] }]
      responses: { "204": { description: deleted } }
"#;

#[test]
fn operations_and_requirements() {
    let c = contract(ORDERS);
    let ops: Vec<(String, String)> =
        c.operations().iter().map(|o| (o.method.clone(), o.template.clone())).collect();
    assert_eq!(ops.len(), 5);
    let find = |m: &str, t: &str| c.operations().iter().find(|o| o.method == m && o.template == t).unwrap();
    assert_eq!(find("GET", "/health").requirement, Some(scopes::public()));
    assert_eq!(find("GET", "/orders").requirement, Some(scopes::all(["orders:read"])));
    assert_eq!(find("POST", "/orders").requirement, Some(scopes::all(["orders:write"])));
    assert_eq!(find("DELETE", "/orders/{id}").requirement, Some(scopes::all(["orders:admin"])));
    let post = find("POST", "/orders");
    assert!(post.has_body && post.body_required && post.strict);
    assert_eq!(post.body_limit, 1024 * 1024);
    assert!(!find("GET", "/orders").has_body);
}

#[test]
fn routing() {
    let c = contract(ORDERS);
    assert!(
        matches!(c.lookup("GET", "/orders/42"), Lookup::Found { ref path_params, .. } if path_params == &[("id".to_string(), "42".to_string())])
    );
    assert_eq!(c.lookup("GET", "/nope"), Lookup::NotFound);
    assert_eq!(c.lookup("GET", "/orders/42/"), Lookup::NotFound);
    assert_eq!(
        c.lookup("PUT", "/orders/42"),
        Lookup::MethodNotAllowed { allowed: vec!["DELETE".into(), "GET".into()] }
    );
    assert_eq!(
        c.lookup("PATCH", "/orders"),
        Lookup::MethodNotAllowed { allowed: vec!["GET".into(), "POST".into()] }
    );
    assert_eq!(
        c.lookup("get", "/orders"),
        Lookup::MethodNotAllowed { allowed: vec!["GET".into(), "POST".into()] }
    );
}

#[test]
fn create_order() {
    let c = contract(ORDERS);
    accepted(json(&c, "POST", "/orders", r#"{"item":"book","quantity":2}"#));
    accepted(json(&c, "POST", "/orders", r#"{"item":"book","quantity":1000,"note":"gift"}"#));
    rejected(json(&c, "POST", "/orders", r#"{"item":"book"}"#), &[("/body/quantity", "required")]);
    rejected(json(&c, "POST", "/orders", r#"{"item":"","quantity":2}"#), &[("/body/item", "minLength")]);
    rejected(
        json(&c, "POST", "/orders", &format!(r#"{{"item":"{}","quantity":2}}"#, "x".repeat(65))),
        &[("/body/item", "maxLength")],
    );
    rejected(
        json(&c, "POST", "/orders", r#"{"item":"book","quantity":0}"#),
        &[("/body/quantity", "minimum")],
    );
    rejected(
        json(&c, "POST", "/orders", r#"{"item":"book","quantity":1001}"#),
        &[("/body/quantity", "maximum")],
    );
    rejected(json(&c, "POST", "/orders", r#"{"item":"book","quantity":"2"}"#), &[("/body/quantity", "type")]);
    rejected(json(&c, "POST", "/orders", r#"{"item":"book","quantity":2.5}"#), &[("/body/quantity", "type")]);
    rejected(
        json(
            &c,
            "POST",
            "/orders",
            &format!(r#"{{"item":"book","quantity":2,"note":"{}"}}"#, "n".repeat(257)),
        ),
        &[("/body/note", "maxLength")],
    );
    // Closed object: mass assignment of an undeclared field.
    rejected(
        json(&c, "POST", "/orders", r#"{"item":"book","quantity":2,"price":0}"#),
        &[("/body/price", "unevaluatedProperties")],
    );
    rejected(
        json(&c, "POST", "/orders", r#"{"item":"book","quantity":2,"item":"car"}"#),
        &[("/body/item", "duplicate")],
    );
    rejected(json(&c, "POST", "/orders", r#"{"item":"book","#), &[("/body", "syntax")]);
    rejected(json(&c, "POST", "/orders", "[]"), &[("/body", "type")]);
    let missing = check(&c, "POST", "/orders", &[], None).unwrap_err();
    assert_eq!(missing.kind, ViolationKind::Body);
    rejected(Err(missing), &[("/body", "required")]);
    let wrong_type =
        check(&c, "POST", "/orders", &[("content-type", "text/plain")], Some("item=book")).unwrap_err();
    assert_eq!(wrong_type.kind, ViolationKind::UnsupportedMediaType);
    assert_eq!(wrong_type.kind.status(), 415);
    accepted(check(
        &c,
        "POST",
        "/orders",
        &[("content-type", "application/json; charset=UTF-8")],
        Some(r#"{"item":"a","quantity":1}"#),
    ));
}

#[test]
fn list_orders() {
    let c = contract(ORDERS);
    accepted(check(&c, "GET", "/orders", &[], None));
    accepted(check(&c, "GET", "/orders?limit=10&cursor=abc", &[], None));
    rejected(check(&c, "GET", "/orders?limit=0", &[], None), &[("/query/limit", "minimum")]);
    rejected(check(&c, "GET", "/orders?limit=101", &[], None), &[("/query/limit", "maximum")]);
    rejected(check(&c, "GET", "/orders?limit=ten", &[], None), &[("/query/limit", "type")]);
    rejected(check(&c, "GET", "/orders?limit=1&limit=2", &[], None), &[("/query/limit", "duplicate")]);
    rejected(
        check(&c, "GET", &format!("/orders?cursor={}", "c".repeat(65)), &[], None),
        &[("/query/cursor", "maxLength")],
    );
    rejected(check(&c, "GET", "/orders?admin=true", &[], None), &[("/query/admin", "unknown")]);
    rejected(check(&c, "GET", "/orders", &[], Some("{}")), &[("/body", "unexpected")]);
    let r = check(&c, "GET", "/orders?limit=5&_method=DELETE", &[], None).unwrap_err();
    assert_eq!(r.kind, ViolationKind::MethodOverride);
}

#[test]
fn order_by_id() {
    let c = contract(ORDERS);
    accepted(check(&c, "GET", "/orders/123456789012", &[], None));
    accepted(check(&c, "DELETE", "/orders/7", &[], None));
    rejected(check(&c, "GET", "/orders/1234567890123", &[], None), &[("/path/id", "pattern")]);
    rejected(check(&c, "GET", "/orders/abc", &[], None), &[("/path/id", "pattern")]);
    accepted(check(&c, "GET", "/orders/%31%32", &[], None));
    let r = check(&c, "DELETE", "/orders/7", &[("x-http-method-override", "GET")], None).unwrap_err();
    assert_eq!(r.kind, ViolationKind::MethodOverride);
    assert_eq!(r.items[0].pointer, "/header/x-http-method-override");
}

#[test]
fn responses() {
    let c = contract(ORDERS);
    let Lookup::Found { op, .. } = c.lookup("POST", "/orders") else { panic!() };
    let ok = c.validate_response(op, 201, Some("application/json"), br#"{"id":"1","item":"a","quantity":1}"#);
    assert!(ok.is_clean(), "{ok:?}");
    let leak = c.validate_response(
        op,
        201,
        Some("application/json"),
        br#"{"id":"1","item":"a","quantity":1,"owner_email":"x@y"}"#,
    );
    assert!(leak.violations.is_empty());
    assert_eq!(leak.undeclared_fields, ["/body/owner_email"]);
    let bad = c.validate_response(op, 201, Some("application/json"), br#"{"item":"a","quantity":1}"#);
    assert_eq!(bad.violations.len(), 1);
    assert_eq!(
        (bad.violations[0].pointer.as_str(), bad.violations[0].keyword.as_str()),
        ("/body/id", "required")
    );
    let undeclared = c.validate_response(op, 500, Some("application/json"), b"{}");
    assert_eq!(undeclared.violations[0].keyword, "undeclared");
    let Lookup::Found { op, .. } = c.lookup("GET", "/orders") else { panic!() };
    let list = c.validate_response(
        op,
        200,
        Some("application/json"),
        br#"[{"id":"1","item":"a","quantity":1,"secret":1}]"#,
    );
    assert_eq!(list.undeclared_fields, ["/body/0/secret"]);
}
