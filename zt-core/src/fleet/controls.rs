//! Blocks and revocations shared by every replica, with Redis as the source of truth.
//!
//! Each replica's [`Controls`] is its copy: checks read only that copy (an atomic
//! "anything at all?" load, then one shard read lock per name), so a request never waits
//! for the store. Writes go to the store and are pushed to the other replicas.
//!
//! # Keys
//!
//! All under one hash tag, so a Redis Cluster holds them in one slot and one script can
//! touch them together (`{prefix}` is `fleet.prefix`, default `zt`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:v1:{ctl}:blocks` | HASH | target (`subject:alice`, `network:10.0.0.0/8`) → JSON: kind (challenge or deny), reason, automatic, created and end (ms) |
//! | `{prefix}:v1:{ctl}:blocks:exp` | ZSET | target scored by its end (ms) |
//! | `{prefix}:v1:{ctl}:rev` | HASH | `jti` → end of the revocation (ms): the token's `exp` plus the leeway |
//! | `{prefix}:v1:{ctl}:rev:exp` | ZSET | `jti` scored by that end |
//! | `{prefix}:v1:{ctl}:sig` | HASH | Shared Signals revocations: `s\t<sid>` (a session) or `i\t<subject>` (tokens issued before a time) → `<before, seconds> <end, ms>` |
//! | `{prefix}:v1:{ctl}:sig:exp` | ZSET | those fields scored by their end |
//! | `{prefix}:v1:{ctl}:ver` | counter | incremented by every write |
//! | `{prefix}:v1:{ctl}:epoch` | string | an id made when the store was first (or again) seeded |
//!
//! # Writes
//!
//! One Lua script per write (block, unblock, revoke, signal revocation), atomic: it first drops up to 512
//! expired members of each ZSET (and their HASH fields), then writes, increments the
//! version and publishes the change on the fleet bus (topic `controls`, message
//! `version \t epoch \t change`). So nothing outlives its end by more than the next write or
//! resync, and the store is held to the same bounds as the local copy
//! ([`ControlsConfig`](crate::observe::ControlsConfig)): a full block set drops the block
//! that ends soonest; a full revocation list refuses the revocation
//! ([`ControlError::RevocationsFull`]).
//!
//! - Through the controls API ([`Controls::block_target_confirmed`] and the other
//!   `*_confirmed` methods) the write returns once the store acknowledged it, and only then
//!   is it applied locally; when the store does not answer within `fleet.timeout`, nothing
//!   changed anywhere and the API answers 503 ([`ControlError::StoreUnavailable`]).
//! - Detection's automatic blocks (and the plain [`Controls`] methods) are applied locally at
//!   once and written by a spawned task, off the request path. A failed write raises a WARN
//!   event (target `zt::fleet`) and the counter `zt_fleet_control_write_failures_total`,
//!   and is kept (at most 10 000 of them) and retried at every resync until it lands.
//!
//! # Sync and staleness
//!
//! Other replicas apply a pushed change as it arrives (a replica never hears its own). Every
//! `fleet.sync_interval` (default 2 s), and right after (re)subscribing, a replica reads the
//! version and epoch in one script call; when either moved past what it applied, the same
//! call returns both HASHes and the copy is replaced, shard by shard (expired entries
//! skipped; this replica's own unacknowledged changes laid over it). Bound on a change
//! made on one replica reaching another while the store is reachable: the push (one round
//! trip), or, when a push is lost, one `sync_interval`.
//!
//! # Fail modes
//!
//! - **Store down:** every replica keeps enforcing its last synced copy (and its own
//!   automatic blocks); `zt_fleet_up` is 0, `zt_fleet_sync_age_seconds` says how old the copy
//!   is, and past `fleet.stale_after` a WARN event says the copy is stale. Operator writes
//!   answer 503; automatic blocks wait for the store and are written when it is back.
//! - **Store restarted empty** (no epoch, or another epoch than the one applied): the copy is
//!   never wiped. The replica first writes its unexpired blocks and revocations back (merged:
//!   the later end wins; a new epoch is made when there is none), then loads the store. Every
//!   replica does so at its next resync, so the store ends up holding the union of their
//!   copies. The store must not evict these keys (`maxmemory-policy noeviction` or a
//!   `volatile-*` policy: the keys have no TTL).
//! - **Replica restarted:** it loads the store at its first sync (`Guard::warm_up` waits for
//!   it), so it enforces every block and revocation in force.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_util::future::BoxFuture;
use ipnet::IpNet;
use redis::Script;
use serde::{Deserialize, Serialize};

use super::{Fleet, FleetError, FleetListener};
use crate::controls_api::ControlError;
use crate::observe::{Block, BlockKind, ChallengeResponse, Controls, SignalRevocation, Target};

/// The bus topic of control changes.
const TOPIC: &str = "controls";

