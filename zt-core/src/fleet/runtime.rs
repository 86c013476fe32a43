//! The fleet's connection, bus and background task (documented on the module `fleet`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, Script, ScriptInvocation, Value};

use super::config::{FleetConfig, redacted};
use crate::error::PolicyError;

/// The version of zt's key layout, part of every key and channel name.
const LAYOUT: &str = "v1";

/// Why a round trip to the store did not complete. Its text names the kind of failure only,
/// never a URL, key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// No answer within the configured timeout.
    #[error("the shared store did not answer in time")]
    Timeout,
    /// No connection (refused, lost, or not yet made outside a Tokio runtime).
    #[error("the shared store is unreachable")]
    Unreachable,
    /// The store answered with an error, or with a reply of an unexpected shape.
    #[error("the shared store answered with an error")]
    Server,
}

impl FleetError {
    /// A short cause for events and metrics (`timeout`, `unreachable`, `server_error`).
    pub fn cause(&self) -> &'static str {
        match self {
            FleetError::Timeout => "timeout",
            FleetError::Unreachable => "unreachable",
            FleetError::Server => "server_error",
        }
    }

    fn of(e: &RedisError) -> FleetError {
        if e.is_timeout() {
            FleetError::Timeout
        } else if e.is_connection_refusal()
            || e.is_io_error()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
        {
            FleetError::Unreachable
        } else {
            FleetError::Server
        }
    }
}

/// A kind of shared state kept in step across replicas (blocks and revocations, lockouts,
/// key-set changes...). Registered with [`Fleet::listen`] under a topic.
pub trait FleetListener: Send + Sync + 'static {
    /// Another replica published `body` on this listener's topic: apply it to the local copy.
    /// Called on the fleet's task: must not block.
    fn on_message(&self, body: &str);

    /// Reload the whole shared state into the local copy (after (re)subscribing and every
    /// `sync_interval`). An error leaves the copy as it was, and the fleet counts as down.
    fn resync(&self, fleet: Fleet) -> BoxFuture<'static, Result<(), FleetError>>;
}

/// A connection to the store for commands: cheap to clone (one multiplexed connection
/// underneath), usable with `redis` commands, pipelines and scripts.
#[derive(Clone)]
pub enum FleetConnection {
    /// One server, or the current primary of a Sentinel deployment.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for FleetConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            FleetConnection::Single(c) => c.req_packed_command(cmd),
            FleetConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            FleetConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            FleetConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            FleetConnection::Single(c) => c.get_db(),
            FleetConnection::Cluster(c) => c.get_db(),
        }
    }
}

// One per fleet, inside its Arc: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Target {
    Single(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster { client: ClusterClient, bus: redis::Client },
}

/// The handle to the shared store. Cheap to clone (one reference count).
///
/// ```no_run
/// use zt_core::fleet::{Fleet, FleetConfig};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::new(&FleetConfig::new("redis://127.0.0.1:6379/"))?;
/// fleet.start();
/// let mut get = redis::cmd("GET");
/// get.arg(fleet.key("example"));
/// let value: Option<String> = fleet.query(&get).await?;
/// # let _ = value; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    prefix: Box<str>,
    timeout: Duration,
    sync_interval: Duration,
    stale_after: Duration,
    replica_ttl: Duration,
    replica_id: Box<str>,
    secret: Option<Box<[u8]>>,
    connection: ArcSwapOption<FleetConnection>,
    connecting: tokio::sync::Mutex<()>,
    listeners: RwLock<HashMap<&'static str, Arc<dyn FleetListener>>>,
    started: AtomicBool,
    up: AtomicBool,
    /// Unix milliseconds of the last complete resync; 0: never.
    synced_at_ms: AtomicU64,
    stale_reported: AtomicBool,
    live_replicas: AtomicU32,
    synced: tokio::sync::Notify,
    heartbeat: Script,
    /// Set once the task ends (for tests that drop a fleet).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("prefix", &self.inner.prefix)
            .field("replica", &self.inner.replica_id)
            .field("up", &self.inner.up.load(Ordering::Relaxed))
            .field("live_replicas", &self.inner.live_replicas.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Registers the replica and counts the live ones, on the server's clock. KEYS[1]: the
/// replica set. ARGV: replica id, ttl in ms. Returns the live count.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn read_pem(at: &str, path: &str) -> Result<Vec<u8>, PolicyError> {
    std::fs::read(path).map_err(|e| PolicyError::invalid(at, format!("cannot read {path}: {e}")))
}

