//! Brute-force lockout: keys that fail authentication too often are refused for a while.
//!
//! Two kinds of keys are counted:
//! - the client address (grouped like quota keys), for every failed authentication;
//! - the presented subject, but **only when the token's signature verified** and a later
//!   check failed (expired, not yet valid, wrong audience, claim rules; see
//!   [`Lockout::counts`]). The `sub` of a token whose signature did not verify is
//!   whatever the sender wrote: counting it would let anyone lock a victim out by sending
//!   forged tokens that name them.
//!
//! `threshold` failures within `window` (counted from the key's first failure) lock the key
//! out for `base`, doubling with each repeat lockout up to `max`. A key that stays clean for
//! `max` after a lockout ended starts again from `base`. Lockouts end on their own; the table
//! holds at most `capacity` keys and evicts cold ones by itself.
//!
//! # Token expiry is not an attack
//!
//! A token that failed only because it expired ([`Reason::TokenExpired`]: its signature
//! verified first, [`Lockout::counts`]) is not a guess at a credential: nobody can produce one
//! without the issuer, and a client whose token lapsed typically sends a few more requests
//! with it before its refresh lands. Behind one NAT address, a handful of such clients used
//! to lock everyone out. Such failures never count toward a lockout (the 401 still answers
//! them); every other failed verification does.
//!
//! `record_success` clears a key's failure count but never an active lockout or the repeat
//! level. Calling it for a client address lets anyone who holds one valid token reset their
//! address's count between guesses; prefer calling it for subjects only.
//!
//! Lockout start (WARN) and end (INFO) are events on target `zt::limit`, naming the key in
//! structured fields only (`client.address` or `enduser.id`). The end event is emitted by the
//! first lockout call at or after the end time (no timer thread).
//!
//! # Across replicas (with a `[fleet]`)
//!
//! Checks stay local lookups ([`Lockout::locked`] never waits). What is shared:
//! - **Failure counts**: every failure is counted here at once and, in a task spawned on the
//!   current Tokio runtime, by one atomic script on the key's shared record
//!   (`{prefix}:v1:lo:a:{address}` / `..:lo:i:{identity}`: count, window start, repeat
//!   level, lock end, expiring with the window or `max` after the lock ends). The script
//!   locks at the threshold with the same doubling levels, and in the same atomic step
//!   publishes the lock on the fleet's bus (topic `lockout`); the replica that counted it
//!   applies it when the script answers, the others when the message arrives.
//! - **Locks** are also indexed in Redis (`{prefix}:v1:lo:locks`, scored by their end) and
//!   loaded by every resync (on (re)subscribing and every `sync_interval`): a replica that
//!   starts, restarts or missed a message enforces the current locks within one interval
//!   (`Guard::warm_up` waits for the first). Local locks are never shortened by a resync.
//! - [`Lockout::record_success`] clears the shared count too, when this replica saw failures
//!   for the key (a success elsewhere leaves the shared count to its window: stricter).
//!
//! **Guesses across `N` replicas**, Redis up: `threshold`, plus the requests already past
//! the lockout check when the threshold-th failure was counted (at most those answered
//! within one script round trip and one pub/sub delivery: the script runs in the
//! background, the 401 does not wait for it) — not `threshold × N`. Measured on loopback
//! with 3 replicas and sequential guesses (`tests/fleet_limits.rs`): locked after 6 to 8
//! guesses at a threshold of 6 (18 without sharing). Each
//! failure's script also carries this replica's own count as a floor, so a Redis that lost
//! its keys resumes from what each replica saw.
//!
//! Redis down (the fleet's last round trip failed): each replica counts and locks by itself
//! at `max(1, threshold / N)` failures (`N`: the live replica count last seen), so the fleet
//! allows at most `N × max(1, ⌊threshold / N⌋) ≤ max(threshold, N)` guesses per window;
//! counts made while up are part of the same local window, so nothing restarts from zero.
//! Locks decided during an outage stay on the replica that decided them.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
#[cfg(feature = "redis")]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use quick_cache::sync::{EntryAction, EntryResult};
use tracing::Level;

use crate::denial::Reason;
use crate::limit::clock::{LimitClock, nanos};
use crate::limit::config::LockoutConfig;
use crate::limit::key::{BoundedMap, KeyDigest, LimitKey, OwnedKey, bounded_map, key_event};

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    window_start: u64,
    locked_until: u64,
    /// Lockouts so far (the next one lasts `base * 2^level`).
    level: u32,
}

