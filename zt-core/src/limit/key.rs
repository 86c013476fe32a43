//! Rate-limit keys, their fixed-size digests, and the bounded map every keyed table uses.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::OnceLock;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, OptionsBuilder, UnitWeighter};

/// Who a quota, a lockout or a tightening applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey<'a> {
    /// A client address, already grouped (see [`Limiter::client_key`](super::Limiter::client_key)).
    Address(IpAddr),
    /// A verified identity: the subject or the client id, as the caller chooses. When several
    /// issuers are configured, qualify it with the issuer so that equal subjects of
    /// different issuers do not share a quota.
    Identity(&'a str),
}

/// A 128-bit keyed digest of a [`LimitKey`].
///
/// In-memory tables are keyed by this digest instead of the key itself: every entry has the
/// same small size whatever the length of a subject claim, and a lookup never allocates.
/// The digest is two SipHash-1-3 values under a random per-process key, of the key's bytes
/// followed by two different final bytes (the message is absorbed once, the hasher state
/// cloned). An outsider cannot steer two keys onto one entry, and the chance that two of
/// 100 000 live keys collide by accident is below 2^-90.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct KeyDigest(u64, u64);

fn digest_key() -> &'static RandomState {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new)
}

thread_local! {
    /// The last identity digested on this thread, and its digest. One request digests its
    /// caller's identity for the lockout check, the lockout reset, the tightening table
    /// and the quota: comparing a few dozen bytes is cheaper than hashing them again.
    static LAST_IDENTITY: std::cell::RefCell<(String, Option<KeyDigest>)> =
        const { std::cell::RefCell::new((String::new(), None)) };
}

/// Identities longer than this are digested without the memo (no large copies).
const MEMO_MAX: usize = 256;

impl KeyDigest {
    pub(crate) fn of(key: LimitKey<'_>) -> KeyDigest {
        let LimitKey::Identity(id) = key else { return KeyDigest::compute(key) };
        if id.len() > MEMO_MAX {
            return KeyDigest::compute(key);
        }
        LAST_IDENTITY.with(|memo| {
            let Ok(mut memo) = memo.try_borrow_mut() else { return KeyDigest::compute(key) };
            if let (last, Some(digest)) = &*memo
                && last == id
            {
                return *digest;
            }
            let digest = KeyDigest::compute(key);
            memo.0.clear();
            memo.0.push_str(id);
            memo.1 = Some(digest);
            digest
        })
    }

    fn compute(key: LimitKey<'_>) -> KeyDigest {
        // One `write` per part keeps SipHash's per-call overhead low. The encodings differ
        // in their last byte (IPv4: 0, IPv6: 6, identity: 0xff), so no two kinds collide.
        let mut first = digest_key().build_hasher();
        match key {
            LimitKey::Address(IpAddr::V4(v4)) => first.write_u64(u64::from(u32::from(v4)) | 4 << 32),
            LimitKey::Address(IpAddr::V6(v6)) => {
                first.write_u128(u128::from(v6));
                first.write_u8(6);
            }
            LimitKey::Identity(id) => {
                first.write(id.as_bytes());
                first.write_u8(0xff);
            }
        }
        let mut second = first.clone();
        first.write_u8(1);
        second.write_u8(2);
        KeyDigest(first.finish(), second.finish())
    }
}

/// The owned form of a key, for events that outlive the request (lockout end) and for
/// futures (the Redis store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnedKey {
    Address(IpAddr),
    Identity(std::sync::Arc<str>),
}

impl OwnedKey {
    pub(crate) fn of(key: LimitKey<'_>) -> OwnedKey {
        match key {
            LimitKey::Address(ip) => OwnedKey::Address(ip),
            LimitKey::Identity(id) => OwnedKey::Identity(id.into()),
        }
    }

    pub(crate) fn as_key(&self) -> LimitKey<'_> {
        match self {
            OwnedKey::Address(ip) => LimitKey::Address(*ip),
            OwnedKey::Identity(id) => LimitKey::Identity(id),
        }
    }
}

/// Emits an event naming a key in structured fields only: a client address is never part of
/// the message text.
macro_rules! key_event {
    ($level:expr, $key:expr, $message:literal $(, $($field:tt)+)?) => {
        match $key {
            $crate::limit::LimitKey::Address(ip) => tracing::event!(
                target: "zt::limit",
                $level,
                zt.key_kind = "address",
                client.address = %ip,
                $($($field)+,)?
                $message
            ),
            $crate::limit::LimitKey::Identity(id) => tracing::event!(
                target: "zt::limit",
                $level,
                zt.key_kind = "identity",
                enduser.id = id,
                $($($field)+,)?
                $message
            ),
        }
    };
}
pub(crate) use key_event;

/// A concurrent map that never holds more than `capacity` entries: inserting into a full
/// map evicts a cold entry (quick_cache's CLOCK-Pro-like policy: entries seen once go
/// first, entries hit repeatedly stay). Besides the entries it keeps a bounded set of
/// "ghost" hashes of recently evicted keys (half the capacity, 8 bytes each).
pub(crate) type BoundedMap<V> = Cache<KeyDigest, V, UnitWeighter, DefaultHashBuilder>;

/// Builds a [`BoundedMap`] whose length is at most `capacity`, exactly: quick_cache splits
/// the capacity over shards and rounds each share up, so the total is rounded down to a
/// multiple of the shard count first.
pub(crate) fn bounded_map<V: Clone>(capacity: usize) -> BoundedMap<V> {
    let capacity = capacity.max(1);
    let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
    // Enough shards for little contention, each big enough (>= 32 entries) to evict well.
    let mut shards = (parallelism * 4).next_power_of_two().min(64);
    while shards > 1 && capacity / shards < 32 {
        shards /= 2;
    }
    let per_shard = capacity / shards;
    let total = (per_shard * shards) as u64;
    let options = OptionsBuilder::new()
        .shards(shards)
        .estimated_items_capacity(per_shard * shards)
        .weight_capacity(total)
        .build();
    match options {
        Ok(options) => {
            Cache::with_options(options, UnitWeighter, DefaultHashBuilder::default(), Default::default())
        }
        // Unreachable: every option is set above. Fall back to quick_cache's own split,
        // which may exceed the capacity by at most one entry per shard.
        Err(_) => Cache::with(
            capacity,
            capacity as u64,
            UnitWeighter,
            DefaultHashBuilder::default(),
            Default::default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn digests_separate_kinds_and_values() {
        let a = KeyDigest::of(LimitKey::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        let b = KeyDigest::of(LimitKey::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        let c = KeyDigest::of(LimitKey::Identity("10.0.0.1"));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, KeyDigest::of(LimitKey::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))));
    }

    #[test]
    fn bounded_map_never_exceeds_capacity() {
        for capacity in [1, 7, 100, 1000, 4097] {
            let map: BoundedMap<u64> = bounded_map(capacity);
            for i in 0..(capacity as u64 * 20 + 100) {
                map.insert(KeyDigest(i, i), i);
                assert!(map.len() <= capacity, "capacity {capacity}: {} entries", map.len());
            }
        }
    }
}
