//! Observation after the response: security events, KPIs, baselines and anomaly
//! detection, responses to anomalies, runtime controls, and the API inventory.
//!
//! One [`Observer`] holds it all. The Guard calls it twice per request, and neither call
//! can fail or block the request:
//!
//! ```text
//!  request ─> Guard: route, authenticate ─> observer.verdict_hint(&HintRequest) ─┐
//!                                                                                ├─ Proceed: authorize, limit, forward
//!                                                                                ├─ Block / Challenge / Revoked: answer now
//!  response ─> observer.wants_response_sample(method, route)? ─> observer.observe(&RequestRecord)
//! ```
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use zt_core::observe::{Decision, Hint, HintRequest, ManualClock, Observer, ObserverConfig, RequestRecord};
//!
//! let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
//! let observer = Observer::builder(ObserverConfig::default()).clock(clock.clock()).build()?;
//! observer.inventory().declare("GET", "/orders/{id}");
//!
//! // Before handling: is the caller blocked, challenged, or its token revoked?
//! let hint = observer.verdict_hint(&HintRequest { caller: None, subject: Some("alice"), client_ip: None, jti: None });
//! assert!(matches!(hint, Hint::Proceed));
//!
//! // After the response: one borrowed record, O(1) work.
//! let mut record = RequestRecord::new(observer.now(), "req-1", "GET", "/orders/7", 200, Decision::Allow);
//! record.route = Some("/orders/{id}");
//! record.subject = Some("alice");
//! record.object_ids = &[("id", "7")];
//! let observation = observer.observe(&record);
//! assert!(observation.is_empty());
//! # Ok::<(), zt_core::PolicyError>(())
//! ```
//!
//! # How the Guard calls it
//!
//! 1. At start-up: build the observer from the policy ([`ObserverConfig`], serde), with the
//!    Guard's mode ([`ObserverBuilder::mode`]), an [`ActionSink`] forwarding throttles to the
//!    limiter, and the user's challenge hook if any. Declare every route
//!    ([`Inventory::declare`]) and the deprecated ones ([`InventoryConfig::deprecated`]).
//! 2. Per request, after routing and authentication (subject and `jti` known):
//!    [`Observer::verdict_hint`]. `Hint::Block`/`Hint::Challenge` -> answer with
//!    [`Block::response`] (in report-only mode log `would_deny` and forward, as for any
//!    denial); `Hint::Revoked` -> [`revoked_response`]. Record the hint's
//!    [`Hint::slug`] as the reason. Address-only blocks can be checked before
//!    authentication with [`Controls::is_blocked`]`(None, ip)` to save a signature check.
//! 3. If [`Observer::wants_response_sample`] says so, keep up to that many bytes of the
//!    response body (without delaying it).
//! 4. After the response: [`Observer::observe`] with a [`RequestRecord`] stamped by
//!    [`Observer::now`] at arrival. Cheap and synchronous; it emits events and metrics.
//! 5. Every ~10 s from a timer: [`Observer::maintenance`] (drops expired blocks and
//!    revocations, refreshes `zt_active_blocks`).
//!
//! # Events (`zt::security`) and their ECS mapping
//!
//! Every denial (INFO, `event.kind = event`), anomaly and action (WARN, `event.kind =
//! alert`) is a `tracing` event on target `zt::security` with these fields.
//! [`EcsJsonLayer`] writes them as ECS JSON (dots nest: `client.ip` ->
//! `{"client":{"ip":..}}`); with any other subscriber the same names appear flat.
//!
//! | field | ECS | meaning | Filebeat / Vector | Splunk HEC (CIM) | Sentinel (ASIM WebSession) |
//! |---|---|---|---|---|---|
//! | `@timestamp` | core | when written (RFC 3339, ms) | `@timestamp` | `time` | `TimeGenerated` |
//! | `message` | core | = `event.reason` | `message` | `event` | `EventMessage` |
//! | `event.kind` | yes | `alert` or `event` | as is | `tag` | `EventType` |
//! | `event.category` | yes | `["authentication"]`, `["web"]`, `["intrusion_detection"]` | as is | `tag` | `EventSchema` hint |
//! | `event.type` | yes | `["denied"]`, `["indicator"]`, `["change"]` | as is | `action` | `EventResult` |
//! | `event.action` | yes | `request-denied`, `lockout`, `request-blocked`, `anomaly-detected`, `throttle`, `challenge`, `block` | as is | `signature` | `EventOriginalType` |
//! | `event.outcome` | yes | `success`, `failure`, `unknown` | as is | `action` | `EventResult` |
//! | `event.reason` | yes | short safe sentence | as is | `reason` | `EventResultDetails` |
//! | `event.severity` | yes | 21 low, 47 medium, 73 high | as is | `severity_id` | `EventSeverity` |
//! | `user.id` | yes | verified subject | as is | `user` | `SrcUsername` |
//! | `client.ip`, `source.ip` | yes | client address (resolved through trusted proxies) | as is | `src` | `SrcIpAddr` |
//! | `source.geo.country_iso_code` | yes | ISO 3166-1 alpha-2 | as is | `src_country` | `SrcGeoCountry` |
//! | `user_agent.original` | yes | cut at 512 bytes | as is | `http_user_agent` | `HttpUserAgent` |
//! | `http.request.method` | yes | method | as is | `http_method` | `HttpRequestMethod` |
//! | `url.path` | yes | path, never the query; cut at 1 024 bytes | as is | `uri_path` | `UrlOriginal` |
//! | `http.response.status_code` | yes | status | as is | `status` | `HttpStatusCode` |
//! | `trace.id` | yes | W3C trace id | as is | `trace_id` | `AdditionalFields.TraceId` |
//! | `zt.request_id` | custom | also in `x-request-id` and problem bodies | `zt.*` as is | `zt_request_id` | `AdditionalFields` |
//! | `zt.route` | custom | route template | | | `UrlCategory` |
//! | `zt.decision`, `zt.reason` | custom | Guard decision and denial slug | | | `EventResultDetails` |
//! | `zt.client_id` | custom | OAuth client id | | `app` | `AdditionalFields` |
//! | `zt.anomaly.score` | custom | 0..1 | | `risk_score` | `RiskLevel` (× 100) |
//! | `zt.anomaly.rules` | custom | `enumeration,bot_timing` | | `signature_id` | `ThreatName` |
//! | `zt.anomaly.reasons` | custom | `[{rule, observed, baseline, threshold, window_seconds, contribution, measure, label?, related?}]` | | | `AdditionalFields` |
//! | `zt.action`, `zt.enforced` | custom | action taken; false in report-only mode | | `action` | `DvcAction` |
//! | `zt.target`, `zt.duration_seconds` | custom | what an action applies to (`subject:alice`, `network:203.0.113.0/24`), for how long | | | `AdditionalFields` |
//! | `zt.incident.id` | custom | incident correlation | | `incident_id` | `AdditionalFields` |
//! | `zt.zone`, `zt.operation_id`, `zt.mode` | custom | trust zone, OpenAPI operation, `enforce`/`report` | | | `AdditionalFields` |
//!
//! Never recorded: tokens, claim values beyond subject and client id, query strings,
//! request or response bodies (samples are classified in memory and dropped), the
//! object ids and attempted subjects behind counts (only keyed hashes are kept).
//! Client addresses appear only as structured fields, never in message text.
//!
//! Filebeat: `filestream` input with the `ndjson` parser (`target: ""`), or ship stdout.
//! Vector: `file`/`stdin` source, `codec: json`. Splunk HEC: post each line as `event`
//! with `sourcetype=_json`. Sentinel: Azure Monitor Agent custom JSON log to a table
//! whose columns follow the table above.
//!
//! # Metrics
//!
//! Security KPIs through the [`metrics`] facade.
//!
//! Names and labels are stable (dashboards and alerts key on them). Labels have bounded
//! values: `route` is a declared route template or `undeclared`, `reason` a denial slug or
//! `none`, `rule` an anomaly [`Rule`] slug, `action` an [`Action`] slug.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `zt_requests_total` | counter | `decision`, `reason`, `route` | every observed request |
//! | `zt_blocked_total` | counter | | requests refused by a temporary block or a challenge |
//! | `zt_auth_failures_total` | counter | | credentials presented and rejected (and application 401s) |
//! | `zt_rate_limited_total` | counter | | requests refused by a limiter (`rate-limited`, `locked-out`) |
//! | `zt_anomalies_total` | counter | `rule` | anomaly rule firings (once per caller, rule and window) |
//! | `zt_actions_total` | counter | `action`, `enforced` | responses to anomalies (`enforced="false"` in report-only mode) |
//! | `zt_incidents_total` | counter | | incidents opened (first detection of an episode) |
//! | `zt_active_blocks` | gauge | | temporary blocks in force |
//! | `zt_time_to_detect_seconds` | histogram | | first anomalous request of an episode -> detection |
//! | `zt_time_to_block_seconds` | histogram | | detection -> first request refused by the resulting block |
//!
//! Without an installed recorder every call is a no-op. [`describe_metrics`] registers
//! their descriptions and units; `install_prometheus` (feature `prometheus`) installs the
//! Prometheus exporter with an HTTP listener.
//!
//! # Bounded state
//!
//! | store | bound (default) | eviction |
//! |---|---|---|
//! | caller baselines | [`DetectionConfig::identity_capacity`] (10 000) | approximate LRU, scan resistant; idle > 7 days resets |
//! | endpoint baselines | [`DetectionConfig::endpoint_capacity`] (1 000) | approximate LRU |
//! | network failure counters | [`DetectionConfig::network_capacity`] (10 000) | approximate LRU |
//! | blocks and challenges | [`ControlsConfig::max_blocks`] (100 000) | expired first, then soonest to expire |
//! | revocations | [`ControlsConfig::max_revocations`] (100 000) | expired only; full -> `revoke` fails |
//! | inventory | declared routes (2 000) + [`InventoryConfig::max_shadow`] shapes (500) + one overflow | none needed: capped |
//! | geo cache | [`GeoConfig::cache_capacity`] (10 000) | approximate LRU |
//! | incident log | 256 incidents | oldest first |
//! | per caller: refused object ids / window | 256 distinct ids | saturates |
//! | per caller: refused object ids / long window | 64 distinct ids, 8 networks (allocated at the first refused id) | saturates; restarts with the next long window |
//! | per caller: inter-arrival times | `bots.timing_samples` (16) | ring |
//! | per network: failing addresses / window | 64 | saturates |
//! | peers' baseline | one EWMA | none needed |
//!
//! # Detection quality
//!
//! Measured on a labelled workload (`tests/detection_workload.rs`; figures and the command
//! in `DETECTION.md`): which rule names which attacker, and what benign traffic
//! (batch jobs reading back their own objects, integrations polling every second, users
//! behind one NAT address, tokens expiring mid-session) must never trip.

