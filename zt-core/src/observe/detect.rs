// The module's documentation is on `DetectionConfig`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

use super::bot::{self, BotConfig, Timing};
use super::clock::{duration_micros, utc_hour};
use super::fleet_counters::{Figures, FleetCounters, Tallied, Tally, TallyKind};
use super::geo::CountryCode;
use super::incident::{Episode, Incident, IncidentLog};
use super::inventory::Keys;
use super::record::RequestRecord;
use super::rule::Rule;
use super::store::{Bounded, CappedSet, domain, key_of, lock};
use super::target::{NetworkPrefix, Target};

/// Distinct object ids counted per caller and window (thresholds must stay below).
pub(crate) const MAX_DISTINCT_IDS: usize = 256;
/// Distinct attempted subjects (and failing addresses) counted per network and window.
pub(crate) const MAX_DISTINCT_SUBJECTS: usize = 64;
/// Distinct missing or foreign object ids counted per caller over the long window
/// ([`DetectionConfig::slow_enumeration_min`] must stay at or below).
pub(crate) const MAX_LONG_IDS: usize = 64;
/// Denial slugs of GraphQL documents refused at a limit: the probing the GraphQL abuse
/// rule counts (a parse or validation failure is a client bug more often than an attack).
const GRAPHQL_LIMIT_SLUGS: &[&str] = &[
    "graphql-depth-limit",
    "graphql-alias-limit",
    "graphql-root-field-limit",
    "graphql-directive-limit",
    "graphql-cost-limit",
    "graphql-batch-limit",
    "graphql-token-limit",
    "graphql-document-too-large",
    "graphql-request-too-large",
];
const KNOWN_NETWORKS: usize = 8;
const KNOWN_COUNTRIES: usize = 4;
/// Most empty windows replayed into a baseline after a quiet spell (bounds the work).
const MAX_GAP_WINDOWS: u64 = 8;
/// A target at this share of a threshold (or more, fleet-wide; divided by the live replica
/// count for what one replica sees) is hot: with a fleet, its counts are
/// flushed within `fleet_flush_hot` instead of `fleet_flush`.
const HOT_PRESSURE: f64 = 0.25;

/// A supporting measurement of a reason (e.g. the failures behind a credential-stuffing
/// finding).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Related {
    /// What it measures.
    pub name: &'static str,
    /// Its value.
    pub value: f64,
}

/// Why a request scored: one rule's firing, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyReason {
    /// The rule.
    pub rule: Rule,
    /// What was measured (e.g. distinct object ids in the current window).
    pub observed: f64,
    /// The baseline it was compared with (0 where the rule has none).
    pub baseline: f64,
    /// The threshold that was crossed.
    pub threshold: f64,
    /// This reason's share of the score (`weight × strength`).
    pub contribution: f64,
    /// What `observed` measures, in words.
    pub measure: &'static str,
    /// A category, where the rule has one (e.g. `curl` for an automation agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'static str>,
    /// A supporting measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<Related>,
    /// The window `observed` was counted over, in seconds ([`DetectionConfig::window`], or
    /// [`DetectionConfig::long_window`] for the slow-enumeration rule).
    pub window_seconds: f64,
}

/// An explainable anomaly: a score in `[0, 1]` and the reasons behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// Noisy-OR of the reasons' contributions.
    pub score: f64,
    /// The reasons, in the order the rules fired.
    pub reasons: Vec<AnomalyReason>,
}

impl Anomaly {
    /// Combines reasons into a score.
    pub fn from_reasons(reasons: Vec<AnomalyReason>) -> Anomaly {
        let keep = reasons.iter().fold(1.0, |acc, r| acc * (1.0 - r.contribution.clamp(0.0, 1.0)));
        Anomaly { score: 1.0 - keep, reasons }
    }

    /// True when `rule` is among the reasons.
    pub fn has(&self, rule: Rule) -> bool {
        self.reasons.iter().any(|r| r.rule == rule)
    }

    /// The rule slugs, comma-separated (`zt.anomaly.rules`).
    pub fn rules_text(&self) -> String {
        let names: Vec<&str> = self.reasons.iter().map(|r| r.rule.as_str()).collect();
        names.join(",")
    }

    /// The reasons as a JSON array (`zt.anomaly.reasons`).
    pub fn reasons_json(&self) -> String {
        serde_json::to_string(&self.reasons).unwrap_or_else(|_| String::from("[]"))
    }

    /// `event.severity` for this score.
    pub fn severity(&self) -> u8 {
        use super::kinds::severity;
        if self.score >= 0.85 {
            severity::HIGH
        } else if self.score >= 0.5 {
            severity::MEDIUM
        } else {
            severity::LOW
        }
    }
}

/// 0.5 at the threshold, rising linearly to 1.0 at twice the threshold.
fn strength(observed: f64, threshold: f64) -> f64 {
    if threshold <= 0.0 {
        return 1.0;
    }
    (0.5 + 0.5 * (observed / threshold - 1.0)).clamp(0.5, 1.0)
}

fn reason(rule: Rule, observed: f64, baseline: f64, threshold: f64, measure: &'static str) -> AnomalyReason {
    AnomalyReason {
        rule,
        observed,
        baseline,
        threshold,
        contribution: rule.weight() * strength(observed, threshold),
        measure,
        label: None,
        related: None,
        window_seconds: 0.0,
    }
}

