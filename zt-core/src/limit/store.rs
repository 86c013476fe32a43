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

    /// A short name for logs: `memory`, `redis`.
    fn kind(&self) -> &'static str;
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
