// The module's documentation is on `Controls`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Reply;
use crate::controls_api::ControlError;
use crate::identity::Identity;
use crate::limit::canonical_net;
use crate::problem::PROBLEM_TYPE_BASE;

use super::clock::{ObserveClock, duration_micros, from_micros};
use super::incident::Incident;
use super::response::ChallengeResponse;
use super::rule::Action;
use super::store::{domain, key_of};
use super::target::{NetworkPrefix, Target};

const SHARDS: usize = 16;

/// Bounds of the control stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlsConfig {
    /// Most blocks and challenges held. Default 100 000.
    pub max_blocks: usize,
    /// Most revoked token ids held. Default 100 000.
    pub max_revocations: usize,
}

impl Default for ControlsConfig {
    fn default() -> Self {
        ControlsConfig { max_blocks: 100_000, max_revocations: 100_000 }
    }
}

/// What a block does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// Refuse with `403` and the problem type `urn:zt:problem:blocked`.
    Deny,
    /// Answer with the challenge until it is cleared (the application calls
    /// [`Controls::unblock`] once the caller passed it) or expires.
    Challenge(ChallengeResponse),
}

/// A temporary block (or challenge) in force.
#[derive(Debug)]
pub struct Block {
    /// Whom it applies to.
    pub target: Target,
    /// Deny or challenge.
    pub kind: BlockKind,
    /// Why: the rule slug for automatic blocks, the operator's text for manual ones.
    pub reason: String,
    /// Set by the observer (true) or an operator (false).
    pub automatic: bool,
    /// When it was put in place.
    pub created_at: SystemTime,
    /// When it lapses.
    pub expires_at: SystemTime,
    pub(crate) expires_us: u64,
    pub(crate) incident: Option<Arc<Incident>>,
    pub(crate) enforced: AtomicBool,
}

/// The problem `type` of a request refused by a block.
pub const BLOCKED_PROBLEM_TYPE: &str = "urn:zt:problem:blocked";

impl Block {
    /// `blocked` or `challenged`: the reason slug the Guard records for a request this
    /// block refused.
    pub fn slug(&self) -> &'static str {
        match self.kind {
            BlockKind::Deny => "blocked",
            BlockKind::Challenge(_) => "challenged",
        }
    }

    /// Whole seconds until it lapses (at least 1, for `Retry-After`).
    pub fn retry_after_secs(&self, now: SystemTime) -> u64 {
        let left = self.expires_at.duration_since(now).unwrap_or_default();
        (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
    }

    /// The response for a refused request: the challenge as given, or `403` with an
    /// `application/problem+json` body (RFC 9457, type [`BLOCKED_PROBLEM_TYPE`]), the
    /// request id and `Retry-After`. Names no rule, subject or address.
    pub fn response(&self, request_id: &str, now: SystemTime) -> Reply {
        if let BlockKind::Challenge(challenge) = &self.kind {
            // Reply header names are static: keep only the ones a challenge
            // plausibly needs; others are dropped rather than leaked into a static str.
            let mut headers =
                vec![("cache-control", "no-store".to_string()), ("x-request-id", request_id.to_string())];
            for (name, value) in &challenge.headers {
                if let Some(known) = CHALLENGE_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(name)) {
                    headers.push((known, value.clone()));
                }
            }
            return Reply { status: challenge.status, headers, body: challenge.body.clone() };
        }
        let retry = self.retry_after_secs(now);
        let body = serde_json::json!({
            "type": BLOCKED_PROBLEM_TYPE,
            "title": "Temporarily blocked",
            "status": 403,
            "detail": "Requests from this client are temporarily refused; retry after the time given in Retry-After.",
            "request_id": request_id,
        })
        .to_string();
        Reply {
            status: 403,
            headers: vec![
                ("content-type", "application/problem+json".to_string()),
                ("cache-control", "no-store".to_string()),
                ("x-request-id", request_id.to_string()),
                ("retry-after", retry.to_string()),
            ],
            body,
        }
    }
}

/// Inserts or updates `key` in a bounded store: a full shard first drops lapsed entries
/// (`live` false); still full, the write fails rather than forget a live revocation.
fn bounded_insert<V>(
    store: &Sharded<V>,
    key: u64,
    _now: u64,
    live: impl Fn(&V) -> bool,
    update: impl FnOnce(Option<&V>) -> V,
) -> Result<(), RevokeError> {
    let cap = store.per_shard;
    store
        .write(key, |map| {
            if !map.contains_key(&key) && map.len() >= cap {
                map.retain(|_, v| live(v));
                if map.len() >= cap {
                    return Err(RevokeError::Full);
                }
            }
            let value = update(map.get(&key));
            map.insert(key, value);
            Ok(())
        })
        .unwrap_or(Err(RevokeError::Full))
}

/// The event for an operator's block (automatic ones are reported with their anomaly).
fn manual_block_event(block: &Block, duration: Duration) {
    use super::event::SecurityEvent;
    use super::kinds::{EventCategory, EventKind, EventOutcome, EventType, severity};
    if !SecurityEvent::enabled(EventKind::Alert) {
        return;
    }
    let mut event = SecurityEvent::standalone(
        EventKind::Alert,
        EventCategory::IntrusionDetection,
        EventType::Change,
        "block",
        "block put in place by an operator",
    );
    event.outcome = EventOutcome::Success;
    event.severity = severity::MEDIUM;
    event.zt_action = Some(Action::Block);
    event.enforced = Some(true);
    let target = block.target.to_string();
    event.target = Some(&target);
    event.duration_secs = Some(duration.as_secs());
    match &block.target {
        Target::Subject(s) | Target::Principal(s) => event.user_id = Some(s),
        Target::Address(ip) => event.client_ip = Some(*ip),
        Target::Client(_) | Target::Network(_) => {}
    }
    event.emit();
}

/// Header names a challenge response may set.
const CHALLENGE_HEADERS: &[&str] =
    &["content-type", "location", "www-authenticate", "retry-after", "set-cookie", "content-security-policy"];

/// The response for a revoked token: 401 `invalid_token` (RFC 6750) with the problem type
/// `urn:zt:problem:token-revoked`.
pub fn revoked_response(realm: &str, request_id: &str) -> Reply {
    let detail = "The access token has been revoked.";
    let realm: String = realm.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect();
    let body = serde_json::json!({
        "type": format!("{PROBLEM_TYPE_BASE}token-revoked"),
        "title": "Invalid access token",
        "status": 401,
        "detail": detail,
        "request_id": request_id,
    })
    .to_string();
    Reply {
        status: 401,
        headers: vec![
            ("content-type", "application/problem+json".to_string()),
            ("cache-control", "no-store".to_string()),
            ("x-request-id", request_id.to_string()),
            (
                "www-authenticate",
                format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{detail}\""),
            ),
        ],
        body,
    }
}

/// Why a revocation was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// The store is full of revocations of tokens that are still valid.
    #[error("the revocation list is full of unexpired revocations")]
    Full,
}

struct Sharded<V> {
    shards: Box<[RwLock<HashMap<u64, V>>]>,
    per_shard: usize,
    len: AtomicUsize,
}

