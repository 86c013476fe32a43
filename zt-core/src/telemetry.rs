//! Request spans and decision events.
//!
//! Every request gets one span named `zt.request` (target `zt::request`); every denial one
//! WARN event on target `zt::decision`. Field names are stable (OpenTelemetry HTTP semantic
//! conventions plus `zt.*`):
//!
//! | field | meaning |
//! |---|---|
//! | `http.request.method` | the request method |
//! | `url.path` | the path, never the query string |
//! | `http.route` | the matched route template |
//! | `client.address` | the TCP peer's IP address |
//! | `http.response.status_code` | the status sent |
//! | `enduser.id` | the verified subject |
//! | `zt.request_id` | the id also sent in problem bodies and `x-request-id` |
//! | `zt.decision` | `allow`, `deny`, or `would_deny` (report-only mode) |
//! | `zt.reason` | the denial reason's slug (e.g. `token-expired`) |
//! | `zt.auth_method` | `jwt`, or `none` |
//! | `zt.client_id` | the verified OAuth client id |
//! | `zt.required_scopes` | the route's requirement, e.g. `orders:read` |
//! | `zt.mode` | `enforce` or `report` |
//!
//! Tokens, claim values other than subject and client id, and query strings are never
//! recorded.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::Span;
use tracing::field::Empty;

use crate::request::RequestView;

/// A request id: unique per process run, unguessable across runs.
///
/// Twenty lower-case hex digits held inline: cloning one (the observer keeps it until the
/// response) allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; REQUEST_ID_LEN]);

const REQUEST_ID_LEN: usize = 20;

impl RequestId {
    /// A fresh id: a random per-process prefix and a counter (cheap, no syscall per call).
    pub fn generate() -> RequestId {
        static PREFIX: OnceLock<u32> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(rand::random::<u32>);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Hand-rolled hex: `format!` showed up in profiles of the cached-token path.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; REQUEST_ID_LEN];
        for (i, shift) in (0..8).rev().enumerate() {
            id[i] = HEX[((prefix >> (shift * 4)) & 0xf) as usize];
        }
        for (i, shift) in (0..12).rev().enumerate() {
            id[8 + i] = HEX[((n >> (shift * 4)) & 0xf) as usize];
        }
        RequestId(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII hex (built above); the fallback is unreachable.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn request_span(view: &RequestView<'_>, request_id: &RequestId, mode: &'static str) -> Span {
    let span = tracing::info_span!(
        target: "zt::request",
        "zt.request",
        http.request.method = view.method,
        url.path = view.path,
        http.route = Empty,
        client.address = Empty,
        http.response.status_code = Empty,
        enduser.id = Empty,
        zt.request_id = request_id.as_str(),
        zt.decision = Empty,
        zt.reason = Empty,
        zt.auth_method = Empty,
        zt.client_id = Empty,
        zt.required_scopes = Empty,
        zt.mode = mode,
        graphql.operation.name = Empty,
        graphql.operation.type = Empty,
        zt.graphql.document_hash = Empty,
        zt.graphql.cost = Empty,
    );
    if let Some(peer) = view.peer_addr
        && !span.is_disabled()
    {
        span.record("client.address", tracing::field::display(peer.ip()));
    }
    span
}

/// Records the response status on a request span (adapters call this once the response
/// is known).
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
}
