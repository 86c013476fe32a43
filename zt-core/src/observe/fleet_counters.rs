//! Detection counters shared by the replicas of a fleet (issue 15, "Detection").
//!
//! Some figures mean nothing per replica: behind a round-robin balancer an id-enumeration
//! walk, a request flood or a credential-stuffing run is split N ways, and each replica sees
//! 1/N of it. With a [`Fleet`](crate::fleet::Fleet) handed to the observer, these figures
//! are counted fleet-wide in the shared store:
//!
//! | figure | per | Redis type |
//! |---|---|---|
//! | distinct object ids (enumeration) | caller (principal, else address) and window | HyperLogLog (`PFADD`/`PFCOUNT`) |
//! | requests and error responses (request rate, error ratio) | caller and window | hash (`HINCRBY`) |
//! | failed authentications (credential stuffing) | network and window | hash (`HINCRBY`) |
//! | distinct attempted subjects (credential stuffing) | network and window | HyperLogLog |
//!
//! **Keys.** `{prefix}:v1:det:{<window ms>:<window index>}:<c|net>:<tag>:<ids|counts>`,
//! where the tag is HMAC-SHA256 (under the fleet-wide secret, `fleet.secret_env`) of the
//! caller or network, truncated to 128 bits, in hex. Object ids and attempted subjects are
//! added to the HyperLogLogs as 64-bit HMACs too: Redis (and its `MONITOR` and slow log)
//! never sees a caller name, an address or an object id in clear. Windows are aligned on
//! the epoch so every replica names the same window; the braces put one window's keys in
//! one Cluster slot, so a flush is one pipeline in every deployment. Every key expires two
//! windows after its last write.
//!
//! **Flushes.** The request path never waits for the store: it adds to the caller's local
//! accumulator (under the lock it holds anyway) and queues the caller once per flush. A
//! background task sends everything queued in one pipeline (per 512 callers) about once per
//! [`DetectionConfig::fleet_flush`](super::DetectionConfig::fleet_flush); the replies
//! (`PFCOUNT`, `HINCRBY` in the same pipeline) are the fleet-wide figures. A caller or
//! network at a quarter of a threshold or more (fleet-wide) is *hot*: its requests wake the task, which then
//! flushes at most once per [`DetectionConfig::fleet_flush_hot`](super::DetectionConfig::fleet_flush_hot),
//! so a fast walk is seen fleet-wide within a few requests rather than a second of them.
//!
//! **Rules** compare the merged figure: the latest fleet-wide figure, plus what this
//! replica sent since and not yet answered, plus what it counted since (never less than
//! the local figure). The local baselines learn from the merged figures, so they describe
//! the caller fleet-wide too. With the store down the merged figure is the last fleet
//! figure plus everything local: detection degrades to (at least) per-replica, never off.
//! The number of flushes is the metric `zt_detection_flushes_total` (label `outcome`:
//! `ok`, `timeout`, `unreachable`, `server_error`).

// Without `redis` only the data types remain (the counters cannot be built).
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

/// The figures one rule family compares, for one target and window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    /// Requests (caller) or failed authentications (network).
    pub(crate) hits: u32,
    /// Error responses (caller only).
    pub(crate) errors: u32,
    /// Distinct object ids (caller) or attempted subjects (network).
    pub(crate) distinct: u32,
}

impl Figures {
    fn plus(self, other: Figures) -> Figures {
        Figures {
            hits: self.hits.saturating_add(other.hits),
            errors: self.errors.saturating_add(other.errors),
            distinct: self.distinct.saturating_add(other.distinct),
        }
    }

    /// Field by field, the larger.
    pub(crate) fn max(self, other: Figures) -> Figures {
        Figures {
            hits: self.hits.max(other.hits),
            errors: self.errors.max(other.errors),
            distinct: self.distinct.max(other.distinct),
        }
    }

    fn is_empty(self) -> bool {
        self == Figures::default()
    }
}

