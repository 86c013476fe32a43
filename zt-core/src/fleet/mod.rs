//! One security posture across the replicas of a service.
//!
//! Quotas, blocks, revocations, lockouts and the detection counters that only mean something
//! fleet-wide live in one Redis (or Valkey) deployment that every replica reaches: the
//! policy's `[fleet]` section ([`FleetConfig`]). A `Fleet` (feature `redis`) is the one handle to it:
//!
//! - **Commands** go through one multiplexed connection (a cluster connection for Redis
//!   Cluster; for Sentinel, one to the current primary, found again after a failover), each
//!   with the configured `timeout`. Keys are namespaced and versioned: `{prefix}:v1:...`.
//! - **Changes** are broadcast on one pub/sub channel (`{prefix}:v1:bus`); each kind of
//!   shared state registers a `FleetListener` under a topic and applies what other
//!   replicas publish, so its checks stay local and lock-free.
//! - **Resync**: right after (re)subscribing, and every `sync_interval`, every listener
//!   reloads its whole state, so a lost push or a Redis restart is repaired within one
//!   interval. The same tick is the replica's heartbeat (the live replica count).
//! - **Down**: while the store is unreachable replicas keep enforcing their last synced
//!   copy; `zt_fleet_up` is 0, `zt_fleet_sync_age_seconds` grows, and once it passes
//!   `stale_after` a WARN event (target `zt::fleet`) says so.
//!
//! The background task starts on the first request (or `Fleet::start`) inside the
//! application's Tokio runtime.

mod config;
#[cfg(feature = "redis")]
pub(crate) mod controls;
#[cfg(feature = "redis")]
mod keys;
#[cfg(feature = "redis")]
mod runtime;

#[cfg(feature = "redis")]
pub(crate) use keys::share_key_changes;

pub use config::{FleetConfig, FleetSecret, FleetTlsConfig, SentinelConfig};
#[cfg(feature = "redis")]
pub use runtime::{Fleet, FleetConnection, FleetError, FleetListener};
