//! The three places that read JSON from a client (a request body under the OpenAPI
//! contract, a GraphQL request, a token's claims) read the same bytes the same way: each
//! edge input below is accepted by all three or refused by all three. Through the public
//! API only: `Contract::validate_request`, `GraphqlSchema::check`, `Guard::decide`.
#![cfg(feature = "graphql")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zt_core::contract::{Contract, ContractOptions, ContractRequest, Lookup};
use zt_core::graphql::{GraphqlConfig, GraphqlReason, GraphqlRequestBody, GraphqlSchema};
use zt_core::policy::{IssuerConfig, Policy};
use zt_core::request::HeaderList;
use zt_core::{Decision, Guard, Reason, RequestView, RouteTable, scopes};

const SECRET: &str = "a-json-agreement-secret-that-is-long-enough";
const ISSUER: &str = "https://issuer.example";

const OPENAPI: &str = r#"
openapi: 3.1.0
info: { title: t, version: "1" }
paths:
  /things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {}
      responses:
        "200": { description: ok }
"#;

/// An edge input: the value placed two objects deep in each document (`E`), and what is
/// put around the whole document.
struct Edge {
    name: &'static str,
    value: Vec<u8>,
    prefix: &'static [u8],
    suffix: &'static [u8],
    accepted: bool,
}

fn nested(levels: usize) -> Vec<u8> {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels)).into_bytes()
}

fn edges() -> Vec<Edge> {
    let edge = |name, value: &[u8], accepted| Edge {
        name,
        value: value.to_vec(),
        prefix: b"",
        suffix: b"",
        accepted,
    };
    vec![
        // Controls: so a reader that refuses everything fails this test.
        edge("plain", br#"[1,-2.5,{"b":"\u00e9"},null,true]"#, true),
        // Two enclosing objects + 62 arrays = 64 levels: the limit, accepted.
        Edge { name: "64 levels", value: nested(62), prefix: b"", suffix: b"", accepted: true },
        Edge { name: "65 levels", value: nested(63), prefix: b"", suffix: b"", accepted: false },
        edge("duplicate key", br#"{"a":1,"a":2}"#, false),
        edge("1e999", b"1e999", false),
        edge("-1e999", b"-1e999", false),
        edge("lone leading surrogate", br#""\ud800""#, false),
        edge("lone trailing surrogate", br#""\udc00""#, false),
        edge("invalid UTF-8", b"\"\xff\"", false),
        Edge {
            name: "byte-order mark",
            value: b"1".to_vec(),
            prefix: b"\xEF\xBB\xBF",
            suffix: b"",
            accepted: false,
        },
        Edge { name: "trailing data", value: b"1".to_vec(), prefix: b"", suffix: b" {}", accepted: false },
        Edge {
            name: "trailing whitespace",
            value: b"1".to_vec(),
            prefix: b"",
            suffix: b" \n",
            accepted: true,
        },
    ]
}

/// `prefix {members, "<container>": {"x": E}} suffix`.
fn document(edge: &Edge, members: &str, container: &str) -> Vec<u8> {
    let mut out = edge.prefix.to_vec();
    out.extend_from_slice(format!("{{{members}\"{container}\":{{\"x\":").as_bytes());
    out.extend_from_slice(&edge.value);
    out.extend_from_slice(b"}}");
    out.extend_from_slice(edge.suffix);
    out
}

fn contract_accepts(contract: &Contract, body: &[u8]) -> bool {
    let Lookup::Found { op, path_params } = contract.lookup("POST", "/things") else { panic!("route") };
    let headers = HeaderList::default().with("content-type", "application/json");
    let request =
        ContractRequest { path_params: &path_params, query: None, headers: &headers, body: Some(body) };
    match contract.validate_request(op, &request) {
        Ok(()) => true,
        Err(violations) => {
            assert!(violations.items.iter().all(|v| v.pointer.starts_with("/body")), "{violations}");
            false
        }
    }
}

fn graphql_accepts(schema: &GraphqlSchema, body: &[u8]) -> bool {
    match schema.check(GraphqlRequestBody::Json(body), None) {
        Ok(_) => true,
        Err(denial) => {
            assert_eq!(denial.reason, GraphqlReason::BadRequest);
            false
        }
    }
}

fn token(payload: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
    format!("{signing_input}.{signature}")
}

async fn guard_accepts(guard: &Guard, token: &str) -> bool {
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let view = RequestView {
        method: "GET",
        path: "/things",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: None,
        body: zt_core::BodyHint::Empty,
    };
    match guard.decide(&view).await {
        Decision::Admitted(admitted) => {
            assert!(admitted.identity().is_some());
            true
        }
        Decision::Rejected(rejected) => {
            assert_eq!(rejected.reason(), Reason::MalformedToken);
            false
        }
    }
}

#[tokio::test]
async fn contract_graphql_and_tokens_agree_on_every_edge_input() {
    let contract =
        Contract::from_text(OPENAPI, None, ContractOptions { strict: false, ..ContractOptions::default() })
            .unwrap();
    let graphql = GraphqlSchema::from_sdl("type Query { a: Int }", GraphqlConfig::default()).unwrap();
    let mut routes = RouteTable::new();
    routes.add("GET", "/things", scopes::authenticated()).unwrap();
    let guard = Guard::new(
        Policy::builder()
            .issuer(IssuerConfig::new(ISSUER).audience("things").hmac_secret("HS256", SECRET, None))
            .build(),
    )
    .unwrap()
    .with_routes(&routes)
    .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = format!(r#""iss":"{ISSUER}","aud":"things","sub":"alice","exp":{},"#, now + 300);

    for edge in edges() {
        let body = document(&edge, "", "a");
        let request = document(&edge, r#""query":"{ a }","#, "extensions");
        let payload = document(&edge, &claims, "a");
        let verdicts = (
            contract_accepts(&contract, &body),
            graphql_accepts(&graphql, &request),
            guard_accepts(&guard, &token(&payload)).await,
        );
        let expected = (edge.accepted, edge.accepted, edge.accepted);
        assert_eq!(verdicts, expected, "{} (contract, graphql, token)", edge.name);
    }
}
