//! zt's request spans export cleanly through tracing-opentelemetry (issue 6): requests to
//! the axum demo over real HTTP on 127.0.0.1, spans exported by the OTLP/HTTP exporter to a
//! receiver on 127.0.0.1, and the received OTLP JSON checked field by field.
//! `cargo test --features otlp --test otlp_export`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use serde_json::{Value, json};
use support::*;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

/// An OTLP/HTTP receiver on 127.0.0.1: keeps every JSON body posted to `/v1/traces`.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let store = store.clone();
                    async move {
                        if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                            store.lock().unwrap().push(value);
                        }
                        ([("content-type", "application/json")], "{}")
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{addr}/v1/traces"), received)
}

/// Every exported span as (name, attributes as a JSON object).
fn spans(exports: &[Value]) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    for export in exports {
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let mut attributes = serde_json::Map::new();
                    for attribute in span["attributes"].as_array().into_iter().flatten() {
                        let value = &attribute["value"];
                        let value = value
                            .get("stringValue")
                            .cloned()
                            .or_else(|| value.get("intValue").map(|v| json!(v.to_string().trim_matches('"'))))
                            .unwrap_or(Value::Null);
                        attributes.insert(attribute["key"].as_str().unwrap_or("").to_string(), value);
                    }
                    out.push((span["name"].as_str().unwrap_or("").to_string(), attributes));
                }
            }
        }
    }
    out
}

#[test]
fn request_spans_export_over_otlp_with_their_fields() {
    let (endpoint, received) = receiver();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .build()
        .unwrap();
    // The batch processor exports from its own thread (the blocking HTTP client must not
    // run on the async runtime that serves the requests).
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    // As `examples/otlp_orders.rs` wires it: the console at INFO, the exporter with
    // `zt::request` at DEBUG (the request span's default level), so every span is exported.
    let exported = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("zt::request", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(tracing::level_filters::LevelFilter::INFO))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("zt")).with_filter(exported));

    let reader = token("alice", "orders:read");
    let authorization = format!("Bearer {reader}");
    tracing::subscriber::with_default(subscriber, || {
        // One thread: the demo's tasks run where the subscriber is the default.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let addr = spawn_axum(demo_guard(policy_with_jwks(trusted_jwks()))).await;
            let ok =
                raw_request(addr, "GET", "/orders?limit=5", &[("authorization", &authorization)], None).await;
            assert_eq!(ok.status, 200);
            let denied = raw_request(addr, "GET", "/orders", &[], None).await;
            assert_eq!(denied.status, 401);
            let body = json!({"query": "query Mine { orders { id } }"}).to_string();
            let graphql = post_json(addr, "/graphql", &authorization, body.as_bytes()).await;
            assert_eq!(graphql.status, 200);
        });
    });
    provider.force_flush().unwrap();

    let exports = received.lock().unwrap().clone();
    let raw: String = exports.iter().map(Value::to_string).collect();
    assert!(!raw.contains(&reader), "the token must never be exported");
    assert!(!raw.contains("limit=5"), "the query string must never be exported");
    let spans = spans(&exports);
    let requests: Vec<&serde_json::Map<String, Value>> =
        spans.iter().filter(|(name, _)| name == "zt.request").map(|(_, a)| a).collect();
    assert_eq!(requests.len(), 3, "{spans:?}");
    let find = |method: &str, path: &str, decision: &str| {
        requests
            .iter()
            .find(|a| {
                a["http.request.method"] == method && a["url.path"] == path && a["zt.decision"] == decision
            })
            .unwrap_or_else(|| panic!("no {method} {path} {decision} span in {requests:?}"))
    };
    let allowed = find("GET", "/orders", "allow");
    assert_eq!(allowed["http.route"], "/orders");
    // The principal: issuer and subject.
    assert_eq!(allowed["enduser.id"], "https://issuer.test|sub:alice");
    assert_eq!(allowed["client.address"], "127.0.0.1");
    assert_eq!(allowed["http.response.status_code"], "200");
    assert_eq!(allowed["zt.request_id"].as_str().map(str::len), Some(20));
    let denied = find("GET", "/orders", "deny");
    assert_eq!(denied["zt.reason"], "missing-credentials");
    assert_eq!(denied["http.response.status_code"], "401");
    let graphql = find("POST", "/graphql", "allow");
    assert_eq!(graphql["graphql.operation.name"], "Mine");
    assert_eq!(graphql["graphql.operation.type"], "query");
    assert_eq!(graphql["zt.graphql.document_hash"].as_str().map(str::len), Some(64));
}
