//! The issuer's time source: wall-clock time, because tokens carry NumericDates (`iat`,
//! `exp`) that other machines compare with theirs. Tests inject a [`ManualClock`] and move
//! time by hand, so rotation and expiry never depend on how fast a test runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a [`TokenIssuer`](super::TokenIssuer) reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, with one-second resolution (the resolution of JWT
/// NumericDates). Clones share one time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use zt_core::issuer::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_060));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    unix_secs: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start` (truncated to whole seconds).
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock { unix_secs: Arc::new(AtomicU64::new(unix_secs(start))) }
    }

    /// Moves the clock forward by `by` (whole seconds).
    pub fn advance(&self, by: Duration) {
        self.unix_secs.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Sets the clock to `to`, forwards or backwards.
    pub fn set(&self, to: SystemTime) {
        self.unix_secs.store(unix_secs(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.unix_secs.load(Ordering::SeqCst))
    }
}

/// Seconds since the Unix epoch; times before it read as 0.
pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