// Private like `limit/`'s: everything users name is re-exported below, so a file can be
// split or merged without breaking them.
mod bot;
mod classify;
mod clock;
mod controls;
mod detect;
mod ecs;
mod event;
mod fleet_counters;
mod geo;
mod incident;
// Crate-visible: the Guard names `inventory::standard_method`.
pub(crate) mod inventory;
mod kinds;
mod kpi;
mod record;
mod response;
mod rule;
mod store;
mod target;

// Benchmark workloads (feature `bench`, enabled by the workspace's benches; also built
// for this crate's own tests).
#[cfg(any(test, feature = "bench"))]
pub mod bench;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::mode::Mode;

pub use bot::BotConfig;
pub use classify::{DataClass, DataClasses};
pub use clock::{ManualClock, ObserveClock};
#[cfg(feature = "redis")]
pub(crate) use controls::SignalRevocation;
pub use controls::{
    BLOCKED_PROBLEM_TYPE, Block, BlockKind, Controls, ControlsConfig, RevokeError, revoked_response,
};
pub use detect::{Anomaly, AnomalyReason, DetectionConfig, DetectorSizes, Related, StoreSize};
pub use ecs::{ECS_VERSION, EcsJsonLayer, FlushGuard, NonBlocking, QueuedLine, SharedBuffer};
pub use geo::{CountryCode, GeoConfig, GeoResolver};
pub use incident::IncidentReport;
pub use inventory::{
    Decisions, EndpointSnapshot, EndpointStatus, Inventory, InventoryConfig, InventorySnapshot,
    InventorySummary, RouteRef, StatusClasses,
};
pub use kinds::SECURITY_TARGET;
pub use kpi::describe_metrics;
#[cfg(feature = "prometheus")]
pub use kpi::{MetricsError, install_prometheus};
pub use record::{Decision, HeaderFacts, RequestRecord};
pub use response::{ActionSink, ActionTaken, ChallengeHook, ChallengeResponse, ResponseConfig};
pub use rule::{Action, Rule};
pub use target::{NetworkPrefix, Target};

