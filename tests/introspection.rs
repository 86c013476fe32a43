//! Opaque-token introspection (RFC 7662) against an introspection server the test starts on
//! 127.0.0.1: active and inactive tokens on both adapters, expired and foreign answers,
//! scopes evaluated per route from cached facts, scope changes after the cache expires,
//! client authentication (basic, post, private_key_jwt) checked by the server, an endpoint
//! that is down or slow (fail closed), single flight, a flood of distinct bogus tokens
//! (calls in flight stay bounded), RFC 9701 signed answers, DPoP-bound opaque tokens, and
//! the WARN events and metrics of each outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use support::*;
use zt::introspect::{ClientAuth, IntrospectionConfig, IntrospectionFailMode};

const CLIENT_ID: &str = "orders-api";
const SECRET: &str = "introspection-secret";
const JWT_ANSWER: &str = "application/token-introspection+jwt";

/// How the server expects the resource server to authenticate.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Basic,
    Post,
    Jwt,
}

/// The test's authorization server: answers by token, counts calls and calls in flight.
struct Server {
    answers: Mutex<HashMap<String, Value>>,
    expect: Expect,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay_ms: AtomicU64,
    rejected_auth: AtomicUsize,
    /// How RFC 9701 answers are signed, when asked for: the key and the `aud`.
    jwt: Mutex<Option<(&'static TestKey, String)>>,
}

impl Server {
    fn new(expect: Expect) -> Arc<Server> {
        Arc::new(Server {
            answers: Mutex::new(HashMap::new()),
            expect,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            delay_ms: AtomicU64::new(0),
            rejected_auth: AtomicUsize::new(0),
            jwt: Mutex::new(None),
        })
    }