/// Most failed or unacknowledged writes kept for a retry.
const MAX_PENDING: usize = 10_000;

/// Entries per seeding script call (one round trip each, well within a timeout).
const SEED_CHUNK: usize = 500;

/// Drops expired members of both ZSETs and their HASH fields (`now` is ARGV[1], ms).
const SWEEP: &str = r"
local now = tonumber(ARGV[1])
local function sweep(hash, zset)
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 512)
  if #gone > 0 then
    redis.call('HDEL', hash, unpack(gone))
    redis.call('ZREM', zset, unpack(gone))
  end
end
sweep(KEYS[1], KEYS[2])
sweep(KEYS[3], KEYS[4])
sweep(KEYS[7], KEYS[8])
";

/// Writes a signal revocation, merged with the one held (`old`, `before end`): the later
/// `before` and the later end win.
const PUT_SIGNAL: &str = r"
local function put_signal(field, old, before, ends)
  if old then
    local b, e = string.match(old, '^(%d+) (%d+)$')
    if b then
      before = math.max(before, tonumber(b))
      ends = math.max(ends, tonumber(e))
    end
  end
  redis.call('HSET', KEYS[7], field, string.format('%d %d', before, ends))
  redis.call('ZADD', KEYS[8], ends, field)
end
";

/// The store's epoch, made (ARGV[2]) when there is none.
const EPOCH: &str = r"
local epoch = redis.call('GET', KEYS[6])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[6], epoch)
end
";

/// ARGV: now, epoch, channel, envelope, target, record, end, max blocks, message.
const BLOCK: &str = r"
local field = ARGV[5]
if redis.call('HEXISTS', KEYS[1], field) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[8]) then
  local soonest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #soonest > 0 then
    redis.call('HDEL', KEYS[1], soonest[1])
    redis.call('ZREM', KEYS[2], soonest[1])
  end
end
redis.call('HSET', KEYS[1], field, ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], field)
local ver = redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ver .. '\t' .. epoch .. '\t' .. ARGV[9])
return {epoch, ver, 1}
";

/// ARGV: now, epoch, channel, envelope, target, message. Answers 1 when a block was held.
const UNBLOCK: &str = r"
local removed = redis.call('HDEL', KEYS[1], ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[5])
local ver = redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ver .. '\t' .. epoch .. '\t' .. ARGV[6])
return {epoch, ver, removed}
";

/// ARGV: now, epoch, channel, envelope, jti, end, max revocations, message. Answers -1
/// when the list is full of unexpired revocations.
const REVOKE: &str = r"
local jti = ARGV[5]
local old = redis.call('ZSCORE', KEYS[4], jti)
if not old and redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[7]) then
  return {epoch, 0, -1}
end
local ends = ARGV[6]
if old and tonumber(old) >= tonumber(ends) then
  ends = old
end
redis.call('HSET', KEYS[3], jti, ends)
redis.call('ZADD', KEYS[4], ends, jti)
local ver = redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ver .. '\t' .. epoch .. '\t' .. ARGV[8])
return {epoch, ver, 1}
";

/// A session or issued-before revocation (`field` is `s\t<sid>` or `i\t<subject>`): the
/// later `before` and the later end win. ARGV: now, epoch, channel, envelope, field, before
/// (s), end (ms), max entries, message. Answers -1 when the list is full of unexpired ones.
const SIGNAL: &str = r"
local field = ARGV[5]
local old = redis.call('HGET', KEYS[7], field)
if not old and redis.call('HLEN', KEYS[7]) >= tonumber(ARGV[8]) then
  return {epoch, 0, -1}
end
put_signal(field, old, tonumber(ARGV[6]), tonumber(ARGV[7]))
local ver = redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ver .. '\t' .. epoch .. '\t' .. ARGV[9])
return {epoch, ver, 1}
";

/// ARGV: now, epoch, number of blocks, max blocks, max revocations, number of revocations,
/// then (target, record, end) per block, (jti, end) per revocation and (field, before, end)
/// per signal revocation. Merges: the later end (and `before`) wins.
const SEED: &str = r"
local n = tonumber(ARGV[3])
local i = 7
for _ = 1, n do
  local field, record, ends = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local old = redis.call('ZSCORE', KEYS[2], field)
  if (old and tonumber(old) < tonumber(ends)) or (not old and redis.call('HLEN', KEYS[1]) < tonumber(ARGV[4])) then
    redis.call('HSET', KEYS[1], field, record)
    redis.call('ZADD', KEYS[2], ends, field)
  end
end
for _ = 1, tonumber(ARGV[6]) do
  local jti, ends = ARGV[i], ARGV[i + 1]
  i = i + 2
  local old = redis.call('ZSCORE', KEYS[4], jti)
  if (old and tonumber(old) < tonumber(ends)) or (not old and redis.call('HLEN', KEYS[3]) < tonumber(ARGV[5])) then
    redis.call('HSET', KEYS[3], jti, ends)
    redis.call('ZADD', KEYS[4], ends, jti)
  end