use clock::to_micros;
use detect::{Detector, Finding};
use event::{SecurityEvent, denial_event};
use incident::IncidentLog;
pub(crate) use inventory::EndpointHandle;
use kinds::{EventCategory, EventKind, EventOutcome, EventType, severity as sev};

/// Everything the observer can be configured with (serde: the policy's `[observe]` table).
/// Every field has a documented default.
///
/// There is no `mode` here: the observer acts in the Guard's mode (the policy's top-level
/// `mode`), handed over with [`ObserverBuilder::mode`], so a policy cannot say `report` in
/// one place and `enforce` in another. `[observe] mode = ...` is an unknown key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObserverConfig {
    /// How wide a network is (blocks, credential stuffing, new-network signal).
    pub network_prefix: NetworkPrefix,
    /// Baselines and rules.
    pub detection: DetectionConfig,
    /// Bot signals.
    pub bots: BotConfig,
    /// Responses to anomalies.
    pub response: ResponseConfig,
    /// Bounds of the block and revocation stores.
    pub controls: ControlsConfig,
    /// The API inventory.
    pub inventory: InventoryConfig,
    /// Country resolution.
    pub geo: GeoConfig,
}

impl ObserverConfig {
    /// Checks every entry; errors name it (`observe.<section>.<field>`).
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.detection.validate()?;
        let p = &self.network_prefix;
        if !(8..=32).contains(&p.ipv4) || !(16..=128).contains(&p.ipv6) {
            return Err(PolicyError::invalid(
                "observe.network_prefix",
                "ipv4 must be in 8..=32 and ipv6 in 16..=128",
            ));
        }
        let r = &self.response;
        if !(r.throttle_factor > 0.0 && r.throttle_factor < 1.0) {
            return Err(PolicyError::invalid("observe.response.throttle_factor", "must be in (0, 1)"));
        }
        for (name, d) in
            [("block_for", r.block_for), ("throttle_for", r.throttle_for), ("challenge_for", r.challenge_for)]
        {
            if d.is_zero() {
                return Err(PolicyError::invalid(
                    format!("observe.response.{name}"),
                    "must be longer than 0s",
                ));
            }
        }
        if self.controls.max_blocks == 0 || self.controls.max_revocations == 0 {
            return Err(PolicyError::invalid("observe.controls", "capacities must be at least 1"));
        }
        if self.inventory.sample_bytes == 0 {
            return Err(PolicyError::invalid("observe.inventory.sample_bytes", "must be at least 1"));
        }
        if self.bots.timing_samples < 2 || self.bots.timing_min_samples > self.bots.timing_samples {
            return Err(PolicyError::invalid(
                "observe.bots.timing_samples",
                "must be at least 2 and at least timing_min_samples",
            ));
        }
        Ok(())
    }
}

