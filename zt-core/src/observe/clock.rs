// The module's documentation is on `ObserveClock`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the observer reads the current time. Cheap to clone; clones of a manual clock
/// share one time.
///
/// The observer's time source.
///
/// Wall-clock time, because everything the observer keeps is about *when* something
/// happened: the `@timestamp` of an event, the hour of day of a request, when a block
/// expires, how long detection took. Tests inject a [`ManualClock`] and move time by hand,
/// so no test depends on how fast the machine runs.
///
/// Internally times are microseconds since the Unix epoch (`u64`): cheap to store in
/// atomics and to subtract. A clock set before 1970 reads as 0.
#[derive(Debug, Clone, Default)]
pub struct ObserveClock(Source);

#[derive(Debug, Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
}

impl ObserveClock {
    /// The system's wall clock.
    pub fn system() -> ObserveClock {
        ObserveClock(Source::System)
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        from_micros(self.now_micros())
    }

    /// The current time in microseconds since the Unix epoch.
    pub(crate) fn now_micros(&self) -> u64 {
        match &self.0 {
            Source::System => to_micros(SystemTime::now()),
            Source::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use zt_core::observe::ManualClock;
///
/// let manual = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// let clock = manual.clock();
/// manual.advance(Duration::from_secs(30));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_700_000_030));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A manual clock reading `start`.
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(to_micros(start))))
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_add(by)));
    }

    /// Sets the time (may move backwards: for testing clock steps).
    pub fn set(&self, to: SystemTime) {
        self.0.store(to_micros(to), Ordering::Relaxed);
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        from_micros(self.0.load(Ordering::Relaxed))
    }

    /// An [`ObserveClock`] reading this clock.
    pub fn clock(&self) -> ObserveClock {
        ObserveClock(Source::Manual(self.0.clone()))
    }
}

/// Microseconds since the Unix epoch; 0 before it, saturating far after it.
pub(crate) fn to_micros(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

/// The inverse of [`to_micros`].
pub(crate) fn from_micros(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// Microseconds in a duration, saturating.
pub(crate) fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Seconds between two microsecond timestamps, 0 when `later` is not later.
pub(crate) fn seconds_between(earlier: u64, later: u64) -> f64 {
    later.saturating_sub(earlier) as f64 / 1_000_000.0
}

/// The UTC hour of day (0..24) of a microsecond timestamp.
pub(crate) fn utc_hour(us: u64) -> usize {
    ((us / 3_600_000_000) % 24) as usize
}

/// RFC 3339 UTC text with milliseconds, e.g. `2023-11-14T22:13:20.000Z`, for `@timestamp`.
///
/// Civil date from days since the epoch (Howard Hinnant's algorithm), so no date crate is
/// needed for the one format ECS wants.
pub(crate) fn rfc3339_millis(us: u64) -> String {
    let secs = us / 1_000_000;
    let millis = (us / 1_000) % 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3_600, (rem % 3_600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_700_000_000_123_456), "2023-11-14T22:13:20.123Z");
        // A leap day and the turn of a century that is a leap year.
        assert_eq!(rfc3339_millis(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_millis(4_107_542_399_000_000), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let manual = ManualClock::new(UNIX_EPOCH + Duration::from_secs(10));
        let clock = manual.clock();
        assert_eq!(clock.now_micros(), 10_000_000);
        manual.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_micros(), 11_500_000);
        manual.set(UNIX_EPOCH);
        assert_eq!(clock.now(), UNIX_EPOCH);
        assert_eq!(utc_hour(3 * 3_600_000_000 + 5), 3);
        assert_eq!(seconds_between(2_000_000, 1_000_000), 0.0);
    }
}