/// What a tally counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TallyKind {
    /// A caller: requests, errors, distinct object ids.
    Caller,
    /// A network: failed authentications, distinct attempted subjects.
    Network,
}

/// A 64-bit keyed hash of an object id or attempted subject, the same on every replica.
pub(crate) type Element = [u8; 8];

/// Most elements held between flushes (every distinct-count threshold is at most 256).
pub(crate) const MAX_PENDING_ELEMENTS: usize = 256;

/// One target's share of the fleet-wide figures for its current window, kept inside its
/// baseline entry (under the lock the request path holds anyway).
#[derive(Debug)]
pub(crate) struct Tally {
    kind: TallyKind,
    /// HMAC of the target under the fleet secret.
    tag: [u8; 16],
    /// The epoch-aligned window index the figures below are for.
    window: u64,
    /// Fleet-wide figures from the latest flush reply for `window`.
    fleet: Figures,
    /// Taken by a flush whose reply has not come back (`distinct`: elements sent).
    sent: Figures,
    /// Counted since the last flush took them (`distinct` unused: `elements.len()`).
    pending: Figures,
    elements: Vec<Element>,
    /// The highest merged figures seen in `window` (what the baselines learn from).
    seen: Figures,
    /// In the flush queue.
    pub(crate) queued: bool,
}

/// What a flush took from one tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) window: u64,
    pub(crate) figures: Figures,
    /// How many elements were appended to the flush's buffer.
    pub(crate) elements: usize,
}

impl Tally {
    pub(crate) fn new(kind: TallyKind, tag: [u8; 16], window: u64) -> Tally {
        Tally {
            kind,
            tag,
            window,
            fleet: Figures::default(),
            sent: Figures::default(),
            pending: Figures::default(),
            elements: Vec::new(),
            seen: Figures::default(),
            queued: false,
        }
    }

    pub(crate) fn kind(&self) -> TallyKind {
        self.kind
    }

    pub(crate) fn tag(&self) -> &[u8; 16] {
        &self.tag
    }

    /// A new window: everything counted for the old one is moot (a reply still in flight
    /// for it is dropped when it comes back). The tag and the queue flag stay.
    pub(crate) fn reset(&mut self, window: u64) {
        if window == self.window {
            return;
        }
        self.window = window;
        self.fleet = Figures::default();
        self.sent = Figures::default();
        self.pending = Figures::default();
        self.elements.clear();
        self.seen = Figures::default();
    }

    /// One request (caller) or failure (network); `error`: an error response.
    pub(crate) fn hit(&mut self, error: bool) {
        self.pending.hits = self.pending.hits.saturating_add(1);
        if error {
            self.pending.errors = self.pending.errors.saturating_add(1);
        }
    }

    /// An element new to this replica's window.
    pub(crate) fn add(&mut self, element: Element) {
        if self.elements.len() < MAX_PENDING_ELEMENTS {
            self.elements.push(element);
        }
    }

    /// The figures to compare: the latest fleet-wide figures plus what this replica sent
    /// and counted since, and never below its own `local` figures. An element counted here
    /// may already be in the fleet's HyperLogLog (another replica saw the same id): the
    /// merged distinct count over-counts by at most what was counted since the last reply.
    pub(crate) fn merge(&mut self, local: Figures) -> Figures {
        let since = Figures { distinct: self.elements.len() as u32, ..self.pending };
        let merged = self.fleet.plus(self.sent).plus(since).max(local);
        self.seen = self.seen.max(merged);
        merged
    }

    /// The highest merged figures of the window, for the baselines.
    pub(crate) fn seen(&self) -> Figures {
        self.seen
    }

    /// For a flush: moves what was counted since the last one to `sent`, appending the
    /// elements to `buffer`. `None` when there is nothing to send. Clears the queue flag.
    pub(crate) fn take(&mut self, buffer: &mut Vec<Element>) -> Option<Taken> {
        self.queued = false;
        if self.pending.is_empty() && self.elements.is_empty() {
            return None;
        }
        let figures = Figures { distinct: self.elements.len() as u32, ..self.pending };
        buffer.extend_from_slice(&self.elements);
        // Cleared, not replaced: the allocation serves the next flush period.
        self.elements.clear();
        self.sent = self.sent.plus(figures);
        self.pending = Figures::default();
        Some(Taken { window: self.window, figures, elements: figures.distinct as usize })
    }

