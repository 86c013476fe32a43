// The module's documentation is on `Inventory`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::classify::{DataClasses, classify};
use super::clock::{ObserveClock, rfc3339_millis, to_micros};
use super::record::{Decision, RequestRecord};
use super::store::{Hll, KeyedMap, domain, key_of};

/// Inventory settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventoryConfig {
    /// Routes declared as deprecated: still called means `zombie`. Default: none.
    pub deprecated: Vec<RouteRef>,
    /// Most undeclared path shapes kept. Default 500.
    pub max_shadow: usize,
    /// Most declared routes kept. Default 2 000.
    pub max_declared: usize,
    /// Classify the first this many responses of each endpoint. Default 8.
    pub sample_first: u64,
    /// Then one response in this many (0 = never). Default 100.
    pub sample_every: u64,
    /// Most bytes of a response body scanned. Default 4 096.
    pub sample_bytes: usize,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            deprecated: Vec::new(),
            max_shadow: 500,
            max_declared: 2_000,
            sample_first: 8,
            sample_every: 100,
            sample_bytes: 4_096,
        }
    }
}

/// A method and route template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteRef {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The route template, e.g. `/orders/{id}`.
    pub route: String,
}

impl RouteRef {
    /// A route reference.
    pub fn new(method: &str, route: &str) -> RouteRef {
        RouteRef { method: method.to_ascii_uppercase(), route: route.to_string() }
    }
}

/// Methods kept as sent; anything else counts as `OTHER` (bounded label set).
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];

/// The method as static text when it is one of the standard ones, spelled as sent.
pub(crate) fn standard_method(method: &str) -> Option<&'static str> {
    METHODS.iter().find(|m| **m == method).copied()
}

fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| m.eq_ignore_ascii_case(method)).copied().unwrap_or("OTHER")
}

/// Auth method names with a bit each; anything else is `other`.
const AUTH_METHODS: &[&str] = &["none", "jwt", "mtls", "other"];

fn auth_bit(method: Option<&str>) -> u8 {
    let name = method.unwrap_or("none");
    let index = AUTH_METHODS.iter().position(|m| *m == name).unwrap_or(AUTH_METHODS.len() - 1);
    1 << index
}

/// The shape of an undeclared path: id-like segments replaced by placeholders, at most 8
/// segments, long or odd segments collapsed, so one shape stands for many paths.
pub(crate) fn path_shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(128));
    for (i, segment) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if i == 8 {
            out.push_str("/{rest}");
            break;
        }
        out.push('/');
        out.push_str(segment_shape(segment).unwrap_or(segment));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn segment_shape(segment: &str) -> Option<&'static str> {
    let bytes = segment.as_bytes();
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    if digits == bytes.len() {
        return Some("{id}");
    }
    if bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
    {
        return Some("{uuid}");
    }
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return Some("{hex}");
    }
    if bytes.len() > 32
        || !bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    {
        return Some("{s}");
    }
    if bytes.len() >= 8 && digits > 0 {
        // Mixed letters and digits of some length: a slug or token, not a word.
        return Some("{id}");
    }
    None
}

struct Endpoint {
    method: &'static str,
    route: String,
    declared: AtomicBool,
    deprecated: AtomicBool,
    calls: AtomicU64,
    first_seen: AtomicU64,
    last_seen: AtomicU64,
    status: [AtomicU64; 5],
    decisions: [AtomicU64; 3],
    auth: AtomicU8,
    callers: Hll,
    sample_ticket: AtomicU64,
    scanned: AtomicU64,
    sensitive: AtomicU16,
}

impl Endpoint {
    fn new(method: &'static str, route: String, declared: bool) -> Endpoint {
        Endpoint {
            method,
            route,
            declared: AtomicBool::new(declared),
            deprecated: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            first_seen: AtomicU64::new(u64::MAX),
            last_seen: AtomicU64::new(0),
            status: Default::default(),
            decisions: Default::default(),
            auth: AtomicU8::new(0),
            callers: Hll::new(),
            sample_ticket: AtomicU64::new(0),
            scanned: AtomicU64::new(0),
            sensitive: AtomicU16::new(0),
        }
    }
}