/// Baseline and rule settings. Counts are per window unless noted.
///
/// Online baselines and explainable anomaly scores.
///
/// Three bounded stores of baselines, each keyed by a keyed hash (see `store`):
///
/// | store | key | kept | default capacity |
/// |---|---|---|---|
/// | callers | verified subject, else client address | per-window request count, error ratio, distinct object ids (EWMA each); recent networks (8) and countries (4); requests per UTC hour; inter-arrival times on human-facing routes | [`DetectionConfig::identity_capacity`] 10 000 |
/// | endpoints | method + declared route template | per-window request count and error ratio, request body size (EWMA each) | [`DetectionConfig::endpoint_capacity`] 1 000 |
/// | networks | client /24 (IPv4) or /64 (IPv6) | failed authentications and distinct attempted subjects in the window | [`DetectionConfig::network_capacity`] 10 000 |
///
/// Eviction is approximate LRU with scan resistance (a flood of new keys evicts other new
/// keys first); a caller idle for longer than [`DetectionConfig::idle_reset`] starts over.
///
/// Windows are fixed ([`DetectionConfig::window`], default 60 s). Baselines learn from
/// completed windows in which no rule fired (attacks do not become the norm). Callers are
/// scored against their baseline only after a warm-up ([`DetectionConfig::warmup_requests`]
/// requests and one completed window); before that only absolute limits apply
/// (`enumeration_hard_limit`, credential stuffing, bot signals).
///
/// Each rule fires at most once per target and window; a firing is an [`AnomalyReason`]
/// naming the rule, the observed value, the baseline and the threshold. The score combines
/// the reasons as a noisy-OR: `1 - Π(1 - weight × strength)`, in `[0, 1]`, where strength
/// is 0.5 at the threshold and 1.0 at twice the threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// The measurement window. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Smoothing of the per-window baselines (weight of the newest window). Default 0.2.
    pub ewma_alpha: f64,
    /// Requests before a caller is scored against its own baseline. Default 50.
    pub warmup_requests: u64,
    /// Most callers with a baseline. Default 10 000.
    pub identity_capacity: usize,
    /// Most endpoints with a baseline. Default 1 000.
    pub endpoint_capacity: usize,
    /// Most networks tracked for failed authentications. Default 10 000.
    pub network_capacity: usize,
    /// A caller unseen this long starts over (warm-up again). Default 7 days.
    #[serde(with = "humantime_serde")]
    pub idle_reset: Duration,
    /// An episode ends after this long without anomalies. Default 15 min.
    #[serde(with = "humantime_serde")]
    pub episode_idle: Duration,
    /// Enumeration: fewest distinct object ids answered 404 or 403 in one window that can
    /// fire. Default 20.
    ///
    /// Enumeration knows ownership: an id the application answered 2xx for (the caller's
    /// own objects, those it created, those shared with it) never counts, however many are
    /// read (a batch job reading back its 200 new orders is not an attack; volume is the
    /// request-rate rule's). Only the ids the application refused, missing or foreign,
    /// count, per principal whatever address it comes from. Only requests from verified
    /// callers count (an anonymous flood is the address quota's and the lockout's to stop,
    /// and would otherwise block everyone behind its address).
    pub enumeration_min_distinct: u32,
    /// Enumeration: multiple of the caller's baseline (of refused ids per window) that
    /// fires. Default 4.
    pub enumeration_factor: f64,
    /// Enumeration: distinct refused ids that fire during warm-up. Default 20 (at most
    /// 256).
    pub enumeration_hard_limit: u32,
    /// Slow enumeration: the long window over which refused ids are also counted, so a walk
    /// at one id every few seconds (or a minute and a half), from any number of addresses,
    /// is seen. Default 1 h; at least `window`.
    #[serde(with = "humantime_serde")]
    pub long_window: Duration,
    /// Slow enumeration: distinct refused ids in the long window that fire. Default 40 (at
    /// most 64).
    pub slow_enumeration_min: u32,
    /// Slow enumeration spread over networks: distinct refused ids in the long window that
    /// fire when they came from at least `slow_enumeration_networks` networks (one token
    /// walking ids from rotating addresses). Default 15.
    pub slow_enumeration_spread_min: u32,
    /// See `slow_enumeration_spread_min`. Default 3 (at most 8).
    pub slow_enumeration_networks: u32,
    /// Request rate: fewest requests that can fire. Default 300.
    pub rate_min: u32,
    /// Request rate: multiple of the caller's baseline that fires. Default 5.
    pub rate_factor: f64,
    /// Request rate of a caller still warming up (no baseline of its own yet): fewest
    /// requests in one window that can fire. Default 450 (a batch job creating 200 orders at
    /// the demo's route quota of 10/s and reading them back, 400 requests, stays below; a
    /// scraper at 15 req/s is named within 30 s).
    pub rate_new_min: u32,
    /// Request rate of a caller still warming up: multiple of its peers' typical window
    /// (the mean request count of all callers' completed windows) that fires. Default 20.
    pub rate_peer_factor: f64,
    /// GraphQL abuse: documents refused at a limit (depth, aliases, root fields,
    /// directives, cost, batch, size) per caller and window that fire. Default 5.
    pub graphql_rejected_min: u32,
    /// GraphQL abuse: documents accepted near a limit ([`RequestRecord::graphql_pressure`]
    /// at or above `graphql_near_share`) per caller and window that fire. Default 20.
    pub graphql_near_limit_min: u32,
    /// GraphQL abuse: the share of a limit from which an accepted document is near it.
    /// Default 0.8.
    pub graphql_near_share: f64,
    /// Error ratio: fewest errors that can fire. Default 20.
    pub error_min: u32,
    /// Error ratio: share of errors that fires (and at least baseline + 0.25). Default 0.5.
    pub error_ratio: f64,
    /// Payload size: smallest body that can fire, in bytes. Default 65 536.
    pub payload_min_bytes: u64,
    /// Payload size: multiple of the endpoint's mean body size that fires. Default 8.
    pub payload_factor: f64,
    /// Fire on a caller's new network (after warm-up). Default true.
    pub new_network: bool,
    /// Fire on a caller's new country (after warm-up). Default true.
    pub new_country: bool,
    /// Unusual hour: requests a caller needs before its hours are judged. Default 500.
    pub unusual_hour_min_requests: u64,
    /// Unusual hour: share of the caller's requests below which an hour is unusual.
    /// Default 0.01.
    pub unusual_hour_share: f64,
    /// Credential stuffing: failed authentications from one network. Default 20.
    pub stuffing_min_failures: u32,
    /// Credential stuffing: distinct attempted subjects among them (at most 64). Without
    /// subject information, three times `stuffing_min_failures` failures fire alone.
    /// Default 5.
    pub stuffing_min_subjects: u32,
    /// Endpoint rate: fewest requests that can fire. Default 3 000.
    pub endpoint_rate_min: u32,
    /// Endpoint rate: multiple of the endpoint's baseline that fires. Default 10.
    pub endpoint_rate_factor: f64,
    /// Endpoint errors: fewest errors that can fire. Default 100.
    pub endpoint_error_min: u32,
    /// Endpoint errors: share of errors that fires (and at least baseline + 0.25).
    /// Default 0.5.
    pub endpoint_error_ratio: f64,
    /// With a fleet (`[fleet]`): how often this replica sends its share of the fleet-wide
    /// counters (distinct object ids, requests and errors per caller; failed
    /// authentications and attempted subjects per network) and reads the fleet-wide
    /// figures back, in one pipeline. Default 1 s; at most `window`.
    #[serde(with = "humantime_serde")]
    pub fleet_flush: Duration,
    /// With a fleet: how soon counts of a *hot* caller or network (at a quarter of a
    /// threshold or more fleet-wide, i.e. `1/(4N)` of it on one of `N` replicas) are sent
    /// instead. This bounds how far past a threshold a walk spread over the replicas gets
    /// before the fleet-wide figure stops it: about `rate × (fleet_flush_hot + one round
    /// trip)` ids per other replica. Default 2 ms (at most 500 flushes a second per replica,
    /// only while some target is hot); at most `fleet_flush`.
    #[serde(with = "humantime_serde")]
    pub fleet_flush_hot: Duration,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            window: Duration::from_secs(60),
            ewma_alpha: 0.2,
            warmup_requests: 50,
            identity_capacity: 10_000,
            endpoint_capacity: 1_000,
            network_capacity: 10_000,
            idle_reset: Duration::from_secs(7 * 24 * 3600),
            episode_idle: Duration::from_secs(15 * 60),
            enumeration_min_distinct: 20,
            enumeration_factor: 4.0,
            enumeration_hard_limit: 20,
            long_window: Duration::from_secs(3600),
            slow_enumeration_min: 40,
            slow_enumeration_spread_min: 15,
            slow_enumeration_networks: 3,
            rate_min: 300,
            rate_factor: 5.0,
            rate_new_min: 450,
            rate_peer_factor: 20.0,
            graphql_rejected_min: 5,
            graphql_near_limit_min: 20,
            graphql_near_share: 0.8,
            error_min: 20,
            error_ratio: 0.5,
            payload_min_bytes: 64 * 1024,
            payload_factor: 8.0,
            new_network: true,
            new_country: true,
            unusual_hour_min_requests: 500,
            unusual_hour_share: 0.01,
            stuffing_min_failures: 20,
            stuffing_min_subjects: 5,
            endpoint_rate_min: 3_000,
            endpoint_rate_factor: 10.0,
            endpoint_error_min: 100,
            endpoint_error_ratio: 0.5,
            fleet_flush: Duration::from_secs(1),
            fleet_flush_hot: Duration::from_millis(2),
        }
    }
}