    fn answer(&self, token: &str, answer: Value) {
        self.answers.lock().unwrap().insert(token.to_string(), answer);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Checks the client's credentials as RFC 7662 s.2.1 requires.
    fn authenticated(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
        match self.expect {
            Expect::Basic => {
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"))
                );
                headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
                    && !form.contains_key("client_secret")
            }
            Expect::Post => {
                headers.get("authorization").is_none()
                    && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                    && form.get("client_secret").map(String::as_str) == Some(SECRET)
            }
            Expect::Jwt => {
                let pem = std::fs::read(format!("{}/tests/keys/ec256.pub.pem", env!("CARGO_MANIFEST_DIR")))
                    .expect("public key");
                let key = jsonwebtoken::DecodingKey::from_ec_pem(&pem).expect("ec key");
                let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
                validation.set_audience(&[form.get("endpoint").cloned().unwrap_or_default()]);
                validation.set_issuer(&[CLIENT_ID]);
                validation.sub = Some(CLIENT_ID.into());
                let assertion_type = form.get("client_assertion_type").map(String::as_str);
                let Some(assertion) = form.get("client_assertion") else { return false };
                assertion_type == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    && jsonwebtoken::decode::<Value>(assertion, &key, &validation)
                        .is_ok_and(|data| data.claims.get("jti").is_some())
            }
        }
    }
}

async fn introspect(
    State((server, endpoint)): State<(Arc<Server>, Arc<Mutex<String>>)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let in_flight = server.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    server.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
    server.calls.fetch_add(1, Ordering::SeqCst);
    let delay = server.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    server.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    form.insert("endpoint".into(), endpoint.lock().unwrap().clone());
    let is_form = headers.get("content-type").and_then(|v| v.to_str().ok())
        == Some("application/x-www-form-urlencoded");
    if !is_form || !server.authenticated(&headers, &form) {
        server.rejected_auth.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = server.answers.lock().unwrap().get(&token).cloned().unwrap_or(json!({"active": false}));
    let wants_jwt = headers.get("accept").and_then(|v| v.to_str().ok()) == Some(JWT_ANSWER);
    let signer = server.jwt.lock().unwrap().clone();
    match signer {
        Some((key, aud)) if wants_jwt => {
            let header = json!({"alg": "ES256", "kid": key.kid, "typ": "token-introspection+jwt"});
            let claims = json!({"iss": ISSUER, "aud": aud, "iat": now(), "token_introspection": answer});
            ([("content-type", JWT_ANSWER)], sign_raw(key, &header, &claims)).into_response()
        }
        _ => axum::Json(answer).into_response(),
    }
}

/// Starts the introspection server; returns its endpoint URL.
async fn spawn_server(server: Arc<Server>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/introspect", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/introspect", axum::routing::post(introspect))
        .with_state((server, Arc::new(Mutex::new(endpoint.clone()))));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    endpoint
}

/// An active answer for `sub` with `scope`, valid for an hour.
fn active(sub: &str, scope: &str) -> Value {
    json!({
        "active": true, "sub": sub, "scope": scope, "client_id": "mobile-app",
        "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600, "token_type": "Bearer"
    })
}

fn config(endpoint: &str, expect: Expect) -> IntrospectionConfig {
    let config = IntrospectionConfig::new(endpoint, CLIENT_ID);
    match expect {
        Expect::Basic => config.client_secret(SECRET),
        Expect::Post => config.client_secret(SECRET).auth(ClientAuth::ClientSecretPost),
        Expect::Jwt => IntrospectionConfig {
            private_key_file: Some(format!("{}/tests/keys/ec256.pem", env!("CARGO_MANIFEST_DIR"))),
            private_key_alg: Some("ES256".into()),
            ..config.auth(ClientAuth::PrivateKeyJwt)
        },
    }
}

/// The demo guard: the test issuer with its JWKS (JWTs still verify locally) and
/// introspection for opaque tokens.
fn guard(introspection: IntrospectionConfig) -> zt::Guard {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.issuers[0].introspection = Some(introspection);
    demo_guard(policy)
}

async fn call(addr: SocketAddr, method: &str, path: &str, token: &str) -> RawResponse {
    raw_request(addr, method, path, &[("authorization", &format!("Bearer {token}"))], None).await
}

fn problem(response: &RawResponse) -> String {
    response.problem_type().unwrap_or_default()
}

#[tokio::test]
async fn active_and_inactive_tokens_on_both_adapters() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-alice", active("alice", "orders:read"));
    server.answer("opaque-revoked", json!({"active": false}));
    let guard = guard(config(&endpoint, Expect::Basic));
    let axum_addr = spawn_axum(guard.clone()).await;
    let actix_addr = spawn_actix(guard);
    for addr in [axum_addr, actix_addr] {
        let ok = call(addr, "GET", "/orders", "opaque-alice").await;
        assert_eq!(ok.status, 200, "{ok:?}");
        let inactive = call(addr, "GET", "/orders", "opaque-revoked").await;
        assert_eq!(inactive.status, 401, "{inactive:?}");
        assert_eq!(problem(&inactive), "urn:zt:problem:token-inactive");
        let challenge = inactive.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        // The cached facts carry no decision: the next route's scopes are evaluated again.
        let admin = call(addr, "DELETE", "/orders/1", "opaque-alice").await;
        assert_eq!(admin.status, 403, "{admin:?}");
        assert_eq!(problem(&admin), "urn:zt:problem:insufficient-scope");
        // An unknown token is inactive too (the server's default answer).
        let unknown = call(addr, "GET", "/orders", "never-issued").await;
        assert_eq!(unknown.status, 401);
        assert_eq!(problem(&unknown), "urn:zt:problem:token-inactive");
    }
    // Both adapters share the guard and so its cache: three distinct tokens, three calls.
    assert_eq!(server.calls(), 3);
    assert_eq!(server.rejected_auth.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn second_call_is_a_cache_hit_and_jwts_are_not_introspected() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-bob", active("bob", "orders:read orders:write"));
    let addr = spawn_axum(guard(config(&endpoint, Expect::Basic))).await;
    assert_eq!(call(addr, "GET", "/orders", "opaque-bob").await.status, 200);
    assert_eq!(call(addr, "GET", "/orders", "opaque-bob").await.status, 200);
    assert_eq!(server.calls(), 1, "answers are reused");
    // Inactive answers are cached too (for inactive_ttl).
    assert_eq!(call(addr, "GET", "/orders", "opaque-nobody").await.status, 401);
    assert_eq!(call(addr, "GET", "/orders", "opaque-nobody").await.status, 401);
    assert_eq!(server.calls(), 2);
    // A JWT of the issuer is verified with its keys, never sent to the endpoint.
    let jwt = token("carol", "orders:read");
    assert_eq!(call(addr, "GET", "/orders", &jwt).await.status, 200);
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_token_share_one_call() {
    let server = Server::new(Expect::Basic);
    server.delay_ms.store(300, Ordering::SeqCst);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-shared", active("dave", "orders:read"));
    let addr = spawn_axum(guard(config(&endpoint, Expect::Basic))).await;
    let requests =
        (0..20).map(|_| tokio::spawn(async move { call(addr, "GET", "/orders", "opaque-shared").await }));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.unwrap().status, 200);
    }
    assert_eq!(server.calls(), 1, "single flight per token");
}

