// The metric table is in the `observe` module's documentation (`# Metrics`); this module
// is private.

/// `zt_requests_total{decision,reason,route}`.
pub(crate) const REQUESTS_TOTAL: &str = "zt_requests_total";
/// `zt_blocked_total`.
pub(crate) const BLOCKED_TOTAL: &str = "zt_blocked_total";
/// `zt_auth_failures_total`.
pub(crate) const AUTH_FAILURES_TOTAL: &str = "zt_auth_failures_total";
/// `zt_rate_limited_total`.
pub(crate) const RATE_LIMITED_TOTAL: &str = "zt_rate_limited_total";
/// `zt_anomalies_total{rule}`.
pub(crate) const ANOMALIES_TOTAL: &str = "zt_anomalies_total";
/// `zt_actions_total{action,enforced}`.
pub(crate) const ACTIONS_TOTAL: &str = "zt_actions_total";
/// `zt_incidents_total`.
pub(crate) const INCIDENTS_TOTAL: &str = "zt_incidents_total";
/// `zt_active_blocks`.
pub(crate) const ACTIVE_BLOCKS: &str = "zt_active_blocks";
/// `zt_time_to_detect_seconds`.
pub(crate) const TIME_TO_DETECT_SECONDS: &str = "zt_time_to_detect_seconds";
/// `zt_time_to_block_seconds`.
pub(crate) const TIME_TO_BLOCK_SECONDS: &str = "zt_time_to_block_seconds";

/// Histogram buckets (seconds) for the two time-to metrics: from sub-second detection to
/// an hour-long manual response.
#[cfg(feature = "prometheus")]
pub(crate) const TIME_BUCKETS: &[f64] =
    &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0];

/// Registers descriptions and units with the installed recorder (call once after
/// installing one; `install_prometheus` does).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS_TOTAL, Unit::Count, "Requests observed, by decision, denial reason and route");
    describe_counter!(BLOCKED_TOTAL, Unit::Count, "Requests refused by a temporary block or a challenge");
    describe_counter!(AUTH_FAILURES_TOTAL, Unit::Count, "Credentials presented and rejected");
    describe_counter!(RATE_LIMITED_TOTAL, Unit::Count, "Requests refused by a rate limit or a lockout");
    describe_counter!(ANOMALIES_TOTAL, Unit::Count, "Anomaly rule firings, by rule");
    describe_counter!(ACTIONS_TOTAL, Unit::Count, "Responses to anomalies, by action");
    describe_counter!(INCIDENTS_TOTAL, Unit::Count, "Incidents opened");
    describe_gauge!(ACTIVE_BLOCKS, Unit::Count, "Temporary blocks in force");
    describe_histogram!(
        TIME_TO_DETECT_SECONDS,
        Unit::Seconds,
        "From the first anomalous request of an episode to its detection"
    );
    describe_histogram!(
        TIME_TO_BLOCK_SECONDS,
        Unit::Seconds,
        "From detection to the first request refused by the resulting block"
    );
    // The shared store (`[fleet]`): connection, copy age, and what fell back or failed.
    describe_gauge!("zt_fleet_up", "1 while the shared store answers, 0 while it does not");
    describe_gauge!("zt_fleet_live_replicas", Unit::Count, "Replicas whose heartbeat is recent");
    describe_gauge!(
        "zt_fleet_sync_age_seconds",
        Unit::Seconds,
        "Age of this replica's copy of the shared controls (0 right after a resync)"
    );
    describe_counter!(
        "zt_fleet_control_write_failures_total",
        Unit::Count,
        "Control writes (blocks, revocations) the shared store did not acknowledge; retried at each resync"
    );
    describe_gauge!(
        "zt_limit_fallback",
        "1 while quotas are decided locally because the shared store is down"
    );
    describe_counter!(
        "zt_limit_fallback_switches_total",
        Unit::Count,
        "Switches of the shared quotas into (to=local) and out of (to=shared) fallback"
    );
    describe_counter!(
        "zt_introspection_requests_total",
        Unit::Count,
        "Token introspection calls (RFC 7662), by outcome"
    );
    describe_counter!(
        "zt_introspection_cache_hits_total",
        Unit::Count,
        "Opaque tokens answered from the introspection cache"
    );
    describe_counter!(
        "zt_dpop_replay_unchecked_total",
        Unit::Count,
        "DPoP proofs admitted without the fleet-wide replay check (store unreachable; the local cache still checked them)"
    );
    describe_counter!(
        "zt_detection_flushes_total",
        Unit::Count,
        "Flushes of the fleet-wide detection counters, by outcome"
    );
}

