//! The `[limits]` section of a policy: plain data (TOML, YAML or code), validated when a
//! [`Limiter`](super::Limiter) is built.
//!
//! ```
//! use zt_core::limit::{LimitConfig, Per, StoreConfig};
//!
//! let config: LimitConfig = toml::from_str(r#"
//!     identity = "600/m"                        # per verified identity (burst 2 x 600)
//!     address = { rate = "300/m", burst = 300 } # per client address, before verification
//!     trusted_proxies = ["10.0.0.0/8"]
//!
//!     [[routes]]
//!     method = "POST"
//!     path = "/login"
//!     rate = "5/m"
//!     per = "address"
//!
//!     [lockout]
//!     threshold = 5
//!     window = "10m"
//! "#).unwrap();
//! assert_eq!(config.identity.unwrap().effective_burst(), 1200);
//! assert_eq!(config.routes[0].per, Per::Address);
//! assert_eq!(config.store, StoreConfig::Memory);
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sustained rate: `count` requests per `period`, written `"50/s"`, `"600/m"`, `"10/h"`,
/// `"1000/d"` or with any duration as the period: `"100/10s"`, `"5/15m"`.
///
/// Rates are enforced with GCRA: one request is admitted every `period / count` on average,
/// and up to a burst (see [`QuotaConfig::burst`]) when the caller has been idle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: NonZeroU32,
    period: Duration,
}

impl Rate {
    /// `count` requests per `period`; `None` when either is zero.
    pub fn new(count: u32, period: Duration) -> Option<Rate> {
        let count = NonZeroU32::new(count)?;
        (!period.is_zero() && period / count.get() > Duration::ZERO).then_some(Rate { count, period })
    }

    /// Requests per period.
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The emission interval: one request is admitted per this much time, on average.
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            _ if self.period.subsec_nanos() != 0 => None,
            1 => Some("s"),
            60 => Some("m"),
            3600 => Some("h"),
            86_400 => Some("d"),
            _ => None,
        };
        match unit {
            Some(unit) => write!(f, "{}/{unit}", self.count),
            None => {
                write!(f, "{}/{}", self.count, humantime_serde::re::humantime::format_duration(self.period))
            }
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        let bad = || {
            format!(
                "`{text}` is not a rate: expected `<count>/<period>`, e.g. `50/s`, `600/m`, `10/h`, `100/10s`"
            )
        };
        let (count, period) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = match period.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other if other.starts_with(|c: char| c.is_ascii_digit()) => {
                humantime_serde::re::humantime::parse_duration(other).map_err(|_| bad())?
            }
            _ => return Err(bad()),
        };
        Rate::new(count, period).ok_or_else(|| format!("`{text}`: the count and the period must not be zero"))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A quota: a [`Rate`] and a burst.
///
/// In a policy file either a rate string (`"600/m"`, burst 2 x count) or a table
/// (`{ rate = "600/m", burst = 100 }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaConfig {
    /// The sustained rate.
    pub rate: Rate,
    /// How many requests an idle caller may send at once (default: twice the rate's count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl QuotaConfig {
    /// A quota with the default burst.
    pub fn new(rate: Rate) -> QuotaConfig {
        QuotaConfig { rate, burst: None }
    }

    /// Sets the burst.
    pub fn with_burst(mut self, burst: u32) -> QuotaConfig {
        self.burst = Some(burst);
        self
    }

    /// The burst in force: the configured one, else twice the rate's count.
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| self.rate.count().saturating_mul(2))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaTable {
    rate: Rate,
    #[serde(default)]
    burst: Option<u32>,
}

/// Reads a quota from a rate string or a table; `"off"` (when allowed) means no quota.
struct QuotaVisitor {
    allow_off: bool,
}

impl<'de> Visitor<'de> for QuotaVisitor {
    type Value = Option<QuotaConfig>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rate such as \"600/m\", a table { rate, burst }")?;
        if self.allow_off {
            f.write_str(", or \"off\"")?;
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.allow_off && text.trim() == "off" {
            return Ok(None);
        }
        text.parse().map(|rate| Some(QuotaConfig::new(rate))).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let table = QuotaTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Some(QuotaConfig { rate: table.rate, burst: table.burst }))
    }
}

