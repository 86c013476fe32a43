//! Scenario tests: simulated traffic through the public observer API, an injected clock,
//! a test metrics recorder and the ECS layer writing to memory.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use tracing_subscriber::prelude::*;

use super::kpi::testing::TestRecorder;
use super::*;

const T0: u64 = 1_700_000_000;

#[derive(Default)]
struct Throttles(Mutex<Vec<(Target, f64, Duration)>>);

impl ActionSink for Throttles {
    fn throttle(&self, target: &Target, factor: f64, duration: Duration) {
        self.0.lock().unwrap().push((target.clone(), factor, duration));
    }
}

struct Harness {
    observer: Observer,
    clock: ManualClock,
    recorder: TestRecorder,
    throttles: Arc<Throttles>,
    logs: SharedBuffer,
}

impl Harness {
    fn new(config: ObserverConfig) -> Harness {
        Harness::with(config, |b| b)
    }

    fn with(config: ObserverConfig, extra: impl FnOnce(ObserverBuilder) -> ObserverBuilder) -> Harness {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
        let throttles = Arc::new(Throttles::default());
        let builder = Observer::builder(config).clock(clock.clock()).action_sink(throttles.clone());
        let observer = extra(builder).build().unwrap();
        for (method, route) in [
            ("GET", "/orders"),
            ("POST", "/orders"),
            ("GET", "/orders/{id}"),
            ("DELETE", "/orders/{id}"),
            ("GET", "/products/{id}"),
            ("POST", "/login"),
        ] {
            observer.inventory().declare(method, route);
        }
        Harness {
            observer,
            clock,
            recorder: TestRecorder::default(),
            throttles,
            logs: SharedBuffer::default(),
        }
    }

    /// Runs `f` with this harness's metrics recorder and an ECS layer writing to `logs`.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let layer = EcsJsonLayer::new(self.logs.clone()).with_clock(self.clock.clock());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || metrics::with_local_recorder(&self.recorder, f))
    }

    fn events(&self) -> Vec<Value> {
        self.logs.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn events_with_action(&self, action: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["event"]["action"] == action).collect()
    }
}

/// Runs `f` under a subscriber that enables everything and records nothing.
///
/// Every test that emits events runs under some subscriber: tracing caches a callsite's
/// interest from the dispatcher of the thread that first reaches it while only one
/// dispatcher is registered, so a test without one could disable the callsites for the
/// tests running beside it.
pub(crate) fn quiet<T>(f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing_subscriber::registry(), f)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// An authenticated `GET /orders/{id}` by `subject`.
fn get_order<'a>(
    h: &Harness,
    subject: &'a str,
    path: &'a str,
    ids: &'a [(&'a str, &'a str)],
) -> RequestRecord<'a> {
    let mut r = RequestRecord::new(h.observer.now(), "req-enum", "GET", path, 200, Decision::Allow);
    r.route = Some("/orders/{id}");
    r.subject = Some(subject);
    r.client_id = Some("orders-app");
    r.auth_method = Some("jwt");
    r.client_ip = Some(ip("198.51.100.23"));
    r.country = CountryCode::parse(b"DE");
    r.user_agent = Some("orders-app/2.1");
    r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736");
    r.object_ids = ids;
    r
}