    /// The flush's reply: the fleet-wide figures for `taken.window`, this replica's share
    /// included.
    pub(crate) fn answered(&mut self, taken: &Taken, fleet: Figures) {
        if taken.window != self.window {
            return;
        }
        self.fleet = self.fleet.max(fleet);
        self.sent = sub(self.sent, taken.figures);
    }

    /// The flush failed: what it took counts as not sent (it is sent with the next one).
    /// True when the tally must be queued again.
    pub(crate) fn failed(&mut self, taken: &Taken, elements: &[Element]) -> bool {
        if taken.window != self.window {
            return false;
        }
        self.sent = sub(self.sent, taken.figures);
        self.pending = self.pending.plus(Figures { distinct: 0, ..taken.figures });
        for &element in elements {
            self.add(element);
        }
        !self.queued
    }
}

fn sub(a: Figures, b: Figures) -> Figures {
    Figures {
        hits: a.hits.saturating_sub(b.hits),
        errors: a.errors.saturating_sub(b.errors),
        distinct: a.distinct.saturating_sub(b.distinct),
    }
}

/// A baseline entry that holds a tally (callers and networks).
pub(crate) trait Tallied: Send + 'static {
    /// Its tally, when the fleet counts it.
    fn tally(&mut self) -> Option<&mut Tally>;
}

/// A locked baseline entry, as the flush queue holds it.
pub(crate) trait TallyCell: Send + Sync {
    /// Runs `f` on the entry's tally, under the entry's lock.
    fn with_tally(&self, f: &mut dyn FnMut(&mut Tally));
}

impl<T: Tallied> TallyCell for std::sync::Mutex<T> {
    fn with_tally(&self, f: &mut dyn FnMut(&mut Tally)) {
        if let Some(tally) = super::store::lock(self).tally() {
            f(tally);
        }
    }
}

/// Lowercase hex of a tag.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(feature = "redis")]
pub(crate) use shared::FleetCounters;

/// Without the `redis` feature there is no fleet: the counters cannot exist, and the
/// detector's `Option` of them is always `None`.
#[cfg(not(feature = "redis"))]
pub(crate) enum FleetCounters {}

#[cfg(not(feature = "redis"))]
impl FleetCounters {
    pub(crate) fn start(self: &std::sync::Arc<Self>) {
        match **self {}
    }
    pub(crate) fn tally(&self, _: TallyKind, _: &[&[u8]], _: u64) -> Tally {
        match *self {}
    }
    pub(crate) fn element(&self, _: TallyKind, _: &str) -> Element {
        match *self {}
    }
    pub(crate) fn enqueue(&self, _: std::sync::Arc<dyn TallyCell>) -> bool {
        match *self {}
    }
    pub(crate) fn wake(&self) {
        match *self {}
    }
    pub(crate) fn hot_at(&self, _: f64) -> f64 {
        match *self {}
    }
}

