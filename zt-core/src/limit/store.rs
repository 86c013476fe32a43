//! Where quota state lives: this process ([`MemoryStore`]) or a shared Redis
//! ([`RedisStore`](super::RedisStore), feature `redis`).

use std::sync::Arc;

use crate::limit::decision::LimitCheck;
use crate::limit::key::LimitKey;
use crate::limit::quota::QuotaRule;

/// A place to keep GCRA state. Implementations must never fail a check: an unreachable
/// store resolves to its fail mode's decision, and says so in a `zt::limit` event.
pub trait RateStore: Send + Sync + 'static {
    /// Takes `cost` requests' worth of `rule` for `key` (`cost` is 1 unless the key is
    /// tightened). Synchronous stores answer [`LimitCheck::Ready`].
    fn check(&self, rule: &Arc<QuotaRule>, key: LimitKey<'_>, cost: u32) -> LimitCheck;

    /// [`check`](Self::check) on a route of the given access: a shared store in
    /// `fail_closed` mode refuses only [`RouteAccess::Protected`] checks while it is down,
    /// and decides public ones with the local share. The default ignores `access`.
    fn check_on(&self, rule: &Arc<QuotaRule>, key: LimitKey<'_>, cost: u32, access: RouteAccess) -> LimitCheck {
        let _ = access;
        self.check(rule, key, cost)
    }

    /// A short name for logs: `memory`, `redis`.
    fn kind(&self) -> &'static str;
}

/// Whether a route needs a credential: what a `fail_closed` shared store does with it while
/// it cannot be reached.
///
/// ```
/// use zt_core::limit::RouteAccess;
///
/// assert_eq!(RouteAccess::default(), RouteAccess::Protected);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RouteAccess {
    /// The route needs a credential (default): `fail_closed` answers 503 during an outage.
    #[default]
    Protected,
    /// Anyone may call the route (the policy gives it no requirement: health and readiness
    /// probes, for instance): during an outage it keeps its local share of the quota under
    /// either fail mode, so probes never fail because the shared store is down.
    Public,
}

/// The in-memory store (default): every quota's own bounded map, decided synchronously
/// without allocating. Each replica enforces the whole quota.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryStore;

impl RateStore for MemoryStore {
    fn check(&self, rule: &Arc<QuotaRule>, key: LimitKey<'_>, cost: u32) -> LimitCheck {
        LimitCheck::Ready(rule.check_local(key, cost))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