#[test]
fn id_enumeration_is_detected_blocked_and_measured() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        // Ten minutes of normal use: ten requests a minute over three orders.
        for minute in 0..10u64 {
            for j in 0..10u64 {
                h.clock.set(UNIX_EPOCH + Duration::from_secs(T0 + minute * 60 + j * 6));
                let id = (j % 3).to_string();
                let path = format!("/orders/{id}");
                let ids = [("id", id.as_str())];
                let obs = h.observer.observe(&get_order(&h, "alice", &path, &ids));
                assert!(obs.is_empty(), "normal traffic flagged at minute {minute}: {obs:?}");
                // Another caller, same pattern, keeps the endpoint baseline realistic.
                let obs = h.observer.observe(&get_order(&h, "bob", &path, &ids));
                assert!(obs.is_empty());
            }
        }
        // The attack: alice walks the id space, one order every 100 ms, from a window start.
        let attack_start = UNIX_EPOCH + Duration::from_secs(T0 + 600);
        let mut detection = None;
        let mut k = 0u64;
        while detection.is_none() {
            k += 1;
            assert!(k <= 20, "not detected by the threshold");
            h.clock.set(attack_start + Duration::from_millis(100 * (k - 1)));
            let hint = h.observer.verdict_hint(&HintRequest {
                caller: None,
                subject: Some("alice"),
                client_ip: None,
                jti: None,
            });
            assert!(matches!(hint, Hint::Proceed));
            let id = (1000 + k).to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            // BOLA: the other users' orders are refused (404), id after id.
            let mut record = get_order(&h, "alice", &path, &ids);
            record.status = 404;
            let obs = h.observer.observe(&record);
            detection = obs.with_rule(Rule::Enumeration).cloned();
        }
        assert_eq!(k, 20, "fires exactly at the threshold of 20 distinct ids");
        let d = detection.unwrap();
        assert_eq!(d.target, Some(Target::Principal("alice".into())));
        assert_eq!(d.action.action, Action::Block);
        assert!(d.action.enforced);
        assert!(d.opened_incident);
        let why = &d.anomaly.reasons[0];
        assert_eq!(why.rule, Rule::Enumeration);
        assert_eq!(why.observed, 20.0);
        assert_eq!(why.baseline, 0.0, "her own orders (200) never counted");
        assert_eq!(why.window_seconds, 60.0);
        assert_eq!(why.threshold, 20.0);
        // The walk's 404s are also an error ratio of 1 (weight 0.5 at full strength).
        assert_eq!(d.anomaly.rules_text(), "enumeration,error_ratio");
        assert!((d.anomaly.score - 0.725).abs() < 1e-9, "1 - (1 - 0.9 x 0.5)(1 - 0.5): {}", d.anomaly.score);

        // The next request is refused by the block: the Guard answers 403.
        h.clock.advance(Duration::from_millis(100));
        let Hint::Block(block) = h.observer.verdict_hint(&HintRequest {
            caller: None,
            subject: Some("alice"),
            client_ip: None,
            jti: None,
        }) else {
            panic!("alice should be blocked");
        };
        let response = block.response("req-blocked", h.observer.now());
        assert_eq!(response.status, 403);
        assert!(response.body.contains(BLOCKED_PROBLEM_TYPE));
        let ids = [("id", "2000")];
        let mut refused = get_order(&h, "alice", "/orders/2000", &ids);
        refused.decision = Decision::Deny;
        refused.status = 403;
        refused.reason = Hint::Block(block.clone()).slug();
        assert!(h.observer.observe(&refused).is_empty(), "refused traffic is not scored again");
        // Bob is unaffected.
        let hint = h.observer.verdict_hint(&HintRequest {
            caller: None,
            subject: Some("bob"),
            client_ip: None,
            jti: None,
        });
        assert!(matches!(hint, Hint::Proceed));

        // KPIs: first anomalous request (10th distinct id, 0.9 s) -> detection (1.9 s) -> first block (2.0 s).
        assert_eq!(h.recorder.histogram(kpi::TIME_TO_DETECT_SECONDS), [1.0]);
        assert_eq!(h.recorder.histogram(kpi::TIME_TO_BLOCK_SECONDS), [0.1]);
        assert_eq!(h.recorder.counter("zt_anomalies_total{rule=\"enumeration\"}"), 1);
        assert_eq!(h.recorder.counter(kpi::INCIDENTS_TOTAL), 1);
        assert_eq!(h.recorder.counter(kpi::BLOCKED_TOTAL), 1);
        assert_eq!(h.recorder.counter("zt_actions_total{action=\"block\",enforced=\"true\"}"), 1);
        assert_eq!(h.recorder.gauge(kpi::ACTIVE_BLOCKS), Some(1.0));
        assert_eq!(
            h.recorder
                .counter("zt_requests_total{decision=\"deny\",reason=\"blocked\",route=\"/orders/{id}\"}"),
            1,
            "{:?}",
            h.recorder.counter_keys()
        );
        assert_eq!(h.recorder.counter_sum(kpi::REQUESTS_TOTAL), 200 + 20 + 1);
        let incidents = h.observer.incidents();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].target, "principal:alice");
        assert_eq!(incidents[0].time_to_detect, Duration::from_millis(1000));
        assert_eq!(incidents[0].time_to_block, Some(Duration::from_millis(100)));
    });

    // The security events, as ECS JSON.
    let anomaly = h.events_with_action("anomaly-detected");
    assert_eq!(anomaly.len(), 1, "{:#?}", h.events());
    let e = &anomaly[0];
    assert_eq!(e["event"]["kind"], "alert");
    assert_eq!(e["event"]["category"], serde_json::json!(["intrusion_detection"]));
    assert_eq!(e["event"]["type"], serde_json::json!(["indicator"]));
    assert_eq!(e["event"]["severity"], 73, "a blocking action makes the alert high");
    assert_eq!(e["user"]["id"], "alice");
    assert_eq!(e["client"]["ip"], "198.51.100.23");
    assert_eq!(e["source"]["ip"], "198.51.100.23");
    assert_eq!(e["source"]["geo"]["country_iso_code"], "DE");
    assert_eq!(e["user_agent"]["original"], "orders-app/2.1");
    assert_eq!(e["http"]["request"]["method"], "GET");
    assert_eq!(e["http"]["response"]["status_code"], 404);
    assert_eq!(e["url"]["path"], "/orders/1020");
    assert_eq!(e["zt"]["anomaly"]["reasons"][0]["window_seconds"], 60.0);
    assert_eq!(e["trace"]["id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(e["zt"]["request_id"], "req-enum");
    assert_eq!(e["zt"]["route"], "/orders/{id}");
    assert_eq!(e["zt"]["anomaly"]["rules"], "enumeration,error_ratio");
    assert_eq!(e["zt"]["anomaly"]["reasons"][0]["rule"], "enumeration");
    assert_eq!(e["zt"]["anomaly"]["reasons"][0]["observed"], 20.0);
    assert_eq!(e["zt"]["action"], "block");
    assert_eq!(e["zt"]["enforced"], true);
    assert_eq!(e["zt"]["incident"]["id"], 1);
    assert_eq!(e["zt"]["client_id"], "orders-app");
    assert_eq!(e["@timestamp"], "2023-11-14T22:23:21.900Z");
    assert_eq!(e["ecs"]["version"], ECS_VERSION);
    assert_eq!(e["log"]["logger"], "zt::security");
    assert!(e["zt"]["anomaly"]["score"].as_f64().unwrap() > 0.4);
    let block = h.events_with_action("block");
    assert_eq!(block.len(), 1);
    assert_eq!(block[0]["event"]["type"], serde_json::json!(["change"]));
    assert_eq!(block[0]["zt"]["target"], "principal:alice");
    assert_eq!(block[0]["zt"]["duration_seconds"], 900);
    let refused = h.events_with_action("request-blocked");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["event"]["kind"], "event");
    assert_eq!(refused[0]["event"]["outcome"], "failure");
    assert_eq!(refused[0]["zt"]["reason"], "blocked");
    assert_eq!(refused[0]["log"]["level"], "info");
    // Nothing secret or raw: no ids beyond the path, no query, no bodies.
    for line in h.logs.lines() {
        assert!(!line.contains("Bearer") && !line.contains('?'), "{line}");
    }
}

#[test]
fn anonymous_requests_never_count_as_enumeration() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        // 300 distinct ids, refused 401 before any object was read: no verified caller.
        for k in 0..300u64 {
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(10 * k));
            let id = k.to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            let mut r = RequestRecord::new(h.observer.now(), "req-anon", "GET", &path, 401, Decision::Deny);
            r.route = Some("/orders/{id}");
            r.reason = Some("missing-credentials");
            r.client_ip = Some(ip("198.51.100.23"));
            r.user_agent = Some("orders-app/2.1");
            r.object_ids = &ids;
            let obs = h.observer.observe(&r);
            assert!(obs.with_rule(Rule::Enumeration).is_none(), "request {k}: {obs:?}");
        }
        assert_eq!(h.observer.controls().active_blocks(), 0, "the address was not blocked");
        // The same walk by a verified caller from that address fires at the hard limit.
        let mut fired = None;
        for k in 0..300u64 {
            h.clock.advance(Duration::from_millis(10));
            let id = k.to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            let mut r = get_order(&h, "mallory", &path, &ids);
            r.status = 404;
            if h.observer.observe(&r).with_rule(Rule::Enumeration).is_some() {
                fired = Some(k + 1);
                break;
            }
        }
        assert_eq!(fired, Some(20), "enumeration_hard_limit before warm-up");
    })
}

