//! Response validation (opt-in): undeclared fields are reported, stripped, or the response
//! is blocked with a 502, identically in both adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use support::*;
use zt::contract::{Contract, ContractOptions};
use zt::policy::{ContractConfig, IssuerConfig, Policy, ResponseValidation};

const SPEC: &str = r#"
openapi: 3.1.0
info: { title: profile, version: "1" }
paths:
  /profile:
    get:
      security: []
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  name: { type: string }
"#;

const LEAKY: &str = r#"{"name":"alice","ssn":"123-45-6789"}"#;

fn guard(mode: ResponseValidation) -> zt::Guard {
    let policy = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks()))
        .contract(ContractConfig { responses: mode, ..Default::default() })
        .build();
    let contract = Contract::from_text(SPEC, None, ContractOptions::default()).unwrap();
    zt::Guard::builder(policy).contract(contract).build().unwrap()
}

async fn axum_server(guard: zt::Guard) -> SocketAddr {
    async fn profile() -> ([(&'static str, &'static str); 1], &'static str) {
        ([("content-type", "application/json")], LEAKY)
    }
    let app = zt::axum::Router::new(guard)
        .route("/profile", zt::axum::routing::get(profile), zt::scopes::public())
        .into_axum();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn actix_server(guard: zt::Guard) -> SocketAddr {
    async fn profile() -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok().content_type("application/json").body(LEAKY)
    }
    let routes = zt::actix::Router::new(guard)
        .route("/profile", zt::actix::get(profile), zt::scopes::public())
        .finish()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web::App::new().service(routes.service()))
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
            let _ = server.await;
        });
    });
    addr
}

async fn up(addr: SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_strip_and_block_in_both_adapters() {
    for (mode, status, has_ssn) in [
        (ResponseValidation::Off, 200, true),
        (ResponseValidation::Report, 200, true),
        (ResponseValidation::Strip, 200, false),
        (ResponseValidation::Block, 502, false),
    ] {
        let servers = [axum_server(guard(mode)).await, actix_server(guard(mode))];
        let mut bodies = Vec::new();
        for addr in servers {
            up(addr).await;
            let r = raw_request(addr, "GET", "/profile", &[], None).await;
            assert_eq!(r.status, status, "{mode:?} {r:?}");
            assert_eq!(r.body.contains("123-45-6789"), has_ssn, "{mode:?} {r:?}");
            if status == 200 {
                assert!(r.body.contains("alice"));
            } else {
                assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:response-contract-violation"));
            }
            bodies.push((r.status, r.problem_type(), r.body.contains("alice")));
        }
        assert_eq!(bodies[0], bodies[1], "{mode:?}: adapters agree");
    }
}