impl<V> Sharded<V> {
    fn new(capacity: usize) -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: u64) -> Option<&RwLock<HashMap<u64, V>>> {
        self.shards.get(Self::index(key))
    }

    fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    fn read<T>(&self, key: u64, f: impl FnOnce(&V) -> T) -> Option<T> {
        let shard = self.shard(key)?;
        let map = shard.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&key).map(f)
    }

    fn write<T>(&self, key: u64, f: impl FnOnce(&mut HashMap<u64, V>) -> T) -> Option<T> {
        let shard = self.shard(key)?;
        let mut map = shard.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = map.len();
        let out = f(&mut map);
        let after = map.len();
        if after > before {
            self.len.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.len.fetch_sub(before - after, Ordering::Relaxed);
        }
        Some(out)
    }

    fn retain(&self, mut keep: impl FnMut(&V) -> bool) {
        for shard in self.shards.iter() {
            let mut map = shard.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = map.len();
            map.retain(|_, v| keep(v));
            self.len.fetch_sub(before - map.len(), Ordering::Relaxed);
        }
    }

    fn values(&self) -> Vec<V>
    where
        V: Clone,
    {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            out.extend(map.values().cloned());
        }
        out
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Replaces every shard's map with the one built for it (`fresh[i]` for shard `i`),
    /// each swap under that shard's write lock: a reader sees the old map or the new one,
    /// never an empty one in between.
    #[cfg(feature = "redis")]
    fn replace(&self, fresh: Vec<HashMap<u64, V>>) {
        for (shard, map) in self.shards.iter().zip(fresh) {
            let mut held = shard.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = held.len();
            let after = map.len();
            *held = map;
            if after > before {
                self.len.fetch_add(after - before, Ordering::Relaxed);
            } else {
                self.len.fetch_sub(before - after, Ordering::Relaxed);
            }
        }
    }

    /// The shard index of a key, for building maps to [`Sharded::replace`] with.
    fn index(key: u64) -> usize {
        (key as usize) % SHARDS
    }
}

/// Blocks, challenges and revocations, queried by the Guard on the hot path.
///
/// Runtime controls: temporary blocks and challenges by subject, address or network, and
/// token revocation by `jti`.
///
/// The Guard asks on every request, so reads are cheap: an atomic "anything at all?" check
/// first (nothing is the common case), then one read lock of one of 16 shards per key. Writes
/// (blocking, revoking) are rare and take one shard's write lock.
///
/// Everything expires. Blocks last their duration; revocations last until the token's own
/// `exp` plus the verification leeway ([`Controls::set_revocation_leeway`]: a token is
/// accepted that long after its `exp`, so its revocation must last as long). Both stores
/// are bounded:
/// - blocks: [`ControlsConfig::max_blocks`] (default 100 000). A full shard first drops
///   expired entries, then the block that would expire soonest.
/// - revocations: [`ControlsConfig::max_revocations`] (default 100 000). A full shard drops
///   expired entries; if it is still full, [`Controls::revoke`] fails rather than forget a
///   revocation whose token is still valid (the caller then knows to rotate keys instead).
///
/// With a `[fleet]` (the `redis` feature), this is the replica's copy of the fleet's
/// controls: every write also goes to the shared store (the `*_confirmed` methods wait for
/// its acknowledgement; the others, used by detection, write in the background) and changes
/// made on other replicas are applied as they are pushed. Checks stay local either way.
///
/// ```
/// use std::time::Duration;
/// use zt_core::observe::{Controls, ControlsConfig, NetworkPrefix, ObserveClock};
///
/// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), ObserveClock::system());
/// controls.block_subject("mallory", Duration::from_secs(600), "manual");
/// assert!(controls.is_blocked(Some("mallory"), None).is_some());
/// assert!(controls.is_blocked(Some("alice"), None).is_none());
/// ```
pub struct Controls {
    local: Arc<LocalCopy>,
    /// The fleet's copy of the controls, once attached (`fleet::controls`).
    #[cfg(feature = "redis")]
    shared: std::sync::OnceLock<Arc<crate::fleet::controls::SharedControls>>,
}

/// The stores themselves: what the checks read. Shared (by `Arc`) with the fleet's sync
/// task, which applies changes from other replicas to it.
pub(crate) struct LocalCopy {
    blocks: Sharded<Arc<Block>>,
    revoked: Sharded<Revocation>,
    /// Revoked sessions (the tokens' `sid`) and subjects whose tokens issued before a time
    /// are revoked: what Shared Signals events become (see [`crate::signals`]).
    signals: SignalRevocations,
    prefix: NetworkPrefix,
    wide: WideNetworks,
    clock: ObserveClock,
    /// Added to a token's `exp` for its revocation's end (microseconds).
    leeway_us: AtomicU64,
}

/// The revocations Shared Signals events make beyond single tokens: whole sessions (by the
/// tokens' `sid` claim) and every token of a subject issued before a time. Checked like
/// `jti` revocations: an atomic emptiness test first, then one shard read lock.
struct SignalRevocations {
    /// `sid` -> (the `sid`, until when in microseconds). The text is kept so the copy can
    /// seed an emptied shared store.
    sessions: Sharded<(Arc<str>, u64)>,
    /// Subject -> (the subject, tokens issued before this many seconds since the epoch are
    /// revoked, until when in microseconds).
    before: Sharded<(Arc<str>, u64, u64)>,
}

/// A session or issued-before revocation as the shared store holds it (see
/// `fleet::controls`).
#[cfg(feature = "redis")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignalRevocation {
    /// Tokens with this `sid`, until `until_us`.
    Session {
        /// The session id.
        sid: Arc<str>,
        /// Until when, microseconds.
        until_us: u64,
    },
    /// Tokens of `subject` issued before `before_s`, until `until_us`.
    IssuedBefore {
        /// The subject.
        subject: Arc<str>,
        /// Seconds since the epoch.
        before_s: u64,
        /// Until when, microseconds.
        until_us: u64,
    },
}

/// Where a signal revocation's hashed key lives (outside `store::domain`'s values).
const SESSION_DOMAIN: u8 = 64;
const BEFORE_DOMAIN: u8 = 65;

/// One revoked token: until when, and its `jti` (kept so the copy can seed an emptied
/// shared store).
#[derive(Debug, Clone)]
struct Revocation {
    until_us: u64,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    jti: Arc<str>,
}
/// The prefix lengths of network blocks wider than the configured [`NetworkPrefix`] (an
/// operator's `10.0.0.0/8` when networks are /24): bit `n` is set once a block of length
/// `n` was stored. A lookup tries the configured width, then each width set here, so wide
/// blocks cost one more shard read per width in use, and nothing while there are none.
/// Bits are never cleared (clearing on unblock or sweep would race with a concurrent
/// block of the same width); a width no longer in use costs its lookup until restart.
#[derive(Default)]
struct WideNetworks {
    /// IPv4 lengths 0..=31.
    v4: AtomicU64,
    /// IPv6 lengths 0..=127, 64 per word.
    v6: [AtomicU64; 2],
}

impl WideNetworks {
    fn note(&self, net: &IpNet) {
        let len = usize::from(net.prefix_len());
        let word = match net {
            IpNet::V4(_) => &self.v4,
            IpNet::V6(_) => match self.v6.get(len / 64) {
                Some(word) => word,
                None => return,
            },
        };
        word.fetch_or(1 << (len % 64), Ordering::Relaxed);
    }

    /// The first of `find`'s answers for the networks of these widths around `ip` (a
    /// canonical address: IPv4-mapped IPv6 already made IPv4), narrowest first.
    fn find<T>(&self, ip: IpAddr, mut find: impl FnMut(IpNet) -> Option<T>) -> Option<T> {
        let words = match ip {
            IpAddr::V4(_) => [0, self.v4.load(Ordering::Relaxed)],
            IpAddr::V6(_) => [self.v6[1].load(Ordering::Relaxed), self.v6[0].load(Ordering::Relaxed)],
        };
        // Words high to low, bits high to low: the longest (narrowest) prefix first.
        for (word, base) in words.into_iter().zip([64u32, 0]) {
            let mut bits = word;
            while bits != 0 {
                let bit = 63 - bits.leading_zeros();
                bits &= !(1u64 << bit);
                let Ok(len) = u8::try_from(base + bit) else { continue };
                if let Some(found) = IpNet::new(ip, len).ok().and_then(|net| find(net.trunc())) {
                    return Some(found);
                }
            }
        }
        None
    }
}