#[test]
fn credential_stuffing_from_one_network_is_blocked() {
    let h = Harness::new(ObserverConfig::default());
    let victims: Vec<String> = (0..40).map(|i| format!("victim{i}")).collect();
    let addresses: Vec<IpAddr> = (0..40).map(|i| ip(&format!("203.0.113.{}", 10 + i % 20))).collect();
    h.run(|| {
        // An unrelated failure elsewhere is not stuffing.
        let mut stray = RequestRecord::new(h.observer.now(), "r0", "POST", "/login", 401, Decision::Allow);
        stray.route = Some("/login");
        stray.client_ip = Some(ip("192.0.2.1"));
        stray.attempted_subject = Some("carol");
        assert!(h.observer.observe(&stray).is_empty());

        let mut detection = None;
        for k in 0..40usize {
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0 + 100) + Duration::from_millis(50 * k as u64));
            let mut r = RequestRecord::new(h.observer.now(), "r", "GET", "/orders", 401, Decision::Deny);
            r.route = Some("/orders");
            r.reason = Some("invalid-signature");
            r.client_ip = Some(addresses[k]);
            r.attempted_subject = Some(&victims[k]);
            r.user_agent = Some("python-requests/2.31");
            let obs = h.observer.observe(&r);
            if let Some(d) = obs.with_rule(Rule::CredentialStuffing) {
                assert!(detection.is_none(), "fires once per window");
                detection = Some((k, d.clone()));
            }
        }
        let (k, d) = detection.expect("credential stuffing detected");
        assert_eq!(k, 19, "the 20th failure from the network");
        assert_eq!(d.target, Some(Target::Network("203.0.113.0/24".parse().unwrap())));
        // A network has no quota to tighten: it is blocked.
        assert_eq!(d.action.action, Action::Block);
        assert!(d.action.enforced);
        let why = &d.anomaly.reasons[0];
        assert_eq!(why.observed, 20.0);
        assert_eq!(why.related.map(|r| r.value), Some(20.0), "20 distinct subjects");
        assert!(h.throttles.0.lock().unwrap().is_empty());
        assert!(h.observer.controls().is_blocked(None, Some(addresses[0])).is_some());
        // 10th failure (0.45 s) -> detection at the 20th (0.95 s).
        assert_eq!(h.recorder.histogram(kpi::TIME_TO_DETECT_SECONDS), [0.5]);
        assert!(h.recorder.histogram(kpi::TIME_TO_BLOCK_SECONDS).is_empty(), "no request refused yet");
        assert_eq!(h.recorder.counter(kpi::AUTH_FAILURES_TOTAL), 41);
        assert_eq!(h.recorder.counter("zt_anomalies_total{rule=\"credential_stuffing\"}"), 1);
    });
    let block = h.events_with_action("block");
    assert_eq!(block.len(), 1);
    assert_eq!(block[0]["zt"]["target"], "network:203.0.113.0/24");
    assert_eq!(block[0]["zt"]["anomaly"]["reasons"][0]["related"]["name"], "distinct_subjects");
    let denials = h.events_with_action("request-denied");
    assert_eq!(denials.len(), 40);
    assert_eq!(denials[0]["event"]["category"], serde_json::json!(["authentication"]));
    let text = h.logs.lines().join("\n");
    assert!(!text.contains("victim"), "attempted subjects are never logged");
}

fn bot_config() -> ObserverConfig {
    let mut config = ObserverConfig::default();
    config.bots.human_facing = vec!["/products/{id}".into()];
    config
}

fn product_view<'a>(
    h: &Harness,
    addr: IpAddr,
    ua: Option<&'a str>,
    headers: HeaderFacts,
) -> RequestRecord<'a> {
    let mut r = RequestRecord::new(h.observer.now(), "req-bot", "GET", "/products/7", 200, Decision::Allow);
    r.route = Some("/products/{id}");
    r.client_ip = Some(addr);
    r.user_agent = ua;
    r.headers = headers;
    r
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

