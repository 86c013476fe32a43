//! The shared stores: one quota for every replica, in Redis — through the policy's
//! `[fleet]` ([`RedisStore::on_fleet`], what the Guard builds when a policy has one) or a
//! store of its own (`limits.store = { redis = { url = ".." } }`, [`RedisStore::new`]).
//!
//! Each check is one round trip: `EVALSHA` of a Lua script that runs GCRA atomically on the
//! server (reloaded and retried once on `NOSCRIPT`). The script reads the server's clock
//! (`TIME`), so replicas with skewed clocks still agree; it stores the key's theoretical
//! arrival time (TAT) with `SET .. PX` set to the time the quota is whole again, so an idle
//! key disappears by itself and Redis memory stays bounded by the active keys. The same
//! call reads the key's shared *throttle factor* (set by [`Limiter::tighten`] on any
//! replica, `SET .. PX` its duration, so it expires by itself) and charges the larger of it
//! and this replica's own factor.
//!
//! Keys on a fleet: `{fleet prefix}:v1:rl:{a:<address>}:<policy>` (or `{i:<identity>}`) and
//! the throttle factor `{fleet prefix}:v1:tt:{a:<address>}`; the braces are a Cluster hash
//! tag, so a script's two keys share a slot. On an own store: `{prefix}:<policy>:a:<address>`
//! / `..:i:<identity>` and `{prefix}:~tt:a:<address>`.
//!
//! # Round trips per request
//!
//! One per quota stage, each one script call for all that stage's keys (quota and throttle
//! factor): a request whose token is in the verified-token cache makes **one** (its caller
//! quota; the per-address ceiling is skipped for it); a request with a token not yet
//! verified, or none, makes **two** (the per-address ceiling before any signature work, the
//! caller quota after verification: the verified identity is not known earlier); a GraphQL
//! request adds one per `[[limits.graphql]]` charge. In an outage, none (see below).
//!
//! Every answer is also *mirrored* into this replica's in-memory state for the same quota
//! (the TAT only ever moves later there), which is what the fallback and the repair below
//! start from. The memory store is untouched by any of this.
//!
//! # Failure, with hysteresis
//!
//! An error, a timeout or an unexpected reply (a slow Redis counts as down: an attacker may
//! cause latency) is decided at once by the fail mode ([`FailMode`]) from the mirrored state.
//! After [`FAILURES_TO_FALLBACK`] consecutive failures the store switches into *fallback*:
//! one WARN event on target `zt::limit`, the gauge `zt_limit_fallback` at 1 and
//! `zt_limit_fallback_switches_total{to="local"}`; checks then decide at once without
//! waiting for Redis; one check per `retry_interval` (a fleet's: its `sync_interval`, at most
//! 1 s) also probes Redis in the background, so no request waits for a slow store. A
//! successful probe lets the next check probe too; after
//! [`SUCCESSES_TO_RECOVER`] consecutive successes the fallback ends (one INFO event with its
//! length, the gauge back at 0, `..{to="shared"}`). A store that answers every other call
//! neither flaps nor leaves the fallback.
//!
//! - `bounded` (default): this replica's **share** of the quota: rate and burst divided by
//!   the fleet's live replica count `N` ([`Fleet::live_replicas`], last counted before the
//!   outage; 1 for an own store), at least one request per window. It is the in-memory GCRA
//!   charged `N` cells per request, so it starts from the mirrored shared state: a caller
//!   who had spent its quota on Redis stays limited.
//! - `fallback_local`: the whole quota per replica, from the mirrored state.
//! - `fail_closed`: "unavailable" (mapped to 503 with `Retry-After`).
//!
//! Routes the policy marks **public** (no requirement: health and readiness probes) are
//! checked with [`RouteAccess::Public`](super::RouteAccess) and keep the whole local quota
//! under every mode: never refused or failed because the store is down, so a load balancer
//! does not drain every replica at once. Decisions in an outage carry `fallback`.
//!
//! # Repair: no quota is given back
//!
//! Every check sends the script a *floor*: how far this replica's in-memory TAT for the key
//! lies ahead of now, less `timeout` (a successful answer took less than that, so the floor
//! never exceeds what Redis itself held: no drift in normal operation). The script raises
//! the key's TAT to at least `now + floor`. So after an outage each replica's first check of
//! a key hands Redis what that replica charged locally, and a Redis that lost its keys
//! (restarted empty, flushed, failed over to a replica that lagged) is repaired key by key
//! from the replicas' mirrors — no marker key, no window of fresh quotas. Because a share is
//! charged `N` cells per request, one replica's TAT estimates the fleet-wide spending when
//! the load balancer spreads a caller evenly.
//!
//! # Bounds (per key and quota of rate `r`, burst `b`, window `w = b / r`, `N` replicas)
//!
//! - Redis up: one quota fleet-wide (atomic GCRA on the server).
//! - An outage of length `T` under `bounded` (slow and unreachable Redis are the same
//!   case): each replica admits at most `⌊b / N⌋ + (r / N) · T` (with `N > b`: one per
//!   window, `1 + T / w`), so the fleet at most **`b + r · T`** (with `N > b`:
//!   `N · (1 + T / w)`) — and at most the caller's remaining quota plus `r · T` when every
//!   replica saw its recent traffic.
//! - After the outage, or after Redis lost its keys: what the replicas charged is handed
//!   back as floors, so the total from the outage's start on stays within one quota
//!   (`b + r · elapsed`), less only `timeout · r` cells per key (the floor's margin) and
//!   what replicas that never saw the caller could not know.
//! - The live count is what the replicas' heartbeats said before the outage: a replica
//!   started during the outage counts itself alone (`N = 1`) until the store is back.
//! - A throttle factor is shared while Redis is up; in an outage each replica charges the
//!   factors it was told itself.
//!
//! Requires a Tokio runtime with the time driver (both zt adapters run on Tokio).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use crate::error::PolicyError;
use crate::fleet::Fleet;
use crate::limit::RouteAccess;
use crate::limit::clock::{LimitClock, nanos};
use crate::limit::config::{FailMode, RedisConfig};
use crate::limit::decision::{LimitCheck, PendingLimit, RateDecision};
use crate::limit::key::{KeyDigest, LimitKey};
use crate::limit::quota::QuotaRule;
use crate::limit::store::RateStore;

