//! Abuse protection: keyed quotas (GCRA), client addresses behind trusted proxies,
//! brute-force lockout, and per-key tightening.
//!
//! A [`Limiter`] is built once from a [`LimitConfig`] (the policy's `[limits]` section) and
//! is cheap to clone. What the Guard calls, in request order:
//!
//! 1. after routing (the route template is known), before anything else that costs:
//!    [`Limiter::client_key`] — the client's address, from the TCP peer or, behind
//!    trusted proxies only, from `X-Forwarded-For`/`Forwarded`; IPv6 grouped by /64;
//! 2. [`Lockout::locked`] for that address: a locked-out address is refused (429 with
//!    `Retry-After`) before its token is looked at;
//! 3. [`Limiter::check_address`]: the per-address ceiling (or the route's `per = "address"`
//!    quota), before token verification, so floods of anonymous calls and garbage tokens
//!    are shed without signature work. A request whose token is already in the verified-
//!    token cache costs no signature work and may skip this step (useful behind NATs);
//! 4. verify the token. On failure, [`Lockout::record_failure`] for the address (never for
//!    the subject a token names: a replayed expired or foreign-audience token must not lock
//!    its subject out). On success, [`Lockout::locked`] for the caller's principal, then
//!    [`Lockout::record_success`]; the application reports its own failed logins for a
//!    principal with `Guard::report_authentication_failure`;
//! 5. [`Limiter::check_identity`] with the verified identity (or the address when the call
//!    is anonymous): the default identity quota or the route's `per = "identity"` quota;
//! 6. authorize scopes, then the handler. Responses carry
//!    [`Limiter::response_headers`] of the [`RateDecision::tighter`] of the decisions; a
//!    refused decision is a 429 with those headers, an `unavailable` one a 503.
//!
//! With the in-memory store (default) every check is [`LimitCheck::Ready`]: synchronous and
//! allocation-free. With Redis (a `[fleet]`, or `store.redis`) it is [`LimitCheck::Pending`]
//! (one round trip: one script for the key's quota and shared throttle factor), except in a
//! fallback, when it is decided at once by the fail mode ([`FailMode`]; the shared store's
//! docs, `RedisStore`, give the round trips per request and the bounds).
//!
//! Every table (each quota, the lockout table, the tightening table) holds at most
//! `capacity` keys (default 100 000) and evicts cold keys by itself; nothing needs to be
//! cleaned up by the application. Fail modes and lockouts are events on target
//! `zt::limit`; client addresses appear in structured fields only, never in message text.
//!
//! ```
//! use std::net::SocketAddr;
//! use zt_core::limit::{LimitCheck, LimitConfig, LimitKey, Limiter};
//! use zt_core::request::HeaderList;
//!
//! let config = LimitConfig::from_toml_str(r#"
//!     identity = { rate = "10/m", burst = 2 }
//!     address = "off"
//! "#).unwrap();
//! let limiter = Limiter::new(&config).unwrap();
//!
//! let peer: SocketAddr = "203.0.113.9:50000".parse().unwrap();
//! let addr = limiter.client_key(Some(peer), &HeaderList::default()).unwrap();
//! assert!(matches!(limiter.check_address(addr, "GET", "/orders"), LimitCheck::Unlimited));
//!
//! let check = |limiter: &Limiter| match limiter.check_identity(LimitKey::Identity("alice"), "GET", "/orders") {
//!     LimitCheck::Ready(decision) => decision,
//!     _ => unreachable!("the memory store decides at once"),
//! };
//! assert!(check(&limiter).allowed);
//! assert!(check(&limiter).allowed);
//! let refused = check(&limiter);
//! assert!(!refused.allowed);
//! assert_eq!(refused.retry_after_secs(), Some(6));
//! assert!(refused.headers().contains(&("ratelimit-policy", "\"default\";q=2;w=12".to_string())));
//! ```