/// `zt_requests_total` handles per label set, so the hot path does not rebuild and look
/// up a labelled key on every request (half the observer's cost with a Prometheus
/// recorder). Bounded (1 024 label sets, approximate LRU); cleared whenever the current
/// recorder changes (a recorder installed later, or a test's local recorder), because a
/// handle belongs to the recorder that issued it.
pub(crate) struct RequestCounters {
    /// Unique per table for the process's life (an address could be reused by the next).
    id: u64,
    recorder: std::sync::atomic::AtomicUsize,
    cache: quick_cache::sync::Cache<u64, metrics::Counter>,
}

impl RequestCounters {
    pub(crate) fn new() -> RequestCounters {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        RequestCounters {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            recorder: std::sync::atomic::AtomicUsize::new(0),
            cache: quick_cache::sync::Cache::new(1_024),
        }
    }

    pub(crate) fn increment(&self, decision: &'static str, reason: Option<&str>, route: Option<&str>) {
        use std::sync::atomic::Ordering;
        let current = metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>().addr());
        // Read before written (issue 17, perf): an unconditional swap wrote this shared line
        // on every request from every worker core; it changes only with the recorder.
        if self.recorder.load(Ordering::Relaxed) != current
            && self.recorder.swap(current, Ordering::Relaxed) != current
        {
            self.cache.clear();
        }
        let (reason, route) = (reason.unwrap_or("none"), route.unwrap_or("undeclared"));
        // The handle this thread used last, when it is the same one (the usual case: one
        // route's allowed requests in a row): no lock of the shared cache's shard and no
        // clone of the handle's reference count, both shared between cores (issue 17, perf).
        // Matched on this table, the recorder and the labels themselves, so it is never
        // another's handle; comparing the labels is cheaper than hashing them (the keyed
        // hash below, about 450 instructions, is only computed on a change).
        thread_local! {
            static LAST: std::cell::RefCell<Option<LastCounter>> = const { std::cell::RefCell::new(None) };
        }
        let owner = self.id;
        let hit = LAST.with(|last| match &*last.borrow() {
            Some(l)
                if (l.owner, l.recorder) == (owner, current)
                    && (l.decision, l.reason.as_str(), l.route.as_str()) == (decision, reason, route) =>
            {
                l.counter.increment(1);
                true
            }
            _ => false,
        });
        if hit {
            return;
        }
        let key = super::store::key_of(super::store::domain::LABELS, &(decision, reason, route));
        let counter = match self.cache.get(&key) {
            Some(counter) => counter,
            None => {
                let counter = metrics::counter!(
                    REQUESTS_TOTAL,
                    "decision" => decision,
                    "reason" => reason.to_string(),
                    "route" => route.to_string()
                );
                self.cache.insert(key, counter.clone());
                counter
            }
        };
        counter.increment(1);
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            match &mut *last {
                // The label buffers are reused: switching routes allocates nothing.
                Some(l) => {
                    (l.owner, l.recorder, l.decision, l.counter) = (owner, current, decision, counter);
                    l.reason.clear();
                    l.reason.push_str(reason);
                    l.route.clear();
                    l.route.push_str(route);
                }
                None => {
                    *last = Some(LastCounter {
                        owner,
                        recorder: current,
                        decision,
                        reason: reason.to_string(),
                        route: route.to_string(),
                        counter,
                    })
                }
            }
        });
    }
}

/// The `zt_requests_total` handle a thread used last, with what it was for.
struct LastCounter {
    owner: u64,
    recorder: usize,
    decision: &'static str,
    reason: String,
    route: String,
    counter: metrics::Counter,
}

/// Why the Prometheus exporter could not be installed.
#[cfg(feature = "prometheus")]
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus exporter: {0}")]
pub struct MetricsError(String);

