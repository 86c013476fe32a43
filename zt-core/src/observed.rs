//! The bridge from the Guard to the observer (`crate::observe`): what a request looked like
//! when it arrived, kept until its response is known.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use std::borrow::Cow;

use crate::guard::Guard;
use crate::identity::Identity;
use crate::limit::{LimitKey, Limiter};
use crate::observe::{ActionSink, Decision, EndpointHandle, HeaderFacts, RequestRecord, Target};
use crate::telemetry::RequestId;

/// The facts of one request for the observer, gathered before the handler runs.
#[derive(Debug, Clone)]
pub struct ObservationContext {
    pub(crate) at: SystemTime,
    pub(crate) request_id: RequestId,
    /// The method: one of the standard ones (no allocation), else a copy.
    pub(crate) method: Cow<'static, str>,
    pub(crate) path: String,
    pub(crate) route: Option<Arc<str>>,
    /// The GraphQL operation key (`/graphql query Name`), when the route is a GraphQL
    /// endpoint and the operation was accepted.
    pub(crate) operation: Option<String>,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) user_agent: Option<String>,
    pub(crate) headers: HeaderFacts,
    /// The verified caller (shared with the token cache: cloning it allocates nothing).
    pub(crate) identity: Option<Identity>,
    pub(crate) auth_method: Option<&'static str>,
    pub(crate) object_ids: Vec<(String, String)>,
    pub(crate) decision: Decision,
    pub(crate) reason: Option<&'static str>,
    pub(crate) denied_status: Option<u16>,
    pub(crate) request_bytes: u64,
    /// Bytes of the response body the observer wants to classify, if any.
    pub sample: Option<usize>,
    /// The inventory's endpoint for the matched route, found at arrival.
    pub(crate) endpoint: Option<EndpointHandle>,
}

/// Hands a request's outcome to the observer once the response is known. Adapters call
/// [`Observed::finish`] exactly once; it does bounded work and never fails.
pub struct Observed {
    pub(crate) guard: Guard,
    pub(crate) context: Box<ObservationContext>,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("request_id", &self.context.request_id.as_str())
            .finish_non_exhaustive()
    }
}

/// How often `maintenance` runs: every this many observed requests.
const MAINTENANCE_EVERY: u64 = 4096;

impl Observed {
    /// How many bytes of the response body to pass to [`Observed::finish`] (sampled
    /// sensitive-data classification), if any.
    pub fn wants_sample(&self) -> Option<usize> {
        self.context.sample
    }

    /// Records the response: its status, body size, and the sampled body prefix.
    pub fn finish(self, status: u16, response_bytes: u64, sample: Option<&[u8]>) {
        let Some(observer) = self.guard.observer() else { return };
        let c = &self.context;
        let object_ids: Vec<(&str, &str)> =
            c.object_ids.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut record = RequestRecord::new(
            c.at,
            c.request_id.as_str(),
            &c.method,
            &c.path,
            c.denied_status.unwrap_or(status),
            c.decision,
        );
        record.route = c.route.as_deref();
        record.operation = c.operation.as_deref();
        record.reason = c.reason;
        record.subject = c.identity.as_ref().and_then(Identity::subject);
        record.client_id = c.identity.as_ref().and_then(Identity::client_id);
        record.auth_method = c.auth_method;
        record.client_ip = c.client_ip;
        record.user_agent = c.user_agent.as_deref();
        record.headers = c.headers;
        record.request_bytes = c.request_bytes;
        record.response_bytes = response_bytes;
        record.response_sample = sample;
        record.object_ids = &object_ids;
        observer.observe_known(&record, c.endpoint.as_ref());
        static COUNT: AtomicU64 = AtomicU64::new(0);
        if COUNT.fetch_add(1, Ordering::Relaxed).is_multiple_of(MAINTENANCE_EVERY) {
            observer.maintenance();
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
            Target::Subject(subject) => self.0.tighten(LimitKey::Identity(subject), cost, duration),
            Target::Address(ip) => self.0.tighten(LimitKey::Address(*ip), cost, duration),
            // A whole network cannot be tightened key by key; the observer still records and
            // blocks networks itself.
            _ => {}
        }
    }
}