impl Fleet {
    /// Validates the configuration and prepares the connection; nothing connects yet (the
    /// background task and the first command do, inside the application's runtime).
    /// Errors name the entry (`fleet.*`) and never repeat a URL.
    pub fn new(config: &FleetConfig) -> Result<Fleet, PolicyError> {
        let given = usize::from(config.url.is_some())
            + usize::from(config.sentinel.is_some())
            + usize::from(!config.cluster.is_empty());
        if given != 1 {
            return Err(PolicyError::invalid("fleet", "give exactly one of `url`, `sentinel` and `cluster`"));
        }
        for (at, value) in [
            ("fleet.timeout", config.timeout),
            ("fleet.sync_interval", config.sync_interval),
            ("fleet.stale_after", config.stale_after),
            ("fleet.replica_ttl", config.replica_ttl),
        ] {
            if value.is_zero() {
                return Err(PolicyError::invalid(at, "must be longer than zero"));
            }
        }
        if config.replica_ttl <= config.sync_interval {
            return Err(PolicyError::invalid(
                "fleet.replica_ttl",
                "must be longer than sync_interval (each replica beats once per interval)",
            ));
        }
        let prefix = config.prefix.as_str();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}') {
            return Err(PolicyError::invalid(
                "fleet.prefix",
                "must be non-empty printable ASCII without spaces or braces",
            ));
        }
        let certificates = match &config.tls {
            None => None,
            Some(tls) => {
                let root_cert =
                    tls.ca_file.as_deref().map(|p| read_pem("fleet.tls.ca_file", p)).transpose()?;
                let client_tls = match (&tls.cert_file, &tls.key_file) {
                    (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                        client_cert: read_pem("fleet.tls.cert_file", cert)?,
                        client_key: read_pem("fleet.tls.key_file", key)?,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(PolicyError::invalid("fleet.tls", "cert_file and key_file go together"));
                    }
                };
                Some(redis::TlsCertificates { client_tls, root_cert })
            }
        };
        let client = |at: &str, url: &str| {
            let made = match &certificates {
                Some(certs) => redis::Client::build_with_tls(url, certs.clone()),
                None => redis::Client::open(url),
            };
            made.map_err(|_| {
                PolicyError::invalid(
                    at,
                    format!(
                        "{} is not a valid Redis URL (redis://, rediss://, redis+unix://)",
                        redacted(url)
                    ),
                )
            })
        };
        let target = if let Some(url) = &config.url {
            Target::Single(client("fleet.url", url)?)
        } else if let Some(sentinel) = &config.sentinel {
            if sentinel.master.is_empty() || sentinel.urls.is_empty() {
                return Err(PolicyError::invalid(
                    "fleet.sentinel",
                    "name the master and at least one sentinel",
                ));
            }
            for (i, url) in sentinel.urls.iter().enumerate() {
                client(&format!("fleet.sentinel.urls[{i}]"), url)?;
            }
            let built = SentinelClient::build(
                sentinel.urls.clone(),
                sentinel.master.clone(),
                None,
                SentinelServerType::Master,
            )
            .map_err(|_| PolicyError::invalid("fleet.sentinel", "cannot build a Sentinel client"))?;
            Target::Sentinel(tokio::sync::Mutex::new(built))
        } else {
            for (i, url) in config.cluster.iter().enumerate() {
                client(&format!("fleet.cluster[{i}]"), url)?;
            }
            let mut builder = ClusterClient::builder(config.cluster.clone())
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                .retries(1);
            if let Some(certs) = &certificates {
                builder = builder.certs(certs.clone());
            }
            let cluster = builder
                .build()
                .map_err(|_| PolicyError::invalid("fleet.cluster", "cannot build a Cluster client"))?;
            // Classic pub/sub is propagated to every node of a cluster: one node is enough.
            let bus = client("fleet.cluster[0]", &config.cluster[0])?;
            Target::Cluster { client: cluster, bus }
        };
        let secret = match (&config.secret, &config.secret_env) {
            (Some(secret), _) => {
                if secret.bytes().len() < 16 {
                    return Err(PolicyError::invalid("fleet.secret", "the secret must be at least 16 bytes"));
                }
                Some(secret.bytes().to_vec().into_boxed_slice())
            }
            (None, None) => None,
            (None, Some(name)) => {
                let value = PolicyError::secret_from_env("fleet.secret_env", name, 16)?;
                Some(value.into_bytes().into_boxed_slice())
            }
        };
        let replica_id = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        Ok(Fleet {
            inner: Arc::new(Inner {
                target,
                prefix: prefix.into(),
                timeout: config.timeout,
                sync_interval: config.sync_interval,
                stale_after: config.stale_after,
                replica_ttl: config.replica_ttl,
                replica_id: replica_id.into(),
                secret,
                connection: ArcSwapOption::empty(),
                connecting: tokio::sync::Mutex::new(()),
                listeners: RwLock::new(HashMap::new()),
                started: AtomicBool::new(false),
                up: AtomicBool::new(false),
                synced_at_ms: AtomicU64::new(0),
                stale_reported: AtomicBool::new(false),
                live_replicas: AtomicU32::new(1),
                synced: tokio::sync::Notify::new(),
                heartbeat: Script::new(HEARTBEAT),
                task: Mutex::new(None),
            }),
        })
    }

    /// The full name of a key (or channel): `{prefix}:v1:{name}`. Names that must share a
    /// cluster slot (because one script touches them together) put a common part in braces.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{LAYOUT}:{name}", self.inner.prefix)
    }

    /// This replica's id (process id and a random part), unique within the fleet.
    pub fn replica_id(&self) -> &str {
        &self.inner.replica_id
    }

    /// The budget of one round trip.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The resync interval: the bound on how stale a reachable replica's copy gets.
    pub fn sync_interval(&self) -> Duration {
        self.inner.sync_interval
    }

    /// The fleet-wide secret (from `secret_env`), for keying shared counters by HMAC.
    pub fn secret(&self) -> Option<&[u8]> {
        self.inner.secret.as_deref()
    }

    /// Replicas that sent a heartbeat within `replica_ttl`, this one included, as last seen
    /// (kept while the store is down). At least 1.
    pub fn live_replicas(&self) -> u32 {
        self.inner.live_replicas.load(Ordering::Relaxed).max(1)
    }

    /// Whether the last round trip (or resync) succeeded.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// How old this replica's copy of the shared state is; `None` before the first sync.
    pub fn sync_age(&self) -> Option<Duration> {
        match self.inner.synced_at_ms.load(Ordering::Acquire) {
            0 => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }

    /// Registers the local copy of one kind of shared state under `topic` (replacing one
    /// registered before). Register before the first request: a listener added later is
    /// first synced on the next tick.
    pub fn listen(&self, topic: &'static str, listener: Arc<dyn FleetListener>) {
        let mut listeners = self.inner.listeners.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        listeners.insert(topic, listener);
    }

    /// Starts the background task (subscription, resync, heartbeat) if it is not running
    /// and a Tokio runtime is current; true once it runs. Cheap after the first call (one
    /// atomic load): the Guard calls it on every request.
    pub fn start(&self) -> bool {
        if self.inner.started.load(Ordering::Acquire) {
            return true;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return false };
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return true;
        }
        // The task holds a weak handle: dropping the last Fleet ends it.
        let weak = Arc::downgrade(&self.inner);
        let task = handle.spawn(run(weak));
        if let Ok(mut slot) = self.inner.task.lock() {
            *slot = Some(task.abort_handle());
        }
        true
    }

    /// Starts the task and waits (at most `within`) for the first complete sync; true when
    /// it completed. A replica that must not serve with an empty copy (blocks and
    /// revocations not yet loaded) awaits this before serving; `Guard::warm_up` does.
    pub async fn synced(&self, within: Duration) -> bool {
        self.start();
        let wait = async {
            loop {
                let notified = self.inner.synced.notified();
                if self.inner.synced_at_ms.load(Ordering::Acquire) != 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// A connection for commands, made on first use (and again after a Sentinel failover).
    pub async fn connection(&self) -> Result<FleetConnection, FleetError> {
        if let Some(connection) = self.inner.connection.load_full() {
            return Ok((*connection).clone());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(FleetError::Unreachable);
        }
        let _single = self.inner.connecting.lock().await;
        if let Some(connection) = self.inner.connection.load_full() {
            return Ok((*connection).clone());
        }
        let made = tokio::time::timeout(self.inner.timeout, self.connect())
            .await
            .map_err(|_| FleetError::Timeout)??;
        self.inner.connection.store(Some(Arc::new(made.clone())));
        Ok(made)
    }

    async fn connect(&self) -> Result<FleetConnection, FleetError> {
        let manager = |client: redis::Client| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.inner.timeout))
                .set_response_timeout(Some(self.inner.timeout))
                // Reconnection is paced by the callers' own retries, never a loop that
                // would hold requests.
                .set_number_of_retries(0);
            ConnectionManager::new_lazy_with_config(client, config)
                .map(FleetConnection::Single)
                .map_err(|e| FleetError::of(&e))
        };
        match &self.inner.target {
            Target::Single(client) => manager(client.clone()),
            Target::Sentinel(sentinel) => {
                let client =
                    sentinel.lock().await.async_get_client().await.map_err(|e| FleetError::of(&e))?;
                manager(client)
            }
            Target::Cluster { client, .. } => client
                .get_async_connection()
                .await
                .map(FleetConnection::Cluster)
                .map_err(|e| FleetError::of(&e)),
        }
    }

    fn failed(&self, error: &FleetError) {
        if self.inner.up.swap(false, Ordering::AcqRel) {
            metrics::gauge!("zt_fleet_up").set(0.0);
            tracing::event!(
                target: "zt::fleet",
                tracing::Level::WARN,
                error.type = error.cause(),
                "shared store unreachable: enforcing the last synced controls"
            );
        }
        // A Sentinel primary may have moved: find it again on the next command.
        if matches!(self.inner.target, Target::Sentinel(_)) && *error != FleetError::Server {
            self.inner.connection.store(None);
        }
    }

    fn answered(&self) {
        if !self.inner.up.load(Ordering::Acquire) && !self.inner.up.swap(true, Ordering::AcqRel) {
            metrics::gauge!("zt_fleet_up").set(1.0);
            if self.inner.synced_at_ms.load(Ordering::Acquire) != 0 {
                tracing::event!(target: "zt::fleet", tracing::Level::INFO, "shared store reachable again");
            }
        }
    }

    /// Runs one command within the timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, FleetError> {
        let outcome = tokio::time::timeout(self.inner.timeout, async {
            let mut connection = self.connection().await?;
            cmd.query_async::<T>(&mut connection).await.map_err(|e| FleetError::of(&e))
        })
        .await
        .unwrap_or(Err(FleetError::Timeout));
        self.settle(outcome)
    }

    /// Runs a pipeline (e.g. `MULTI`/`EXEC` with `.atomic()`) within the timeout.
    pub async fn pipeline<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, FleetError> {
        let outcome = tokio::time::timeout(self.inner.timeout, async {
            let mut connection = self.connection().await?;
            pipeline.query_async::<T>(&mut connection).await.map_err(|e| FleetError::of(&e))
        })
        .await
        .unwrap_or(Err(FleetError::Timeout));
        self.settle(outcome)
    }

    /// Runs a script (`EVALSHA`, loaded again on `NOSCRIPT`) within the timeout.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, FleetError> {
        let outcome = tokio::time::timeout(self.inner.timeout, async {
            let mut connection = self.connection().await?;
            match invocation.invoke_async::<T>(&mut connection).await {
                // After a lost connection the manager reconnects: once more, same budget.
                Err(e) if FleetError::of(&e) == FleetError::Unreachable => {
                    invocation.invoke_async::<T>(&mut connection).await.map_err(|e| FleetError::of(&e))
                }
                other => other.map_err(|e| FleetError::of(&e)),
            }
        })
        .await
        .unwrap_or(Err(FleetError::Timeout));
        self.settle(outcome)
    }

    fn settle<T>(&self, outcome: Result<T, FleetError>) -> Result<T, FleetError> {
        match &outcome {
            Ok(_) => self.answered(),
            Err(e) => self.failed(e),
        }
        outcome
    }

    /// Broadcasts `body` on `topic` to the other replicas (their listener's
    /// [`FleetListener::on_message`]). Shared state is written first, then announced: a
    /// replica that misses the message still finds the change at its next resync.
    pub async fn publish(&self, topic: &str, body: &str) -> Result<(), FleetError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.key("bus")).arg(self.envelope(topic, body));
        self.query::<i64>(&publish).await.map(drop)
    }

    /// The bus message for `topic`: `topic \t origin replica \t body`, for scripts that
    /// publish in the same atomic step as their write.
    pub fn envelope(&self, topic: &str, body: &str) -> String {
        format!("{topic}\t{}\t{body}", self.inner.replica_id)
    }

    fn dispatch(&self, message: &str) {
        let mut parts = message.splitn(3, '\t');
        let (Some(topic), Some(origin), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        if origin == &*self.inner.replica_id {
            return; // Applied locally before it was published.
        }
        let listener = {
            let listeners = self.inner.listeners.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            listeners.get(topic).cloned()
        };
        if let Some(listener) = listener {
            listener.on_message(body);
        }
    }

    /// One tick: the heartbeat, then every listener's resync. Ok when all succeeded.
    async fn sync_all(&self) -> Result<(), FleetError> {
        let ttl_ms = u64::try_from(self.inner.replica_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut beat = self.inner.heartbeat.prepare_invoke();
        beat.key(self.key("replicas")).arg(&*self.inner.replica_id).arg(ttl_ms);
        let live: u32 = self.invoke(&beat).await?;
        self.inner.live_replicas.store(live.max(1), Ordering::Relaxed);
        metrics::gauge!("zt_fleet_live_replicas").set(f64::from(live.max(1)));
        let listeners: Vec<Arc<dyn FleetListener>> = {
            let listeners = self.inner.listeners.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            listeners.values().cloned().collect()
        };
        for listener in listeners {
            listener.resync(self.clone()).await?;
        }
        self.inner.synced_at_ms.store(now_ms(), Ordering::Release);
        self.inner.stale_reported.store(false, Ordering::Relaxed);
        self.inner.synced.notify_waiters();
        metrics::gauge!("zt_fleet_sync_age_seconds").set(0.0);
        Ok(())
    }

    /// While no sync succeeds: the age gauge, and one WARN event per stale episode.
    fn report_age(&self) {
        let Some(age) = self.sync_age() else { return };
        metrics::gauge!("zt_fleet_sync_age_seconds").set(age.as_secs_f64());
        if age > self.inner.stale_after && !self.inner.stale_reported.swap(true, Ordering::Relaxed) {
            tracing::event!(
                target: "zt::fleet",
                tracing::Level::WARN,
                zt.sync_age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                zt.stale_after_ms = u64::try_from(self.inner.stale_after.as_millis()).unwrap_or(u64::MAX),
                "shared controls are stale: this replica enforces a copy older than fleet.stale_after"
            );
        }
    }

    async fn subscribe(&self) -> Result<redis::aio::PubSubStream, FleetError> {
        let client = match &self.inner.target {
            Target::Single(client) => client.clone(),
            Target::Cluster { bus, .. } => bus.clone(),
            Target::Sentinel(sentinel) => {
                sentinel.lock().await.async_get_client().await.map_err(|e| FleetError::of(&e))?
            }
        };
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await.map_err(|e| FleetError::of(&e))?;
            pubsub.subscribe(self.key("bus")).await.map_err(|e| FleetError::of(&e))?;
            Ok::<_, FleetError>(pubsub.into_on_message())
        };
        tokio::time::timeout(self.inner.timeout.max(Duration::from_millis(500)), subscribe)
            .await
            .unwrap_or(Err(FleetError::Timeout))
    }
}

/// The background task: subscribe, resync, then apply pushes and resync every interval;
/// on any failure, report, wait one interval and start again.
async fn run(weak: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let fleet = Fleet { inner };
        let interval = fleet.inner.sync_interval;
        match fleet.subscribe().await {
            Err(e) => fleet.failed(&e),
            Ok(mut messages) => {
                // Subscribed first, synced second: nothing published in between is lost.
                let mut synced = fleet.sync_all().await;
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    if let Err(e) = &synced {
                        fleet.failed(e);
                        fleet.report_age();
                    }
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                if let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) {
                                    fleet.dispatch(text);
                                }
                            }
                            None => break,
                        },
                        _ = tick.tick() => synced = fleet.sync_all().await,
                    }
                    if Arc::strong_count(&fleet.inner) == 1 {
                        return; // Only this task holds the fleet.
                    }
                }
                fleet.failed(&FleetError::Unreachable);
            }
        }
        fleet.report_age();
        drop(fleet);
        tokio::time::sleep(interval.min(Duration::from_secs(1))).await;
    }
}