mod client_address;
mod clock;
mod config;
mod decision;
mod graphql;
mod key;
mod lockout;
#[cfg(feature = "redis")]
mod lockout_fleet;
mod quota;
#[cfg(feature = "redis")]
mod redis;
mod store;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quick_cache::sync::{EntryAction, EntryResult};

pub use client_address::ClientAddressResolver;
pub(crate) use client_address::canonical_net;
pub use clock::{LimitClock, ManualClock};
pub use config::{
    ClientIpHeader, FailMode, GraphqlLimitConfig, LimitConfig, LockoutConfig, Per, QuotaConfig, Rate,
    RedisConfig, RouteLimitConfig, StoreConfig,
};
pub use decision::{LimitCheck, PendingLimit, RateDecision};
pub use graphql::GraphqlCharge;
pub use key::LimitKey;
pub use lockout::Lockout;
pub use quota::QuotaRule;
#[cfg(feature = "redis")]
pub use redis::{FAILURES_TO_FALLBACK, RedisStore, SUCCESSES_TO_RECOVER};
pub use store::{MemoryStore, RateStore, RouteAccess};

use crate::error::PolicyError;
use crate::request::HeaderLookup;
use clock::nanos;
use key::{BoundedMap, KeyDigest, bounded_map, key_event};

/// The policy name of the default identity quota.
pub const IDENTITY_POLICY: &str = "default";
/// The policy name of the default address quota.
pub const ADDRESS_POLICY: &str = "address";
/// The largest tightening factor.
pub const MAX_TIGHTEN_FACTOR: u32 = 1000;
/// The largest `capacity`.
const MAX_CAPACITY: usize = 100_000_000;

/// The abuse-protection engine. Cheap to clone (one reference count).
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: ClientAddressResolver,
    identity: Option<Arc<QuotaRule>>,
    address: Option<Arc<QuotaRule>>,
    /// method -> route template -> quotas replacing the defaults there.
    routes: HashMap<String, HashMap<String, RouteRules>>,
    /// GraphQL route template -> quotas per root field or operation.
    graphql: HashMap<String, Vec<graphql::GraphqlRule>>,
    /// Every quota once, for counting keys.
    rules: Vec<Arc<QuotaRule>>,
    store: Arc<dyn RateStore>,
    lockout: Arc<Lockout>,
    tightening: Tightening,
    headers_on_success: bool,
    capacity: usize,
}

#[derive(Default)]
struct RouteRules {
    identity: Option<Arc<QuotaRule>>,
    address: Option<Arc<QuotaRule>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("store", &self.inner.store.kind())
            .field("rules", &self.inner.rules)
            .field("lockout", &self.inner.lockout)
            .finish_non_exhaustive()
    }
}

/// Options for [`Limiter::builder`].
pub struct LimiterBuilder<'a> {
    config: &'a LimitConfig,
    clock: Option<LimitClock>,
    store: Option<Arc<dyn RateStore>>,
    #[cfg(feature = "redis")]
    fleet: Option<crate::fleet::Fleet>,
}