#[tokio::test]
async fn expired_foreign_and_misdirected_answers_are_refused() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    let mut expired = active("erin", "orders:read");
    expired["exp"] = json!(now() - 3600);
    server.answer("opaque-expired", expired);
    let mut other_audience = active("erin", "orders:read");
    other_audience["aud"] = json!("billing-api");
    server.answer("opaque-billing", other_audience);
    let mut no_audience = active("erin", "orders:read");
    no_audience.as_object_mut().unwrap().remove("aud");
    server.answer("opaque-no-aud", no_audience);
    let mut foreign = active("erin", "orders:read");
    foreign["iss"] = json!("https://elsewhere.test");
    server.answer("opaque-foreign", foreign);
    let mut future = active("erin", "orders:read");
    future["nbf"] = json!(now() + 3600);
    server.answer("opaque-future", future);
    server.answer("opaque-nobody", json!({"active": true, "scope": "orders:read", "aud": AUDIENCE}));
    server.answer("opaque-weird", json!({"active": "yes", "sub": "erin"}));
    let addr = spawn_axum(guard(config(&endpoint, Expect::Basic))).await;
    for (token, status, slug) in [
        ("opaque-expired", 401, "token-expired"),
        ("opaque-billing", 401, "wrong-audience"),
        ("opaque-no-aud", 401, "wrong-audience"),
        ("opaque-foreign", 401, "untrusted-issuer"),
        ("opaque-future", 401, "token-not-yet-valid"),
        // No `sub`, `client_id` or `azp`: no caller to key quotas and blocks on.
        ("opaque-nobody", 401, "invalid-claims"),
        // Not RFC 7662: no answer, fail closed.
        ("opaque-weird", 503, "introspection-unavailable"),
    ] {
        let response = call(addr, "GET", "/orders", token).await;
        assert_eq!(
            (response.status, problem(&response)),
            (status, format!("urn:zt:problem:{slug}")),
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_scope_change_applies_once_the_cached_answer_expires() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-frank", active("frank", "orders:read"));
    let introspection =
        IntrospectionConfig { cache_max: Duration::from_millis(200), ..config(&endpoint, Expect::Basic) };
    let addr = spawn_axum(guard(introspection)).await;
    assert_eq!(call(addr, "DELETE", "/orders/1", "opaque-frank").await.status, 403);
    server.answer("opaque-frank", active("frank", "orders:read orders:admin"));
    // Only a lower bound on time: past cache_max the entry is never reused.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let admin = call(addr, "DELETE", "/orders/1", "opaque-frank").await;
    assert_ne!(admin.status, 403, "{admin:?}");
    assert_eq!(server.calls(), 2);
    // And back: the scope is withdrawn; after expiry the route refuses again.
    server.answer("opaque-frank", active("frank", "orders:read"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(call(addr, "DELETE", "/orders/1", "opaque-frank").await.status, 403);
}

#[tokio::test]
async fn client_authentication_basic_post_and_private_key_jwt() {
    for expect in [Expect::Basic, Expect::Post, Expect::Jwt] {
        let server = Server::new(expect);
        let endpoint = spawn_server(server.clone()).await;
        server.answer("opaque-grace", active("grace", "orders:read"));
        let addr = spawn_axum(guard(config(&endpoint, expect))).await;
        let response = call(addr, "GET", "/orders", "opaque-grace").await;
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(server.rejected_auth.load(Ordering::SeqCst), 0);
    }
    // The wrong secret: the server refuses the client, and zt fails closed.
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-grace", active("grace", "orders:read"));
    let addr = spawn_axum(guard(IntrospectionConfig::new(&endpoint, CLIENT_ID).client_secret("wrong"))).await;
    let response = call(addr, "GET", "/orders", "opaque-grace").await;
    assert_eq!(response.status, 503);
    assert_eq!(problem(&response), "urn:zt:problem:introspection-unavailable");
    assert_eq!(server.rejected_auth.load(Ordering::SeqCst), 1);
    assert!(!response.body.contains("wrong"), "the secret never reaches a response");
}

#[tokio::test]
async fn endpoint_down_fails_closed_with_retry_after() {
    // A port nothing listens on.
    let endpoint = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/introspect", listener.local_addr().unwrap())
    };
    let closed = guard(config(&endpoint, Expect::Basic));
    for addr in [spawn_axum(closed.clone()).await, spawn_actix(closed)] {
        let response = call(addr, "GET", "/orders", "opaque-anyone").await;
        assert_eq!(response.status, 503, "{response:?}");
        assert_eq!(problem(&response), "urn:zt:problem:introspection-unavailable");
        assert!(response.header("retry-after").is_some());
        // A failure is never cached as an answer, nor as a decision: the next request tries again.
        assert_eq!(call(addr, "GET", "/orders", "opaque-anyone").await.status, 503);
    }
    // fail_mode = invalid_token: a 401 the client recovers from with a new token.
    let introspection = IntrospectionConfig {
        fail_mode: IntrospectionFailMode::InvalidToken,
        ..config(&endpoint, Expect::Basic)
    };
    let addr = spawn_axum(guard(introspection)).await;
    let response = call(addr, "GET", "/orders", "opaque-anyone").await;
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response), "urn:zt:problem:token-inactive");
}

