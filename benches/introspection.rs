//! What an introspected (RFC 7662) opaque token costs once its answer is cached, beside a
//! cached JWT (issue 16):
//!
//! - `introspection/cached_opaque`: one `Guard::check` with an opaque token whose answer
//!   is in the introspection cache (digest, lookup, the answer's facts judged again).
//! - `introspection/cached_jwt`: the same request with a cached ES256 JWT.
//!
//! The introspection server runs on 127.0.0.1 and is called once, to fill the cache.
//! `cargo bench --bench introspection`.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../examples/orders/mod.rs"]
mod orders;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use zt::introspect::IntrospectionConfig;
use zt::request::HeaderList;
use zt::{Check, Decision, Guard, RequestView, RouteTable};

const OPAQUE: &str = "2YotnFZFEjr1zCsicMWpAA";

fn orders_routes() -> RouteTable {
    let mut routes = RouteTable::new();
    for (method, path, scopes) in orders::ROUTES {
        routes.add(method, path, orders::requirement(scopes)).expect("demo route");
    }
    routes
}

fn get_orders(headers: &HeaderList) -> RequestView<'_> {
    RequestView {
        method: "GET",
        path: "/orders",
        query: None,
        headers,
        peer_addr: Some(SocketAddr::from(([127, 0, 0, 1], 40_000))),
        peer_certificates: None,
        body: zt::BodyHint::Empty,
    }
}

fn bearer(token: &str) -> HeaderList {
    HeaderList::default().with("authorization", format!("Bearer {token}")).with("accept", "application/json")
}

/// An introspection server that says every token is active for `alice` (orders:read).
async fn spawn_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}/introspect", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(|| async {
            axum::Json(json!({
                "active": true, "sub": "alice", "scope": "orders:read", "iss": support::ISSUER,
                "aud": support::AUDIENCE, "exp": support::now() + 3600
            }))
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    endpoint
}

/// Panics unless the guard allows the request at once (from its caches).
fn assert_ready(guard: &Guard, view: &RequestView<'_>) {
    match guard.check(view) {
        Check::Ready(Decision::Admitted(admitted)) if admitted.identity().is_some() => {}
        Check::Ready(other) => panic!("expected an admission, got {other:?}"),
        Check::Pending(_) => panic!("the answer should be cached"),
    }
}

fn cached(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let endpoint = runtime.block_on(spawn_server());
    let mut policy = support::policy_with_jwks(support::trusted_jwks());
    policy.issuers[0].introspection =
        Some(IntrospectionConfig::new(endpoint, "orders-api").client_secret("bench-secret"));
    let guard = Guard::new(policy).expect("guard").with_routes(&orders_routes()).expect("routes");

    let opaque = bearer(OPAQUE);
    let opaque_view = get_orders(&opaque);
    match runtime.block_on(guard.decide(&opaque_view)) {
        Decision::Admitted(_) => {}
        other => panic!("the first introspection should admit, got {other:?}"),
    }
    assert_ready(&guard, &opaque_view);
    let jwt = bearer(&support::token("alice", "orders:read"));
    let jwt_view = get_orders(&jwt);
    assert_ready(&guard, &jwt_view);

    let mut group = c.benchmark_group("introspection");
    group.bench_function("cached_opaque", |b| b.iter(|| guard.check(black_box(&opaque_view))));
    group.bench_function("cached_jwt", |b| b.iter(|| guard.check(black_box(&jwt_view))));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = cached
}
criterion_main!(benches);
