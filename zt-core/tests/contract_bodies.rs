//! Request bodies: media types, charsets, form-urlencoded, presence rules, and the promise
//! that violations never carry the values they judge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract_common;

use contract_common::*;
use zt_core::contract::{Contract, ContractRequest, Lookup, ViolationKind};
use zt_core::request::HeaderList;

const BODIES: &str = r#"
openapi: 3.1.0
info: { title: b, version: "1" }
components:
  schemas:
    Msg:
      type: object
      required: [to, count]
      properties:
        to: { type: string, maxLength: 10 }
        count: { type: integer, maximum: 5 }
        urgent: { type: boolean }
        ratio: { type: number }
        labels: { type: array, items: { type: string } }
        codes: { type: array, items: { type: integer } }
        meta: { type: object, properties: { k: { type: string } } }
        token: { type: string, pattern: '^[a-z]+$' }
paths:
  /json:
    post:
      requestBody:
        content:
          application/json: { schema: { $ref: '#/components/schemas/Msg' } }
          application/merge-patch+json: { schema: { type: object, properties: { to: { type: string } } } }
      responses: { "200": { description: ok } }
  /form:
    post:
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema: { $ref: '#/components/schemas/Msg' }
            encoding:
              codes: { style: form, explode: false }
      responses: { "200": { description: ok } }
  /range:
    put:
      requestBody:
        content:
          application/*: { schema: { type: object, required: [a], properties: { a: { type: integer } } } }
          application/octet-stream: {}
      responses: { "200": { description: ok } }
  /any:
    put:
      requestBody:
        content:
          "*/*": {}
      responses: { "200": { description: ok } }
  /nothing:
    post:
      responses: { "200": { description: ok } }
"#;

fn post(c: &Contract, path: &str, content_type: &str, body: &str) -> Vec<(String, String)> {
    found(check(c, "POST", path, &[("content-type", content_type)], Some(body)))
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(p, k)| (p.to_string(), k.to_string())).collect()
}