#[test]
fn scraping_bot_is_challenged_through_the_hook() {
    let h = Harness::with(bot_config(), |b| {
        b.challenge_hook(|record| {
            // The hook sees the triggering request and may decline.
            (record.route == Some("/products/{id}")).then(|| ChallengeResponse {
                status: 401,
                headers: vec![
                    ("content-type".into(), "text/html".into()),
                    ("x-internal".into(), "dropped".into()),
                ],
                body: "<form>prove you are human</form>".into(),
            })
        })
    });
    h.run(|| {
        // A person: browser headers, irregular timing: no signal.
        let human = ip("192.0.2.10");
        for gap in [3u64, 17, 5, 42, 9, 2, 28, 11, 6, 19, 4, 33] {
            h.clock.advance(Duration::from_secs(gap));
            let obs = h.observer.observe(&product_view(&h, human, Some(CHROME), HeaderFacts::browser_like()));
            assert!(obs.is_empty(), "{obs:?}");
        }
        // A scraper with a spoofed browser agent and full headers, but clockwork timing.
        let scraper = ip("192.0.2.50");
        let mut found = None;
        for k in 0..12 {
            h.clock.advance(Duration::from_secs(2));
            let hint = h.observer.verdict_hint(&HintRequest {
                caller: None,
                subject: None,
                client_ip: Some(scraper),
                jti: None,
            });
            if !matches!(hint, Hint::Proceed) {
                break;
            }
            let obs =
                h.observer.observe(&product_view(&h, scraper, Some(CHROME), HeaderFacts::browser_like()));
            if let Some(d) = obs.with_rule(Rule::BotTiming) {
                found = Some((k, d.clone()));
            }
        }
        let (k, d) = found.expect("machine-regular timing detected");
        assert_eq!(k, 10, "after 10 intervals");
        assert_eq!(d.anomaly.reasons[0].observed, 0.0, "coefficient of variation");
        assert_eq!(d.action.action, Action::Challenge);
        assert_eq!(d.target, Some(Target::Address(scraper)));
        let Hint::Challenge(block) = h.observer.verdict_hint(&HintRequest {
            caller: None,
            subject: None,
            client_ip: Some(scraper),
            jti: None,
        }) else {
            panic!("the scraper is challenged");
        };
        let response = block.response("rid", h.observer.now());
        assert_eq!(response.status, 401);
        assert_eq!(response.body, "<form>prove you are human</form>");
        assert!(response.headers.contains(&("content-type", "text/html".into())));
        assert!(!response.headers.iter().any(|(n, _)| *n == "x-internal"));
        // The application clears the challenge once it is solved.
        assert!(h.observer.controls().unblock(&Target::Address(scraper)));

        // curl on the same route: flagged on the first request.
        let curl = ip("192.0.2.77");
        let obs = h.observer.observe(&product_view(&h, curl, Some("curl/8.5.0"), HeaderFacts::default()));
        let d = obs.with_rule(Rule::BotUserAgent).expect("automation agent");
        assert_eq!(d.anomaly.reasons[0].label, Some("curl"));
        assert!(matches!(
            h.observer.verdict_hint(&HintRequest {
                caller: None,
                subject: None,
                client_ip: Some(curl),
                jti: None
            }),
            Hint::Challenge(_)
        ));
        // A browser agent without browser headers.
        let odd = ip("192.0.2.78");
        let bare = HeaderFacts { accept: true, accept_language: false, accept_encoding: true, count: 3 };
        let obs = h.observer.observe(&product_view(&h, odd, Some(CHROME), bare));
        let d = obs.with_rule(Rule::BotHeaders).expect("header anomaly");
        assert_eq!(d.action.action, Action::Alert);
        // The same agents on an API route are not judged.
        let mut api = product_view(&h, ip("192.0.2.79"), Some("curl/8.5.0"), HeaderFacts::default());
        api.route = Some("/orders");
        assert!(h.observer.observe(&api).is_empty());
    });
    assert_eq!(h.events_with_action("challenge").len(), 2);
}

#[test]
fn without_a_hook_a_challenge_falls_back_to_a_block() {
    let h = Harness::new(bot_config());
    h.run(|| {
        let bot = ip("192.0.2.66");
        let headless = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36";
        let obs = h.observer.observe(&product_view(&h, bot, Some(headless), HeaderFacts::browser_like()));
        let d = obs.with_rule(Rule::BotUserAgent).unwrap();
        assert_eq!(d.anomaly.reasons[0].label, Some("headless-chrome"));
        assert_eq!(d.action.action, Action::Block);
        assert!(matches!(
            h.observer.verdict_hint(&HintRequest {
                caller: None,
                subject: None,
                client_ip: Some(bot),
                jti: None
            }),
            Hint::Block(_)
        ));
        // A bot incident opened on the spot: time to detect 0, no time-to-block until refused.
        assert_eq!(h.recorder.histogram(kpi::TIME_TO_DETECT_SECONDS), [0.0]);
        assert_eq!(h.recorder.histogram(kpi::TIME_TO_BLOCK_SECONDS), [0.0]);
    });
}

#[test]
fn report_only_mode_logs_actions_without_taking_them() {
    let h = Harness::with(bot_config(), |b| b.mode(crate::Mode::Report));
    h.run(|| {
        let bot = ip("192.0.2.66");
        let obs =
            h.observer.observe(&product_view(&h, bot, Some("Go-http-client/1.1"), HeaderFacts::default()));
        let d = obs.with_rule(Rule::BotUserAgent).unwrap();
        assert_eq!(d.action.action, Action::Block);
        assert!(!d.action.enforced);
        assert!(matches!(
            h.observer.verdict_hint(&HintRequest {
                caller: None,
                subject: None,
                client_ip: Some(bot),
                jti: None
            }),
            Hint::Proceed
        ));
        assert_eq!(h.observer.controls().active_blocks(), 0);
        assert_eq!(h.recorder.counter("zt_actions_total{action=\"block\",enforced=\"false\"}"), 1);
    });
    let block = h.events_with_action("block");
    assert_eq!(block.len(), 1);
    assert_eq!(block[0]["zt"]["enforced"], false);
    assert_eq!(block[0]["zt"]["mode"], "report");
}

#[test]
fn baselines_stay_bounded_with_100k_identities() {
    quiet(|| {
        let mut config = ObserverConfig::default();
        config.detection.identity_capacity = 10_000;
        config.detection.network_capacity = 1_000;
        config.inventory.max_shadow = 100;
        let h = Harness::new(config);
        let ids = [("id", "1")];
        for i in 0..100_000u32 {
            h.clock.advance(Duration::from_millis(1));
            let subject = format!("user-{i}");
            let path = format!("/probe/{i}/x{}", i % 1000);
            let mut r = get_order(&h, &subject, "/orders/1", &ids);
            r.client_ip = Some(IpAddr::from(i.to_be_bytes()));
            h.observer.observe(&r);
            // Undeclared paths and failed logins from everywhere, too.
            let mut probe = RequestRecord::new(h.observer.now(), "p", "GET", &path, 404, Decision::Deny);
            probe.reason = Some("route-not-found");
            h.observer.observe(&probe);
            let mut failure =
                RequestRecord::new(h.observer.now(), "f", "GET", "/orders", 401, Decision::Deny);
            failure.reason = Some("token-expired");
            failure.client_ip = Some(IpAddr::from((i << 8).to_be_bytes()));
            h.observer.observe(&failure);
        }
        let sizes = h.observer.store_sizes();
        let d = sizes.detector;
        assert!(d.callers.len <= d.callers.capacity, "{sizes:?}");
        assert!(d.callers.capacity <= 10_000 + 1_024, "capacity rounding stays small: {sizes:?}");
        assert!(d.networks.len <= d.networks.capacity, "{sizes:?}");
        assert!(d.endpoints.len <= d.endpoints.capacity, "{sizes:?}");
        assert!(sizes.inventory <= 6 + 100, "{sizes:?}");
        let snap = h.observer.inventory().snapshot();
        assert!(snap.shadow_overflow > 0);
        // Distinct callers of /orders/{id}: 100 000, estimated.
        let e = snap.endpoint("GET", "/orders/{id}").unwrap();
        let err = (e.distinct_callers as f64 - 100_000.0).abs() / 100_000.0;
        assert!(err < 0.2, "estimate {}", e.distinct_callers);
    })
}