impl<'de> Deserialize<'de> for QuotaConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<QuotaConfig, D::Error> {
        d.deserialize_any(QuotaVisitor { allow_off: false })?
            .ok_or_else(|| de::Error::custom("a quota is required here"))
    }
}

/// Serde helpers for an optional quota written as a rate, a table, or `"off"`.
mod optional_quota {
    use super::*;

    pub(super) fn serialize<S: Serializer>(quota: &Option<QuotaConfig>, s: S) -> Result<S::Ok, S::Error> {
        match quota {
            None => s.serialize_str("off"),
            Some(q) => q.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<QuotaConfig>, D::Error> {
        d.deserialize_any(QuotaVisitor { allow_off: true })
    }
}

/// What a route quota is keyed by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// The verified identity; the client address for anonymous calls (default). Checked
    /// after authentication, in place of the default identity quota.
    #[default]
    Identity,
    /// The client address, checked before the token is verified, in place of the default
    /// address quota.
    Address,
}

/// A quota for one route, replacing the default quota of its kind (`per`) on that route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimitConfig {
    /// The HTTP method (upper case).
    pub method: String,
    /// The route template as registered, e.g. `/orders/{id}`.
    pub path: String,
    /// The sustained rate.
    pub rate: Rate,
    /// The burst (default: twice the rate's count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Keyed by identity (default) or by client address.
    #[serde(default)]
    pub per: Per,
    /// The policy name in `RateLimit-Policy` headers and Redis keys (letters, digits, `_`,
    /// `-`, `.`; at most 64). Default: derived from method and path, e.g. `post_orders_id`.
    /// Set it when the Redis store is shared, so that renaming a route does not silently
    /// start a fresh quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A quota on a GraphQL root field or operation (`[[limits.graphql]]`): each admitted
/// selection of the field (aliases, fragments and batch members each count), or each
/// admitted operation of that name, takes one unit. A request taking more units than the
/// quota's burst is refused whole.
///
/// The quota is its own (`rate`, `burst`) or the quota of a REST route doing the same work
/// (`shares = "POST /orders"`: one bucket, whichever door the caller uses). Exactly one of
/// `field` and `operation`, and exactly one of `rate` and `shares`.
///
/// ```
/// use zt_core::limit::LimitConfig;
///
/// let limits = LimitConfig::from_toml_str(r#"
///     [[routes]]
///     method = "POST"
///     path = "/orders"
///     rate = "10/s"
///     [[graphql]]
///     path = "/graphql"
///     field = "Mutation.createOrder"
///     shares = "POST /orders"
/// "#).unwrap();
/// assert_eq!(limits.graphql[0].field.as_deref(), Some("Mutation.createOrder"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlLimitConfig {
    /// The GraphQL endpoint's route template (e.g. `/graphql`).
    pub path: String,
    /// A root field as a schema coordinate: `Mutation.createOrder`, `Query.orders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// An operation name (callers choose names: prefer `field` for anything that matters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The quota's own sustained rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// The burst (default: twice the rate's count); only with `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Charge the quota of this REST route (`"METHOD /template"`, configured in
    /// `[[limits.routes]]` with the same `per`) instead of an own rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<String>,
    /// Keyed by identity (default; the client address when anonymous) or client address.
    #[serde(default)]
    pub per: Per,
    /// The policy name (default derived: `graphql_mutation_createorder`); only with `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which header carries the client address behind trusted proxies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For` (default).
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=` parameters).
    #[serde(rename = "forwarded")]
    Forwarded,
}

impl ClientIpHeader {
    /// The lower-case header name.
    pub fn header_name(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        }
    }
}

/// Where quota state lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreConfig {
    /// In this process (default): each replica enforces the whole quota on its own.
    #[default]
    Memory,
    /// In Redis, shared by every replica (requires the zt-core feature `redis`).
    Redis(RedisConfig),
}

/// What quotas do while the shared store cannot answer in time (unreachable, or slower than
/// its timeout: an attacker may cause latency). For a quota of rate `r` and burst `b`, `N`
/// replicas (the `[fleet]`'s live count; 1 for a `store.redis`) and an outage of length `T`,
/// on routes that need a credential:
///
/// | mode | each replica admits per key | the fleet admits per key, at most |
/// |---|---|---|
/// | `bounded` (default) | its share: rate `r / N`, burst `b / N` (at least 1 per window), from its mirror of the shared state | `b + r·T` (one quota) |
/// | `fallback_local` | the whole quota, from its mirror of the shared state | `N·(b + r·T)` |
/// | `fail_closed` | nothing: 503 `limiter-unavailable` | `0` |
///
/// Routes without a requirement (health and readiness probes) are never refused because of
/// an outage under any mode: each replica gives them the whole quota from its mirror (they
/// are limited as a single replica would limit them, never 503).
///
/// Switching into and out of the fallback has hysteresis (`FAILURES_TO_FALLBACK`
/// consecutive failures in, `SUCCESSES_TO_RECOVER` consecutive successful probes out), with a
/// WARN/INFO event, the gauge `zt_limit_fallback` and the counter
/// `zt_limit_fallback_switches_total{to="local"|"shared"}` each way. See
/// `limit::RedisStore` (feature `redis`) for the repair of a store that lost its keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Each replica enforces its share of every quota (default): rate and burst divided by
    /// the live replica count, starting from what the shared store last said about the key,
    /// so the fleet admits about one quota during an outage.
    #[default]
    Bounded,
    /// Each replica enforces the whole quota by itself, starting from what the shared store
    /// last said about the key: the fleet admits up to `N` quotas during an outage. Kept for
    /// configurations written before `bounded`; prefer `bounded`.
    FallbackLocal,
    /// Answer "unavailable" (the Guard maps it to 503 with `Retry-After`) on routes that
    /// need a credential: nothing passes unmetered. Public routes keep the local quota.
    FailClosed,
}

/// The shared Redis store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS needs the redis
    /// crate's TLS features, which zt does not enable).
    pub url: String,
    /// Per-check budget, connection included (default 100 ms). A slower answer counts as
    /// an outage.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// What to do while Redis is unreachable or slow (default `bounded`, which with one
    /// store of its own admits what `fallback_local` does: the whole quota per replica).
    #[serde(default)]
    pub fail_mode: FailMode,
    /// Key prefix (default `zt:rl`); keys are `{prefix}:{policy}:a:{address}` and
    /// `{prefix}:{policy}:i:{identity}`.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
    /// During an outage, one check per this interval tries Redis again; the others decide
    /// at once without waiting (default 1 s).
    #[serde(default = "default_retry_interval", with = "humantime_serde")]
    pub retry_interval: Duration,
}

impl RedisConfig {
    /// A Redis store at `url` with the default timeout, fail mode, prefix and retry interval.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            timeout: default_redis_timeout(),
            fail_mode: FailMode::default(),
            prefix: default_redis_prefix(),
            retry_interval: default_retry_interval(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    // The URL may carry a password: show only what follows the `@`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match self.url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://<redacted>@{host}"),
                None => self.url.clone(),
            },
            None => "<unparsed>".to_string(),
        };
        f.debug_struct("RedisConfig")
            .field("url", &url)
            .field("timeout", &self.timeout)
            .field("fail_mode", &self.fail_mode)
            .field("prefix", &self.prefix)
            .field("retry_interval", &self.retry_interval)
            .finish()
    }
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_redis_prefix() -> String {
    "zt:rl".to_string()
}
fn default_retry_interval() -> Duration {
    Duration::from_secs(1)
}

/// Brute-force lockout of client addresses and subjects after repeated failed
/// authentications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutConfig {
    /// Lock keys out at all (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Failures within `window` that lock a key out (default 10).
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// The counting window, from a key's first failure (default 5 min).
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// The first lockout's length; each repeat doubles it (default 30 s).
    #[serde(default = "default_base", with = "humantime_serde")]
    pub base: Duration,
    /// The longest lockout (default 1 h). A key that stays clean this long after a lockout
    /// ended starts again from `base`.
    #[serde(default = "default_max", with = "humantime_serde")]
    pub max: Duration,
}

fn default_true() -> bool {
    true
}
fn default_threshold() -> u32 {
    10
}
fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_base() -> Duration {
    Duration::from_secs(30)
}
fn default_max() -> Duration {
    Duration::from_secs(3600)
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            enabled: true,
            threshold: default_threshold(),
            window: default_window(),
            base: default_base(),
            max: default_max(),
        }
    }
}

/// Abuse protection: quotas, client addresses, lockout. Embedded in a policy as `[limits]`.
///
/// | field | default |
/// |---|---|
/// | `identity` | `"600/m"`, burst 1200, per verified identity (client address when anonymous) |
/// | `address` | `"300/m"`, burst 600, per client address, checked before verification |
/// | `routes` | none |
/// | `graphql` | none (GraphQL routes still count each mutation root field on their quota) |
/// | `trusted_proxies` | none: the TCP peer is the client |
/// | `client_ip_header` | `"x-forwarded-for"` (only read from trusted proxies) |
/// | `ipv6_prefix` | 64 |
/// | `capacity` | 100 000 keys per table |
/// | `store` | `"memory"` |
/// | `lockout` | 10 failures in 5 min; 30 s doubling to 1 h |
/// | `headers_on_success` | false: denials carry the headers, admitted responses do not |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// The default quota per verified identity (subject or client id); anonymous calls are
    /// keyed by client address. `"off"` disables it. Policy name `default`.
    #[serde(default = "default_identity_quota", with = "optional_quota")]
    pub identity: Option<QuotaConfig>,
    /// The per-client-address ceiling checked before token verification, so that floods of
    /// anonymous calls or garbage tokens are shed before any signature work. `"off"`
    /// disables it. Policy name `address`.
    #[serde(default = "default_address_quota", with = "optional_quota")]
    pub address: Option<QuotaConfig>,
    /// Per-route quotas replacing the defaults on their route.
    #[serde(default)]
    pub routes: Vec<RouteLimitConfig>,
    /// Quotas per GraphQL root field or operation, charged once the request's operations
    /// are known. Besides these, a GraphQL request takes one unit of its route's quota per
    /// mutation root field it selects (at least one): a batch of 50 aliased mutations costs
    /// what 50 requests do.
    #[serde(default)]
    pub graphql: Vec<GraphqlLimitConfig>,
    /// CIDRs (or single addresses) of reverse proxies whose client-address header is
    /// believed. Empty (default): the TCP peer is always the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies report the client in.
    #[serde(default)]
    pub client_ip_header: ClientIpHeader,
    /// IPv6 clients are keyed by this prefix length (default 64: one key per typical
    /// subscriber allocation, so rotating addresses inside it does not escape the quota).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Most keys each in-memory table holds: each quota, the lockout table, the tightening
    /// table (default 100 000). Full tables evict cold keys by themselves. A key costs about
    /// 75 bytes whatever its length (measured: 5 full tables of 100 000 keys added 36 MiB of
    /// RSS), so the default bounds each table near 7.5 MiB.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Where quota state lives when the policy has no `[fleet]`. With a `[fleet]`, quotas
    /// (and lockouts) are shared through it and this must stay `"memory"` (giving both is an
    /// error: one shared store, one connection).
    #[serde(default)]
    pub store: StoreConfig,
    /// What quotas do while the policy's `[fleet]` cannot be reached or is slow (default
    /// `bounded`: each replica enforces its share; see [`FailMode`]). Only with a `[fleet]`; a
    /// `store.redis` has its own `fail_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    /// Brute-force lockout.
    #[serde(default)]
    pub lockout: LockoutConfig,
    /// Send `RateLimit-Policy`/`RateLimit` on allowed responses too (default false: opt in).
    /// Denials (429) always carry them. Off by default because they cost every admitted
    /// response two formatted headers (the demo's limits-on/off load ratio rose from 0.90 to
    /// 0.92-0.98 without them, BENCHMARKS.md) and tell every caller its quota; turn them on
    /// for clients that pace themselves.
    #[serde(default)]
    pub headers_on_success: bool,
}