#[tokio::test]
async fn a_slow_endpoint_times_out_and_fails_closed() {
    let server = Server::new(Expect::Basic);
    server.delay_ms.store(30_000, Ordering::SeqCst);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-slow", active("heidi", "orders:read"));
    let introspection =
        IntrospectionConfig { timeout: Duration::from_millis(200), ..config(&endpoint, Expect::Basic) };
    let addr = spawn_axum(guard(introspection)).await;
    let response = call(addr, "GET", "/orders", "opaque-slow").await;
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(problem(&response), "urn:zt:problem:introspection-unavailable");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a_flood_of_distinct_bogus_tokens_keeps_calls_in_flight_bounded() {
    let server = Server::new(Expect::Basic);
    server.delay_ms.store(200, Ordering::SeqCst);
    let endpoint = spawn_server(server.clone()).await;
    let introspection = IntrospectionConfig { max_concurrent: 4, ..config(&endpoint, Expect::Basic) };
    let addr = spawn_axum(guard(introspection)).await;
    let requests = (0..200)
        .map(|i| tokio::spawn(async move { call(addr, "GET", "/orders", &format!("bogus-{i:03}")).await }));
    for response in futures_util::future::join_all(requests).await {
        let response = response.unwrap();
        // Inactive when the call was made; unavailable when four were already in flight.
        assert!(
            matches!(
                (response.status, problem(&response).as_str()),
                (401, "urn:zt:problem:token-inactive") | (503, "urn:zt:problem:introspection-unavailable")
            ),
            "{response:?}"
        );
    }
    let max = server.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=4).contains(&max), "at most max_concurrent calls in flight, saw {max}");
    assert!(server.calls() <= 200);
}

#[tokio::test]
async fn opaque_only_issuers_introspect_their_jwts_too() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    let jwt = token("ivan", "orders:read");
    // The issuer says this JWT is no longer active, though its signature still verifies.
    server.answer(&jwt, json!({"active": false}));
    let introspection = IntrospectionConfig { opaque_only: true, ..config(&endpoint, Expect::Basic) };
    let addr = spawn_axum(guard(introspection)).await;
    let response = call(addr, "GET", "/orders", &jwt).await;
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response), "urn:zt:problem:token-inactive");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a_dpop_bound_opaque_token_is_refused_as_bearer() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    let mut bound = active("judy", "orders:read");
    bound["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    server.answer("opaque-bound", bound);
    let addr = spawn_axum(guard(config(&endpoint, Expect::Basic))).await;
    let response = call(addr, "GET", "/orders", "opaque-bound").await;
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response), "urn:zt:problem:dpop-bound-token-as-bearer");
}