impl LimiterBuilder<'_> {
    /// Uses this clock (e.g. a [`ManualClock`] in tests) instead of the monotonic one.
    pub fn clock(mut self, clock: LimitClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Shares quotas and lockouts with the other replicas through `fleet` (the Guard passes
    /// the policy's `[fleet]`): quotas run on its connection ([`RedisStore::on_fleet`], fail
    /// mode `limits.fail_mode`), failure counts and lockouts are shared ([`Lockout`]).
    /// `limits.store` must then stay `"memory"` (the build fails otherwise).
    #[cfg(feature = "redis")]
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Uses this store instead of the configured one.
    pub fn store(mut self, store: Arc<dyn RateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Validates the configuration and builds the limiter. Nothing connects here: a Redis
    /// store connects on its first check.
    pub fn build(self) -> Result<Limiter, PolicyError> {
        let config = self.config;
        let clock = self.clock.unwrap_or_default();
        if config.capacity == 0 || config.capacity > MAX_CAPACITY {
            return Err(PolicyError::invalid(
                "limits.capacity",
                format!("must be between 1 and {MAX_CAPACITY}"),
            ));
        }
        let capacity = config.capacity;
        let resolver =
            ClientAddressResolver::new(&config.trusted_proxies, config.client_ip_header, config.ipv6_prefix)?;
        let compile = |name: &str, quota: &QuotaConfig, at: &str| {
            QuotaRule::new(name.into(), quota, capacity, clock.clone())
                .map(Arc::new)
                .map_err(|message| PolicyError::invalid(at, message))
        };
        let identity =
            config.identity.as_ref().map(|q| compile(IDENTITY_POLICY, q, "limits.identity")).transpose()?;
        let address =
            config.address.as_ref().map(|q| compile(ADDRESS_POLICY, q, "limits.address")).transpose()?;
        let mut rules: Vec<Arc<QuotaRule>> = identity.iter().chain(address.iter()).cloned().collect();
        let mut routes: HashMap<String, HashMap<String, RouteRules>> = HashMap::new();
        let mut names: Vec<String> = vec![IDENTITY_POLICY.into(), ADDRESS_POLICY.into()];
        for (i, route) in config.routes.iter().enumerate() {
            let at = format!("limits.routes[{i}]");
            let method = route.method.trim().to_ascii_uppercase();
            if method.is_empty()
                || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Err(PolicyError::invalid(format!("{at}.method"), "not an HTTP method"));
            }
            if !route.path.starts_with('/') {
                return Err(PolicyError::invalid(format!("{at}.path"), "a route template starts with `/`"));
            }
            let name = match &route.name {
                Some(name) => name.clone(),
                None => derived_name(&method, &route.path),
            };
            check_policy_name(&name, &at, &names)?;
            let quota = QuotaConfig { rate: route.rate, burst: route.burst };
            let rule = compile(&name, &quota, &format!("{at}.rate"))?;
            names.push(name);
            let slot = routes.entry(method).or_default().entry(route.path.clone()).or_default();
            let place = match route.per {
                Per::Identity => &mut slot.identity,
                Per::Address => &mut slot.address,
            };
            if place.is_some() {
                return Err(PolicyError::invalid(
                    at,
                    "a quota for this method, path and `per` is already configured",
                ));
            }
            *place = Some(rule.clone());
            rules.push(rule);
        }
        let mut graphql_rules: HashMap<String, Vec<graphql::GraphqlRule>> = HashMap::new();
        for (i, entry) in config.graphql.iter().enumerate() {
            let at = format!("limits.graphql[{i}]");
            let rule = graphql::GraphqlRule::compile(entry, &at, &routes, &mut names, |name, quota, at| {
                let rule = compile(name, quota, at)?;
                rules.push(rule.clone());
                Ok(rule)
            })?;
            graphql_rules.entry(entry.path.clone()).or_default().push(rule);
        }
        let lockout = Lockout::new(&config.lockout, capacity, clock.clone())?;
        #[cfg(feature = "redis")]
        let lockout = lockout.on_fleet(self.fleet.clone());
        #[cfg(not(feature = "redis"))]
        let lockout = Arc::new(lockout);
        #[cfg(feature = "redis")]
        let fleet = self.fleet;
        #[cfg(not(feature = "redis"))]
        let fleet: Option<std::convert::Infallible> = None;
        let store = match (self.store, fleet) {
            (Some(store), _) => store,
            (None, None) => {
                if config.fail_mode.is_some() {
                    return Err(PolicyError::invalid(
                        "limits.fail_mode",
                        "applies to quotas shared through [fleet]; without one, set store.redis.fail_mode",
                    ));
                }
                configured_store(&config.store, &clock)?
            }
            #[cfg(feature = "redis")]
            (None, Some(fleet)) => {
                if config.store != StoreConfig::Memory {
                    return Err(PolicyError::invalid(
                        "limits.store",
                        "the policy has a [fleet]: quotas are shared through it; remove limits.store \
                         (set limits.fail_mode for what quotas do while it is unreachable)",
                    ));
                }
                Arc::new(RedisStore::on_fleet(fleet, config.fail_mode.unwrap_or_default(), clock.clone()))
            }
        };
        Ok(Limiter {
            inner: Arc::new(Inner {
                resolver,
                identity,
                address,
                routes,
                graphql: graphql_rules,
                rules,
                store,
                lockout,
                tightening: Tightening::new(capacity, clock),
                headers_on_success: config.headers_on_success,
                capacity,
            }),
        })
    }
}

fn configured_store(store: &StoreConfig, clock: &LimitClock) -> Result<Arc<dyn RateStore>, PolicyError> {
    match store {
        StoreConfig::Memory => Ok(Arc::new(MemoryStore)),
        #[cfg(feature = "redis")]
        StoreConfig::Redis(redis) => Ok(Arc::new(RedisStore::new(redis, clock.clone())?)),
        #[cfg(not(feature = "redis"))]
        StoreConfig::Redis(_) => {
            let _ = clock;
            Err(PolicyError::invalid("limits.store", "the Redis store needs zt-core's `redis` feature"))
        }
    }
}

/// A quota's policy name (sent in `RateLimit-Policy`): 1 to 64 of `[A-Za-z0-9_.-]`, and
/// not one of `taken`. `at` names the entry (`limits.routes[2]`).
fn check_policy_name(name: &str, at: &str, taken: &[String]) -> Result<(), PolicyError> {
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(PolicyError::invalid(
            format!("{at}.name"),
            format!("`{name}`: a policy name is 1 to 64 letters, digits, `_`, `-` or `.`"),
        ));
    }
    if taken.iter().any(|t| t == name) {
        return Err(PolicyError::invalid(
            format!("{at}.name"),
            format!("the policy name `{name}` is already in use (set a distinct `name`)"),
        ));
    }
    Ok(())
}

