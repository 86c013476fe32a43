//! What a team adopting zt expects of it, on both adapters over real HTTP on 127.0.0.1: a
//! hook that shapes error bodies, `x-request-id` on every response (an incoming one kept
//! only when trusted and valid), the W3C `traceparent` trace id on the span and the events,
//! the verified caller on every denial after authentication, and a problem+json 404 for a
//! contract path that has no handler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use support::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use zt::denial::ErrorBody;
use zt::{Denial, scopes};

/// The contract of the test service: `/reports` is declared but has no handler.
const CONTRACT: &str = r#"
openapi: 3.1.0
info: { title: adoption, version: "1" }
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows: { clientCredentials: { tokenUrl: https://issuer.test/token, scopes: {} } }
paths:
  /health:
    get:
      security: []
      responses: { "200": { description: ok } }
  /items:
    get:
      security: [ { oauth: [items:read] } ]
      parameters:
        - { name: limit, in: query, schema: { type: integer, maximum: 10 } }
      responses: { "200": { description: ok } }
    post:
      security: [ { oauth: [items:write] } ]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties: { name: { type: string, maxLength: 20 } }
      responses: { "201": { description: created } }
  /reports:
    get:
      security: [ { oauth: [items:read] } ]
      responses: { "200": { description: ok } }
"#;

/// Options of one test service.
#[derive(Default, Clone)]
struct Options {
    renderer: bool,
    trust_request_id: bool,
    limits: Option<&'static str>,
    observe: bool,
}

fn guard(options: &Options) -> zt::Guard {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.request_id.trust_incoming = options.trust_request_id;
    if let Some(limits) = options.limits {
        policy.limits = Some(zt::limit::LimitConfig::from_toml_str(limits).unwrap());
    }
    if options.observe {
        policy.observe = Some(zt::observe::ObserverConfig::default());
    }
    let contract = zt::contract::Contract::from_text(CONTRACT, None, Default::default()).unwrap();
    let mut builder = zt::Guard::builder(policy).contract(contract);
    if options.renderer {
        // An application's own error envelope.
        let renderer = |denial: &Denial, request_id: &str| {
            Some(ErrorBody::json(&json!({
                "error": { "code": denial.reason.slug(), "status": denial.reason.status(), "id": request_id }
            })))
        };
        builder = builder.denial_renderer(Arc::new(renderer));
    }
    builder.build().unwrap()
}

async fn axum_service(guard: zt::Guard) -> SocketAddr {
    use zt::axum::routing::{get, post};
    let app = zt::axum::Router::new(guard)
        .route("/health", get(|| async { "ok" }), scopes::public())
        .route("/items", get(|| async { "items" }), scopes::all(["items:read"]))
        .route(
            "/items",
            post(|body: String| async move { (http::StatusCode::CREATED, body) }),
            scopes::all(["items:write"]),
        )
        .into_axum();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

fn actix_service(guard: zt::Guard) -> SocketAddr {
    use zt::actix::{get, post};
    let routes = zt::actix::Router::new(guard)
        .route("/health", get(|| async { "ok" }), scopes::public())
        .route("/items", get(|| async { "items" }), scopes::all(["items:read"]))
        .route(
            "/items",
            post(|body: String| async move { actix_web::HttpResponse::Created().body(body) }),
            scopes::all(["items:write"]),
        )
        .finish()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let routes = routes.clone();
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

/// Both adapters, each serving `options`.
async fn services(options: Options) -> [(&'static str, SocketAddr); 2] {
    [("axum", axum_service(guard(&options)).await), ("actix", actix_service(guard(&options)))]
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    raw_request(addr, "GET", path, headers, None).await
}

fn bearer(scope: &str) -> String {
    format!("Bearer {}", token("alice", scope))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_shapes_denial_bodies_on_both_adapters() {
    for (adapter, addr) in services(Options { renderer: true, ..Options::default() }).await {
        // Missing token: the application's body, zt's status and challenge.
        let r = get(addr, "/items", &[]).await;
        assert_eq!(r.status, 401, "[{adapter}] {r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"), "[{adapter}]");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"orders-api\""), "[{adapter}]");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"]["code"], "missing-credentials", "[{adapter}] {body}");
        assert_eq!(body["error"]["id"].as_str(), r.header("x-request-id"), "[{adapter}]");
        // Insufficient scope keeps its RFC 6750 challenge with the scope.
        let r = get(addr, "/items", &[("authorization", &bearer("other"))]).await;
        assert_eq!(r.status, 403, "[{adapter}]");
        assert!(r.header("www-authenticate").unwrap().contains("scope=\"items:read\""), "[{adapter}]");
        assert!(r.body.contains("\"code\":\"insufficient-scope\""), "[{adapter}] {}", r.body);
        // An unknown route too.
        let r = get(addr, "/nowhere", &[]).await;
        assert_eq!((r.status, r.header("content-type")), (404, Some("application/json")), "[{adapter}]");
    }
    // Without a renderer the default stays problem+json.
    for (adapter, addr) in services(Options::default()).await {
        let r = get(addr, "/items", &[]).await;
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "[{adapter}]");
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:missing-credentials"), "[{adapter}]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_path_without_handler_is_a_problem_404_on_both_adapters() {
    for (adapter, addr) in services(Options::default()).await {
        let r = get(addr, "/reports", &[("authorization", &bearer("items:read"))]).await;
        assert_eq!(r.status, 404, "[{adapter}] {r:?}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "[{adapter}] {r:?}");
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:route-not-found"), "[{adapter}]");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["request_id"].as_str(), r.header("x-request-id"), "[{adapter}]");
        // Still checked first: no token, 401.
        assert_eq!(get(addr, "/reports", &[]).await.status, 401, "[{adapter}]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_a_request_id_and_incoming_ones_only_when_trusted() {
    let incoming = "gw-3f2b9c1e-8d4a-4f7e-9b1a-2c3d4e5f6a7b";
    for (adapter, addr) in services(Options::default()).await {
        let read = bearer("items:read");
        for (path, auth, status) in [
            ("/health", None, 200),
            ("/items", Some(read.as_str()), 200),
            ("/items", None, 401),
            ("/nowhere", None, 404),
        ] {
            let mut headers = vec![("x-request-id", incoming)];
            if let Some(auth) = auth {
                headers.push(("authorization", auth));
            }
            let r = get(addr, path, &headers).await;
            assert_eq!(r.status, status, "[{adapter}] {path}");
            let id =
                r.header("x-request-id").unwrap_or_else(|| panic!("[{adapter}] {path}: no x-request-id"));
            // Untrusted by default: a fresh id, never the client's.
            assert_ne!(id, incoming, "[{adapter}] {path}");
            assert!(id.len() >= 16, "[{adapter}] {path}: {id}");
        }
    }
    for (adapter, addr) in services(Options { trust_request_id: true, ..Options::default() }).await {
        let r = get(addr, "/health", &[("x-request-id", incoming)]).await;
        assert_eq!(r.header("x-request-id"), Some(incoming), "[{adapter}] trusted and valid: kept");
        let r = get(addr, "/items", &[("x-request-id", incoming)]).await;
        assert_eq!(r.header("x-request-id"), Some(incoming), "[{adapter}] on a denial too");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["request_id"], incoming, "[{adapter}]");
        let too_long = "a".repeat(zt::correlation::MAX_REQUEST_ID_LEN + 1);
        for bad in ["has space", "quote\"d", too_long.as_str(), "semi;colon"] {
            let r = get(addr, "/health", &[("x-request-id", bad)]).await;
            let id = r.header("x-request-id").unwrap();
            assert_ne!(id, bad, "[{adapter}] invalid {bad:?} replaced");
            assert_eq!(id.len(), 20, "[{adapter}] a fresh id for {bad:?}");
        }
        // Repeated: ambiguous, replaced.
        let r = get(addr, "/health", &[("x-request-id", "one"), ("x-request-id", "two")]).await;
        assert!(!matches!(r.header("x-request-id"), Some("one" | "two")), "[{adapter}]");
    }
}

/// What the capture layer saw: closed `zt.request` spans and events, each as its fields.
#[derive(Default)]
struct Seen {
    spans: Vec<BTreeMap<String, String>>,
    events: Vec<BTreeMap<String, String>>,
}

fn seen() -> &'static Mutex<Seen> {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    SEEN.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");
        Mutex::default()
    })
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
}

struct Capture;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "zt.request" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if target == "zt::decision" || target == "zt::security" {
            let mut fields = Fields::default();
            event.record(&mut fields);
            fields.0.insert("target".into(), target.into());
            seen().lock().unwrap().events.push(fields.0);
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions_mut().remove::<Fields>()
        {
            seen().lock().unwrap().spans.push(fields.0);
        }
    }
}

/// The events of the request `request_id` on `target`.
fn events(request_id: &str, target: &str) -> Vec<BTreeMap<String, String>> {
    let seen = seen().lock().unwrap();
    seen.events
        .iter()
        .filter(|e| e.get("zt.request_id").map(String::as_str) == Some(request_id) && e["target"] == target)
        .cloned()
        .collect()
}

fn span_of(request_id: &str) -> Option<BTreeMap<String, String>> {
    let seen = seen().lock().unwrap();
    seen.spans.iter().find(|s| s.get("zt.request_id").map(String::as_str) == Some(request_id)).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_trace_id_reaches_the_span_and_the_events() {
    seen();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    for (adapter, addr) in services(Options { observe: true, ..Options::default() }).await {
        // Allowed: on the span.
        let r = get(addr, "/health", &[("traceparent", &traceparent)]).await;
        let id = r.header("x-request-id").unwrap().to_string();
        assert!(eventually(|| span_of(&id).is_some()).await, "[{adapter}] span closed");
        assert_eq!(span_of(&id).unwrap().get("trace_id").map(String::as_str), Some(trace), "[{adapter}]");
        // Denied: on the span, the decision event and the security event.
        let r = get(addr, "/items", &[("traceparent", &traceparent)]).await;
        assert_eq!(r.status, 401);
        let id = r.header("x-request-id").unwrap().to_string();
        assert!(
            eventually(|| span_of(&id).is_some() && !events(&id, "zt::security").is_empty()).await,
            "[{adapter}]"
        );
        assert_eq!(span_of(&id).unwrap().get("trace_id").map(String::as_str), Some(trace), "[{adapter}]");
        for event in events(&id, "zt::decision") {
            assert_eq!(event.get("trace_id").map(String::as_str), Some(trace), "[{adapter}] {event:?}");
        }
        assert!(!events(&id, "zt::decision").is_empty(), "[{adapter}] a decision event");
        for event in events(&id, "zt::security") {
            assert_eq!(event.get("trace.id").map(String::as_str), Some(trace), "[{adapter}] {event:?}");
        }
        // Invalid: ignored, no trace id anywhere.
        let r = get(
            addr,
            "/items",
            &[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")],
        )
        .await;
        let id = r.header("x-request-id").unwrap().to_string();
        assert!(eventually(|| span_of(&id).is_some()).await, "[{adapter}]");
        assert_eq!(span_of(&id).unwrap().get("trace_id"), None, "[{adapter}]");
        assert!(events(&id, "zt::decision").iter().all(|e| !e.contains_key("trace_id")), "[{adapter}]");
    }
}

/// The principal of the test token: issuer and subject.
const ALICE: &str = "https://issuer.test|sub:alice";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_denial_after_authentication_names_the_caller() {
    seen();
    let limits = "identity = { rate = \"2/m\", burst = 2 }\naddress = \"off\"\n";
    for (adapter, addr) in
        services(Options { observe: true, limits: Some(limits), ..Options::default() }).await
    {
        let read = bearer("items:read items:write");
        let denials: Vec<(&str, RawResponse)> = vec![
            ("insufficient-scope", get(addr, "/items", &[("authorization", &bearer("other"))]).await),
            ("invalid-parameters", get(addr, "/items?limit=99", &[("authorization", &read)]).await),
            ("invalid-body", post_json(addr, "/items", &read, br#"{"name": 7}"#).await),
            // The identity quota (2 a minute) is spent by the two calls above.
            ("rate-limited", get(addr, "/items", &[("authorization", &read)]).await),
        ];
        for (reason, r) in denials {
            assert_eq!(r.problem_type(), Some(format!("urn:zt:problem:{reason}")), "[{adapter}] {r:?}");
            let id = r.header("x-request-id").unwrap().to_string();
            assert!(eventually(|| !events(&id, "zt::security").is_empty()).await, "[{adapter}] {reason}");
            let decision = events(&id, "zt::decision");
            assert!(!decision.is_empty(), "[{adapter}] {reason}: a decision event");
            for event in decision {
                assert_eq!(
                    event.get("enduser.id").map(String::as_str),
                    Some(ALICE),
                    "[{adapter}] {reason} {event:?}"
                );
                assert_eq!(
                    event.get("zt.client_id").map(String::as_str),
                    Some("test-client"),
                    "[{adapter}] {reason}"
                );
            }
            for event in events(&id, "zt::security") {
                assert_eq!(
                    event.get("user.id").map(String::as_str),
                    Some(ALICE),
                    "[{adapter}] {reason} {event:?}"
                );
                assert_eq!(
                    event.get("zt.client_id").map(String::as_str),
                    Some("test-client"),
                    "[{adapter}] {reason}"
                );
            }
        }
    }
}

/// `HEAD` is `GET` without the body (RFC 9110, 9.3.2), as axum's own routers answer it: a
/// load balancer's or monitor's `HEAD /health` is not a 405. It is the `GET` route in every
/// respect: the same requirement, and the same per-route quota (a `HEAD` flood cannot spend
/// around a `GET` route's limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_the_get_route_on_both_adapters() {
    let limits = "identity = \"off\"\naddress = \"off\"\n[[routes]]\nmethod = \"GET\"\npath = \"/items\"\nrate = \"3/m\"\nburst = 3\n";
    for (adapter, addr) in services(Options { limits: Some(limits), ..Options::default() }).await {
        let head = |path: &'static str, headers: Vec<(&'static str, String)>| async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            raw_request(addr, "HEAD", path, &headers, None).await
        };
        let r = head("/health", vec![]).await;
        assert_eq!((r.status, r.body.as_str()), (200, ""), "[{adapter}] {r:?}");
        assert!(r.header("x-request-id").is_some(), "[{adapter}]");
        // The GET route's requirement.
        assert_eq!(head("/items", vec![]).await.status, 401, "[{adapter}]");
        assert_eq!(
            head("/items", vec![("authorization", bearer("items:write"))]).await.status,
            403,
            "[{adapter}]"
        );
        let r = head("/items", vec![("authorization", bearer("items:read"))]).await;
        assert_eq!((r.status, r.body.as_str()), (200, ""), "[{adapter}] {r:?}");
        // And its parameters: the contract's GET operation.
        let r = head("/items?limit=99", vec![("authorization", bearer("items:read"))]).await;
        assert_eq!(r.status, 400, "[{adapter}] {r:?}");
        // And its quota, for a caller of its own (3 a minute): GET and HEAD spend it alike.
        let reader = format!("Bearer {}", token(&format!("carol-{adapter}"), "items:read"));
        assert_eq!(get(addr, "/items", &[("authorization", &reader)]).await.status, 200, "[{adapter}]");
        assert_eq!(head("/items", vec![("authorization", reader.clone())]).await.status, 200, "[{adapter}]");
        assert_eq!(head("/items", vec![("authorization", reader.clone())]).await.status, 200, "[{adapter}]");
        assert_eq!(head("/items", vec![("authorization", reader.clone())]).await.status, 429, "[{adapter}]");
        assert_eq!(get(addr, "/items", &[("authorization", &reader)]).await.status, 429, "[{adapter}]");
        // A path without GET does not answer HEAD, and its Allow says what it serves.
        let r = raw_request(addr, "PATCH", "/items", &[("authorization", &reader)], None).await;
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST, HEAD")), "[{adapter}]");
    }
}
