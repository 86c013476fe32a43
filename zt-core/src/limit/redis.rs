//! The Redis store: one quota shared by every replica.
//!
//! Each check is one round trip: `EVALSHA` of a Lua script that runs GCRA atomically on the
//! server (`redis` reloads the script and retries once on `NOSCRIPT`). The script reads the
//! server's clock (`TIME`), so replicas with skewed clocks still agree; it stores the
//! key's theoretical arrival time with `SET .. PX` set to the time the quota is whole again,
//! so an idle key disappears by itself and Redis memory stays bounded by the active keys.
//! Keys are `{prefix}:{policy}:a:{address}` and `{prefix}:{policy}:i:{identity}`.
//!
//! Connections: one multiplexed connection per store ([`ConnectionManager`], created on the
//! first check, inside the application's Tokio runtime), reconnected after failures. Every
//! check has a budget (`timeout`, connection included).
//!
//! # Failure
//!
//! An error or a timeout starts an *outage*: one WARN event on target `zt::limit`, then,
//! until Redis answers again, checks decide at once without waiting for it:
//! - `fallback_local` (default): with this replica's in-memory limiter for the same quota
//!   (so each replica enforces the whole quota by itself); decisions carry `fallback`.
//! - `fail_closed`: "unavailable" (`unavailable`, mapped to 503 with `Retry-After`).
//!
//! One check per `retry_interval` probes Redis; the first that succeeds ends the outage
//! (one INFO event with its length) and checks go back to Redis. Nothing fails open
//! silently.
//!
//! Requires a Tokio runtime with the time driver (both zt adapters run on Tokio).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use crate::error::PolicyError;
use crate::limit::clock::{LimitClock, nanos};
use crate::limit::config::{FailMode, RedisConfig};
use crate::limit::decision::{LimitCheck, PendingLimit, RateDecision};
use crate::limit::key::{KeyDigest, LimitKey};
use crate::limit::quota::QuotaRule;
use crate::limit::store::RateStore;

/// GCRA in one atomic step. Times in microseconds (exact in Lua's doubles until the year
/// 2255). KEYS[1]: the key. ARGV: emission interval, burst, cost (cells).
/// Returns {allowed (0/1), remaining cells, retry after, time to a whole quota}.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {1, math.floor((now + interval * burst - new_tat) / interval), 0, new_tat - now}
";

/// A [`RateStore`] in Redis. Build it through [`Limiter::new`](super::Limiter::new) with
/// `store = { redis = { url = ".." } }`, or directly for a custom set-up.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: OnceLock<Result<ConnectionManager, String>>,
    script: Script,
    prefix: Box<str>,
    timeout: Duration,
    retry_interval: Duration,
    fail_mode: FailMode,
    clock: LimitClock,
    down: AtomicBool,
    down_since: AtomicU64,
    next_probe: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
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
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                manager: OnceLock::new(),
                script: Script::new(GCRA_SCRIPT),
                prefix: prefix.into(),
                timeout: config.timeout,
                retry_interval: config.retry_interval,
                fail_mode: config.fail_mode,
                clock,
                down: AtomicBool::new(false),
                down_since: AtomicU64::new(0),
                next_probe: AtomicU64::new(0),
            }),
        })
    }

    /// True while an outage is in progress.
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire)
    }
}