#[cfg(feature = "redis")]
mod shared {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, Weak};
    use std::time::{Duration, Instant};

    use hmac::{Hmac, Mac};
    use redis::Value;
    use sha2::Sha256;

    use super::{Element, Figures, Taken, Tally, TallyCell, TallyKind, hex};
    use crate::error::PolicyError;
    use crate::fleet::Fleet;
    use crate::observe::DetectionConfig;
    use crate::observe::store::lock;

    /// Tallies per pipeline: bounds one round trip's size (and its time within the fleet's
    /// timeout) when many callers are active at once.
    const PER_PIPELINE: usize = 512;

    /// HMAC-SHA256 under the fleet-wide secret, with domain separation: the same name as a
    /// principal, an address, a network, an object id or an attempted subject never gives
    /// the same value.
    #[derive(Clone)]
    pub(crate) struct Keyer {
        /// Keyed once; cloned per use (a copy of the hash state, no allocation).
        mac: Hmac<Sha256>,
    }

    impl Keyer {
        /// A keyer for `secret` (any length works for HMAC; the fleet requires 16 bytes).
        pub(crate) fn new(secret: &[u8]) -> Option<Keyer> {
            Hmac::<Sha256>::new_from_slice(secret).ok().map(|mac| Keyer { mac })
        }

        /// HMAC-SHA256 of the concatenated parts (the known-answer test's view).
        #[cfg(test)]
        pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
            let mut mac = self.mac.clone();
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().into()
        }

        /// The first `N` bytes of the HMAC of `value` (its parts concatenated) in `domain`
        /// (fixed ASCII without NUL, so `domain || 0 || value` is unambiguous).
        pub(crate) fn keyed<const N: usize>(&self, domain: &[u8], value: &[&[u8]]) -> [u8; N] {
            let mut mac = self.mac.clone();
            mac.update(domain);
            mac.update(&[0]);
            for part in value {
                mac.update(part);
            }
            let full: [u8; 32] = mac.finalize().into_bytes().into();
            let mut out = [0u8; N];
            for (o, b) in out.iter_mut().zip(full) {
                *o = b;
            }
            out
        }
    }

    /// The fleet-wide counters of one observer: the keyer, the flush queue and its task.
    pub(crate) struct FleetCounters {
        fleet: Fleet,
        keyer: Keyer,
        window_ms: u64,
        every: Duration,
        hot_every: Duration,
        queue: Mutex<Vec<Arc<dyn TallyCell>>>,
        queue_cap: usize,
        wake: Arc<tokio::sync::Notify>,
        started: AtomicBool,
        task: Mutex<Option<tokio::task::AbortHandle>>,
    }

    impl Drop for FleetCounters {
        fn drop(&mut self) {
            if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
                task.abort();
            }
        }
    }

    impl FleetCounters {
        /// Counters for `fleet`. Without a fleet-wide secret this refuses: see
        /// [`ObserverBuilder::fleet`](crate::observe::ObserverBuilder::fleet) for why.
        pub(crate) fn new(fleet: Fleet, config: &DetectionConfig) -> Result<FleetCounters, PolicyError> {
            let keyer = fleet.secret().and_then(Keyer::new).ok_or_else(|| {
                PolicyError::invalid(
                    "fleet.secret_env",
                    "required with [observe] (or fleet.secret in code): the detection counters are shared fleet-wide, keyed \
                     by an HMAC under this secret so the store never holds caller names; name an \
                     environment variable holding at least 16 bytes",
                )
            })?;
            Ok(FleetCounters {
                fleet,
                keyer,
                window_ms: u64::try_from(config.window.as_millis()).unwrap_or(u64::MAX).max(1),
                every: config.fleet_flush,
                hot_every: config.fleet_flush_hot,
                queue: Mutex::new(Vec::new()),
                queue_cap: config.identity_capacity.saturating_add(config.network_capacity),
                wake: Arc::new(tokio::sync::Notify::new()),
                started: AtomicBool::new(false),
                task: Mutex::new(None),
            })
        }

        /// Starts the flush task if it is not running and a Tokio runtime is current. One
        /// atomic load once it runs: the detector calls it on every request.
        pub(crate) fn start(self: &Arc<Self>) {
            if self.started.load(Ordering::Acquire) {
                return;
            }
            let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
            if self.started.swap(true, Ordering::AcqRel) {
                return;
            }
            let task = handle.spawn(run(Arc::downgrade(self), self.wake.clone(), self.every, self.hot_every));
            if let Ok(mut slot) = self.task.lock() {
                *slot = Some(task.abort_handle());
            }
        }

        /// A tally for the target named by `name` (its parts concatenated: a role byte and
        /// a principal, or an address's or network's bytes), for the window `window`.
        /// Called when its baseline entry is created.
        pub(crate) fn tally(&self, kind: TallyKind, name: &[&[u8]], window: u64) -> Tally {
            let domain: &[u8] = match kind {
                TallyKind::Caller => b"zt-detect-caller",
                TallyKind::Network => b"zt-detect-network",
            };
            Tally::new(kind, self.keyer.keyed(domain, name), window)
        }

        /// The fleet-wide hash of an object id (caller) or attempted subject (network).
        pub(crate) fn element(&self, kind: TallyKind, value: &str) -> Element {
            let domain: &[u8] = match kind {
                TallyKind::Caller => b"zt-detect-object-id",
                TallyKind::Network => b"zt-detect-attempted-subject",
            };
            self.keyer.keyed(domain, &[value.as_bytes()])
        }

        /// Queues an entry whose tally has something to send; false when the queue is full
        /// (the entry's counts stay local until it is queued again).
        pub(crate) fn enqueue(&self, cell: Arc<dyn TallyCell>) -> bool {
            let mut queue = lock(&self.queue);
            if queue.len() >= self.queue_cap {
                return false;
            }
            queue.push(cell);
            true
        }

        /// A hot target counted something: flush soon.
        pub(crate) fn wake(&self) {
            self.wake.notify_one();
        }

        /// The pressure (share of a threshold) at which a target is hot, given the share
        /// `whole` that counts as hot fleet-wide. Divided by the live replica count: behind
        /// a round-robin balancer each replica sees about 1/N of a walk, so a walk that is
        /// half-way to a threshold fleet-wide looks like 1/(2N) of it here before the first
        /// flush answers (without this a fast walk over 3 replicas ran to 1.5x the threshold
        /// before any replica saw it as hot).
        pub(crate) fn hot_at(&self, whole: f64) -> f64 {
            whole / f64::from(self.fleet.live_replicas())
        }

        fn base_key(&self, kind: TallyKind, tag: &[u8; 16], window: u64) -> String {
            let kind = match kind {
                TallyKind::Caller => "c",
                TallyKind::Network => "net",
            };
            self.fleet.key(&format!("det:{{{}:{window}}}:{kind}:{}", self.window_ms, hex(tag)))
        }

        /// Sends everything queued; true when every pipeline was answered.
        async fn flush(&self) -> bool {
            let cells = {
                let mut queue = lock(&self.queue);
                let capacity = queue.len();
                std::mem::replace(&mut *queue, Vec::with_capacity(capacity))
            };
            let mut ok = true;
            for chunk in cells.chunks(PER_PIPELINE) {
                ok &= self.flush_chunk(chunk).await;
            }
            ok
        }

        async fn flush_chunk(&self, cells: &[Arc<dyn TallyCell>]) -> bool {
            let mut elements: Vec<Element> = Vec::new();
            let mut entries: Vec<Entry<'_>> = Vec::new();
            for cell in cells {
                cell.with_tally(&mut |t| {
                    let at = elements.len();
                    if let Some(taken) = t.take(&mut elements) {
                        entries.push(Entry { cell, kind: t.kind(), tag: *t.tag(), taken, at });
                    }
                });
            }
            if entries.is_empty() {
                return true;
            }
            let ttl_ms = self.window_ms.saturating_mul(2);
            let mut pipe = redis::pipe();
            for Entry { kind, tag, taken, at, .. } in &entries {
                let base = self.base_key(*kind, tag, taken.window);
                let ids = format!("{base}:ids");
                let counts = format!("{base}:counts");
                if taken.elements > 0 {
                    let add = pipe.cmd("PFADD").arg(&ids);
                    for element in elements.get(*at..at + taken.elements).unwrap_or_default() {
                        add.arg(&element[..]);
                    }
                    add.ignore();
                    pipe.cmd("PEXPIRE").arg(&ids).arg(ttl_ms).ignore();
                }
                pipe.cmd("PFCOUNT").arg(&ids);
                pipe.cmd("HINCRBY").arg(&counts).arg("hits").arg(taken.figures.hits);
                if *kind == TallyKind::Caller {
                    pipe.cmd("HINCRBY").arg(&counts).arg("errors").arg(taken.figures.errors);
                }
                pipe.cmd("PEXPIRE").arg(&counts).arg(ttl_ms).ignore();
            }
            let replies = self.fleet.pipeline::<Vec<Value>>(&pipe).await;
            let outcome = match &replies {
                Ok(_) => "ok",
                Err(e) => e.cause(),
            };
            metrics::counter!("zt_detection_flushes_total", "outcome" => outcome).increment(1);
            let replies = replies.unwrap_or_default();
            let mut replies = replies.iter();
            let mut all = true;
            for Entry { cell, kind, taken, at, .. } in &entries {
                let distinct = count(replies.next());
                let hits = count(replies.next());
                let errors = if *kind == TallyKind::Caller { count(replies.next()) } else { Some(0) };
                let sent = elements.get(*at..at + taken.elements).unwrap_or_default();
                match (distinct, hits, errors) {
                    (Some(distinct), Some(hits), Some(errors)) => {
                        cell.with_tally(&mut |t| t.answered(taken, Figures { hits, errors, distinct }));
                    }
                    _ => {
                        all = false;
                        let mut requeue = false;
                        cell.with_tally(&mut |t| {
                            requeue = t.failed(taken, sent);
                            if requeue {
                                t.queued = true;
                            }
                        });
                        if requeue && !self.enqueue(Arc::clone(cell)) {
                            cell.with_tally(&mut |t| t.queued = false);
                        }
                    }
                }
            }
            all
        }
    }

    /// One tally's part of a flush.
    struct Entry<'a> {
        cell: &'a Arc<dyn TallyCell>,
        kind: TallyKind,
        tag: [u8; 16],
        taken: Taken,
        /// Where its elements start in the flush's buffer.
        at: usize,
    }

    /// A count in a reply: an integer (saturated to `u32`), else `None` (an error reply, a
    /// reply of another shape, or no reply at all).
    fn count(value: Option<&Value>) -> Option<u32> {
        match value {
            Some(Value::Int(n)) => Some(u32::try_from((*n).max(0)).unwrap_or(u32::MAX)),
            _ => None,
        }
    }

    /// The flush task: every `every`, or sooner (at most every `hot_every`) when a hot
    /// target wakes it. After a failed flush it waits a full `every` before the next one, so
    /// an unreachable store costs one timeout per interval, not one per hot request.
    async fn run(
        weak: Weak<FleetCounters>,
        wake: Arc<tokio::sync::Notify>,
        every: Duration,
        hot_every: Duration,
    ) {
        let mut last: Option<Instant> = None;
        let mut backing_off = false;
        loop {
            if backing_off {
                tokio::time::sleep(every).await;
            } else {
                let woken = tokio::select! {
                    () = tokio::time::sleep(every) => false,
                    () = wake.notified() => true,
                };
                if woken && let Some(last) = last {
                    let since = last.elapsed();
                    if since < hot_every {
                        tokio::time::sleep(hot_every - since).await;
                    }
                }
            }
            let Some(counters) = weak.upgrade() else { return };
            last = Some(Instant::now());
            backing_off = !counters.flush().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(hits: u32, errors: u32, distinct: u32) -> Figures {
        Figures { hits, errors, distinct }
    }

    #[test]
    fn merge_adds_fleet_sent_and_since_never_below_local() {
        let mut t = Tally::new(TallyKind::Caller, [7; 16], 10);
        assert_eq!(t.merge(figures(0, 0, 0)), Figures::default());
        for i in 0..5u8 {
            t.hit(i == 0);
            t.add([i; 8]);
        }
        // Nothing flushed yet: the local figures and the pending ones agree.
        assert_eq!(t.merge(figures(5, 1, 5)), figures(5, 1, 5));
        // A flush takes them: they count as sent until the reply.
        let mut buffer = Vec::new();
        let taken = t.take(&mut buffer).unwrap();
        assert_eq!((taken.figures, taken.elements, buffer.len()), (figures(5, 1, 5), 5, 5));
        assert!(t.take(&mut Vec::new()).is_none(), "nothing new to send");
        t.hit(false);
        t.add([9; 8]);
        assert_eq!(t.merge(figures(6, 1, 6)), figures(6, 1, 6));
        // The reply: 40 requests and 37 distinct ids fleet-wide, ours included.
        t.answered(&taken, figures(40, 3, 37));
        let merged = t.merge(figures(6, 1, 6));
        assert_eq!(merged, figures(41, 3, 38), "fleet + counted since the flush");
        // Local figures above the fleet's (a store that lost its keys) win.
        assert_eq!(t.merge(figures(100, 0, 0)), figures(100, 3, 38));
        assert_eq!(t.seen(), figures(100, 3, 38), "the baselines learn the highest merged figures");
    }

    #[test]
    fn a_failed_flush_sends_its_share_again_and_a_new_window_starts_empty() {
        let mut t = Tally::new(TallyKind::Network, [1; 16], 3);
        t.hit(false);
        t.add([1; 8]);
        t.queued = true;
        let mut buffer = Vec::new();
        let taken = t.take(&mut buffer).unwrap();
        assert!(!t.queued, "taking dequeues");
        assert!(t.failed(&taken, &buffer), "re-queued");
        assert_eq!(t.merge(Figures::default()), figures(1, 0, 1), "counted once, not twice");
        let mut again = Vec::new();
        let retaken = t.take(&mut again).unwrap();
        assert_eq!((retaken.figures, &again[..]), (figures(1, 0, 1), &[[1u8; 8]][..]));
        // The window ends before the reply: the late reply is dropped.
        t.reset(4);
        t.answered(&retaken, figures(50, 0, 9));
        assert_eq!(t.merge(Figures::default()), Figures::default());
        assert!(!t.failed(&retaken, &again), "nothing to resend for a past window");
    }

    #[test]
    fn elements_between_flushes_are_bounded() {
        let mut t = Tally::new(TallyKind::Caller, [0; 16], 0);
        for i in 0..1000u32 {
            let b = i.to_le_bytes();
            t.add([b[0], b[1], b[2], b[3], 0, 0, 0, 0]);
        }
        assert_eq!(t.merge(Figures::default()).distinct as usize, MAX_PENDING_ELEMENTS);
    }

    #[test]
    fn hex_is_lowercase_and_full_length() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(hex(&[0xff; 16]).len(), 32);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn keyer_is_hmac_sha256_domain_separated_and_secret_bound() {
        use super::shared::Keyer;
        // RFC 4231, test case 2.
        let jefe = Keyer::new(b"Jefe").unwrap();
        assert_eq!(
            hex(&jefe.mac(&[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let a = Keyer::new(b"0123456789abcdef-fleet-a").unwrap();
        let a2 = Keyer::new(b"0123456789abcdef-fleet-a").unwrap();
        let b = Keyer::new(b"0123456789abcdef-fleet-b").unwrap();
        let name = b"https://issuer.test|sub:mallory";
        let tag: [u8; 16] = a.keyed(b"zt-detect-caller", &[name]);
        assert_eq!(tag, a2.keyed(b"zt-detect-caller", &[b"https://issuer.test|", b"sub:mallory"]));
        assert_ne!(tag, b.keyed(b"zt-detect-caller", &[name]), "another secret, another name");
        assert_ne!(tag, a.keyed(b"zt-detect-network", &[name]), "domains never collide");
        assert_ne!(tag, a.keyed::<16>(b"zt-detect-caller", &[b"https://issuer.test|sub:mallorz"]));
        // The truncation is a prefix of the full HMAC.
        let full = a.mac(&[b"zt-detect-caller", &[0], name]);
        assert_eq!(&full[..16], &tag);
        let shown = hex(&tag);
        assert_eq!(shown.len(), 32);
        assert!(!shown.contains("mallory"));
    }
}