impl DetectionConfig {
    /// Checks ranges; errors name the entry (`observe.detection.<field>`).
    pub fn validate(&self) -> Result<(), PolicyError> {
        let at = |f: &str| format!("observe.detection.{f}");
        if self.window < Duration::from_secs(1) {
            return Err(PolicyError::invalid(at("window"), "must be at least 1s"));
        }
        if self.fleet_flush.is_zero() || self.fleet_flush > self.window {
            return Err(PolicyError::invalid(
                at("fleet_flush"),
                "must be longer than 0s and at most `window`",
            ));
        }
        if self.fleet_flush_hot.is_zero() || self.fleet_flush_hot > self.fleet_flush {
            return Err(PolicyError::invalid(
                at("fleet_flush_hot"),
                "must be longer than 0s and at most `fleet_flush`",
            ));
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return Err(PolicyError::invalid(at("ewma_alpha"), "must be in (0, 1]"));
        }
        for (name, cap) in [
            ("identity_capacity", self.identity_capacity),
            ("endpoint_capacity", self.endpoint_capacity),
            ("network_capacity", self.network_capacity),
        ] {
            if cap == 0 {
                return Err(PolicyError::invalid(at(name), "must be at least 1"));
            }
        }
        for (name, v) in [
            ("enumeration_min_distinct", self.enumeration_min_distinct),
            ("enumeration_hard_limit", self.enumeration_hard_limit),
        ] {
            if v == 0 || v as usize > MAX_DISTINCT_IDS {
                return Err(PolicyError::invalid(at(name), format!("must be in 1..={MAX_DISTINCT_IDS}")));
            }
        }
        if self.long_window < self.window {
            return Err(PolicyError::invalid(at("long_window"), "must be at least `window`"));
        }
        if self.slow_enumeration_min == 0 || self.slow_enumeration_min as usize > MAX_LONG_IDS {
            return Err(PolicyError::invalid(
                at("slow_enumeration_min"),
                format!("must be in 1..={MAX_LONG_IDS}"),
            ));
        }
        if self.slow_enumeration_spread_min == 0
            || self.slow_enumeration_spread_min as usize > MAX_LONG_IDS
            || !(1..=8).contains(&self.slow_enumeration_networks)
        {
            return Err(PolicyError::invalid(
                at("slow_enumeration_spread_min"),
                format!("must be in 1..={MAX_LONG_IDS}, with slow_enumeration_networks in 1..=8"),
            ));
        }
        if self.graphql_rejected_min == 0 || self.graphql_near_limit_min == 0 {
            return Err(PolicyError::invalid(
                at("graphql_rejected_min"),
                "the GraphQL minimums must be at least 1",
            ));
        }
        if !(self.graphql_near_share > 0.0 && self.graphql_near_share <= 1.0) {
            return Err(PolicyError::invalid(at("graphql_near_share"), "must be in (0, 1]"));
        }
        if self.stuffing_min_subjects as usize > MAX_DISTINCT_SUBJECTS {
            return Err(PolicyError::invalid(
                at("stuffing_min_subjects"),
                format!("must be at most {MAX_DISTINCT_SUBJECTS}"),
            ));
        }
        for (name, v) in [
            ("enumeration_factor", self.enumeration_factor),
            ("rate_factor", self.rate_factor),
            ("rate_peer_factor", self.rate_peer_factor),
            ("payload_factor", self.payload_factor),
            ("endpoint_rate_factor", self.endpoint_rate_factor),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Err(PolicyError::invalid(at(name), "must be a number >= 1"));
            }
        }
        for (name, v) in [
            ("error_ratio", self.error_ratio),
            ("endpoint_error_ratio", self.endpoint_error_ratio),
            ("unusual_hour_share", self.unusual_hour_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(PolicyError::invalid(at(name), "must be in [0, 1]"));
            }
        }
        Ok(())
    }
}

/// An exponentially weighted moving average.
#[derive(Debug, Default, Clone, Copy)]
struct Ewma {
    mean: f64,
    ready: bool,
}

impl Ewma {
    fn update(&mut self, x: f64, alpha: f64) {
        if self.ready {
            self.mean += alpha * (x - self.mean);
        } else {
            self.mean = x;
            self.ready = true;
        }
    }
}

/// A fixed window of counters.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    start: u64,
    requests: u32,
    errors: u32,
    /// GraphQL documents refused at a limit, and accepted near one.
    graphql_rejected: u16,
    graphql_near: u16,
    /// Rules fired in this window (bit per rule).
    fired: u16,
}

impl Window {
    /// Windows completed since `start` at `now` (0 while the window is current).
    fn elapsed(&self, now: u64, len: u64) -> u64 {
        now.saturating_sub(self.start) / len.max(1)
    }

    fn has_fired(&self, rule: Rule) -> bool {
        self.fired & rule.bit() != 0
    }

    fn fire(&mut self, rule: Rule) -> bool {
        let first = !self.has_fired(rule);
        self.fired |= rule.bit();
        first
    }

    fn next(&self, elapsed: u64, len: u64) -> Window {
        Window { start: self.start.saturating_add(elapsed.saturating_mul(len)), ..Window::default() }
    }
}

/// A tiny most-recent set (ring) of up to N values.
#[derive(Debug, Clone, Copy)]
struct Recent<T: Copy + PartialEq, const N: usize> {
    items: [Option<T>; N],
    next: usize,
}

impl<T: Copy + PartialEq, const N: usize> Default for Recent<T, N> {
    fn default() -> Self {
        Recent { items: [None; N], next: 0 }
    }
}

impl<T: Copy + PartialEq, const N: usize> Recent<T, N> {
    /// Adds a value; true when it was not among the recent ones.
    fn note(&mut self, value: T) -> bool {
        if self.items.contains(&Some(value)) {
            return false;
        }
        if let Some(slot) = self.items.get_mut(self.next) {
            *slot = Some(value);
        }
        self.next = (self.next + 1) % N;
        true
    }

    fn len(&self) -> usize {
        self.items.iter().filter(|i| i.is_some()).count()
    }
}

