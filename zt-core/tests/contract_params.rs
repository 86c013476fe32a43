//! Parameters: styles, locations, decoding, duplicates, unknown names, method override.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract_common;

use contract_common::*;
use zt_core::contract::{ContractOptions, ViolationKind};

const PARAMS: &str = r#"
openapi: 3.0.3
info: { title: p, version: "1" }
paths:
  /items:
    get:
      parameters:
        - { name: ids, in: query, style: form, explode: false, schema: { type: array, maxItems: 3, items: { type: integer } } }
        - { name: tags, in: query, schema: { type: array, items: { type: string, enum: [a, b, c] } } }
        - { name: colors, in: query, style: pipeDelimited, explode: false, schema: { type: array, items: { type: string, maxLength: 5 } } }
        - { name: words, in: query, style: spaceDelimited, explode: false, schema: { type: array, items: { type: string } } }
        - name: filter
          in: query
          style: deepObject
          explode: true
          schema:
            type: object
            properties:
              status: { type: string, enum: [open, closed] }
              min: { type: integer, minimum: 0 }
        - { name: flag, in: query, schema: { type: boolean } }
        - { name: ratio, in: query, schema: { type: number, maximum: 1 } }
        - { name: q, in: query, schema: { type: string, maxLength: 20 } }
        - { name: maybe, in: query, allowEmptyValue: true, schema: { type: string, minLength: 2 } }
        - name: point
          in: query
          style: form
          explode: false
          schema: { type: object, properties: { x: { type: integer }, y: { type: integer } } }
        - name: where
          in: query
          content:
            application/json:
              schema: { type: object, required: [field], properties: { field: { type: string } } }
        - { name: X-Rate, in: header, schema: { type: integer, maximum: 10 } }
        - { name: X-List, in: header, schema: { type: array, items: { type: integer } } }
        - { name: session, in: cookie, required: true, schema: { type: string, pattern: '^s[0-9]+$' } }
        - { name: prefs, in: cookie, explode: false, schema: { type: array, items: { type: string } } }
        - { name: Accept, in: header, required: true, schema: { type: string } }
      responses: { "200": { description: ok } }
  /by/{id}/label/{lbl}/matrix/{mx}:
    get:
      parameters:
        - { name: id, in: path, required: true, schema: { type: array, items: { type: integer } } }
        - { name: lbl, in: path, required: true, style: label, explode: true, schema: { type: array, items: { type: string } } }
        - { name: mx, in: path, required: true, style: matrix, schema: { type: integer, minimum: 1 } }
      responses: { "200": { description: ok } }
  /obj/{coords}/{labelled}:
    get:
      parameters:
        - { name: coords, in: path, required: true, explode: true, schema: { type: object, properties: { x: { type: integer }, y: { type: integer } } } }
        - { name: labelled, in: path, required: true, style: label, schema: { type: string, maxLength: 4 } }
      responses: { "200": { description: ok } }
  /spread:
    get:
      parameters:
        - name: page
          in: query
          schema: { type: object, properties: { offset: { type: integer }, size: { type: integer, maximum: 50 } } }
      responses: { "200": { description: ok } }
"#;

fn get(target: &str, headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let c = contract(PARAMS);
    let mut all = vec![("cookie", "session=s1")];
    all.extend_from_slice(headers);
    found(check(&c, "GET", target, &all, None))
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(p, k)| (p.to_string(), k.to_string())).collect()
}

#[test]
fn form_arrays_and_delimited_styles() {
    assert_eq!(get("/items?ids=1,2,3&tags=a&tags=b&colors=red|green&words=x%20y+z", &[]), pairs(&[]));
    assert_eq!(get("/items?ids=1,2,3,4", &[]), pairs(&[("/query/ids", "maxItems")]));
    assert_eq!(get("/items?ids=1,x", &[]), pairs(&[("/query/ids/1", "type")]));
    assert_eq!(get("/items?ids=1&ids=2", &[]), pairs(&[("/query/ids", "duplicate")]));
    assert_eq!(get("/items?tags=a&tags=z", &[]), pairs(&[("/query/tags/1", "enum")]));
    assert_eq!(get("/items?colors=red|purple1", &[]), pairs(&[("/query/colors/1", "maxLength")]));
    // Delimiters split after decoding: an encoded pipe still delimits.
    assert_eq!(get("/items?colors=red%7Cpurple1", &[]), pairs(&[("/query/colors/1", "maxLength")]));
}

