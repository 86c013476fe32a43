//! One quota: its parameters and its in-memory GCRA state.
//!
//! The arithmetic is governor's GCRA (`RateLimiter::check_key`/`check_key_n`); only the
//! state store is ours. governor's keyed store is an unbounded `DashMap` that needs a
//! caller-run `retain_recent`; here governor's `StateStore` is implemented on a
//! [`BoundedMap`](super::key::BoundedMap) of theoretical arrival times (TAT, 8 bytes per key)
//! that never holds more than the configured capacity and evicts cold keys on insert. An
//! evicted key is one nobody asked about lately; if it comes back it starts with a full
//! burst, which for a key idle longer than its window is exactly what GCRA would say anyway.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use quick_cache::sync::{EntryAction, EntryResult};

use crate::limit::clock::LimitClock;
use crate::limit::config::{QuotaConfig, Rate};
use crate::limit::decision::RateDecision;
use crate::limit::key::{BoundedMap, KeyDigest, LimitKey, bounded_map};

/// The longest window (burst x interval) a quota may have; governor keeps time in u64
/// nanoseconds, and nobody needs a year-long burst.
const MAX_WINDOW: Duration = Duration::from_secs(365 * 86_400);

/// governor state store on a bounded map: key digest -> TAT (nanoseconds since the
/// limiter's start; 0 never occurs, as every TAT is at least one interval).
struct BoundedState {
    map: Arc<BoundedMap<u64>>,
}

impl StateStore for BoundedState {
    type Key = KeyDigest;

    fn measure_and_replace<T, F, E>(&self, key: &KeyDigest, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The shard's write lock is held only while `f` (a few arithmetic operations) runs:
        // no CAS loop, and no per-key allocation as an `Arc<AtomicU64>` would need.
        let result = self.map.entry(key, None, |_, tat| {
            let previous = (*tat != 0).then(|| Nanos::from(*tat));
            match f(previous) {
                Ok((value, next)) => {
                    *tat = next.as_u64();
                    EntryAction::Retain(Ok(value))
                }
                Err(e) => EntryAction::Retain(Err(e)),
            }
        });
        match result {
            EntryResult::Retained(r) => r,
            EntryResult::Vacant(guard) => {
                let (value, next) = f(None)?;
                // Err only if the placeholder was abandoned, which nothing here does.
                let _ = guard.insert(next.as_u64());
                Ok(value)
            }
            // Not produced for a callback that always retains and an unbounded wait: decide
            // as for a new key, without storing.
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => {
                f(None).map(|(v, _)| v)
            }
        }
    }
}

/// A compiled quota: name, rate, burst, and its in-memory state (the whole state for the
/// memory store, the fallback for the Redis store).
pub struct QuotaRule {
    name: Arc<str>,
    rate: Rate,
    burst: u32,
    interval: Duration,
    window: Duration,
    limiter: RateLimiter<KeyDigest, BoundedState, LimitClock, StateInformationMiddleware>,
    /// The limiter's map, shared to count keys (governor does not lend its store).
    keys: Arc<BoundedMap<u64>>,
    /// The clock reading governor took as its origin (TATs in `keys` count from it), for
    /// the shared stores' mirror of the shared state.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    start: u64,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    clock: LimitClock,
}

impl std::fmt::Debug for QuotaRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaRule")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("tracked_keys", &self.tracked_keys())
            .finish()
    }
}

impl QuotaRule {
    /// Compiles a quota; the error says what is wrong (the caller names the entry).
    pub(crate) fn new(
        name: Arc<str>,
        quota: &QuotaConfig,
        capacity: usize,
        clock: LimitClock,
    ) -> Result<QuotaRule, String> {
        let burst = quota.effective_burst();
        let burst_nz = NonZeroU32::new(burst).ok_or("the burst must be at least 1")?;
        let interval = quota.rate.interval();
        let window = interval.saturating_mul(burst);
        if window > MAX_WINDOW {
            return Err("burst x (period / count) must not exceed 365 days".into());
        }
        let governor_quota =
            Quota::with_period(interval).ok_or("the rate is too fast")?.allow_burst(burst_nz);
        let keys = Arc::new(bounded_map(capacity));
        let state = BoundedState { map: keys.clone() };
        // Read just before governor reads its own origin: with the monotonic clock this one
        // is at most a few nanoseconds earlier, which makes mirrored TATs later by as much
        // (stricter, never laxer).
        let start = clock.now_nanos();
        let limiter = RateLimiter::<KeyDigest, BoundedState, LimitClock, StateInformationMiddleware>::new(
            governor_quota,
            state,
            clock.clone(),
        );
        Ok(QuotaRule { name, rate: quota.rate, burst, interval, window, limiter, keys, start, clock })
    }