impl RateStore for RedisStore {
    fn check(&self, rule: &Arc<QuotaRule>, key: LimitKey<'_>, cost: u32) -> LimitCheck {
        let inner = &self.inner;
        let digest = KeyDigest::of(key);
        let cost = cost.clamp(1, rule.burst());
        if inner.down.load(Ordering::Acquire) && !inner.claim_probe() {
            return LimitCheck::Ready(inner.degraded(rule, digest, cost));
        }
        let redis_key = match key {
            LimitKey::Address(ip) => format!("{}:{}:a:{ip}", inner.prefix, rule.name()),
            LimitKey::Identity(id) => format!("{}:{}:i:{id}", inner.prefix, rule.name()),
        };
        let inner = self.inner.clone();
        let rule = rule.clone();
        LimitCheck::Pending(PendingLimit::new(async move {
            // Tokio timers and the connection's driver task need a Tokio runtime; polled
            // anywhere else they would panic. Treat that as an outage instead.
            if tokio::runtime::Handle::try_current().is_err() {
                inner.mark_down("no_tokio_runtime");
                return inner.degraded(&rule, digest, cost);
            }
            let outcome = tokio::time::timeout(inner.timeout, inner.eval(&rule, &redis_key, cost)).await;
            let failure = match outcome {
                Ok(Ok(reply)) => match decode(&rule, &reply, cost) {
                    Some(decision) => {
                        inner.mark_up();
                        return decision;
                    }
                    None => "unexpected_reply",
                },
                Ok(Err(e)) => error_cause(&e),
                Err(_elapsed) => "timeout",
            };
            inner.mark_down(failure);
            inner.degraded(&rule, digest, cost)
        }))
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
fn decode(rule: &QuotaRule, reply: &[i64], cost: u32) -> Option<RateDecision> {
    let &[allowed, remaining, retry_us, reset_us] = reply else { return None };
    if !(0..=1).contains(&allowed) || remaining < 0 || retry_us < 0 || reset_us < 0 {
        return None;
    }
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let remaining = u32::try_from(remaining).unwrap_or(u32::MAX).min(rule.burst());
    let allowed = allowed == 1;
    Some(rule.decision(allowed, remaining, micros(reset_us), (!allowed).then(|| micros(retry_us)), cost))
}

impl Inner {
    fn manager(&self) -> Result<ConnectionManager, RedisError> {
        let created = self.manager.get_or_init(|| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                // Reconnection is paced by the outage probes, not by a retry loop that
                // would hold requests.
                .set_number_of_retries(0);
            ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(|e| e.to_string())
        });
        match created {
            Ok(manager) => Ok(manager.clone()),
            Err(_) => {
                Err(RedisError::from((redis::ErrorKind::Client, "cannot create the connection manager")))
            }
        }
    }

    async fn eval(&self, rule: &QuotaRule, key: &str, cost: u32) -> Result<Vec<i64>, RedisError> {
        let mut connection = self.manager()?;
        let interval_us = u64::try_from(rule.interval().as_micros()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.script.prepare_invoke();
        invocation.key(key).arg(interval_us).arg(rule.burst()).arg(cost);
        match invocation.invoke_async(&mut connection).await {
            // After a lost connection the manager starts reconnecting: try once more on the
            // new connection, within the same time budget.
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() => {
                invocation.invoke_async(&mut connection).await
            }
            other => other,
        }
    }

    /// During an outage, lets one caller per retry interval probe Redis.
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

    fn mark_down(&self, cause: &'static str) {
        let now = self.clock.now_nanos();
        self.next_probe.store(now.saturating_add(nanos(self.retry_interval)), Ordering::Release);
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.down_since.store(now, Ordering::Release);
        match self.fail_mode {
            FailMode::FallbackLocal => tracing::event!(
                target: "zt::limit",
                tracing::Level::WARN,
                zt.store = "redis",
                zt.fail_mode = "fallback_local",
                error.type = cause,
                "rate-limit store unreachable: enforcing quotas per replica in memory until it recovers"
            ),
            FailMode::FailClosed => tracing::event!(
                target: "zt::limit",
                tracing::Level::WARN,
                zt.store = "redis",
                zt.fail_mode = "fail_closed",
                error.type = cause,
                "rate-limit store unreachable: refusing rate-limited requests until it recovers"
            ),
        }
    }

    fn mark_up(&self) {
        if !self.down.load(Ordering::Acquire) || !self.down.swap(false, Ordering::AcqRel) {
            return;
        }
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

    fn degraded(&self, rule: &QuotaRule, digest: KeyDigest, cost: u32) -> RateDecision {
        match self.fail_mode {
            FailMode::FallbackLocal => {
                let mut decision = rule.check_digest(digest, cost);
                decision.fallback = true;
                decision
            }
            FailMode::FailClosed => {
                RateDecision::unavailable(rule.policy(), self.retry_interval.max(Duration::from_secs(1)))
            }
        }
    }
}