#[test]
fn deep_object_and_objects() {
    assert_eq!(get("/items?filter[status]=open&filter[min]=3", &[]), pairs(&[]));
    assert_eq!(get("/items?filter%5Bstatus%5D=closed", &[]), pairs(&[]));
    assert_eq!(get("/items?filter[status]=pending", &[]), pairs(&[("/query/filter/status", "enum")]));
    assert_eq!(get("/items?filter[min]=-1", &[]), pairs(&[("/query/filter/min", "minimum")]));
    assert_eq!(get("/items?filter[evil]=1", &[]), pairs(&[("/query/filter/evil", "unevaluatedProperties")]));
    assert_eq!(get("/items?filter[min]=1&filter[min]=2", &[]), pairs(&[("/query/filter/min", "duplicate")]));
    assert_eq!(get("/items?filter[a][b]=1", &[]), pairs(&[("/query/filter", "style")]));
    assert_eq!(get("/items?point=x,1,y,2", &[]), pairs(&[]));
    assert_eq!(get("/items?point=x,1,y", &[]), pairs(&[("/query/point", "style")]));
    assert_eq!(get("/items?point=x,a", &[]), pairs(&[("/query/point/x", "type")]));
    assert_eq!(get("/items?where=%7B%22field%22%3A%22a%22%7D", &[]), pairs(&[]));
    assert_eq!(get("/items?where=%7B%7D", &[]), pairs(&[("/query/where/field", "required")]));
    assert_eq!(get("/items?where=%7B", &[]), pairs(&[("/query/where", "syntax")]));
}

#[test]
fn exploded_object_spreads_over_the_query() {
    let c = contract(PARAMS);
    accepted(check(&c, "GET", "/spread?offset=10&size=20", &[], None));
    accepted(check(&c, "GET", "/spread", &[], None));
    rejected(check(&c, "GET", "/spread?size=51", &[], None), &[("/query/size", "maximum")]);
    rejected(check(&c, "GET", "/spread?size=1&size=2", &[], None), &[("/query/size", "duplicate")]);
    rejected(check(&c, "GET", "/spread?page=1", &[], None), &[("/query/page", "unknown")]);
}

#[test]
fn scalars_decoding_and_empty_values() {
    assert_eq!(get("/items?flag=true&ratio=0.5&q=a+b%20c", &[]), pairs(&[]));
    assert_eq!(get("/items?flag=yes", &[]), pairs(&[("/query/flag", "type")]));
    assert_eq!(get("/items?ratio=2", &[]), pairs(&[("/query/ratio", "maximum")]));
    assert_eq!(get("/items?ratio=NaN", &[]), pairs(&[("/query/ratio", "type")]));
    assert_eq!(get(&format!("/items?q={}", "%41".repeat(21)), &[]), pairs(&[("/query/q", "maxLength")]));
    // Decoded exactly once: %2541 is the three characters "%41".
    assert_eq!(get("/items?q=%2541", &[]), pairs(&[]));
    assert_eq!(get("/items?q=%FF", &[]), pairs(&[("/query/q", "encoding")]));
    assert_eq!(get("/items?%FF=1", &[]), pairs(&[("/query", "encoding")]));
    assert_eq!(get("/items?q=", &[]), pairs(&[("/query/q", "empty")]));
    assert_eq!(get("/items?maybe=", &[]), pairs(&[]));
    assert_eq!(get("/items?maybe=x", &[]), pairs(&[("/query/maybe", "minLength")]));
    assert_eq!(get("/items?&&q=a&", &[]), pairs(&[]));
}

#[test]
fn unknown_and_polluted_query() {
    assert_eq!(get("/items?q=a&debug=1", &[]), pairs(&[("/query/debug", "unknown")]));
    assert_eq!(get("/items?q=a&q=b", &[]), pairs(&[("/query/q", "duplicate")]));
    let long = "n".repeat(100);
    assert_eq!(get(&format!("/items?{long}=1"), &[]), pairs(&[("/query/*", "unknown")]));
    let lax = contract_with(PARAMS, ContractOptions { strict: false, ..ContractOptions::default() });
    accepted(check(&lax, "GET", "/items?debug=1", &[("cookie", "session=s1")], None));
    rejected(
        check(&lax, "GET", "/items?q=a&q=b", &[("cookie", "session=s1")], None),
        &[("/query/q", "duplicate")],
    );
    let many = vec!["q=a"; 1001].join("&");
    let r = get(&format!("/items?{many}"), &[]);
    assert_eq!(r[0], ("/query".to_string(), "limit".to_string()));
}

