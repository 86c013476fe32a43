#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Dynamic credentials end to end over loopback HTTP: service A issues tokens (JWK set and
//! token exchange served by both adapters); service B is a Guard that knows only A's JWKS
//! URL and its own audience.

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use serde_json::Value;
use support::*;
use zt::issuer::{TokenIssuer, TokenIssuerConfig, TokenRequest};
use zt::policy::{IssuerConfig, Policy};
use zt::request::HeaderList;
use zt::{Decision, Guard, Identity, Reason, RequestView, RouteTable, scopes};

const A_ISSUER: &str = "https://service-a.test";
const FORM: &str = "application/x-www-form-urlencoded";
const GRANT: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";

/// A's guard: callers bring tokens from the test issuer, for the orders API.
fn guard_a() -> Guard {
    Guard::new(
        Policy::builder()
            .realm(AUDIENCE)
            .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks()))
            .build(),
    )
    .expect("guard A")
}

fn issuer_a() -> TokenIssuer {
    TokenIssuer::new(TokenIssuerConfig::new(A_ISSUER).audience("service-b")).expect("issuer A")
}

async fn spawn_axum_a(issuer: TokenIssuer) -> SocketAddr {
    use zt::axum::issuer::{exchange_handler, jwks_handler};
    use zt::axum::routing::{get, post};
    let app = zt::axum::Router::new(guard_a())
        .route("/.well-known/jwks.json", get(jwks_handler(issuer.clone())), scopes::public())
        .route("/token", post(exchange_handler(issuer)), scopes::authenticated())
        .into_axum();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

fn spawn_actix_a(issuer: TokenIssuer) -> SocketAddr {
    use zt::actix::issuer::{exchange, jwks};
    use zt::actix::{get, post};
    let routes = zt::actix::Router::new(guard_a())
        .route("/.well-known/jwks.json", get(jwks(issuer.clone())), scopes::public())
        .route("/token", post(exchange(issuer)), scopes::authenticated())
        .finish()
        .expect("routes");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web::App::new().service(routes.service()))
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run();
            let _ = server.await;
        });
    });
    addr
}

/// Service B: trusts A through A's JWKS URL (http to loopback is allowed), audience
/// "service-b"; reading orders needs `orders:read`, writing `orders:write`.
fn guard_b(jwks_url: String) -> Guard {
    let mut routes = RouteTable::new();
    routes.add("GET", "/orders", scopes::all(["orders:read"])).expect("route");
    routes.add("DELETE", "/orders", scopes::all(["orders:write"])).expect("route");
    Guard::new(
        Policy::builder()
            .issuer(
                IssuerConfig::new(A_ISSUER).audience("service-b").required_typ("at+jwt").jwks_url(jwks_url),
            )
            .build(),
    )
    .expect("guard B")
    .with_routes(&routes)
    .expect("routes B")
}

async fn at_b(guard: &Guard, method: &str, token: &str) -> Result<Identity, Reason> {
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let view = RequestView {
        method,
        path: "/orders",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: None,
        body: zt::BodyHint::Empty,
    };
    match guard.decide(&view).await {
        Decision::Admitted(a) => match a.identity().cloned() {
            Some(identity) => Ok(identity),
            None => Err(Reason::MissingCredentials),
        },
        Decision::Rejected(r) => Err(r.reason()),
    }
}

async fn exchange_at(addr: SocketAddr, token: Option<&str>, form: &str) -> RawResponse {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", FORM)];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer.as_str()));
    }
    raw_request(addr, "POST", "/token", &headers, Some(form.as_bytes())).await
}

