//! The shared half of the lockout table (documented on [`Lockout`]): one atomic script per
//! failure, locks published on the fleet's bus and indexed for resyncs.

use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::Script;

use crate::fleet::{Fleet, FleetError, FleetListener};
use crate::limit::key::{LimitKey, OwnedKey};
use crate::limit::lockout::Lockout;

/// The bus topic of lockouts.
const TOPIC: &str = "lockout";

/// Counts one failure on the key's shared record, on the server's clock (milliseconds).
/// KEYS[1]: the record. ARGV: threshold, window, base, max, floor (failures this replica saw
/// before this one), bus channel, message prefix (the envelope up to the body), key text.
/// Returns {status, value, level, lock end}: status 0 counted (value: the count), 1 this
/// failure locked (value: the lock's length), 2 already locked (value: time left).
const FAILURE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local floor = tonumber(ARGV[5]) or 0
local h = redis.call('HMGET', KEYS[1], 'n', 'start', 'level', 'until')
local n = tonumber(h[1]) or 0
local start = tonumber(h[2]) or 0
local level = tonumber(h[3]) or 0
local ends = tonumber(h[4]) or 0
if ends > now then
  return {2, ends - now, level, ends}
end
if level > 0 and now >= ends + max then level = 0 end
if n == 0 or now - start >= window then
  n = 0
  start = now
end
if n < floor then n = floor end
n = n + 1
if n >= threshold then
  local d = base * (2 ^ level)
  if d > max then d = max end
  level = level + 1
  ends = now + d
  redis.call('HSET', KEYS[1], 'n', 0, 'start', now, 'level', level, 'until', string.format('%.0f', ends))
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', d + max))
  redis.call('PUBLISH', ARGV[6], ARGV[7] .. string.format('%.0f', d) .. ' ' .. level .. ' ' .. ARGV[8])
  return {1, d, level, ends}
end
redis.call('HSET', KEYS[1], 'n', n, 'start', string.format('%.0f', start), 'level', level, 'until', string.format('%.0f', ends))
local keep = start + window - now
if level > 0 and ends + max - now > keep then keep = ends + max - now end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(keep, 1)))
return {0, n, level, 0}
";

/// Clears a record's count (not its lock or level). KEYS[1]: the record.
const SUCCESS: &str = r"
if redis.call('HEXISTS', KEYS[1], 'n') == 1 then redis.call('HSET', KEYS[1], 'n', 0) end
return 0
";

/// The locks in force: drops ended ones, returns {now, member, end, member, end...}.
/// KEYS[1]: the index. ARGV[1]: at most this many.
const SYNC: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local locks = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now), '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
table.insert(locks, 1, string.format('%.0f', now))
return locks
";

pub(crate) struct SharedLockout {
    fleet: Fleet,
    this: Weak<Lockout>,
    failure: Script,
    success: Script,
    sync: Script,
}

impl SharedLockout {
    pub(super) fn new(fleet: Fleet, this: Weak<Lockout>) -> SharedLockout {
        SharedLockout {
            fleet,
            this,
            failure: Script::new(FAILURE),
            success: Script::new(SUCCESS),
            sync: Script::new(SYNC),
        }
    }

    /// Whether to count on the shared record: the store answered last time, or this replica
    /// has never synced yet (a new replica tries rather than assuming an outage).
    pub(super) fn reachable(&self) -> bool {
        self.fleet.is_up() || self.fleet.sync_age().is_none()
    }

    pub(super) fn divisor(&self) -> u32 {
        self.fleet.live_replicas().max(1)
    }

    /// Counts one failure on the shared record in a spawned task (none without a current
    /// Tokio runtime, or while the store is down: the local count stands alone then).
    pub(super) fn count_failure(&self, key: LimitKey<'_>, before: u32) {
        if !self.reachable() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (this, fleet, key) = (self.this.clone(), self.fleet.clone(), OwnedKey::of(key));
        runtime.spawn(async move {
            let Some(lockout) = this.upgrade() else { return };
            let Some(shared) = &lockout.shared else { return };
            let text = key_text(key.as_key());
            let mut invocation = shared.failure.prepare_invoke();
            invocation
                .key(record(&fleet, key.as_key()))
                .arg(lockout.threshold())
                .arg(millis(lockout.window()))
                .arg(millis(lockout.base()))
                .arg(millis(lockout.max()))
                .arg(before)
                .arg(fleet.key("bus"))
                .arg(fleet.envelope(TOPIC, ""))
                .arg(&text);
            // A failed round trip leaves the local count alone (the fleet counts as down).
            let Ok(reply) = fleet.invoke::<Vec<i64>>(&invocation).await else { return };
            let &[status, value, level, ends] = reply.as_slice() else { return };
            let (Ok(value), Ok(level)) = (u64::try_from(value), u32::try_from(level)) else { return };
            match status {
                1 => {
                    lockout.apply_lock(key.as_key(), Duration::from_millis(value), level, true);
                    // The index lets replicas that missed the message (or start later) load
                    // the lock at their next resync. Written after the script, not in it: in
                    // a Cluster the record and the index live in different slots. A lost
                    // write leaves the lock on the replicas that heard the message.
                    let mut index = redis::cmd("ZADD");
                    index.arg(fleet.key("lo:locks")).arg(ends).arg(&text);
                    let _ = fleet.query::<i64>(&index).await;
                }
                2 => {
                    lockout.apply_lock(key.as_key(), Duration::from_millis(value), level, false);
                }
                _ => {}
            }
        });
    }

