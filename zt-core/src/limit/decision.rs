//! The answer of one quota check, and the response headers it implies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The outcome of taking one request from a quota.
///
/// # Response headers
///
/// [`headers`](RateDecision::headers) renders the fields of the IETF draft
/// `draft-ietf-httpapi-ratelimit-headers` in the structured-field form it has used since
/// draft-08 (unchanged in draft-10, September 2025, and draft-11, May 2026):
///
/// ```text
/// RateLimit-Policy: "default";q=1200;w=120
/// RateLimit: "default";r=1187;t=3
/// Retry-After: 1                      (denials only)
/// ```
///
/// - the item is the policy name as an sf-string;
/// - `q` is the quota in requests: the burst, i.e. what an idle caller may send at once;
/// - `w` is the window in seconds over which `q` is replenished: burst x emission interval,
///   rounded up. GCRA has no fixed window; `q` per `w` is exactly its long-run rate and its
///   largest burst (`600/m` with the default burst 1200 is `q=1200;w=120`);
/// - `r` is the requests left now; `t` the seconds until the quota is whole again,
///   rounded up (never 0 after a request);
/// - `Retry-After` (RFC 9110) is the seconds until the refused request would have been
///   admitted, rounded up and at least 1, never 0 (a 0 invites an immediate retry storm).
///
/// A decision of a shared store that could not be reached in `fail_closed` mode is
/// `unavailable`: no quota fields (nothing is known about the quota), `Retry-After` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateDecision {
    /// Admit the request.
    pub allowed: bool,
    /// The quota's policy name (`default`, `address`, or a route quota's name).
    pub policy: Arc<str>,
    /// The quota in requests (the burst), divided by the tightening factor if the key is
    /// tightened.
    pub limit: u32,
    /// The time over which `limit` is replenished.
    pub window: Duration,
    /// Requests left right now.
    pub remaining: u32,
    /// Time until the quota is whole again.
    pub reset: Duration,
    /// For a refused request: when the same request would be admitted.
    pub retry_after: Option<Duration>,
    /// The shared store could not be reached and the fail mode is `fail_closed` (the Guard
    /// answers 503).
    pub unavailable: bool,
    /// Decided by this replica's in-memory limiter because the shared store could not be
    /// reached (fail mode `fallback_local`).
    pub fallback: bool,
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateDecision {
    /// `Retry-After` in whole seconds: rounded up, at least 1; `None` when allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        if self.allowed {
            return None;
        }
        let wait = self.retry_after.unwrap_or(Duration::ZERO);
        Some(ceil_secs(wait).max(1))
    }

    /// The `RateLimit-Policy` value, e.g. `"default";q=1200;w=120`.
    pub fn policy_header(&self) -> String {
        structured(&self.policy, ("q", u64::from(self.limit)), ("w", ceil_secs(self.window).max(1)))
    }

    /// The `RateLimit` value, e.g. `"default";r=1187;t=3`.
    pub fn ratelimit_header(&self) -> String {
        structured(&self.policy, ("r", u64::from(self.remaining)), ("t", ceil_secs(self.reset)))
    }

    /// The response headers for this decision (names lower-case): `retry-after` when
    /// refused, and `ratelimit-policy` plus `ratelimit` unless `unavailable`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::with_capacity(3);
        if let Some(secs) = self.retry_after_secs() {
            headers.push(("retry-after", secs.to_string()));
        }
        if !self.unavailable {
            headers.push(("ratelimit-policy", self.policy_header()));
            headers.push(("ratelimit", self.ratelimit_header()));
        }
        headers
    }

    /// Of two decisions on one request, the one to answer with: a refusal over an
    /// admission, `unavailable` over a plain refusal, the longer wait between refusals, and
    /// between admissions the quota with the smaller share left.
    pub fn tighter(self, other: RateDecision) -> RateDecision {
        match (self.allowed, other.allowed) {
            (true, false) => other,
            (false, true) => self,
            (false, false) => {
                if other.unavailable != self.unavailable {
                    return if other.unavailable { other } else { self };
                }
                if other.retry_after > self.retry_after { other } else { self }
            }
            (true, true) => {
                // remaining/limit compared without division.
                let mine = u64::from(self.remaining) * u64::from(other.limit.max(1));
                let theirs = u64::from(other.remaining) * u64::from(self.limit.max(1));
                if theirs < mine { other } else { self }
            }
        }
    }

    /// The decision of a shared store that cannot be reached in `fail_closed` mode: refused,
    /// `unavailable`, retry after `retry`.
    pub fn unavailable(policy: Arc<str>, retry: Duration) -> RateDecision {
        RateDecision {
            allowed: false,
            policy,
            limit: 0,
            window: Duration::ZERO,
            remaining: 0,
            reset: Duration::ZERO,
            retry_after: Some(retry),
            unavailable: true,
            fallback: false,
        }
    }
}