/// Consecutive failed checks that switch a shared store into its fallback.
pub const FAILURES_TO_FALLBACK: u32 = 3;
/// Consecutive successful probes that end a fallback.
pub const SUCCESSES_TO_RECOVER: u32 = 3;

/// GCRA in one atomic step. Times in microseconds (exact in Lua's doubles until the year
/// 2255). KEYS[1]: the quota key; KEYS[2]: the key's shared throttle factor. ARGV: emission
/// interval, burst, cost (cells: units times this replica's factor), units, floor (the TAT
/// is at least now + floor: what the calling replica knows was spent). Returns {allowed
/// (0/1), remaining cells, retry after, time to a whole quota, cost charged}.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local units = tonumber(ARGV[4])
local floor = tonumber(ARGV[5]) or 0
local factor = tonumber(redis.call('GET', KEYS[2]))
if factor and factor * units > cost then cost = factor * units end
if cost > burst then cost = burst end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local repaired = false
if floor > 0 and tat < now + floor then
  tat = now + floor
  repaired = true
end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if now < allow_at then
  if repaired then
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', math.max(1, math.ceil((tat - now) / 1000))))
  end
  return {0, 0, allow_at - now, tat - now, cost}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', math.max(1, ttl_ms)))
return {1, math.floor((now + interval * burst - new_tat) / interval), 0, new_tat - now, cost}
";

/// Tightens a key fleet-wide: the larger factor and the later end win. KEYS[1]: the
/// throttle factor's key. ARGV: factor, duration (ms). Returns the factor in force.
const TIGHTEN_SCRIPT: &str = r"
local factor = tonumber(ARGV[1])
local duration = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]))
local left = redis.call('PTTL', KEYS[1])
if current and left > 0 then
  if current > factor then factor = current end
  if left > duration then duration = left end
end
redis.call('SET', KEYS[1], factor, 'PX', duration)
return factor
";

