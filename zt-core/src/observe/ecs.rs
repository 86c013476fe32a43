// The module's documentation is on `EcsJsonLayer`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;

use super::clock::{ObserveClock, rfc3339_millis};
use super::kinds::SECURITY_TARGET;

/// The ECS version the field names follow.
pub const ECS_VERSION: &str = "8.11.0";

/// Writes events on the security targets as ECS JSON lines.
///
/// A `tracing_subscriber` layer that writes security events as ECS JSON lines.
///
/// Each event on the configured targets (default: `zt::security`) becomes one JSON
/// object per line with `@timestamp`, `message`, `ecs.version`, `log.level`, `log.logger`,
/// and the event's fields nested by their dots (`client.ip` -> `{"client":{"ip":..}}`).
/// `event.category` and `event.type` are written as arrays (ECS declares them as such);
/// `zt.anomaly.reasons` (JSON text in the event) is embedded as JSON.
///
/// The writer is anything implementing `MakeWriter`: `Mutex<File>`, `std::io::stdout`, or
/// [`NonBlocking`], which hands lines to a background thread through a bounded queue and
/// drops (and counts) lines when the queue is full, so a slow disk or collector never
/// blocks the request path.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tracing_subscriber::prelude::*;
/// use zt_core::observe::EcsJsonLayer;
///
/// let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
/// let writer = zt_core::observe::SharedBuffer(buffer.clone());
/// let subscriber = tracing_subscriber::registry().with(EcsJsonLayer::new(writer));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::event!(target: "zt::security", tracing::Level::WARN, event.kind = "alert", "hello");
/// });
/// let line = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
/// let json: serde_json::Value = serde_json::from_str(line.trim())?;
/// assert_eq!(json["event"]["kind"], "alert");
/// assert_eq!(json["ecs"]["version"], zt_core::observe::ECS_VERSION);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub struct EcsJsonLayer<W> {
    make_writer: W,
    targets: Vec<String>,
    clock: ObserveClock,
}

impl<W: Write + Send + 'static> EcsJsonLayer<Mutex<W>> {
    /// A layer writing to a plain writer behind a mutex. Each event takes the lock for
    /// one write: prefer [`NonBlocking`] when the writer can be slow (files, sockets).
    pub fn from_writer(writer: W) -> Self {
        EcsJsonLayer::new(Mutex::new(writer))
    }
}

impl<W> EcsJsonLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// A layer writing `zt::security` events to `make_writer`.
    pub fn new(make_writer: W) -> Self {
        EcsJsonLayer {
            make_writer,
            targets: vec![SECURITY_TARGET.to_string()],
            clock: ObserveClock::system(),
        }
    }

    /// Also writes events whose target starts with `target` (e.g. `zt::decision`).
    pub fn with_target(mut self, target: &str) -> Self {
        self.targets.push(target.to_string());
        self
    }

    /// Takes `@timestamp` from this clock (tests).
    pub fn with_clock(mut self, clock: ObserveClock) -> Self {
        self.clock = clock;
        self
    }

    fn wants(&self, target: &str) -> bool {
        self.targets
            .iter()
            .any(|t| target == t || (target.starts_with(t.as_str()) && target[t.len()..].starts_with("::")))
    }
}

/// Collects an event's fields.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map(Value::Number).unwrap_or(Value::Null);
        self.fields.push((field.name(), v));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), Value::from(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), Value::from(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), Value::from(value)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.fields.push((field.name(), Value::from(value)));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.push((field.name(), Value::from(text)));
        }
    }
}

/// Puts `value` at the dotted `path` inside `root`, creating objects on the way. A path
/// that collides with an existing leaf is kept flat under its full dotted name instead.
fn insert_dotted(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut node = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.insert(part.to_string(), value);
            return;
        }
        if node.get(part).is_some_and(|v| !v.is_object()) {
            node.insert(path.to_string(), value);
            return;
        }
        let Some(child) =
            node.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new())).as_object_mut()
        else {
            return;
        };
        node = child;
    }
}