/// A lockout whose end event is still due.
struct PendingEnd {
    until: u64,
    digest: KeyDigest,
    key: OwnedKey,
}

impl PartialEq for PendingEnd {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for PendingEnd {}
impl PartialOrd for PendingEnd {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for PendingEnd {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.until, self.digest).cmp(&(other.until, other.digest))
    }
}

/// The lockout table. Obtain it from [`Limiter::lockout`](super::Limiter::lockout).
pub struct Lockout {
    enabled: bool,
    threshold: u32,
    window: u64,
    base: Duration,
    max: Duration,
    capacity: usize,
    table: BoundedMap<Entry>,
    clock: LimitClock,
    /// No key is locked at or after this time: `locked` skips the table until then.
    horizon: AtomicU64,
    /// End events still due, earliest first; at most `capacity`.
    ends: Mutex<BinaryHeap<Reverse<PendingEnd>>>,
    /// The earliest due end event (`u64::MAX`: none).
    next_end: AtomicU64,
    /// The shared counts and locks, with a `[fleet]`.
    #[cfg(feature = "redis")]
    pub(super) shared: Option<super::lockout_fleet::SharedLockout>,
}

impl std::fmt::Debug for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockout")
            .field("enabled", &self.enabled)
            .field("threshold", &self.threshold)
            .field("tracked_keys", &self.len())
            .finish_non_exhaustive()
    }
}

impl Lockout {
    /// Whether a failed verification for `reason` counts toward the presenting address's
    /// lockout: an authentication failure ([`Reason::is_authentication_failure`]) other
    /// than an expired token (see the module docs).
    ///
    /// ```
    /// use zt_core::Reason;
    /// use zt_core::limit::Lockout;
    ///
    /// assert!(Lockout::counts(Reason::InvalidSignature));
    /// assert!(!Lockout::counts(Reason::TokenExpired));
    /// assert!(!Lockout::counts(Reason::MissingCredentials));
    /// ```
    pub fn counts(reason: Reason) -> bool {
        reason.is_authentication_failure() && reason != Reason::TokenExpired
    }

    /// Validates the configuration; errors name the entry (`limits.lockout.*`).
    pub(crate) fn new(
        config: &LockoutConfig,
        capacity: usize,
        clock: LimitClock,
    ) -> Result<Lockout, crate::PolicyError> {
        let invalid = crate::PolicyError::invalid;
        if config.enabled {
            if config.threshold == 0 {
                return Err(invalid("limits.lockout.threshold", "must be at least 1"));
            }
            if config.window.is_zero() {
                return Err(invalid("limits.lockout.window", "must be longer than zero"));
            }
            if config.base.is_zero() {
                return Err(invalid("limits.lockout.base", "must be longer than zero"));
            }
            if config.max < config.base {
                return Err(invalid("limits.lockout.max", "must not be shorter than `base`"));
            }
            if config.max > Duration::from_secs(365 * 86_400) {
                return Err(invalid("limits.lockout.max", "must not exceed 365 days"));
            }
        }
        Ok(Lockout {
            enabled: config.enabled,
            threshold: config.threshold,
            window: nanos(config.window),
            base: config.base,
            max: config.max,
            capacity,
            table: bounded_map(if config.enabled { capacity } else { 1 }),
            clock,
            horizon: AtomicU64::new(0),
            ends: Mutex::new(BinaryHeap::new()),
            next_end: AtomicU64::new(u64::MAX),
            #[cfg(feature = "redis")]
            shared: None,
        })
    }

    /// Shares failure counts and locks through `fleet` (see the module docs); without one,
    /// or when lockout is off, the table stays local.
    #[cfg(feature = "redis")]
    pub(crate) fn on_fleet(mut self, fleet: Option<crate::fleet::Fleet>) -> Arc<Lockout> {
        let Some(fleet) = fleet.filter(|_| self.enabled) else { return Arc::new(self) };
        let lockout = Arc::new_cyclic(|this| {
            self.shared = Some(super::lockout_fleet::SharedLockout::new(fleet.clone(), this.clone()));
            self
        });
        super::lockout_fleet::listen(&fleet, &lockout);
        lockout
    }

