//! The adapters' own cost (issue 17): request in to response out through zt-tower and
//! zt-actix around the cheapest Guard decision (a public route: canonical path, route match,
//! no credential, no limits, contract or monitoring), beside the same handler without zt
//! and the core lifecycle alone, all in one run:
//!
//! - `adapters/axum_bare`, `adapters/axum_zt`: `oneshot` through an `axum::Router`, and
//!   through zt's `GuardedApp` with the same handler;
//! - `adapters/actix_bare`, `adapters/actix_zt`: `call_service` through an actix `App`, and
//!   through zt's `Routes::service()` with the same handler;
//! - `adapters/core_lifecycle`: `Guard::check`, `Admitted::forward`, `Responding::head` on a
//!   view, no framework (what both adapters wrap).
//!
//! An adapter's own cost is `(zt - bare) - core_lifecycle`.
//!
//! `cargo bench --bench adapters`
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;
use zt::request::HeaderList;
use zt::{BodyHint, Check, Decision, Guard, RequestView, scopes};

fn guard() -> Guard {
    let policy = zt::Policy::builder()
        .issuer(
            zt::policy::IssuerConfig::new(support::ISSUER)
                .audience(support::AUDIENCE)
                .jwks(support::trusted_jwks()),
        )
        .build();
    Guard::new(policy).unwrap()
}

const HEADERS: [(&str, &str); 3] = [("accept", "text/plain"), ("user-agent", "bench"), ("host", "127.0.0.1")];

fn axum(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bare = axum::Router::new().route("/x", axum::routing::get(|| async { "ok" }));
    let zt_app = zt::axum::Router::new(guard())
        .route("/x", zt::axum::routing::get(|| async { "ok" }), scopes::public())
        .into_axum();
    let request = || {
        let mut request = axum::http::Request::get("/x");
        for (name, value) in HEADERS {
            request = request.header(name, value);
        }
        request.body(axum::body::Body::empty()).unwrap()
    };
    runtime.block_on(async {
        assert_eq!(bare.clone().oneshot(request()).await.unwrap().status(), 200);
        let response = zt_app.clone().oneshot(request()).await.unwrap();
        assert!(response.status() == 200 && response.headers().contains_key("x-request-id"), "zt answered");
    });
    let mut group = c.benchmark_group("adapters");
    group.bench_function("axum_bare", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(bare.clone().oneshot(request()).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("axum_zt", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(zt_app.clone().oneshot(request()).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn actix(c: &mut Criterion) {
    use actix_web::{App, test, web};
    let system = actix_web::rt::System::new();
    let routes = zt::actix::Router::new(guard())
        .route("/x", zt::actix::get(|| async { "ok" }), scopes::public())
        .finish()
        .unwrap();
    let (bare, zt_app) = system.block_on(async {
        let bare = test::init_service(App::new().route("/x", web::get().to(|| async { "ok" }))).await;
        let zt_app = test::init_service(App::new().service(routes.service())).await;
        (bare, zt_app)
    });
    let request = || {
        let mut request = test::TestRequest::get().uri("/x");
        for (name, value) in HEADERS {
            request = request.insert_header((name, value));
        }
        request.to_request()
    };
    system.block_on(async {
        assert_eq!(test::call_service(&bare, request()).await.status(), 200);
        let response = test::call_service(&zt_app, request()).await;
        assert!(response.status() == 200 && response.headers().contains_key("x-request-id"), "zt answered");
    });
    let mut group = c.benchmark_group("adapters");
    group.bench_function("actix_bare", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(test::call_service(&bare, request()).await);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("actix_zt", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(test::call_service(&zt_app, request()).await);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn core_lifecycle(c: &mut Criterion) {
    let mut routes = zt::RouteTable::new();
    routes.add("GET", "/x", scopes::public()).unwrap();
    let guard = guard().with_routes(&routes).unwrap();
    let headers = HEADERS.iter().fold(HeaderList::default(), |h, (n, v)| h.with(n, *v));
    let view = RequestView {
        method: "GET",
        path: "/x",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: None,
        body: BodyHint::Empty,
    };
    let mut group = c.benchmark_group("adapters");
    group.bench_function("core_lifecycle", |b| {
        b.iter(|| match guard.check(black_box(&view)) {
            Check::Ready(Decision::Admitted(admitted)) => {
                let (admission, responding) = admitted.forward();
                black_box(responding.head(200, Some(b"text/plain"), Some(2)));
                black_box(admission);
            }
            _ => panic!("a public route is admitted"),
        })
    });
    group.finish();
}

criterion_group!(benches, core_lifecycle, axum, actix);
criterion_main!(benches);
