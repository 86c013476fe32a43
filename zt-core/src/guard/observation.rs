//! The bridge from the Guard to the observer (`crate::observe`): what a request looked like
//! when it was decided, kept until its response is known, then recorded once.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::facts::Facts;
use crate::identity::Identity;
use crate::limit::{LimitKey, Limiter};
use crate::observe::{ActionSink, Decision, EndpointHandle, HeaderFacts, Observer, RequestRecord, Target};
use crate::request::RequestView;
use crate::telemetry::RequestId;

/// The facts of one request for the observer, gathered when it was decided.
#[derive(Debug)]
pub(crate) struct Observation {
    at: SystemTime,
    request_id: RequestId,
    /// The method: one of the standard ones (no allocation), else a copy.
    method: Cow<'static, str>,
    /// Inline up to 64 bytes: the usual path costs no allocation.
    path: ShortText<64>,
    route: Option<Arc<str>>,
    /// The GraphQL operation key (`/graphql query Name`), once the operation was accepted.
    pub(crate) operation: Option<String>,
    /// How near the accepted GraphQL document came to its limits (detection).
    pub(crate) graphql_pressure: Option<f32>,
    client_ip: Option<IpAddr>,
    /// Inline up to 128 bytes (most user agents); at most 512 are kept.
    user_agent: Option<ShortText<128>>,
    headers: HeaderFacts,
    /// The verified caller (shared with the token cache: cloning it allocates nothing).
    identity: Option<Identity>,
    object_ids: Vec<(String, String)>,
    pub(crate) decision: Decision,
    pub(crate) reason: Option<&'static str>,
    pub(crate) denied_status: Option<u16>,
    /// The request body's size, once read.
    pub(crate) request_bytes: u64,
    /// Bytes of the response body the observer wants to classify, if any.
    pub(crate) sample: Option<usize>,
    /// The inventory's endpoint for the matched route, found at arrival.
    endpoint: Option<EndpointHandle>,
}

/// Text kept past the request (a path, a user agent, a content type): inline when it is
/// UTF-8 of at most `N` bytes (`N` < 256), else on the heap. Issue 17: the `String` copies
/// were allocations on every request.
#[derive(Debug)]
pub(super) enum ShortText<const N: usize> {
    Inline([u8; N], u8),
    Heap(String),
}