/// The runtime API inventory.
///
/// The runtime API inventory: which endpoints are really called, by how many callers,
/// how, with which results, and whether their responses carry sensitive data.
///
/// Endpoints are keyed by method and route template. Requests that matched no declared
/// route are grouped by method and a normalised path *shape* (`/v1/users/{id}`), so
/// scanners cannot blow up the inventory: at most [`InventoryConfig::max_shadow`] shapes
/// (default 500) are kept, the rest count into one `{other}` entry.
///
/// | status | meaning |
/// |---|---|
/// | `active` | declared and called |
/// | `unused` | declared, never called since start |
/// | `shadow` | not declared, but called (see `served`: whether it ever answered 2xx/3xx, as happens in report-only mode, or was only refused) |
/// | `zombie` | declared as deprecated, still called |
/// | `deprecated` | declared as deprecated, not called |
///
/// All counters are atomics: recording a request takes a shared read lock on the endpoint
/// map and no other lock. New endpoints (declared routes, new shadow shapes) take the
/// write lock once.
///
/// ```
/// use std::time::SystemTime;
/// use zt_core::observe::{Decision, Inventory, InventoryConfig, RequestRecord};
///
/// let inventory = Inventory::new(InventoryConfig::default());
/// inventory.declare("GET", "/orders/{id}");
/// let mut record = RequestRecord::new(SystemTime::now(), "r1", "GET", "/orders/7", 200, Decision::Allow);
/// record.route = Some("/orders/{id}");
/// inventory.record(&record);
/// let snapshot = inventory.snapshot();
/// assert_eq!(snapshot.endpoints[0].calls, 1);
/// let json = serde_json::to_string(&snapshot)?; // served at GET /zt/inventory
/// # let _ = json; Ok::<(), serde_json::Error>(())
/// ```
pub struct Inventory {
    config: InventoryConfig,
    clock: ObserveClock,
    endpoints: RwLock<KeyedMap<Arc<Endpoint>>>,
    shadow_count: AtomicU64,
    declared_count: AtomicU64,
    overflow: Arc<Endpoint>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").field("endpoints", &self.len()).finish_non_exhaustive()
    }
}

fn endpoint_key(method: &str, route: &str, declared: bool) -> u64 {
    let tag = u16::from(domain::ENDPOINT) | (u16::from(declared) << 8);
    super::store::remembered_key(tag, method, route, || key_of(domain::ENDPOINT, &(method, route, declared)))
}

/// How stale an endpoint's `last_seen` may be, in microseconds (see `record_keyed`).
const LAST_SEEN_GRANULARITY_US: u64 = 1_000;

/// A declared endpoint of the inventory and its key, found when the request arrived.
#[derive(Clone)]
pub(crate) struct EndpointHandle {
    key: u64,
    endpoint: Arc<Endpoint>,
}

impl std::fmt::Debug for EndpointHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointHandle")
            .field("method", &self.endpoint.method)
            .field("route", &self.endpoint.route)
            .finish()
    }
}

/// The hashed keys of a record, computed once per request and shared by the inventory
/// and the baselines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    /// The declared endpoint (method label + route template).
    pub(crate) endpoint: Option<u64>,
    /// The caller: subject, else client address.
    pub(crate) caller: Option<u64>,
}

