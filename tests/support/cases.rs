//! The conformance table: one list of requests with the answer each must get, shared by
//! the suites that send it to both demo services (`tests/conformance.rs`, `tests/spans.rs`).
//! Include it with `#[path = "support/cases.rs"] mod cases;` next to `mod orders;` and
//! `mod support;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::*;

pub struct Case {
    pub name: String,
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub status: u16,
    /// `None`: no problem body; `Some(slug)`: `urn:zt:problem:{slug}`.
    pub problem: Option<&'static str>,
    /// Exact `WWW-Authenticate`, or `None` for "must be absent".
    pub challenge: Option<String>,
}

const REALM: &str = "Bearer realm=\"orders-api\"";

fn invalid_token(detail: &str) -> Option<String> {
    Some(format!("{REALM}, error=\"invalid_token\", error_description=\"{detail}\""))
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn get(
    name: &str,
    path: &str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    problem: Option<&'static str>,
    challenge: Option<String>,
) -> Case {
    Case {
        name: name.into(),
        method: "GET",
        path: path.into(),
        headers,
        body: None,
        status,
        problem,
        challenge,
    }
}

fn denied_token(name: &str, token: String, problem: &'static str, detail: &str) -> Case {
    get(name, "/orders", bearer(&token), 401, Some(problem), invalid_token(detail))
}

pub fn cases() -> Vec<Case> {
    let es = key(Algorithm::ES256);
    let now = now();
    let mut cases = vec![
        get("health is public", "/health", vec![], 200, None, None),
        get("no credentials", "/orders", vec![], 401, Some("missing-credentials"), Some(REALM.into())),
        get(
            "lower-case scheme",
            "/orders",
            vec![("authorization", format!("bearer {}", token("alice", "orders:read")))],
            200,
            None,
            None,
        ),
    ];
    for k in keys() {
        cases.push(get(
            &format!("valid {:?}", k.alg),
            "/orders",
            bearer(&sign(k, &claims("alice", "orders:read"))),
            200,
            None,
            None,
        ));
    }
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims("alice", "orders:read");
        f(&mut c);
        sign(es, &c)
    };
    cases.extend([
        denied_token(
            "expired",
            with(&|c| {
                c["exp"] = json!(now - 3600);
                c["iat"] = json!(now - 7200);
            }),
            "token-expired",
            "The access token expired.",
        ),
        denied_token(
            "not yet valid",
            with(&|c| c["nbf"] = json!(now + 3600)),
            "token-not-yet-valid",
            "The access token is not valid yet.",
        ),
        denied_token(
            "issued in the future",
            with(&|c| c["iat"] = json!(now + 3600)),
            "token-not-yet-valid",
            "The access token is not valid yet.",
        ),
        denied_token(
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.test")),
            "untrusted-issuer",
            "The access token was not issued by a trusted issuer.",
        ),
        denied_token(
            "wrong audience",
            with(&|c| c["aud"] = json!("other-api")),
            "wrong-audience",
            "The access token is not intended for this service.",
        ),
        denied_token(
            "missing audience",
            with(&|c| {
                c.as_object_mut().map(|o| o.remove("aud"));
            }),
            "wrong-audience",
            "The access token is not intended for this service.",
        ),
        denied_token(
            "missing exp",
            with(&|c| {
                c.as_object_mut().map(|o| o.remove("exp"));
            }),
            "invalid-claims",
            "The access token's claims do not meet this service's requirements.",
        ),
        get(
            "audience array",
            "/orders",
            bearer(&with(&|c| c["aud"] = json!(["x", AUDIENCE]))),
            200,
            None,
            None,
        ),
        denied_token(
            "garbage token",
            "abc".into(),
            "malformed-token",
            "The access token is not a well-formed JWT.",
        ),
        denied_token(
            "five-part JWE shape",
            "a.b.c.d.e".into(),
            "malformed-token",
            "The access token is not a well-formed JWT.",
        ),
    ]);
    // alg none in every casing, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let t = forge(&json!({"alg": alg, "kid": "es256"}), &claims("alice", "orders:read"), b"");
        cases.push(denied_token(
            &format!("alg {alg}"),
            t,
            "algorithm-not-allowed",
            "The access token's signing algorithm is not accepted.",
        ));
    }
    // HS256 signed with the RSA key's public JWK as the HMAC secret (key confusion).
    let rsa = key(Algorithm::RS256);
    let secret = rsa.jwk.to_string();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(rsa.kid.clone());
    let confused = jsonwebtoken::encode(
        &h,
        &claims("alice", "orders:read"),
        &EncodingKey::from_secret(secret.as_bytes()).expect("secret"),
    )
    .expect("hs");
    cases.push(denied_token(
        "HS256 with the public key",
        confused,
        "algorithm-not-allowed",
        "The access token's signing algorithm is not accepted.",
    ));
    // Unknown kid, and keys the token tries to bring along.
    let mut unknown = Header::new(Algorithm::ES256);
    unknown.kid = Some("nobody".into());
    let t = jsonwebtoken::encode(&unknown, &claims("alice", "orders:read"), &es.encoding).expect("sign");
    cases.push(denied_token(
        "unknown kid",
        t,
        "unknown-key",
        "The access token was signed with an unknown key.",
    ));
    let attacker = attacker_ec();
    let embedded = sign_raw(
        attacker,
        &json!({"alg": "ES256", "kid": "es256", "jwk": attacker.jwk}),
        &claims("alice", "orders:read orders:admin"),
    );
    cases.push(denied_token(
        "embedded jwk",
        embedded,
        "invalid-signature",
        "The access token's signature is invalid.",
    ));
    for member in ["jku", "x5u"] {
        let t = sign_raw(
            attacker,
            &json!({"alg": "ES256", "kid": "attacker", member: "http://127.0.0.1:9/keys"}),
            &claims("alice", "orders:read"),
        );
        cases.push(denied_token(
            &format!("header {member}"),
            t,
            "unknown-key",
            "The access token was signed with an unknown key.",
        ));
    }
    let x5c = sign_raw(
        attacker,
        &json!({"alg": "ES256", "kid": "es256", "x5c": ["MIIB"]}),
        &claims("alice", "orders:read"),
    );
    cases.push(denied_token(
        "header x5c",
        x5c,
        "invalid-signature",
        "The access token's signature is invalid.",
    ));
    // Tampered payload: the signature no longer matches.
    let good = token("alice", "orders:read");
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims("alice", "orders:read orders:admin").to_string().as_bytes()),
        parts[2]
    );
    cases.push(denied_token(
        "tampered payload",
        tampered,
        "invalid-signature",
        "The access token's signature is invalid.",
    ));
    // Psychic signature (CVE-2022-21449): r = s = 0.
    let zeros = forge(&json!({"alg": "ES256", "kid": "es256"}), &claims("alice", "orders:read"), &[0u8; 64]);
    cases.push(denied_token(
        "ECDSA signature of zeros",
        zeros,
        "invalid-signature",
        "The access token's signature is invalid.",
    ));
    let crit = sign_raw(
        es,
        &json!({"alg": "ES256", "kid": "es256", "crit": ["exp"], "exp": 1}),
        &claims("alice", "orders:read"),
    );
    cases.push(denied_token(
        "unknown crit",
        crit,
        "unsupported-critical-header",
        "The access token requires header extensions that are not supported.",
    ));
    let dup_claims = {
        let c = claims("alice", "orders:read").to_string();
        let c = c.replacen('{', "{\"iss\":\"https://evil.test\",", 1);
        let message = format!(
            "{}.{}",
            b64(json!({"alg":"ES256","kid":"es256"}).to_string().as_bytes()),
            b64(c.as_bytes())
        );
        let sig =
            jsonwebtoken::crypto::sign(message.as_bytes(), &es.encoding, Algorithm::ES256).expect("sign");
        format!("{message}.{sig}")
    };
    cases.push(denied_token(
        "duplicate claim names",
        dup_claims,
        "malformed-token",
        "The access token is not a well-formed JWT.",
    ));
    // A header with invalid UTF-8 in a member zt does not read (found by fuzzing), validly signed.
    let bad_utf8 = {
        let mut header = br#"{"alg":"ES256","kid":"es256","x":"fuz"#.to_vec();
        header.extend_from_slice(&[0x84, 0xd2]);
        header.extend_from_slice(br#"0"}"#);
        let message =
            format!("{}.{}", b64(&header), b64(claims("alice", "orders:read").to_string().as_bytes()));
        let sig =
            jsonwebtoken::crypto::sign(message.as_bytes(), &es.encoding, Algorithm::ES256).expect("sign");
        format!("{message}.{sig}")
    };
    cases.push(denied_token(
        "non-UTF-8 JOSE header",
        bad_utf8,
        "malformed-token",
        "The access token is not a well-formed JWT.",
    ));

    // Credentials in the wrong shape.
    let malformed = Some(format!(
        "{REALM}, error=\"invalid_request\", error_description=\"The credentials are malformed, repeated, or sent in more than one way.\""
    ));
    cases.extend([
        get(
            "empty bearer",
            "/orders",
            vec![("authorization", "Bearer".into())],
            400,
            Some("malformed-credentials"),
            malformed.clone(),
        ),
        get(
            "bearer with two tokens",
            "/orders",
            vec![("authorization", "Bearer a b".into())],
            400,
            Some("malformed-credentials"),
            malformed.clone(),
        ),
        get(
            "two authorization headers",
            "/orders",
            vec![("authorization", format!("Bearer {good}")), ("authorization", format!("Bearer {good}"))],
            400,
            Some("malformed-credentials"),
            malformed.clone(),
        ),
        get(
            "basic scheme only",
            "/orders",
            vec![("authorization", "Basic YTpi".into())],
            401,
            Some("missing-credentials"),
            Some(REALM.into()),
        ),
        get(
            "invalid token on a public route",
            "/health",
            bearer("abc"),
            401,
            Some("malformed-token"),
            invalid_token("The access token is not a well-formed JWT."),
        ),
    ]);

    // Scopes.
    let insufficient = |scope: &str| {
        Some(format!(
            "{REALM}, error=\"insufficient_scope\", error_description=\"The access token lacks the scope this resource requires.\", scope=\"{scope}\""
        ))
    };
    cases.extend([
        Case {
            name: "write without orders:write".into(),
            method: "POST",
            path: "/orders".into(),
            headers: [bearer(&good), vec![("content-type", "application/json".into())]].concat(),
            body: Some(br#"{"item":"book","quantity":1}"#.to_vec()),
            status: 403,
            problem: Some("insufficient-scope"),
            challenge: insufficient("orders:write"),
        },
        Case {
            name: "write with orders:write".into(),
            method: "POST",
            path: "/orders".into(),
            headers: [
                bearer(&token("alice", "orders:write")),
                vec![("content-type", "application/json".into())],
            ]
            .concat(),
            body: Some(br#"{"item":"book","quantity":1}"#.to_vec()),
            status: 201,
            problem: None,
            challenge: None,
        },
        get(
            "no scope at all",
            "/orders",
            bearer(&token("alice", "")),
            403,
            Some("insufficient-scope"),
            insufficient("orders:read"),
        ),
        get(
            "scp array grants",
            "/orders",
            bearer(&with(&|c| {
                c.as_object_mut().map(|o| o.remove("scope"));
                c["scp"] = json!(["orders:read"]);
            })),
            200,
            None,
            None,
        ),
        Case {
            name: "delete needs orders:admin".into(),
            method: "DELETE",
            path: "/orders/1".into(),
            headers: bearer(&token("alice", "orders:read orders:write")),
            body: None,
            status: 403,
            problem: Some("insufficient-scope"),
            challenge: insufficient("orders:admin"),
        },
        Case {
            name: "admin deletes (no such order)".into(),
            method: "DELETE",
            path: "/orders/999999".into(),
            headers: bearer(&token("root", "orders:admin")),
            body: None,
            status: 404,
            problem: None,
            challenge: None,
        },
        get("read own order id", "/orders/424242", bearer(&good), 404, None, None),
    ]);

    // Bodies: size limit early (Content-Length) and while streaming; framing; overrides.
    let writer = token("alice", "orders:write");
    let big = vec![b'x'; crate::orders::BODY_LIMIT + 1];
    let json_headers = |extra: Vec<(&'static str, String)>| {
        [bearer(&writer), vec![("content-type", "application/json".into())], extra].concat()
    };
    cases.extend([
        Case {
            name: "body over the limit (content-length)".into(),
            method: "POST",
            path: "/orders".into(),
            headers: json_headers(vec![]),
            body: Some(big),
            status: 413,
            problem: Some("payload-too-large"),
            challenge: None,
        },
        Case {
            name: "body over the limit (chunked)".into(),
            method: "POST",
            path: "/orders".into(),
            headers: json_headers(vec![("transfer-encoding", "chunked".into())]),
            body: Some(chunked(&vec![b'y'; crate::orders::BODY_LIMIT + 10])),
            status: 413,
            problem: Some("payload-too-large"),
            challenge: None,
        },
        Case {
            name: "chunked body within the limit".into(),
            method: "POST",
            path: "/orders".into(),
            headers: json_headers(vec![("transfer-encoding", "chunked".into())]),
            body: Some(chunked(br#"{"item":"tea","quantity":2}"#)),
            status: 201,
            problem: None,
            challenge: None,
        },
        Case {
            name: "method override header".into(),
            method: "POST",
            path: "/orders".into(),
            headers: json_headers(vec![("x-http-method-override", "DELETE".into())]),
            body: Some(br#"{"item":"a","quantity":1}"#.to_vec()),
            status: 400,
            problem: Some("method-override"),
            challenge: None,
        },
        get(
            "method override parameter",
            "/orders?_method=DELETE",
            bearer(&good),
            400,
            Some("method-override"),
            None,
        ),
        get(
            "unauthenticated big body is 401 first",
            "/orders",
            vec![],
            401,
            Some("missing-credentials"),
            Some(REALM.into()),
        ),
    ]);

    // The OpenAPI contract (examples/orders.openapi.yaml), strict mode.
    let post =
        |name: &str, content_type: Option<&str>, body: &[u8], status: u16, problem: Option<&'static str>| {
            let mut headers = bearer(&writer);
            if let Some(ct) = content_type {
                headers.push(("content-type", ct.to_string()));
            }
            Case {
                name: name.into(),
                method: "POST",
                path: "/orders".into(),
                headers,
                body: Some(body.to_vec()),
                status,
                problem,
                challenge: None,
            }
        };
    let json = Some("application/json");
    cases.extend([
        get("limit below range", "/orders?limit=0", bearer(&good), 400, Some("invalid-parameters"), None),
        get("limit above range", "/orders?limit=101", bearer(&good), 400, Some("invalid-parameters"), None),
        get(
            "limit not an integer",
            "/orders?limit=ten",
            bearer(&good),
            400,
            Some("invalid-parameters"),
            None,
        ),
        get("limit in range", "/orders?limit=100&cursor=abc", bearer(&good), 200, None, None),
        get(
            "cursor too long",
            &format!("/orders?cursor={}", "c".repeat(65)),
            bearer(&good),
            400,
            Some("invalid-parameters"),
            None,
        ),
        get(
            "unknown query parameter",
            "/orders?debug=1",
            bearer(&good),
            400,
            Some("invalid-parameters"),
            None,
        ),
        get(
            "duplicated parameter (pollution)",
            "/orders?limit=1&limit=2",
            bearer(&good),
            400,
            Some("invalid-parameters"),
            None,
        ),
        get("id fails its pattern", "/orders/abc", bearer(&good), 400, Some("invalid-parameters"), None),
        get("id too long", "/orders/1234567890123", bearer(&good), 400, Some("invalid-parameters"), None),
        post("valid order", json, br#"{"item":"book","quantity":2,"note":"gift"}"#, 201, None),
        post(
            "charset parameter",
            Some("application/json; charset=utf-8"),
            br#"{"item":"book","quantity":2}"#,
            201,
            None,
        ),
        post(
            "wrong content type",
            Some("text/plain"),
            br#"{"item":"book","quantity":2}"#,
            415,
            Some("unsupported-media-type"),
        ),
        post(
            "no content type",
            None,
            br#"{"item":"book","quantity":2}"#,
            415,
            Some("unsupported-media-type"),
        ),
        post("missing quantity", json, br#"{"item":"book"}"#, 400, Some("invalid-body")),
        post("quantity zero", json, br#"{"item":"book","quantity":0}"#, 400, Some("invalid-body")),
        post("quantity too large", json, br#"{"item":"book","quantity":1001}"#, 400, Some("invalid-body")),
        post("quantity not integer", json, br#"{"item":"book","quantity":1.5}"#, 400, Some("invalid-body")),
        post("item empty", json, br#"{"item":"","quantity":1}"#, 400, Some("invalid-body")),
        post(
            "item too long",
            json,
            format!(r#"{{"item":"{}","quantity":1}}"#, "x".repeat(65)).as_bytes(),
            400,
            Some("invalid-body"),
        ),
        post(
            "note too long",
            json,
            format!(r#"{{"item":"a","quantity":1,"note":"{}"}}"#, "n".repeat(257)).as_bytes(),
            400,
            Some("invalid-body"),
        ),
        post(
            "unknown field",
            json,
            br#"{"item":"book","quantity":1,"discount":100}"#,
            400,
            Some("invalid-body"),
        ),
        post(
            "mass assignment of owner",
            json,
            br#"{"item":"book","quantity":1,"owner":"admin"}"#,
            400,
            Some("invalid-body"),
        ),
        post("malformed JSON", json, br#"{"item":"book","#, 400, Some("invalid-body")),
        post("array instead of object", json, br#"[1,2]"#, 400, Some("invalid-body")),
        post(
            "duplicate JSON keys",
            json,
            br#"{"item":"a","item":"b","quantity":1}"#,
            400,
            Some("invalid-body"),
        ),
        Case {
            name: "required body missing".into(),
            method: "POST",
            path: "/orders".into(),
            headers: json_headers(vec![]),
            body: None,
            status: 400,
            problem: Some("invalid-body"),
            challenge: None,
        },
        Case {
            name: "body on GET".into(),
            method: "GET",
            path: "/orders".into(),
            headers: [bearer(&good), vec![("content-type", "application/json".into())]].concat(),
            body: Some(b"{}".to_vec()),
            status: 400,
            problem: Some("invalid-body"),
            challenge: None,
        },
    ]);

    // Routing: default deny.
    cases.extend([
        get("unknown route", "/admin", bearer(&good), 404, Some("route-not-found"), None),
        get("trailing slash is another route", "/orders/", bearer(&good), 404, Some("route-not-found"), None),
        get("case-sensitive", "/ORDERS", bearer(&good), 404, Some("route-not-found"), None),
        Case {
            name: "undeclared method".into(),
            method: "PUT",
            path: "/orders".into(),
            headers: bearer(&good),
            body: None,
            status: 405,
            problem: Some("method-not-allowed"),
            challenge: None,
        },
        get("double slash", "//orders", bearer(&good), 400, Some("invalid-path"), None),
        get("dot segment", "/orders/../orders", bearer(&good), 400, Some("invalid-path"), None),
        get("encoded slash", "/orders%2f1", bearer(&good), 400, Some("invalid-path"), None),
        get("encoded dot segment", "/orders/%2e%2e/health", bearer(&good), 400, Some("invalid-path"), None),
        get("matrix parameter", "/orders;x=1", bearer(&good), 400, Some("invalid-path"), None),
    ]);

    // #14 finding 11 (lead): framing is decided from the body the adapter holds, so these
    // hold over HTTP/2 too, where no Content-Length is needed (tests/h2.rs sends the table
    // without one).
    let admin = token("root", "orders:admin");
    cases.push(Case {
        name: "adv14_11 a body on DELETE is checked (the operation takes none)".into(),
        method: "DELETE",
        path: "/orders/999999".into(),
        headers: [bearer(&admin), vec![("content-type", "application/json".into())]].concat(),
        body: Some(format!("{{\"pad\":\"{}\"}}", "x".repeat(1000)).into_bytes()),
        status: 400,
        problem: Some("invalid-body"),
        challenge: None,
    });

    // ---- Task G (issue 14, GraphQL findings 2, 3, 6): one request each, both adapters. ----
    // GraphQL denials are GraphQL-shaped (no top-level problem `type`): `problem: None`
    // with the status says "refused by the GraphQL check", and a 500 is the executor's
    // "contract bypass" (zt admitted what the service cannot run).
    {
        let graphql = |name: &str, token: &str, body: serde_json::Value, status: u16| {
            Case {
            name: name.into(),
            method: "POST",
            path: "/graphql".into(),
            headers: [bearer(token), vec![("content-type", "application/json".into())]].concat(),
            body: Some(body.to_string().into_bytes()),
            status,
            problem: None,
            challenge: (status == 403).then(|| {
                format!(
                    "{REALM}, error=\"insufficient_scope\", error_description=\"The operation selects fields this caller may not access.\""
                )
            }),
        }
        };
        let write_only = token("bob", "orders:write");
        let reader = token("alice", "orders:read");
        cases.extend([
            // Finding 2: a type's scope holds wherever the type is reached.
            graphql(
                "adv14_2_graphql_type_scope_mutation_path",
                &write_only,
                json!({"query": "mutation { createOrder(item: \"x\", quantity: 1) { customer { orders { id item owner } } } }"}),
                403,
            ),
            graphql(
                "adv14_2_graphql_type_scope_write_only_creates",
                &write_only,
                json!({"query": "mutation { createOrder(item: \"x\", quantity: 1) { id item quantity } }"}),
                200,
            ),
            // Finding 3: a list without `limit` costs what the resolver returns then (100).
            graphql(
                "adv14_3_graphql_cost_absent_limit_is_the_server_bound",
                &reader,
                json!({"query": "{ orders { customer { orders { id } } } }"}),
                400,
            ),
            graphql("adv14_3_graphql_cost_one_list_within_budget", &reader, json!({"query": "{ orders { id } }"}), 200),
            graphql(
                "adv14_3_graphql_cost_aliases_count",
                &reader,
                json!({"query": format!("{{ {} }}", (0..5).map(|i| format!("a{i}: orders {{ id item }}")).collect::<Vec<_>>().join(" "))}),
                400,
            ),
            graphql(
                "adv14_3_graphql_cost_limit_variable_absent",
                &reader,
                json!({"query": "query Q($n: Int) { orders(limit: $n) { customer { orders(limit: $n) { id } } } }", "variables": {}}),
                400,
            ),
            // Finding 6: what zt admits, the executor accepts (GraphQL input coercion).
            graphql(
                "adv14_6_graphql_int_variable_integral_float",
                &reader,
                json!({"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": 5.0}}),
                400,
            ),
            graphql(
                "adv14_6_graphql_int_variable_negative_zero",
                &reader,
                json!({"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": -0.0}}),
                400,
            ),
            graphql(
                "adv14_6_graphql_int_variable_beyond_32_bits",
                &reader,
                json!({"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": 2147483648_i64}}),
                400,
            ),
            graphql(
                "adv14_6_graphql_int_variable_integer",
                &reader,
                json!({"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": 5}}),
                200,
            ),
            graphql(
                "adv14_6_graphql_id_variable_beyond_64_bits",
                &reader,
                json!({"query": "query Q($id: ID!) { order(id: $id) { id } }", "variables": {"id": 18446744073709551615_u64}}),
                400,
            ),
            graphql(
                "adv14_6_graphql_id_variable_integer",
                &reader,
                json!({"query": "query Q($id: ID!) { order(id: $id) { id } }", "variables": {"id": 7}}),
                200,
            ),
            graphql(
                "adv14_6_graphql_id_literal_beyond_64_bits",
                &reader,
                json!({"query": "{ order(id: 18446744073709551615) { id } }"}),
                200,
            ),
            graphql(
                "adv14_6_graphql_post_empty_operation_name",
                &reader,
                json!({"query": "query Mine { orders { id } }", "operationName": ""}),
                400,
            ),
            graphql(
                "adv14_6_graphql_post_null_members",
                &reader,
                json!({"query": "query Mine { orders { id } }", "operationName": null, "variables": null, "extensions": null}),
                200,
            ),
            get(
                "adv14_6_graphql_get_empty_operation_name",
                "/graphql?query=query%20Mine%20%7B%20orders%20%7B%20id%20%7D%20%7D&operationName=",
                bearer(&reader),
                200,
                None,
                None,
            ),
            get(
                "adv14_6_graphql_get_variables_null",
                "/graphql?query=%7B%20orders%20%7B%20id%20%7D%20%7D&variables=null",
                bearer(&reader),
                200,
                None,
                None,
            ),
        ]);
    }
    // ---- end of Task G ----

    // ---- Task N (issue 14: findings 5, 7, 8, 9, 13): single-request cases. ----
    {
        const INVALID_CLAIMS: &str = "The access token's claims do not meet this service's requirements.";
        let claims_with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = claims("alice", "orders:read");
            f(&mut c);
            sign(es, &c)
        };
        // 9: NumericDates are JSON numbers, fractions included (RFC 7519 s.2); anything else
        // is refused as invalid claims, `auth_time` too.
        cases.push(get(
            "adv14_9 non-integer NumericDates are read as numbers",
            "/orders",
            bearer(&claims_with(&|c| {
                c["exp"] = json!(now as f64 + 600.5);
                c["nbf"] = json!(now as f64 - 10.25);
                c["iat"] = json!(now as f64 - 60.75);
                c["auth_time"] = json!(now as f64 - 120.5);
            })),
            200,
            None,
            None,
        ));
        cases.push(get(
            "adv14_9 NumericDates in exponent form are read as numbers",
            "/orders",
            bearer(&claims_with(&|c| {
                c["exp"] = json!(1e11);
                c["auth_time"] = json!(1e9);
            })),
            200,
            None,
            None,
        ));
        for (name, claim, value) in [
            ("adv14_9 auth_time as a string is invalid claims", "auth_time", json!("yesterday")),
            ("adv14_9 auth_time as a numeric string is invalid claims", "auth_time", json!("1700000000")),
            ("adv14_9 auth_time null is invalid claims", "auth_time", json!(null)),
            ("adv14_9 negative auth_time is invalid claims", "auth_time", json!(-1)),
            ("adv14_9 iat as a string is invalid claims", "iat", json!("1700000000")),
            ("adv14_9 nbf as a boolean is invalid claims", "nbf", json!(true)),
            ("adv14_9 exp as an array is invalid claims", "exp", json!([now + 600])),
        ] {
            cases.push(denied_token(
                name,
                claims_with(&|c| c[claim] = value.clone()),
                "invalid-claims",
                INVALID_CLAIMS,
            ));
        }
    }
    // 7: an `integer` the contract admits is one a handler's integer parser takes: a
    // number with a fraction or an exponent, even an integral one, is refused (400).
    let json = Some("application/json");
    for (name, body) in [
        ("adv14_7 integral float quantity is refused", &br#"{"item":"book","quantity":2.0}"#[..]),
        ("adv14_7 exponent quantity is refused", br#"{"item":"book","quantity":2e0}"#),
        ("adv14_7 upper-case exponent quantity is refused", br#"{"item":"book","quantity":1E1}"#),
        ("adv14_7 trailing-zero fraction quantity is refused", br#"{"item":"book","quantity":20.00}"#),
    ] {
        cases.push(post(name, json, body, 400, Some("invalid-body")));
    }
    for (name, path) in [
        ("adv14_7 integral float limit is refused", "/orders?limit=5.0"),
        ("adv14_7 exponent limit is refused", "/orders?limit=5e0"),
    ] {
        cases.push(get(name, path, bearer(&good), 400, Some("invalid-parameters"), None));
    }
    cases.push(post(
        "adv14_7 integer quantity is admitted",
        json,
        br#"{"item":"book","quantity":1000}"#,
        201,
        None,
    ));
    // ---- end of task N's cases ----
    cases
}

/// A chunked transfer-encoding of `body` (sent raw, without Content-Length).
pub fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(4096) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends `case` to `addr`.
pub async fn run(addr: std::net::SocketAddr, case: &Case) -> RawResponse {
    run_with(addr, case, &[]).await
}

/// Sends `case` to `addr` with `extra` headers after the case's own (e.g. an
/// `x-forwarded-for` that gives each request its own client address).
pub async fn run_with(addr: std::net::SocketAddr, case: &Case, extra: &[(&str, &str)]) -> RawResponse {
    let mut headers: Vec<(&str, &str)> = case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    headers.extend_from_slice(extra);
    raw_request(addr, case.method, &case.path, &headers, case.body.as_deref()).await
}

/// Everything wrong with `r` as the answer to `case` from `adapter` (empty: it is right):
/// status, problem `type`, exact `WWW-Authenticate`, and for problems their media type,
/// their request id (the `x-request-id` header's), listed violations that never echo the
/// offending values, and no trace of the token.
pub fn check(adapter: &str, case: &Case, r: &RawResponse) -> Vec<String> {
    let mut failures = Vec::new();
    let problem = r.problem_type();
    let expected_problem = case.problem.map(|p| format!("urn:zt:problem:{p}"));
    let is_zt_problem = problem.as_deref().is_some_and(|p| p.starts_with("urn:zt:"));
    if r.status != case.status
        || (case.problem.is_some() && problem != expected_problem)
        || (case.problem.is_none() && is_zt_problem)
        || r.header("www-authenticate") != case.challenge.as_deref()
    {
        failures.push(format!(
            "[{adapter}] {}: got {} {:?} {:?}, want {} {:?} {:?}",
            case.name,
            r.status,
            problem,
            r.header("www-authenticate"),
            case.status,
            expected_problem,
            case.challenge
        ));
    }
    if case.problem.is_none() {
        return failures;
    }
    let mut fail = |what: String| failures.push(format!("[{adapter}] {}: {what}", case.name));
    if r.header("content-type") != Some("application/problem+json") {
        fail(format!("problem content type {:?}", r.header("content-type")));
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&r.body) else {
        fail(format!("problem body is not JSON: {:?}", r.body));
        return failures;
    };
    if body["request_id"].as_str() != r.header("x-request-id") {
        fail(format!("request_id {} vs x-request-id {:?}", body["request_id"], r.header("x-request-id")));
    }
    if matches!(case.problem, Some("invalid-parameters" | "invalid-body")) {
        let v = body["violations"].as_array().map(Vec::len).unwrap_or(0);
        if v == 0 {
            fail(format!("no violations listed: {body}"));
        }
        // Violations name where and which rule, never the offending value.
        let sent: serde_json::Value =
            case.body.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        let values: Vec<&str> =
            sent.as_object().map(|o| o.values().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        for value in values.into_iter().chain(case.path.split(['=', '&']).skip(1).step_by(2)) {
            if value.len() > 3 && r.body.contains(value) {
                fail(format!("echoes {value:?}"));
            }
        }
    }
    // Nothing from the token is ever echoed.
    for (_, v) in &case.headers {
        if let Some(t) = v.strip_prefix("Bearer ")
            && t.len() > 8
            && (r.body.contains(t) || r.headers.iter().any(|(_, hv)| hv.contains(t)))
        {
            fail("echoes the token".to_string());
        }
    }
    failures
}

/// What the caller can see of an answer, except the request id: the adapters must agree on
/// it for every case.
pub fn visible(r: &RawResponse) -> (u16, Option<&str>, Option<&str>, Option<String>) {
    (r.status, r.header("www-authenticate"), r.header("allow"), r.problem_type())
}
