//! Request spans and decision events.
//!
//! Every request gets one span named `zt.request` (target `zt::request`); every denial one
//! WARN event on target `zt::decision`. Field names are stable (OpenTelemetry HTTP semantic
//! conventions plus `zt.*`):
//!
//! | field | meaning |
//! |---|---|
//! | `http.request.method` | the request method |
//! | `url.path` | the path the client sent (before an outer router stripped a prefix), never the query string |
//! | `http.route` | the matched route template |
//! | `client.address` | the TCP peer's IP address |
//! | `http.response.status_code` | the status sent |
//! | `enduser.id` | the verified subject |
//! | `zt.request_id` | the id also sent in problem bodies and `x-request-id` |
//! | `trace_id` | the W3C trace id of a valid incoming `traceparent` ([`crate::correlation`]) |
//! | `zt.decision` | `allow`, `deny`, or `would_deny` (report-only mode) |
//! | `zt.reason` | the denial reason's slug (e.g. `token-expired`) |
//! | `zt.auth_method` | `jwt`, `introspection` (an opaque token), `mtls`, or `none` |
//! | `zt.client_id` | the verified OAuth client id |
//! | `zt.required_scopes` | the route's requirement, e.g. `orders:read` |
//! | `zt.mode` | `enforce` or `report` |
//!
//! Tokens, claim values other than subject and client id, and query strings are never
//! recorded.
//!
//! The span's level is the policy's `span_level`, `debug` by default, as tower-http's
//! `TraceLayer` chose: a service logging at INFO with the `fmt` subscriber does not format a
//! span on every allowed request, while every denial still logs its WARN event. To export
//! every request's span (OTLP), enable `zt::request` at DEBUG for that layer alone:
//!
//! ```
//! use tracing_subscriber::{filter::Targets, layer::SubscriberExt, Layer};
//!
//! let exported = Targets::new()
//!     .with_default(tracing::Level::INFO)
//!     .with_target("zt::request", tracing::Level::DEBUG);
//! let subscriber = tracing_subscriber::registry()
//!     // The console at INFO: denials, not every request.
//!     .with(tracing_subscriber::fmt::layer().with_filter(tracing::level_filters::LevelFilter::INFO))
//!     // Stands for `tracing_opentelemetry::layer()`: every `zt.request` span.
//!     .with(tracing_subscriber::fmt::layer().json().with_filter(exported));
//! # drop(subscriber);
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::Span;
use tracing::field::Empty;

use crate::request::RequestView;

/// A request id: unique per process run, unguessable across runs; or, when the policy
/// trusts it (`[request_id]`, see [`crate::correlation`]), the validated incoming
/// `x-request-id`. It also carries the request's W3C trace id, when a valid `traceparent`
/// came with it, so every event that names the request names its trace too.
///
/// Held inline in 57 bytes (at most
/// [`MAX_REQUEST_ID_LEN`](crate::correlation::MAX_REQUEST_ID_LEN) id bytes, the trace id
/// as 16 binary bytes): copying one (the observer keeps it until the response) allocates
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    id: [u8; crate::correlation::MAX_REQUEST_ID_LEN],
    len: u8,
    /// The trace id's 16 bytes, all zero when there is none (the all-zero trace id is
    /// invalid in W3C Trace Context, so it cannot be a real one).
    trace: [u8; 16],
}

/// The length of a generated id: twenty lower-case hex digits.
const REQUEST_ID_LEN: usize = 20;

const HEX: &[u8; 16] = b"0123456789abcdef";

impl RequestId {
    /// A fresh id: a random per-process prefix and a counter (cheap, no syscall per call).
    pub fn generate() -> RequestId {
        static PREFIX: OnceLock<u32> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(rand::random::<u32>);
        // Each thread takes a block of numbers from the shared counter and counts within it:
        // one shared atomic add per block, not per request (issue 17: a counter written by
        // every request bounced its cache line between the runtime's worker cores). Ids stay
        // unique per process; they are no longer in arrival order across threads.
        const BLOCK: u64 = 1024;
        thread_local! {
            static NEXT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
        }
        let n = NEXT.with(|next| {
            let (mut n, mut end) = next.get();
            if n == end {
                n = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
                end = n + BLOCK;
            }
            next.set((n + 1, end));
            n
        });
        // Hand-rolled hex: `format!` showed up in profiles of the cached-token path.
        let mut id = [0u8; crate::correlation::MAX_REQUEST_ID_LEN];
        for (i, shift) in (0..8).rev().enumerate() {
            id[i] = HEX[((prefix >> (shift * 4)) & 0xf) as usize];
        }
        for (i, shift) in (0..12).rev().enumerate() {
            id[8 + i] = HEX[((n >> (shift * 4)) & 0xf) as usize];
        }
        RequestId { id, len: REQUEST_ID_LEN as u8, trace: [0; 16] }
    }