#[tokio::test]
async fn signed_jwt_answers_rfc9701_are_verified_with_the_issuers_keys() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-kim", active("kim", "orders:read"));
    server.answer("opaque-lost", json!({"active": false}));
    let introspection = IntrospectionConfig { jwt_response: true, ..config(&endpoint, Expect::Basic) };
    let guard = guard(introspection);
    let addr = spawn_axum(guard).await;
    // Signed by the issuer's key, for this client: accepted.
    *server.jwt.lock().unwrap() = Some((key(jsonwebtoken::Algorithm::ES256), CLIENT_ID.to_string()));
    assert_eq!(call(addr, "GET", "/orders", "opaque-kim").await.status, 200);
    assert_eq!(call(addr, "GET", "/orders", "opaque-lost").await.status, 401);
    for (signer, token) in [
        // Another key under the issuer's key id.
        (Some((attacker_ec(), CLIENT_ID.to_string())), "opaque-kim-1"),
        // Meant for another resource server.
        (Some((key(jsonwebtoken::Algorithm::ES256), "billing-api".to_string())), "opaque-kim-2"),
        // Plain JSON where a signed answer was asked for.
        (None, "opaque-kim-3"),
    ] {
        server.answer(token, active("kim", "orders:read"));
        *server.jwt.lock().unwrap() = signer;
        let response = call(addr, "GET", "/orders", token).await;
        assert_eq!(response.status, 503, "{token}: {response:?}");
        assert_eq!(problem(&response), "urn:zt:problem:introspection-unavailable");
    }
}

#[tokio::test]
async fn a_dpop_bound_opaque_token_with_its_proof_is_admitted() {
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    let client_key = attacker_ec();
    let thumbprint = zt::dpop::jwk_thumbprint(client_key.jwk.as_object().unwrap()).unwrap();
    let mut bound = active("judy", "orders:read");
    bound["cnf"] = json!({"jkt": thumbprint});
    server.answer("opaque-dpop", bound);
    let addr = spawn_axum(guard(config(&endpoint, Expect::Basic))).await;
    let proof = |key: &TestKey| {
        let mut jwk = key.jwk.clone();
        jwk.as_object_mut().unwrap().retain(|k, _| ["kty", "crv", "x", "y"].contains(&k.as_str()));
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let claims = json!({
            "jti": format!("{:x}", rand::random::<u128>()), "htm": "GET", "htu": "http://127.0.0.1/orders",
            "iat": now(), "ath": zt::dpop::access_token_hash("opaque-dpop"),
        });
        sign_raw(key, &header, &claims)
    };
    let with = |proof: String| async move {
        raw_request(addr, "GET", "/orders", &[("authorization", "DPoP opaque-dpop"), ("dpop", &proof)], None)
            .await
    };
    assert_eq!(with(proof(client_key)).await.status, 200);
    // A proof by another key than the one the answer's `cnf.jkt` names.
    let response = with(proof(key(jsonwebtoken::Algorithm::ES256))).await;
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(server.calls(), 1);
}

/// A writer into the process-wide captured log.
#[derive(Clone, Copy)]
struct Captured;