end
while i < #ARGV do
  local field, before, ends = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  local old = redis.call('HGET', KEYS[7], field)
  if old or redis.call('HLEN', KEYS[7]) < tonumber(ARGV[5]) then
    put_signal(field, old, before, ends)
  end
end
local ver = redis.call('INCR', KEYS[5])
return {epoch, ver, 1}
";

/// ARGV: now, the epoch and version applied. Answers epoch ('' when none), version,
/// whether they moved, then the blocks, revocations and signal revocations (HGETALL) when
/// they did.
const SNAPSHOT: &str = r"
local epoch = redis.call('GET', KEYS[6])
if not epoch then
  return {'', 0, 0, {}, {}, {}}
end
local ver = tonumber(redis.call('GET', KEYS[5]) or '0')
if epoch == ARGV[2] and ver == tonumber(ARGV[3]) then
  return {epoch, ver, 0, {}, {}, {}}
end
return {epoch, ver, 1, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[7])}
";

/// A block as the store holds it (the HASH value; the target is the field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockRecord {
    /// The challenge to answer with; none for a deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    challenge: Option<ChallengeRecord>,
    reason: String,
    automatic: bool,
    created_ms: u64,
    until_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChallengeRecord {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// One change: written by a script, then pushed to the other replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// A block put in place (replacing one of the same target).
    Block {
        /// The canonical target's text.
        target: String,
        /// The block.
        record: BlockRecord,
    },
    /// A block lifted.
    Unblock {
        /// The canonical target's text.
        target: String,
    },
    /// A token revoked until `until_ms`.
    Revoke {
        /// The token id.
        jti: String,
        /// The revocation's end (the token's `exp` plus the leeway), ms.
        until_ms: u64,
    },
    /// A session's tokens (`sid`) revoked until `until_ms` (Shared Signals).
    RevokeSession {
        /// The session id.
        sid: String,
        /// The revocation's end, ms.
        until_ms: u64,
    },
    /// A subject's tokens issued before `before_s` revoked until `until_ms` (Shared Signals).
    RevokeBefore {
        /// The subject.
        subject: String,
        /// Seconds since the epoch.
        before_s: u64,
        /// The revocation's end, ms.
        until_ms: u64,
    },
}

impl Op {
    pub(crate) fn block(block: &Block) -> Op {
        let challenge = match &block.kind {
            BlockKind::Deny => None,
            BlockKind::Challenge(c) => {
                Some(ChallengeRecord { status: c.status, headers: c.headers.clone(), body: c.body.clone() })
            }
        };
        Op::Block {
            target: block.target.to_string(),
            record: BlockRecord {
                challenge,
                reason: block.reason.clone(),
                automatic: block.automatic,
                created_ms: millis(block.created_at),
                // Rounded up: the shared copy never ends before the local one.
                until_ms: block.expires_us.div_ceil(1000),
            },
        }
    }

    pub(crate) fn unblock(target: &Target) -> Op {
        Op::Unblock { target: target.to_string() }
    }

    pub(crate) fn revoke(jti: &str, until_us: u64) -> Op {
        Op::Revoke { jti: jti.to_string(), until_ms: until_us.div_ceil(1000) }
    }

    pub(crate) fn revoke_session(sid: &str, until_us: u64) -> Op {
        Op::RevokeSession { sid: sid.to_string(), until_ms: until_us.div_ceil(1000) }
    }

    pub(crate) fn revoke_before(subject: &str, before_s: u64, until_us: u64) -> Op {
        Op::RevokeBefore { subject: subject.to_string(), before_s, until_ms: until_us.div_ceil(1000) }
    }

    /// The store's field and value of a signal revocation.
    fn signal_field(&self) -> Option<(String, u64, u64)> {
        match self {
            Op::RevokeSession { sid, until_ms } => Some((format!("s\t{sid}"), 0, *until_ms)),
            Op::RevokeBefore { subject, before_s, until_ms } => {
                Some((format!("i\t{subject}"), *before_s, *until_ms))
            }
            _ => None,
        }
    }

    /// What a later change of the same thing replaces.
    fn slot(&self) -> String {
        match self {
            Op::Block { target, .. } | Op::Unblock { target } => format!("b\t{target}"),
            Op::Revoke { jti, .. } => format!("r\t{jti}"),
            Op::RevokeSession { sid, .. } => format!("s\t{sid}"),
            Op::RevokeBefore { subject, .. } => format!("i\t{subject}"),
        }
    }