fn default_identity_quota() -> Option<QuotaConfig> {
    Rate::new(600, Duration::from_secs(60)).map(QuotaConfig::new)
}
fn default_address_quota() -> Option<QuotaConfig> {
    Rate::new(300, Duration::from_secs(60)).map(QuotaConfig::new)
}
fn default_ipv6_prefix() -> u8 {
    64
}
fn default_capacity() -> usize {
    100_000
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            identity: default_identity_quota(),
            address: default_address_quota(),
            routes: Vec::new(),
            graphql: Vec::new(),
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
            ipv6_prefix: default_ipv6_prefix(),
            capacity: default_capacity(),
            store: StoreConfig::default(),
            fail_mode: None,
            lockout: LockoutConfig::default(),
            headers_on_success: false,
        }
    }
}

impl LimitConfig {
    /// Reads the section from TOML text (what a policy's `[limits]` table holds).
    pub fn from_toml_str(text: &str) -> Result<LimitConfig, crate::PolicyError> {
        toml::from_str(text).map_err(|e| crate::PolicyError::Parse {
            file: None,
            line: e.span().map(|s| text.get(..s.start).unwrap_or(text).matches('\n').count() + 1),
            message: e.message().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        for (text, count, secs) in [
            ("50/s", 50, 1),
            ("600/m", 600, 60),
            ("10/h", 10, 3600),
            ("1000/d", 1000, 86_400),
            ("100/10s", 100, 10),
            ("5/15m", 5, 900),
            (" 7 / min ", 7, 60),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!((rate.count(), rate.period()), (count, Duration::from_secs(secs)), "{text}");
        }
        assert_eq!("600/m".parse::<Rate>().unwrap().to_string(), "600/m");
        assert_eq!("100/10s".parse::<Rate>().unwrap().to_string(), "100/10s");
        assert_eq!("50/s".parse::<Rate>().unwrap().interval(), Duration::from_millis(20));
        for bad in ["", "50", "/s", "x/s", "0/s", "5/0s", "5/fortnight", "-1/s", "5/s/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn quota_forms_and_defaults() {
        let c: LimitConfig =
            toml::from_str("identity = \"50/s\"\naddress = { rate = \"10/m\", burst = 3 }\n").unwrap();
        assert_eq!(c.identity.unwrap().effective_burst(), 100);
        assert_eq!(c.address.unwrap().effective_burst(), 3);
        let off: LimitConfig = toml::from_str("identity = \"off\"\naddress = \"off\"").unwrap();
        assert_eq!((off.identity, off.address), (None, None));
        let d = LimitConfig::default();
        assert_eq!(d.identity.unwrap().rate.to_string(), "600/m");
        assert_eq!(d.address.unwrap().effective_burst(), 600);
        assert_eq!(d.capacity, 100_000);
        assert_eq!(d.ipv6_prefix, 64);
        assert_eq!(d.lockout, LockoutConfig::default());
        let empty: LimitConfig = toml::from_str("").unwrap();
        assert_eq!(empty, d);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(toml::from_str::<LimitConfig>("identiy = \"5/s\"").is_err());
        assert!(toml::from_str::<LimitConfig>("identity = { rate = \"5/s\", burts = 3 }").is_err());
        assert!(toml::from_str::<LimitConfig>("[lockout]\nthreshhold = 3").is_err());
        assert!(toml::from_str::<LimitConfig>("[store.redis]\nurl = \"redis://x\"\nttl = \"1s\"").is_err());
    }

    #[test]
    fn store_and_header_forms() {
        let c: LimitConfig = toml::from_str(
            "client_ip_header = \"forwarded\"\n[store.redis]\nurl = \"redis://:pw@cache:6379/0\"\nfail_mode = \"fail_closed\"\ntimeout = \"250ms\"\n",
        )
        .unwrap();
        assert_eq!(c.client_ip_header, ClientIpHeader::Forwarded);
        let StoreConfig::Redis(redis) = &c.store else { panic!("not redis") };
        assert_eq!(redis.fail_mode, FailMode::FailClosed);
        assert_eq!(redis.timeout, Duration::from_millis(250));
        assert_eq!(redis.prefix, "zt:rl");
        assert!(!format!("{redis:?}").contains("pw"));
        let memory: LimitConfig = toml::from_str("store = \"memory\"").unwrap();
        assert_eq!(memory.store, StoreConfig::Memory);
    }

    #[test]
    fn yaml_round_trip() {
        let yaml = "identity: 100/m\naddress: off\nroutes:\n  - method: POST\n    path: /login\n    rate: 5/m\n    per: address\nlockout:\n  base: 10s\n";
        let c: LimitConfig = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(c.address, None);
        assert_eq!(c.routes[0].rate.to_string(), "5/m");
        assert_eq!(c.lockout.base, Duration::from_secs(10));
        let text = serde_yaml_ng::to_string(&c).unwrap();
        let back: LimitConfig = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, c);
        let toml_text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<LimitConfig>(&toml_text).unwrap(), c);
    }
}