fn json(response: &RawResponse) -> Value {
    serde_json::from_str(&response.body).unwrap_or_else(|_| panic!("JSON body: {response:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_minted_by_a_verifies_in_b_through_the_jwks_url() {
    let issuer = issuer_a();
    let a = spawn_axum_a(issuer.clone()).await;

    let jwks = raw_request(a, "GET", "/.well-known/jwks.json", &[], None).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=1800"));
    assert_eq!(json(&jwks)["keys"].as_array().map(Vec::len), Some(2));
    assert!(!jwks.body.contains("\"d\""));

    let b = guard_b(format!("http://{a}/.well-known/jwks.json"));
    let token = issuer.mint(&TokenRequest::new("batch-job", "service-b").scope("orders:read")).unwrap();
    let identity = at_b(&b, "GET", token.access_token()).await.expect("B accepts A's token");
    assert_eq!(identity.subject(), Some("batch-job"));
    assert_eq!(identity.issuer(), A_ISSUER);
    assert_eq!(at_b(&b, "DELETE", token.access_token()).await.err(), Some(Reason::InsufficientScope));

    // Same `iss`, but signed by another issuer instance: its key is not in A's JWKS.
    let other =
        TokenIssuer::new(TokenIssuerConfig::new(A_ISSUER).audience("service-b").audience("service-c"))
            .unwrap();
    let foreign = other.mint(&TokenRequest::new("x", "service-b").scope("orders:read")).unwrap();
    assert_eq!(at_b(&b, "GET", foreign.access_token()).await.err(), Some(Reason::UnknownKey));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_exchanges_its_token_at_a_for_a_narrower_service_b_token() {
    let issuer = issuer_a();
    let axum_a = spawn_axum_a(issuer.clone()).await;
    let actix_a = spawn_actix_a(issuer.clone());
    let b = guard_b(format!("http://{axum_a}/.well-known/jwks.json"));
    let caller = token("alice", "orders:read orders:write");
    let form = format!("{GRANT}&audience=service-b&scope=orders%3Aread");

    for (name, a) in [("axum", axum_a), ("actix", actix_a)] {
        let response = exchange_at(a, Some(&caller), &form).await;
        assert_eq!(response.status, 200, "{name}: {response:?}");
        assert_eq!(response.header("cache-control"), Some("no-store"), "{name}");
        assert!(response.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{name}");
        let body = json(&response);
        assert_eq!(body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token", "{name}");
        assert_eq!(body["token_type"], "Bearer", "{name}");
        assert_eq!(body["expires_in"], 300, "{name}");
        assert_eq!(body["scope"], "orders:read", "{name}");

        let access_token = body["access_token"].as_str().unwrap();
        let identity =
            at_b(&b, "GET", access_token).await.unwrap_or_else(|e| panic!("{name}: B refused: {e:?}"));
        assert_eq!(identity.subject(), Some("alice"), "{name}");
        assert_eq!(identity.scopes(), ["orders:read"], "{name}: only orders:read");
        assert_eq!(identity.client_id(), Some("test-client"), "{name}");
        assert_eq!(identity.claim("act"), Some(&serde_json::json!({"sub": "test-client"})), "{name}");
        assert_eq!(at_b(&b, "DELETE", access_token).await.err(), Some(Reason::InsufficientScope), "{name}");
        // The caller's own token is not for B.
        assert_eq!(at_b(&b, "GET", &caller).await.err(), Some(Reason::UntrustedIssuer), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_exchanges_answer_alike_on_both_adapters() {
    let issuer = issuer_a();
    let axum_a = spawn_axum_a(issuer.clone()).await;
    let actix_a = spawn_actix_a(issuer);
    let caller = token("alice", "orders:read orders:write");

    let cases = [
        (format!("{GRANT}&audience=service-b&scope=orders%3Aadmin"), "invalid_scope"),
        (format!("{GRANT}&audience=service-b&scope=orders%3Aread+orders%3Aadmin"), "invalid_scope"),
        (format!("{GRANT}&audience=service-b"), "invalid_scope"),
        (format!("{GRANT}&audience=service-c&scope=orders%3Aread"), "invalid_target"),
        (format!("{GRANT}&audience=service-b&audience=service-c&scope=orders%3Aread"), "invalid_target"),
        ("audience=service-b&scope=orders%3Aread".to_string(), "invalid_request"),
        ("grant_type=password&audience=service-b&scope=orders%3Aread".to_string(), "unsupported_grant_type"),
        (format!("{GRANT}&audience=service-b&scope=orders%3Aread&subject_token=x"), "invalid_request"),
    ];
    for (form, error) in &cases {
        let from_axum = exchange_at(axum_a, Some(&caller), form).await;
        let from_actix = exchange_at(actix_a, Some(&caller), form).await;
        assert_eq!(from_axum.status, 400, "{form}: {from_axum:?}");
        assert_eq!(json(&from_axum)["error"], *error, "{form}");
        assert_eq!(from_axum.header("cache-control"), Some("no-store"));
        assert_eq!((from_axum.status, &from_axum.body), (from_actix.status, &from_actix.body), "{form}");
    }

    // A form is required.
    let bearer = format!("Bearer {caller}");
    for a in [axum_a, actix_a] {
        let body = format!("{GRANT}&audience=service-b&scope=orders%3Aread");
        let response = raw_request(
            a,
            "POST",
            "/token",
            &[("content-type", "application/json"), ("authorization", &bearer)],
            Some(body.as_bytes()),
        )
        .await;
        assert_eq!(response.status, 400);
        assert_eq!(json(&response)["error"], "invalid_request");
    }

    // Without a token the Guard answers first, as on any authenticated route.
    for a in [axum_a, actix_a] {
        let response = exchange_at(a, None, &format!("{GRANT}&audience=service-b&scope=orders%3Aread")).await;
        assert_eq!(response.status, 401);
        assert!(response.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")));
    }
}