/// What the Guard knows before handling a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct HintRequest<'a> {
    /// The verified caller, if any: blocks of its principal, subject or client id apply.
    pub caller: Option<&'a crate::identity::Identity>,
    /// A caller known only by name (no [`Identity`](crate::Identity) at hand): blocks of
    /// it as a principal or a subject apply. Ignored when `caller` is set.
    pub subject: Option<&'a str>,
    /// The resolved client address.
    pub client_ip: Option<IpAddr>,
    /// The token's `jti`, if any.
    pub jti: Option<&'a str>,
}

/// The observer's advice before handling.
#[derive(Debug, Clone)]
pub enum Hint {
    /// Nothing against the request.
    Proceed,
    /// Refuse with [`Block::response`] (403 `urn:zt:problem:blocked`).
    Block(Arc<Block>),
    /// Answer with the challenge in [`Block::response`].
    Challenge(Arc<Block>),
    /// The token was revoked: refuse with [`revoked_response`].
    Revoked,
}

impl Hint {
    /// The reason slug to record for a refused request: `blocked`, `challenged`,
    /// `token-revoked`; `None` for `Proceed`.
    pub fn slug(&self) -> Option<&'static str> {
        match self {
            Hint::Proceed => None,
            Hint::Block(_) => Some("blocked"),
            Hint::Challenge(_) => Some("challenged"),
            Hint::Revoked => Some("token-revoked"),
        }
    }
}

/// One detection on one request: the anomaly, what was done, and its incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The caller or network it is about (`None` for endpoint-only findings on requests
    /// without subject or address).
    pub target: Option<Target>,
    /// The score and reasons.
    pub anomaly: Anomaly,
    /// The response.
    pub action: ActionTaken,
    /// The incident, if any.
    pub incident_id: Option<u64>,
    /// True when this detection opened the incident.
    pub opened_incident: bool,
}

/// What [`Observer::observe`] found (usually nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Detections, one per target.
    pub detections: Vec<Detection>,
}

impl Observation {
    /// True when nothing was detected.
    pub fn is_empty(&self) -> bool {
        self.detections.is_empty()
    }

    /// The detection whose anomaly includes `rule`.
    pub fn with_rule(&self, rule: Rule) -> Option<&Detection> {
        self.detections.iter().find(|d| d.anomaly.has(rule))
    }
}