    /// Clears the shared count in a spawned task (the local one is cleared already).
    pub(super) fn clear_failures(&self, key: LimitKey<'_>) {
        if !self.reachable() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (this, fleet, record) = (self.this.clone(), self.fleet.clone(), record(&self.fleet, key));
        runtime.spawn(async move {
            let Some(lockout) = this.upgrade() else { return };
            let Some(shared) = &lockout.shared else { return };
            let mut invocation = shared.success.prepare_invoke();
            invocation.key(record);
            let _ = fleet.invoke::<i64>(&invocation).await;
        });
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `a 203.0.113.9` or `i {identity}`: the key in bus messages and the lock index.
fn key_text(key: LimitKey<'_>) -> String {
    match key {
        LimitKey::Address(ip) => format!("a {ip}"),
        LimitKey::Identity(id) => format!("i {id}"),
    }
}

fn record(fleet: &Fleet, key: LimitKey<'_>) -> String {
    match key {
        LimitKey::Address(ip) => fleet.key(&format!("lo:a:{ip}")),
        LimitKey::Identity(id) => fleet.key(&format!("lo:i:{id}")),
    }
}

/// Reads `a 203.0.113.9` / `i {identity}`; `None` for anything else.
fn parse_key(text: &str) -> Option<OwnedKey> {
    match text.split_once(' ')? {
        ("a", ip) => ip.parse::<IpAddr>().ok().map(OwnedKey::Address),
        ("i", id) if !id.is_empty() => Some(OwnedKey::Identity(id.into())),
        _ => None,
    }
}

/// Reads a bus message: `{length ms} {level} {key text}`.
fn parse_message(body: &str) -> Option<(Duration, u32, OwnedKey)> {
    let mut parts = body.splitn(3, ' ');
    let length: u64 = parts.next()?.parse().ok()?;
    let level: u32 = parts.next()?.parse().ok()?;
    Some((Duration::from_millis(length), level, parse_key(parts.next()?)?))
}

/// Registers the lockout table's listener (holding it weakly: the fleet must not keep a
/// dropped limiter alive).
pub(super) fn listen(fleet: &Fleet, lockout: &Arc<Lockout>) {
    fleet.listen(TOPIC, Arc::new(Listener(Arc::downgrade(lockout))));
}

struct Listener(Weak<Lockout>);

impl FleetListener for Listener {
    fn on_message(&self, body: &str) {
        let (Some(lockout), Some((length, level, key))) = (self.0.upgrade(), parse_message(body)) else {
            return;
        };
        lockout.apply_lock(key.as_key(), length, level, false);
    }

    fn resync(&self, fleet: Fleet) -> BoxFuture<'static, Result<(), FleetError>> {
        let this = self.0.clone();
        Box::pin(async move {
            let Some(lockout) = this.upgrade() else { return Ok(()) };
            let Some(shared) = &lockout.shared else { return Ok(()) };
            let mut invocation = shared.sync.prepare_invoke();
            invocation.key(fleet.key("lo:locks")).arg(lockout.capacity());
            let reply: Vec<String> = fleet.invoke(&invocation).await?;
            let Some((now, locks)) = reply.split_first() else { return Err(FleetError::Server) };
            let now: u64 = now.parse().map_err(|_| FleetError::Server)?;
            for pair in locks.chunks_exact(2) {
                let (Some(key), Ok(ends)) = (parse_key(&pair[0]), pair[1].parse::<f64>()) else { continue };
                // Scores come back as decimal text; whole milliseconds are exact in f64.
                let left = (ends as u64).saturating_sub(now);
                lockout.apply_lock(key.as_key(), Duration::from_millis(left), 1, false);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_keys_parse_or_are_ignored() {
        let (length, level, key) = parse_message("30000 2 a 203.0.113.9").unwrap();
        assert_eq!((length, level), (Duration::from_secs(30), 2));
        assert_eq!(key, OwnedKey::Address("203.0.113.9".parse().unwrap()));
        let (_, _, key) = parse_message("5 1 i https://issuer.test|sub:a b").unwrap();
        assert_eq!(key, OwnedKey::Identity("https://issuer.test|sub:a b".into()));
        for bad in ["", "x 1 a 1.2.3.4", "5 x a 1.2.3.4", "5 1 a not-an-ip", "5 1 z x", "5 1 i ", "5 1"] {
            assert!(parse_message(bad).is_none(), "{bad:?}");
        }
        assert_eq!(key_text(LimitKey::Identity("x y")), "i x y");
        assert_eq!(parse_key(&key_text(LimitKey::Identity("x y"))), Some(OwnedKey::Identity("x y".into())));
    }
}