/// `POST` + `/orders/{id}` -> `post_orders_id`.
fn derived_name(method: &str, path: &str) -> String {
    let mut name = method.to_ascii_lowercase();
    for c in path.chars() {
        let c = if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' };
        if !(c == '_' && name.ends_with('_')) {
            name.push(c);
        }
    }
    name.trim_end_matches('_').chars().take(64).collect()
}

impl Limiter {
    /// Validates `config` and builds a limiter with the monotonic clock and the configured
    /// store. Errors name the entry (`limits.routes[2].rate: ...`).
    pub fn new(config: &LimitConfig) -> Result<Limiter, PolicyError> {
        Limiter::builder(config).build()
    }

    /// Starts a limiter with options (clock, store).
    pub fn builder(config: &LimitConfig) -> LimiterBuilder<'_> {
        LimiterBuilder {
            config,
            clock: None,
            store: None,
            #[cfg(feature = "redis")]
            fleet: None,
        }
    }

    /// The client-address resolver (trusted proxies, header, IPv6 grouping).
    pub fn resolver(&self) -> &ClientAddressResolver {
        &self.inner.resolver
    }

    /// The client's address (for logs: `client.address`): the peer, or behind trusted
    /// proxies the first untrusted hop. `None` without a peer.
    pub fn client_address(&self, peer: Option<SocketAddr>, headers: &dyn HeaderLookup) -> Option<IpAddr> {
        self.inner.resolver.client_address(peer, headers)
    }

    /// The address quotas and lockouts are keyed by: [`client_address`](Self::client_address)
    /// with IPv6 grouped by the configured prefix.
    pub fn client_key(&self, peer: Option<SocketAddr>, headers: &dyn HeaderLookup) -> Option<IpAddr> {
        self.inner.resolver.client_key(peer, headers)
    }

    fn route_rules(&self, method: &str, route: &str) -> Option<&RouteRules> {
        if self.inner.routes.is_empty() {
            return None;
        }
        self.inner.routes.get(method)?.get(route)
    }

    /// Takes one request from the address ceiling for `route` (its `per = "address"` quota,
    /// else the default address quota). Call it before verifying the token.
    pub fn check_address(&self, addr: IpAddr, method: &str, route: &str) -> LimitCheck {
        self.check_address_on(addr, method, route, RouteAccess::Protected)
    }

    /// [`check_address`](Self::check_address) on a route of the given access (the Guard
    /// passes [`RouteAccess::Public`] for routes without a requirement): a `fail_closed`
    /// shared store does not refuse public routes while it is down, it gives them their
    /// local share.
    ///
    /// ```
    /// use zt_core::limit::{LimitCheck, LimitConfig, Limiter, RouteAccess};
    ///
    /// let limiter = Limiter::new(&LimitConfig::default()).unwrap();
    /// let peer = "203.0.113.9".parse().unwrap();
    /// let check = limiter.check_address_on(peer, "GET", "/health", RouteAccess::Public);
    /// assert!(matches!(check, LimitCheck::Ready(d) if d.allowed));
    /// ```
    pub fn check_address_on(
        &self,
        addr: IpAddr,
        method: &str,
        route: &str,
        access: RouteAccess,
    ) -> LimitCheck {
        let rule =
            self.route_rules(method, route).and_then(|r| r.address.as_ref()).or(self.inner.address.as_ref());
        let Some(rule) = rule else { return LimitCheck::Unlimited };
        let key = LimitKey::Address(self.inner.resolver.group(addr));
        self.inner.store.check_on(rule, key, self.inner.tightening.cost(key), 1, access)
    }

    /// Takes one request from the identity quota for `route` (its `per = "identity"` quota,
    /// else the default identity quota). `key` is the verified identity, or the client
    /// address for an anonymous call.
    pub fn check_identity(&self, key: LimitKey<'_>, method: &str, route: &str) -> LimitCheck {
        self.check_identity_on(key, method, route, RouteAccess::Protected)
    }

    /// [`check_identity`](Self::check_identity) on a route of the given access (see
    /// [`check_address_on`](Self::check_address_on)).
    ///
    /// ```
    /// use zt_core::limit::{LimitCheck, LimitConfig, LimitKey, Limiter, RouteAccess};
    ///
    /// let limiter = Limiter::new(&LimitConfig::default()).unwrap();
    /// let check = limiter.check_identity_on(LimitKey::Identity("alice"), "GET", "/orders", RouteAccess::Protected);
    /// assert!(matches!(check, LimitCheck::Ready(d) if d.allowed));
    /// ```
    pub fn check_identity_on(
        &self,
        key: LimitKey<'_>,
        method: &str,
        route: &str,
        access: RouteAccess,
    ) -> LimitCheck {
        let rule = self
            .route_rules(method, route)
            .and_then(|r| r.identity.as_ref())
            .or(self.inner.identity.as_ref());
        let Some(rule) = rule else { return LimitCheck::Unlimited };
        let key = match key {
            LimitKey::Address(ip) => LimitKey::Address(self.inner.resolver.group(ip)),
            identity => identity,
        };
        self.inner.store.check_on(rule, key, self.inner.tightening.cost(key), 1, access)
    }

    /// What an admitted GraphQL request on `method route` owes once its operations are
    /// known: one charge per `[[limits.graphql]]` quota it selects (units: the selections
    /// of the field, or the operations of that name), and the route's identity quota for
    /// each mutation root field beyond the one unit [`check_identity`](Self::check_identity)
    /// already took. Take each with [`charge`](Self::charge).
    ///
    /// ```
    /// use zt_core::limit::{LimitConfig, Limiter};
    ///
    /// let limiter = Limiter::new(&LimitConfig::default()).unwrap();
    /// assert!(limiter.graphql_charges("POST", "/graphql", &[]).is_empty());
    /// ```
    pub fn graphql_charges(
        &self,
        method: &str,
        route: &str,
        operations: &[crate::graphql::OperationInfo],
    ) -> Vec<GraphqlCharge> {
        let route_rule = self
            .route_rules(method, route)
            .and_then(|r| r.identity.as_ref())
            .or(self.inner.identity.as_ref());
        graphql::charges(self.inner.graphql.get(route).map_or(&[][..], |r| r), route_rule, operations)
    }

    /// Takes `charge` for `key` (the verified identity, or the client address: see
    /// [`GraphqlCharge::per`]). A charge larger than its quota's burst is refused at once.
    ///
    /// ```
    /// # #[cfg(feature = "graphql")] {
    /// use zt_core::graphql::{GraphqlConfig, GraphqlRequestBody, GraphqlSchema};
    /// use zt_core::limit::{LimitCheck, LimitConfig, LimitKey, Limiter};
    ///
    /// let limits = LimitConfig::from_toml_str(r#"
    ///     [[graphql]]
    ///     path = "/graphql"
    ///     field = "Mutation.ping"
    ///     rate = "10/m"
    ///     burst = 3
    /// "#).unwrap();
    /// let limiter = Limiter::new(&limits).unwrap();
    /// let schema = GraphqlSchema::from_sdl(
    ///     "type Query { a: Int } type Mutation { ping: Int }",
    ///     GraphqlConfig::default(),
    /// ).unwrap();
    /// let body = br#"{"query": "mutation { a: ping b: ping c: ping d: ping }"}"#;
    /// let operations = schema.check_with_scopes(GraphqlRequestBody::Json(body), Some(&[])).unwrap();
    /// let charges = limiter.graphql_charges("POST", "/graphql", &operations);
    /// assert_eq!(charges[0].units(), 4);
    /// // Four pings against a burst of three: refused whole.
    /// let LimitCheck::Ready(decision) = limiter.charge(&charges[0], LimitKey::Identity("iss|sub:a")) else {
    ///     unreachable!("the memory store decides at once")
    /// };
    /// assert!(!decision.allowed);
    /// # }
    /// ```
    pub fn charge(&self, charge: &GraphqlCharge, key: LimitKey<'_>) -> LimitCheck {
        let key = match key {
            LimitKey::Address(ip) => LimitKey::Address(self.inner.resolver.group(ip)),
            identity => identity,
        };
        let cost = u64::from(self.inner.tightening.cost(key)).saturating_mul(charge.units());
        match u32::try_from(cost) {
            Ok(cost) if cost <= charge.rule().burst() => {
                let units = u32::try_from(charge.units()).unwrap_or(u32::MAX);
                self.inner.store.check_on(charge.rule_arc(), key, cost, units, RouteAccess::Protected)
            }
            _ => LimitCheck::Ready(charge.rule().over_burst()),
        }
    }

    /// The brute-force lockout table.
    pub fn lockout(&self) -> &Lockout {
        &self.inner.lockout
    }

    /// Temporarily tightens every quota for one key: for `duration`, each of its requests
    /// costs `factor` requests' worth, i.e. the key gets 1/`factor` of each quota's rate and
    /// burst (at least one request per window). For adaptive throttling by detection.
    ///
    /// `factor` is capped at [`MAX_TIGHTEN_FACTOR`]; 0 and 1 change nothing. Tightening the
    /// same key again keeps the larger factor and the later end. The table holds at most
    /// `capacity` keys; entries expire by themselves. With a shared store (a `[fleet]` or
    /// `store.redis`) the factor is shared too, with its expiry (one `SET .. PX` written in
    /// the background): every replica's quota script charges the larger of its own factor
    /// and the shared one. In an outage each replica charges the factors it was told itself.
    pub fn tighten(&self, key: LimitKey<'_>, factor: u32, duration: Duration) {
        let key = match key {
            LimitKey::Address(ip) => LimitKey::Address(self.inner.resolver.group(ip)),
            identity => identity,
        };
        let factor = factor.min(MAX_TIGHTEN_FACTOR);
        if factor <= 1 || duration.is_zero() {
            return;
        }
        self.inner.tightening.tighten(key, factor, duration);
        self.inner.store.tighten(key, factor, duration);
    }

    /// Whether allowed responses carry the rate-limit headers.
    pub fn headers_on_success(&self) -> bool {
        self.inner.headers_on_success
    }

    /// The headers to send for `decision`: all of [`RateDecision::headers`] for a refusal,
    /// and for an admission only when `headers_on_success` is set.
    pub fn response_headers(&self, decision: &RateDecision) -> Vec<(&'static str, String)> {
        if decision.allowed && !self.inner.headers_on_success {
            return Vec::new();
        }
        decision.headers()
    }

    /// The compiled quotas: the defaults first, then the routes' in configuration order.
    pub fn rules(&self) -> impl Iterator<Item = &QuotaRule> {
        self.inner.rules.iter().map(|r| &**r)
    }

    /// Keys held in memory across all quotas (each quota holds at most `capacity`).
    pub fn tracked_keys(&self) -> usize {
        self.inner.rules.iter().map(|r| r.tracked_keys()).sum()
    }

    /// The per-table key capacity.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The store's kind: `memory` or `redis`.
    pub fn store_kind(&self) -> &'static str {
        self.inner.store.kind()
    }
}