#[test]
fn inventory_classifies_endpoints_and_sensitive_data() {
    quiet(|| {
        let mut config = ObserverConfig::default();
        config.inventory.deprecated =
            vec![RouteRef::new("GET", "/v1/orders"), RouteRef::new("GET", "/v1/legacy")];
        let h = Harness::new(config);
        let now = h.observer.now();
        let card_body = br#"{"id":7,"owner":"jane@example.org","card":"4111 1111 1111 1111","iban":"DE89 3704 0044 0532 0130 00"}"#;
        let plain_body = br#"{"id":8,"reference":"4111111111111112","total":"12.50","note":"AKIA? no"}"#;
        let token_body = br#"{"access_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U","phone":"+44 20 7183 8750"}"#;
        let mut calls = Vec::new();
        {
            let mut r = RequestRecord::new(now, "1", "GET", "/orders/7", 200, Decision::Allow);
            r.route = Some("/orders/{id}");
            r.subject = Some("alice");
            r.auth_method = Some("jwt");
            assert!(
                h.observer.wants_response_sample("GET", r.route).is_some(),
                "first responses are sampled"
            );
            r.response_sample = Some(card_body);
            calls.push(h.observer.observe(&r));
            let mut r = RequestRecord::new(now, "2", "GET", "/orders", 200, Decision::Allow);
            r.route = Some("/orders");
            r.subject = Some("bob");
            r.auth_method = Some("jwt");
            r.response_sample = Some(plain_body);
            calls.push(h.observer.observe(&r));
            let mut r = RequestRecord::new(now, "3", "GET", "/orders", 401, Decision::Deny);
            r.route = Some("/orders");
            r.reason = Some("missing-credentials");
            calls.push(h.observer.observe(&r));
            let mut r = RequestRecord::new(now, "4", "POST", "/login", 200, Decision::Allow);
            r.route = Some("/login");
            r.response_sample = Some(token_body);
            calls.push(h.observer.observe(&r));
            // Zombie: deprecated but called.
            let mut r = RequestRecord::new(now, "5", "GET", "/v1/orders", 200, Decision::Allow);
            r.route = Some("/v1/orders");
            calls.push(h.observer.observe(&r));
            // Shadow: probed (refused), and served in report-only mode.
            let r = RequestRecord::new(now, "6", "GET", "/admin/debug", 404, Decision::Deny);
            calls.push(h.observer.observe(&r));
            let r = RequestRecord::new(now, "7", "GET", "/internal/export/123", 200, Decision::WouldDeny);
            calls.push(h.observer.observe(&r));
        }
        assert!(calls.iter().all(Observation::is_empty));
        let snap = h.observer.inventory().snapshot();
        let status = |m: &str, r: &str| snap.endpoint(m, r).map(|e| e.status);
        assert_eq!(status("GET", "/orders/{id}"), Some(EndpointStatus::Active));
        assert_eq!(status("DELETE", "/orders/{id}"), Some(EndpointStatus::Unused));
        assert_eq!(status("GET", "/v1/orders"), Some(EndpointStatus::Zombie));
        assert_eq!(status("GET", "/v1/legacy"), Some(EndpointStatus::Deprecated));
        assert_eq!(status("GET", "/admin/debug"), Some(EndpointStatus::Shadow));
        assert_eq!(status("GET", "/internal/export/{id}"), Some(EndpointStatus::Shadow));
        assert!(!snap.endpoint("GET", "/admin/debug").unwrap().served);
        assert!(snap.endpoint("GET", "/internal/export/{id}").unwrap().served);
        assert_eq!(snap.summary.shadow, 2);
        assert_eq!(snap.summary.zombie, 1);
        assert_eq!(snap.summary.unused, 3, "POST /orders, DELETE /orders/{{id}}, GET /products/{{id}}");
        let classes = |m: &str, r: &str| -> Vec<&str> {
            snap.endpoint(m, r).unwrap().sensitive_data.iter().map(DataClass::as_str).collect()
        };
        assert_eq!(classes("GET", "/orders/{id}"), ["email", "payment_card", "iban"]);
        assert!(classes("GET", "/orders").is_empty(), "a Luhn-invalid number is not a card");
        assert_eq!(classes("POST", "/login"), ["phone", "jwt"]);
        let orders = snap.endpoint("GET", "/orders").unwrap();
        assert_eq!(orders.status_classes.success, 1);
        assert_eq!(orders.status_classes.client_error, 1);
        assert_eq!(orders.decisions.deny, 1);
        assert_eq!(orders.auth_methods, ["none", "jwt"]);
        assert_eq!(orders.distinct_callers, 1);
        let json: Value = serde_json::to_value(&snap).unwrap();
        let first = &json["endpoints"][0];
        for key in [
            "method",
            "route",
            "status",
            "calls",
            "first_seen",
            "last_seen",
            "status_classes",
            "sensitive_data",
        ] {
            assert!(first.get(key).is_some(), "{key} in {first}");
        }
        assert_eq!(json["summary"]["zombie"], 1);
        let export = json["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["route"] == "/internal/export/{id}")
            .unwrap();
        assert_eq!(export["status_classes"]["2xx"], 1);
        assert_eq!(export["decisions"]["would_deny"], 1);
        assert_eq!(export["first_seen"], "2023-11-14T22:13:20.000Z");
    })
}

#[test]
fn revoked_tokens_and_manual_blocks() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        let exp = h.observer.now() + Duration::from_secs(60);
        h.observer.controls().revoke("tok-1", exp).unwrap();
        let hint = h.observer.verdict_hint(&HintRequest {
            caller: None,
            subject: Some("alice"),
            client_ip: None,
            jti: Some("tok-1"),
        });
        assert!(matches!(hint, Hint::Revoked));
        assert_eq!(hint.slug(), Some("token-revoked"));
        h.clock.advance(Duration::from_secs(61));
        let hint = h.observer.verdict_hint(&HintRequest {
            caller: None,
            subject: Some("alice"),
            client_ip: None,
            jti: Some("tok-1"),
        });
        assert!(matches!(hint, Hint::Proceed));

        h.observer.controls().block_address(
            ip("198.51.100.9"),
            Duration::from_secs(30),
            "operator: abuse report",
        );
        let hint = h.observer.verdict_hint(&HintRequest {
            caller: None,
            subject: Some("x"),
            client_ip: Some(ip("198.51.100.9")),
            jti: None,
        });
        assert!(matches!(hint, Hint::Block(ref b) if !b.automatic));
        assert!(
            h.recorder.histogram(kpi::TIME_TO_BLOCK_SECONDS).is_empty(),
            "no incident behind a manual block"
        );
        h.clock.advance(Duration::from_secs(31));
        h.observer.maintenance();
        assert_eq!(h.recorder.gauge(kpi::ACTIVE_BLOCKS), Some(0.0));
        assert_eq!(h.observer.store_sizes().revocations, 0);
    });
    let manual = h.events_with_action("block");
    assert_eq!(manual.len(), 1);
    assert_eq!(manual[0]["client"]["ip"], "198.51.100.9");
    assert_eq!(manual[0]["zt"]["target"], "address:198.51.100.9");
}