/// Turns the collected fields into the ECS document.
pub(crate) fn ecs_document(
    timestamp_us: u64,
    level: &tracing::Level,
    target: &str,
    message: Option<String>,
    fields: Vec<(&'static str, Value)>,
) -> Value {
    let mut root = Map::new();
    root.insert("@timestamp".into(), Value::from(rfc3339_millis(timestamp_us)));
    root.insert("message".into(), Value::from(message.unwrap_or_default()));
    insert_dotted(&mut root, "ecs.version", Value::from(ECS_VERSION));
    insert_dotted(&mut root, "log.level", Value::from(level.as_str().to_ascii_lowercase()));
    insert_dotted(&mut root, "log.logger", Value::from(target));
    for (name, value) in fields {
        let value = match (name, value) {
            ("event.category" | "event.type", Value::String(s)) => Value::Array(vec![Value::String(s)]),
            ("zt.anomaly.reasons", Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            (_, v) => v,
        };
        insert_dotted(&mut root, name, value);
    }
    Value::Object(root)
}

impl<S, W> Layer<S> for EcsJsonLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !self.wants(meta.target()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let doc =
            ecs_document(self.clock.now_micros(), meta.level(), meta.target(), fields.message, fields.fields);
        let Ok(mut line) = serde_json::to_vec(&doc) else { return };
        line.push(b'\n');
        // A failed write must not fail the request: logging is best effort.
        let mut writer = self.make_writer.make_writer_for(meta);
        let _ = writer.write_all(&line);
        let _ = writer.flush();
    }
}

/// A `MakeWriter` over a shared in-memory buffer (tests, examples).
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// The buffer's lines as text.
    pub fn lines(&self) -> Vec<String> {
        let bytes = super::store::lock(&self.0).clone();
        String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        super::store::lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SharedBuffer {
    type Writer = SharedBuffer;
    fn make_writer(&'a self) -> SharedBuffer {
        self.clone()
    }
}

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// A `MakeWriter` that never blocks: lines go through a bounded queue to a background
/// thread that owns the real writer. When the queue is full the line is dropped and
/// counted ([`NonBlocking::dropped`]).
#[derive(Clone)]
pub struct NonBlocking {
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for NonBlocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlocking").field("dropped", &self.dropped()).finish_non_exhaustive()
    }
}

/// Flushes a [`NonBlocking`] writer's queue (on drop too, waiting up to one second).
#[derive(Debug)]
pub struct FlushGuard {
    writer: NonBlocking,
}

impl FlushGuard {
    /// Waits until every line queued before this call was written (up to `timeout`).
    /// True when it was.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = sync_channel(1);
        if self.writer.sender.send(Message::Flush(ack)).is_err() {
            return false;
        }
        done.recv_timeout(timeout).is_ok()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.flush(Duration::from_secs(1));
    }
}

impl NonBlocking {
    /// Starts the writer thread for `writer` with a queue of `capacity` lines (e.g.
    /// 10 000). Keep the guard alive for as long as events are written.
    pub fn new<W: Write + Send + 'static>(
        writer: W,
        capacity: usize,
    ) -> std::io::Result<(NonBlocking, FlushGuard)> {
        let (sender, receiver) = sync_channel(capacity.max(1));
        std::thread::Builder::new().name("zt-ecs-writer".into()).spawn(move || drain(writer, receiver))?;
        let writer = NonBlocking { sender, dropped: Arc::new(AtomicU64::new(0)) };
        Ok((writer.clone(), FlushGuard { writer }))
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn drain<W: Write>(mut writer: W, receiver: Receiver<Message>) {
    while let Ok(message) = receiver.recv() {
        match message {
            Message::Line(line) => {
                let _ = writer.write_all(&line);
            }
            Message::Flush(ack) => {
                let _ = writer.flush();
                let _ = ack.send(());
            }
        }
    }
    let _ = writer.flush();
}

/// One line on its way to the queue (the layer writes a whole line, then flushes).
pub struct QueuedLine {
    buffer: Vec<u8>,
    target: NonBlocking,
}

impl Write for QueuedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.buffer);
        match self.target.sender.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.target.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl Drop for QueuedLine {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for NonBlocking {
    type Writer = QueuedLine;
    fn make_writer(&'a self) -> QueuedLine {
        QueuedLine { buffer: Vec::new(), target: self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_fields_nest_and_collisions_stay_flat() {
        let doc = ecs_document(
            0,
            &tracing::Level::WARN,
            "zt::security",
            Some("m".into()),
            vec![
                ("client.ip", Value::from("192.0.2.1")),
                ("event.type", Value::from("denied")),
                ("zt.action", Value::from("block")),
                ("zt.action.extra", Value::from(1)),
                ("zt.anomaly.reasons", Value::from(r#"[{"rule":"enumeration"}]"#)),
            ],
        );
        assert_eq!(doc["client"]["ip"], "192.0.2.1");
        assert_eq!(doc["event"]["type"], serde_json::json!(["denied"]));
        assert_eq!(doc["zt"]["action"], "block");
        assert_eq!(doc["zt"]["zt.action.extra"], 1);
        assert_eq!(doc["zt"]["anomaly"]["reasons"][0]["rule"], "enumeration");
        assert_eq!(doc["@timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(doc["log"]["level"], "warn");
    }

    #[test]
    fn non_blocking_writer_delivers_and_counts_drops() {
        let sink = SharedBuffer::default();
        let (writer, guard) = NonBlocking::new(sink.clone(), 1024).unwrap();
        for i in 0..10 {
            let mut line = writer.make_writer();
            line.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(guard.flush(Duration::from_secs(5)));
        assert_eq!(sink.lines().len(), 10);
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn full_queue_drops_instead_of_blocking() {
        // A writer that never finishes its first write keeps the queue full.
        struct Stuck(std::sync::mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (release, stuck) = sync_channel(0);
        let (writer, guard) = NonBlocking::new(Stuck(stuck), 2).unwrap();
        for _ in 0..10 {
            let mut line = writer.make_writer();
            line.write_all(b"x\n").unwrap();
        }
        // At most 2 queued plus 1 being written: the rest were dropped, none blocked.
        assert!(writer.dropped() >= 7, "{}", writer.dropped());
        drop(release);
        assert!(guard.flush(Duration::from_secs(5)));
    }
}