impl std::fmt::Debug for Controls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controls")
            .field("blocks", &self.local.blocks.len())
            .field("revoked", &self.local.revoked.len())
            .finish_non_exhaustive()
    }
}

impl Controls {
    /// Empty stores with these bounds.
    pub fn new(config: &ControlsConfig, prefix: NetworkPrefix, clock: ObserveClock) -> Controls {
        Controls {
            local: Arc::new(LocalCopy {
                blocks: Sharded::new(config.max_blocks),
                revoked: Sharded::new(config.max_revocations),
                signals: SignalRevocations {
                    sessions: Sharded::new(config.max_revocations),
                    before: Sharded::new(config.max_revocations),
                },
                prefix,
                wide: WideNetworks::default(),
                clock,
                leeway_us: AtomicU64::new(0),
            }),
            #[cfg(feature = "redis")]
            shared: std::sync::OnceLock::new(),
        }
    }

    /// How long after a token's `exp` its revocation still holds: the verification leeway
    /// (the Guard sets the largest of its issuers' leeways; default 0). Applies to
    /// revocations made from now on.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use zt_core::observe::{Controls, ControlsConfig, ManualClock, NetworkPrefix};
    ///
    /// let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    /// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), clock.clock());
    /// controls.set_revocation_leeway(Duration::from_secs(60));
    /// controls.revoke("jti-1", clock.now() + Duration::from_secs(10)).unwrap();
    /// clock.advance(Duration::from_secs(30)); // expired, but still accepted within the leeway
    /// assert!(controls.is_revoked("jti-1"));
    /// clock.advance(Duration::from_secs(60));
    /// assert!(!controls.is_revoked("jti-1"));
    /// ```
    pub fn set_revocation_leeway(&self, leeway: Duration) {
        self.local.leeway_us.store(duration_micros(leeway), Ordering::Relaxed);
    }

    /// The stores, for the fleet's sync task.
    #[cfg(feature = "redis")]
    pub(crate) fn local(&self) -> &Arc<LocalCopy> {
        &self.local
    }

    /// The same stores without the fleet link: what the sync task applies changes through
    /// (so a change from elsewhere is never written back).
    #[cfg(feature = "redis")]
    pub(crate) fn detached(&self) -> Controls {
        Controls { local: self.local.clone(), shared: std::sync::OnceLock::new() }
    }

    /// Routes every write through the fleet from now on (once; a second call is ignored).
    #[cfg(feature = "redis")]
    pub(crate) fn attach(&self, shared: Arc<crate::fleet::controls::SharedControls>) {
        let _ = self.shared.set(shared);
    }

    /// The block in force for this subject, this address, or a network it is in (in that
    /// order), if any. Lock-free when nothing is blocked; otherwise up to three shard read
    /// locks, plus one per width of the network blocks wider than the configured
    /// [`NetworkPrefix`]. The address is read as clients are keyed: `::ffff:192.0.2.1` is
    /// `192.0.2.1`.
    pub fn is_blocked(&self, subject: Option<&str>, ip: Option<IpAddr>) -> Option<Arc<Block>> {
        self.local.is_blocked(subject, ip)
    }

    /// The block in force for this caller, if any: its principal, its bare subject, its
    /// client id, its address, then its address's network (in that order; the first found
    /// wins). Lock-free when nothing is blocked; otherwise one shard read lock per name the
    /// caller has (at most five).
    ///
    /// ```
    /// use std::time::Duration;
    /// use zt_core::observe::{Controls, ControlsConfig, NetworkPrefix, ObserveClock, Target};
    ///
    /// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), ObserveClock::system());
    /// controls.block_target(Target::Client("scraper-app".into()), Duration::from_secs(600), "abuse");
    /// // Anonymous callers are checked by address and network only.
    /// assert!(controls.is_caller_blocked(None, Some("192.0.2.1".parse().unwrap())).is_none());
    /// ```
    pub fn is_caller_blocked(&self, caller: Option<&Identity>, ip: Option<IpAddr>) -> Option<Arc<Block>> {
        self.local.is_caller_blocked(caller, ip)
    }

    /// Whether any token is revoked now (expired revocations may still count until the
    /// next maintenance). Lets the Guard skip reading the `jti` claim when none is.
    pub fn has_revocations(&self) -> bool {
        !self.local.revoked.is_empty()
    }