    /// The policy name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy name, shared (as [`RateDecision::policy`] holds it).
    pub fn policy(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The sustained rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The burst (the `q` of `RateLimit-Policy`).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The emission interval (period / count).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The time over which the burst is replenished (the `w` of `RateLimit-Policy`).
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Keys held in memory for this quota (at most the configured capacity).
    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    /// Takes `cost` requests' worth (1 normally; the tightening factor for a tightened key,
    /// clamped to the burst) from this quota for `key`, in memory.
    pub fn check_local(&self, key: LimitKey<'_>, cost: u32) -> RateDecision {
        self.check_digest(KeyDigest::of(key), cost)
    }

    pub(crate) fn check_digest(&self, digest: KeyDigest, cost: u32) -> RateDecision {
        let cost = cost.clamp(1, self.burst);
        let result = match NonZeroU32::new(cost) {
            Some(n) if cost > 1 => match self.limiter.check_key_n(&digest, n) {
                Ok(result) => result,
                // Unreachable: the cost is clamped to the burst. Refuse for a full window.
                Err(_) => return self.refused(self.window, self.window, cost),
            },
            _ => self.limiter.check_key(&digest),
        };
        match result {
            Ok(snapshot) => {
                let cells = snapshot.remaining_burst_capacity().min(self.burst);
                // The snapshot hides the new TAT; `burst - cells` intervals is an upper
                // bound of the time to a full quota, off by less than one interval.
                let reset = self.interval.saturating_mul(self.burst - cells);
                self.decision(true, cells, reset, None, cost)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                let reset = wait.saturating_add(self.interval.saturating_mul(self.burst - cost));
                self.refused(wait, reset, cost)
            }
        }
    }

    /// How far `digest`'s theoretical arrival time lies ahead of now in the in-memory state
    /// (zero for a key with a whole quota or none at all): what this replica knows the key
    /// has spent, for the shared stores' repair of a store that forgot it.
    #[cfg(feature = "redis")]
    pub(crate) fn ahead(&self, digest: KeyDigest) -> Duration {
        let Some(tat) = self.keys.peek(&digest) else { return Duration::ZERO };
        let now = self.clock.now_nanos().saturating_sub(self.start);
        Duration::from_nanos(tat.saturating_sub(now))
    }

    /// Records what a shared store answered for `digest`: its quota is whole again after
    /// `reset`. Only ever moves the in-memory TAT later, so what this replica charged by
    /// itself (during an outage) is kept; the fallback then starts from the shared state.
    #[cfg(feature = "redis")]
    pub(crate) fn mirror(&self, digest: KeyDigest, reset: Duration) {
        let now = self.clock.now_nanos().saturating_sub(self.start);
        let tat = now.saturating_add(super::clock::nanos(reset.min(self.window)));
        if tat == 0 || self.keys.peek(&digest).is_some_and(|t| t >= tat) {
            return; // Nothing to learn (the common case once a key is mirrored: a read lock).
        }
        match self.keys.entry(&digest, None, |_, t| {
            *t = (*t).max(tat);
            EntryAction::Retain(())
        }) {
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(tat);
            }
            EntryResult::Retained(())
            | EntryResult::Removed(..)
            | EntryResult::Replaced(..)
            | EntryResult::Timeout => {}
        }
    }

    /// A refusal for a charge larger than the burst: it can never be afforded at once, so
    /// it is refused without touching the bucket (the store would clamp it to the burst).
    pub(crate) fn over_burst(&self) -> RateDecision {
        self.decision(false, 0, self.window, Some(self.window), 1)
    }

    fn refused(&self, wait: Duration, reset: Duration, cost: u32) -> RateDecision {
        self.decision(false, 0, reset, Some(wait), cost)
    }

    /// Builds a decision from cells (the quota's unit) for a request costing `cost` cells.
    pub(crate) fn decision(
        &self,
        allowed: bool,
        remaining_cells: u32,
        reset: Duration,
        retry_after: Option<Duration>,
        cost: u32,
    ) -> RateDecision {
        let cost = cost.max(1);
        RateDecision {
            allowed,
            policy: self.name.clone(),
            limit: (self.burst / cost).max(1),
            window: self.window,
            remaining: remaining_cells / cost,
            reset,
            retry_after,
            unavailable: false,
            fallback: false,
        }
    }
}
