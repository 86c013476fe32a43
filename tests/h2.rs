//! The conformance table over HTTP/2 (cleartext, prior knowledge) to BOTH demo services:
//! every case that HTTP/2 can express gets the same answer as over HTTP/1.1. Bodies are
//! sent without `Content-Length` (HTTP/2 needs none), so zt must judge framing from the
//! body the adapter holds: a valid `POST /orders` is accepted, a body on an operation that
//! takes none is refused, an oversized one is a 413.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cases.rs"]
mod cases;
#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use cases::{Case, cases, check, visible};
use http_body_util::{BodyExt, Empty, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;

/// Headers HTTP/2 forbids or replaces (RFC 9113 s.8.2.2): cases that send them test
/// HTTP/1.1 framing, which HTTP/2 does not have.
const CONNECTION_SPECIFIC: [&str; 7] =
    ["connection", "transfer-encoding", "keep-alive", "upgrade", "te", "proxy-connection", "content-length"];

/// The request as HTTP/2 carries it, or `None` when HTTP/2 cannot express it.
fn h2_request(addr: SocketAddr, case: &Case) -> Option<http::Request<BoxBody<Bytes, std::io::Error>>> {
    if case.headers.iter().any(|(n, _)| CONNECTION_SPECIFIC.contains(&n.to_ascii_lowercase().as_str())) {
        return None;
    }
    let uri: http::Uri = format!("http://{addr}{}", case.path).parse().ok()?;
    // The parsed URI must be what the case sends: no normalization by the client.
    if uri.path_and_query().map(|p| p.as_str()) != Some(case.path.as_str()) {
        return None;
    }
    let body: BoxBody<Bytes, std::io::Error> = match &case.body {
        // One DATA frame of unknown length: the client adds no `Content-Length`.
        Some(bytes) => {
            let frame: Result<Frame<Bytes>, std::io::Error> = Ok(Frame::data(Bytes::from(bytes.clone())));
            BoxBody::new(StreamBody::new(futures_util::stream::iter([frame])))
        }
        None => BoxBody::new(Empty::new().map_err(|never| match never {})),
    };
    let mut request = http::Request::builder().method(case.method).uri(uri);
    for (name, value) in &case.headers {
        let value = http::HeaderValue::from_str(value).ok()?;
        request = request.header(*name, value);
    }
    request.body(body).ok()
}

/// Sends one case over a fresh HTTP/2 connection and reads the whole answer.
async fn send(addr: SocketAddr, request: http::Request<BoxBody<Bytes, std::io::Error>>) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("h2 response");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.into_body().collect().await.expect("h2 body").to_bytes();
    RawResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_answer_the_table_over_http2_as_over_http1() {
    let guard = demo_guard(policy_with_jwks(trusted_jwks()));
    let axum_addr = spawn_axum(guard.clone()).await;
    let actix_addr = spawn_actix(guard);
    let cases = cases();
    let (mut sent, mut failures) = (0, Vec::new());
    for case in &cases {
        let (Some(a), Some(b)) = (h2_request(axum_addr, case), h2_request(actix_addr, case)) else {
            continue;
        };
        sent += 1;
        let (a, b) = (send(axum_addr, a).await, send(actix_addr, b).await);
        failures.extend(check("axum h2", case, &a));
        failures.extend(check("actix h2", case, &b));
        if visible(&a) != visible(&b) {
            failures.push(format!("{}: axum {:?} vs actix {:?}", case.name, visible(&a), visible(&b)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} cases failed over h2:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Most of the table is expressible: the bodies among them.
    assert!(sent * 10 >= cases.len() * 8, "only {sent} of {} cases sent over h2", cases.len());
    let bodies = cases.iter().filter(|c| c.body.is_some() && h2_request(axum_addr, c).is_some()).count();
    assert!(bodies >= 8, "only {bodies} cases with a body sent over h2");
}