/// A [`RateStore`] in Redis, shared by every replica. The Guard builds one on the policy's
/// `[fleet]`; [`Limiter::new`](super::Limiter::new) builds one for
/// `store = { redis = { url = ".." } }`; or build one directly for a custom set-up.
///
/// ```no_run
/// use std::sync::Arc;
/// use zt_core::fleet::{Fleet, FleetConfig};
/// use zt_core::limit::{FailMode, LimitClock, LimitConfig, Limiter, RedisStore};
///
/// let fleet = Fleet::new(&FleetConfig::new("redis://127.0.0.1:6379/")).unwrap();
/// let store = RedisStore::on_fleet(fleet, FailMode::Bounded, LimitClock::monotonic());
/// let limiter = Limiter::builder(&LimitConfig::default()).store(Arc::new(store)).build().unwrap();
/// # let _ = limiter;
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

// One per store, inside its Arc: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    /// `limits.store.redis`: a connection of the limiter's own.
    Own { client: redis::Client, manager: OnceLock<Result<ConnectionManager, String>>, prefix: Box<str> },
    /// The policy's `[fleet]`: its connection, keys and live replica count.
    Fleet(Fleet),
}

struct Inner {
    backend: Backend,
    script: Script,
    tighten: Script,
    timeout: Duration,
    retry_interval: Duration,
    fail_mode: FailMode,
    clock: LimitClock,
    /// In fallback: checks decide locally but for one probe per retry interval.
    down: AtomicBool,
    down_since: AtomicU64,
    next_probe: AtomicU64,
    /// Consecutive failed checks (reset by any success).
    failures: AtomicU32,
    /// Consecutive successful probes during a fallback (reset by any failure).
    successes: AtomicU32,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.inner.backend {
            Backend::Own { prefix, .. } => format!("own ({prefix})"),
            Backend::Fleet(_) => "fleet".to_string(),
        };
        f.debug_struct("RedisStore")
            .field("backend", &backend)
            .field("timeout", &self.inner.timeout)
            .field("fail_mode", &self.inner.fail_mode)
            .field("down", &self.inner.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Validates the configuration without connecting (the connection is made by the first
    /// check, inside the application's runtime). Errors name the entry
    /// (`limits.store.redis.*`) and never repeat the URL, which may hold a password.
    pub fn new(config: &RedisConfig, clock: LimitClock) -> Result<RedisStore, PolicyError> {
        let client = redis::Client::open(config.url.as_str()).map_err(|_| {
            PolicyError::invalid(
                "limits.store.redis.url",
                "not a valid Redis URL (redis://[user:password@]host[:port][/db])",
            )
        })?;
        if config.timeout.is_zero() {
            return Err(PolicyError::invalid("limits.store.redis.timeout", "must be longer than zero"));
        }
        if config.retry_interval.is_zero() {
            return Err(PolicyError::invalid(
                "limits.store.redis.retry_interval",
                "must be longer than zero",
            ));
        }
        let prefix = config.prefix.as_str();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PolicyError::invalid(
                "limits.store.redis.prefix",
                "must be non-empty printable ASCII without spaces",
            ));
        }
        let backend = Backend::Own { client, manager: OnceLock::new(), prefix: prefix.into() };
        Ok(RedisStore::with(backend, config.timeout, config.retry_interval, config.fail_mode, clock))
    }

    /// A store on the fleet's connection: keys `fleet.key("rl:...")`, the fleet's timeout,
    /// and under [`FailMode::Bounded`] each replica's share of every quota during an outage
    /// (divided by [`Fleet::live_replicas`]). Outages are probed once per `sync_interval`
    /// (at most 1 s).
    pub fn on_fleet(fleet: Fleet, fail_mode: FailMode, clock: LimitClock) -> RedisStore {
        let timeout = fleet.timeout();
        let retry = fleet.sync_interval().min(Duration::from_secs(1));
        RedisStore::with(Backend::Fleet(fleet), timeout, retry, fail_mode, clock)
    }

    fn with(
        backend: Backend,
        timeout: Duration,
        retry_interval: Duration,
        fail_mode: FailMode,
        clock: LimitClock,
    ) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                backend,
                script: Script::new(GCRA_SCRIPT),
                tighten: Script::new(TIGHTEN_SCRIPT),
                timeout,
                retry_interval,
                fail_mode,
                clock,
                down: AtomicBool::new(false),
                down_since: AtomicU64::new(0),
                next_probe: AtomicU64::new(0),
                failures: AtomicU32::new(0),
                successes: AtomicU32::new(0),
            }),
        }
    }

    /// True while the store is in fallback (see the module docs).
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire)
    }

    /// The fail mode.
    pub fn fail_mode(&self) -> FailMode {
        self.inner.fail_mode
    }

    /// The divisor of every quota during an outage under [`FailMode::Bounded`]: the fleet's
    /// live replica count (as last counted), 1 for a store of its own.
    pub fn share_divisor(&self) -> u32 {
        self.inner.divisor()
    }
}