impl<const N: usize> ShortText<N> {
    /// `bytes` as text (invalid UTF-8 replaced, which then goes to the heap).
    pub(super) fn lossy(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) if text.len() <= N && N <= usize::from(u8::MAX) => {
                let mut inline = [0u8; N];
                inline[..text.len()].copy_from_slice(text.as_bytes());
                ShortText::Inline(inline, text.len() as u8)
            }
            _ => ShortText::Heap(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` above: always UTF-8, the fallback is unreachable.
            ShortText::Inline(bytes, len) => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or(""),
            ShortText::Heap(text) => text,
        }
    }
}

/// How often `maintenance` runs: every this many observed requests.
const MAINTENANCE_EVERY: u64 = 4096;

impl Observation {
    /// What the observer needs of a decided request.
    pub(crate) fn of(
        observer: &Observer,
        view: &RequestView<'_>,
        facts: &Facts<'_>,
        route: Option<&Arc<str>>,
        decision: Decision,
        reason: Option<&'static str>,
        denied_status: Option<u16>,
    ) -> Box<Observation> {
        let (sample, endpoint) = match denied_status {
            None => observer.arrival(view.method, route.map(|r| &**r)),
            Some(_) => (None, None),
        };
        let user_agent = view.headers.nth("user-agent", 0);
        Box::new(Observation {
            at: observer.now(),
            request_id: facts.request_id,
            // The observer keeps the method past the request: static text when standard.
            method: crate::observe::inventory::standard_method(view.method)
                .map_or_else(|| Cow::Owned(view.method.to_string()), Cow::Borrowed),
            path: ShortText::lossy(view.path.as_bytes()),
            route: route.cloned(),
            operation: facts.graphql_operation.clone(),
            graphql_pressure: facts.graphql_pressure,
            client_ip: facts.client_ip,
            user_agent: user_agent.map(|ua| ShortText::lossy(&ua[..ua.len().min(512)])),
            headers: HeaderFacts::of(view.headers),
            identity: facts.identity.clone(),
            // Only templated routes have object ids (the enumeration signal).
            object_ids: facts.params.clone(),
            decision,
            reason,
            denied_status,
            request_bytes: 0,
            sample,
            endpoint,
        })
    }

    /// Marks a denial decided in the body phase (enforced, or logged in report-only mode).
    pub(crate) fn deny(&mut self, reason: &'static str, status: u16, enforced: bool) {
        self.reason = Some(reason);
        if enforced {
            self.decision = Decision::Deny;
            self.denied_status = Some(status);
        } else {
            self.decision = Decision::WouldDeny;
        }
    }

    /// Records the response: its status, body size, and the sampled body prefix.
    pub(crate) fn finish(
        self: Box<Self>,
        observer: &Observer,
        status: u16,
        response_bytes: u64,
        sample: Option<&[u8]>,
    ) {
        let c = &*self;
        let object_ids: Vec<(&str, &str)> =
            c.object_ids.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let trace = c.request_id.trace_id();
        let mut record = RequestRecord::new(
            c.at,
            c.request_id.as_str(),
            &c.method,
            c.path.as_str(),
            c.denied_status.unwrap_or(status),
            c.decision,
        );
        record.route = c.route.as_deref();
        // `trace.id` of the security events: the request's traceparent, when valid.
        record.trace_id = trace.as_ref().map(crate::telemetry::TraceId::as_str);
        // A batch's key names each operation: the first keys this record (baselines,
        // detection); the others are counted in the inventory below.
        let mut operations = c.operation.as_deref().map(|k| k.split(super::graphql::BATCH_KEY_SEPARATOR));
        record.operation = operations.as_mut().and_then(Iterator::next);
        record.reason = c.reason;
        record.graphql_pressure = c.graphql_pressure;
        // Baselines, detection, blocks and throttles key on the one principal.
        record.subject = c.identity.as_ref().map(Identity::principal);
        record.client_id = c.identity.as_ref().and_then(Identity::client_id);
        record.auth_method = c.identity.as_ref().map(Identity::auth_method_name);
        record.client_ip = c.client_ip;
        record.user_agent = c.user_agent.as_ref().map(ShortText::as_str);
        record.headers = c.headers;
        record.request_bytes = c.request_bytes;
        record.response_bytes = response_bytes;
        record.response_sample = sample;
        record.object_ids = &object_ids;
        observer.observe_known(&record, c.endpoint.as_ref());
        for operation in operations.into_iter().flatten() {
            let mut each = record;
            each.operation = Some(operation);
            observer.inventory().record(&each);
        }
        // Counted per thread and added to the shared count in batches: one shared atomic add
        // per batch, not per request (issue 17: a counter written by every request bounced
        // between the runtime's worker cores). Maintenance still runs about once every
        // `MAINTENANCE_EVERY` requests of the process.
        const BATCH: u64 = 64;
        static COUNT: AtomicU64 = AtomicU64::new(0);
        thread_local! {
            static LOCAL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        let flush = LOCAL.with(|local| {
            let n = local.get() + 1;
            local.set(if n == BATCH { 0 } else { n });
            n == BATCH
        });
        if flush {
            let before = COUNT.fetch_add(BATCH, Ordering::Relaxed);
            // The batch covered a multiple of `MAINTENANCE_EVERY`.
            if before.div_ceil(MAINTENANCE_EVERY) != (before + BATCH).div_ceil(MAINTENANCE_EVERY) {
                observer.maintenance();
            }
        }
    }
}

/// Forwards the observer's throttle actions to the limiter.
pub(crate) struct LimiterSink(pub(crate) Limiter);

impl ActionSink for LimiterSink {
    fn throttle(&self, target: &Target, factor: f64, duration: Duration) {
        // The observer speaks of a fraction of the normal rate; the limiter of a cost per
        // request: a tenth of the rate costs ten.
        let cost = if factor > 0.0 { (1.0 / factor).round().clamp(1.0, 1000.0) as u32 } else { 1000 };
        match target {
            // The observer names callers by principal, the key of their quota.
            Target::Principal(principal) => self.0.tighten(LimitKey::Identity(principal), cost, duration),
            Target::Address(ip) => self.0.tighten(LimitKey::Address(*ip), cost, duration),
            // A whole network cannot be tightened key by key; the observer still records and
            // blocks networks itself.
            _ => {}
        }
    }
}