/// A caller's baseline.
#[derive(Debug)]
pub(crate) struct CallerState {
    last_seen: u64,
    total: u64,
    windows: u64,
    win: Window,
    ids: CappedSet,
    rate: Ewma,
    errors: Ewma,
    distinct: Ewma,
    networks: Recent<u64, KNOWN_NETWORKS>,
    /// The address of the caller's previous request: its network is among `networks`
    /// already, so a repeat needs no hashing.
    last_ip: Option<std::net::IpAddr>,
    countries: Recent<CountryCode, KNOWN_COUNTRIES>,
    hours: [u32; 24],
    timing: Option<Box<Timing>>,
    /// Refused object ids over the long window; allocated at the caller's first refused id.
    long: Option<Box<LongWindow>>,
    episode: Episode,
    /// This replica's share of the caller's fleet-wide figures (with a fleet).
    tally: Option<Tally>,
}

/// Distinct refused object ids of one caller over [`DetectionConfig::long_window`].
#[derive(Debug, Default)]
struct LongWindow {
    start: u64,
    ids: CappedSet,
    /// Networks the refused requests came from (at most 8).
    networks: CappedSet,
    fired: bool,
}

impl Tallied for CallerState {
    fn tally(&mut self) -> Option<&mut Tally> {
        self.tally.as_mut()
    }
}

impl CallerState {
    /// `start`: the first window's start (`now`, or the epoch-aligned window holding it when
    /// the figures are fleet-wide, so every replica's windows coincide).
    fn new(now: u64, start: u64, tally: Option<Tally>) -> CallerState {
        CallerState {
            last_seen: now,
            total: 0,
            windows: 0,
            win: Window { start, ..Window::default() },
            ids: CappedSet::default(),
            rate: Ewma::default(),
            errors: Ewma::default(),
            distinct: Ewma::default(),
            networks: Recent::default(),
            last_ip: None,
            countries: Recent::default(),
            hours: [0; 24],
            timing: None,
            long: None,
            episode: Episode::default(),
            tally,
        }
    }

    /// Starts the next window when the current one is over; returns the request count of
    /// the completed window when the baselines learned it (for the peers' baseline).
    fn roll(&mut self, now: u64, len: u64, alpha: f64) -> Option<u32> {
        let elapsed = self.win.elapsed(now, len);
        if elapsed == 0 {
            return None;
        }
        let mut learned_hits = None;
        if self.win.fired == 0 {
            // Learn only from windows without anomalies, and forget a watch that led
            // nowhere. With a fleet, learn the fleet-wide figures the rules compared: a
            // baseline of one replica's share would make every caller spread over N
            // replicas look N times busier than usual.
            let local =
                Figures { hits: self.win.requests, errors: self.win.errors, distinct: self.ids.len() as u32 };
            let learned = self.tally.as_ref().map_or(local, |t| t.seen().max(local));
            self.rate.update(f64::from(learned.hits), alpha);
            learned_hits = Some(learned.hits);
            if learned.hits > 0 {
                self.errors.update(f64::from(learned.errors) / f64::from(learned.hits), alpha);
            }
            self.distinct.update(f64::from(learned.distinct), alpha);
            for _ in 1..elapsed.min(MAX_GAP_WINDOWS) {
                self.rate.update(0.0, alpha);
                self.distinct.update(0.0, alpha);
            }
            self.episode.watch_us = 0;
        }
        self.windows = self.windows.saturating_add(elapsed);
        self.win = self.win.next(elapsed, len);
        self.ids.clear();
        if let Some(tally) = self.tally.as_mut() {
            tally.reset(self.win.start / len.max(1));
        }
        learned_hits
    }
}

/// An endpoint's baseline.
#[derive(Debug)]
pub(crate) struct EndpointState {
    total: u64,
    win: Window,
    rate: Ewma,
    errors: Ewma,
    payload: Ewma,
}

impl EndpointState {
    fn new(now: u64) -> EndpointState {
        EndpointState {
            total: 0,
            win: Window { start: now, ..Window::default() },
            rate: Ewma::default(),
            errors: Ewma::default(),
            payload: Ewma::default(),
        }
    }

    fn roll(&mut self, now: u64, len: u64, alpha: f64) {
        let elapsed = self.win.elapsed(now, len);
        if elapsed == 0 {
            return;
        }
        if self.win.fired & (Rule::EndpointRate.bit() | Rule::EndpointErrors.bit()) == 0 {
            self.rate.update(f64::from(self.win.requests), alpha);
            if self.win.requests > 0 {
                self.errors.update(f64::from(self.win.errors) / f64::from(self.win.requests), alpha);
            }
            for _ in 1..elapsed.min(MAX_GAP_WINDOWS) {
                self.rate.update(0.0, alpha);
            }
        }
        self.win = self.win.next(elapsed, len);
    }
}

/// Failed authentications from one network.
#[derive(Debug)]
pub(crate) struct NetworkState {
    win: Window,
    subjects: CappedSet,
    /// Distinct failing addresses in the window (this replica's: rotation through a
    /// network is the stuffing signal when the failures name no subject).
    addresses: CappedSet,
    episode: Episode,
    /// This replica's share of the network's fleet-wide figures (with a fleet).
    tally: Option<Tally>,
}

impl Tallied for NetworkState {
    fn tally(&mut self) -> Option<&mut Tally> {
        self.tally.as_mut()
    }
}

/// What detection found for one target on one request.
#[derive(Debug)]
pub(crate) struct Finding {
    pub(crate) target: Option<Target>,
    pub(crate) anomaly: Anomaly,
    pub(crate) incident: Option<Arc<Incident>>,
    /// True when this detection opened the incident.
    pub(crate) opened: bool,
    /// True when the caller's automation score fired in this window (its action applies
    /// when another signal fires; see `Rule::Automation`).
    pub(crate) automated: bool,
}

/// How many entries each baseline store holds, and its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreSize {
    /// Entries now.
    pub len: usize,
    /// The bound.
    pub capacity: usize,
}

/// Sizes of the detector's stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DetectorSizes {
    /// Caller baselines.
    pub callers: StoreSize,
    /// Endpoint baselines.
    pub endpoints: StoreSize,
    /// Networks with failed authentications.
    pub networks: StoreSize,
}

pub(crate) struct Detector {
    cfg: DetectionConfig,
    bots: BotConfig,
    human_facing: HashSet<String>,
    prefix: NetworkPrefix,
    window_us: u64,
    idle_reset_us: u64,
    callers: Bounded<CallerState>,
    endpoints: Bounded<EndpointState>,
    networks: Bounded<NetworkState>,
    /// The peers' typical window: mean request count of completed caller windows.
    peers: std::sync::Mutex<Ewma>,
    /// The long window in microseconds.
    long_window_us: u64,
    /// The fleet-wide counters, when the observer has a fleet.
    shared: Option<Arc<FleetCounters>>,
}