impl RateStore for RedisStore {
    fn check(&self, rule: &Arc<QuotaRule>, key: LimitKey<'_>, cost: u32) -> LimitCheck {
        self.check_on(rule, key, cost, 1, RouteAccess::Protected)
    }

    fn check_on(
        &self,
        rule: &Arc<QuotaRule>,
        key: LimitKey<'_>,
        cost: u32,
        units: u32,
        access: RouteAccess,
    ) -> LimitCheck {
        let inner = &self.inner;
        let digest = KeyDigest::of(key);
        let cost = cost.clamp(1, rule.burst());
        let units = units.max(1);
        if inner.down.load(Ordering::Acquire) {
            // In fallback no request waits for the store: this one is decided locally, and
            // at most one per retry interval also probes the store in the background (the
            // probe charges the shared quota too: stricter, never laxer).
            let decision = inner.degraded(rule, digest, cost, access);
            if inner.claim_probe()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let (floor_us, keys) = (inner.floor_us(rule, digest), inner.keys(rule, key));
                let (inner, rule) = (self.inner.clone(), rule.clone());
                runtime.spawn(async move {
                    match inner.eval(&rule, &keys, cost, units, floor_us).await {
                        Ok(reply) => match decode(&rule, &reply) {
                            Some(decision) => {
                                rule.mirror(digest, decision.reset);
                                inner.succeeded();
                            }
                            None => inner.failed("unexpected_reply"),
                        },
                        Err(cause) => inner.failed(cause),
                    }
                });
            }
            return LimitCheck::Ready(decision);
        }
        let floor_us = inner.floor_us(rule, digest);
        let keys = inner.keys(rule, key);
        let inner = self.inner.clone();
        let rule = rule.clone();
        LimitCheck::Pending(PendingLimit::new(async move {
            // Tokio timers and the connection's driver task need a Tokio runtime; polled
            // anywhere else they would panic. Treat that as an outage instead.
            if tokio::runtime::Handle::try_current().is_err() {
                inner.failed("no_tokio_runtime");
                return inner.degraded(&rule, digest, cost, access);
            }
            let failure = match inner.eval(&rule, &keys, cost, units, floor_us).await {
                Ok(reply) => match decode(&rule, &reply) {
                    Some(decision) => {
                        rule.mirror(digest, decision.reset);
                        inner.succeeded();
                        return decision;
                    }
                    None => "unexpected_reply",
                },
                Err(cause) => cause,
            };
            inner.failed(failure);
            inner.degraded(&rule, digest, cost, access)
        }))
    }

    fn tighten(&self, key: LimitKey<'_>, factor: u32, duration: Duration) {
        let inner = &self.inner;
        // In fallback the factor stays with this replica (its own table has it already).
        if factor <= 1 || duration.is_zero() || inner.down.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (_, throttle) = inner.key_names("", key);
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1);
        let inner = self.inner.clone();
        runtime.spawn(async move {
            let mut invocation = inner.tighten.prepare_invoke();
            invocation.key(&throttle).arg(factor).arg(duration_ms);
            if let Err(cause) = inner.run::<i64>(&invocation).await {
                // The other replicas keep their own factors; this one has it.
                tracing::event!(target: "zt::limit", tracing::Level::WARN, error.type = cause, "could not share a throttle factor with the fleet");
            }
        });
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

fn error_cause(e: &RedisError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connection_refusal() {
        "connection_refused"
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        "connection_lost"
    } else {
        "server_error"
    }
}