    /// True when the token id was revoked and the revocation has not lapsed yet (the
    /// token's `exp` plus the leeway).
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.local.is_revoked(jti)
    }

    /// Revokes a token by `jti` until `exp` (the token's own expiry) plus the leeway. With a
    /// fleet, the revocation is also written to the shared store in the background (a
    /// failed write is retried at each resync: see `fleet::controls`).
    pub fn revoke(&self, jti: &str, exp: SystemTime) -> Result<(), RevokeError> {
        let until_us = self.local.revocation_end(exp);
        if self.local.revoke_until(jti, until_us)? {
            #[cfg(feature = "redis")]
            if let Some(shared) = self.shared.get() {
                shared.spawn(crate::fleet::controls::Op::revoke(jti, until_us));
            }
        }
        Ok(())
    }

    /// [`Controls::revoke`], returning once the fleet's shared store acknowledged it (at
    /// once without a fleet). On an error nothing changed: neither the store nor this copy.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use futures_util::FutureExt;
    /// use zt_core::observe::{Controls, ControlsConfig, NetworkPrefix, ObserveClock};
    ///
    /// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), ObserveClock::system());
    /// let exp = SystemTime::now() + Duration::from_secs(300);
    /// // Without a fleet the future is ready at once.
    /// controls.revoke_confirmed("jti-1", exp).now_or_never().unwrap().unwrap();
    /// assert!(controls.is_revoked("jti-1"));
    /// ```
    pub async fn revoke_confirmed(&self, jti: &str, exp: SystemTime) -> Result<(), ControlError> {
        let until_us = self.local.revocation_end(exp);
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared.get() {
            if until_us <= self.local.clock.now_micros() {
                return Ok(()); // Already lapsed: the Guard refuses the token anyway.
            }
            if self.local.revocations_full_for(jti) {
                return Err(ControlError::RevocationsFull);
            }
            shared.confirm(crate::fleet::controls::Op::revoke(jti, until_us)).await?;
            return self
                .local
                .revoke_until(jti, until_us)
                .map(drop)
                .map_err(|_| ControlError::RevocationsFull);
        }
        self.local.revoke_until(jti, until_us).map(drop).map_err(|_| ControlError::RevocationsFull)
    }

    /// Revoked token ids held now (expired ones until the next [`Controls::sweep`]).
    pub fn revocations(&self) -> usize {
        self.local.revoked.len()
    }

    /// Blocks a subject for `duration`.
    pub fn block_subject(&self, subject: &str, duration: Duration, reason: &str) -> Arc<Block> {
        self.block(Target::Subject(subject.to_string()), BlockKind::Deny, duration, reason, false, None)
    }

    /// Blocks one address for `duration`.
    pub fn block_address(&self, ip: IpAddr, duration: Duration, reason: &str) -> Arc<Block> {
        self.block(Target::Address(ip), BlockKind::Deny, duration, reason, false, None)
    }

    /// Blocks the network ([`NetworkPrefix`] wide) containing `ip` for `duration`.
    pub fn block_network(&self, ip: IpAddr, duration: Duration, reason: &str) -> Arc<Block> {
        let net = self.local.prefix.network_of(ip);
        self.block(Target::Network(net), BlockKind::Deny, duration, reason, false, None)
    }

    /// Blocks `target` for `duration` (an operator's block: `automatic` is false).
    ///
    /// Addresses and networks are stored as client addresses are keyed, whatever the
    /// spelling: an IPv4-mapped IPv6 address is its IPv4 address (`::ffff:192.0.2.7` is
    /// `192.0.2.7`, `::ffff:10.0.0.0/104` is `10.0.0.0/8`), and a network loses its host
    /// bits. A network narrower than the configured [`NetworkPrefix`] (a single address
    /// among them) is widened to it; a wider one (`10.0.0.0/8`) is kept as it is. The
    /// block returned names the target as stored.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zt_core::observe::{Controls, ControlsConfig, NetworkPrefix, ObserveClock, Target};
    ///
    /// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), ObserveClock::system());
    /// let mapped = Target::Address("::ffff:192.0.2.7".parse().unwrap());
    /// let block = controls.block_target(mapped, Duration::from_secs(600), "abuse");
    /// assert_eq!(block.target.to_string(), "address:192.0.2.7");
    /// assert!(controls.is_blocked(None, Some("192.0.2.7".parse().unwrap())).is_some());
    ///
    /// let wide = Target::Network("::ffff:10.1.2.3/104".parse().unwrap());
    /// let block = controls.block_target(wide, Duration::from_secs(600), "abuse");
    /// assert_eq!(block.target.to_string(), "network:10.0.0.0/8");
    /// assert!(controls.is_blocked(None, Some("10.200.0.1".parse().unwrap())).is_some());
    /// ```
    pub fn block_target(&self, target: Target, duration: Duration, reason: &str) -> Arc<Block> {
        self.block(target, BlockKind::Deny, duration, reason, false, None)
    }

    /// [`Controls::block_target`], returning once the fleet's shared store acknowledged the
    /// block (at once without a fleet). On an error nothing changed: neither the store nor
    /// this copy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::FutureExt;
    /// use zt_core::observe::{Controls, ControlsConfig, NetworkPrefix, ObserveClock, Target};
    ///
    /// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), ObserveClock::system());
    /// let block = controls
    ///     .block_target_confirmed(Target::Subject("mallory".into()), Duration::from_secs(60), "abuse")
    ///     .now_or_never()
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(block.target.to_string(), "subject:mallory");
    /// ```
    pub async fn block_target_confirmed(
        &self,
        target: Target,
        duration: Duration,
        reason: &str,
    ) -> Result<Arc<Block>, ControlError> {
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared.get() {
            let block = self.local.new_block(target, BlockKind::Deny, duration, reason, false, None);
            shared.confirm(crate::fleet::controls::Op::block(&block)).await?;
            self.local.insert_block(block.clone());
            manual_block_event(&block, duration);
            return Ok(block);
        }
        Ok(self.block_target(target, duration, reason))
    }

    /// Puts a block or challenge in place (replacing one for the same target): at once in
    /// this copy, and in the background in the fleet's shared store when there is one.
    pub(crate) fn block(
        &self,
        target: Target,
        kind: BlockKind,
        duration: Duration,
        reason: &str,
        automatic: bool,
        incident: Option<Arc<Incident>>,
    ) -> Arc<Block> {
        let block = self.local.new_block(target, kind, duration, reason, automatic, incident);
        self.local.insert_block(block.clone());
        if !automatic {
            manual_block_event(&block, duration);
        }
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared.get() {
            shared.spawn(crate::fleet::controls::Op::block(&block));
        }
        block
    }

    /// Lifts the block or challenge on a target; true when there was one.
    ///
    /// The target is read as [`Controls::block_target`] stores it (any spelling of the
    /// address or network lifts its block).
    pub fn unblock(&self, target: &Target) -> bool {
        let target = self.local.canonical(target.clone());
        let removed = self.local.remove_block(&target);
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared.get() {
            shared.spawn(crate::fleet::controls::Op::unblock(&target));
        }
        removed
    }

    /// [`Controls::unblock`], returning once the fleet's shared store acknowledged it (at
    /// once without a fleet); true when the store or this copy held a block. On an error
    /// nothing changed.
    pub async fn unblock_confirmed(&self, target: &Target) -> Result<bool, ControlError> {
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared.get() {
            let target = self.local.canonical(target.clone());
            let stored = shared.confirm(crate::fleet::controls::Op::unblock(&target)).await?;
            let held = self.local.remove_block(&target);
            return Ok(stored || held);
        }
        Ok(self.unblock(target))
    }

    /// Drops expired blocks and revocations and refreshes `zt_active_blocks`. Reads
    /// already ignore expired entries; call this periodically (e.g. every 10 s, via
    /// [`Observer::maintenance`](super::Observer::maintenance)) so memory and the gauge
    /// follow. Costs a walk over both stores.
    pub fn sweep(&self) {
        let now = self.local.clock.now_micros();
        self.local.blocks.retain(|b| b.expires_us > now);
        self.local.revoked.retain(|r| r.until_us > now);
        self.local.signals.sessions.retain(|(_, until)| *until > now);
        self.local.signals.before.retain(|(_, _, until)| *until > now);
        self.local.publish_gauge();
    }

    /// Revokes every token carrying this session id (`sid` claim) until `until` (the
    /// longest lifetime a token of the session can have left). With a fleet it is also
    /// written to the shared store in the background (retried at each resync until it
    /// lands), so every replica holds it, also one started later.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use zt_core::observe::{Controls, ControlsConfig, NetworkPrefix, ObserveClock};
    ///
    /// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), ObserveClock::system());
    /// controls.revoke_session("s-1", SystemTime::now() + Duration::from_secs(3600)).unwrap();
    /// assert!(controls.is_session_revoked("s-1"));
    /// assert!(!controls.is_session_revoked("s-2"));
    /// ```
    pub fn revoke_session(&self, sid: &str, until: SystemTime) -> Result<(), RevokeError> {
        let until_us = super::clock::to_micros(until);
        if self.local.revoke_session_until(sid, until_us)? {
            #[cfg(feature = "redis")]
            if let Some(shared) = self.shared.get() {
                shared.spawn(crate::fleet::controls::Op::revoke_session(sid, until_us));
            }
        }
        Ok(())
    }

    /// Revokes every token of `subject` issued before `before` (its `iat`), holding the
    /// rule until `until` (after which no such token can still be valid). A later `before`
    /// already held wins. With a fleet it is written to the shared store in the background,
    /// like [`Controls::revoke_session`].
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use zt_core::observe::{Controls, ControlsConfig, NetworkPrefix, ObserveClock};
    ///
    /// let controls = Controls::new(&ControlsConfig::default(), NetworkPrefix::default(), ObserveClock::system());
    /// let changed = SystemTime::now();
    /// controls.revoke_issued_before("alice", changed, changed + Duration::from_secs(86_400)).unwrap();
    /// assert!(controls.is_issued_before_revoked("alice", changed - Duration::from_secs(1)));
    /// assert!(!controls.is_issued_before_revoked("alice", changed + Duration::from_secs(1)));
    /// ```
    pub fn revoke_issued_before(
        &self,
        subject: &str,
        before: SystemTime,
        until: SystemTime,
    ) -> Result<(), RevokeError> {
        let until_us = super::clock::to_micros(until);
        let before_s = super::clock::to_micros(before) / 1_000_000;
        if self.local.revoke_before_until(subject, before_s, until_us)? {
            #[cfg(feature = "redis")]
            if let Some(shared) = self.shared.get() {
                shared.spawn(crate::fleet::controls::Op::revoke_before(subject, before_s, until_us));
            }
        }
        Ok(())
    }

    /// [`Controls::revoke_session`], returning once the fleet's shared store acknowledged
    /// it (at once without a fleet). On an error nothing changed: neither the store nor
    /// this copy.
    pub async fn revoke_session_confirmed(&self, sid: &str, until: SystemTime) -> Result<(), ControlError> {
        let until_us = super::clock::to_micros(until);
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared.get() {
            if until_us <= self.local.clock.now_micros() {
                return Ok(());
            }
            shared.confirm(crate::fleet::controls::Op::revoke_session(sid, until_us)).await?;
        }
        self.local.revoke_session_until(sid, until_us).map(drop).map_err(|_| ControlError::RevocationsFull)
    }

    /// [`Controls::revoke_issued_before`], returning once the fleet's shared store
    /// acknowledged it (at once without a fleet). On an error nothing changed.
    pub async fn revoke_issued_before_confirmed(
        &self,
        subject: &str,
        before: SystemTime,
        until: SystemTime,
    ) -> Result<(), ControlError> {
        let until_us = super::clock::to_micros(until);
        let before_s = super::clock::to_micros(before) / 1_000_000;
        #[cfg(feature = "redis")]
        if let Some(shared) = self.shared.get() {
            if until_us <= self.local.clock.now_micros() {
                return Ok(());
            }
            shared.confirm(crate::fleet::controls::Op::revoke_before(subject, before_s, until_us)).await?;
        }
        self.local
            .revoke_before_until(subject, before_s, until_us)
            .map(drop)
            .map_err(|_| ControlError::RevocationsFull)
    }

    /// True while tokens with this `sid` are revoked.
    pub fn is_session_revoked(&self, sid: &str) -> bool {
        let sessions = &self.local.signals.sessions;
        if sessions.is_empty() {
            return false;
        }
        let now = self.local.clock.now_micros();
        sessions.read(key_of(SESSION_DOMAIN, sid), |(_, until)| *until > now).unwrap_or(false)
    }

    /// True while a token of `subject` issued at `issued_at` is revoked by
    /// [`Controls::revoke_issued_before`]. Whole seconds, as `iat` is: a token issued in the
    /// same second as the event is still accepted (the transmitter's new credential may
    /// mint it in that second).
    pub fn is_issued_before_revoked(&self, subject: &str, issued_at: SystemTime) -> bool {
        let before = &self.local.signals.before;
        if before.is_empty() {
            return false;
        }
        let now = self.local.clock.now_micros();
        let iat_s = super::clock::to_micros(issued_at) / 1_000_000;
        before
            .read(key_of(BEFORE_DOMAIN, subject), |(_, b, until)| *until > now && iat_s < *b)
            .unwrap_or(false)
    }

    /// True when the caller's token is revoked by a session or issued-before revocation: its
    /// `sid`, or its subject with its `iat` (a token without `iat` counts as issued before
    /// any such revocation: nothing shows it is newer). Lock-free when there are none.
    pub fn is_identity_revoked(&self, identity: &Identity) -> bool {
        let signals = &self.local.signals;
        if signals.sessions.is_empty() && signals.before.is_empty() {
            return false;
        }
        if let Some(sid) = identity.session_id()
            && self.is_session_revoked(sid)
        {
            return true;
        }
        match identity.subject() {
            Some(subject) => {
                self.is_issued_before_revoked(subject, identity.issued_at().unwrap_or(SystemTime::UNIX_EPOCH))
            }
            None => false,
        }
    }

    /// Blocks and challenges held now (expired ones until the next sweep).
    pub fn active_blocks(&self) -> usize {
        self.local.blocks.len()
    }

    /// A copy of the blocks in force, for an admin view.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.local.live_blocks()
    }
}