impl Keys {
    /// `known`: the endpoint the Guard found at arrival, whose key is already computed.
    pub(crate) fn of(record: &RequestRecord<'_>, known: Option<&EndpointHandle>) -> Keys {
        let endpoint = match known {
            Some(handle) => Some(handle.key),
            None => record
                .operation
                .or(record.route)
                .map(|route| endpoint_key(method_label(record.method), route, true)),
        };
        let caller = match (record.subject, record.client_ip) {
            (Some(s), _) => Some(super::store::remembered_key(u16::from(domain::SUBJECT), s, "", || {
                key_of(domain::SUBJECT, s)
            })),
            (None, Some(ip)) => Some(key_of(domain::ADDRESS, &ip)),
            (None, None) => None,
        };
        Keys { endpoint, caller }
    }
}

impl Inventory {
    /// An empty inventory (plus the deprecated routes of the config, as declared).
    pub fn new(config: InventoryConfig) -> Inventory {
        Inventory::with_clock(config, ObserveClock::system())
    }

    pub(crate) fn with_clock(config: InventoryConfig, clock: ObserveClock) -> Inventory {
        let inventory = Inventory {
            overflow: Arc::new(Endpoint::new("OTHER", "{other}".to_string(), false)),
            config,
            clock,
            endpoints: RwLock::new(KeyedMap::default()),
            shadow_count: AtomicU64::new(0),
            declared_count: AtomicU64::new(0),
        };
        for r in inventory.config.deprecated.clone() {
            inventory.declare(&r.method, &r.route);
            inventory.deprecate(&r.method, &r.route);
        }
        inventory
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyedMap<Arc<Endpoint>>> {
        self.endpoints.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyedMap<Arc<Endpoint>>> {
        self.endpoints.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Declares a route (the Guard declares every registered route at start-up). Past
    /// [`InventoryConfig::max_declared`] further routes are ignored.
    pub fn declare(&self, method: &str, route: &str) {
        let method = method_label(method);
        let key = endpoint_key(method, route, true);
        let mut map = self.write();
        if map.contains_key(&key)
            || self.declared_count.load(Ordering::Relaxed) as usize >= self.config.max_declared
        {
            return;
        }
        map.insert(key, Arc::new(Endpoint::new(method, route.to_string(), true)));
        self.declared_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a declared route as deprecated (declaring it if needed).
    pub fn deprecate(&self, method: &str, route: &str) {
        self.declare(method, route);
        let key = endpoint_key(method_label(method), route, true);
        if let Some(e) = self.read().get(&key) {
            e.deprecated.store(true, Ordering::Relaxed);
        }
    }

    /// Endpoints held (declared and shadow).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether to capture a prefix of this response's body for classification, and how
    /// many bytes at most. Ask before reading the body so unsampled responses cost nothing.
    pub fn wants_sample(&self, method: &str, route: Option<&str>) -> Option<usize> {
        self.arrival(method, route).0
    }

    /// [`Inventory::wants_sample`], plus the declared endpoint it found: the Guard keeps it
    /// until the response, so recording the call needs no second hash and lookup.
    pub(crate) fn arrival(
        &self,
        method: &str,
        route: Option<&str>,
    ) -> (Option<usize>, Option<EndpointHandle>) {
        let Some(route) = route else { return (None, None) };
        let key = endpoint_key(method_label(method), route, true);
        let Some(e) = self.read().get(&key).cloned() else { return (None, None) };
        let n = e.sample_ticket.fetch_add(1, Ordering::Relaxed);
        let every = self.config.sample_every;
        let sample = (n < self.config.sample_first || (every > 0 && n.is_multiple_of(every)))
            .then_some(self.config.sample_bytes);
        (sample, Some(EndpointHandle { key, endpoint: e }))
    }

    fn endpoint_for(
        &self,
        method: &'static str,
        record: &RequestRecord<'_>,
        key: Option<u64>,
    ) -> Arc<Endpoint> {
        let (route, declared) = match record.operation.or(record.route) {
            Some(route) => (std::borrow::Cow::Borrowed(route), true),
            None => (std::borrow::Cow::Owned(path_shape(record.path)), false),
        };
        let key = key.unwrap_or_else(|| endpoint_key(method, &route, declared));
        if let Some(e) = self.read().get(&key) {
            return e.clone();
        }
        if declared {
            // A route the Guard matched but never declared here: declare it now.
            self.declare(method, &route);
            return self.read().get(&key).cloned().unwrap_or_else(|| self.overflow.clone());
        }
        if self.shadow_count.load(Ordering::Relaxed) as usize >= self.config.max_shadow {
            return self.overflow.clone();
        }
        let mut map = self.write();
        if let Some(e) = map.get(&key) {
            return e.clone();
        }
        if self.shadow_count.load(Ordering::Relaxed) as usize >= self.config.max_shadow {
            return self.overflow.clone();
        }
        let e = Arc::new(Endpoint::new(method, route.into_owned(), false));
        map.insert(key, e.clone());
        self.shadow_count.fetch_add(1, Ordering::Relaxed);
        e
    }

    /// Records one request.
    pub fn record(&self, record: &RequestRecord<'_>) {
        self.record_keyed(record, &Keys::of(record, None), None);
    }

    pub(crate) fn record_keyed(
        &self,
        record: &RequestRecord<'_>,
        keys: &Keys,
        known: Option<&EndpointHandle>,
    ) {
        let e = match known {
            Some(handle) => handle.endpoint.clone(),
            None => self.endpoint_for(method_label(record.method), record, keys.endpoint),
        };
        let now = to_micros(record.timestamp);
        e.calls.fetch_add(1, Ordering::Relaxed);
        // Every worker thread records into the same endpoint: read before writing, so the
        // common case (nothing to change) does not bounce the cache line between cores.
        if now < e.first_seen.load(Ordering::Relaxed) {
            e.first_seen.fetch_min(now, Ordering::Relaxed);
        }
        // Last seen to the millisecond: most calls of a busy endpoint then write nothing.
        if now >= e.last_seen.load(Ordering::Relaxed).saturating_add(LAST_SEEN_GRANULARITY_US) {
            e.last_seen.fetch_max(now, Ordering::Relaxed);
        }
        let class = usize::from((record.status / 100).clamp(1, 5) - 1);
        if let Some(c) = e.status.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let decision = match record.decision {
            Decision::Allow => 0,
            Decision::Deny => 1,
            Decision::WouldDeny => 2,
        };
        if let Some(d) = e.decisions.get(decision) {
            d.fetch_add(1, Ordering::Relaxed);
        }
        let bit = auth_bit(record.auth_method);
        if e.auth.load(Ordering::Relaxed) & bit == 0 {
            e.auth.fetch_or(bit, Ordering::Relaxed);
        }
        if let Some(c) = keys.caller {
            e.callers.add(c);
        }
        if let Some(sample) = record.response_sample {
            let sample = sample.get(..self.config.sample_bytes).unwrap_or(sample);
            let found = classify(sample);
            e.scanned.fetch_add(1, Ordering::Relaxed);
            e.sensitive.fetch_or(found.0, Ordering::Relaxed);
        }
    }

    /// A consistent-enough copy of the inventory (each counter is read once; counters of
    /// requests in flight may be mid-update).
    pub fn snapshot(&self) -> InventorySnapshot {
        let map = self.read();
        let mut endpoints: Vec<EndpointSnapshot> = map.values().map(|e| snapshot_of(e)).collect();
        drop(map);
        if self.overflow.calls.load(Ordering::Relaxed) > 0 {
            endpoints.push(snapshot_of(&self.overflow));
        }
        endpoints.sort_by(|a, b| (&a.route, a.method).cmp(&(&b.route, b.method)));
        let mut summary = InventorySummary::default();
        for e in &endpoints {
            match e.status {
                EndpointStatus::Active => summary.active += 1,
                EndpointStatus::Unused => summary.unused += 1,
                EndpointStatus::Shadow => summary.shadow += 1,
                EndpointStatus::Zombie => summary.zombie += 1,
                EndpointStatus::Deprecated => summary.deprecated += 1,
            }
        }
        InventorySnapshot {
            generated_at: rfc3339_millis(self.clock.now_micros()),
            summary,
            shadow_overflow: self.overflow.calls.load(Ordering::Relaxed),
            endpoints,
        }
    }
}

fn snapshot_of(e: &Endpoint) -> EndpointSnapshot {
    let calls = e.calls.load(Ordering::Relaxed);
    let declared = e.declared.load(Ordering::Relaxed);
    let deprecated = e.deprecated.load(Ordering::Relaxed);
    let status = match (declared, deprecated, calls > 0) {
        (false, _, _) => EndpointStatus::Shadow,
        (true, true, true) => EndpointStatus::Zombie,
        (true, true, false) => EndpointStatus::Deprecated,
        (true, false, true) => EndpointStatus::Active,
        (true, false, false) => EndpointStatus::Unused,
    };
    let status_count = |i: usize| e.status.get(i).map_or(0, |c| c.load(Ordering::Relaxed));
    let decision = |i: usize| e.decisions.get(i).map_or(0, |c| c.load(Ordering::Relaxed));
    let first = e.first_seen.load(Ordering::Relaxed);
    let auth = e.auth.load(Ordering::Relaxed);
    EndpointSnapshot {
        method: e.method,
        route: e.route.clone(),
        status,
        declared,
        deprecated,
        served: status_count(1) + status_count(2) > 0,
        calls,
        first_seen: (calls > 0 && first != u64::MAX).then(|| rfc3339_millis(first)),
        last_seen: (calls > 0).then(|| rfc3339_millis(e.last_seen.load(Ordering::Relaxed))),
        status_classes: StatusClasses {
            informational: status_count(0),
            success: status_count(1),
            redirect: status_count(2),
            client_error: status_count(3),
            server_error: status_count(4),
        },
        decisions: Decisions { allow: decision(0), deny: decision(1), would_deny: decision(2) },
        auth_methods: AUTH_METHODS
            .iter()
            .enumerate()
            .filter(|(i, _)| auth & (1 << i) != 0)
            .map(|(_, m)| *m)
            .collect(),
        distinct_callers: if calls == 0 { 0 } else { e.callers.estimate().max(1) },
        samples_scanned: e.scanned.load(Ordering::Relaxed),
        sensitive_data: DataClasses(e.sensitive.load(Ordering::Relaxed)),
    }
}

/// How an endpoint stands (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Declared and called.
    Active,
    /// Declared, never called.
    Unused,
    /// Not declared, but called.
    Shadow,
    /// Deprecated, still called.
    Zombie,
    /// Deprecated, not called.
    Deprecated,
}

/// Responses by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusClasses {
    /// 1xx.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// 2xx.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// 3xx.
    #[serde(rename = "3xx")]
    pub redirect: u64,
    /// 4xx.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// 5xx.
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

/// Requests by decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Decisions {
    /// Forwarded.
    pub allow: u64,
    /// Denied.
    pub deny: u64,
    /// Would have been denied (report-only mode).
    pub would_deny: u64,
}

/// One endpoint in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSnapshot {
    /// The method (`OTHER` for unusual ones).
    pub method: &'static str,
    /// The route template, or the path shape of an undeclared endpoint.
    pub route: String,
    /// How it stands.
    pub status: EndpointStatus,
    /// Declared by the application.
    pub declared: bool,
    /// Declared as deprecated.
    pub deprecated: bool,
    /// Ever answered 2xx/3xx.
    pub served: bool,
    /// Requests seen.
    pub calls: u64,
    /// First request (RFC 3339), if any.
    pub first_seen: Option<String>,
    /// Latest request (RFC 3339), if any.
    pub last_seen: Option<String>,
    /// Responses by status class.
    pub status_classes: StatusClasses,
    /// Requests by decision.
    pub decisions: Decisions,
    /// Authentication methods seen (`none`, `jwt`, `mtls`, `other`).
    pub auth_methods: Vec<&'static str>,
    /// Distinct callers (subjects, else addresses), estimated (HyperLogLog, ~6.5 %).
    pub distinct_callers: u64,
    /// Response samples classified.
    pub samples_scanned: u64,
    /// Sensitive data classes seen in responses.
    pub sensitive_data: DataClasses,
}

/// Endpoint counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InventorySummary {
    /// Declared and called.
    pub active: u64,
    /// Declared, never called.
    pub unused: u64,
    /// Undeclared shapes called.
    pub shadow: u64,
    /// Deprecated, still called.
    pub zombie: u64,
    /// Deprecated, not called.
    pub deprecated: u64,
}