/// Turns the script's reply into a decision; `None` if it is not the expected shape.
fn decode(rule: &QuotaRule, reply: &[i64]) -> Option<RateDecision> {
    let &[allowed, remaining, retry_us, reset_us, cost] = reply else { return None };
    if !(0..=1).contains(&allowed) || remaining < 0 || retry_us < 0 || reset_us < 0 || cost < 1 {
        return None;
    }
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let remaining = u32::try_from(remaining).unwrap_or(u32::MAX).min(rule.burst());
    let cost = u32::try_from(cost).unwrap_or(u32::MAX).min(rule.burst());
    let allowed = allowed == 1;
    Some(rule.decision(allowed, remaining, micros(reset_us), (!allowed).then(|| micros(retry_us)), cost))
}

impl Inner {
    /// The quota key (for `policy`) and the throttle-factor key of `key`.
    fn key_names(&self, policy: &str, key: LimitKey<'_>) -> (String, String) {
        let (kind, value) = match key {
            LimitKey::Address(ip) => ("a", ip.to_string()),
            LimitKey::Identity(id) => ("i", id.to_string()),
        };
        match &self.backend {
            // `~` is not allowed in policy names: the throttle key never meets a quota's.
            Backend::Own { prefix, .. } => {
                (format!("{prefix}:{policy}:{kind}:{value}"), format!("{prefix}:~tt:{kind}:{value}"))
            }
            // The braces are a Cluster hash tag: both keys of one script share a slot. The
            // prefix has no braces (the fleet refuses them), so the tag is the caller's part.
            Backend::Fleet(fleet) => (
                fleet.key(&format!("rl:{{{kind}:{value}}}:{policy}")),
                fleet.key(&format!("tt:{{{kind}:{value}}}")),
            ),
        }
    }

    fn keys(&self, rule: &QuotaRule, key: LimitKey<'_>) -> [String; 2] {
        let (quota, throttle) = self.key_names(rule.name(), key);
        [quota, throttle]
    }

    /// What this replica knows was spent on `digest`, less the longest a successful round
    /// trip takes: never above what Redis holds, unless Redis forgot it (see the module
    /// docs), in microseconds.
    fn floor_us(&self, rule: &QuotaRule, digest: KeyDigest) -> u64 {
        let floor = rule.ahead(digest).saturating_sub(self.timeout);
        u64::try_from(floor.as_micros()).unwrap_or(u64::MAX)
    }

    fn divisor(&self) -> u32 {
        match &self.backend {
            Backend::Own { .. } => 1,
            Backend::Fleet(fleet) => fleet.live_replicas().max(1),
        }
    }