#[derive(Debug, Clone, Copy)]
struct Tight {
    factor: u32,
    until: u64,
}

/// Keys with a temporarily stricter quota.
struct Tightening {
    table: BoundedMap<Tight>,
    clock: LimitClock,
    /// No key is tightened at or after this time: checks skip the table until then.
    horizon: AtomicU64,
}

impl Tightening {
    fn new(capacity: usize, clock: LimitClock) -> Tightening {
        Tightening { table: bounded_map(capacity), clock, horizon: AtomicU64::new(0) }
    }

    /// The cost of one request of `key`: its factor while tightened, else 1.
    fn cost(&self, key: LimitKey<'_>) -> u32 {
        let horizon = self.horizon.load(Ordering::Acquire);
        if horizon == 0 {
            return 1;
        }
        let now = self.clock.now_nanos();
        if now >= horizon {
            return 1;
        }
        match self.table.peek(&KeyDigest::of(key)) {
            Some(t) if t.until > now => t.factor,
            _ => 1,
        }
    }

    fn tighten(&self, key: LimitKey<'_>, factor: u32, duration: Duration) {
        let factor = factor.min(MAX_TIGHTEN_FACTOR);
        if factor <= 1 || duration.is_zero() {
            return;
        }
        let now = self.clock.now_nanos();
        let until = now.saturating_add(nanos(duration)).max(1);
        let digest = KeyDigest::of(key);
        let merge = |t: &mut Tight| {
            if t.until <= now {
                *t = Tight { factor, until };
            } else {
                t.factor = t.factor.max(factor);
                t.until = t.until.max(until);
            }
            *t
        };
        let applied = match self.table.entry(&digest, None, |_, t| EntryAction::Retain(merge(t))) {
            EntryResult::Retained(t) => t,
            EntryResult::Vacant(guard) => {
                let t = Tight { factor, until };
                let _ = guard.insert(t);
                t
            }
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => return,
        };
        self.horizon.fetch_max(applied.until, Ordering::AcqRel);
        key_event!(
            tracing::Level::INFO,
            key,
            "quota tightened",
            zt.tighten.factor = applied.factor,
            zt.tighten.duration_ms =
                u64::try_from(Duration::from_nanos(applied.until - now).as_millis()).unwrap_or(u64::MAX)
        );
    }
}

#[cfg(test)]
mod test_events;
#[cfg(test)]
mod tests;
