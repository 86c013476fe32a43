//! GraphQL under zt (issue 9): one table of requests to `/graphql`, sent over real HTTP on
//! 127.0.0.1 to BOTH demo services. Each case must get the expected status and GraphQL
//! error code (or data), the GraphQL-shaped error body with zt's problem `type`, and the
//! two adapters must answer identically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use serde_json::{Value, json};
use support::*;

/// What a case expects back.
enum Want {
    /// 200 with a `data` object (no `errors`).
    Data,
    /// A zt denial: status and GraphQL error code.
    Denied(u16, &'static str),
    /// A zt denial with a standard problem body (not GraphQL-shaped): status and slug.
    Problem(u16, &'static str),
}

struct Case {
    name: &'static str,
    method: &'static str,
    /// Query string for GET, without `?`.
    query: String,
    token: Option<String>,
    content_type: &'static str,
    body: Option<Vec<u8>>,
    want: Want,
}

fn post(name: &'static str, token: &str, body: Value, want: Want) -> Case {
    Case {
        name,
        method: "POST",
        query: String::new(),
        token: Some(token.to_string()),
        content_type: "application/json",
        body: Some(body.to_string().into_bytes()),
        want,
    }
}

fn query(name: &'static str, token: &str, document: &str, want: Want) -> Case {
    post(name, token, json!({ "query": document }), want)
}

fn get(name: &'static str, token: &str, query_string: String, want: Want) -> Case {
    Case {
        name,
        method: "GET",
        query: query_string,
        token: Some(token.to_string()),
        content_type: "application/json",
        body: None,
        want,
    }
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn cases() -> Vec<Case> {
    let reader = token("alice", "orders:read");
    let writer = token("alice", "orders:read orders:write");
    let write_only = token("bob", "orders:write");
    let admin = token("root", "orders:read orders:write orders:admin zt:admin");
    let no_scope = token("mallory", "profile");
    let deep = "{ orders { customer { orders { customer { orders { customer { orders { customer { id } } } } } } } } }";
    let deep_fragments = r#"
        query Deep { orders { ...A } }
        fragment A on Order { customer { ...B } }
        fragment B on Customer { orders { ... on Order { customer { ...C } } } }
        fragment C on Customer { orders { customer { orders { customer { id } } } } }"#;
    let aliases: String = (0..21).map(|i| format!("a{i}: id ")).collect();
    let alias_bomb = format!("{{ orders(limit: 1) {{ {aliases} }} }}");
    let cycle = "{ orders { ...A } } fragment A on Order { customer { ...B } } fragment B on Customer { orders { ...A } }";
    let flood = format!("{{ orders {{ id {} }} }}", "@skip(if: false) ".repeat(6));
    let oversized = format!("{{ orders {{ id }} }}\n{}", "#".repeat(16 * 1024));
    let six: Vec<Value> = (0..6).map(|_| json!({"query": "{ orders { id } }"})).collect();
    let two: Vec<Value> = (0..2).map(|_| json!({"query": "{ orders { id } }"})).collect();
    let roots: String = (0..11).map(|i| format!("o{i}: order(id: {i}) {{ id }} ")).collect();
    vec![
        query("valid query", &reader, "query Mine { orders(limit: 5) { id item quantity } }", Want::Data),
        post(
            "valid query with variables",
            &reader,
            json!({"query": "query One($id: ID!) { order(id: $id) { id } }", "variables": {"id": "1"}}),
            Want::Data,
        ),
        query(
            "valid mutation",
            &writer,
            "mutation { createOrder(item: \"book\", quantity: 2) { id item } }",
            Want::Data,
        ),
        query("typename for any admitted caller", &write_only, "{ __typename }", Want::Data),
        query(
            "unknown field",
            &reader,
            "{ orders { id creditCard } }",
            Want::Denied(400, "GRAPHQL_VALIDATION_FAILED"),
        ),
        query(
            "unknown argument",
            &reader,
            "{ orders(first: 5) { id } }",
            Want::Denied(400, "GRAPHQL_VALIDATION_FAILED"),
        ),
        query("syntax error", &reader, "{ orders { id }", Want::Denied(400, "GRAPHQL_PARSE_FAILED")),
        post(
            "wrong variable type",
            &reader,
            json!({"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": "five"}}),
            Want::Denied(400, "BAD_USER_INPUT"),
        ),
        post(
            "undeclared variable sent",
            &reader,
            json!({"query": "{ orders { id } }", "variables": {"x": 1}}),
            Want::Denied(400, "BAD_USER_INPUT"),
        ),
        query("deep nesting", &reader, deep, Want::Denied(400, "DEPTH_LIMIT")),
        query("deep nesting through fragments", &reader, deep_fragments, Want::Denied(400, "DEPTH_LIMIT")),
        query("alias bomb", &reader, &alias_bomb, Want::Denied(400, "ALIAS_LIMIT")),
        query(
            "too many root fields",
            &reader,
            &format!("{{ {roots} }}"),
            Want::Denied(400, "ROOT_FIELD_LIMIT"),
        ),
        query("fragment cycle", &reader, cycle, Want::Denied(400, "GRAPHQL_VALIDATION_FAILED")),
        query("directive flood", &reader, &flood, Want::Denied(400, "DIRECTIVE_LIMIT")),
        query("oversized document", &reader, &oversized, Want::Denied(400, "DOCUMENT_TOO_LARGE")),
        post("batch within the limit", &reader, Value::Array(two), Want::Data),
        post("batch over the limit", &reader, Value::Array(six), Want::Denied(400, "BATCH_LIMIT")),
        query(
            "introspection without the scope",
            &reader,
            "{ __schema { types { name } } }",
            Want::Denied(403, "INTROSPECTION_DISABLED"),
        ),
        query("introspection for zt:admin", &admin, "{ __schema { queryType { name } } }", Want::Data),
        query(
            "field needing orders:admin",
            &reader,
            "{ orders { id internalNote } }",
            Want::Denied(403, "FORBIDDEN_FIELD"),
        ),
        query("field needing orders:admin, as admin", &admin, "{ orders { id internalNote } }", Want::Data),
        query(
            "query needing orders:read with write only",
            &write_only,
            "{ orders { id } }",
            Want::Denied(403, "FORBIDDEN_FIELD"),
        ),
        query(
            "mutation needing orders:write",
            &reader,
            "mutation { createOrder(item: \"x\", quantity: 1) { id } }",
            Want::Denied(403, "FORBIDDEN_FIELD"),
        ),
        get("query over GET", &reader, format!("query={}", encode("{ orders { id } }")), Want::Data),
        get(
            "mutation over GET",
            &writer,
            format!("query={}", encode("mutation { createOrder(item: \"x\", quantity: 1) { id } }")),
            Want::Denied(405, "MUTATION_OVER_GET"),
        ),
        post(
            "not a GraphQL request",
            &reader,
            json!({"q": "{ orders { id } }"}),
            Want::Denied(400, "BAD_REQUEST"),
        ),
        Case { content_type: "text/plain", ..query("not JSON", &reader, "{ orders { id } }", Want::Data) }
            .expect(Want::Problem(415, "unsupported-media-type")),
        Case { token: None, ..query("no token", &reader, "{ __typename }", Want::Data) }
            .expect(Want::Problem(401, "missing-credentials")),
        query(
            "token without any demo scope",
            &no_scope,
            "{ __typename }",
            Want::Problem(403, "insufficient-scope"),
        ),
    ]
}

impl Case {
    fn expect(self, want: Want) -> Case {
        Case { want, ..self }
    }
}

async fn send(addr: std::net::SocketAddr, case: &Case) -> RawResponse {
    let authorization = case.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("accept", "application/graphql-response+json")];
    if let Some(a) = &authorization {
        headers.push(("authorization", a));
    }
    if case.body.is_some() {
        headers.push(("content-type", case.content_type));
    }
    let path =
        if case.query.is_empty() { "/graphql".to_string() } else { format!("/graphql?{}", case.query) };
    raw_request(addr, case.method, &path, &headers, case.body.as_deref()).await
}

/// Checks one answer; returns what is wrong with it, if anything.
fn judge(case: &Case, r: &RawResponse) -> Option<String> {
    let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    match case.want {
        Want::Data => {
            let ok = r.status == 200 && body["data"].is_object()
                || body.as_array().is_some_and(|batch| {
                    r.status == 200
                        && batch.iter().all(|answer| answer["data"].is_object() && answer["errors"].is_null())
                });
            (!ok || !body["errors"].is_null()).then(|| format!("want data, got {} {}", r.status, r.body))
        }
        Want::Denied(status, code) => {
            let error = &body["errors"][0];
            let expected_type = format!("urn:zt:problem:graphql-{}", code_slug(code));
            let wrong = r.status != status
                || error["extensions"]["code"] != code
                || error["extensions"]["type"] != expected_type.as_str()
                || error["extensions"]["request_id"].as_str() != r.header("x-request-id")
                || !body["data"].is_null()
                || r.header("content-type") != Some("application/graphql-response+json");
            wrong.then(|| {
                format!("want {status} {code}, got {} {:?} {}", r.status, r.header("content-type"), r.body)
            })
        }
        Want::Problem(status, slug) => {
            let wrong = r.status != status || r.problem_type() != Some(format!("urn:zt:problem:{slug}"));
            wrong.then(|| format!("want {status} {slug}, got {} {}", r.status, r.body))
        }
    }
}

/// The problem slug zt pairs with a GraphQL error code.
fn code_slug(code: &str) -> String {
    match code {
        "GRAPHQL_VALIDATION_FAILED" => "validation-failed".into(),
        "GRAPHQL_PARSE_FAILED" => "parse-failed".into(),
        "BAD_USER_INPUT" => "invalid-variables".into(),
        "FORBIDDEN_FIELD" => "forbidden-field".into(),
        other => other.to_ascii_lowercase().replace('_', "-"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_enforce_the_graphql_table_identically() {
    let guard = demo_guard(policy_with_jwks(trusted_jwks()));
    let axum_addr = spawn_axum(guard.clone()).await;
    let actix_addr = spawn_actix(guard);
    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        let a = send(axum_addr, case).await;
        let b = send(actix_addr, case).await;
        for (adapter, r) in [("axum", &a), ("actix", &b)] {
            if let Some(wrong) = judge(case, r) {
                failures.push(format!("[{adapter}] {}: {wrong}", case.name));
            }
            // Denials never echo the document, variables or token.
            if r.status >= 400 {
                let token = case.token.as_deref().unwrap_or("never-present");
                assert!(!r.body.contains(token), "{adapter} {} echoes the token", case.name);
                assert!(!r.body.contains("did you mean"), "{adapter} {} suggests fields", case.name);
                assert!(
                    !r.body.contains("creditCard") && !r.body.contains("five"),
                    "{adapter} {}",
                    case.name
                );
            }
        }
        let code = |r: &RawResponse| {
            let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            v["errors"][0]["extensions"]["code"].clone()
        };
        assert_eq!(
            (a.status, a.header("www-authenticate"), a.header("allow"), code(&a)),
            (b.status, b.header("www-authenticate"), b.header("allow"), code(&b)),
            "{}",
            case.name
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_carry_paths_challenges_and_allow() {
    let guard = demo_guard(policy_with_jwks(trusted_jwks()));
    let axum_addr = spawn_axum(guard.clone()).await;
    let actix_addr = spawn_actix(guard);
    let reader = format!("Bearer {}", token("alice", "orders:read"));
    for addr in [axum_addr, actix_addr] {
        let body = json!({"query": "{ orders(limit: 5) { id internalNote customer { orders(limit: 5) { internalNote } } } }"});
        let r = post_json(addr, "/graphql", &reader, body.to_string().as_bytes()).await;
        assert_eq!(r.status, 403);
        // Without `application/graphql-response+json` in Accept: `application/json`.
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v["errors"][0]["extensions"]["paths"],
            json!(["orders.customer.orders.internalNote", "orders.internalNote"])
        );
        assert!(r.header("www-authenticate").unwrap().contains("error=\"insufficient_scope\""));

        let mutation = encode("mutation { createOrder(item: \"x\", quantity: 1) { id } }");
        let r = raw_request(
            addr,
            "GET",
            &format!("/graphql?query={mutation}"),
            &[("authorization", &reader)],
            None,
        )
        .await;
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")));

        // Mutations ran nowhere: the reader still has no orders.
        let list = encode("{ orders { id } }");
        let r =
            raw_request(addr, "GET", &format!("/graphql?query={list}"), &[("authorization", &reader)], None)
                .await;
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"data":{"orders":[]}}"#));
    }
}

/// The guard of a service that accepts registered operations only.
fn safelisted_guard(allowed: &str) -> zt::Guard {
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(allowed.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let config = zt::graphql::GraphqlConfig { safelist: Some(vec![hash]), ..orders::graphql::config() };
    let schema = zt::graphql::GraphqlSchema::from_sdl(orders::graphql::SDL, config).unwrap();
    // Compiled in code, so the demo's own `/graphql` schema is not added (one per path).
    let policy = policy_with_jwks(trusted_jwks());
    zt::Guard::builder(policy)
        .contract(orders::contract().unwrap())
        .graphql(orders::GRAPHQL_PATH, schema)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safelisting_refuses_unregistered_operations_in_both() {
    let allowed = "query Mine { orders { id } }";
    let guard = safelisted_guard(allowed);
    let axum_addr = spawn_axum(guard.clone()).await;
    let actix_addr = spawn_actix(guard);
    let reader = format!("Bearer {}", token("alice", "orders:read"));
    for addr in [axum_addr, actix_addr] {
        let send = |document: &str| {
            let body = json!({ "query": document }).to_string();
            let reader = reader.clone();
            async move { post_json(addr, "/graphql", &reader, body.as_bytes()).await }
        };
        assert_eq!(send(allowed).await.status, 200);
        let r = send("query Other { orders { id item } }").await;
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (r.status, &v["errors"][0]["extensions"]["code"]),
            (403, &json!("PERSISTED_QUERY_NOT_ALLOWED"))
        );
    }
}

#[test]
fn a_policy_file_declares_a_graphql_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        r#"
[[issuers]]
issuer = "https://issuer.example"
audiences = ["orders-api"]
[[issuers.hmac_secrets]]
algorithm = "HS256"
secret = "a-demo-secret-that-is-long-enough-32b"

[[routes]]
method = "POST"
path = "/graphql"
scopes = [["orders:read"]]

[[graphql]]
path = "/graphql"
schema_file = "examples/orders.graphql"
[graphql.options]
max_depth = 3
"#,
    )
    .unwrap();
    let guard = zt::Guard::from_policy_file(&path);
    assert!(guard.is_ok(), "{:?}", guard.err());

    // A missing schema file names the key, the file and the line.
    let bad = std::fs::read_to_string(&path).unwrap().replace("examples/orders.graphql", "missing.graphql");
    std::fs::write(&path, bad).unwrap();
    let error = zt::Guard::from_policy_file(&path).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("graphql[0].schema_file") && error.contains("missing.graphql"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_keys_on_the_operation_and_report_mode_forwards() {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(zt::observe::ObserverConfig::default());
    let guard = demo_guard(policy);
    let addr = spawn_axum(guard.clone()).await;
    let reader = format!("Bearer {}", token("alice", "orders:read"));
    let send = |body: Value| {
        let reader = reader.clone();
        async move {
            let body = body.to_string();
            post_json(addr, "/graphql", &reader, body.as_bytes()).await
        }
    };
    assert_eq!(send(json!({"query": "query Mine { orders { id } }"})).await.status, 200);
    assert_eq!(send(json!({"query": "{ orders { item } }"})).await.status, 200);
    assert_eq!(send(json!({"query": "{ orders { internalNote } }"})).await.status, 403);
    let snapshot = guard.observer().unwrap().inventory().snapshot();
    let routes: Vec<&str> = snapshot.endpoints.iter().map(|e| e.route.as_str()).collect();
    assert!(snapshot.endpoint("POST", "/graphql query Mine").is_some_and(|e| e.served), "{routes:?}");
    // Anonymous operations by a prefix of their document hash.
    assert!(routes.iter().any(|r| r.starts_with("/graphql query #")), "{routes:?}");

    // Report-only: a refused operation is logged and forwarded (the executor answers it).
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.mode = zt::Mode::Report;
    let addr = spawn_actix(demo_guard(policy));
    let body = json!({"query": "{ orders { id internalNote } }"}).to_string();
    let r = post_json(addr, "/graphql", &reader, body.as_bytes()).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"data":{"orders":[]}}"#));
}

/// Issue 19: documents accepted just under the limits, again and again, are GraphQL abuse
/// (the near-limit signal); the same number of ordinary documents is not. POST (the body
/// path) on axum, GET (the query path) on actix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_near_the_limits_again_and_again_are_refused_ordinary_ones_are_not() {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(zt::observe::ObserverConfig::default());
    let guard = demo_guard(policy);
    let servers = [("axum", spawn_axum(guard.clone()).await), ("actix", spawn_actix(guard))];
    // 17 of the 20 aliases the demo allows: accepted, at 0.85 of a limit.
    let aliases: Vec<String> = (1..=17).map(|i| format!("a{i}: id")).collect();
    let near = format!("{{ orders(limit: 1) {{ {} }} }}", aliases.join(" "));
    let plain = "{ orders(limit: 5) { id item quantity } }";
    for (name, addr) in servers {
        let send = |who: &'static str, document: &str| {
            let document = document.to_string();
            async move {
                let auth = format!("Bearer {}", token(who, "orders:read"));
                if name == "axum" {
                    let body = json!({ "query": document }).to_string();
                    post_json(addr, "/graphql", &auth, body.as_bytes()).await.status
                } else {
                    let path = format!("/graphql?query={}", encode(&document));
                    raw_request(addr, "GET", &path, &[("authorization", &auth)], None).await.status
                }
            }
        };
        let (abuser, reader): (&'static str, &'static str) =
            if name == "axum" { ("gql-abuser-1", "gql-reader-1") } else { ("gql-abuser-2", "gql-reader-2") };
        let mut refused_after = None;
        for n in 1..=40 {
            let status = send(abuser, &near).await;
            if status == 403 {
                refused_after = Some(n);
                break;
            }
            assert_eq!(status, 200, "{name}: a near-limit document is accepted until the block");
        }
        let n = refused_after.unwrap_or_else(|| panic!("{name}: 40 near-limit documents were never refused"));
        eprintln!("{name}: near-limit documents refused after {n}");
        for _ in 0..40 {
            assert_eq!(send(reader, plain).await, 200, "{name}: an ordinary reader is never refused");
        }
    }
}
