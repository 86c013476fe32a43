//! Streams stay streams through BOTH adapters with monitoring and response validation on:
//! server-sent events and chunked bodies of unknown length reach the client event by event
//! (the first arrives while the handler is still waiting to send the second), while a
//! bounded JSON response that leaves its schema is still blocked with a 502 on the same
//! guard. Over real HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use support::*;
use tokio::sync::Notify;
use zt::contract::{Contract, ContractOptions};
use zt::observe::ObserverConfig;
use zt::policy::{ContractConfig, IssuerConfig, Policy, ResponseValidation};
use zt::{RouteTable, scopes};

/// The contract: every route declared with its response schema, so that response
/// validation applies to each of them.
const SPEC: &str = r#"
openapi: 3.1.0
info: { title: streams, version: "1" }
paths:
  /events:
    get:
      security: []
      responses:
        "200":
          description: server-sent events
          content:
            text/event-stream:
              schema: { type: string }
  /feed:
    get:
      security: []
      responses:
        "200":
          description: a JSON array streamed item by item
          content:
            application/json:
              schema:
                type: array
                items:
                  type: object
                  properties:
                    n: { type: integer }
                  required: [n]
                  additionalProperties: false
  /blob:
    get:
      security: []
      responses:
        "200":
          description: bytes of unknown length
          content:
            application/octet-stream:
              schema: { type: string, format: binary }
  /profile:
    get:
      security: []
      responses:
        "200":
          description: a bounded JSON object
          content:
            application/json:
              schema:
                type: object
                properties:
                  name: { type: string }
                required: [name]
                additionalProperties: false
  /me:
    get:
      security: []
      responses:
        "200":
          description: a bounded JSON object
          content:
            application/json:
              schema:
                type: object
                properties:
                  name: { type: string }
                required: [name]
                additionalProperties: false
"#;

/// The streamed routes: path, content type, the first piece, the second piece.
const STREAMS: [(&str, &str, &[u8], &[u8]); 3] = [
    ("/events", "text/event-stream", b"data: one\n\n", b"data: two\n\n"),
    ("/feed", "application/json", br#"[{"n":1}"#, br#",{"n":2}]"#),
    ("/blob", "application/octet-stream", b"\x00\x01first-part|", b"second-part\xff"),
];

/// Leaves the schema (`name` must be a string): must be blocked.
const BAD_PROFILE: &str = r#"{"name":42}"#;
/// Within the schema: must pass.
const GOOD_PROFILE: &str = r#"{"name":"alice"}"#;

/// Generous, only so that a buffered stream fails the test instead of hanging it.
const SAFETY: Duration = Duration::from_secs(30);

/// One gate per streamed route: its handler sends the second piece only once the test,
/// having received the first, opens it.
#[derive(Clone, Default)]
struct Gates(Arc<[Arc<Notify>; 3]>);

impl Gates {
    fn of(&self, path: &str) -> Arc<Notify> {
        let i = STREAMS.iter().position(|(p, ..)| *p == path).expect("a streamed route");
        self.0[i].clone()
    }
}

/// The first piece, then (after the gate opens) the second, then the end.
fn gated(
    first: &'static [u8],
    second: &'static [u8],
    gate: Arc<Notify>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(0u8, move |step| {
        let gate = gate.clone();
        async move {
            match step {
                0 => Some((Ok(Bytes::from_static(first)), 1)),
                1 => {
                    gate.notified().await;
                    Some((Ok(Bytes::from_static(second)), 2))
                }
                _ => None,
            }
        }
    })
}

/// Monitoring on, response validation blocking, the contract above; routes registered in
/// code as well (the low-level wiring an application without zt's routers uses).
fn guard() -> zt::Guard {
    let mut policy = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks()))
        .contract(ContractConfig { responses: ResponseValidation::Block, ..Default::default() })
        .build();
    policy.observe = Some(ObserverConfig::default());
    let contract = Contract::from_text(SPEC, None, ContractOptions::default()).unwrap();
    let guard = zt::Guard::builder(policy).contract(contract).build().unwrap();
    let mut routes = RouteTable::new();
    for path in STREAMS.iter().map(|(p, ..)| *p).chain(["/profile", "/me"]) {
        routes.add("GET", path, scopes::public()).unwrap();
    }
    let guard = guard.with_routes(&routes).unwrap();
    assert!(guard.observer().is_some(), "monitoring is on");
    guard
}

async fn axum_server(guard: zt::Guard, gates: Gates) -> SocketAddr {
    use axum::extract::{OriginalUri, State};
    use axum::response::Response;
    async fn stream(State(gates): State<Gates>, OriginalUri(uri): OriginalUri) -> Response {
        let (path, content_type, first, second) = *STREAMS.iter().find(|(p, ..)| *p == uri.path()).unwrap();
        Response::builder()
            .header("content-type", content_type)
            .body(axum::body::Body::from_stream(gated(first, second, gates.of(path))))
            .unwrap()
    }
    async fn profile(uri: axum::http::Uri) -> Response {
        let body = if uri.path() == "/me" { GOOD_PROFILE } else { BAD_PROFILE };
        Response::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap()
    }
    let mut app = axum::Router::new();
    for (path, ..) in STREAMS {
        app = app.route(path, axum::routing::get(stream));
    }
    let app = app
        .route("/profile", axum::routing::get(profile))
        .route("/me", axum::routing::get(profile))
        .with_state(gates)
        .layer(zt::axum::ZeroTrustLayer::new(guard));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
    });
    addr
}

