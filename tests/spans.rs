//! The `zt.request` span of every conformance case (`tests/support/cases.rs`), captured as
//! a tracing subscriber sees it, compared across the two adapters: same fields, same
//! values (except the request id), and `http.response.status_code` is always the status
//! the client saw. Responses name their span with `x-request-id`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cases.rs"]
mod cases;
#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use support::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The fields of one span, by name.
type Fields = BTreeMap<String, Value>;

/// Closed `zt.request` spans, by `zt.request_id`.
fn closed() -> &'static Mutex<HashMap<String, Fields>> {
    static CLOSED: OnceLock<Mutex<HashMap<String, Fields>>> = OnceLock::new();
    CLOSED.get_or_init(Mutex::default)
}

/// The fields recorded so far on an open span (kept in its extensions).
#[derive(Default)]
struct Recorded(Fields);

/// The name under which a span's fields that were given a value more than once are filed:
/// each listed once per extra time (issue 18: a field is recorded once, never re-recorded,
/// e.g. `zt.decision` saying `allow` after `deny`, or a status overwritten by another).
const RECORDED_TWICE: &str = "(recorded twice)";

impl Recorded {
    fn set(&mut self, field: &Field, value: Value) {
        if let Some(earlier) = self.0.insert(field.name().to_string(), value) {
            let now = &self.0[field.name()];
            let twice = format!("{}: {earlier} then {now}", field.name());
            match self.0.entry(RECORDED_TWICE.to_string()).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(list) => list.push(Value::from(twice)),
                _ => unreachable!("only this impl writes the list"),
            }
        }
    }
}

impl Visit for Recorded {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, Value::from(format!("{value:?}")));
    }
}

/// Installs the capturing subscriber once for the whole test binary (global: the actix
/// server runs on threads of its own). Only zt's targets are enabled.
fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let filter = tracing_subscriber::filter::Targets::new().with_target("zt", tracing::Level::TRACE);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture).with(filter))
            .unwrap();
    });
}

/// Records the fields of `zt.request` spans when created and recorded, and files them
/// under their request id when the span closes.
struct Capture;

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "zt.request" {
            return;
        }
        let mut recorded = Recorded::default();
        attrs.record(&mut recorded);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(recorded);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(recorded) = span.extensions_mut().get_mut::<Recorded>()
        {
            values.record(recorded);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(recorded) = ctx.span(&id).and_then(|s| s.extensions_mut().remove::<Recorded>()) else {
            return;
        };
        let request_id =
            recorded.0.get("zt.request_id").and_then(Value::as_str).unwrap_or_default().to_string();
        closed().lock().unwrap().insert(request_id, recorded.0);
    }
}

/// The closed span of `request_id`. A span closes when the last handle to it is dropped,
/// which may be just after the response left: wait for it, bounded (only so that a span
/// that never closes fails the test instead of hanging it).
async fn span_of(request_id: &str) -> Option<Fields> {
    for _ in 0..3000 {
        if let Some(fields) = closed().lock().unwrap().remove(request_id) {
            return Some(fields);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Everything wrong with the span behind response `r` (empty: it is right); the span's
/// fields when there is one.
async fn span_for(adapter: &str, name: &str, r: &RawResponse) -> (Vec<String>, Option<Fields>) {
    let Some(request_id) = r.header("x-request-id") else {
        return (vec![format!("[{adapter}] {name}: no x-request-id on the {} response", r.status)], None);
    };
    let Some(fields) = span_of(request_id).await else {
        return (vec![format!("[{adapter}] {name}: span {request_id} never closed")], None);
    };
    let mut failures = Vec::new();
    if let Some(twice) = fields.get(RECORDED_TWICE) {
        failures.push(format!("[{adapter}] {name}: span fields recorded more than once: {twice}"));
    }
    let status = fields.get("http.response.status_code");
    if status != Some(&Value::from(r.status)) {
        failures.push(format!(
            "[{adapter}] {name}: http.response.status_code {status:?}, the client saw {}",
            r.status
        ));
    }
    (failures, Some(fields))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_has_the_same_span_in_both_adapters_with_the_status_sent() {
    capture();
    let guard = demo_guard(policy_with_jwks(trusted_jwks()));
    let axum_addr = spawn_axum(guard.clone()).await;
    let actix_addr = spawn_actix(guard);
    let cases = cases::cases();
    let mut failures = Vec::new();
    for case in &cases {
        let a = cases::run(axum_addr, case).await;
        let b = cases::run(actix_addr, case).await;
        let (axum_failures, axum_span) = span_for("axum", &case.name, &a).await;
        let (actix_failures, actix_span) = span_for("actix", &case.name, &b).await;
        failures.extend(axum_failures.into_iter().chain(actix_failures));
        let (Some(mut axum_span), Some(mut actix_span)) = (axum_span, actix_span) else { continue };
        // Honestly per request: the id (each is its own response's, checked above).
        for span in [&mut axum_span, &mut actix_span] {
            span.remove("zt.request_id");
        }
        if axum_span != actix_span {
            failures
                .push(format!("{}: spans differ\n  axum  {axum_span:?}\n  actix {actix_span:?}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems over {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Issue 18: the guarded app nested under a prefix of an outer axum router
/// (`nest_service("/api", app)`: axum strips the prefix before the app routes). The Guard
/// matches the path below the prefix, as the app's routes are written, while the span's
/// `url.path` is the path the client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_axum_app_records_the_path_the_client_sent() {
    capture();
    let guard = demo_guard(policy_with_jwks(trusted_jwks()));
    let app = orders::axum_app::app(guard, None).expect("demo app");
    let outer = axum::Router::new().nest_service("/api", app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ =
            axum::serve(listener, outer.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    let token = token("alice", "orders:read");
    let authorization = format!("Bearer {token}");
    for (path, status) in [("/api/orders", 200), ("/api/orders?limit=1", 200), ("/api/nowhere", 404)] {
        let r = raw_request(addr, "GET", path, &[("authorization", &authorization)], None).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let (failures, fields) = span_for("axum nested", path, &r).await;
        assert!(failures.is_empty(), "{failures:?}");
        let fields = fields.unwrap();
        let sent = path.split('?').next().unwrap();
        assert_eq!(fields.get("url.path"), Some(&Value::from(sent)), "{path}: {fields:?}");
        if status == 200 {
            // Matched below the prefix, as the app's routes are written.
            assert_eq!(fields.get("http.route"), Some(&Value::from("/orders")), "{path}: {fields:?}");
        }
    }
}