/// The inventory as JSON-ready data (`GET /zt/inventory`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventorySnapshot {
    /// When the snapshot was taken (RFC 3339).
    pub generated_at: String,
    /// Endpoint counts by status.
    pub summary: InventorySummary,
    /// Requests to undeclared shapes beyond [`InventoryConfig::max_shadow`].
    pub shadow_overflow: u64,
    /// Every endpoint, sorted by route then method.
    pub endpoints: Vec<EndpointSnapshot>,
}

impl InventorySnapshot {
    /// The endpoint with this method and route (or shape).
    pub fn endpoint(&self, method: &str, route: &str) -> Option<&EndpointSnapshot> {
        self.endpoints.iter().find(|e| e.method.eq_ignore_ascii_case(method) && e.route == route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn shapes_bound_cardinality() {
        assert_eq!(path_shape("/users/42/orders/9"), "/users/{id}/orders/{id}");
        assert_eq!(path_shape("/files/3f2504e0-4f89-11d3-9a0c-0305e82c3301"), "/files/{uuid}");
        assert_eq!(path_shape("/blob/deadbeefdeadbeef00"), "/blob/{hex}");
        assert_eq!(path_shape("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/{rest}");
        assert_eq!(path_shape("/x/%2e%2e"), "/x/{s}");
        assert_eq!(path_shape("/token/abc123xyz9"), "/token/{id}");
        assert_eq!(path_shape("/admin"), "/admin");
        assert_eq!(path_shape(""), "/");
    }

    fn rec<'a>(method: &'a str, route: Option<&'a str>, path: &'a str, status: u16) -> RequestRecord<'a> {
        let mut r = RequestRecord::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            "r",
            method,
            path,
            status,
            Decision::Allow,
        );
        r.route = route;
        r
    }