impl LocalCopy {
    #[cfg(feature = "redis")]
    pub(crate) fn now_micros(&self) -> u64 {
        self.clock.now_micros()
    }

    /// Most blocks and most revocations held (the configured bounds, rounded up to whole
    /// shards): the shared store is held to the same bounds.
    #[cfg(feature = "redis")]
    pub(crate) fn capacity(&self) -> (usize, usize) {
        (self.blocks.per_shard * SHARDS, self.revoked.per_shard * SHARDS)
    }

    fn is_blocked(&self, subject: Option<&str>, ip: Option<IpAddr>) -> Option<Arc<Block>> {
        if self.blocks.is_empty() {
            return None;
        }
        let now = self.clock.now_micros();
        let live = |b: &Arc<Block>| (b.expires_us > now).then(|| b.clone());
        // A caller name: a block of it as a principal (the observer's own blocks) or as a
        // bare subject (an operator's).
        if let Some(name) = subject
            && let Some(b) = [domain::PRINCIPAL, domain::SUBJECT]
                .into_iter()
                .find_map(|d| self.blocks.read(key_of(d, name), live).flatten())
        {
            return Some(b);
        }
        self.address_block(ip?, |key| self.blocks.read(key, live).flatten())
    }

    /// A block of this address or of a network it is in: the address, its network of the
    /// configured width, then the wider networks blocked.
    fn address_block(&self, ip: IpAddr, find: impl Fn(u64) -> Option<Arc<Block>>) -> Option<Arc<Block>> {
        let ip = ip.to_canonical();
        if let Some(b) = find(key_of(domain::ADDRESS, &ip)) {
            return Some(b);
        }
        if let Some(b) = find(key_of(domain::NETWORK, &self.prefix.network_of(ip))) {
            return Some(b);
        }
        self.wide.find(ip, |net| find(key_of(domain::NETWORK, &net)))
    }

    fn is_caller_blocked(&self, caller: Option<&Identity>, ip: Option<IpAddr>) -> Option<Arc<Block>> {
        if self.blocks.is_empty() {
            return None;
        }
        let now = self.clock.now_micros();
        let live = |b: &Arc<Block>| (b.expires_us > now).then(|| b.clone());
        let find = |key: u64| self.blocks.read(key, live).flatten();
        if let Some(caller) = caller {
            let principal = caller.principal();
            if !principal.is_empty()
                && let Some(b) = find(key_of(domain::PRINCIPAL, principal))
            {
                return Some(b);
            }
            if let Some(subject) = caller.subject()
                && let Some(b) = find(key_of(domain::SUBJECT, subject))
            {
                return Some(b);
            }
            if let Some(client) = caller.client_id()
                && let Some(b) = find(key_of(domain::CLIENT, client))
            {
                return Some(b);
            }
        }
        self.address_block(ip?, find)
    }

    fn is_revoked(&self, jti: &str) -> bool {
        if self.revoked.is_empty() {
            return false;
        }
        let now = self.clock.now_micros();
        self.revoked.read(key_of(domain::JTI, jti), |r| r.until_us > now).unwrap_or(false)
    }

    /// When a revocation of a token expiring at `exp` lapses: `exp` plus the leeway.
    fn revocation_end(&self, exp: SystemTime) -> u64 {
        super::clock::to_micros(exp).saturating_add(self.leeway_us.load(Ordering::Relaxed))
    }

    /// Whether a new revocation of `jti` would find its shard full of unexpired ones.
    #[cfg(feature = "redis")]
    fn revocations_full_for(&self, jti: &str) -> bool {
        let key = key_of(domain::JTI, jti);
        let now = self.clock.now_micros();
        let cap = self.revoked.per_shard;
        let Some(shard) = self.revoked.shard(key) else { return true };
        let map = shard.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        !map.contains_key(&key) && map.len() >= cap && map.values().all(|r| r.until_us > now)
    }

    /// Revokes the session `sid` until `until_us` (a later end already held wins); false
    /// when that end has passed or nothing changed.
    pub(crate) fn revoke_session_until(&self, sid: &str, until_us: u64) -> Result<bool, RevokeError> {
        let now = self.clock.now_micros();
        if until_us <= now {
            return Ok(false);
        }
        let key = key_of(SESSION_DOMAIN, sid);
        if self.signals.sessions.read(key, |(_, held)| *held >= until_us).unwrap_or(false) {
            return Ok(false);
        }
        bounded_insert(
            &self.signals.sessions,
            key,
            now,
            |(_, until)| *until > now,
            |old| match old {
                Some((held, u)) => (held.clone(), (*u).max(until_us)),
                None => (Arc::from(sid), until_us),
            },
        )?;
        Ok(true)
    }