#[test]
fn config_parses_from_toml_and_validates() {
    quiet(|| {
        let text = r#"
            network_prefix = { ipv4 = 24, ipv6 = 56 }
            [detection]
            window = "30s"
            enumeration_min_distinct = 10
            [bots]
            human_facing = ["/login"]
            [response]
            block_for = "1h"
            [response.actions]
            enumeration = "alert"
            [inventory]
            deprecated = [{ method = "GET", route = "/v1/orders" }]
            [geo]
            trusted_header = "cf-ipcountry"
        "#;
        let config: ObserverConfig = toml::from_str(text).unwrap();
        // The mode is the Guard's, never the `[observe]` table's: the key is unknown.
        let with_mode = format!("mode = \"report\"\n{text}");
        let refused = toml::from_str::<ObserverConfig>(&with_mode).unwrap_err().to_string();
        assert!(refused.contains("unknown field `mode`"), "{refused}");
        assert_eq!(config.response.action_for(Rule::Enumeration), Action::Alert);
        assert_eq!(config.network_prefix.ipv6, 56);
        let observer = Observer::new(config).unwrap();
        assert!(observer.is_human_facing(Some("/login")));
        assert_eq!(observer.inventory().snapshot().summary.deprecated, 1);

        let bad = ObserverConfig {
            response: ResponseConfig { throttle_factor: 2.0, ..ResponseConfig::default() },
            ..ObserverConfig::default()
        };
        assert!(Observer::new(bad).unwrap_err().to_string().contains("observe.response.throttle_factor"));
        let bad = ObserverConfig {
            network_prefix: NetworkPrefix { ipv4: 40, ipv6: 64 },
            ..ObserverConfig::default()
        };
        assert!(Observer::new(bad).is_err());
        assert!(toml::from_str::<ObserverConfig>("[detection]\nwindoww = \"1s\"").is_err());
    })
}

#[test]
fn new_network_country_and_rate_after_warm_up() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        let ids = [("id", "1")];
        // 60 requests over two windows from one network and country: warmed, quiet.
        for _ in 0..60 {
            h.clock.advance(Duration::from_secs(2));
            assert!(h.observer.observe(&get_order(&h, "dora", "/orders/1", &ids)).is_empty());
        }
        h.clock.advance(Duration::from_secs(2));
        let mut moved = get_order(&h, "dora", "/orders/1", &ids);
        moved.client_ip = Some(ip("203.0.113.200"));
        moved.country = CountryCode::parse(b"BR");
        let obs = h.observer.observe(&moved);
        let d = &obs.detections[0];
        assert!(d.anomaly.has(Rule::NewNetwork) && d.anomaly.has(Rule::NewCountry), "{d:?}");
        assert_eq!(d.action.action, Action::Alert, "new country alerts; new network alone only logs");
        // A burst far above the baseline (30/min): throttled by default.
        let mut throttled = None;
        for k in 0..400 {
            h.clock.advance(Duration::from_millis(50));
            if let Some(d) =
                h.observer.observe(&get_order(&h, "dora", "/orders/1", &ids)).with_rule(Rule::RequestRate)
            {
                throttled = Some((k, d.clone()));
                break;
            }
        }
        let (_, d) = throttled.expect("rate anomaly");
        assert_eq!(d.action.action, Action::Throttle);
        assert_eq!(d.anomaly.reasons[0].threshold, 300.0);
        assert_eq!(h.throttles.0.lock().unwrap()[0].0, Target::Principal("dora".into()));
        assert!(!d.opened_incident, "same episode as the new-country alert");
    });
}

#[test]
fn bench_workload_runs_without_detections() {
    quiet(|| {
        let mut workload = bench::Workload::new(50);
        let detections: usize = (0..5_000).map(|_| workload.step()).sum();
        assert_eq!(detections, 0, "ordinary traffic stays quiet");
        assert!(workload.observer().inventory().snapshot().summary.active >= 4);
    })
}

#[cfg(feature = "prometheus")]
#[test]
fn prometheus_text_format_has_the_kpis() {
    quiet(|| {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(kpi::TIME_TO_DETECT_SECONDS.into()), kpi::TIME_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let h = Harness::new(bot_config());
        metrics::with_local_recorder(&recorder, || {
            describe_metrics();
            let bot = ip("192.0.2.66");
            h.observer.observe(&product_view(&h, bot, Some("curl/8"), HeaderFacts::default()));
            h.observer.verdict_hint(&HintRequest {
                caller: None,
                subject: None,
                client_ip: Some(bot),
                jti: None,
            });
        });
        let text = handle.render();
        assert!(
            text.contains("zt_requests_total{decision=\"allow\",reason=\"none\",route=\"/products/{id}\"} 1"),
            "{text}"
        );
        assert!(text.contains("zt_anomalies_total{rule=\"bot_user_agent\"} 1"), "{text}");
        assert!(text.contains("zt_time_to_detect_seconds_bucket{le=\"0.1\"} 1"), "{text}");
        assert!(text.contains("zt_active_blocks 1"), "{text}");
        assert!(text.contains("# HELP zt_incidents_total"), "{text}");
    })
}