    #[cfg(feature = "redis")]
    pub(super) fn threshold(&self) -> u32 {
        self.threshold
    }

    #[cfg(feature = "redis")]
    pub(super) fn window(&self) -> Duration {
        Duration::from_nanos(self.window)
    }

    #[cfg(feature = "redis")]
    pub(super) fn base(&self) -> Duration {
        self.base
    }

    #[cfg(feature = "redis")]
    pub(super) fn max(&self) -> Duration {
        self.max
    }

    #[cfg(feature = "redis")]
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The threshold this replica locks at by itself: the whole one, or with the shared
    /// store down its share.
    fn local_threshold(&self) -> u32 {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared
            && !shared.reachable()
        {
            return (self.threshold / shared.divisor()).max(1);
        }
        self.threshold
    }

    /// Whether lockout is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Keys in the table (at most the capacity).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn lock_duration(&self, level: u32) -> Duration {
        self.base.saturating_mul(2u32.saturating_pow(level)).min(self.max)
    }

    /// Counts a failed authentication. Returns the lockout's length when this failure
    /// started one here. Failures of a key that is locked out already are not counted.
    ///
    /// With a `[fleet]` the failure is also counted on the shared record, asynchronously: a
    /// lock the shared count decides is applied when the script answers (and this returns
    /// `None` for it).
    pub fn record_failure(&self, key: LimitKey<'_>) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let now = self.clock.now_nanos();
        self.sweep(now);
        let max = nanos(self.max);
        let threshold = self.local_threshold();
        // (failures before this one, the lockout it started): None when not counted.
        let update = |e: &mut Entry| -> Option<(u32, Option<(Duration, u32)>)> {
            if e.locked_until > now {
                return None;
            }
            if e.level > 0 && now >= e.locked_until.saturating_add(max) {
                e.level = 0;
            }
            if e.failures == 0 || now.saturating_sub(e.window_start) >= self.window {
                e.failures = 0;
                e.window_start = now;
            }
            let before = e.failures;
            e.failures += 1;
            if e.failures < threshold {
                return Some((before, None));
            }
            let duration = self.lock_duration(e.level);
            e.level = e.level.saturating_add(1);
            e.failures = 0;
            e.locked_until = now.saturating_add(nanos(duration));
            Some((before, Some((duration, e.level))))
        };
        let digest = KeyDigest::of(key);
        let counted = match self.table.entry(&digest, None, |_, e| EntryAction::Retain(update(e))) {
            EntryResult::Retained(counted) => counted,
            EntryResult::Vacant(guard) => {
                let mut e = Entry::default();
                let counted = update(&mut e);
                let _ = guard.insert(e);
                counted
            }
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => None,
        };
        let (before, started) = counted?;
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            shared.count_failure(key, before);
        }
        #[cfg(not(feature = "redis"))]
        let _ = before;
        let (duration, level) = started?;
        let until = now.saturating_add(nanos(duration));
        self.horizon.fetch_max(until, Ordering::AcqRel);
        self.schedule_end(until, digest, key);
        key_event!(
            Level::WARN,
            key,
            "lockout started",
            zt.lockout.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            zt.lockout.level = level,
            zt.lockout.failures = threshold
        );
        Some(duration)
    }

    /// Applies a lock decided by the shared count (`announce`: by this replica's script, so
    /// this replica emits the start and end events; else quietly, the deciding replica
    /// does). Never shortens a lock already held. True when it changed anything.
    #[cfg(feature = "redis")]
    pub(super) fn apply_lock(
        &self,
        key: LimitKey<'_>,
        remaining: Duration,
        level: u32,
        announce: bool,
    ) -> bool {
        if !self.enabled || remaining.is_zero() {
            return false;
        }
        let now = self.clock.now_nanos();
        let until = now.saturating_add(nanos(remaining));
        let merge = |e: &mut Entry| -> bool {
            let longer = until > e.locked_until;
            if longer {
                e.locked_until = until;
                e.failures = 0;
            }
            e.level = e.level.max(level);
            longer
        };
        let digest = KeyDigest::of(key);
        let longer = match self.table.entry(&digest, None, |_, e| EntryAction::Retain(merge(e))) {
            EntryResult::Retained(longer) => longer,
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(Entry { failures: 0, window_start: now, locked_until: until, level });
                true
            }
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => false,
        };
        if !longer {
            return false;
        }
        self.horizon.fetch_max(until, Ordering::AcqRel);
        if announce {
            self.schedule_end(until, digest, key);
            key_event!(
                Level::WARN,
                key,
                "lockout started",
                zt.lockout.duration_ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
                zt.lockout.level = level,
                zt.lockout.failures = self.threshold,
                zt.lockout.shared = true
            );
        } else {
            key_event!(
                Level::DEBUG,
                key,
                "lockout applied from the fleet",
                zt.lockout.duration_ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX)
            );
        }
        true
    }

    /// Clears a key's failure count (not an active lockout, not the repeat level).
    pub fn record_success(&self, key: LimitKey<'_>) {
        if !self.enabled {
            return;
        }
        let digest = KeyDigest::of(key);
        // Most successes concern keys without failures: a read lock answers those.
        if self.table.peek(&digest).is_none_or(|e| e.failures == 0) {
            return;
        }
        let _ = self.table.entry(&digest, None, |_, e| {
            e.failures = 0;
            EntryAction::Retain(())
        });
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            shared.clear_failures(key);
        }
    }

    /// How much longer `key` is locked out, if it is.
    pub fn locked(&self, key: LimitKey<'_>) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let now = self.clock.now_nanos();
        self.sweep(now);
        if now >= self.horizon.load(Ordering::Acquire) {
            return None;
        }
        let entry = self.table.get(&KeyDigest::of(key))?;
        (entry.locked_until > now).then(|| Duration::from_nanos(entry.locked_until - now))
    }

    fn schedule_end(&self, until: u64, digest: KeyDigest, key: LimitKey<'_>) {
        let mut ends = match self.ends.lock() {
            Ok(ends) => ends,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ends.len() >= self.capacity {
            tracing::debug!(target: "zt::limit", "too many simultaneous lockouts: this one's end event is skipped");
            return;
        }
        ends.push(Reverse(PendingEnd { until, digest, key: OwnedKey::of(key) }));
        self.next_end.fetch_min(until, Ordering::AcqRel);
    }

    /// Emits the end events that are due. Cheap when none is: one atomic load.
    fn sweep(&self, now: u64) {
        if now < self.next_end.load(Ordering::Acquire) {
            return;
        }
        let mut ends = match self.ends.try_lock() {
            Ok(ends) => ends,
            // Another thread is sweeping or scheduling; it will get there.
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        while let Some(Reverse(due)) = ends.peek()
            && due.until <= now
        {
            if let Some(Reverse(due)) = ends.pop() {
                // A newer lockout of the same key has its own entry in the heap.
                let current = self.table.peek(&due.digest).is_none_or(|e| e.locked_until == due.until);
                if current {
                    key_event!(Level::INFO, due.key.as_key(), "lockout ended");
                }
            }
        }
        let next = ends.peek().map_or(u64::MAX, |Reverse(due)| due.until);
        self.next_end.store(next, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::clock::ManualClock;
    use std::net::IpAddr;

    fn lockout(threshold: u32) -> (Lockout, ManualClock) {
        let manual = ManualClock::new();
        let config = LockoutConfig {
            enabled: true,
            threshold,
            window: Duration::from_secs(60),
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        };
        (Lockout::new(&config, 1000, manual.clock()).unwrap(), manual)
    }

    fn addr(s: &str) -> LimitKey<'static> {
        LimitKey::Address(s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn threshold_locks_and_lock_expires() {
        let (l, clock) = lockout(3);
        let key = addr("203.0.113.9");
        assert_eq!(l.record_failure(key), None);
        assert_eq!(l.record_failure(key), None);
        assert_eq!(l.locked(key), None);
        assert_eq!(l.record_failure(key), Some(Duration::from_secs(30)));
        assert_eq!(l.locked(key), Some(Duration::from_secs(30)));
        assert_eq!(l.locked(addr("203.0.113.10")), None);
        // Failures while locked are not counted.
        assert_eq!(l.record_failure(key), None);
        clock.advance(Duration::from_secs(29));
        assert_eq!(l.locked(key), Some(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.locked(key), None);
    }

    #[test]
    fn repeat_lockouts_double_up_to_max() {
        let (l, clock) = lockout(2);
        let key = LimitKey::Identity("alice");
        let mut seen = Vec::new();
        for _ in 0..10 {
            l.record_failure(key);
            let d = l.record_failure(key).unwrap();
            seen.push(d.as_secs());
            clock.advance(d);
            assert_eq!(l.locked(key), None);
        }
        assert_eq!(seen, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        // A clean stretch as long as `max` forgives the history.
        clock.advance(Duration::from_secs(3600));
        l.record_failure(key);
        assert_eq!(l.record_failure(key), Some(Duration::from_secs(30)));
    }

    #[test]
    fn window_restarts_counting() {
        let (l, clock) = lockout(3);
        let key = addr("2001:db8::");
        l.record_failure(key);
        l.record_failure(key);
        clock.advance(Duration::from_secs(60));
        assert_eq!(l.record_failure(key), None, "window passed: count restarted");
        assert_eq!(l.record_failure(key), None);
        assert!(l.record_failure(key).is_some());
    }

    #[test]
    fn success_clears_count_but_not_lockout() {
        let (l, _clock) = lockout(3);
        let key = LimitKey::Identity("bob");
        l.record_failure(key);
        l.record_failure(key);
        l.record_success(key);
        assert_eq!(l.record_failure(key), None);
        assert_eq!(l.record_failure(key), None);
        assert!(l.record_failure(key).is_some());
        l.record_success(key);
        assert!(l.locked(key).is_some());
        // Identities and addresses never share an entry.
        assert_eq!(l.locked(LimitKey::Identity("bobby")), None);
    }

    #[test]
    fn disabled_lockout_does_nothing() {
        let config = LockoutConfig { enabled: false, threshold: 0, ..LockoutConfig::default() };
        let l = Lockout::new(&config, 10, LimitClock::monotonic()).unwrap();
        for _ in 0..100 {
            assert_eq!(l.record_failure(LimitKey::Identity("x")), None);
        }
        assert_eq!(l.locked(LimitKey::Identity("x")), None);
    }

    #[test]
    fn table_is_bounded() {
        let manual = ManualClock::new();
        let l = Lockout::new(&LockoutConfig::default(), 500, manual.clock()).unwrap();
        for i in 0..20_000u32 {
            l.record_failure(LimitKey::Address(IpAddr::from(i.to_be_bytes())));
            assert!(l.len() <= 500);
        }
    }

    #[test]
    fn start_and_end_are_events_without_addresses_in_text() {
        let (l, clock) = lockout(2);
        let key = addr("203.0.113.77");
        let (_, events) = crate::limit::test_events::capture(|| {
            l.record_failure(key);
            l.record_failure(key);
            clock.advance(Duration::from_secs(30));
            // Any lockout call after the end emits the end event, even for another key.
            assert_eq!(l.locked(addr("192.0.2.1")), None);
        });
        assert_eq!(events.len(), 2, "{events:?}");
        let (start, end) = (&events[0], &events[1]);
        assert_eq!((start.level, start.message.as_str()), (Level::WARN, "lockout started"));
        assert_eq!(start.field("client.address"), Some("203.0.113.77"));
        assert_eq!(start.field("zt.lockout.duration_ms"), Some("30000"));
        assert_eq!((end.level, end.message.as_str()), (Level::INFO, "lockout ended"));
        assert_eq!(end.field("client.address"), Some("203.0.113.77"));
        assert!(events.iter().all(|e| !e.message.contains("203.0.113.77")));

        let (_, events) = crate::limit::test_events::capture(|| {
            let subject = LimitKey::Identity("alice");
            l.record_failure(subject);
            l.record_failure(subject);
        });
        assert_eq!(events[0].field("enduser.id"), Some("alice"));
        assert_eq!(events[0].field("zt.key_kind"), Some("identity"));
    }

    #[test]
    fn invalid_config_names_the_entry() {
        let bad = |c: LockoutConfig| Lockout::new(&c, 10, LimitClock::monotonic()).unwrap_err().to_string();
        assert!(
            bad(LockoutConfig { threshold: 0, ..Default::default() }).contains("limits.lockout.threshold")
        );
        assert!(
            bad(LockoutConfig { window: Duration::ZERO, ..Default::default() })
                .contains("limits.lockout.window")
        );
        assert!(
            bad(LockoutConfig { max: Duration::from_secs(1), ..Default::default() })
                .contains("limits.lockout.max")
        );
    }
}