    #[test]
    fn shadow_entries_are_capped() {
        let inv = Inventory::new(InventoryConfig { max_shadow: 3, ..InventoryConfig::default() });
        let paths: Vec<String> = (0..50).map(|i| format!("/probe{i}/x")).collect();
        for p in &paths {
            inv.record(&rec("GET", None, p, 404));
        }
        let snap = inv.snapshot();
        assert_eq!(snap.summary.shadow, 4, "3 shapes plus the overflow entry");
        assert_eq!(snap.shadow_overflow, 47);
        assert!(inv.len() <= 3);
        // Odd methods share one label.
        inv.record(&rec("BREW", Some("/coffee"), "/coffee", 418));
        assert!(inv.snapshot().endpoint("OTHER", "/coffee").is_some());
    }

    #[test]
    fn sampling_first_then_every_nth() {
        let inv = Inventory::new(InventoryConfig {
            sample_first: 2,
            sample_every: 5,
            ..InventoryConfig::default()
        });
        inv.declare("GET", "/a");
        let asked: Vec<bool> = (0..12).map(|_| inv.wants_sample("GET", Some("/a")).is_some()).collect();
        assert_eq!(asked, [true, true, false, false, false, true, false, false, false, false, true, false]);
        assert_eq!(inv.wants_sample("GET", None), None);
        assert_eq!(inv.wants_sample("GET", Some("/undeclared")), None);
    }
}
