//! Properties guarded by a scope (`x-zt-scopes`) are never sent unfiltered, whatever the
//! response's framing, on BOTH adapters: a JSON body of unknown length (chunked) is read and
//! filtered, and a stream zt cannot filter is refused with the 502 problem rather than sent
//! as it is. Over real HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use support::*;
use zt::contract::{Contract, ContractOptions};
use zt::policy::{IssuerConfig, Policy};
use zt::{RouteTable, scopes};

const SPEC: &str = r##"
openapi: 3.1.0
info: { title: guarded, version: "1" }
components:
  schemas:
    Profile:
      type: object
      properties:
        name: { type: string }
        note: { type: string, x-zt-scopes: [profiles:admin] }
paths:
  /profile:
    get:
      security: []
      responses:
        "200":
          description: a profile, streamed without a declared length
          content:
            application/json: { schema: { $ref: "#/components/schemas/Profile" } }
  /profiles/events:
    get:
      security: []
      responses:
        "200":
          description: profiles, as JSON or as server-sent events
          content:
            application/json: { schema: { $ref: "#/components/schemas/Profile" } }
            text/event-stream: { schema: { type: string } }
"##;

const PIECES: [&[u8]; 2] = [br#"{"name":"alice","#, br#""note":"owes money"}"#];
const EVENT: &[u8] = b"data: {\"name\":\"alice\",\"note\":\"owes money\"}\n\n";

fn guard() -> zt::Guard {
    let policy =
        Policy::builder().issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks())).build();
    let contract = Contract::from_text(SPEC, None, ContractOptions::default()).unwrap();
    let mut routes = RouteTable::new();
    routes.add("GET", "/profile", scopes::public()).unwrap();
    routes.add("GET", "/profiles/events", scopes::public()).unwrap();
    zt::Guard::builder(policy).contract(contract).build().unwrap().with_routes(&routes).unwrap()
}

fn pieces() -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(PIECES.map(|p| Ok(Bytes::from_static(p))))
}

async fn axum_server() -> SocketAddr {
    use axum::response::Response;
    async fn profile() -> Response {
        let body = axum::body::Body::from_stream(pieces());
        Response::builder().header("content-type", "application/json").body(body).unwrap()
    }
    async fn events() -> Response {
        let body = axum::body::Body::from_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(
            Bytes::from_static(EVENT),
        )]));
        Response::builder().header("content-type", "text/event-stream").body(body).unwrap()
    }
    let app = axum::Router::new()
        .route("/profile", axum::routing::get(profile))
        .route("/profiles/events", axum::routing::get(events))
        .layer(zt::axum::ZeroTrustLayer::new(guard()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn actix_server() -> SocketAddr {
    use actix_web::{HttpResponse, web};
    async fn profile() -> HttpResponse {
        HttpResponse::Ok().content_type("application/json").streaming(pieces())
    }
    async fn events() -> HttpResponse {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(EVENT))]);
        HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let guard = guard();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .wrap(zt::actix::ZeroTrust::new(guard.clone()))
                    .route("/profile", web::get().to(profile))
                    .route("/profiles/events", web::get().to(events))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
            let _ = server.await;
        });
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_properties_never_leave_unfiltered_whatever_the_framing() {
    for (adapter, addr) in [("axum", axum_server().await), ("actix", actix_server())] {
        let profile = raw_request(addr, "GET", "/profile", &[], None).await;
        assert_eq!(profile.status, 200, "{adapter}: {profile:?}");
        let body: serde_json::Value = serde_json::from_str(&profile.body).unwrap();
        assert_eq!(body, serde_json::json!({"name": "alice"}), "{adapter}: the note is withheld");

        let events = raw_request(addr, "GET", "/profiles/events", &[], None).await;
        assert_eq!(events.status, 502, "{adapter}: {events:?}");
        assert_eq!(events.problem_type().as_deref(), Some("urn:zt:problem:response-contract-violation"));
        assert!(!events.body.contains("owes money"), "{adapter}: nothing of the stream is sent");
    }
}