    /// An incoming id that passed [`crate::correlation::valid_request_id`] (ASCII, bounded).
    pub(crate) fn from_validated(incoming: &[u8]) -> Option<RequestId> {
        let mut id = [0u8; crate::correlation::MAX_REQUEST_ID_LEN];
        id.get_mut(..incoming.len())?.copy_from_slice(incoming);
        Some(RequestId { id, len: incoming.len() as u8, trace: [0; 16] })
    }

    /// Attaches a validated trace id (32 lower-case hex digits; anything else is ignored).
    pub(crate) fn set_trace_id(&mut self, hex: &[u8]) {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut trace = [0u8; 16];
        if hex.len() != 32 {
            return;
        }
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else { return };
            trace[i] = high << 4 | low;
        }
        self.trace = trace;
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII (generated hex, or validated); the fallback is unreachable.
        std::str::from_utf8(&self.id[..usize::from(self.len)]).unwrap_or("")
    }

    /// The W3C trace id of the request's `traceparent`, when it sent a valid one.
    ///
    /// ```
    /// assert!(zt_core::RequestId::generate().trace_id().is_none());
    /// ```
    pub fn trace_id(&self) -> Option<TraceId> {
        if self.trace == [0; 16] {
            return None;
        }
        let mut text = [0u8; 32];
        for (i, byte) in self.trace.iter().enumerate() {
            text[2 * i] = HEX[usize::from(byte >> 4)];
            text[2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        Some(TraceId(text))
    }
}

/// A W3C trace id as text: 32 lower-case hex digits ([`RequestId::trace_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId([u8; 32]);

impl TraceId {
    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        // Always ASCII hex (built by `RequestId::trace_id`); the fallback is unreachable.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level of the per-request span (`span_level` in the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanLevel {
    /// `TRACE`.
    Trace,
    /// `DEBUG` (default): off under an INFO subscriber, on for an exporter that asks.
    #[default]
    Debug,
    /// `INFO`: formatted by an INFO `fmt` subscriber on every request.
    Info,
}

/// One span callsite per level: a `tracing` callsite's level is fixed at compile time.
macro_rules! request_span_at {
    ($level:expr, $view:expr, $request_id:expr, $trace:expr, $mode:expr) => {
        tracing::span!(
            target: "zt::request",
            $level,
            "zt.request",
            http.request.method = $view.method,
            // The path the client sent, also when an outer router stripped a prefix.
            url.path = $view.headers.sent_path().unwrap_or($view.path),
            http.route = Empty,
            client.address = Empty,
            http.response.status_code = Empty,
            enduser.id = Empty,
            zt.request_id = $request_id.as_str(),
            // The W3C trace id of a valid incoming `traceparent` (see `crate::correlation`).
            trace_id = $trace,
            zt.decision = Empty,
            zt.reason = Empty,
            zt.auth_method = Empty,
            zt.client_id = Empty,
            zt.required_scopes = Empty,
            zt.mode = $mode,
            graphql.operation.name = Empty,
            graphql.operation.type = Empty,
            zt.graphql.document_hash = Empty,
            zt.graphql.cost = Empty,
        )
    };
}

pub(crate) fn request_span(
    view: &RequestView<'_>,
    request_id: &RequestId,
    mode: &'static str,
    level: SpanLevel,
) -> Span {
    let trace = request_id.trace_id();
    let trace = trace.as_ref().map(TraceId::as_str);
    let span = match level {
        SpanLevel::Trace => request_span_at!(tracing::Level::TRACE, view, request_id, trace, mode),
        SpanLevel::Debug => request_span_at!(tracing::Level::DEBUG, view, request_id, trace, mode),
        SpanLevel::Info => request_span_at!(tracing::Level::INFO, view, request_id, trace, mode),
    };
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