/// Sizes of every store the observer keeps, with their bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreSizes {
    /// Baseline stores.
    pub detector: DetectorSizes,
    /// Blocks and challenges held.
    pub blocks: usize,
    /// Revocations held.
    pub revocations: usize,
    /// Inventory endpoints.
    pub inventory: usize,
    /// Geo cache entries.
    pub geo_cache: usize,
}

/// The observer. Cheap to clone (one `Arc`); share one per Guard.
#[derive(Clone)]
pub struct Observer {
    inner: Arc<Inner>,
}

struct Inner {
    config: ObserverConfig,
    mode: Mode,
    clock: ObserveClock,
    detector: Detector,
    controls: Controls,
    inventory: Inventory,
    geo: GeoResolver,
    incidents: IncidentLog,
    sink: Option<Arc<dyn ActionSink>>,
    challenge: Option<ChallengeHook>,
    requests: kpi::RequestCounters,
    /// The store shared with the other replicas, if any.
    #[cfg(feature = "redis")]
    fleet: Option<crate::fleet::Fleet>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("mode", &self.inner.mode)
            .field("sizes", &self.store_sizes())
            .finish_non_exhaustive()
    }
}

/// Options for [`Observer::builder`].
pub struct ObserverBuilder {
    config: ObserverConfig,
    mode: Option<Mode>,
    clock: ObserveClock,
    sink: Option<Arc<dyn ActionSink>>,
    challenge: Option<ChallengeHook>,
    #[cfg(feature = "redis")]
    fleet: Option<crate::fleet::Fleet>,
}