#[test]
fn headers_and_cookies() {
    assert_eq!(get("/items", &[("x-rate", "5"), ("x-list", "1, 2"), ("x-list", "3")]), pairs(&[]));
    assert_eq!(get("/items", &[("x-rate", "11")]), pairs(&[("/header/x-rate", "maximum")]));
    assert_eq!(get("/items", &[("x-rate", "1"), ("x-rate", "2")]), pairs(&[("/header/x-rate", "duplicate")]));
    assert_eq!(get("/items", &[("x-list", "1,b")]), pairs(&[("/header/x-list/1", "type")]));
    assert_eq!(get("/items", &[("x-rate", "\u{e9}")]), pairs(&[("/header/x-rate", "type")]));
    let c = contract(PARAMS);
    rejected(check(&c, "GET", "/items", &[], None), &[("/cookie/session", "missing")]);
    rejected(
        check(&c, "GET", "/items", &[("cookie", "session=x1")], None),
        &[("/cookie/session", "pattern")],
    );
    rejected(
        check(&c, "GET", "/items", &[("cookie", "session=s1; session=s2")], None),
        &[("/cookie/session", "duplicate")],
    );
    accepted(check(&c, "GET", "/items", &[("cookie", "a=b"), ("cookie", "session=\"s9\"; prefs=x,y")], None));
    // Accept/Content-Type/Authorization header parameters are ignored, as OpenAPI says.
    accepted(check(&c, "GET", "/items", &[("cookie", "session=s1")], None));
}

#[test]
fn path_styles() {
    let c = contract(PARAMS);
    accepted(check(&c, "GET", "/by/1,2,3/label/.a.b/matrix/;mx=5", &[], None));
    rejected(check(&c, "GET", "/by/1,x/label/.a/matrix/;mx=5", &[], None), &[("/path/id/1", "type")]);
    rejected(check(&c, "GET", "/by/1/label/a/matrix/;mx=5", &[], None), &[("/path/lbl", "style")]);
    rejected(check(&c, "GET", "/by/1/label/.a/matrix/;other=5", &[], None), &[("/path/mx", "style")]);
    rejected(check(&c, "GET", "/by/1/label/.a/matrix/;mx=0", &[], None), &[("/path/mx", "minimum")]);
    rejected(check(&c, "GET", "/by/1/label/.a/matrix/5", &[], None), &[("/path/mx", "style")]);
    accepted(check(&c, "GET", "/obj/x=1,y=2/.abcd", &[], None));
    rejected(check(&c, "GET", "/obj/x=1,y=b/.abcd", &[], None), &[("/path/coords/y", "type")]);
    rejected(
        check(&c, "GET", "/obj/x=1,z=2/.abcd", &[], None),
        &[("/path/coords/z", "unevaluatedProperties")],
    );
    rejected(check(&c, "GET", "/obj/x=1/.abcde", &[], None), &[("/path/labelled", "maxLength")]);
    rejected(check(&c, "GET", "/obj/x=1/.a%FF", &[], None), &[("/path/labelled", "encoding")]);
}

#[test]
fn method_override_is_never_honoured() {
    let c = contract(PARAMS);
    for (target, header) in [
        ("/items?_method=DELETE", None),
        ("/items?%5Fmethod=PUT", None),
        ("/items", Some("x-http-method-override")),
        ("/items", Some("x-method-override")),
        ("/items", Some("x-http-method")),
    ] {
        let mut headers = vec![("cookie", "session=s1")];
        if let Some(h) = header {
            headers.push((h, "DELETE"));
        }
        let v = check(&c, "GET", target, &headers, None).unwrap_err();
        assert_eq!(v.kind, ViolationKind::MethodOverride, "{target} {header:?}");
        assert_eq!(v.items[0].keyword, "methodOverride");
        assert_eq!(
            v.items[0].pointer,
            header.map_or("/query/_method".to_string(), |h| format!("/header/{h}"))
        );
    }
}

#[test]
fn violations_are_bounded() {
    let c = contract_with(PARAMS, ContractOptions { max_violations: 2, ..ContractOptions::default() });
    let v = check(&c, "GET", "/items?a=1&b=2&c=3&d=4", &[("cookie", "session=s1")], None).unwrap_err();
    assert_eq!(v.items.len(), 2);
    assert!(v.truncated);
    assert_eq!(v.kind, ViolationKind::Parameters);
    let zero = contract_with(PARAMS, ContractOptions { max_violations: 0, ..ContractOptions::default() });
    let v = check(&zero, "GET", "/items?a=1&b=2", &[("cookie", "session=s1")], None).unwrap_err();
    assert_eq!(v.items.len(), 1);
    assert!(v.truncated);
}