    /// When this change stops mattering (never, for an unblock: it stays until written).
    fn until_ms(&self) -> Option<u64> {
        match self {
            Op::Block { record, .. } => Some(record.until_ms),
            Op::Revoke { until_ms, .. }
            | Op::RevokeSession { until_ms, .. }
            | Op::RevokeBefore { until_ms, .. } => Some(*until_ms),
            Op::Unblock { .. } => None,
        }
    }

    /// Applies a change from another replica to the local copy (idempotent).
    fn apply(&self, controls: &Controls) {
        let local = controls.local();
        match self {
            Op::Block { target, record } => {
                if let Some(block) = record_block(controls, target, record) {
                    local.insert_block(block);
                }
            }
            Op::Unblock { target } => {
                if let Some(target) = parse_target(target) {
                    local.remove_block(&local.canonical(target));
                }
            }
            Op::Revoke { jti, until_ms } => {
                // Full: the revocation still holds on the replicas with room, and in the
                // store; this copy gets it at a resync once room is made.
                let _ = local.revoke_until(jti, until_ms.saturating_mul(1000));
            }
            Op::RevokeSession { sid, until_ms } => {
                let _ = local.revoke_session_until(sid, until_ms.saturating_mul(1000));
            }
            Op::RevokeBefore { subject, before_s, until_ms } => {
                let _ = local.revoke_before_until(subject, *before_s, until_ms.saturating_mul(1000));
            }
        }
    }
}

/// A store field and value of the `sig` HASH (`s\t<sid>` or `i\t<subject>` → `before end`)
/// as a signal revocation.
fn parse_signal(field: &str, value: &str) -> Option<SignalRevocation> {
    let (before, until) = value.split_once(' ')?;
    let (before_s, until_ms) = (before.parse::<u64>().ok()?, until.parse::<u64>().ok()?);
    let until_us = until_ms.saturating_mul(1000);
    match field.split_once('\t')? {
        ("s", sid) => Some(SignalRevocation::Session { sid: Arc::from(sid), until_us }),
        ("i", subject) => {
            Some(SignalRevocation::IssuedBefore { subject: Arc::from(subject), before_s, until_us })
        }
        _ => None,
    }
}