    /// Revokes `subject`'s tokens issued before `before_s` until `until_us` (the later of
    /// each wins); false when that end has passed or nothing changed.
    pub(crate) fn revoke_before_until(
        &self,
        subject: &str,
        before_s: u64,
        until_us: u64,
    ) -> Result<bool, RevokeError> {
        let now = self.clock.now_micros();
        if until_us <= now {
            return Ok(false);
        }
        let key = key_of(BEFORE_DOMAIN, subject);
        if self.signals.before.read(key, |(_, b, u)| *b >= before_s && *u >= until_us).unwrap_or(false) {
            return Ok(false);
        }
        bounded_insert(
            &self.signals.before,
            key,
            now,
            |(_, _, until)| *until > now,
            |old| match old {
                Some((held, b, u)) => (held.clone(), (*b).max(before_s), (*u).max(until_us)),
                None => (Arc::from(subject), before_s, until_us),
            },
        )?;
        Ok(true)
    }

    /// The session and issued-before revocations in force (to seed an emptied store).
    #[cfg(feature = "redis")]
    pub(crate) fn live_signals(&self) -> Vec<SignalRevocation> {
        let now = self.clock.now_micros();
        let sessions = self
            .signals
            .sessions
            .values()
            .into_iter()
            .filter(|(_, u)| *u > now)
            .map(|(sid, until_us)| SignalRevocation::Session { sid, until_us });
        let before = self.signals.before.values().into_iter().filter(|(_, _, u)| *u > now).map(
            |(subject, before_s, until_us)| SignalRevocation::IssuedBefore { subject, before_s, until_us },
        );
        sessions.chain(before).collect()
    }

    /// Adds the store's session and issued-before revocations to this copy. Merged, not
    /// replaced: none is ever lifted before its end, so the union is the truth (a full
    /// shard keeps what it holds).
    #[cfg(feature = "redis")]
    pub(crate) fn merge_signals(&self, entries: Vec<SignalRevocation>) {
        for entry in entries {
            let _ = match entry {
                SignalRevocation::Session { sid, until_us } => self.revoke_session_until(&sid, until_us),
                SignalRevocation::IssuedBefore { subject, before_s, until_us } => {
                    self.revoke_before_until(&subject, before_s, until_us)
                }
            };
        }
    }

    /// Revokes `jti` until `until_us` (a later end already held wins); false when that end
    /// has passed (nothing to hold).
    pub(crate) fn revoke_until(&self, jti: &str, until_us: u64) -> Result<bool, RevokeError> {
        let now = self.clock.now_micros();
        if until_us <= now {
            return Ok(false); // Already lapsed: the Guard refuses the token anyway.
        }
        let key = key_of(domain::JTI, jti);
        let cap = self.revoked.per_shard;
        self.revoked
            .write(key, |map| {
                if !map.contains_key(&key) && map.len() >= cap {
                    map.retain(|_, r| r.until_us > now);
                    if map.len() >= cap {
                        return Err(RevokeError::Full);
                    }
                }
                let entry = map.entry(key).or_insert_with(|| Revocation { until_us, jti: Arc::from(jti) });
                entry.until_us = entry.until_us.max(until_us);
                Ok(true)
            })
            .unwrap_or(Err(RevokeError::Full))
    }

    /// A block of `target` (made canonical) from now for `duration`, not yet stored.
    fn new_block(
        &self,
        target: Target,
        kind: BlockKind,
        duration: Duration,
        reason: &str,
        automatic: bool,
        incident: Option<Arc<Incident>>,
    ) -> Arc<Block> {
        let now = self.clock.now_micros();
        let expires_us = now.saturating_add(duration_micros(duration));
        self.make_block(target, kind, reason, automatic, now, expires_us, incident)
    }

    /// A block with given times (a change from another replica, or the shared store's copy).
    #[allow(clippy::too_many_arguments)] // One constructor for every field of a block.
    pub(crate) fn make_block(
        &self,
        target: Target,
        kind: BlockKind,
        reason: &str,
        automatic: bool,
        created_us: u64,
        expires_us: u64,
        incident: Option<Arc<Incident>>,
    ) -> Arc<Block> {
        Arc::new(Block {
            target: self.canonical(target),
            kind,
            reason: reason.to_string(),
            automatic,
            created_at: from_micros(created_us),
            expires_at: from_micros(expires_us),
            expires_us,
            incident,
            enforced: AtomicBool::new(false),
        })
    }

    /// Stores a block (replacing one for the same target).
    pub(crate) fn insert_block(&self, block: Arc<Block>) {
        self.note_width(&block.target);
        let now = self.clock.now_micros();
        let key = block.target.key();
        let cap = self.blocks.per_shard;
        self.blocks.write(key, move |map| {
            if !map.contains_key(&key) && map.len() >= cap {
                map.retain(|_, b| b.expires_us > now);
                if map.len() >= cap
                    && let Some(soonest) = map.iter().min_by_key(|(_, b)| b.expires_us).map(|(k, _)| *k)
                {
                    map.remove(&soonest);
                }
            }
            map.insert(key, block);
        });
        self.publish_gauge();
    }

    /// Lifts the block on a canonical target; true when there was one.
    pub(crate) fn remove_block(&self, target: &Target) -> bool {
        let key = target.key();
        let removed = self.blocks.write(key, |map| map.remove(&key).is_some()).unwrap_or(false);
        self.publish_gauge();
        removed
    }

    /// Replaces both stores with these entries (the shared store's copy, with this
    /// replica's unacknowledged changes laid over it), each shard swapped whole. A block
    /// already held with the same end and kind keeps its local state (its incident, whether
    /// it was enforced yet). Expired entries are skipped; a shard over its bound keeps the
    /// entries that last longest.
    #[cfg(feature = "redis")]
    pub(crate) fn replace(&self, blocks: Vec<Arc<Block>>, revocations: Vec<(Arc<str>, u64)>) {
        let now = self.clock.now_micros();
        let mut fresh_blocks: Vec<HashMap<u64, Arc<Block>>> = (0..SHARDS).map(|_| HashMap::new()).collect();
        let mut blocks: Vec<Arc<Block>> = blocks.into_iter().filter(|b| b.expires_us > now).collect();
        // Longest-lasting first, so a full shard drops the soonest to expire.
        blocks.sort_by_key(|b| std::cmp::Reverse(b.expires_us));
        for block in blocks {
            self.note_width(&block.target);
            let key = block.target.key();
            let Some(map) = fresh_blocks.get_mut(Sharded::<Arc<Block>>::index(key)) else { continue };
            if map.len() >= self.blocks.per_shard && !map.contains_key(&key) {
                continue;
            }
            let held = self.blocks.read(key, |b| b.clone()).filter(|held| {
                held.expires_us / 1000 == block.expires_us / 1000
                    && held.kind == block.kind
                    && held.reason == block.reason
            });
            map.insert(key, held.unwrap_or(block));
        }
        let mut fresh_revoked: Vec<HashMap<u64, Revocation>> = (0..SHARDS).map(|_| HashMap::new()).collect();
        let mut revocations: Vec<Revocation> = revocations
            .into_iter()
            .filter(|(_, until_us)| *until_us > now)
            .map(|(jti, until_us)| Revocation { until_us, jti })
            .collect();
        revocations.sort_by_key(|r| std::cmp::Reverse(r.until_us));
        for revocation in revocations {
            let key = key_of(domain::JTI, &*revocation.jti);
            let Some(map) = fresh_revoked.get_mut(Sharded::<Revocation>::index(key)) else { continue };
            let room = map.len() < self.revoked.per_shard;
            match map.get_mut(&key) {
                Some(held) => held.until_us = held.until_us.max(revocation.until_us),
                None if room => {
                    map.insert(key, revocation);
                }
                None => {}
            }
        }
        self.blocks.replace(fresh_blocks);
        self.revoked.replace(fresh_revoked);
        self.publish_gauge();
    }