#[test]
fn request_counter_handles_follow_the_recorder() {
    quiet(|| {
        let h = Harness::new(ObserverConfig::default());
        let first = TestRecorder::default();
        let second = TestRecorder::default();
        let record = RequestRecord::new(h.observer.now(), "r", "GET", "/health", 200, Decision::Allow);
        metrics::with_local_recorder(&first, || h.observer.observe(&record));
        metrics::with_local_recorder(&second, || {
            h.observer.observe(&record);
            h.observer.observe(&record);
        });
        metrics::with_local_recorder(&first, || h.observer.observe(&record));
        let key = "zt_requests_total{decision=\"allow\",reason=\"none\",route=\"undeclared\"}";
        assert_eq!(first.counter(key), 2);
        assert_eq!(second.counter(key), 2);
    })
}

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Observer>();
    assert_send_sync::<Controls>();
    assert_send_sync::<Inventory>();
    assert_send_sync::<GeoResolver>();
    assert_send_sync::<Block>();
    assert_send_sync::<EcsJsonLayer<NonBlocking>>();
}

// Issue 19: detection quality. Each test is named after a finding of the labelled workload
// (tests/detection_workload.rs) and failed on the code before the fix.

/// A record of `subject` reading `/orders/{id}` answered `status`.
fn read<'a>(
    h: &Harness,
    subject: &'a str,
    path: &'a str,
    ids: &'a [(&'a str, &'a str)],
    status: u16,
) -> RequestRecord<'a> {
    let mut r = get_order(h, subject, path, ids);
    r.status = status;
    r
}

#[test]
fn issue19_batch_job_reading_back_its_own_orders_is_not_enumeration() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        // 200 of its own orders read back by id in 20 s: every one answered 200.
        for k in 0..200u64 {
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(100 * k));
            let id = (5000 + k).to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            let obs = h.observer.observe(&read(&h, "batch", &path, &ids, 200));
            assert!(obs.is_empty(), "own order {k} flagged: {obs:?}");
        }
        // The same caller walking ids it is refused (404) is enumeration at 20.
        let mut fired = None;
        for k in 0..40u64 {
            h.clock.advance(Duration::from_millis(100));
            let id = (9000 + k).to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            if let Some(d) =
                h.observer.observe(&read(&h, "batch", &path, &ids, 404)).with_rule(Rule::Enumeration)
            {
                fired = Some((k + 1, d.anomaly.reasons[0].observed));
                break;
            }
        }
        assert_eq!(fired, Some((20, 20.0)));
    })
}

#[test]
fn issue19_slow_walk_at_one_id_every_five_seconds_is_slow_enumeration() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        let mut fired = None;
        for k in 0..60u64 {
            // 12 ids a minute: below the window's 20, from five addresses in turn.
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0 + 5 * k));
            let id = (100 + 3 * k).to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            let mut r = read(&h, "patient", &path, &ids, 404);
            // One network (the spread rule is the next test's).
            let from = ip("77.80.1.9");
            r.client_ip = Some(from);
            let obs = h.observer.observe(&r);
            assert!(obs.with_rule(Rule::Enumeration).is_none(), "the short window stays below 20");
            if let Some(d) = obs.with_rule(Rule::SlowEnumeration) {
                fired = Some((k + 1, d.clone()));
                break;
            }
        }
        let (k, d) = fired.expect("the slow walk is detected");
        assert_eq!(k, 40, "the 40th distinct refused id in the long window");
        assert_eq!(d.action.action, Action::Block);
        assert_eq!(d.target, Some(Target::Principal("patient".into())));
        let why = d.anomaly.reasons.iter().find(|r| r.rule == Rule::SlowEnumeration).unwrap();
        assert_eq!((why.observed, why.threshold, why.window_seconds), (40.0, 40.0, 3600.0));
    })
}

#[test]
fn issue19_low_and_slow_walk_over_five_networks_with_one_token_fires_at_15() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        let mut fired = None;
        for k in 0..40u64 {
            // One id every 9 s, from five addresses of five networks in turn.
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0 + 9 * k));
            let id = (100 + 3 * k).to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            let mut r = read(&h, "patient", &path, &ids, 404);
            let from = ip(&format!("77.{}.1.9", 80 + k % 5));
            r.client_ip = Some(from);
            if let Some(d) = h.observer.observe(&r).with_rule(Rule::SlowEnumeration) {
                let why = d.anomaly.reasons.iter().find(|r| r.rule == Rule::SlowEnumeration).unwrap();
                fired = Some((k + 1, why.threshold, why.related.map(|r| r.value)));
                break;
            }
        }
        assert_eq!(fired, Some((15, 15.0, Some(5.0))));
    })
}

#[test]
fn issue19_expired_tokens_behind_one_nat_are_not_credential_stuffing() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        // 100 expired (validly signed) tokens of 10 users behind one address in a minute.
        for k in 0..100u64 {
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(500 * k));
            let mut r = RequestRecord::new(h.observer.now(), "r", "GET", "/orders", 401, Decision::Deny);
            r.route = Some("/orders");
            r.reason = Some("token-expired");
            r.client_ip = Some(ip("100.64.10.1"));
            let who = format!("user{}", k % 10);
            r.attempted_subject = Some(&who);
            let obs = h.observer.observe(&r);
            assert!(obs.with_rule(Rule::CredentialStuffing).is_none(), "failure {k}: {obs:?}");
        }
        assert_eq!(h.observer.controls().active_blocks(), 0);
    })
}

