// The module's documentation is on `IncidentReport`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::clock::{from_micros, seconds_between};
use super::rule::Rule;
use super::store::lock;

/// How many recent incidents [`Observer::incidents`](super::Observer::incidents) keeps.
pub(crate) const INCIDENT_LOG: usize = 256;

/// One incident, shared by the episode, its blocks and the recent-incident log.
#[derive(Debug)]
pub(crate) struct Incident {
    pub(crate) id: u64,
    pub(crate) target: String,
    pub(crate) rules: Vec<Rule>,
    pub(crate) first_anomalous_us: u64,
    pub(crate) detected_us: u64,
    /// 0 until the first enforced block.
    pub(crate) first_block_us: AtomicU64,
}

impl Incident {
    /// Records the first enforced block; returns detection -> block in seconds the first
    /// time, `None` afterwards.
    pub(crate) fn mark_blocked(&self, now_us: u64) -> Option<f64> {
        let at = now_us.max(1);
        self.first_block_us
            .compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| seconds_between(self.detected_us, at))
    }

    pub(crate) fn time_to_detect_secs(&self) -> f64 {
        seconds_between(self.first_anomalous_us, self.detected_us)
    }

    pub(crate) fn report(&self) -> IncidentReport {
        let block = self.first_block_us.load(Ordering::Relaxed);
        IncidentReport {
            id: self.id,
            target: self.target.clone(),
            rules: self.rules.clone(),
            first_anomalous_at: from_micros(self.first_anomalous_us),
            detected_at: from_micros(self.detected_us),
            first_block_at: (block != 0).then(|| from_micros(block)),
            time_to_detect: Duration::from_micros(self.detected_us.saturating_sub(self.first_anomalous_us)),
            time_to_block: (block != 0)
                .then(|| Duration::from_micros(block.saturating_sub(self.detected_us))),
        }
    }
}

/// A snapshot of an incident.
///
/// Episodes and incidents: when an attack started, when it was detected, when it was
/// first stopped.
///
/// An *episode* is a run of anomalous activity by one target (a caller or a network). It
/// starts at its first anomalous request: the first request at which a windowed rule's
/// measurement reached half its threshold (the watch level), or the detecting request
/// itself when nothing led up to it. It ends after [`DetectionConfig::episode_idle`](super::DetectionConfig::episode_idle)
/// without anomalies. The first detection of an episode opens an *incident*
/// (`zt_incidents_total`) and records `zt_time_to_detect_seconds`; the first request
/// refused by a block the incident caused records `zt_time_to_block_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentReport {
    /// Process-unique id (`zt.incident.id` in events).
    pub id: u64,
    /// What it is about: `subject:alice`, `address:198.51.100.7`, `network:203.0.113.0/24`.
    pub target: String,
    /// The rules whose firing opened it.
    pub rules: Vec<Rule>,
    /// The episode's first anomalous request.
    pub first_anomalous_at: SystemTime,
    /// Detection.
    pub detected_at: SystemTime,
    /// The first request refused by a block the incident caused, if any yet.
    pub first_block_at: Option<SystemTime>,
    /// First anomalous request -> detection.
    pub time_to_detect: Duration,
    /// Detection -> first enforced block.
    pub time_to_block: Option<Duration>,
}

/// Episode state kept per target (inside its baseline entry).
#[derive(Debug, Default, Clone)]
pub(crate) struct Episode {
    /// First time a watch level was crossed in the current run (0 = none).
    pub(crate) watch_us: u64,
    pub(crate) last_anomaly_us: u64,
    pub(crate) incident: Option<Arc<Incident>>,
}

impl Episode {
    /// Notes a measurement's progress towards its threshold (1.0 = at threshold).
    pub(crate) fn watch(&mut self, now: u64, progress: f64) {
        if progress >= 0.5 && self.watch_us == 0 {
            self.watch_us = now;
        }
    }

    /// A detection: the open incident when the episode is still running, else a new one
    /// (returned with `true`).
    pub(crate) fn detect(
        &mut self,
        now: u64,
        idle: Duration,
        open: impl FnOnce(u64) -> Arc<Incident>,
    ) -> (Arc<Incident>, bool) {
        let idle_us = u64::try_from(idle.as_micros()).unwrap_or(u64::MAX);
        if let Some(incident) = &self.incident
            && now.saturating_sub(self.last_anomaly_us) <= idle_us
        {
            self.last_anomaly_us = now;
            return (incident.clone(), false);
        }
        let first = if self.watch_us != 0 && self.watch_us <= now { self.watch_us } else { now };
        let incident = open(first);
        self.incident = Some(incident.clone());
        self.last_anomaly_us = now;
        self.watch_us = 0;
        (incident, true)
    }
}

/// The most recent incidents (bounded ring).
#[derive(Debug, Default)]
pub(crate) struct IncidentLog {
    next_id: AtomicU64,
    recent: Mutex<VecDeque<Arc<Incident>>>,
}

impl IncidentLog {
    pub(crate) fn open(
        &self,
        target: String,
        rules: Vec<Rule>,
        first_us: u64,
        detected_us: u64,
    ) -> Arc<Incident> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let incident = Arc::new(Incident {
            id,
            target,
            rules,
            first_anomalous_us: first_us,
            detected_us,
            first_block_us: AtomicU64::new(0),
        });
        let mut recent = lock(&self.recent);
        if recent.len() >= INCIDENT_LOG {
            recent.pop_front();
        }
        recent.push_back(incident.clone());
        incident
    }

    pub(crate) fn reports(&self) -> Vec<IncidentReport> {
        lock(&self.recent).iter().map(|i| i.report()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episode_opens_one_incident_until_idle() {
        let log = IncidentLog::default();
        let mut ep = Episode::default();
        ep.watch(1_000_000, 0.3);
        assert_eq!(ep.watch_us, 0);
        ep.watch(2_000_000, 0.6);
        ep.watch(2_500_000, 0.9);
        let idle = Duration::from_secs(60);
        let open = |first| log.open("subject:x".into(), vec![Rule::Enumeration], first, 3_000_000);
        let (a, new) = ep.detect(3_000_000, idle, open);
        assert!(new);
        assert_eq!(a.time_to_detect_secs(), 1.0);
        let (b, new) = ep.detect(30_000_000, idle, |_| unreachable!());
        assert!(!new);
        assert_eq!(a.id, b.id);
        assert_eq!(a.mark_blocked(5_000_000), Some(2.0));
        assert_eq!(a.mark_blocked(6_000_000), None, "only the first block counts");
        let (c, new) =
            ep.detect(200_000_000, idle, |first| log.open("subject:x".into(), vec![], first, 200_000_000));
        assert!(new && c.id != a.id);
        assert_eq!(c.time_to_detect_secs(), 0.0, "no watch level crossed: detected on the spot");
        let reports = log.reports();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].time_to_block, Some(Duration::from_secs(2)));
    }

    #[test]
    fn log_is_bounded() {
        let log = IncidentLog::default();
        for i in 0..(INCIDENT_LOG as u64 + 10) {
            log.open(format!("t{i}"), vec![], i, i);
        }
        let reports = log.reports();
        assert_eq!(reports.len(), INCIDENT_LOG);
        assert_eq!(reports[0].target, "t10");
    }
}
