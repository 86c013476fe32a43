//! Remote key sets against a JWKS server on 127.0.0.1: single-flight first fetch, rotation,
//! unknown-kid refetch limiting, outages (last good set kept, fail closed without one),
//! Cache-Control handling, OIDC discovery, and a custom fetcher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, Header};
use support::*;
use zt::keys::{FetchError, FetchedDocument, KeyFetcher};
use zt::policy::{IssuerConfig, Policy, RemoteKeysConfig};
use zt::request::HeaderList;
use zt::{Decision, Guard, Reason, RequestView, RouteTable};

#[derive(Default)]
struct Jwks {
    document: Mutex<String>,
    hits: AtomicUsize,
    failures: AtomicUsize,
    fail: AtomicBool,
    max_age: AtomicU64,
    discovery_issuer: Mutex<Option<String>>,
    base: Mutex<String>,
}

async fn serve_jwks(State(s): State<Arc<Jwks>>) -> Response {
    if s.fail.load(Ordering::SeqCst) {
        s.failures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    s.hits.fetch_add(1, Ordering::SeqCst);
    let body = s.document.lock().expect("lock").clone();
    let cache = format!("max-age={}", s.max_age.load(Ordering::SeqCst));
    ([("content-type", "application/json".to_string()), ("cache-control", cache)], body).into_response()
}

async fn serve_discovery(State(s): State<Arc<Jwks>>) -> Response {
    let base = s.base.lock().expect("lock").clone();
    let issuer = s.discovery_issuer.lock().expect("lock").clone().unwrap_or_else(|| base.clone());
    axum::Json(serde_json::json!({"issuer": issuer, "jwks_uri": format!("{base}/jwks")})).into_response()
}

async fn jwks_server(document: String, max_age: u64) -> (Arc<Jwks>, String) {
    let state = Arc::new(Jwks { document: Mutex::new(document), ..Default::default() });
    state.max_age.store(max_age, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    *state.base.lock().expect("lock") = base.clone();
    let app = axum::Router::new()
        .route("/jwks", axum::routing::get(serve_jwks))
        .route("/.well-known/openid-configuration", axum::routing::get(serve_discovery))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, base)
}

fn remote(floor_ms: u64, unknown_kid_ms: u64) -> RemoteKeysConfig {
    RemoteKeysConfig {
        refresh_floor: Duration::from_millis(floor_ms),
        unknown_kid_refetch_interval: Duration::from_millis(unknown_kid_ms),
        ..Default::default()
    }
}

fn guard(issuer: IssuerConfig, remote: RemoteKeysConfig) -> Guard {
    let mut routes = RouteTable::new();
    routes.add("GET", "/orders", zt::scopes::authenticated()).expect("route");
    Guard::new(Policy::builder().issuer(issuer).remote_keys(remote).build())
        .expect("guard")
        .with_routes(&routes)
        .expect("routes")
}

async fn check(guard: &Guard, token: &str) -> Result<String, Reason> {
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let view = RequestView {
        method: "GET",
        path: "/orders",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: None,
        body: zt::BodyHint::Empty,
    };
    match guard.decide(&view).await {
        Decision::Admitted(a) => match a.identity().cloned() {
            Some(id) => Ok(id.subject().unwrap_or_default().to_string()),
            None => Err(Reason::MissingCredentials),
        },
        Decision::Rejected(r) => Err(r.reason()),
    }
}

fn token_with_kid(kid: &str) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &claims("mallory", "x"), &key(Algorithm::ES256).encoding).expect("sign")
}