fn millis(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `kind:value` (a target's display text) as a target.
fn parse_target(text: &str) -> Option<Target> {
    let (kind, value) = text.split_once(':')?;
    match kind {
        "subject" => Some(Target::Subject(value.to_string())),
        "principal" => Some(Target::Principal(value.to_string())),
        "client" => Some(Target::Client(value.to_string())),
        "address" => value.parse().ok().map(Target::Address),
        "network" => value.parse::<IpNet>().ok().map(Target::Network),
        _ => None,
    }
}

fn record_block(controls: &Controls, target: &str, record: &BlockRecord) -> Option<Arc<Block>> {
    let target = parse_target(target)?;
    let kind = match &record.challenge {
        None => BlockKind::Deny,
        Some(c) => BlockKind::Challenge(ChallengeResponse {
            status: c.status,
            headers: c.headers.clone(),
            body: c.body.clone(),
        }),
    };
    Some(controls.local().make_block(
        target,
        kind,
        &record.reason,
        record.automatic,
        record.created_ms.saturating_mul(1000),
        record.until_ms.saturating_mul(1000),
        None,
    ))
}

/// Where a write stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// Sent, no answer yet.
    InFlight,
    /// The store did not take it: retried at the next resync.
    Failed,
    /// Taken, as this version of this epoch: kept until a loaded copy includes it.
    Acked { epoch: String, ver: i64 },
}

struct Pending {
    seq: u64,
    op: Op,
    status: Status,
}

/// What this replica applied of the store, and its changes not yet in a loaded copy.
#[derive(Default)]
struct State {
    epoch: Option<String>,
    ver: i64,
    pending: HashMap<String, Pending>,
}

impl State {
    /// Moves the applied version on when `ver` is the very next one (every earlier change
    /// was applied); otherwise the next resync loads the store.
    fn advance(&mut self, epoch: &str, ver: i64) {
        if self.epoch.as_deref() == Some(epoch) && ver == self.ver + 1 {
            self.ver = ver;
        }
    }
}

/// The store's answer to a write: its epoch and version, and the script's outcome.
struct Ack {
    epoch: String,
    ver: i64,
    done: i64,
}

struct Keys {
    blocks: String,
    blocks_exp: String,
    rev: String,
    rev_exp: String,
    ver: String,
    epoch: String,
    sig: String,
    sig_exp: String,
}

struct Scripts {
    block: Script,
    unblock: Script,
    revoke: Script,
    signal: Script,
    seed: Script,
    snapshot: Script,
}

/// One replica's link between its [`Controls`] and the fleet's store.
pub(crate) struct SharedControls {
    fleet: Fleet,
    /// The same stores as the Guard's `Controls`, without this link (applying a change
    /// never writes it back).
    controls: Controls,
    keys: Keys,
    scripts: Scripts,
    max_blocks: usize,
    max_revocations: usize,
    state: Mutex<State>,
    seq: AtomicU64,
}

/// Makes `controls` this replica's copy of the fleet's blocks and revocations: its writes go
/// to the store, other replicas' changes come back to it (module docs).
pub(crate) fn share_controls(controls: &Controls, fleet: &Fleet) {
    let (max_blocks, max_revocations) = controls.local().capacity();
    let script =
        |body: &str, epoch: bool| Script::new(&format!("{SWEEP}{}{body}", if epoch { EPOCH } else { "" }));
    let shared = Arc::new(SharedControls {
        fleet: fleet.clone(),
        controls: controls.detached(),
        keys: Keys {
            blocks: fleet.key("{ctl}:blocks"),
            blocks_exp: fleet.key("{ctl}:blocks:exp"),
            rev: fleet.key("{ctl}:rev"),
            rev_exp: fleet.key("{ctl}:rev:exp"),
            ver: fleet.key("{ctl}:ver"),
            epoch: fleet.key("{ctl}:epoch"),
            sig: fleet.key("{ctl}:sig"),
            sig_exp: fleet.key("{ctl}:sig:exp"),
        },
        scripts: Scripts {
            block: script(BLOCK, true),
            unblock: script(UNBLOCK, true),
            revoke: script(REVOKE, true),
            signal: script(&format!("{PUT_SIGNAL}{SIGNAL}"), true),
            seed: script(&format!("{PUT_SIGNAL}{SEED}"), true),
            snapshot: script(SNAPSHOT, false),
        },
        max_blocks,
        max_revocations,
        state: Mutex::new(State::default()),
        seq: AtomicU64::new(0),
    });
    fleet.listen(TOPIC, Arc::new(ControlsListener(Arc::downgrade(&shared))));
    controls.attach(shared);
}

impl SharedControls {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.controls.local().now_micros() / 1000
    }

    /// A fresh epoch id, used only if the store has none.
    fn candidate_epoch(&self) -> String {
        format!("{}-{}", self.fleet.replica_id(), self.controls.local().now_micros())
    }

    /// Records `op` as pending (replacing an older change of the same thing); its sequence
    /// number, or `None` when too many are pending already.
    fn track(&self, op: &Op, status: Status) -> Option<u64> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        if state.pending.len() >= MAX_PENDING && !state.pending.contains_key(&op.slot()) {
            // Acknowledged ones are in the store already: make room with them first.
            state.pending.retain(|_, p| !matches!(p.status, Status::Acked { .. }));
            if state.pending.len() >= MAX_PENDING {
                return None;
            }
        }
        state.pending.insert(op.slot(), Pending { seq, op: op.clone(), status });
        Some(seq)
    }

    /// Writes `op` in the background (detection's blocks, the plain `Controls` methods):
    /// applied locally already, so the request never waits for the store.
    pub(crate) fn spawn(self: &Arc<Self>, op: Op) {
        let Some(seq) = self.track(&op, Status::InFlight) else {
            tracing::warn!(target: "zt::fleet", "too many control changes wait for the shared store: this one stays on this replica");
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to write from: the next resync writes it.
            self.settle(seq, &op, Err(FleetError::Unreachable));
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let outcome = this.write(&op).await;
            this.settle(seq, &op, outcome);
        });
    }

    /// Writes `op` and waits for the store (the controls API): Ok(true) when the script did
    /// what was asked (for an unblock: a block was held). On an error the change is
    /// forgotten: the caller changes nothing locally and reports it.
    pub(crate) async fn confirm(&self, op: Op) -> Result<bool, ControlError> {
        let seq = self.track(&op, Status::InFlight);
        let outcome = self.write(&op).await;
        let mut state = self.state();
        let matches = |state: &State| {
            seq.is_some_and(|seq| state.pending.get(&op.slot()).is_some_and(|p| p.seq == seq))
        };
        match outcome {
            Ok(ack) if ack.done >= 0 => {
                if matches(&state)
                    && let Some(p) = state.pending.get_mut(&op.slot())
                {
                    p.status = Status::Acked { epoch: ack.epoch.clone(), ver: ack.ver };
                }
                state.advance(&ack.epoch, ack.ver);
                Ok(ack.done > 0)
            }
            Ok(_) => {
                if matches(&state) {
                    state.pending.remove(&op.slot());
                }
                Err(ControlError::RevocationsFull)
            }
            Err(e) => {
                if matches(&state) {
                    state.pending.remove(&op.slot());
                }
                drop(state);
                write_failed(&op, &e, "not changed");
                Err(ControlError::StoreUnavailable { cause: e.cause() })
            }
        }
    }

    /// The outcome of a background write.
    fn settle(&self, seq: u64, op: &Op, outcome: Result<Ack, FleetError>) {
        let mut state = self.state();
        let current = state.pending.get(&op.slot()).is_some_and(|p| p.seq == seq);
        match outcome {
            Ok(ack) => {
                if current && let Some(p) = state.pending.get_mut(&op.slot()) {
                    p.status = if ack.done < 0 {
                        // The store is full of unexpired revocations: kept, retried.
                        Status::Failed
                    } else {
                        Status::Acked { epoch: ack.epoch.clone(), ver: ack.ver }
                    };
                }
                state.advance(&ack.epoch, ack.ver);
            }
            Err(e) => {
                if current && let Some(p) = state.pending.get_mut(&op.slot()) {
                    p.status = Status::Failed;
                }
                drop(state);
                write_failed(op, &e, "enforced on this replica, written when the store answers");
            }
        }
    }

    /// One write script call.
    async fn write(&self, op: &Op) -> Result<Ack, FleetError> {
        let message = serde_json::to_string(op).map_err(|_| FleetError::Server)?;
        let script = match op {
            Op::Block { .. } => &self.scripts.block,
            Op::Unblock { .. } => &self.scripts.unblock,
            Op::Revoke { .. } => &self.scripts.revoke,
            Op::RevokeSession { .. } | Op::RevokeBefore { .. } => &self.scripts.signal,
        };
        let mut call = script.prepare_invoke();
        self.with_keys(&mut call);
        call.arg(self.now_ms())
            .arg(self.candidate_epoch())
            .arg(self.fleet.key("bus"))
            .arg(self.fleet.envelope(TOPIC, ""));
        match op {
            Op::Block { target, record } => {
                let record_json = serde_json::to_string(record).map_err(|_| FleetError::Server)?;
                call.arg(target).arg(record_json).arg(record.until_ms).arg(self.max_blocks);
            }
            Op::Unblock { target } => {
                call.arg(target);
            }
            Op::Revoke { jti, until_ms } => {
                call.arg(jti).arg(*until_ms).arg(self.max_revocations);
            }
            Op::RevokeSession { .. } | Op::RevokeBefore { .. } => {
                let (field, before_s, until_ms) = op.signal_field().ok_or(FleetError::Server)?;
                call.arg(field).arg(before_s).arg(until_ms).arg(self.max_revocations);
            }
        }
        call.arg(message);
        let (epoch, ver, done): (String, i64, i64) = self.fleet.invoke(&call).await?;
        Ok(Ack { epoch, ver, done })
    }

    fn with_keys(&self, call: &mut redis::ScriptInvocation<'_>) {
        let k = &self.keys;
        call.key(&k.blocks)
            .key(&k.blocks_exp)
            .key(&k.rev)
            .key(&k.rev_exp)
            .key(&k.ver)
            .key(&k.epoch)
            .key(&k.sig)
            .key(&k.sig_exp);
    }

    /// A change pushed by another replica: `version \t epoch \t change`.
    fn on_message(&self, body: &str) {
        let mut parts = body.splitn(3, '\t');
        let (Some(ver), Some(epoch), Some(change)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let (Ok(ver), Ok(op)) = (ver.parse::<i64>(), serde_json::from_str::<Op>(change)) else {
            tracing::debug!(target: "zt::fleet", "an unreadable control change on the bus was ignored");
            return;
        };
        op.apply(&self.controls);
        self.state().advance(epoch, ver);
    }

    /// Retries failed writes, then loads the store when it moved; seeds it from this copy
    /// when it was emptied (module docs).
    async fn resync(&self) -> Result<(), FleetError> {
        self.retry_failed().await?;
        let (epoch, ver) = {
            let state = self.state();
            (state.epoch.clone(), state.ver)
        };
        let mut snapshot = self.snapshot(epoch.as_deref().unwrap_or(""), ver).await?;
        let emptied = snapshot.epoch.is_empty() || epoch.as_ref().is_some_and(|e| *e != snapshot.epoch);
        if emptied {
            if epoch.is_some() {
                tracing::warn!(
                    target: "zt::fleet",
                    "the shared store lost the controls (restarted empty?): writing this replica's copy back"
                );
            }
            self.seed().await?;
            snapshot = self.snapshot("", -1).await?;
        }
        if snapshot.changed {
            self.load(snapshot, emptied);
        } else {
            let mut state = self.state();
            let (epoch, ver) = (snapshot.epoch, snapshot.ver);
            state.pending.retain(|_, p| !covered(&p.status, &epoch, ver));
        }
        Ok(())
    }

    async fn retry_failed(&self) -> Result<(), FleetError> {
        let now_ms = self.now_ms();
        let failed: Vec<(u64, Op)> = {
            let mut state = self.state();
            // A change whose end passed needs no writing any more.
            state.pending.retain(|_, p| p.op.until_ms().is_none_or(|until| until > now_ms));
            state
                .pending
                .values()
                .filter(|p| p.status == Status::Failed)
                .map(|p| (p.seq, p.op.clone()))
                .collect()
        };
        for (seq, op) in failed {
            let outcome = self.write(&op).await;
            let failed = outcome.as_ref().err().cloned();
            match outcome {
                Ok(ack) => self.settle(seq, &op, Ok(ack)),
                Err(_) => {
                    // Still failed; said once when it first failed.
                    return Err(failed.unwrap_or(FleetError::Unreachable));
                }
            }
        }
        Ok(())
    }

    async fn snapshot(&self, epoch: &str, ver: i64) -> Result<Snapshot, FleetError> {
        let mut call = self.scripts.snapshot.prepare_invoke();
        self.with_keys(&mut call);
        call.arg(self.now_ms()).arg(epoch).arg(ver);
        let (epoch, ver, changed, blocks, revocations, signals): (
            String,
            i64,
            i64,
            Vec<String>,
            Vec<String>,
            Vec<String>,
        ) = self.fleet.invoke(&call).await?;
        Ok(Snapshot { epoch, ver, changed: changed != 0, blocks, revocations, signals })
    }

    /// Writes this copy's unexpired entries into the store (merged), in chunks.
    async fn seed(&self) -> Result<(), FleetError> {
        let blocks: Vec<(String, String, u64)> = self
            .controls
            .local()
            .live_blocks()
            .iter()
            .filter_map(|block| match Op::block(block) {
                Op::Block { target, record } => {
                    serde_json::to_string(&record).ok().map(|json| (target, json, record.until_ms))
                }
                _ => None,
            })
            .collect();
        let revocations: Vec<(Arc<str>, u64)> = self
            .controls
            .local()
            .live_revocations()
            .into_iter()
            .map(|(jti, until_us)| (jti, until_us.div_ceil(1000)))
            .collect();
        let signals: Vec<(String, u64, u64)> = self
            .controls
            .local()
            .live_signals()
            .into_iter()
            .filter_map(|entry| {
                let op = match entry {
                    SignalRevocation::Session { sid, until_us } => Op::revoke_session(&sid, until_us),
                    SignalRevocation::IssuedBefore { subject, before_s, until_us } => {
                        Op::revoke_before(&subject, before_s, until_us)
                    }
                };
                op.signal_field()
            })
            .collect();
        let mut blocks = blocks.chunks(SEED_CHUNK);
        let mut revocations = revocations.chunks(SEED_CHUNK);
        let mut signals = signals.chunks(SEED_CHUNK);
        // At least one call, so an empty store gets its epoch.
        let mut first = true;
        loop {
            let (b, r) = (blocks.next().unwrap_or_default(), revocations.next().unwrap_or_default());
            let g = signals.next().unwrap_or_default();
            if b.is_empty() && r.is_empty() && g.is_empty() && !first {
                return Ok(());
            }
            first = false;
            let mut call = self.scripts.seed.prepare_invoke();
            self.with_keys(&mut call);
            call.arg(self.now_ms())
                .arg(self.candidate_epoch())
                .arg(b.len())
                .arg(self.max_blocks)
                .arg(self.max_revocations)
                .arg(r.len());
            for (target, record, until) in b {
                call.arg(target).arg(record).arg(*until);
            }
            for (jti, until) in r {
                call.arg(&**jti).arg(*until);
            }
            for (field, before, until) in g {
                call.arg(field).arg(*before).arg(*until);
            }
            let _: (String, i64, i64) = self.fleet.invoke(&call).await?;
        }
    }

    /// Replaces the copy with the store's, this replica's pending changes laid over it.
    fn load(&self, snapshot: Snapshot, seeded: bool) {
        let mut state = self.state();
        let (epoch, ver) = (snapshot.epoch.clone(), snapshot.ver);
        // Included in this copy: the store took them before it was read (or, after a seed,
        // they were in the copy written back).
        state.pending.retain(|_, p| {
            !(covered(&p.status, &epoch, ver) || (seeded && matches!(p.status, Status::Acked { .. })))
        });
        let mut blocks: HashMap<String, Arc<Block>> = HashMap::new();
        for pair in snapshot.blocks.chunks_exact(2) {
            let [target, json] = pair else { continue };
            let Ok(record) = serde_json::from_str::<BlockRecord>(json) else { continue };
            if let Some(block) = record_block(&self.controls, target, &record) {
                blocks.insert(target.clone(), block);
            }
        }
        let mut revocations: HashMap<String, u64> = HashMap::new();
        for pair in snapshot.revocations.chunks_exact(2) {
            let [jti, until] = pair else { continue };
            if let Ok(until) = until.parse::<f64>() {
                // Scores are whole milliseconds, well within f64's exact integers.
                revocations.insert(jti.clone(), (until.max(0.0) as u64).saturating_mul(1000));
            }
        }
        for pending in state.pending.values() {
            match &pending.op {
                Op::Block { target, record } => {
                    if let Some(block) = record_block(&self.controls, target, record) {
                        blocks.insert(target.clone(), block);
                    }
                }
                Op::Unblock { target } => {
                    blocks.remove(target);
                }
                Op::Revoke { jti, until_ms } => {
                    let until = until_ms.saturating_mul(1000);
                    let held = revocations.entry(jti.clone()).or_insert(until);
                    *held = (*held).max(until);
                }
                // Merged below: this copy already holds them.
                Op::RevokeSession { .. } | Op::RevokeBefore { .. } => {}
            }
        }
        let revocations = revocations.into_iter().map(|(jti, until_us)| (Arc::from(jti), until_us)).collect();
        self.controls.local().replace(blocks.into_values().collect(), revocations);
        let signals = snapshot
            .signals
            .chunks_exact(2)
            .filter_map(|pair| match pair {
                [field, value] => parse_signal(field, value),
                _ => None,
            })
            .collect();
        self.controls.local().merge_signals(signals);
        state.epoch = Some(epoch);
        state.ver = ver;
    }
}