    /// The blocks in force.
    pub(crate) fn live_blocks(&self) -> Vec<Arc<Block>> {
        let now = self.clock.now_micros();
        self.blocks.values().into_iter().filter(|b| b.expires_us > now).collect()
    }

    /// The revocations in force.
    #[cfg(feature = "redis")]
    pub(crate) fn live_revocations(&self) -> Vec<(Arc<str>, u64)> {
        let now = self.clock.now_micros();
        self.revoked.values().into_iter().filter(|r| r.until_us > now).map(|r| (r.jti, r.until_us)).collect()
    }

    /// Marks the width of a network block wider than the configured prefix, so lookups
    /// try it.
    fn note_width(&self, target: &Target) {
        if let Target::Network(net) = target
            && net.prefix_len() < self.prefix.network_of(net.addr()).prefix_len()
        {
            self.wide.note(net);
        }
    }

    /// `target` as it is stored and looked up: addresses and networks in the form client
    /// addresses are keyed in (see [`Controls::block_target`]), so a block written in
    /// another spelling still matches.
    pub(crate) fn canonical(&self, target: Target) -> Target {
        match target {
            Target::Address(ip) => Target::Address(ip.to_canonical()),
            Target::Network(net) => {
                let net = canonical_net(net).trunc();
                let configured = self.prefix.network_of(net.addr());
                Target::Network(if net.prefix_len() < configured.prefix_len() { net } else { configured })
            }
            other => other,
        }
    }

