//! The `[fleet]` policy section: where the replicas of one service share their security
//! posture (Redis or Valkey: one server, Sentinel, or Cluster).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the replicas of a service reach their shared store, and how stale a replica's copy
/// of the shared controls may grow. Every field but the connection has a default.
///
/// ```
/// use zt_core::fleet::FleetConfig;
///
/// let config: FleetConfig = toml::from_str(r#"
///     url = "redis://127.0.0.1:6379/"
///     sync_interval = "2s"
/// "#).unwrap();
/// assert_eq!(config.prefix, "zt");
/// assert_eq!(config.stale_after.as_secs(), 30);
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// One server: `redis://[user:password@]host[:port][/db]`, `rediss://` for TLS (rustls;
    /// see [`FleetConfig::tls`]), or `redis+unix:///path`. Exactly one of `url`, `sentinel`
    /// and `cluster` is given.
    #[serde(default)]
    pub url: Option<String>,
    /// A Sentinel-managed primary: the replicas follow failovers.
    #[serde(default)]
    pub sentinel: Option<SentinelConfig>,
    /// A Redis Cluster: the seed nodes' URLs.
    #[serde(default)]
    pub cluster: Vec<String>,
    /// Certificates for `rediss://` (default: the system's roots, no client certificate).
    #[serde(default)]
    pub tls: Option<FleetTlsConfig>,
    /// Namespace of every key and channel (default `zt`): keys are `{prefix}:v1:...`, so two
    /// services (or two versions of zt's key layout) never read each other's state.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Budget of one round trip, connection included (default 100 ms). A slower answer
    /// counts as the store being unreachable.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Full resync of the shared controls, and the replica heartbeat, this often (default
    /// 2 s). Changes are pushed at once over pub/sub; this bounds the staleness when a push
    /// is lost.
    #[serde(default = "default_sync_interval", with = "humantime_serde")]
    pub sync_interval: Duration,
    /// A replica whose copy is older than this (the store unreachable) raises a WARN event
    /// and the `zt_fleet_sync_age_seconds` gauge says how old it is (default 30 s). It keeps
    /// enforcing the last synced copy.
    #[serde(default = "default_stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
    /// A replica that has not sent a heartbeat for this long no longer counts as live
    /// (default 10 s). The live count divides local limits while the store is down.
    #[serde(default = "default_replica_ttl", with = "humantime_serde")]
    pub replica_ttl: Duration,
    /// The environment variable holding the fleet-wide secret (at least 16 bytes) that keys
    /// shared detection counters by HMAC, so Redis never holds caller names in clear.
    /// Without one, shared detection counters are off.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The fleet-wide secret given in code (e.g. read from a secret manager), used instead
    /// of `secret_env`. Never read from or written to a policy file.
    #[serde(skip)]
    pub secret: Option<FleetSecret>,
}

/// A fleet-wide secret handed over in code ([`FleetConfig::secret`]); at least 16 bytes,
/// checked when the fleet is built. Its `Debug` never shows it.
///
/// ```
/// let mut fleet = zt_core::fleet::FleetConfig::new("redis://127.0.0.1:6379");
/// fleet.secret = Some(zt_core::fleet::FleetSecret::new("from-the-secret-manager-0123"));
/// assert!(!format!("{fleet:?}").contains("secret-manager"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FleetSecret(std::sync::Arc<[u8]>);

impl FleetSecret {
    /// The secret's bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> FleetSecret {
        FleetSecret(bytes.into().into())
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for FleetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetSecret(<redacted>)")
    }
}

/// A Sentinel deployment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The monitored primary's name (`sentinel monitor <name> ...`).
    pub master: String,
    /// The sentinels' URLs (`redis://host:26379`).
    pub urls: Vec<String>,
}

/// Certificates for TLS connections to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetTlsConfig {
    /// PEM file of the CA that signed the server's certificate (default: system roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM file of a client certificate (mutual TLS), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub key_file: Option<String>,
}

impl FleetConfig {
    /// One server at `url`, every other setting at its default.
    pub fn new(url: impl Into<String>) -> FleetConfig {
        FleetConfig {
            url: Some(url.into()),
            sentinel: None,
            cluster: Vec::new(),
            tls: None,
            prefix: default_prefix(),
            timeout: default_timeout(),
            sync_interval: default_sync_interval(),
            stale_after: default_stale_after(),
            replica_ttl: default_replica_ttl(),
            secret_env: None,
            secret: None,
        }
    }
}

/// `scheme://<redacted>@host` for a URL that may carry a password.
pub(crate) fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://<redacted>@{host}"),
            None => url.to_string(),
        },
        None => "<unparsed>".to_string(),
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &self.url.as_deref().map(redacted))
            .field("sentinel", &self.sentinel)
            .field("cluster", &self.cluster.iter().map(|u| redacted(u)).collect::<Vec<_>>())
            .field("tls", &self.tls)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("sync_interval", &self.sync_interval)
            .field("stale_after", &self.stale_after)
            .field("replica_ttl", &self.replica_ttl)
            .field("secret_env", &self.secret_env)
            .field("secret", &self.secret)
            .finish()
    }
}

impl fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("master", &self.master)
            .field("urls", &self.urls.iter().map(|u| redacted(u)).collect::<Vec<_>>())
            .finish()
    }
}

fn default_prefix() -> String {
    "zt".to_string()
}
fn default_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_sync_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_stale_after() -> Duration {
    Duration::from_secs(30)
}
fn default_replica_ttl() -> Duration {
    Duration::from_secs(10)
}