/// The result of a quota check: decided at once (in-memory: synchronous, no allocation),
/// waiting for a shared store, or no quota applies.
pub enum LimitCheck {
    /// No quota applies to this request (all quotas of this kind are `off`).
    Unlimited,
    /// Decided.
    Ready(RateDecision),
    /// Waiting for the shared store (one Redis round trip, bounded by its timeout).
    Pending(PendingLimit),
}

impl LimitCheck {
    /// Waits for the decision; `None` when no quota applies.
    pub async fn decision(self) -> Option<RateDecision> {
        match self {
            LimitCheck::Unlimited => None,
            LimitCheck::Ready(d) => Some(d),
            LimitCheck::Pending(p) => Some(p.await),
        }
    }
}

impl std::fmt::Debug for LimitCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitCheck::Unlimited => f.write_str("Unlimited"),
            LimitCheck::Ready(d) => f.debug_tuple("Ready").field(d).finish(),
            LimitCheck::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// A decision waiting for the shared store. It never fails: store errors and timeouts
/// resolve to the fail mode's decision.
pub struct PendingLimit(Pin<Box<dyn Future<Output = RateDecision> + Send>>);

impl PendingLimit {
    /// Wraps a future (for [`RateStore`](super::RateStore) implementations).
    pub fn new(future: impl Future<Output = RateDecision> + Send + 'static) -> PendingLimit {
        PendingLimit(Box::pin(future))
    }
}

impl Future for PendingLimit {
    type Output = RateDecision;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RateDecision> {
        self.0.as_mut().poll(cx)
    }
}

/// `"name";a=1;b=2` (an RFC 9651 item with two integer parameters), without `format!`:
/// these two headers are built for every admitted request, and the formatting machinery
/// showed up in profiles of the whole pipeline.
fn structured(name: &str, a: (&str, u64), b: (&str, u64)) -> String {
    let mut numbers = (itoa::Buffer::new(), itoa::Buffer::new());
    let (first, second) = (numbers.0.format(a.1), numbers.1.format(b.1));
    let mut out = String::with_capacity(name.len() + first.len() + second.len() + 10);
    out.push('"');
    out.push_str(name);
    out.push_str("\";");
    out.push_str(a.0);
    out.push('=');
    out.push_str(first);
    out.push(';');
    out.push_str(b.0);
    out.push('=');
    out.push_str(second);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, remaining: u32, retry_ms: Option<u64>) -> RateDecision {
        RateDecision {
            allowed,
            policy: "default".into(),
            limit: 100,
            window: Duration::from_secs(60),
            remaining,
            reset: Duration::from_millis(16_200),
            retry_after: retry_ms.map(Duration::from_millis),
            unavailable: false,
            fallback: false,
        }
    }

    fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn allowed_headers_use_structured_fields() {
        let h = decision(true, 42, None).headers();
        assert_eq!(header(&h, "ratelimit-policy"), Some("\"default\";q=100;w=60"));
        assert_eq!(header(&h, "ratelimit"), Some("\"default\";r=42;t=17"));
        assert_eq!(header(&h, "retry-after"), None);
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        for (ms, secs) in [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_000, 59), (59_001, 60)] {
            let d = decision(false, 0, Some(ms));
            assert_eq!(d.retry_after_secs(), Some(secs), "{ms} ms");
            assert_eq!(header(&d.headers(), "retry-after"), Some(secs.to_string().as_str()));
        }
        let mut no_wait = decision(false, 0, None);
        assert_eq!(no_wait.retry_after_secs(), Some(1));
        no_wait.window = Duration::from_millis(20);
        assert_eq!(no_wait.policy_header(), "\"default\";q=100;w=1");
    }

    #[test]
    fn unavailable_has_only_retry_after() {
        let d = RateDecision::unavailable("default".into(), Duration::from_millis(300));
        let h = d.headers();
        assert_eq!(h, vec![("retry-after", "1".to_string())]);
    }

    #[test]
    fn tighter_prefers_refusal_then_smaller_share() {
        let allow_many = decision(true, 90, None);
        let allow_few = decision(true, 3, None);
        let deny = decision(false, 0, Some(5000));
        assert_eq!(allow_many.clone().tighter(allow_few.clone()).remaining, 3);
        assert_eq!(allow_few.clone().tighter(allow_many.clone()).remaining, 3);
        assert!(!allow_many.clone().tighter(deny.clone()).allowed);
        assert!(!deny.clone().tighter(allow_many).allowed);
        let unavailable = RateDecision::unavailable("x".into(), Duration::from_secs(1));
        assert!(deny.tighter(unavailable).unavailable);
    }
}