/// Whether a loaded copy at (`epoch`, `ver`) includes a change with this status.
fn covered(status: &Status, epoch: &str, ver: i64) -> bool {
    matches!(status, Status::Acked { epoch: e, ver: v } if e == epoch && *v <= ver)
}

struct Snapshot {
    epoch: String,
    ver: i64,
    changed: bool,
    blocks: Vec<String>,
    revocations: Vec<String>,
    /// The `sig` HASH, field and value in turn.
    signals: Vec<String>,
}

fn write_failed(op: &Op, error: &FleetError, outcome: &'static str) {
    let kind = match op {
        Op::Block { .. } => "block",
        Op::Unblock { .. } => "unblock",
        Op::Revoke { .. } => "revoke",
        Op::RevokeSession { .. } => "revoke_session",
        Op::RevokeBefore { .. } => "revoke_issued_before",
    };
    metrics::counter!("zt_fleet_control_write_failures_total", "op" => kind).increment(1);
    tracing::event!(
        target: "zt::fleet",
        tracing::Level::WARN,
        zt.control = kind,
        error.type = error.cause(),
        zt.outcome = outcome,
        "a control change did not reach the shared store"
    );
}

/// The bus side: holds the link weakly, so dropping the Guard ends it.
struct ControlsListener(Weak<SharedControls>);