fn actix_server(guard: zt::Guard, gates: Gates) -> SocketAddr {
    use actix_web::{HttpRequest, HttpResponse, web};
    async fn stream(gates: web::Data<Gates>, request: HttpRequest) -> HttpResponse {
        let (path, content_type, first, second) =
            *STREAMS.iter().find(|(p, ..)| *p == request.path()).unwrap();
        HttpResponse::Ok().content_type(content_type).streaming(gated(first, second, gates.of(path)))
    }
    async fn profile(request: HttpRequest) -> HttpResponse {
        let body = if request.path() == "/me" { GOOD_PROFILE } else { BAD_PROFILE };
        HttpResponse::Ok().content_type("application/json").body(body)
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                let mut app = actix_web::App::new()
                    .wrap(zt::actix::ZeroTrust::new(guard.clone()))
                    .app_data(web::Data::new(gates.clone()));
                for (path, ..) in STREAMS {
                    app = app.route(path, web::get().to(stream));
                }
                app.route("/profile", web::get().to(profile)).route("/me", web::get().to(profile))
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

/// What the client saw of a streamed response.
#[derive(Debug, PartialEq)]
struct Streamed {
    status: u16,
    content_type: Option<String>,
    /// Declared length: none for a stream.
    content_length: Option<String>,
    body: Vec<u8>,
}

/// Requests `path`, reads until the first piece has arrived (the handler is then waiting
/// at its gate: the stream has not ended), opens the gate, and reads to the end.
async fn stream_through(client: &reqwest::Client, addr: SocketAddr, path: &str, gates: &Gates) -> Streamed {
    let (_, _, first, second) = *STREAMS.iter().find(|(p, ..)| *p == path).unwrap();
    let url = format!("http://{addr}{path}");
    let mut response = tokio::time::timeout(SAFETY, client.get(&url).send())
        .await
        .unwrap_or_else(|_| panic!("{url}: no response head while the stream waits: the body was buffered"))
        .unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (content_type, content_length) = (header("content-type"), header("content-length"));
    assert!(header("x-request-id").is_some_and(|id| id.len() >= 16), "{url}: streams name their request too");
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < first.len() {
        let chunk = tokio::time::timeout(SAFETY, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{url}: the first piece did not arrive before the stream ended"))
            .unwrap();
        match chunk {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => panic!("{url}: ended before the gate opened: {body:?}"),
        }
    }
    assert_eq!(body, first, "{url}: exactly the first piece, before the second was sent");
    gates.of(path).notify_one();
    loop {
        let chunk =
            tokio::time::timeout(SAFETY, response.chunk()).await.expect("the rest of the stream").unwrap();
        match chunk {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    assert_eq!(body, [first, second].concat(), "{url}: the whole stream, unchanged");
    Streamed { status, content_type, content_length, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_pass_event_by_event_while_bounded_responses_are_validated_in_both() {
    let (axum_gates, actix_gates) = (Gates::default(), Gates::default());
    let servers = [
        ("axum", axum_server(guard(), axum_gates.clone()).await, axum_gates),
        ("actix", actix_server(guard(), actix_gates.clone()), actix_gates),
    ];
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for (name, addr, gates) in &servers {
        let mut answers = Vec::new();
        for (path, content_type, ..) in STREAMS {
            let streamed = stream_through(&client, *addr, path, gates).await;
            assert_eq!(streamed.status, 200, "{name} {path}");
            assert!(
                streamed.content_type.as_deref().is_some_and(|t| t.starts_with(content_type)),
                "{name} {path}: {streamed:?}"
            );
            assert_eq!(streamed.content_length, None, "{name} {path}: a stream has no declared length");
            answers.push(streamed);
        }
        // Validation is really on, on the same guard: a bounded response leaving its schema
        // is replaced by the 502 problem, one within it passes.
        let blocked = raw_request(*addr, "GET", "/profile", &[], None).await;
        assert_eq!(blocked.status, 502, "{name}: {blocked:?}");
        assert_eq!(
            blocked.problem_type().as_deref(),
            Some("urn:zt:problem:response-contract-violation"),
            "{name}"
        );
        assert!(
            !blocked.body.contains(BAD_PROFILE),
            "{name}: nothing of the blocked body is sent: {blocked:?}"
        );
        let passed = raw_request(*addr, "GET", "/me", &[], None).await;
        assert_eq!((passed.status, passed.body.as_str()), (200, GOOD_PROFILE), "{name}: {passed:?}");
        seen.push((answers, (blocked.status, blocked.problem_type()), (passed.status, passed.body)));
    }
    assert_eq!(seen[0], seen[1], "the adapters answer identically");
}