impl Detector {
    pub(crate) fn new(cfg: DetectionConfig, bots: BotConfig, prefix: NetworkPrefix) -> Detector {
        Detector {
            window_us: duration_micros(cfg.window).max(1),
            idle_reset_us: duration_micros(cfg.idle_reset),
            callers: Bounded::new(cfg.identity_capacity),
            endpoints: Bounded::new(cfg.endpoint_capacity),
            networks: Bounded::new(cfg.network_capacity),
            peers: std::sync::Mutex::new(Ewma::default()),
            long_window_us: duration_micros(cfg.long_window).max(1),
            human_facing: bots.human_facing.iter().cloned().collect(),
            bots,
            prefix,
            cfg,
            shared: None,
        }
    }

    /// Counts enumeration, request rates, error ratios and credential stuffing fleet-wide
    /// through `counters` (see `fleet_counters`).
    #[cfg(feature = "redis")]
    pub(crate) fn with_fleet(mut self, counters: Option<Arc<FleetCounters>>) -> Detector {
        self.shared = counters;
        self
    }

    /// The start of the window holding `now` for a new target: epoch-aligned with a fleet
    /// (every replica must name the same window), else the target's first request.
    fn window_start(&self, now: u64) -> u64 {
        if self.shared.is_some() { now - now % self.window_us } else { now }
    }

    /// The caller's tally, when the fleet counts it: named by principal, else address.
    fn caller_tally(&self, r: &RequestRecord<'_>, now: u64) -> Option<Tally> {
        let shared = self.shared.as_ref()?;
        let window = now / self.window_us;
        match (r.subject, r.client_ip) {
            (Some(subject), _) => Some(shared.tally(TallyKind::Caller, &[b"p", subject.as_bytes()], window)),
            (None, Some(std::net::IpAddr::V4(ip))) => {
                Some(shared.tally(TallyKind::Caller, &[b"a", &ip.octets()], window))
            }
            (None, Some(std::net::IpAddr::V6(ip))) => {
                Some(shared.tally(TallyKind::Caller, &[b"a", &ip.octets()], window))
            }
            (None, None) => None,
        }
    }

    fn network_tally(&self, net: &ipnet::IpNet, now: u64) -> Option<Tally> {
        let shared = self.shared.as_ref()?;
        let window = now / self.window_us;
        let len = [net.prefix_len()];
        Some(match net.network() {
            std::net::IpAddr::V4(ip) => shared.tally(TallyKind::Network, &[&ip.octets(), &len], window),
            std::net::IpAddr::V6(ip) => shared.tally(TallyKind::Network, &[&ip.octets(), &len], window),
        })
    }

    pub(crate) fn sizes(&self) -> DetectorSizes {
        let size = |len, capacity| StoreSize { len, capacity };
        DetectorSizes {
            callers: size(self.callers.len(), self.callers.capacity()),
            endpoints: size(self.endpoints.len(), self.endpoints.capacity()),
            networks: size(self.networks.len(), self.networks.capacity()),
        }
    }

    pub(crate) fn is_human_facing(&self, route: Option<&str>) -> bool {
        route.is_some_and(|r| self.human_facing.contains(r))
    }

    /// Updates the baselines with one request and returns what fired (usually nothing:
    /// then no allocation happens).
    pub(crate) fn observe(
        &self,
        r: &RequestRecord<'_>,
        keys: &Keys,
        now: u64,
        log: &IncidentLog,
    ) -> Vec<Finding> {
        if let Some(shared) = &self.shared {
            // Lazily, inside the application's runtime; one atomic load once running.
            shared.start();
        }
        let mut findings = Vec::new();
        let mut reasons = Vec::new();
        if let Some(key) = keys.endpoint {
            self.observe_endpoint(r, key, now, &mut reasons);
        }
        if let Some(key) = keys.caller
            && let Some(f) = self.observe_caller(r, key, now, log, &mut reasons)
        {
            findings.push(f);
        } else if !reasons.is_empty() {
            findings.push(Finding {
                target: None,
                anomaly: Anomaly::from_reasons(reasons),
                incident: None,
                opened: false,
                automated: false,
            });
        }
        // A validly signed token that expired is not a guess at a credential: a client
        // whose token lapsed (or many behind one NAT) is not stuffing.
        if r.is_auth_failure()
            && r.reason != Some("token-expired")
            && let Some(ip) = r.client_ip
            && let Some(f) = self.observe_network(r, ip, now, log)
        {
            findings.push(f);
        }
        // Every reason says the window it counted over.
        let window = self.cfg.window.as_secs_f64();
        for reason in findings.iter_mut().flat_map(|f| f.anomaly.reasons.iter_mut()) {
            if reason.window_seconds == 0.0 {
                reason.window_seconds = window;
            }
        }
        findings
    }

    fn observe_endpoint(&self, r: &RequestRecord<'_>, key: u64, now: u64, reasons: &mut Vec<AnomalyReason>) {
        let cfg = &self.cfg;
        let entry = self.endpoints.entry(key, || EndpointState::new(now));
        let mut s = lock(&entry);
        s.roll(now, self.window_us, cfg.ewma_alpha);
        s.total = s.total.saturating_add(1);
        s.win.requests = s.win.requests.saturating_add(1);
        if r.is_error() {
            s.win.errors = s.win.errors.saturating_add(1);
        }
        let warmed = s.total > cfg.warmup_requests;
        if r.request_bytes > 0 {
            let bytes = r.request_bytes as f64;
            let threshold = (cfg.payload_min_bytes as f64).max(cfg.payload_factor * s.payload.mean);
            if warmed && s.payload.ready && bytes >= threshold && s.win.fire(Rule::PayloadSize) {
                reasons.push(reason(
                    Rule::PayloadSize,
                    bytes,
                    s.payload.mean,
                    threshold,
                    "request body bytes vs the endpoint's mean",
                ));
            } else if bytes < threshold {
                // Outliers do not move the baseline.
                s.payload.update(bytes, cfg.ewma_alpha);
            }
        }
        if warmed && s.rate.ready {
            let observed = f64::from(s.win.requests);
            let threshold = f64::from(cfg.endpoint_rate_min).max(cfg.endpoint_rate_factor * s.rate.mean);
            if observed >= threshold && s.win.fire(Rule::EndpointRate) {
                reasons.push(reason(
                    Rule::EndpointRate,
                    observed,
                    s.rate.mean,
                    threshold,
                    "requests to the endpoint in the window",
                ));
            }
            if s.win.errors >= cfg.endpoint_error_min {
                let ratio = f64::from(s.win.errors) / f64::from(s.win.requests.max(1));
                let threshold = cfg.endpoint_error_ratio.max(s.errors.mean + 0.25);
                if ratio >= threshold && s.win.fire(Rule::EndpointErrors) {
                    let mut why = reason(
                        Rule::EndpointErrors,
                        ratio,
                        s.errors.mean,
                        threshold,
                        "share of error responses from the endpoint in the window",
                    );
                    why.related = Some(Related { name: "errors", value: f64::from(s.win.errors) });
                    reasons.push(why);
                }
            }
        }
    }

    fn caller_target(r: &RequestRecord<'_>) -> Option<(u64, Target)> {
        // The record names its caller by principal (the Guard's one caller key).
        if let Some(principal) = r.subject {
            Some((key_of(domain::PRINCIPAL, principal), Target::Principal(principal.to_string())))
        } else {
            r.client_ip.map(|ip| (key_of(domain::ADDRESS, &ip), Target::Address(ip)))
        }
    }