/// Installs the Prometheus recorder as the global `metrics` recorder and serves the text
/// format at `http://{listen}/metrics` (any path answers). Call once at start-up; a second
/// call (or another global recorder) is an error.
///
/// Inside a Tokio runtime the listener runs on it; otherwise on a thread of its own. The
/// demos call it with `ZT_METRICS_LISTEN` (default `127.0.0.1:9464`): keep it on loopback
/// or a private interface, the endpoint has no authentication.
#[cfg(feature = "prometheus")]
pub fn install_prometheus(listen: std::net::SocketAddr) -> Result<(), MetricsError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let mut builder = PrometheusBuilder::new().with_http_listener(listen);
    for name in [TIME_TO_DETECT_SECONDS, TIME_TO_BLOCK_SECONDS] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_string()), TIME_BUCKETS)
            .map_err(|e| MetricsError(e.to_string()))?;
    }
    builder.install().map_err(|e| MetricsError(e.to_string()))?;
    describe_metrics();
    Ok(())
}

/// A test recorder that keeps every counter, gauge and histogram in memory, keyed by name
/// and sorted labels (`name{a="1",b="2"}`).
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    #[derive(Default)]
    pub(crate) struct TestRecorder {
        counters: Mutex<BTreeMap<String, Arc<Cell>>>,
        gauges: Mutex<BTreeMap<String, Arc<Cell>>>,
        histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
    }

    #[derive(Default)]
    pub(crate) struct Cell(AtomicU64);
    #[derive(Default)]
    pub(crate) struct Samples(Mutex<Vec<f64>>);

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.fetch_max(value, Ordering::Relaxed);
        }
    }
    impl GaugeFn for Cell {
        fn increment(&self, value: f64) {
            let v = f64::from_bits(self.0.load(Ordering::Relaxed)) + value;
            self.0.store(v.to_bits(), Ordering::Relaxed);
        }
        fn decrement(&self, value: f64) {
            GaugeFn::increment(self, -value);
        }
        fn set(&self, value: f64) {
            self.0.store(value.to_bits(), Ordering::Relaxed);
        }
    }
    impl HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().unwrap().push(value);
        }
    }

    fn render(key: &Key) -> String {
        let mut labels: Vec<String> =
            key.labels().map(|l| format!("{}=\"{}\"", l.key(), l.value())).collect();
        labels.sort();
        if labels.is_empty() {
            key.name().to_string()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        }
    }

    impl TestRecorder {
        /// A counter's value (0 when never touched).
        pub(crate) fn counter(&self, key: &str) -> u64 {
            self.counters.lock().unwrap().get(key).map(|c| c.0.load(Ordering::Relaxed)).unwrap_or(0)
        }
        /// Sum of all counters with this name, whatever their labels.
        pub(crate) fn counter_sum(&self, name: &str) -> u64 {
            self.counters
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
                .map(|(_, c)| c.0.load(Ordering::Relaxed))
                .sum()
        }
        /// A gauge's value.
        pub(crate) fn gauge(&self, key: &str) -> Option<f64> {
            self.gauges.lock().unwrap().get(key).map(|c| f64::from_bits(c.0.load(Ordering::Relaxed)))
        }
        /// A histogram's samples.
        pub(crate) fn histogram(&self, key: &str) -> Vec<f64> {
            self.histograms.lock().unwrap().get(key).map(|s| s.0.lock().unwrap().clone()).unwrap_or_default()
        }
        /// Every counter key (for debugging failed assertions).
        pub(crate) fn counter_keys(&self) -> Vec<String> {
            self.counters.lock().unwrap().keys().cloned().collect()
        }
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let cell = self.counters.lock().unwrap().entry(render(key)).or_default().clone();
            Counter::from_arc(cell)
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let cell = self.gauges.lock().unwrap().entry(render(key)).or_default().clone();
            Gauge::from_arc(cell)
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let samples = self.histograms.lock().unwrap().entry(render(key)).or_default().clone();
            Histogram::from_arc(samples)
        }
    }
}

#[cfg(all(test, feature = "prometheus"))]
mod tests {
    #[test]
    fn bucket_config_is_accepted() {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(super::TIME_TO_DETECT_SECONDS.into()), super::TIME_BUCKETS);
        assert!(builder.is_ok());
    }
}