    fn manager(
        &self,
        client: &redis::Client,
        manager: &OnceLock<Result<ConnectionManager, String>>,
    ) -> Result<ConnectionManager, RedisError> {
        let created = manager.get_or_init(|| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                // Reconnection is paced by the outage probes, not by a retry loop that
                // would hold requests.
                .set_number_of_retries(0);
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| e.to_string())
        });
        match created {
            Ok(manager) => Ok(manager.clone()),
            Err(_) => {
                Err(RedisError::from((redis::ErrorKind::Client, "cannot create the connection manager")))
            }
        }
    }

    /// One script call within the timeout; the error is a short cause for the event.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, &'static str> {
        match &self.backend {
            Backend::Fleet(fleet) => fleet.invoke::<T>(invocation).await.map_err(|e| e.cause()),
            Backend::Own { client, manager, .. } => {
                let attempt = async {
                    let mut connection = self.manager(client, manager)?;
                    match invocation.invoke_async(&mut connection).await {
                        // After a lost connection the manager starts reconnecting: try once
                        // more on the new connection, within the same time budget.
                        Err(e)
                            if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() =>
                        {
                            invocation.invoke_async(&mut connection).await
                        }
                        other => other,
                    }
                };
                match tokio::time::timeout(self.timeout, attempt).await {
                    Ok(Ok(reply)) => Ok(reply),
                    Ok(Err(e)) => Err(error_cause(&e)),
                    Err(_elapsed) => Err("timeout"),
                }
            }
        }
    }

    /// The GCRA script for one key.
    async fn eval(
        &self,
        rule: &QuotaRule,
        keys: &[String; 2],
        cost: u32,
        units: u32,
        floor_us: u64,
    ) -> Result<Vec<i64>, &'static str> {
        let interval_us = u64::try_from(rule.interval().as_micros()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(&keys[0])
            .key(&keys[1])
            .arg(interval_us)
            .arg(rule.burst())
            .arg(cost)
            .arg(units)
            .arg(floor_us);
        self.run(&invocation).await
    }

    /// During a fallback, lets one caller per retry interval probe Redis.
    fn claim_probe(&self) -> bool {
        let now = self.clock.now_nanos();
        let due = self.next_probe.load(Ordering::Acquire);
        now >= due
            && self
                .next_probe
                .compare_exchange(
                    due,
                    now.saturating_add(nanos(self.retry_interval)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// A check (or probe) failed: counts towards the switch into fallback.
    fn failed(&self, cause: &'static str) {
        self.successes.store(0, Ordering::Release);
        let now = self.clock.now_nanos();
        if self.down.load(Ordering::Acquire) {
            self.next_probe.store(now.saturating_add(nanos(self.retry_interval)), Ordering::Release);
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if failures < FAILURES_TO_FALLBACK {
            return;
        }
        self.next_probe.store(now.saturating_add(nanos(self.retry_interval)), Ordering::Release);
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.down_since.store(now, Ordering::Release);
        metrics::gauge!("zt_limit_fallback").set(1.0);
        metrics::counter!("zt_limit_fallback_switches_total", "to" => "local").increment(1);
        let replicas = self.divisor();
        let message = match self.fail_mode {
            FailMode::Bounded => {
                "rate-limit store unreachable: each replica enforces its share of every quota until it recovers"
            }
            FailMode::FallbackLocal => {
                "rate-limit store unreachable: each replica enforces every whole quota by itself until it recovers"
            }
            FailMode::FailClosed => {
                "rate-limit store unreachable: refusing rate-limited requests on protected routes until it recovers"
            }
        };
        tracing::event!(
            target: "zt::limit",
            tracing::Level::WARN,
            zt.store = "redis",
            zt.fail_mode = fail_mode_name(self.fail_mode),
            zt.live_replicas = replicas,
            zt.failures = failures,
            error.type = cause,
            "{message}"
        );
    }

    /// A check (or probe) succeeded: counts towards the end of a fallback.
    fn succeeded(&self) {
        self.failures.store(0, Ordering::Release);
        if !self.down.load(Ordering::Acquire) {
            return;
        }
        let successes = self.successes.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if successes < SUCCESSES_TO_RECOVER {
            // The next check probes at once: recovery takes a few requests, not intervals.
            self.next_probe.store(0, Ordering::Release);
            return;
        }
        if !self.down.swap(false, Ordering::AcqRel) {
            return;
        }
        self.successes.store(0, Ordering::Release);
        metrics::gauge!("zt_limit_fallback").set(0.0);
        metrics::counter!("zt_limit_fallback_switches_total", "to" => "shared").increment(1);
        let since = self.down_since.load(Ordering::Acquire);
        let outage = Duration::from_nanos(self.clock.now_nanos().saturating_sub(since));
        tracing::event!(
            target: "zt::limit",
            tracing::Level::INFO,
            zt.store = "redis",
            zt.outage_ms = u64::try_from(outage.as_millis()).unwrap_or(u64::MAX),
            "rate-limit store recovered"
        );
    }

    /// The decision while Redis cannot answer (see [`FailMode`]).
    fn degraded(&self, rule: &QuotaRule, digest: KeyDigest, cost: u32, access: RouteAccess) -> RateDecision {
        let cells = match (self.fail_mode, access) {
            (FailMode::FailClosed, RouteAccess::Protected) => {
                return RateDecision::unavailable(
                    rule.policy(),
                    self.retry_interval.max(Duration::from_secs(1)),
                );
            }
            // Charging N cells per request on the full quota is GCRA with rate / N and
            // burst / N; the clamp keeps at least one request per window.
            (FailMode::Bounded, RouteAccess::Protected) => {
                cost.saturating_mul(self.divisor()).min(rule.burst())
            }
            (FailMode::FallbackLocal, _) | (_, RouteAccess::Public) => cost,
        };
        let mut decision = rule.check_digest(digest, cells);
        decision.fallback = true;
        decision
    }
}

fn fail_mode_name(mode: FailMode) -> &'static str {
    match mode {
        FailMode::Bounded => "bounded",
        FailMode::FallbackLocal => "fallback_local",
        FailMode::FailClosed => "fail_closed",
    }
}