    fn observe_caller(
        &self,
        r: &RequestRecord<'_>,
        key: u64,
        now: u64,
        log: &IncidentLog,
        reasons: &mut Vec<AnomalyReason>,
    ) -> Option<Finding> {
        let cfg = &self.cfg;
        let entry = self
            .callers
            .entry(key, || CallerState::new(now, self.window_start(now), self.caller_tally(r, now)));
        let mut s = lock(&entry);
        if now.saturating_sub(s.last_seen) > self.idle_reset_us {
            // Starting over keeps the fleet name (and the queue flag) of the caller.
            let mut tally = s.tally.take();
            if let Some(tally) = tally.as_mut() {
                tally.reset(now / self.window_us);
            }
            *s = CallerState::new(now, self.window_start(now), tally);
        }
        if let Some(hits) = s.roll(now, self.window_us, cfg.ewma_alpha) {
            // Callers seen once teach the peers' baseline as much as regulars do: a mean over
            // windows, not over callers. Only windows without anomalies are learned.
            super::store::lock(&self.peers).update(f64::from(hits), cfg.ewma_alpha);
        }
        s.last_seen = now.max(s.last_seen);
        s.total = s.total.saturating_add(1);
        s.win.requests = s.win.requests.saturating_add(1);
        if r.is_error() {
            s.win.errors = s.win.errors.saturating_add(1);
        }
        let st = &mut *s;
        if let Some(tally) = st.tally.as_mut() {
            tally.hit(r.is_error());
        }
        // Enumeration is a verified caller reading objects it may not own (BOLA). Anonymous
        // requests are refused before any object is read, and every caller behind one NAT
        // shares their address: counting them would let a 401 flood block colleagues with
        // valid tokens. Anonymous floods are the address quota's and lockout's job.
        //
        // Only ids the application refused (404 missing, 403 foreign) count: reading one's
        // own objects, however many, is not enumeration.
        if r.is_authenticated() && r.refused_object() {
            for (_, id) in r.object_ids {
                let hash = key_of(domain::OBJECT_ID, id);
                // Only ids new to this replica's window are hashed for the fleet.
                if st.ids.insert(hash, MAX_DISTINCT_IDS)
                    && let (Some(tally), Some(shared)) = (st.tally.as_mut(), &self.shared)
                {
                    tally.add(shared.element(TallyKind::Caller, id));
                }
                let long = st
                    .long
                    .get_or_insert_with(|| Box::new(LongWindow { start: now, ..LongWindow::default() }));
                if now.saturating_sub(long.start) >= self.long_window_us {
                    **long = LongWindow { start: now, ..LongWindow::default() };
                }
                long.ids.insert(hash, MAX_LONG_IDS);
            }
            if let (Some(long), Some(ip)) = (st.long.as_mut(), r.client_ip) {
                long.networks.insert(key_of(domain::NETWORK, &self.prefix.network_of(ip)), 8);
            }
        }
        // The figures the rules compare: this replica's, or the fleet's merged with them.
        let local = Figures { hits: s.win.requests, errors: s.win.errors, distinct: s.ids.len() as u32 };
        let figures = match s.tally.as_mut() {
            Some(tally) => tally.merge(local),
            None => local,
        };
        let mut pressure: f64 = 0.0;
        let hour = utc_hour(now);
        if let Some(h) = s.hours.get_mut(hour) {
            *h = h.saturating_add(1);
        }
        let warmed = s.total > cfg.warmup_requests && s.windows >= 1;

        // Enumeration: distinct object ids in the window.
        let distinct = f64::from(figures.distinct);
        if distinct > 0.0 {
            let threshold = if warmed {
                f64::from(cfg.enumeration_min_distinct).max(cfg.enumeration_factor * s.distinct.mean)
            } else {
                f64::from(cfg.enumeration_hard_limit)
            };
            pressure = pressure.max(distinct / threshold);
            s.episode.watch(now, distinct / threshold);
            if distinct >= threshold && s.win.fire(Rule::Enumeration) {
                let mut why = reason(
                    Rule::Enumeration,
                    distinct,
                    s.distinct.mean,
                    threshold,
                    "distinct object ids requested in the window",
                );
                why.related = Some(Related { name: "requests", value: f64::from(figures.hits) });
                reasons.push(why);
            }
        }
        // Slow enumeration: the same count over the long window (this replica's).
        // Fewer suffice when they come from several networks: one token, rotating addresses.
        // Only a walk spanning windows is slow: while every id is in the current window the
        // window's own rule judges it (at its own threshold).
        let in_window = s.ids.len();
        if let Some(long) = s.long.as_mut()
            && !long.fired
            && long.ids.len() > in_window
        {
            let spread = long.networks.len() >= cfg.slow_enumeration_networks as usize;
            let threshold = if spread {
                cfg.slow_enumeration_spread_min.min(cfg.slow_enumeration_min)
            } else {
                cfg.slow_enumeration_min
            };
            if long.ids.len() >= threshold as usize {
                long.fired = true;
                let mut why = reason(
                    Rule::SlowEnumeration,
                    long.ids.len() as f64,
                    0.0,
                    f64::from(threshold),
                    "distinct object ids answered 404/403 in the long window",
                );
                why.window_seconds = cfg.long_window.as_secs_f64();
                why.related = Some(Related { name: "networks", value: long.networks.len() as f64 });
                reasons.push(why);
            }
        }
        if !warmed {
            // Request rate of a caller without a baseline of its own: against its peers.
            let peers = super::store::lock(&self.peers).mean;
            let observed = f64::from(figures.hits);
            let threshold = f64::from(cfg.rate_new_min).max(cfg.rate_peer_factor * peers);
            pressure = pressure.max(observed / threshold);
            if observed >= threshold && s.win.fire(Rule::RequestRate) {
                let mut why = reason(
                    Rule::RequestRate,
                    observed,
                    peers,
                    threshold,
                    "requests in the window of a caller still warming up, vs its peers' mean",
                );
                why.label = Some("peers");
                reasons.push(why);
            }
        }
        self.graphql_signals(r, &mut s.win, reasons);
        if warmed {
            // Request rate.
            let observed = f64::from(figures.hits);
            let threshold = f64::from(cfg.rate_min).max(cfg.rate_factor * s.rate.mean);
            pressure = pressure.max(observed / threshold);
            s.episode.watch(now, observed / threshold);
            if observed >= threshold && s.win.fire(Rule::RequestRate) {
                reasons.push(reason(
                    Rule::RequestRate,
                    observed,
                    s.rate.mean,
                    threshold,
                    "requests in the window",
                ));
            }
            // Error ratio.
            pressure = pressure.max(f64::from(figures.errors) / f64::from(cfg.error_min.max(1)));
            if figures.errors >= cfg.error_min {
                let ratio = f64::from(figures.errors) / f64::from(figures.hits.max(1));
                let threshold = cfg.error_ratio.max(s.errors.mean + 0.25);
                if ratio >= threshold && s.win.fire(Rule::ErrorRatio) {
                    let mut why = reason(
                        Rule::ErrorRatio,
                        ratio,
                        s.errors.mean,
                        threshold,
                        "share of error responses in the window",
                    );
                    why.related = Some(Related { name: "errors", value: f64::from(figures.errors) });
                    reasons.push(why);
                }
            }
            // Unusual hour.
            if s.total >= cfg.unusual_hour_min_requests && !s.win.has_fired(Rule::UnusualHour) {
                let share = f64::from(s.hours.get(hour).copied().unwrap_or(0)) / s.total as f64;
                if share < cfg.unusual_hour_share {
                    s.win.fire(Rule::UnusualHour);
                    let mut why = reason(
                        Rule::UnusualHour,
                        share,
                        cfg.unusual_hour_share,
                        cfg.unusual_hour_share,
                        "share of the caller's requests at this UTC hour",
                    );
                    why.contribution = Rule::UnusualHour.weight();
                    why.related = Some(Related { name: "hour_utc", value: hour as f64 });
                    reasons.push(why);
                }
            }
        }
        // New network / country: learned always, reported after warm-up.
        if let Some(ip) = r.client_ip
            && s.last_ip.replace(ip) != Some(ip)
        {
            let known = s.networks.len() as f64;
            let net = key_of(domain::NETWORK, &self.prefix.network_of(ip));
            if s.networks.note(net) && warmed && cfg.new_network {
                let mut why =
                    reason(Rule::NewNetwork, 1.0, known, 1.0, "a network not among the caller's recent ones");
                why.contribution = Rule::NewNetwork.weight();
                reasons.push(why);
            }
        }
        if let Some(country) = r.country {
            let known = s.countries.len() as f64;
            if s.countries.note(country) && warmed && cfg.new_country && known > 0.0 {
                let mut why =
                    reason(Rule::NewCountry, 1.0, known, 1.0, "a country not among the caller's recent ones");
                why.contribution = Rule::NewCountry.weight();
                reasons.push(why);
            }
        }
        // Timing is kept for every caller (the automation score reads it on every route,
        // the bot rules on human-facing ones). The first request starts the clock.
        match s.timing.as_mut() {
            Some(timing) => timing.push(now, self.bots.timing_samples),
            None => s.timing = Some(Box::new(Timing::new(now))),
        }
        self.automation(r, &mut s, reasons);
        if self.is_human_facing(r.route) {
            self.bot_signals(r, &mut s, reasons);
        }
        if let (Some(shared), Some(tally)) = (&self.shared, s.tally.as_mut()) {
            if !tally.queued {
                tally.queued = shared.enqueue(entry.clone());
            }
            if pressure >= shared.hot_at(HOT_PRESSURE) {
                shared.wake();
            }
        }
        if reasons.is_empty() {
            return None;
        }
        let (_, target) = Self::caller_target(r)?;
        let rules: Vec<Rule> = reasons.iter().map(|x| x.rule).collect();
        let (incident, opened) =
            s.episode.detect(now, cfg.episode_idle, |first| log.open(target.to_string(), rules, first, now));
        let automated = s.win.has_fired(Rule::Automation);
        drop(s);
        Some(Finding {
            target: Some(target),
            anomaly: Anomaly::from_reasons(std::mem::take(reasons)),
            incident: Some(incident),
            opened,
            automated,
        })
    }