/// Waits (bounded) until `f` holds; a liveness helper, not a timing assertion.
async fn eventually(f: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_fetches_once_for_many_concurrent_requests() {
    let (server, base) = jwks_server(trusted_jwks(), 300).await;
    let guard = guard(
        IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(format!("{base}/jwks")),
        remote(30_000, 30_000),
    );
    let mut tasks = Vec::new();
    for i in 0..24 {
        let guard = guard.clone();
        let token = sign(key(Algorithm::ES256), &claims(&format!("user{i}"), "x"));
        tasks.push(tokio::spawn(async move { check(&guard, &token).await }));
    }
    for task in tasks {
        assert!(task.await.expect("join").is_ok());
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "one fetch for all concurrent first requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_adds_new_keys_and_drops_removed_ones_even_for_cached_tokens() {
    let old = key(Algorithm::RS256);
    let new = rotated_rsa();
    let (server, base) = jwks_server(jwks(&[old]), 300).await;
    let guard = guard(
        IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(format!("{base}/jwks")),
        remote(30_000, 100),
    );
    let old_token = sign(old, &claims("alice", "x"));
    assert_eq!(check(&guard, &old_token).await, Ok("alice".into()));
    assert_eq!(guard.cached_tokens(), 1);

    // The issuer rotates: only the new key is published.
    *server.document.lock().expect("lock") = jwks(&[new]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let new_token = sign(new, &claims("bob", "x"));
    assert_eq!(check(&guard, &new_token).await, Ok("bob".into()), "unknown kid triggers a refetch");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    // The old token is cached, but its key is gone: it no longer verifies.
    assert_eq!(check(&guard, &old_token).await, Err(Reason::UnknownKey));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_kids_cause_at_most_one_refetch_per_interval() {
    let (server, base) = jwks_server(trusted_jwks(), 300).await;
    let guard = guard(
        IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(format!("{base}/jwks")),
        remote(30_000, 400),
    );
    assert!(check(&guard, &token("alice", "x")).await.is_ok());
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // Within the interval: no refetch at all, however many forged kids arrive.
    for i in 0..30 {
        assert_eq!(check(&guard, &token_with_kid(&format!("forged-{i}"))).await, Err(Reason::UnknownKey));
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // After it: one refetch, shared by a concurrent burst.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let guard = guard.clone();
        let t = token_with_kid(&format!("burst-{i}"));
        tasks.push(tokio::spawn(async move { check(&guard, &t).await }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join"), Err(Reason::UnknownKey));
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    // Genuine tokens were never affected.
    assert!(check(&guard, &token("alice", "x")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_last_good_set_and_recovers() {
    // max-age 0 is raised to the 100 ms floor: the set goes stale quickly.
    let (server, base) = jwks_server(trusted_jwks(), 0).await;
    let guard = guard(
        IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(format!("{base}/jwks")),
        remote(100, 100),
    );
    assert!(check(&guard, &token("alice", "x")).await.is_ok());
    server.fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Stale set + failing endpoint: a background refresh is tried, the last good set serves.
    for i in 0..5 {
        assert!(check(&guard, &sign(key(Algorithm::ES256), &claims(&format!("u{i}"), "x"))).await.is_ok());
    }
    assert!(eventually(|| server.failures.load(Ordering::SeqCst) >= 1).await, "a refresh was attempted");
    // The endpoint comes back: the next refresh succeeds.
    server.fail.store(false, Ordering::SeqCst);
    let hits = server.hits.load(Ordering::SeqCst);
    let g = guard.clone();
    let mut recovered = false;
    for i in 0..100 {
        let _ = check(&g, &sign(key(Algorithm::ES256), &claims(&format!("r{i}"), "x"))).await;
        if server.hits.load(Ordering::SeqCst) > hits {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "refresh resumes when the endpoint returns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_fetched_and_down_fails_closed_without_a_fetch_storm() {
    let (server, base) = jwks_server(trusted_jwks(), 300).await;
    server.fail.store(true, Ordering::SeqCst);
    let guard = guard(
        IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(format!("{base}/jwks")),
        remote(30_000, 30_000),
    );
    let t = token("alice", "x");
    // The first request tries (and fails): keys unavailable, 503.
    let first = check(&guard, &t).await;
    assert!(matches!(first, Err(Reason::KeysUnavailable) | Err(Reason::UnknownKey)), "{first:?}");
    for _ in 0..20 {
        assert_eq!(check(&guard, &t).await, Err(Reason::KeysUnavailable));
    }
    assert_eq!(server.failures.load(Ordering::SeqCst), 1, "no retry before the interval");
    assert_eq!(Reason::KeysUnavailable.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_max_age_is_honoured_within_floor_and_ceiling() {
    // A long max-age: no refresh while requests keep coming.
    let (long, base) = jwks_server(trusted_jwks(), 3600).await;
    let g = guard(
        IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(format!("{base}/jwks")),
        remote(50, 30_000),
    );
    for i in 0..5 {
        assert!(check(&g, &sign(key(Algorithm::ES256), &claims(&format!("a{i}"), "x"))).await.is_ok());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(long.hits.load(Ordering::SeqCst), 1);

    // max-age 0 is raised to the 50 ms floor, and the set is refreshed in the background.
    let (short, base) = jwks_server(trusted_jwks(), 0).await;
    let g = guard(
        IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(format!("{base}/jwks")),
        remote(50, 30_000),
    );
    assert!(check(&g, &token("alice", "x")).await.is_ok());
    let g2 = g.clone();
    let mut refreshed = false;
    for i in 0..100 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let _ = check(&g2, &sign(key(Algorithm::ES256), &claims(&format!("b{i}"), "x"))).await;
        if short.hits.load(Ordering::SeqCst) >= 2 {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_discovery_finds_the_jwks_and_checks_the_issuer() {
    let (server, base) = jwks_server(trusted_jwks(), 300).await;
    let g = guard(IssuerConfig::new(&base).audience(AUDIENCE).oidc_discovery(), remote(30_000, 30_000));
    let mut c = claims("dora", "x");
    c["iss"] = serde_json::json!(base);
    let t = sign(key(Algorithm::EdDSA), &c);
    assert_eq!(check(&g, &t).await, Ok("dora".into()));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // A discovery document naming another issuer is refused: fail closed.
    let (evil, base2) = jwks_server(trusted_jwks(), 300).await;
    *evil.discovery_issuer.lock().expect("lock") = Some("https://someone-else.test".into());
    let g = guard(IssuerConfig::new(&base2).audience(AUDIENCE).oidc_discovery(), remote(30_000, 30_000));
    let mut c = claims("dora", "x");
    c["iss"] = serde_json::json!(base2);
    let first = check(&g, &sign(key(Algorithm::EdDSA), &c)).await;
    assert!(matches!(first, Err(Reason::KeysUnavailable) | Err(Reason::UnknownKey)), "{first:?}");
    assert_eq!(evil.hits.load(Ordering::SeqCst), 0);
}

struct InMemoryFetcher {
    calls: AtomicUsize,
}

impl KeyFetcher for InMemoryFetcher {
    fn fetch<'a>(
        &'a self,
        url: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<FetchedDocument, FetchError>> + Send + 'a>>
    {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if url != "https://keys.internal/jwks" {
                return Err(FetchError("unexpected url".into()));
            }
            Ok(FetchedDocument { body: trusted_jwks().into_bytes(), max_age: None })
        })
    }
}

#[tokio::test]
async fn a_custom_fetcher_is_used_for_remote_keys() {
    let fetcher = Arc::new(InMemoryFetcher { calls: AtomicUsize::new(0) });
    let policy = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url("https://keys.internal/jwks"))
        .route("GET", "/orders", zt::scopes::authenticated())
        .build();
    let g = Guard::builder(policy).key_fetcher(fetcher.clone()).build().expect("guard");
    assert!(g.warm_up().await.is_empty());
    assert_eq!(check(&g, &token("alice", "x")).await, Ok("alice".into()));
    assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
}
