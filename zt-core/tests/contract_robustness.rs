//! No input panics the contract engine: garbled documents at start-up, arbitrary paths,
//! queries, headers and bodies at request time. Deterministic pseudo-random inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract_common;

use contract_common::*;
use zt_core::contract::{Contract, ContractOptions, ContractRequest, Lookup};
use zt_core::request::HeaderList;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, alphabet: &[u8], max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| alphabet[self.below(alphabet.len())]).collect()
    }
}

const DOC: &str = r#"
openapi: 3.1.0
info: { title: fuzz, version: "1" }
components:
  schemas:
    Node:
      type: object
      properties:
        id: { type: integer, format: int32 }
        name: { type: [string, "null"], pattern: '^[a-z]+$' }
        kids: { type: array, items: { $ref: '#/components/schemas/Node' } }
        meta: { type: object, additionalProperties: { type: number } }
      oneOf:
        - required: [id]
        - required: [name]
paths:
  /n/{id}/{file}.{ext}:
    post:
      parameters:
        - { name: id, in: path, required: true, schema: { type: array, items: { type: integer } } }
        - { name: file, in: path, required: true, schema: { type: string } }
        - { name: ext, in: path, required: true, schema: { type: string, enum: [json, txt] } }
        - { name: f, in: query, style: deepObject, explode: true, schema: { type: object, properties: { a: { type: integer } } } }
        - { name: l, in: query, style: pipeDelimited, explode: false, schema: { type: array, items: { type: number } } }
        - { name: j, in: query, content: { application/json: { schema: { $ref: '#/components/schemas/Node' } } } }
        - { name: x-h, in: header, schema: { type: object, properties: { k: { type: boolean } } } }
        - { name: c, in: cookie, explode: false, schema: { type: array, items: { type: integer } } }
      requestBody:
        content:
          application/json: { schema: { $ref: '#/components/schemas/Node' } }
          application/x-www-form-urlencoded: { schema: { $ref: '#/components/schemas/Node' } }
          text/plain: {}
      responses:
        "200": { description: ok, content: { application/json: { schema: { $ref: '#/components/schemas/Node' } } } }
"#;

#[test]
fn arbitrary_requests_never_panic() {
    let c = contract(DOC);
    let mut rng = Rng(0xC0FF_EE00_1234_5678);
    let url_chars = b"abcxyz019%2FfF[]{}=&,|.;+-_~:@!$'()* \"\\\x00\xff\xc3\xa9";
    let json_chars = b"{}[]\",:0123456789.eE+-truefalsnul \\u\"abc\xff\x00";
    let content_types = [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json; charset=latin1",
        "x",
        "",
    ];
    let mut outcomes = [0usize; 2];
    for i in 0..3000 {
        let file = String::from_utf8_lossy(&rng.bytes(b"abc.%", 6)).into_owned();
        let path = format!("/n/{}/{file}.json", String::from_utf8_lossy(&rng.bytes(b"0123,x%", 8)));
        let query = String::from_utf8_lossy(&rng.bytes(url_chars, 80)).into_owned();
        let query = match i % 4 {
            0 => format!("f[a]={query}&l={query}"),
            1 => format!("j={query}"),
            _ => query,
        };
        let body = if i % 2 == 0 { rng.bytes(json_chars, 120) } else { rng.bytes(url_chars, 120) };
        let headers = HeaderList::default()
            .with("content-type", content_types[rng.below(content_types.len())])
            .with("x-h", rng.bytes(b"k=true,1\xff ", 12))
            .with("cookie", rng.bytes(b"c=1,2;\" x", 16));
        let Lookup::Found { op, path_params } = c.lookup("POST", &path) else { continue };
        let request = ContractRequest {
            path_params: &path_params,
            query: Some(&query),
            headers: &headers,
            body: Some(&body),
        };
        outcomes[usize::from(c.validate_request(op, &request).is_ok())] += 1;
        let _ = c.validate_response(op, 200, Some("application/json"), &body);
    }
    assert!(outcomes[0] > 0, "{outcomes:?}");
}

#[test]
fn garbled_documents_never_panic() {
    let spec = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/specs/petstore-expanded.yaml"
    ));
    let base = std::fs::read_to_string(spec).unwrap_or_else(|_| DOC.to_string());
    let mut rng = Rng(42);
    let mut errors = 0;
    for _ in 0..150 {
        let mut text: Vec<char> = base.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(text.len());
            match rng.below(3) {
                0 => {
                    text.remove(at);
                }
                1 => text.insert(at, ['{', '[', ':', '-', '\'', '$', '\n', ' '][rng.below(8)]),
                _ => {
                    let other = rng.below(text.len());
                    text.swap(at, other);
                }
            }
        }
        let text: String = text.into_iter().collect();
        if Contract::from_text(&text, None, ContractOptions::default()).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0);
}