#[test]
fn media_types_and_charsets() {
    let c = contract(BODIES);
    let ok = r#"{"to":"a","count":1}"#;
    for ct in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=\"UTF-8\"",
    ] {
        assert_eq!(post(&c, "/json", ct, ok), pairs(&[]), "{ct}");
    }
    assert_eq!(post(&c, "/json", "application/merge-patch+json", r#"{"to":"b"}"#), pairs(&[]));
    assert_eq!(
        post(&c, "/json", "application/merge-patch+json", r#"{"to":1}"#),
        pairs(&[("/body/to", "type")])
    );
    for (ct, keyword) in [
        ("text/plain", "mediaType"),
        ("application/xml", "mediaType"),
        ("application/json; charset=latin1", "charset"),
        ("json", "mediaType"),
        ("", "mediaType"),
    ] {
        let v = check(&c, "POST", "/json", &[("content-type", ct)], Some(ok)).unwrap_err();
        assert_eq!(v.kind, ViolationKind::UnsupportedMediaType, "{ct}");
        assert_eq!(v.items[0].pointer, "/header/content-type");
        assert_eq!(v.items[0].keyword, keyword, "{ct}");
    }
    let v = check(&c, "POST", "/json", &[], Some(ok)).unwrap_err();
    assert_eq!((v.kind, v.items[0].keyword.as_str()), (ViolationKind::UnsupportedMediaType, "missing"));
    let v = check(
        &c,
        "POST",
        "/json",
        &[("content-type", "application/json"), ("content-type", "application/json")],
        Some(ok),
    )
    .unwrap_err();
    assert_eq!((v.kind, v.items[0].keyword.as_str()), (ViolationKind::Parameters, "duplicate"));
}

#[test]
fn check_media_type_before_reading_the_body() {
    let c = contract(BODIES);
    let Lookup::Found { op, .. } = c.lookup("POST", "/json") else { panic!() };
    assert!(c.check_media_type(op, &HeaderList::default().with("content-type", "application/json")).is_ok());
    let v = c.check_media_type(op, &HeaderList::default().with("content-type", "text/html")).unwrap_err();
    assert_eq!(v.kind.status(), 415);
    let Lookup::Found { op, .. } = c.lookup("POST", "/nothing") else { panic!() };
    assert!(c.check_media_type(op, &HeaderList::default()).is_ok());
}

#[test]
fn ranges_and_opaque_types() {
    let c = contract(BODIES);
    let put = |ct: &str, body: &str| found(check(&c, "PUT", "/range", &[("content-type", ct)], Some(body)));
    // The exact declaration beats the range: octet-stream is not inspected.
    assert_eq!(put("application/octet-stream", "\u{0}\u{1}binary"), pairs(&[]));
    // JSON under `application/*`: parsed and validated against the range's schema.
    assert_eq!(put("application/json", r#"{"a":1}"#), pairs(&[]));
    assert_eq!(put("application/json", r#"{"a":"x"}"#), pairs(&[("/body/a", "type")]));
    assert_eq!(put("application/vnd.api+json", r#"{}"#), pairs(&[("/body/a", "required")]));
    assert_eq!(put("application/x-www-form-urlencoded", "a=2"), pairs(&[]));
    assert_eq!(put("application/x-www-form-urlencoded", "a=z"), pairs(&[("/body/a", "type")]));
    let v = check(&c, "PUT", "/range", &[("content-type", "text/plain")], Some("hi")).unwrap_err();
    assert_eq!(v.kind, ViolationKind::UnsupportedMediaType);
    let any = |ct: &str| check(&c, "PUT", "/any", &[("content-type", ct)], Some("whatever"));
    accepted(any("text/plain"));
    accepted(any("image/png"));
    // JSON under */* without a schema is still parsed once (malformed JSON is refused).
    rejected(any("application/json"), &[("/body", "syntax")]);
}

#[test]
fn form_bodies() {
    let c = contract(BODIES);
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        post(
            &c,
            "/form",
            form,
            "to=%2B1+555&count=5&urgent=true&ratio=0.5&labels=a&labels=b&codes=1,2&meta=%7B%22k%22%3A%22v%22%7D"
        ),
        pairs(&[])
    );
    assert_eq!(post(&c, "/form", form, "to=a&count=6"), pairs(&[("/body/count", "maximum")]));
    assert_eq!(post(&c, "/form", form, "to=a&count=x"), pairs(&[("/body/count", "type")]));
    assert_eq!(post(&c, "/form", form, "to=a&count=1&urgent=maybe"), pairs(&[("/body/urgent", "type")]));
    assert_eq!(post(&c, "/form", form, "to=a"), pairs(&[("/body/count", "required")]));
    assert_eq!(
        post(&c, "/form", form, "to=a&count=1&admin=1"),
        pairs(&[("/body/admin", "unevaluatedProperties")])
    );
    assert_eq!(post(&c, "/form", form, "to=a&count=1&count=2"), pairs(&[("/body/count", "duplicate")]));
    assert_eq!(post(&c, "/form", form, "to=a&count=1&codes=1,x"), pairs(&[("/body/codes/1", "type")]));
    assert_eq!(
        post(&c, "/form", form, "to=a&count=1&meta=%7B%22k%22%3A1%7D"),
        pairs(&[("/body/meta/k", "type")])
    );
    assert_eq!(post(&c, "/form", form, "to=a&count=1&meta=nope"), pairs(&[("/body/meta", "syntax")]));
    assert_eq!(post(&c, "/form", form, "to=%FF&count=1"), pairs(&[("/body/to", "encoding")]));
    assert_eq!(
        post(&c, "/form", "application/x-www-form-urlencoded; charset=iso-8859-1", "to=a&count=1").len(),
        1
    );
    // An empty form is the form without fields (JSON has no empty representation).
    rejected(
        check(&c, "POST", "/form", &[("content-type", form)], Some("")),
        &[("/body/to", "required"), ("/body/count", "required")],
    );
    rejected(check(&c, "POST", "/form", &[], None), &[("/body", "required")]);
}

#[test]
fn body_presence_rules() {
    let c = contract(BODIES);
    // Optional body: absent or empty is fine.
    accepted(check(&c, "POST", "/json", &[], None));
    accepted(check(&c, "POST", "/json", &[("content-type", "application/json")], Some("")));
    // No requestBody declared: a body is a violation, an empty one is not.
    let v = check(&c, "POST", "/nothing", &[("content-type", "application/json")], Some("{}")).unwrap_err();
    assert_eq!(v.kind, ViolationKind::Body);
    assert_eq!((v.items[0].pointer.as_str(), v.items[0].keyword.as_str()), ("/body", "unexpected"));
    accepted(check(&c, "POST", "/nothing", &[], Some("")));
}

#[test]
fn json_smuggling_is_refused() {
    let c = contract(BODIES);
    assert_eq!(
        post(&c, "/json", "application/json", r#"{"to":"a","count":1,"count":9}"#),
        pairs(&[("/body/count", "duplicate")])
    );
    assert_eq!(
        post(&c, "/json", "application/json", r#"{"to":"a","count":1,"meta":{"k":"a","k":"b"}}"#),
        pairs(&[("/body/meta/k", "duplicate")])
    );
    assert_eq!(
        post(&c, "/json", "application/json", r#"{"to":"a","count":1} trailing"#),
        pairs(&[("/body", "syntax")])
    );
    assert_eq!(
        post(&c, "/json", "application/json", "{\"to\":\"\\ud800\",\"count\":1}"),
        pairs(&[("/body", "syntax")])
    );
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert_eq!(
        post(&c, "/json", "application/json", &deep),
        pairs(&[(
            "/body/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0",
            "depth"
        )])
    );
    let bytes: &[u8] = &[b'{', b'"', 0xff, b'"', b':', b'1', b'}'];
    let headers = HeaderList::default().with("content-type", "application/json");
    let Lookup::Found { op, path_params } = c.lookup("POST", "/json") else { panic!() };
    let request =
        ContractRequest { path_params: &path_params, query: None, headers: &headers, body: Some(bytes) };
    let v = c.validate_request(op, &request).unwrap_err();
    assert_eq!(v.items[0].keyword, "syntax");
}

#[test]
fn violations_never_carry_values() {
    let secret = "sk_live_51HxSECRETvalue0123456789";
    let c = contract(BODIES);
    let mut outputs = Vec::new();
    let mut record = |r: Result<(), zt_core::contract::Violations>| {
        let v = r.unwrap_err();
        outputs.push(format!("{v:?} {v} {}", serde_json::to_string(&v).unwrap()));
    };
    record(json(&c, "POST", "/json", &format!(r#"{{"to":"{secret}","count":1}}"#)));
    record(json(&c, "POST", "/json", &format!(r#"{{"to":"a","count":1,"token":"{secret}"}}"#)));
    record(json(&c, "POST", "/json", &format!(r#"{{"to":"a","count":"{secret}"}}"#)));
    record(json(
        &c,
        "POST",
        "/json",
        &format!(r#"{{"to":"a","count":1,"meta":{{"k":"{secret}","k":"x"}}}}"#),
    ));
    record(json(&c, "POST", "/json", &format!(r#"{{"to":"a","count":1,"x":"{secret}"}}"#)));
    record(check(
        &c,
        "POST",
        "/form",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&format!("to=a&count={secret}")),
    ));
    record(check(
        &c,
        "POST",
        "/form",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&format!("to=a&count=1&meta={secret}")),
    ));
    let p = contract(
        r#"
openapi: 3.0.3
info: { title: s, version: "1" }
paths:
  /s/{id}:
    get:
      parameters:
        - { name: id, in: path, required: true, schema: { type: string, maxLength: 3 } }
        - { name: q, in: query, schema: { type: string, enum: [a] } }
        - { name: x-key, in: header, schema: { type: string, pattern: '^[0-9]+$' } }
        - { name: sid, in: cookie, schema: { type: integer } }
      responses: { "200": { description: ok } }
"#,
    );
    record(check(&p, "GET", &format!("/s/{secret}"), &[], None));
    record(check(&p, "GET", &format!("/s/a?q={secret}"), &[], None));
    record(check(&p, "GET", "/s/a", &[("x-key", secret)], None));
    record(check(&p, "GET", "/s/a", &[("cookie", &format!("sid={secret}"))], None));
    for output in &outputs {
        assert!(!output.contains(secret) && !output.contains("SECRET"), "value leaked: {output}");
    }
    assert_eq!(outputs.len(), 11);
}
