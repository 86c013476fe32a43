//! Where quota state lives: this process ([`MemoryStore`]) or a shared Redis
//! ([`RedisStore`](super::RedisStore), feature `redis`).

use std::sync::Arc;
use std::time::Duration;

use crate::limit::decision::LimitCheck;
use crate::limit::key::LimitKey;
use crate::limit::quota::QuotaRule;

/// A place to keep GCRA state. Implementations must never fail a check: an unreachable
/// store resolves to its fail mode's decision, and says so in a `zt::limit` event.
pub trait RateStore: Send + Sync + 'static {
    /// Takes `cost` requests' worth of `rule` for `key` (`cost` is 1 unless the key is
    /// tightened). Synchronous stores answer [`LimitCheck::Ready`].
    fn check(&self, rule: &Arc<QuotaRule>, key: LimitKey<'_>, cost: u32) -> LimitCheck;

    /// [`check`](Self::check) of `units` units (1 for a request; a GraphQL charge's
    /// selections) on a route of the given access; `cost` is `units` times this replica's
    /// tightening factor. A shared store applies the larger of that and `units` times the
    /// key's shared throttle factor, and in an outage decides [`RouteAccess::Public`] checks
    /// with the whole local quota whatever its fail mode (see
    /// [`FailMode`](super::FailMode)). The default ignores `units` and `access`.
    fn check_on(
        &self,
        rule: &Arc<QuotaRule>,
        key: LimitKey<'_>,
        cost: u32,
        units: u32,
        access: RouteAccess,
    ) -> LimitCheck {
        let _ = (units, access);
        self.check(rule, key, cost)
    }

    /// `key` is tightened by `factor` for `duration` (already applied to this replica's own
    /// table): a shared store shares it with the other replicas, expiring with it. The
    /// default does nothing (the factor stays with this replica).
    fn tighten(&self, key: LimitKey<'_>, factor: u32, duration: Duration) {
        let _ = (key, factor, duration);
    }

    /// A short name for logs: `memory`, `redis`.
    fn kind(&self) -> &'static str;
}

/// Whether a route needs a credential: what a shared store does with its checks while it
/// cannot be reached.
///
/// ```
/// use zt_core::limit::RouteAccess;
///
/// assert_eq!(RouteAccess::default(), RouteAccess::Protected);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RouteAccess {
    /// The route needs a credential (default): in an outage the fail mode decides (`bounded`:
    /// the replica's share; `fail_closed`: 503).
    #[default]
    Protected,
    /// Anyone may call the route (the policy gives it no requirement: health and readiness
    /// probes, for instance): during an outage it keeps the whole local quota under every
    /// fail mode, so probes are never refused or failed because the shared store is down.
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
