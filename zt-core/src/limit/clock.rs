//! The time source of the limiter, the lockout table and the Redis health state.
//!
//! Production code reads a monotonic clock (governor's `quanta` clock: a TSC read, no
//! syscall). Tests inject a [`ManualClock`] and move time by hand, so no test ever depends on
//! how fast the machine runs.

use std::time::Duration;

use governor::clock::{Clock, FakeRelativeClock, QuantaClock, QuantaInstant, Reference};
use governor::nanos::Nanos;

/// A monotonic time source: nanoseconds since the clock was created.
///
/// Cheap to clone; clones of a manual clock share one time.
#[derive(Debug, Clone)]
pub struct LimitClock(Source);

#[derive(Debug, Clone)]
enum Source {
    Monotonic { clock: QuantaClock, origin: QuantaInstant },
    Manual(FakeRelativeClock),
}

impl LimitClock {
    /// The real monotonic clock.
    pub fn monotonic() -> LimitClock {
        let clock = QuantaClock::default();
        let origin = clock.now();
        LimitClock(Source::Monotonic { clock, origin })
    }

    /// Nanoseconds since the clock's origin.
    pub(crate) fn now_nanos(&self) -> u64 {
        self.now().as_u64()
    }
}

impl Default for LimitClock {
    fn default() -> Self {
        LimitClock::monotonic()
    }
}

impl Clock for LimitClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match &self.0 {
            Source::Monotonic { clock, origin } => clock.now().duration_since(*origin),
            Source::Manual(fake) => fake.now(),
        }
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// ```
/// use std::time::Duration;
/// use zt_core::limit::{LimitClock, ManualClock};
///
/// let manual = ManualClock::new();
/// let clock: LimitClock = manual.clock();
/// manual.advance(Duration::from_secs(30));
/// # let _ = clock;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(FakeRelativeClock);

impl ManualClock {
    /// A manual clock at time zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.0.advance(by);
    }

    /// A [`LimitClock`] reading this clock.
    pub fn clock(&self) -> LimitClock {
        LimitClock(Source::Manual(self.0.clone()))
    }
}

/// Converts a duration to nanoseconds, saturating (governor's own conversion panics past
/// 584 years; configuration is validated far below that, but never panic on a request).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        let t0 = clock.now_nanos();
        assert_eq!(clock.now_nanos(), t0);
        manual.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_nanos() - t0, 1_500_000_000);
    }

    #[test]
    fn monotonic_clock_never_goes_back() {
        let clock = LimitClock::monotonic();
        let a = clock.now_nanos();
        let b = clock.now_nanos();
        assert!(b >= a);
    }
}
