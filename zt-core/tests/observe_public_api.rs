//! The observer through its public API only, wired the way the Guard will wire it:
//! `verdict_hint` before handling, `observe` after the response, events through the ECS
//! layer, the inventory as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tracing_subscriber::prelude::*;
use zt_core::observe::{
    Action, ActionSink, Decision, EcsJsonLayer, Hint, HintRequest, ManualClock, Observer, ObserverConfig,
    RequestRecord, Rule, SharedBuffer, Target,
};

#[derive(Default)]
struct Limiter(Mutex<Vec<Target>>);

impl ActionSink for Limiter {
    fn throttle(&self, target: &Target, _factor: f64, _duration: Duration) {
        self.0.lock().unwrap().push(target.clone());
    }
}

/// What an adapter does per request: ask, answer or forward, then report.
fn serve(observer: &Observer, subject: &str, id: &str) -> u16 {
    let client: IpAddr = "198.51.100.4".parse().unwrap();
    let hint = observer.verdict_hint(&HintRequest {
        caller: None,
        subject: Some(subject),
        client_ip: Some(client),
        jti: None,
    });
    let (status, decision) = match &hint {
        // The walked orders are not the caller's: the application answers 404 (only such
        // refused ids count as enumeration; reading one's own objects never does).
        Hint::Proceed => (404, Decision::Allow),
        Hint::Block(block) | Hint::Challenge(block) => {
            (block.response("rid", observer.now()).status(), Decision::Deny)
        }
        Hint::Revoked => (401, Decision::Deny),
    };
    let path = format!("/orders/{id}");
    let ids = [("id", id)];
    let mut record = RequestRecord::new(observer.now(), "rid", "GET", &path, status, decision);
    record.route = Some("/orders/{id}");
    record.subject = Some(subject);
    record.auth_method = Some("jwt");
    record.client_ip = Some(client);
    record.reason = hint.slug();
    record.object_ids = &ids;
    observer.observe(&record);
    status
}

#[test]
fn enumeration_blocks_through_the_public_api() {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let mut config = ObserverConfig::default();
    config.detection.enumeration_hard_limit = 30;
    let limiter = Arc::new(Limiter::default());
    let observer = Observer::builder(config)
        .clock(clock.clock())
        .action_sink(limiter.clone())
        .build()
        .expect("valid config");
    observer.inventory().declare("GET", "/orders/{id}");
    observer.inventory().declare("DELETE", "/orders/{id}");

    let logs = SharedBuffer::default();
    let subscriber =
        tracing_subscriber::registry().with(EcsJsonLayer::new(logs.clone()).with_clock(clock.clock()));
    let statuses: Vec<u16> = tracing::subscriber::with_default(subscriber, || {
        (0..40)
            .map(|i| {
                clock.advance(Duration::from_millis(200));
                serve(&observer, "eve", &i.to_string())
            })
            .collect()
    });
    // A new identity is in warm-up: only the hard limit (30 distinct ids) applies.
    assert!(statuses[..30].iter().all(|s| *s == 404));
    assert!(statuses[30..].iter().all(|s| *s == 403), "{statuses:?}");
    assert!(limiter.0.lock().unwrap().is_empty(), "enumeration blocks, it does not throttle");

    let events: Vec<serde_json::Value> =
        logs.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let anomaly = events.iter().find(|e| e["event"]["action"] == "anomaly-detected").expect("anomaly event");
    assert_eq!(anomaly["zt"]["anomaly"]["rules"], "enumeration");
    assert_eq!(anomaly["zt"]["action"], Action::Block.as_str());
    assert_eq!(anomaly["user"]["id"], "eve");
    assert_eq!(events.iter().filter(|e| e["event"]["action"] == "request-blocked").count(), 10);

    let incidents = observer.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].rules, [Rule::Enumeration]);
    // Watch level at 15 ids (3.0 s), detection at 30 (6.0 s), first refusal at 31 (6.2 s).
    assert_eq!(incidents[0].time_to_detect, Duration::from_secs(3));
    assert_eq!(incidents[0].time_to_block, Some(Duration::from_millis(200)));

    let inventory = serde_json::to_value(observer.inventory().snapshot()).unwrap();
    let endpoints = inventory["endpoints"].as_array().unwrap();
    let get = endpoints.iter().find(|e| e["method"] == "GET").unwrap();
    assert_eq!(get["calls"], 40);
    assert_eq!(get["status_classes"]["4xx"], 40, "30 answered 404, 10 refused 403");
    assert_eq!(get["decisions"]["deny"], 10);
    let delete = endpoints.iter().find(|e| e["method"] == "DELETE").unwrap();
    assert_eq!(delete["status"], "unused");
}