    /// GraphQL abuse: documents refused at a limit, or accepted near one, repeatedly.
    fn graphql_signals(&self, r: &RequestRecord<'_>, win: &mut Window, reasons: &mut Vec<AnomalyReason>) {
        let cfg = &self.cfg;
        if r.reason.is_some_and(|slug| GRAPHQL_LIMIT_SLUGS.contains(&slug)) {
            win.graphql_rejected = win.graphql_rejected.saturating_add(1);
        } else if r.graphql_pressure.is_some_and(|p| f64::from(p) >= cfg.graphql_near_share) {
            win.graphql_near = win.graphql_near.saturating_add(1);
        } else {
            return;
        }
        let rejected = u32::from(win.graphql_rejected);
        let near = u32::from(win.graphql_near);
        let (observed, threshold, measure, label) = if rejected >= cfg.graphql_rejected_min {
            (
                rejected,
                cfg.graphql_rejected_min,
                "GraphQL documents refused at a limit in the window",
                "rejected",
            )
        } else if near >= cfg.graphql_near_limit_min {
            (
                near,
                cfg.graphql_near_limit_min,
                "GraphQL documents accepted near a limit in the window",
                "near_limit",
            )
        } else {
            return;
        };
        if win.fire(Rule::GraphqlAbuse) {
            let mut why = reason(Rule::GraphqlAbuse, f64::from(observed), 0.0, f64::from(threshold), measure);
            why.label = Some(label);
            why.related = Some(Related {
                name: if label == "rejected" { "near_limit" } else { "rejected" },
                value: f64::from(if label == "rejected" { near } else { rejected }),
            });
            reasons.push(why);
        }
    }

    /// The automation score ([`BotConfig`]), on every route.
    fn automation(&self, r: &RequestRecord<'_>, s: &mut CallerState, reasons: &mut Vec<AnomalyReason>) {
        let bots = &self.bots;
        let regular = s.timing.as_ref().and_then(|t| t.regularity(bots.timing_min_samples)).is_some_and(
            |(mean_s, cv)| cv <= bots.timing_max_cv && mean_s <= bots.timing_max_mean.as_secs_f64(),
        );
        let score = bot::automation_score(r.user_agent, &r.headers, regular);
        if score.value >= bots.automation_threshold && s.win.fire(Rule::Automation) {
            let mut why = reason(
                Rule::Automation,
                score.value,
                0.0,
                bots.automation_threshold,
                "automation score (user agent, browser headers, header count, timing)",
            );
            why.label = Some(score.strongest);
            why.related = Some(Related { name: "signals", value: f64::from(score.signals) });
            reasons.push(why);
        }
    }

    fn bot_signals(&self, r: &RequestRecord<'_>, s: &mut CallerState, reasons: &mut Vec<AnomalyReason>) {
        let bots = &self.bots;
        if let Some(label) = bot::automation_label(r.user_agent)
            && s.win.fire(Rule::BotUserAgent)
        {
            let mut why =
                reason(Rule::BotUserAgent, 1.0, 0.0, 1.0, "an automation client's or no user agent");
            why.label = Some(label);
            reasons.push(why);
        }
        if let Some(label) = bot::header_anomaly(r.user_agent, &r.headers)
            && s.win.fire(Rule::BotHeaders)
        {
            let mut why =
                reason(Rule::BotHeaders, 1.0, 0.0, 1.0, "a browser user agent without browser headers");
            why.label = Some(label);
            reasons.push(why);
        }
        let Some(timing) = s.timing.as_ref() else {
            return;
        };
        if let Some((mean_s, cv)) = timing.regularity(bots.timing_min_samples)
            && cv <= bots.timing_max_cv
            && mean_s <= bots.timing_max_mean.as_secs_f64()
            && s.win.fire(Rule::BotTiming)
        {
            let mut why = reason(
                Rule::BotTiming,
                cv,
                0.0,
                bots.timing_max_cv,
                "coefficient of variation of inter-arrival times (lower is more regular)",
            );
            // Lower is worse here: full strength at perfectly regular timing.
            let s = if bots.timing_max_cv > 0.0 { 1.0 - 0.5 * cv / bots.timing_max_cv } else { 1.0 };
            why.contribution = Rule::BotTiming.weight() * s.clamp(0.5, 1.0);
            why.related = Some(Related { name: "mean_interval_seconds", value: mean_s });
            reasons.push(why);
        }
    }

