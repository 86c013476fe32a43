//! Bounded keyed state shared by the baselines, the bot tracker and the inventory.
//!
//! Keys are 64-bit keyed hashes (SipHash with a per-process random key), never the raw
//! subject, address or id: nothing the observer keeps can be read back as a caller's
//! identifier, a lookup costs no allocation, and an attacker cannot aim collisions at a
//! victim without the key. (The one exception is [`remembered_key`]'s per-thread memo of the
//! last 4 short texts and their keys, which saves re-hashing the same route and caller on
//! every request: process memory only, never in a snapshot, an export or an event.) Two distinct keys colliding (about 1 in 2^64 per pair) merge
//! their counters, which is harmless for statistics.
//!
//! [`Bounded`] wraps `quick_cache`'s sharded cache: a hard item capacity with CLOCK-Pro
//! style eviction, which is scan resistant: a flood of one-shot keys (100 000 fresh
//! identities) evicts other one-shot keys first, not the established baselines.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The process-wide keyed hasher.
fn hasher() -> &'static RandomState {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new)
}

/// A keyed hash of a value, with a domain tag so equal text in different roles (a subject
/// and an object id) never shares a key.
pub(crate) fn key_of<T: Hash + ?Sized>(domain: u8, value: &T) -> u64 {
    let mut h = hasher().build_hasher();
    h.write_u8(domain);
    value.hash(&mut h);
    h.finish()
}

/// [`key_of`] of a short text pair, remembered per thread: the same few texts (this
/// route, this caller) come back request after request, and comparing them costs a small
/// fraction of the keyed SipHash (about 400 instructions each, issue 17). `tag` tells the
/// kinds of keys apart (the domain and anything else `compute` hashes); `compute` must be a
/// pure function of `(tag, a, b)`, as `key_of` is for the process's life.
pub(crate) fn remembered_key(tag: u16, a: &str, b: &str, compute: impl FnOnce() -> u64) -> u64 {
    /// Entries per thread: a caller key and an endpoint key per request, with room for a
    /// second route or caller alternating.
    const ENTRIES: usize = 4;
    struct Remembered {
        tag: u16,
        a: String,
        b: String,
        key: u64,
    }
    thread_local! {
        static MEMO: std::cell::RefCell<(Vec<Remembered>, usize)> =
            const { std::cell::RefCell::new((Vec::new(), 0)) };
    }
    // Long texts are hashed, not copied: the memo never holds more than a few hundred bytes.
    if a.len() + b.len() > 128 {
        return compute();
    }
    MEMO.with(|memo| {
        let Ok(mut memo) = memo.try_borrow_mut() else { return compute() };
        let (entries, next) = &mut *memo;
        if let Some(found) = entries.iter().find(|e| e.tag == tag && e.a == a && e.b == b) {
            return found.key;
        }
        let key = compute();
        if entries.len() < ENTRIES {
            entries.push(Remembered { tag, a: a.to_string(), b: b.to_string(), key });
        } else {
            // Round robin; the texts' buffers are reused.
            let slot = &mut entries[*next];
            *next = (*next + 1) % ENTRIES;
            slot.tag = tag;
            slot.key = key;
            slot.a.clear();
            slot.a.push_str(a);
            slot.b.clear();
            slot.b.push_str(b);
        }
        key
    })
}

/// A map keyed by [`key_of`] values. They are keyed SipHash outputs already, uniformly
/// spread and unguessable: hashing them a second time would buy nothing.
pub(crate) type KeyedMap<V> = std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<PrehashedKey>>;

/// The [`Hasher`] of [`KeyedMap`]: passes a `u64` key through.
#[derive(Default)]
pub(crate) struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; anything else is still mixed in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Domain tags for [`key_of`].
pub(crate) mod domain {
    pub const SUBJECT: u8 = 1;
    pub const ADDRESS: u8 = 2;
    pub const NETWORK: u8 = 3;
    pub const ENDPOINT: u8 = 4;
    pub const OBJECT_ID: u8 = 5;
    pub const ATTEMPTED: u8 = 7;
    pub const JTI: u8 = 8;
    pub const LABELS: u8 = 9;
    pub const PRINCIPAL: u8 = 10;
    pub const CLIENT: u8 = 11;
}

/// Locks a mutex; a poisoned lock (a panic elsewhere while holding it) still yields the
/// data: observer state is statistics, and the request path must never fail for it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A bounded map from hashed keys to mutable state.
pub(crate) struct Bounded<V> {
    cache: quick_cache::sync::Cache<u64, Arc<Mutex<V>>>,
}

impl<V> Bounded<V> {
    /// A map holding at most about `capacity` entries (see [`Bounded::capacity`]).
    pub(crate) fn new(capacity: usize) -> Self {
        Bounded { cache: quick_cache::sync::Cache::new(capacity.max(1)) }
    }

