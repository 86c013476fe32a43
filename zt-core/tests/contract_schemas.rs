//! Schema conversion and strict mode: 3.0 `nullable` and boolean exclusives, 3.1 type
//! arrays, compositions closed with `unevaluatedProperties`, readOnly/writeOnly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract_common;

use contract_common::*;
use zt_core::contract::{ContractOptions, Lookup};

fn body_doc(version: &str, schema: &str, components: &str) -> String {
    format!(
        r#"
openapi: {version}
info: {{ title: t, version: "1" }}
components:
  schemas:
{components}
paths:
  /things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {schema}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {schema}
"#
    )
}

#[test]
fn openapi_30_nullable_and_boolean_exclusives() {
    let c = contract(&body_doc(
        "3.0.3",
        "{ $ref: '#/components/schemas/T' }",
        r#"    T:
      type: object
      properties:
        name: { type: string, nullable: true }
        color: { type: string, enum: [red, blue], nullable: true }
        size: { type: integer, minimum: 0, exclusiveMinimum: true, maximum: 10, exclusiveMaximum: true }
        ratio: { type: number, minimum: 0, exclusiveMinimum: false }
        parent:
          nullable: true
          allOf: [{ $ref: '#/components/schemas/Ref' }]
        plain: { type: string, example: "x", xml: { name: p }, externalDocs: { url: "https://x" }, deprecated: true }
    Ref:
      type: object
      properties: { id: { type: integer } }
      discriminator: { propertyName: id }"#,
    ));
    accepted(json(
        &c,
        "POST",
        "/things",
        r#"{"name":null,"color":null,"size":5,"ratio":0,"parent":null,"plain":"x"}"#,
    ));
    accepted(json(&c, "POST", "/things", r#"{"name":"n","color":"red","parent":{"id":1}}"#));
    rejected(json(&c, "POST", "/things", r#"{"color":"green"}"#), &[("/body/color", "enum")]);
    rejected(json(&c, "POST", "/things", r#"{"size":0}"#), &[("/body/size", "exclusiveMinimum")]);
    rejected(json(&c, "POST", "/things", r#"{"size":10}"#), &[("/body/size", "exclusiveMaximum")]);
    rejected(json(&c, "POST", "/things", r#"{"ratio":-0.5}"#), &[("/body/ratio", "minimum")]);
    rejected(json(&c, "POST", "/things", r#"{"plain":null}"#), &[("/body/plain", "type")]);
    // The nullable composition is still closed.
    let r = found(json(&c, "POST", "/things", r#"{"parent":{"id":1,"x":2}}"#));
    assert!(r.iter().any(|(p, _)| p.starts_with("/body/parent")), "{r:?}");
}

#[test]
fn openapi_30_ref_siblings_are_ignored() {
    let c = contract(&body_doc(
        "3.0.0",
        "{ $ref: '#/components/schemas/T' }",
        r#"    T:
      type: object
      properties:
        n: { $ref: '#/components/schemas/N', maximum: 1 }
    N: { type: integer, maximum: 100 }"#,
    ));
    accepted(json(&c, "POST", "/things", r#"{"n":50}"#));
    rejected(json(&c, "POST", "/things", r#"{"n":500}"#), &[("/body/n", "maximum")]);
}

#[test]
fn openapi_31_type_arrays_const_and_ref_siblings() {
    let c = contract(&body_doc(
        "3.1.0",
        "{ $ref: '#/components/schemas/T' }",
        r#"    T:
      type: object
      properties:
        name: { type: [string, "null"], maxLength: 3 }
        kind: { const: fixed }
        n: { $ref: '#/components/schemas/N', maximum: 10 }
        tags: { type: array, prefixItems: [{ type: string }], items: { type: integer } }
    N: { type: integer, maximum: 100 }"#,
    ));
    accepted(json(&c, "POST", "/things", r#"{"name":null,"kind":"fixed","n":10,"tags":["a",1,2]}"#));
    rejected(json(&c, "POST", "/things", r#"{"name":"long"}"#), &[("/body/name", "maxLength")]);
    rejected(json(&c, "POST", "/things", r#"{"kind":"other"}"#), &[("/body/kind", "const")]);
    rejected(json(&c, "POST", "/things", r#"{"n":11}"#), &[("/body/n", "maximum")]);
    rejected(json(&c, "POST", "/things", r#"{"tags":[1]}"#), &[("/body/tags/0", "type")]);
    rejected(json(&c, "POST", "/things", r#"{"tags":["a","b"]}"#), &[("/body/tags/1", "type")]);
}

const COMPOSED: &str = r#"    Base:
      type: object
      required: [id]
      properties: { id: { type: integer } }
    Named:
      type: object
      properties: { name: { type: string } }
    Cat:
      allOf:
        - $ref: '#/components/schemas/Base'
        - type: object
          properties: { meow: { type: boolean } }
    Dog:
      allOf:
        - $ref: '#/components/schemas/Base'
        - type: object
          properties: { bark: { type: boolean } }
    Pet:
      oneOf:
        - $ref: '#/components/schemas/Cat'
        - $ref: '#/components/schemas/Dog'
    Either:
      anyOf:
        - $ref: '#/components/schemas/Named'
        - type: object
          properties: { label: { type: string } }
    Both:
      allOf:
        - $ref: '#/components/schemas/Base'
        - $ref: '#/components/schemas/Named'
      properties:
        extra: { type: string }
    Open:
      type: object
      additionalProperties: true
      properties: { a: { type: string } }
    Map:
      type: object
      additionalProperties: { type: integer }
    Free:
      type: object
    Holder:
      type: object
      properties:
        inner: { $ref: '#/components/schemas/Both' }
        list: { type: array, items: { $ref: '#/components/schemas/Named' } }
        free: { $ref: '#/components/schemas/Free' }
        map: { $ref: '#/components/schemas/Map' }"#;

#[test]
fn allof_closed_as_a_whole() {
    let c = contract(&body_doc("3.1.0", "{ $ref: '#/components/schemas/Both' }", COMPOSED));
    accepted(json(&c, "POST", "/things", r#"{"id":1,"name":"a","extra":"x"}"#));
    accepted(json(&c, "POST", "/things", r#"{"id":1}"#));
    rejected(
        json(&c, "POST", "/things", r#"{"id":1,"name":"a","evil":true}"#),
        &[("/body/evil", "unevaluatedProperties")],
    );
    rejected(json(&c, "POST", "/things", r#"{"name":"a"}"#), &[("/body/id", "required")]);
}

#[test]
fn oneof_of_allofs_accepts_each_branch_and_rejects_unknowns() {
    let c = contract(&body_doc("3.0.3", "{ $ref: '#/components/schemas/Pet' }", COMPOSED));
    accepted(json(&c, "POST", "/things", r#"{"id":1,"meow":true}"#));
    accepted(json(&c, "POST", "/things", r#"{"id":2,"bark":false}"#));
    // Both branches match `{"id":3}` alone: oneOf fails, as JSON Schema says.
    rejected(json(&c, "POST", "/things", r#"{"id":3}"#), &[("/body", "oneOf")]);
    // Neither closed alternative takes `admin`; the closing of the whole names it.
    rejected(
        json(&c, "POST", "/things", r#"{"id":1,"meow":true,"admin":true}"#),
        &[("/body", "oneOf"), ("/body/admin", "unevaluatedProperties")],
    );
    rejected(json(&c, "POST", "/things", r#"{"id":1,"meow":true,"bark":true}"#), &[("/body", "oneOf")]);
}

#[test]
fn anyof_closed_as_a_whole() {
    let c = contract(&body_doc("3.1.0", "{ $ref: '#/components/schemas/Either' }", COMPOSED));
    accepted(json(&c, "POST", "/things", r#"{"name":"a"}"#));
    accepted(json(&c, "POST", "/things", r#"{"label":"a"}"#));
    accepted(json(&c, "POST", "/things", r#"{"name":"a","label":"b"}"#));
    rejected(
        json(&c, "POST", "/things", r#"{"name":"a","zzz":1}"#),
        &[("/body/zzz", "unevaluatedProperties")],
    );
}

#[test]
fn nested_objects_are_closed_and_free_form_and_maps_stay_open() {
    let c = contract(&body_doc("3.1.0", "{ $ref: '#/components/schemas/Holder' }", COMPOSED));
    accepted(json(
        &c,
        "POST",
        "/things",
        r#"{"inner":{"id":1,"name":"n"},"list":[{"name":"a"}],"free":{"anything":[1]},"map":{"k":1,"j":2}}"#,
    ));
    rejected(
        json(&c, "POST", "/things", r#"{"inner":{"id":1,"x":1}}"#),
        &[("/body/inner/x", "unevaluatedProperties")],
    );
    rejected(
        json(&c, "POST", "/things", r#"{"list":[{"name":"a"},{"nom":"b"}]}"#),
        &[("/body/list/1/nom", "unevaluatedProperties")],
    );
    rejected(json(&c, "POST", "/things", r#"{"map":{"k":"one"}}"#), &[("/body/map/k", "type")]);
    rejected(json(&c, "POST", "/things", r#"{"top":1}"#), &[("/body/top", "unevaluatedProperties")]);
}

#[test]
fn explicit_additional_properties_true_stays_open() {
    let c = contract(&body_doc("3.1.0", "{ $ref: '#/components/schemas/Open' }", COMPOSED));
    accepted(json(&c, "POST", "/things", r#"{"a":"x","anything":1}"#));
    rejected(json(&c, "POST", "/things", r#"{"a":1}"#), &[("/body/a", "type")]);
}

#[test]
fn lax_mode_and_per_operation_override() {
    let doc = body_doc("3.1.0", "{ $ref: '#/components/schemas/Both' }", COMPOSED);
    let lax = contract_with(&doc, ContractOptions { strict: false, ..ContractOptions::default() });
    accepted(json(&lax, "POST", "/things", r#"{"id":1,"evil":true}"#));
    accepted(check(
        &lax,
        "POST",
        "/things?debug=1",
        &[("content-type", "application/json")],
        Some(r#"{"id":1}"#),
    ));
    assert!(!lax.operations()[0].strict);

    let opted_out = doc.replace("    post:\n", "    post:\n      x-zt-strict: false\n");
    let c = contract(&opted_out);
    assert!(!c.operations()[0].strict);
    accepted(json(&c, "POST", "/things", r#"{"id":1,"evil":true}"#));
    let opted_in = doc.replace("    post:\n", "    post:\n      x-zt-strict: true\n");
    let c = contract_with(&opted_in, ContractOptions { strict: false, ..ContractOptions::default() });
    rejected(
        json(&c, "POST", "/things", r#"{"id":1,"evil":true}"#),
        &[("/body/evil", "unevaluatedProperties")],
    );
}

const ACCOUNT: &str = r#"    Account:
      type: object
      required: [id, name, password]
      properties:
        id: { type: string, readOnly: true }
        role: { type: string, readOnly: true }
        name: { type: string }
        password: { type: string, writeOnly: true }
    Admin:
      allOf:
        - $ref: '#/components/schemas/Account'
        - type: object
          properties:
            level: { type: integer }"#;

#[test]
fn read_only_properties_are_rejected_in_requests_and_not_required() {
    for version in ["3.0.3", "3.1.0"] {
        let c = contract(&body_doc(version, "{ $ref: '#/components/schemas/Account' }", ACCOUNT));
        accepted(json(&c, "POST", "/things", r#"{"name":"n","password":"p"}"#));
        rejected(
            json(&c, "POST", "/things", r#"{"name":"n","password":"p","role":"admin"}"#),
            &[("/body/role", "readOnly")],
        );
        rejected(
            json(&c, "POST", "/things", r#"{"name":"n","password":"p","id":"1"}"#),
            &[("/body/id", "readOnly")],
        );
        rejected(json(&c, "POST", "/things", r#"{"name":"n"}"#), &[("/body/password", "required")]);

        let composed = contract(&body_doc(version, "{ $ref: '#/components/schemas/Admin' }", ACCOUNT));
        accepted(json(&composed, "POST", "/things", r#"{"name":"n","password":"p","level":3}"#));
        rejected(
            json(&composed, "POST", "/things", r#"{"name":"n","password":"p","level":3,"role":"root"}"#),
            &[("/body/role", "readOnly")],
        );
    }
}

#[test]
fn write_only_properties_are_flagged_in_responses_and_not_required() {
    let c = contract(&body_doc("3.1.0", "{ $ref: '#/components/schemas/Account' }", ACCOUNT));
    let Lookup::Found { op, .. } = c.lookup("POST", "/things") else { panic!() };
    let clean = c.validate_response(op, 200, Some("application/json"), br#"{"id":"1","name":"n"}"#);
    assert!(clean.is_clean(), "{clean:?}");
    let leak =
        c.validate_response(op, 200, Some("application/json"), br#"{"id":"1","name":"n","password":"p"}"#);
    assert_eq!(leak.violations.len(), 1);
    assert_eq!(
        (leak.violations[0].pointer.as_str(), leak.violations[0].keyword.as_str()),
        ("/body/password", "writeOnly")
    );
    let missing = c.validate_response(op, 200, Some("application/json"), br#"{"name":"n"}"#);
    assert_eq!(missing.violations[0].pointer, "/body/id");
}

#[test]
fn integer_formats_bound_values() {
    let c = contract(&body_doc(
        "3.0.3",
        "{ $ref: '#/components/schemas/T' }",
        r#"    T:
      type: object
      properties:
        small: { type: integer, format: int32 }
        big: { type: integer, format: int64 }
        when: { type: string, format: date-time }
        raw: { type: string, format: byte }"#,
    ));
    accepted(json(
        &c,
        "POST",
        "/things",
        r#"{"small":2147483647,"big":9223372036854775807,"when":"2024-01-01T00:00:00Z","raw":"aGk="}"#,
    ));
    rejected(json(&c, "POST", "/things", r#"{"small":2147483648}"#), &[("/body/small", "maximum")]);
    rejected(json(&c, "POST", "/things", r#"{"small":-2147483649}"#), &[("/body/small", "minimum")]);
    rejected(json(&c, "POST", "/things", r#"{"big":1e30}"#), &[("/body/big", "maximum")]);
    rejected(json(&c, "POST", "/things", r#"{"when":"yesterday"}"#), &[("/body/when", "format")]);
    rejected(json(&c, "POST", "/things", r#"{"raw":"@@@"}"#), &[("/body/raw", "format")]);
}

#[test]
fn recursive_schemas_stay_references() {
    let c = contract(&body_doc(
        "3.1.0",
        "{ $ref: '#/components/schemas/Node' }",
        r#"    Node:
      type: object
      required: [value]
      properties:
        value: { type: integer }
        children: { type: array, items: { $ref: '#/components/schemas/Node' } }
        next: { $ref: '#/components/schemas/Node' }"#,
    ));
    accepted(json(
        &c,
        "POST",
        "/things",
        r#"{"value":1,"children":[{"value":2,"children":[{"value":3}]}],"next":{"value":4}}"#,
    ));
    rejected(
        json(&c, "POST", "/things", r#"{"value":1,"children":[{"value":2,"children":[{"value":"x"}]}]}"#),
        &[("/body/children/0/children/0/value", "type")],
    );
    rejected(
        json(&c, "POST", "/things", r#"{"value":1,"next":{"value":2,"bad":1}}"#),
        &[("/body/next/bad", "unevaluatedProperties")],
    );
    // Bounded nesting: 70 levels of `next` exceed the parser's depth bound.
    let mut deep = String::new();
    for _ in 0..70 {
        deep.push_str(r#"{"value":1,"next":"#);
    }
    deep.push_str(r#"{"value":1}"#);
    deep.push_str(&"}".repeat(70));
    let r = found(json(&c, "POST", "/things", &deep));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "depth");
}
