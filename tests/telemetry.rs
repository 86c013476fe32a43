//! The request span and decision events, as a JSON log subscriber sees them: stable field
//! names present, tokens and query strings absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use support::*;
use tracing_subscriber::fmt::format::FmtSpan;
use zt::request::HeaderList;
use zt::{Decision, Guard, RequestView};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a `fmt` JSON subscriber at DEBUG (one that asks for every request's span) writes.
fn capture(f: impl FnOnce()) -> String {
    capture_at(tracing::Level::DEBUG, f)
}

fn capture_at(level: tracing::Level, f: impl FnOnce()) -> String {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_events(FmtSpan::CLOSE)
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .with_max_level(level)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

fn guard() -> Guard {
    Guard::new(
        zt::Policy::builder()
            .issuer(zt::policy::IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks()))
            .route("GET", "/orders", zt::scopes::all(["orders:read"]))
            .build(),
    )
    .unwrap()
}

/// `Err(())` when denied, else whether the admitted request carries an identity.
fn run(guard: &Guard, token: &str, query: &str) -> Result<bool, ()> {
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let view = RequestView {
        method: "GET",
        path: "/orders",
        query: Some(query),
        headers: &headers,
        peer_addr: Some("127.0.0.1:5555".parse().unwrap()),
        peer_certificates: None,
        body: zt::BodyHint::Empty,
    };
    let zt::Check::Ready(decision) = guard.check(&view) else { panic!("static keys never wait") };
    match decision {
        Decision::Admitted(admitted) => {
            let (admission, responding) = admitted.forward();
            let _ = responding.head(200, None, Some(0));
            Ok(admission.identity().is_some())
        }
        Decision::Rejected(rejected) => {
            let _ = rejected.into_response();
            Err(())
        }
    }
}

#[test]
fn denials_are_one_warn_event_with_stable_fields_and_no_secrets() {
    let g = guard();
    let t = token("alice", "profile");
    let log = capture(|| {
        assert!(run(&g, &t, "secret=hunter2").is_err());
    });
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let event = lines.iter().find(|l| l["target"] == "zt::decision").expect("decision event");
    assert_eq!(event["level"], "WARN");
    assert_eq!(event["fields"]["zt.decision"], "deny");
    assert_eq!(event["fields"]["zt.reason"], "insufficient-scope");
    // The principal: issuer and subject.
    assert_eq!(event["fields"]["enduser.id"], format!("{ISSUER}|sub:alice"));
    assert_eq!(event["fields"]["zt.client_id"], "test-client");
    let span = lines.iter().find(|l| l["fields"]["message"] == "close").expect("span close");
    let fields = &span["span"];
    assert_eq!(fields["name"], "zt.request");
    for (name, value) in [
        ("http.request.method", "GET"),
        ("url.path", "/orders"),
        ("http.route", "/orders"),
        ("client.address", "127.0.0.1"),
        ("zt.decision", "deny"),
        ("zt.reason", "insufficient-scope"),
        ("zt.auth_method", "jwt"),
        ("zt.required_scopes", "orders:read"),
        ("zt.mode", "enforce"),
    ] {
        assert_eq!(fields[name], value, "{name} in {fields}");
    }
    assert_eq!(fields["enduser.id"], format!("{ISSUER}|sub:alice"));
    assert_eq!(fields["http.response.status_code"], 403);
    assert!(fields["zt.request_id"].as_str().is_some_and(|s| s.len() >= 16));
    assert!(!log.contains(&t), "the token never reaches the log");
    assert!(!log.contains(t.split('.').nth(1).unwrap()), "nor its payload");
    assert!(!log.contains("hunter2"), "query strings are never recorded");
}

#[test]
fn allowed_requests_record_allow_and_emit_no_warning() {
    let g = guard();
    let t = token("bob", "orders:read");
    let log = capture(|| {
        assert_eq!(run(&g, &t, ""), Ok(true));
    });
    assert!(!log.contains("zt::decision"));
    assert!(log.contains("\"zt.decision\":\"allow\""));
    assert!(log.contains("\"http.response.status_code\":200"));
    assert!(!log.contains(&t));
}

#[test]
fn at_info_allowed_requests_write_nothing_and_denials_still_warn() {
    // The default span level is DEBUG (as tower-http's TraceLayer): a service logging at
    // INFO pays for no span on an allowed request, and still gets every denial.
    let g = guard();
    let allowed = capture_at(tracing::Level::INFO, || {
        assert_eq!(run(&g, &token("bob", "orders:read"), ""), Ok(true));
    });
    assert_eq!(allowed, "", "nothing formatted for an allowed request");
    let denied = capture_at(tracing::Level::INFO, || {
        assert!(run(&g, &token("alice", "profile"), "").is_err());
    });
    let lines: Vec<serde_json::Value> = denied.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let event = lines.iter().find(|l| l["target"] == "zt::decision").expect("decision event");
    assert_eq!(
        (event["level"].as_str(), event["fields"]["zt.reason"].as_str()),
        (Some("WARN"), Some("insufficient-scope"))
    );
    assert_eq!(
        event["fields"]["enduser.id"],
        format!("{ISSUER}|sub:alice"),
        "the caller is in the event itself"
    );

    // `span_level = "info"` puts the span back at INFO.
    let policy = zt::Policy::builder()
        .issuer(zt::policy::IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks()))
        .route("GET", "/orders", zt::scopes::all(["orders:read"]))
        .span_level(zt::telemetry::SpanLevel::Info)
        .build();
    let g = Guard::new(policy).unwrap();
    let log = capture_at(tracing::Level::INFO, || {
        assert_eq!(run(&g, &token("bob", "orders:read"), ""), Ok(true));
    });
    assert!(log.contains("\"zt.decision\":\"allow\""), "{log}");
    let parsed: zt::Policy = zt::Policy::from_toml_str("span_level = \"trace\"").unwrap();
    assert_eq!(parsed.span_level, zt::telemetry::SpanLevel::Trace);
    assert!(zt::Policy::from_toml_str("span_level = \"loud\"").is_err());
}