fn captured_log() -> &'static Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOG.get_or_init(Mutex::default)
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        captured_log().lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failures_log_a_warning_without_the_token_or_the_secret() {
    // Global: the guard's tasks may run anywhere. Every test of this file then logs here,
    // so the secret check below covers them all.
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt().with_writer(|| Captured).with_ansi(false).finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
    let endpoint = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/introspect", listener.local_addr().unwrap())
    };
    let addr = spawn_axum(guard(config(&endpoint, Expect::Basic))).await;
    let secret_token = "opaque-secret-token-value-123";
    assert_eq!(call(addr, "GET", "/orders", secret_token).await.status, 503);
    let log = String::from_utf8_lossy(&captured_log().lock().unwrap()).into_owned();
    let warned = log.lines().any(|line| {
        line.contains("WARN zt::introspection") && line.contains("unreachable") && line.contains(ISSUER)
    });
    assert!(warned, "{log}");
    assert!(!log.contains(secret_token), "the token is never logged: {log}");
    assert!(!log.contains(SECRET), "the client secret is never logged: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_and_cache_hit_is_counted() {
    // The process-wide recorder, scraped over loopback like a Prometheus server would.
    let metrics_addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    zt::observe::install_prometheus(metrics_addr).expect("the only recorder of this binary");
    let server = Server::new(Expect::Basic);
    let endpoint = spawn_server(server.clone()).await;
    server.answer("opaque-mia", active("mia", "orders:read"));
    let addr = spawn_axum(guard(config(&endpoint, Expect::Basic))).await;
    assert_eq!(call(addr, "GET", "/orders", "opaque-mia").await.status, 200);
    assert_eq!(call(addr, "GET", "/orders", "opaque-mia").await.status, 200);
    assert_eq!(call(addr, "GET", "/orders", "opaque-gone").await.status, 401);
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/introspect", listener.local_addr().unwrap())
    };
    let down_addr = spawn_axum(guard(config(&down, Expect::Basic))).await;
    assert_eq!(call(down_addr, "GET", "/orders", "opaque-mia").await.status, 503);
    let text = reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap().text().await.unwrap();
    for (name, outcome) in [
        ("zt_introspection_requests_total", Some("active")),
        ("zt_introspection_requests_total", Some("inactive")),
        ("zt_introspection_requests_total", Some("unreachable")),
        ("zt_introspection_cache_hits_total", None),
    ] {
        let counted = text.lines().any(|line| {
            line.starts_with(name)
                && outcome.is_none_or(|o| line.contains(&format!("outcome=\"{o}\"")))
                && line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v >= 1.0)
        });
        assert!(counted, "{name} {outcome:?} in:\n{text}");
    }
}

#[test]
fn building_refuses_insecure_or_ambiguous_introspection() {
    let build = |policy: zt::Policy| zt::Guard::new(policy).err().map(|e| e.to_string());
    // Plain http to a non-loopback host.
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.issuers[0].introspection =
        Some(IntrospectionConfig::new("http://as.example/introspect", CLIENT_ID).client_secret(SECRET));
    let error = build(policy).expect("refused");
    assert!(error.contains("introspection.endpoint"), "{error}");
    // A secret variable that is not set: named, never a value.
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.issuers[0].introspection = Some(
        IntrospectionConfig::new("https://as.example/introspect", CLIENT_ID)
            .client_secret_env("ZT_TEST_SECRET_THAT_IS_NOT_SET"),
    );
    let error = build(policy).expect("refused");
    assert!(error.contains("ZT_TEST_SECRET_THAT_IS_NOT_SET"), "{error}");
    // Two introspecting issuers: an opaque token would not say which one to ask.
    let mut policy = policy_with_jwks(trusted_jwks());
    let introspection =
        IntrospectionConfig::new("https://as.example/introspect", CLIENT_ID).client_secret(SECRET);
    policy.issuers[0].introspection = Some(introspection.clone());
    policy.issuers.push(
        zt::policy::IssuerConfig::new("https://second.test").audience(AUDIENCE).introspection(introspection),
    );
    let error = build(policy).expect("refused");
    assert!(error.contains("only one issuer"), "{error}");
    // An issuer that only introspects needs no keys.
    let policy = zt::Policy::builder()
        .issuer(zt::policy::IssuerConfig::new(ISSUER).audience(AUDIENCE).introspection(
            IntrospectionConfig::new("https://as.example/introspect", CLIENT_ID).client_secret(SECRET),
        ))
        .build();
    assert_eq!(build(policy), None);
    // Unless its answers are JWTs, which the issuer's keys must verify.
    let policy = zt::Policy::builder()
        .issuer(zt::policy::IssuerConfig::new(ISSUER).audience(AUDIENCE).introspection(IntrospectionConfig {
            jwt_response: true,
            ..IntrospectionConfig::new("https://as.example/introspect", CLIENT_ID).client_secret(SECRET)
        }))
        .build();
    let error = build(policy).expect("refused");
    assert!(error.contains("key source"), "{error}");
}