    fn publish_gauge(&self) {
        metrics::gauge!(super::kpi::ACTIVE_BLOCKS).set(self.blocks.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::ManualClock;
    use std::time::UNIX_EPOCH;

    fn controls(max: usize) -> (Controls, ManualClock) {
        let manual = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let config = ControlsConfig { max_blocks: max, max_revocations: max };
        (Controls::new(&config, NetworkPrefix::default(), manual.clock()), manual)
    }

    #[test]
    fn blocks_expire() {
        crate::observe::tests::quiet(|| {
            let (c, clock) = controls(100);
            c.block_subject("mallory", Duration::from_secs(60), "manual");
            let b = c.is_blocked(Some("mallory"), None).unwrap();
            assert_eq!(b.retry_after_secs(clock.now()), 60);
            assert_eq!(b.slug(), "blocked");
            clock.advance(Duration::from_secs(61));
            assert!(c.is_blocked(Some("mallory"), None).is_none());
            assert_eq!(c.active_blocks(), 1);
            c.sweep();
            assert_eq!(c.active_blocks(), 0);
        })
    }

    #[test]
    fn address_and_network_blocks() {
        crate::observe::tests::quiet(|| {
            let (c, _) = controls(100);
            c.block_address("198.51.100.7".parse().unwrap(), Duration::from_secs(60), "manual");
            assert!(c.is_blocked(None, Some("198.51.100.7".parse().unwrap())).is_some());
            assert!(c.is_blocked(None, Some("198.51.100.8".parse().unwrap())).is_none());
            c.block_network("203.0.113.77".parse().unwrap(), Duration::from_secs(60), "manual");
            let b = c.is_blocked(Some("anyone"), Some("203.0.113.1".parse().unwrap())).unwrap();
            assert_eq!(b.target.to_string(), "network:203.0.113.0/24");
            assert!(c.is_blocked(None, Some("::ffff:203.0.113.9".parse().unwrap())).is_some(), "mapped v4");
            c.block_network("2001:db8:1:2::5".parse().unwrap(), Duration::from_secs(60), "manual");
            assert!(c.is_blocked(None, Some("2001:db8:1:2:ffff::1".parse().unwrap())).is_some());
            assert!(c.is_blocked(None, Some("2001:db8:1:3::1".parse().unwrap())).is_none());
            assert!(c.unblock(&Target::Network("203.0.113.200/24".parse().unwrap())));
            assert!(c.is_blocked(None, Some("203.0.113.1".parse().unwrap())).is_none());

            // Other spellings of an address or a network are the canonical ones.
            let b = c.block_address("::ffff:192.0.2.7".parse().unwrap(), Duration::from_secs(60), "m");
            assert_eq!(b.target, Target::Address("192.0.2.7".parse().unwrap()));
            assert!(c.is_blocked(None, Some("192.0.2.7".parse().unwrap())).is_some());
            assert!(c.is_caller_blocked(None, Some("::ffff:192.0.2.7".parse().unwrap())).is_some());
            assert!(c.unblock(&Target::Address("192.0.2.7".parse().unwrap())));
            // Wider than the configured /24 and /64: kept, and found for any address in it.
            for (net, inside, outside, stored) in [
                ("::ffff:10.1.2.3/104", "10.200.0.1", "11.0.0.1", "10.0.0.0/8"),
                ("0.0.0.0/0", "192.0.2.1", "2001:db8::1", "0.0.0.0/0"),
                ("2001:db8:ff00::1/40", "2001:db8:ff12::9", "2001:db8:1::1", "2001:db8:ff00::/40"),
            ] {
                let b = c.block_target(Target::Network(net.parse().unwrap()), Duration::from_secs(60), "m");
                assert_eq!(b.target.to_string(), format!("network:{stored}"));
                assert!(c.is_blocked(None, Some(inside.parse().unwrap())).is_some(), "{net} {inside}");
                assert!(c.is_blocked(None, Some(outside.parse().unwrap())).is_none(), "{net} {outside}");
                assert!(c.unblock(&Target::Network(net.parse().unwrap())), "{net}");
                assert!(c.is_blocked(None, Some(inside.parse().unwrap())).is_none(), "{net} lifted");
            }
            // Narrower than the configured width: widened to it.
            let b = c.block_target(
                Target::Network("192.0.2.9/30".parse().unwrap()),
                Duration::from_secs(60),
                "m",
            );
            assert_eq!(b.target.to_string(), "network:192.0.2.0/24");
        })
    }

    fn identity(claims: serde_json::Value) -> Identity {
        let serde_json::Value::Object(claims) = claims else { unreachable!("an object") };
        Identity::from_jwt_claims("https://issuer.test", claims)
    }

    #[test]
    fn caller_blocks_by_principal_subject_client_address_and_network() {
        crate::observe::tests::quiet(|| {
            let (c, _) = controls(100);
            let alice = identity(serde_json::json!({"sub": "alice", "client_id": "web"}));
            let bob = identity(serde_json::json!({"sub": "bob", "client_id": "cli"}));
            let service = identity(serde_json::json!({"client_id": "batch"}));
            let ip: IpAddr = "198.51.100.7".parse().unwrap();
            assert!(c.is_caller_blocked(Some(&alice), Some(ip)).is_none(), "nothing blocked");

            c.block_target(Target::Principal(alice.principal().to_string()), Duration::from_secs(60), "p");
            let b = c.is_caller_blocked(Some(&alice), None).unwrap();
            assert_eq!(b.target.to_string(), "principal:https://issuer.test|sub:alice");
            assert!(c.is_caller_blocked(Some(&bob), Some(ip)).is_none());
            // The same `sub` from another issuer is another principal.
            let other = Identity::from_jwt_claims(
                "https://other.test",
                serde_json::from_value(serde_json::json!({"sub": "alice"})).unwrap(),
            );
            assert!(c.is_caller_blocked(Some(&other), None).is_none());
            // ... but a subject block names the bare `sub`, whatever the issuer.
            c.block_target(Target::Subject("alice".into()), Duration::from_secs(60), "s");
            assert_eq!(c.is_caller_blocked(Some(&other), None).unwrap().target.kind(), "subject");

            c.block_target(Target::Client("cli".into()), Duration::from_secs(60), "c");
            assert_eq!(c.is_caller_blocked(Some(&bob), None).unwrap().target.to_string(), "client:cli");
            assert!(c.is_caller_blocked(Some(&service), None).is_none());
            c.block_target(Target::Principal(service.principal().to_string()), Duration::from_secs(60), "p");
            assert!(c.is_caller_blocked(Some(&service), None).is_some(), "a client-only principal");

            let carol = identity(serde_json::json!({"sub": "carol"}));
            c.block_target(Target::Network(ip.into()), Duration::from_secs(60), "n");
            let b = c.is_caller_blocked(Some(&carol), Some("198.51.100.200".parse().unwrap())).unwrap();
            assert_eq!(b.target.to_string(), "network:198.51.100.0/24");
            c.block_target(Target::Address(ip), Duration::from_secs(60), "a");
            assert_eq!(c.is_caller_blocked(None, Some(ip)).unwrap().target.kind(), "address");
            // The older entry points still see subject and address blocks.
            assert!(c.is_blocked(Some("alice"), None).is_some());
            assert!(c.is_blocked(None, Some(ip)).is_some());

            assert!(c.unblock(&Target::Client("cli".into())));
            assert!(c.is_caller_blocked(Some(&bob), None).is_none());
            assert!(!c.unblock(&Target::Client("cli".into())));
        })
    }

    #[test]
    fn block_store_is_bounded_and_evicts_soonest_expiring() {
        crate::observe::tests::quiet(|| {
            let (c, _) = controls(32);
            c.block_subject("keep", Duration::from_secs(3600), "long");
            for i in 0..1000 {
                c.block_subject(&format!("s{i}"), Duration::from_secs(60), "short");
            }
            assert!(c.active_blocks() <= 32);
            assert!(c.is_blocked(Some("keep"), None).is_some(), "the longest block survives");
        })
    }

    #[test]
    fn revocations_expire_with_the_token_and_never_drop_early() {
        crate::observe::tests::quiet(|| {
            let (c, clock) = controls(16);
            let exp = clock.now() + Duration::from_secs(300);
            c.revoke("jti-1", exp).unwrap();
            assert!(c.is_revoked("jti-1"));
            assert!(!c.is_revoked("jti-2"));
            assert!(c.is_blocked(Some("jti-1"), None).is_none(), "revocations are not subject blocks");
            // Fill one shard's worth and beyond: refused, not silently forgotten.
            let mut refused = 0;
            for i in 0..200 {
                if c.revoke(&format!("j{i}"), exp).is_err() {
                    refused += 1;
                }
            }
            assert!(refused > 0);
            assert!(c.revocations() <= 16);
            assert!(c.is_revoked("jti-1"));
            clock.advance(Duration::from_secs(301));
            assert!(!c.is_revoked("jti-1"));
            c.revoke("jti-3", clock.now() + Duration::from_secs(10)).unwrap();
            assert!(c.is_revoked("jti-3"), "expired entries make room");
        })
    }

    #[cfg(feature = "redis")]
    #[test]
    fn replacing_the_copy_keeps_what_is_unchanged_and_drops_what_is_gone() {
        crate::observe::tests::quiet(|| {
            let (c, clock) = controls(100);
            let kept = c.block_subject("kept", Duration::from_secs(60), "r");
            c.block_subject("gone", Duration::from_secs(60), "r");
            c.revoke("old", clock.now() + Duration::from_secs(60)).unwrap();
            let local = c.local();
            let now = local.now_micros();
            let same = local.make_block(
                Target::Subject("kept".into()),
                BlockKind::Deny,
                "r",
                false,
                now,
                kept.expires_us,
                None,
            );
            let wide = local.make_block(
                Target::Network("10.0.0.0/8".parse().unwrap()),
                BlockKind::Deny,
                "r",
                true,
                now,
                now + 60_000_000,
                None,
            );
            let lapsed = local.make_block(
                Target::Subject("lapsed".into()),
                BlockKind::Deny,
                "r",
                false,
                now - 2,
                now - 1,
                None,
            );
            local.replace(
                vec![same, wide, lapsed],
                vec![(Arc::from("new"), now + 60_000_000), (Arc::from("past"), now)],
            );
            let held = c.is_blocked(Some("kept"), None).unwrap();
            assert!(Arc::ptr_eq(&held, &kept), "an unchanged block keeps its local state");
            assert!(c.is_blocked(Some("gone"), None).is_none());
            assert!(
                c.is_blocked(None, Some("10.9.9.9".parse().unwrap())).is_some(),
                "a wide network is looked up"
            );
            assert_eq!(c.active_blocks(), 2, "the lapsed one is skipped");
            assert!(c.is_revoked("new") && !c.is_revoked("old") && !c.is_revoked("past"));
            assert_eq!(c.revocations(), 1);
        })
    }

    #[test]
    fn session_and_issued_before_revocations_lapse_and_are_bounded() {
        let (c, clock) = controls(SHARDS);
        let now = clock.now();
        let hour = Duration::from_secs(3600);
        c.revoke_session("s-1", now + hour).unwrap();
        c.revoke_issued_before("bob", now, now + hour).unwrap();
        let old = identity(serde_json::json!({"iss": "i", "sub": "bob", "sid": "s-2",
            "iat": super::super::clock::to_micros(now) / 1_000_000 - 10}));
        let new = identity(serde_json::json!({"iss": "i", "sub": "bob",
            "iat": super::super::clock::to_micros(now) / 1_000_000}));
        let in_session = identity(serde_json::json!({"iss": "i", "sub": "carol", "sid": "s-1"}));
        assert!(c.is_identity_revoked(&old), "issued before the change");
        assert!(!c.is_identity_revoked(&new), "issued in the change's second or later");
        assert!(c.is_identity_revoked(&in_session));
        let no_iat = identity(serde_json::json!({"iss": "i", "sub": "bob"}));
        assert!(c.is_identity_revoked(&no_iat), "no iat: nothing shows it is newer");
        // A later change moves the time forward; an earlier one never moves it back.
        c.revoke_issued_before("bob", now - hour, now + hour).unwrap();
        assert!(c.is_identity_revoked(&old));
        // One entry per shard at most: a full store refuses rather than forget.
        let mut refused = 0;
        for i in 0..(SHARDS * 8) {
            if c.revoke_session(&format!("x-{i}"), now + hour).is_err() {
                refused += 1;
            }
        }
        assert!(refused > 0, "the bound held");
        clock.advance(hour + Duration::from_secs(1));
        assert!(!c.is_identity_revoked(&old) && !c.is_identity_revoked(&in_session), "lapsed");
        c.sweep();
        assert!(c.revoke_session("y", clock.now() + hour).is_ok(), "swept room is reused");
    }

    #[test]
    fn block_response_is_a_problem_without_details() {
        crate::observe::tests::quiet(|| {
            let (c, clock) = controls(10);
            let b = c.block_subject("mallory", Duration::from_millis(1500), "enumeration");
            let r = b.response("rid-9", clock.now());
            assert_eq!(r.status, 403);
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["type"], BLOCKED_PROBLEM_TYPE);
            assert_eq!(body["request_id"], "rid-9");
            assert!(!r.body.contains("mallory") && !r.body.contains("enumeration"));
            assert!(r.headers.contains(&("retry-after", "2".to_string())));
            let revoked = revoked_response("orders", "rid");
            assert_eq!(revoked.status, 401);
            assert!(revoked.body.contains("urn:zt:problem:token-revoked"));
        })
    }
}
