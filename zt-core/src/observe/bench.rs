//! A synthetic workload for measuring the observer's cost per request (criterion or any
//! harness): warmed baselines, a declared inventory, realistic records.
//!
//! ```
//! let mut workload = zt_core::observe::bench::Workload::new(1_000);
//! for _ in 0..100 {
//!     std::hint::black_box(workload.step());
//! }
//! ```
//!
//! A criterion bench: `b.iter(|| black_box(workload.step()))`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, UNIX_EPOCH};

use super::{Decision, HeaderFacts, ManualClock, Observer, ObserverConfig, RequestRecord};

/// Ordinary traffic from a fixed population of callers over a few routes.
pub struct Workload {
    observer: Observer,
    clock: ManualClock,
    subjects: Vec<String>,
    ids: Vec<String>,
    request_ids: Vec<String>,
    step: usize,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload").field("callers", &self.subjects.len()).field("step", &self.step).finish()
    }
}

const ROUTES: &[(&str, &str)] =
    &[("GET", "/orders"), ("GET", "/orders/{id}"), ("POST", "/orders"), ("GET", "/health")];

impl Workload {
    /// A workload over `callers` subjects with the default configuration, warmed with
    /// 20 requests per caller so baselines exist.
    pub fn new(callers: usize) -> Workload {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let observer = match Observer::builder(ObserverConfig::default()).clock(clock.clock()).build() {
            Ok(observer) => observer,
            // The default configuration is valid (a unit test checks it).
            Err(_) => unreachable_default(),
        };
        for (method, route) in ROUTES {
            observer.inventory().declare(method, route);
        }
        let callers = callers.max(1);
        let mut workload = Workload {
            observer,
            clock,
            subjects: (0..callers).map(|i| format!("user-{i}")).collect(),
            ids: (0..64).map(|i| (1000 + i).to_string()).collect(),
            request_ids: (0..64).map(|i| format!("req-{i}")).collect(),
            step: 0,
        };
        for _ in 0..callers.saturating_mul(20) {
            workload.step();
        }
        workload
    }

    /// The observer under test.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// Observes one more request (time advances 1 ms per request). Returns the number of
    /// detections, so the work cannot be optimised away.
    pub fn step(&mut self) -> usize {
        let i = self.step;
        self.step = self.step.wrapping_add(1);
        self.clock.advance(Duration::from_millis(1));
        let (method, route) = ROUTES[i % ROUTES.len()];
        let subject = &self.subjects[(i / ROUTES.len()) % self.subjects.len()];
        let id = &self.ids[i % self.ids.len()];
        let ids = [("id", id.as_str())];
        let path = if route == "/orders/{id}" { "/orders/1001" } else { route };
        let mut record = RequestRecord::new(
            self.clock.now(),
            &self.request_ids[i % 64],
            method,
            path,
            200,
            Decision::Allow,
        );
        record.route = Some(route);
        record.subject = Some(subject);
        record.auth_method = Some("jwt");
        record.client_ip = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % 200) as u8)));
        record.user_agent = Some("orders-client/1.0");
        record.headers = HeaderFacts::browser_like();
        record.request_bytes = if method == "POST" { 120 } else { 0 };
        record.response_bytes = 512;
        if route == "/orders/{id}" {
            record.object_ids = &ids;
        }
        self.observer.observe(&record).detections.len()
    }
}

#[cold]
fn unreachable_default() -> ! {
    // Observer::new only fails on an invalid configuration; ObserverConfig::default() is
    // valid. Diverging here keeps the bench API infallible without unwrap.
    std::process::abort()
}