impl FleetListener for ControlsListener {
    fn on_message(&self, body: &str) {
        if let Some(shared) = self.0.upgrade() {
            shared.on_message(body);
        }
    }

    fn resync(&self, _fleet: Fleet) -> BoxFuture<'static, Result<(), FleetError>> {
        let weak = self.0.clone();
        Box::pin(async move {
            match weak.upgrade() {
                Some(shared) => shared.resync().await,
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_back_from_their_text() {
        for text in [
            "subject:alice",
            "principal:https://issuer.test|sub:alice",
            "client:web",
            "address:192.0.2.7",
            "address:2001:db8::1",
            "network:10.0.0.0/8",
        ] {
            assert_eq!(parse_target(text).map(|t| t.to_string()).as_deref(), Some(text));
        }
        assert!(parse_target("tenant:x").is_none());
        assert!(parse_target("address:not-an-ip").is_none());
        assert!(parse_target("subject").is_none());
    }

    #[test]
    fn changes_round_trip_through_their_json() {
        let op = Op::Block {
            target: "subject:alice".into(),
            record: BlockRecord {
                challenge: Some(ChallengeRecord {
                    status: 401,
                    headers: vec![("x".into(), "y".into())],
                    body: "b".into(),
                }),
                reason: "r".into(),
                automatic: true,
                created_ms: 1,
                until_ms: 2,
            },
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op);
        let op = Op::revoke("j", 1_500);
        assert_eq!(op, Op::Revoke { jti: "j".into(), until_ms: 2 }, "rounded up");
        assert_eq!(op.slot(), "r\tj");
    }

    #[test]
    fn the_applied_version_moves_only_one_step_at_a_time() {
        let mut state = State { epoch: Some("e".into()), ver: 4, pending: HashMap::new() };
        state.advance("e", 6);
        assert_eq!(state.ver, 4, "a change in between was not seen");
        state.advance("other", 5);
        assert_eq!(state.ver, 4, "another epoch");
        state.advance("e", 5);
        assert_eq!(state.ver, 5);
        assert!(covered(&Status::Acked { epoch: "e".into(), ver: 5 }, "e", 5));
        assert!(!covered(&Status::Acked { epoch: "e".into(), ver: 6 }, "e", 5));
        assert!(!covered(&Status::Failed, "e", 5));
    }
}