impl ObserverBuilder {
    /// Shares controls (blocks, revocations) and the fleet-wide detection counters with the
    /// other replicas through `fleet` (the Guard passes the policy's `[fleet]`).
    ///
    /// Enumeration (distinct object ids), request rate and error ratio per caller, and
    /// credential stuffing per network, then fire on fleet-wide figures: counted locally,
    /// flushed in one pipeline about once per [`DetectionConfig::fleet_flush`] (sooner for a
    /// caller near a threshold), keyed by HMAC-SHA256 under the fleet secret so the store
    /// never holds a caller name, address or object id in clear, and expiring after two
    /// windows. Baselines stay local (learned from the fleet-wide figures).
    ///
    /// [`build`](ObserverBuilder::build) refuses a fleet without a secret
    /// (`fleet.secret_env`): detection kept per replica would let a walk spread over N
    /// replicas go N times past every threshold, the very gap the fleet closes, and a
    /// start-up warning is easy to miss while a refused start is fixed once.
    ///
    /// ```no_run
    /// use zt_core::fleet::{Fleet, FleetConfig};
    /// use zt_core::observe::{Observer, ObserverConfig};
    ///
    /// // The secret is the same on every replica (at least 16 bytes).
    /// let mut config = FleetConfig::new("redis://127.0.0.1:6379/");
    /// config.secret_env = Some("ZT_FLEET_SECRET".into());
    /// let fleet = Fleet::new(&config)?;
    /// let observer = Observer::builder(ObserverConfig::default()).fleet(fleet).build()?;
    /// assert!(observer.fleet().is_some());
    /// # Ok::<(), zt_core::PolicyError>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// The mode to act in: the Guard passes its own (the policy's top-level `mode`). In
    /// [`Mode::Report`] actions are logged with `zt.enforced = false` and none is put in
    /// place. Default [`Mode::Enforce`].
    ///
    /// ```
    /// use zt_core::Mode;
    /// use zt_core::observe::{Observer, ObserverConfig};
    ///
    /// let observer = Observer::builder(ObserverConfig::default()).mode(Mode::Report).build()?;
    /// assert_eq!(observer.mode(), Mode::Report);
    /// # Ok::<(), zt_core::PolicyError>(())
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Reads time from this clock (tests inject a [`ManualClock`]).
    pub fn clock(mut self, clock: ObserveClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends throttle actions here (the Guard forwards them to its limiter).
    pub fn action_sink(mut self, sink: Arc<dyn ActionSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The challenge hook: called (after the response) when a `challenge` action fires.
    pub fn challenge_hook(
        mut self,
        hook: impl Fn(&RequestRecord<'_>) -> Option<ChallengeResponse> + Send + Sync + 'static,
    ) -> Self {
        self.challenge = Some(Arc::new(hook));
        self
    }

    /// Validates the configuration and builds the observer.
    pub fn build(self) -> Result<Observer, PolicyError> {
        let config = self.config;
        config.validate()?;
        let mode = self.mode.unwrap_or_default();
        let geo = GeoResolver::new(&config.geo)?;
        let controls = Controls::new(&config.controls, config.network_prefix, self.clock.clone());
        let inventory = Inventory::with_clock(config.inventory.clone(), self.clock.clone());
        let detector = Detector::new(config.detection.clone(), config.bots.clone(), config.network_prefix);
        // Fleet-wide detection counters need the fleet secret (see `ObserverBuilder::fleet`).
        #[cfg(feature = "redis")]
        let detector = detector.with_fleet(match &self.fleet {
            Some(fleet) => {
                Some(Arc::new(fleet_counters::FleetCounters::new(fleet.clone(), &config.detection)?))
            }
            None => None,
        });
        Ok(Observer {
            inner: Arc::new(Inner {
                config,
                mode,
                clock: self.clock,
                detector,
                controls,
                inventory,
                geo,
                incidents: IncidentLog::default(),
                sink: self.sink,
                challenge: self.challenge,
                requests: kpi::RequestCounters::new(),
                #[cfg(feature = "redis")]
                fleet: self.fleet,
            }),
        })
    }
}

impl Observer {
    /// An observer with this configuration, the system clock, no sink and no hook.
    pub fn new(config: ObserverConfig) -> Result<Observer, PolicyError> {
        Observer::builder(config).build()
    }

    /// Starts an observer with options.
    pub fn builder(config: ObserverConfig) -> ObserverBuilder {
        ObserverBuilder {
            config,
            mode: None,
            clock: ObserveClock::system(),
            sink: None,
            challenge: None,
            #[cfg(feature = "redis")]
            fleet: None,
        }
    }

    /// The current time on the observer's clock: stamp [`RequestRecord::timestamp`] with it.
    pub fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// The configuration.
    pub fn config(&self) -> &ObserverConfig {
        &self.inner.config
    }

    /// The mode it acts in ([`ObserverBuilder::mode`]).
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The store shared with the other replicas ([`ObserverBuilder::fleet`]).
    #[cfg(feature = "redis")]
    pub fn fleet(&self) -> Option<&crate::fleet::Fleet> {
        self.inner.fleet.as_ref()
    }

    /// Blocks, challenges and revocations.
    pub fn controls(&self) -> &Controls {
        &self.inner.controls
    }

    /// The API inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    /// The country resolver built from [`ObserverConfig::geo`].
    pub fn geo(&self) -> &GeoResolver {
        &self.inner.geo
    }

    /// True for routes whose requests get bot signals.
    pub fn is_human_facing(&self, route: Option<&str>) -> bool {
        self.inner.detector.is_human_facing(route)
    }

    /// Whether to keep a prefix of this response's body for classification, and how many
    /// bytes at most.
    pub fn wants_response_sample(&self, method: &str, route: Option<&str>) -> Option<usize> {
        self.inner.inventory.wants_sample(method, route)
    }

    /// The recent incidents (at most 256), oldest first.
    pub fn incidents(&self) -> Vec<IncidentReport> {
        self.inner.incidents.reports()
    }

    /// Sizes of every store, with bounds.
    pub fn store_sizes(&self) -> StoreSizes {
        StoreSizes {
            detector: self.inner.detector.sizes(),
            blocks: self.inner.controls.active_blocks(),
            revocations: self.inner.controls.revocations(),
            inventory: self.inner.inventory.len(),
            geo_cache: self.inner.geo.cached(),
        }
    }

    /// Periodic upkeep (every ~10 s): drops expired blocks and revocations and refreshes
    /// `zt_active_blocks`.
    pub fn maintenance(&self) {
        self.inner.controls.sweep();
    }

    /// Before handling: revoked token, block or challenge for this caller? O(1): atomic
    /// checks when nothing is blocked or revoked, else a few sharded read locks.
    ///
    /// In enforce mode, the first request refused by a block that an incident caused
    /// records `zt_time_to_block_seconds`.
    pub fn verdict_hint(&self, request: &HintRequest<'_>) -> Hint {
        let controls = &self.inner.controls;
        if let Some(jti) = request.jti
            && controls.is_revoked(jti)
        {
            return Hint::Revoked;
        }
        // Shared Signals revocations: the caller's session, or its subject's tokens issued
        // before a credential change.
        if let Some(caller) = request.caller
            && controls.is_identity_revoked(caller)
        {
            return Hint::Revoked;
        }
        let block = match request.caller {
            Some(caller) => controls.is_caller_blocked(Some(caller), request.client_ip),
            None => controls.is_blocked(request.subject, request.client_ip),
        };
        let Some(block) = block else {
            return Hint::Proceed;
        };
        if self.inner.mode == Mode::Enforce
            && !block.enforced.swap(true, std::sync::atomic::Ordering::Relaxed)
            && let Some(incident) = &block.incident
            && let Some(secs) = incident.mark_blocked(self.inner.clock.now_micros())
        {
            metrics::histogram!(kpi::TIME_TO_BLOCK_SECONDS).record(secs);
        }
        match block.kind {
            BlockKind::Deny => Hint::Block(block),
            BlockKind::Challenge(_) => Hint::Challenge(block),
        }
    }

    /// After the response: KPIs, the denial event, inventory, baselines, detection and the
    /// configured responses. Synchronous and bounded; never fails.
    pub fn observe(&self, record: &RequestRecord<'_>) -> Observation {
        self.observe_known(record, None)
    }

    /// [`Inventory::wants_sample`] for the Guard: also the endpoint, to hand back to
    /// [`Observer::observe_known`].
    pub(crate) fn arrival(
        &self,
        method: &str,
        route: Option<&str>,
    ) -> (Option<usize>, Option<EndpointHandle>) {
        self.inner.inventory.arrival(method, route)
    }

    /// [`Observer::observe`] with the endpoint found at arrival. It is used only while the
    /// record still keys on that route (a GraphQL operation is an endpoint of its own).
    pub(crate) fn observe_known(
        &self,
        record: &RequestRecord<'_>,
        known: Option<&EndpointHandle>,
    ) -> Observation {
        let known = known.filter(|_| record.operation.is_none());
        let inner = &*self.inner;
        inner.requests.increment(record.decision.as_str(), record.reason, record.route);
        if record.is_auth_failure() {
            metrics::counter!(kpi::AUTH_FAILURES_TOTAL).increment(1);
        }
        if record.is_rate_limited() {
            metrics::counter!(kpi::RATE_LIMITED_TOTAL).increment(1);
        }
        let refused_by_observer = matches!(record.reason, Some("blocked" | "challenged" | "token-revoked"));
        if record.decision == Decision::Deny && matches!(record.reason, Some("blocked" | "challenged")) {
            metrics::counter!(kpi::BLOCKED_TOTAL).increment(1);
        }
        if record.decision.is_denial() {
            denial_event(record, inner.mode.as_str()).emit();
        }
        let keys = inventory::Keys::of(record, known);
        inner.inventory.record_keyed(record, &keys, known);
        if refused_by_observer {
            // Already handled: refused traffic teaches the baselines nothing.
            return Observation::default();
        }
        let findings = inner.detector.observe(record, &keys, to_micros(record.timestamp), &inner.incidents);
        if findings.is_empty() {
            return Observation::default();
        }
        let detections = findings.into_iter().map(|f| self.respond(record, f)).collect();
        Observation { detections }
    }

    fn respond(&self, record: &RequestRecord<'_>, finding: Finding) -> Detection {
        let inner = &*self.inner;
        let config = &inner.config;
        for reason in &finding.anomaly.reasons {
            metrics::counter!(kpi::ANOMALIES_TOTAL, "rule" => reason.rule.as_str()).increment(1);
        }
        if finding.opened {
            metrics::counter!(kpi::INCIDENTS_TOTAL).increment(1);
            if let Some(incident) = &finding.incident {
                metrics::histogram!(kpi::TIME_TO_DETECT_SECONDS).record(incident.time_to_detect_secs());
            }
        }
        // The most severe action among the rules that fired; its rule names the block. The
        // automation score acts only when another, independent signal agrees (it fired in
        // this window too); alone, it is an alert at most.
        let corroborated = finding.anomaly.reasons.iter().any(|r| r.rule.corroborates_automation());
        let automation = (finding.automated && corroborated)
            .then(|| (Rule::Automation, config.response.action_for(Rule::Automation)));
        let (rule, wanted) = finding
            .anomaly
            .reasons
            .iter()
            .map(|r| match r.rule {
                Rule::Automation if !corroborated => {
                    (r.rule, config.response.action_for(r.rule).min(Action::Alert))
                }
                rule => (rule, config.response.action_for(rule)),
            })
            .chain(automation)
            .max_by_key(|(_, a)| *a)
            .unwrap_or((Rule::Enumeration, Action::Log));
        let taken = self.apply(record, &finding, rule, wanted);
        metrics::counter!(
            kpi::ACTIONS_TOTAL,
            "action" => taken.action.as_str(),
            "enforced" => if taken.enforced { "true" } else { "false" }
        )
        .increment(1);
        let incident_id = finding.incident.as_ref().map(|i| i.id);
        self.emit_detection(record, &finding.anomaly, &taken, incident_id);
        Detection {
            target: finding.target,
            anomaly: finding.anomaly,
            action: taken,
            incident_id,
            opened_incident: finding.opened,
        }
    }

    /// Puts the action in place (enforce mode) and says what was done.
    fn apply(
        &self,
        record: &RequestRecord<'_>,
        finding: &Finding,
        rule: Rule,
        wanted: Action,
    ) -> ActionTaken {
        let inner = &*self.inner;
        let response = &inner.config.response;
        // A rule in `dry_run` says what it would do (`zt.enforced = false`) and does nothing.
        let enforce = inner.mode == Mode::Enforce && !response.dry_run.contains(&rule);
        let incident_id = finding.incident.as_ref().map(|i| i.id);
        let mut action = wanted;
        let mut challenge = None;
        if action == Action::Challenge {
            challenge = inner.challenge.as_ref().and_then(|hook| hook(record));
            if challenge.is_none() {
                // No hook, or it declined: the fallback (never another challenge).
                action = match response.challenge_fallback {
                    Action::Challenge => Action::Alert,
                    other => other,
                };
            }
        }
        let Some(target) = finding.target.clone() else {
            // Nothing to throttle or block: an alert at most.
            return ActionTaken {
                action: action.min(Action::Alert),
                target: None,
                enforced: enforce,
                duration: None,
                incident_id,
            };
        };
        let (duration, enforced) = match action {
            Action::Log | Action::Alert => (None, enforce),
            Action::Throttle => {
                let sink = inner.sink.as_ref().filter(|_| enforce);
                if let Some(sink) = sink {
                    sink.throttle(&target, response.throttle_factor, response.throttle_for);
                }
                (Some(response.throttle_for), sink.is_some())
            }
            Action::Challenge | Action::Block => {
                let (kind, duration) = match challenge {
                    Some(c) => (BlockKind::Challenge(c), response.challenge_for),
                    None => (BlockKind::Deny, response.block_for),
                };
                if enforce {
                    inner.controls.block(
                        target.clone(),
                        kind,
                        duration,
                        rule.as_str(),
                        true,
                        finding.incident.clone(),
                    );
                }
                (Some(duration), enforce)
            }
        };
        ActionTaken { action, target: Some(target), enforced, duration, incident_id }
    }

    fn emit_detection(
        &self,
        record: &RequestRecord<'_>,
        anomaly: &Anomaly,
        taken: &ActionTaken,
        incident: Option<u64>,
    ) {
        let mode = self.inner.mode.as_str();
        let target = taken.target.as_ref().map(Target::to_string);
        let target_kind = target.as_deref();
        let kind = if taken.action == Action::Log { EventKind::Event } else { EventKind::Alert };
        if SecurityEvent::enabled(kind) {
            let mut event = SecurityEvent::from_record(
                record,
                kind,
                EventCategory::IntrusionDetection,
                EventType::Indicator,
                "anomaly-detected",
                "anomalous request pattern",
            );
            event.outcome = EventOutcome::Unknown;
            // As severe as the score says, and at least as the response taken.
            let by_action = match taken.action {
                Action::Log => sev::LOW,
                Action::Alert | Action::Throttle => sev::MEDIUM,
                Action::Challenge | Action::Block => sev::HIGH,
            };
            event.severity = anomaly.severity().max(by_action);
            event.anomaly = Some(anomaly);
            event.zt_action = Some(taken.action);
            event.enforced = Some(taken.enforced);
            event.target = target_kind;
            event.incident_id = incident;
            event.mode = Some(mode);
            event.emit();
        }
        if taken.action >= Action::Throttle && SecurityEvent::enabled(EventKind::Alert) {
            let (action, reason) = match taken.action {
                Action::Throttle => ("throttle", "caller throttled after an anomaly"),
                Action::Challenge => ("challenge", "caller challenged after an anomaly"),
                _ => ("block", "caller temporarily blocked after an anomaly"),
            };
            let mut event = SecurityEvent::from_record(
                record,
                EventKind::Alert,
                EventCategory::IntrusionDetection,
                EventType::Change,
                action,
                reason,
            );
            event.outcome = EventOutcome::Success;
            event.severity = if taken.action == Action::Throttle { sev::MEDIUM } else { sev::HIGH };
            event.anomaly = Some(anomaly);
            event.zt_action = Some(taken.action);
            event.enforced = Some(taken.enforced);
            event.target = target_kind;
            event.duration_secs = taken.duration.map(|d| d.as_secs());
            event.incident_id = incident;
            event.mode = Some(mode);
            event.emit();
        }
    }
}