#[test]
fn issue19_stuffing_rotating_addresses_of_one_network_is_blocked_at_20() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        // Forged tokens (their subject unverified, so not known): 20 addresses of one /24.
        let mut fired = None;
        for k in 0..60u64 {
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(250 * k));
            let mut r = RequestRecord::new(h.observer.now(), "r", "GET", "/orders", 401, Decision::Deny);
            r.route = Some("/orders");
            r.reason = Some("invalid-signature");
            r.client_ip = Some(ip(&format!("185.220.101.{}", 1 + k)));
            if let Some(d) = h.observer.observe(&r).with_rule(Rule::CredentialStuffing) {
                fired = Some((k + 1, d.clone()));
                break;
            }
        }
        let (k, d) = fired.expect("detected");
        assert_eq!(k, 20, "not 60 (three times the minimum without subjects)");
        assert_eq!(d.action.action, Action::Block);
        assert_eq!(d.anomaly.reasons[0].related.map(|r| r.name), Some("distinct_addresses"));
        assert!(h.observer.controls().is_blocked(None, Some(ip("185.220.101.200"))).is_some(), "the network");
    })
}

#[test]
fn issue19_headless_bot_is_named_and_acted_on_only_with_another_signal() {
    let h = Harness::new(ObserverConfig::default());
    let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36";
    let api_headers = HeaderFacts { accept: true, accept_language: false, accept_encoding: true, count: 6 };
    h.run(|| {
        let mut r = RequestRecord::new(h.observer.now(), "r", "GET", "/orders", 200, Decision::Allow);
        r.route = Some("/orders");
        r.subject = Some("bot");
        r.auth_method = Some("jwt");
        r.client_ip = Some(ip("45.33.4.2"));
        r.user_agent = Some(headless);
        r.headers = api_headers;
        let obs = h.observer.observe(&r);
        let d = obs.with_rule(Rule::Automation).expect("named on its first request");
        assert_eq!(d.action.action, Action::Alert, "the score alone only alerts");
        assert!((d.anomaly.reasons[0].observed - 0.65).abs() < 1e-9);
        assert_eq!(d.anomaly.reasons[0].label, Some("headless-chrome"));
        assert!(h.throttles.0.lock().unwrap().is_empty());
        // An integration (library agent, no browser headers) is not named.
        let mut integration = r;
        integration.subject = Some("svc");
        integration.user_agent = Some("python-requests/2.31.0");
        assert!(h.observer.observe(&integration).is_empty());
        // Another signal in the same window (refused ids: enumeration) and the score acts.
        let mut acted = None;
        for k in 0..20u64 {
            h.clock.advance(Duration::from_millis(500));
            let id = (700 + k).to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            let mut walk = read(&h, "bot", &path, &ids, 404);
            walk.user_agent = Some(headless);
            walk.headers = api_headers;
            if let Some(d) = h.observer.observe(&walk).with_rule(Rule::Enumeration) {
                acted = Some(d.action.action);
            }
        }
        assert_eq!(acted, Some(Action::Block), "enumeration's block, the most severe");
    })
}

#[test]
fn issue19_graphql_documents_refused_at_the_limits_are_graphql_abuse() {
    let h = Harness::new(ObserverConfig::default());
    h.observer.inventory().declare("POST", "/graphql");
    h.run(|| {
        let mut fired = None;
        for k in 0..10u64 {
            h.clock.advance(Duration::from_millis(500));
            let mut r = RequestRecord::new(h.observer.now(), "r", "POST", "/graphql", 400, Decision::Deny);
            r.route = Some("/graphql");
            r.subject = Some("gql");
            r.auth_method = Some("jwt");
            r.client_ip = Some(ip("45.33.5.3"));
            r.reason = Some(if k % 2 == 0 { "graphql-depth-limit" } else { "graphql-alias-limit" });
            if let Some(d) = h.observer.observe(&r).with_rule(Rule::GraphqlAbuse) {
                fired = Some((k + 1, d.action.action, d.anomaly.reasons[0].label));
                break;
            }
        }
        assert_eq!(fired, Some((5, Action::Block, Some("rejected"))));
        // Accepted near a limit: 20 in a window fire too (another caller).
        let mut near = None;
        for k in 0..30u64 {
            h.clock.advance(Duration::from_millis(100));
            let mut r = RequestRecord::new(h.observer.now(), "r", "POST", "/graphql", 200, Decision::Allow);
            r.route = Some("/graphql");
            r.subject = Some("gql2");
            r.auth_method = Some("jwt");
            r.graphql_pressure = Some(if k % 3 == 0 { 0.5 } else { 0.9 });
            if h.observer.observe(&r).with_rule(Rule::GraphqlAbuse).is_some() {
                near = Some(k + 1);
                break;
            }
        }
        assert_eq!(near, Some(30), "the 20th document at 0.9 of a limit (every third is at 0.5)");
    })
}

#[test]
fn issue19_a_new_account_scraping_is_compared_with_its_peers() {
    let h = Harness::new(ObserverConfig::default());
    h.run(|| {
        let mut fired = None;
        for k in 0..700u64 {
            h.clock.set(UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(40 * k));
            let mut r = RequestRecord::new(h.observer.now(), "r", "GET", "/orders", 200, Decision::Allow);
            r.route = Some("/orders");
            r.subject = Some("fresh");
            r.auth_method = Some("jwt");
            if let Some(d) = h.observer.observe(&r).with_rule(Rule::RequestRate) {
                fired = Some((k + 1, d.action.action, d.anomaly.reasons[0].label));
                break;
            }
        }
        assert_eq!(fired, Some((450, Action::Throttle, Some("peers"))), "25 req/s: 450 in 18 s");
        assert_eq!(h.throttles.0.lock().unwrap().len(), 1);
    })
}

#[test]
fn issue19_a_rule_in_dry_run_says_what_it_would_do_and_does_nothing() {
    let mut config = ObserverConfig::default();
    config.response.dry_run.insert(Rule::Enumeration);
    let h = Harness::new(config);
    h.run(|| {
        let mut last = None;
        for k in 0..20u64 {
            h.clock.advance(Duration::from_millis(100));
            let id = k.to_string();
            let path = format!("/orders/{id}");
            let ids = [("id", id.as_str())];
            if let Some(d) =
                h.observer.observe(&read(&h, "dry", &path, &ids, 404)).with_rule(Rule::Enumeration)
            {
                last = Some((d.action.action, d.action.enforced));
            }
        }
        assert_eq!(last, Some((Action::Block, false)));
        assert_eq!(h.observer.controls().active_blocks(), 0);
    });
    let block = h.events_with_action("block");
    assert_eq!(block.len(), 1);
    assert_eq!(block[0]["zt"]["enforced"], false);
}