    /// The entry for `key`, created with `init` when absent. Two callers racing on a new
    /// key may each create one; the loser's first update is lost, which statistics
    /// tolerate (and which is cheaper than a placeholder handshake on every miss).
    pub(crate) fn entry(&self, key: u64, init: impl FnOnce() -> V) -> Arc<Mutex<V>> {
        if let Some(found) = self.cache.get(&key) {
            return found;
        }
        let fresh = Arc::new(Mutex::new(init()));
        self.cache.insert(key, fresh.clone());
        fresh
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    /// The hard bound on entries (the configured capacity, rounded up across shards).
    pub(crate) fn capacity(&self) -> usize {
        usize::try_from(self.cache.capacity()).unwrap_or(usize::MAX)
    }
}

/// A small exact set of 32-bit hashes with a hard cap: distinct counting for thresholds
/// (object ids per window, subjects per network). Past the cap the count saturates, which
/// is fine because every threshold sits below it.
#[derive(Debug, Default, Clone)]
pub(crate) struct CappedSet {
    items: Vec<u32>,
}

impl CappedSet {
    /// Adds a hash; true when it was new (and there was room).
    pub(crate) fn insert(&mut self, hash: u64, cap: usize) -> bool {
        let h = (hash >> 32) as u32 ^ hash as u32;
        match self.items.binary_search(&h) {
            Ok(_) => false,
            Err(_) if self.items.len() >= cap => false,
            Err(at) => {
                self.items.insert(at, h);
                true
            }
        }
    }

    /// Distinct hashes held.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Empties the set, keeping its allocation for the next window.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }
}

/// A HyperLogLog distinct counter with 256 one-byte registers (about 6.5 % standard
/// error), updated lock-free: for "how many distinct callers", where an exact set would
/// grow with the callers.
pub(crate) struct Hll {
    registers: Box<[std::sync::atomic::AtomicU8]>,
}

const HLL_BITS: u32 = 8;
const HLL_REGISTERS: usize = 1 << HLL_BITS;

impl Hll {
    pub(crate) fn new() -> Hll {
        Hll { registers: (0..HLL_REGISTERS).map(|_| std::sync::atomic::AtomicU8::new(0)).collect() }
    }

    /// Adds a (well mixed) 64-bit hash.
    pub(crate) fn add(&self, hash: u64) {
        let index = (hash >> (64 - HLL_BITS)) as usize;
        let rest = hash << HLL_BITS;
        // Position of the first 1-bit in the remaining bits, capped so it fits a byte.
        let rank = (rest.leading_zeros() + 1).min(64 - HLL_BITS + 1) as u8;
        // Read first: a register rarely grows, and a plain load does not take the cache line
        // from the other cores that count the same endpoint's callers.
        if let Some(r) = self.registers.get(index)
            && rank > r.load(std::sync::atomic::Ordering::Relaxed)
        {
            r.fetch_max(rank, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The estimated number of distinct hashes added.
    pub(crate) fn estimate(&self) -> u64 {
        let m = HLL_REGISTERS as f64;
        let mut sum = 0.0;
        let mut zeros = 0u32;
        for r in self.registers.iter() {
            let v = r.load(std::sync::atomic::Ordering::Relaxed);
            sum += 2f64.powi(-i32::from(v));
            if v == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            // Small range: linear counting is exact-ish where HLL is biased.
            m * (m / f64::from(zeros)).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_map_stays_within_capacity() {
        let map: Bounded<u32> = Bounded::new(100);
        for i in 0..10_000u64 {
            let e = map.entry(key_of(domain::SUBJECT, &i), || 0);
            *lock(&e) += 1;
        }
        assert!(map.len() <= map.capacity(), "{} > {}", map.len(), map.capacity());
        assert!(map.capacity() < 200);
    }

    #[test]
    fn domains_separate_keys() {
        assert_ne!(key_of(domain::SUBJECT, "42"), key_of(domain::OBJECT_ID, "42"));
        assert_eq!(key_of(domain::SUBJECT, "42"), key_of(domain::SUBJECT, "42"));
    }

    #[test]
    fn capped_set_counts_distinct_up_to_cap() {
        let mut s = CappedSet::default();
        for i in 0..10u64 {
            s.insert(key_of(domain::OBJECT_ID, &i), 8);
            s.insert(key_of(domain::OBJECT_ID, &i), 8);
        }
        assert_eq!(s.len(), 8);
        s.clear();
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn hll_estimates_within_error() {
        for n in [0u64, 1, 10, 100, 1_000, 20_000] {
            let h = Hll::new();
            for i in 0..n {
                h.add(key_of(domain::ATTEMPTED, &i));
                h.add(key_of(domain::ATTEMPTED, &i));
            }
            let e = h.estimate() as f64;
            let tolerance = (n as f64 * 0.25).max(2.0);
            assert!((e - n as f64).abs() <= tolerance, "n={n} estimate={e}");
        }
    }
}