    fn observe_network(
        &self,
        r: &RequestRecord<'_>,
        ip: std::net::IpAddr,
        now: u64,
        log: &IncidentLog,
    ) -> Option<Finding> {
        let cfg = &self.cfg;
        let net = self.prefix.network_of(ip);
        let entry = self.networks.entry(key_of(domain::NETWORK, &net), || NetworkState {
            win: Window { start: self.window_start(now), ..Window::default() },
            subjects: CappedSet::default(),
            addresses: CappedSet::default(),
            episode: Episode::default(),
            tally: self.network_tally(&net, now),
        });
        let mut s = lock(&entry);
        let elapsed = s.win.elapsed(now, self.window_us);
        if elapsed > 0 {
            if s.win.fired == 0 {
                s.episode.watch_us = 0;
            }
            s.win = s.win.next(elapsed, self.window_us);
            s.subjects.clear();
            s.addresses.clear();
            let window = s.win.start / self.window_us;
            if let Some(tally) = s.tally.as_mut() {
                tally.reset(window);
            }
        }
        s.win.errors = s.win.errors.saturating_add(1);
        let st = &mut *s;
        if let Some(tally) = st.tally.as_mut() {
            tally.hit(false);
        }
        if let Some(subject) = r.attempted_subject.or(r.subject)
            && st.subjects.insert(key_of(domain::ATTEMPTED, subject), MAX_DISTINCT_SUBJECTS)
            && let (Some(tally), Some(shared)) = (st.tally.as_mut(), &self.shared)
        {
            tally.add(shared.element(TallyKind::Network, subject));
        }
        s.addresses.insert(key_of(domain::ADDRESS, &ip), MAX_DISTINCT_SUBJECTS);
        let addresses = f64::from(s.addresses.len() as u32);
        let local = Figures { hits: s.win.errors, errors: 0, distinct: s.subjects.len() as u32 };
        let figures = match s.tally.as_mut() {
            Some(tally) => tally.merge(local),
            None => local,
        };
        let failures = f64::from(figures.hits);
        let subjects = f64::from(figures.distinct);
        let min_failures = f64::from(cfg.stuffing_min_failures.max(1));
        if let (Some(shared), Some(tally)) = (&self.shared, s.tally.as_mut()) {
            if !tally.queued {
                tally.queued = shared.enqueue(entry.clone());
            }
            if failures / min_failures >= shared.hot_at(HOT_PRESSURE) {
                shared.wake();
            }
        }
        s.episode.watch(now, failures / min_failures);
        // Many accounts tried, or many addresses of the network failing (a rotation through
        // it; without subject information the count of subjects says nothing).
        let many_subjects = subjects.max(addresses) >= f64::from(cfg.stuffing_min_subjects);
        let sheer_volume = failures >= 3.0 * min_failures;
        if !(failures >= min_failures && (many_subjects || sheer_volume))
            || !s.win.fire(Rule::CredentialStuffing)
        {
            return None;
        }
        let mut why = reason(
            Rule::CredentialStuffing,
            failures,
            0.0,
            if many_subjects { min_failures } else { 3.0 * min_failures },
            "failed authentications from the network in the window",
        );
        why.related = if subjects >= addresses {
            Some(Related { name: "distinct_subjects", value: subjects })
        } else {
            Some(Related { name: "distinct_addresses", value: addresses })
        };
        let target = Target::Network(net);
        let (incident, opened) = s.episode.detect(now, cfg.episode_idle, |first| {
            log.open(target.to_string(), vec![Rule::CredentialStuffing], first, now)
        });
        Some(Finding {
            target: Some(target),
            anomaly: Anomaly::from_reasons(vec![why]),
            incident: Some(incident),
            opened,
            automated: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_slugs_are_distinct_and_serde_matches() {
        let slugs: HashSet<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(slugs.len(), Rule::ALL.len());
        for rule in Rule::ALL {
            assert_eq!(serde_json::to_string(&rule).unwrap(), format!("\"{}\"", rule.as_str()));
            assert!(rule.weight() > 0.0 && rule.weight() <= 1.0);
        }
        assert!(Rule::ALL.len() <= 16, "fired bits fit a u16");
    }

    #[test]
    fn score_is_noisy_or_and_explained() {
        let a = Anomaly::from_reasons(vec![
            reason(Rule::Enumeration, 40.0, 3.0, 20.0, "ids"),
            reason(Rule::NewNetwork, 1.0, 2.0, 1.0, "net"),
        ]);
        // Enumeration at 2x threshold: 0.9 x 1.0; new network at threshold: 0.2 x 0.5.
        assert!((a.score - (1.0 - 0.1 * 0.9)).abs() < 1e-9, "{}", a.score);
        assert!(a.has(Rule::Enumeration) && !a.has(Rule::BotTiming));
        assert_eq!(a.rules_text(), "enumeration,new_network");
        let json: serde_json::Value = serde_json::from_str(&a.reasons_json()).unwrap();
        assert_eq!(json[0]["rule"], "enumeration");
        assert_eq!(json[0]["observed"], 40.0);
        assert_eq!(json[0]["baseline"], 3.0);
        assert_eq!(json[0]["threshold"], 20.0);
        assert_eq!(Anomaly::from_reasons(vec![]).score, 0.0);
    }

    #[test]
    fn config_validation_names_fields() {
        assert!(DetectionConfig::default().validate().is_ok());
        let bad = DetectionConfig { enumeration_hard_limit: 1000, ..DetectionConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("observe.detection.enumeration_hard_limit"));
        let bad = DetectionConfig { ewma_alpha: 0.0, ..DetectionConfig::default() };
        assert!(bad.validate().is_err());
        let bad = DetectionConfig { window: Duration::ZERO, ..DetectionConfig::default() };
        assert!(bad.validate().is_err());
        let parsed: DetectionConfig = toml::from_str("window = \"30s\"\nrate_min = 10\n").unwrap();
        assert_eq!(parsed.window, Duration::from_secs(30));
        assert_eq!(parsed.rate_min, 10);
        assert!(toml::from_str::<DetectionConfig>("nonsense = 1").is_err(), "unknown keys are errors");
    }

    #[test]
    fn recent_ring_remembers_n() {
        let mut r: Recent<u32, 3> = Recent::default();
        assert!(r.note(1) && r.note(2) && r.note(3));
        assert!(!r.note(2));
        assert!(r.note(4), "evicts the oldest (1)");
        assert!(r.note(1));
        assert_eq!(r.len(), 3);
    }
}
