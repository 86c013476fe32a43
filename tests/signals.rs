//! Revocation events (issue 16, Shared Signals): a transmitter started by the test (its own
//! ES384 key, its JWKS and an RFC 8936 poll endpoint served by axum on 127.0.0.1) pushes
//! Security Event Tokens to the receiver mounted beside the demo; the revoked caller is
//! refused on its next request; invalid SETs get the RFC 8935 error codes; with a shared
//! redis-server, an event pushed to one replica is enforced by the other (axum + actix).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};
use support::*;
use zt::signals::{SignalReceiver, SignalsConfig};

const TRANSMITTER: &str = "https://idp.test";
const RECEIVER: &str = "https://orders.test/ssf";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";

/// The transmitter's own key (not the token issuer's ES256 key).
fn transmitter_key() -> &'static TestKey {
    key(Algorithm::ES384)
}

/// SETs waiting for the receiver's poll, and the acks it sent.
#[derive(Default)]
struct PollState {
    waiting: Vec<(String, String)>,
    acked: Vec<String>,
    errors: Vec<Value>,
}

/// Serves the transmitter's JWKS at `/jwks` and its RFC 8936 poll endpoint at `/poll`.
async fn transmitter(state: Arc<Mutex<PollState>>) -> SocketAddr {
    use axum::routing::{get, post};
    let jwks = jwks(&[transmitter_key()]);
    let app = axum::Router::new().route("/jwks", get(move || async move { jwks })).route(
        "/poll",
        post(move |axum::Json(body): axum::Json<Value>| {
            let state = state.clone();
            async move {
                let mut state = state.lock().unwrap();
                for id in body["ack"].as_array().into_iter().flatten() {
                    state.acked.push(id.as_str().unwrap_or_default().to_string());
                }
                if let Some(errs) = body.get("setErrs") {
                    state.errors.push(errs.clone());
                }
                let sets: serde_json::Map<String, Value> =
                    state.waiting.drain(..).map(|(id, set)| (id, Value::String(set))).collect();
                axum::Json(json!({"sets": sets, "moreAvailable": false}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn signals_config(transmitter: SocketAddr) -> SignalsConfig {
    SignalsConfig::new(TRANSMITTER, RECEIVER).jwks_url(format!("http://{transmitter}/jwks"))
}

fn policy(transmitter: SocketAddr) -> zt::Policy {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(zt::observe::ObserverConfig::default());
    policy.signals = Some(signals_config(transmitter));
    policy
}

/// A SET with these events, signed by `key` with header `typ`.
fn set_signed(key: &TestKey, typ: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = typ.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

fn set_claims(jti: &str, event: &str, payload: Value) -> Value {
    json!({"iss": TRANSMITTER, "aud": RECEIVER, "iat": now(), "jti": jti, "events": {event: payload}})
}

fn set(jti: &str, event: &str, payload: Value) -> String {
    set_signed(transmitter_key(), Some("secevent+jwt"), set_claims(jti, event, payload))
}

/// Serves the guard's push endpoint (same controls as the demo served with the guard).
async fn spawn_push(guard: zt::Guard) -> SocketAddr {
    let app = zt::axum::Router::new(guard).signals().into_axum();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

async fn push(addr: SocketAddr, set: &str) -> RawResponse {
    raw_request(
        addr,
        "POST",
        "/zt/signals/push",
        &[("content-type", "application/secevent+jwt"), ("user-agent", "ssf-test")],
        Some(set.as_bytes()),
    )
    .await
}

async fn get(addr: SocketAddr, authorization: &str) -> u16 {
    raw_request(
        addr,
        "GET",
        "/orders",
        &[("authorization", authorization), ("user-agent", "Mozilla/5.0")],
        None,
    )
    .await
    .status
}

fn bearer_with(sub: &str, extra: Value, iat_offset: i64) -> String {
    let mut claims = claims(sub, "orders:read");
    claims["iat"] = json!(now() + iat_offset);
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    format!("Bearer {}", sign(key(Algorithm::ES256), &claims))
}

fn err_of(r: &RawResponse) -> String {
    let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
    body["err"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_events_revoke_and_block_and_invalid_sets_are_refused() {
    let tx = transmitter(Arc::default()).await;
    let guard = demo_guard(policy(tx));
    let demo = spawn_axum(guard.clone()).await;
    let receiver = spawn_push(guard.clone()).await;

    // session-revoked for session s-1 (complex subject): that session's token refused,
    // another session of the same user carries on.
    let in_session = bearer_with("alice", json!({"sid": "s-1"}), 0);
    let other_session = bearer_with("alice", json!({"sid": "s-2"}), 0);
    assert_eq!(get(demo, &in_session).await, 200);
    let revoke = set(
        "set-1",
        SESSION_REVOKED,
        json!({"subject": {"format": "complex",
            "user": {"format": "iss_sub", "iss": ISSUER, "sub": "alice"},
            "session": {"format": "opaque", "id": "s-1"}},
            "event_timestamp": now()}),
    );
    let r = push(receiver, &revoke).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(get(demo, &in_session).await, 401, "the revoked session's token is refused");
    assert_eq!(get(demo, &other_session).await, 200, "another session is not");

    // The same SET again: a replay.
    let r = push(receiver, &revoke).await;
    assert_eq!((r.status, err_of(&r).as_str()), (400, "invalid_request"), "{r:?}");

    // Invalid SETs: each with its RFC 8935 error code.
    let payload = json!({"subject": {"format": "opaque", "id": "bob"}});
    let mut wrong_aud = set_claims("set-aud", CREDENTIAL_CHANGE, payload.clone());
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = set_claims("set-iss", CREDENTIAL_CHANGE, payload.clone());
    wrong_iss["iss"] = json!("https://evil.test");
    let mut stale = set_claims("set-old", CREDENTIAL_CHANGE, payload.clone());
    stale["iat"] = json!(now() - 3600);
    let attacker = attacker_ec();
    let mut forged_header = Header::new(Algorithm::ES384);
    forged_header.kid = Some(transmitter_key().kid.clone());
    forged_header.typ = Some("secevent+jwt".into());
    // The attacker's ES256 signature under the transmitter's kid: ES384 verification fails.
    let forged = {
        let good = set("set-sig", CREDENTIAL_CHANGE, payload.clone());
        let bad = set_signed(
            attacker,
            Some("secevent+jwt"),
            set_claims("set-sig", CREDENTIAL_CHANGE, payload.clone()),
        );
        let (head, _) = good.rsplit_once('.').unwrap();
        let (_, sig) = bad.rsplit_once('.').unwrap();
        format!("{head}.{sig}")
    };
    let cases = [
        ("wrong aud", set_signed(transmitter_key(), Some("secevent+jwt"), wrong_aud), "invalid_audience"),
        ("wrong iss", set_signed(transmitter_key(), Some("secevent+jwt"), wrong_iss), "invalid_issuer"),
        ("bad signature", forged, "authentication_failed"),
        (
            "unknown key",
            set_signed(
                attacker,
                Some("secevent+jwt"),
                set_claims("set-key", CREDENTIAL_CHANGE, payload.clone()),
            ),
            "invalid_key",
        ),
        (
            "typ JWT",
            set_signed(
                transmitter_key(),
                Some("JWT"),
                set_claims("set-typ", CREDENTIAL_CHANGE, payload.clone()),
            ),
            "invalid_request",
        ),
        (
            "no typ",
            set_signed(transmitter_key(), None, set_claims("set-notyp", CREDENTIAL_CHANGE, payload.clone())),
            "invalid_request",
        ),
        ("stale iat", set_signed(transmitter_key(), Some("secevent+jwt"), stale), "invalid_request"),
        ("not a JWS", "not.a.jws.at-all".to_string(), "invalid_request"),
    ];
    let bob_old = bearer_with("bob", json!({}), -30);
    for (name, set, err) in cases {
        let r = push(receiver, &set).await;
        assert_eq!((r.status, err_of(&r).as_str()), (400, err), "{name}: {r:?}");
    }
    assert_eq!(get(demo, &bob_old).await, 200, "no refused SET changed anything");
    let r = raw_request(
        receiver,
        "POST",
        "/zt/signals/push",
        &[("content-type", "application/json"), ("user-agent", "ssf-test")],
        Some(set("set-ct", CREDENTIAL_CHANGE, payload.clone()).as_bytes()),
    )
    .await;
    assert_eq!((r.status, err_of(&r).as_str()), (400, "invalid_request"), "wrong media type: {r:?}");

    // credential-change for bob: tokens issued before the change refused, a new one accepted.
    let change = set(
        "set-2",
        CREDENTIAL_CHANGE,
        json!({"subject": {"format": "opaque", "id": "bob"},
        "event_timestamp": now() - 5, "change_type": "update", "credential_type": "password"}),
    );
    let r = push(receiver, &change).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(get(demo, &bob_old).await, 401, "a token issued before the change is refused");
    assert_eq!(
        get(demo, &bearer_with("bob", json!({}), 0)).await,
        200,
        "a token issued after it is accepted"
    );

    // account-disabled for carol (sub_id at the SET's top level): blocked, whatever the token.
    let mut disabled = set_claims("set-3", ACCOUNT_DISABLED, json!({}));
    disabled["sub_id"] = json!({"format": "iss_sub", "iss": ISSUER, "sub": "carol"});
    let r = push(receiver, &set_signed(transmitter_key(), Some("secevent+jwt"), disabled)).await;
    assert_eq!(r.status, 202, "{r:?}");
    let carol = raw_request(
        demo,
        "GET",
        "/orders",
        &[("authorization", &bearer_with("carol", json!({}), 0)), ("user-agent", "Mozilla/5.0")],
        None,
    )
    .await;
    assert_eq!(carol.status, 403, "{carol:?}");
    assert_eq!(carol.problem_type().as_deref(), Some("urn:zt:problem:blocked"));
    assert_eq!(get(demo, &bearer_with("dave", json!({}), 0)).await, 200, "others carry on");

    // jwt_id subject: exactly that token.
    let r = push(
        receiver,
        &set(
            "set-4",
            SESSION_REVOKED,
            json!({"subject": {"format": "jwt_id", "iss": ISSUER, "jti": "tok-9"}}),
        ),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(get(demo, &bearer_with("erin", json!({"jti": "tok-9"}), 0)).await, 401);
    assert_eq!(get(demo, &bearer_with("erin", json!({"jti": "tok-10"}), 0)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_events_are_applied_and_acknowledged() {
    let state = Arc::new(Mutex::new(PollState::default()));
    let tx = transmitter(state.clone()).await;
    let mut policy = policy(tx);
    let mut config = signals_config(tx);
    config.poll = Some(zt::signals::PollConfig {
        endpoint: format!("http://{tx}/poll"),
        interval: Duration::from_secs(3600),
        token_env: None,
        max_events: 10,
    });
    policy.signals = Some(config);
    let guard = demo_guard(policy);
    let demo = spawn_axum(guard.clone()).await;
    let receiver = SignalReceiver::new(&guard).unwrap();

    let frank = bearer_with("frank", json!({}), -30);
    assert_eq!(get(demo, &frank).await, 200);
    {
        let mut state = state.lock().unwrap();
        state.waiting.push((
            "p-1".into(),
            set(
                "p-1",
                CREDENTIAL_CHANGE,
                json!({"subject": {"format": "email", "email": "frank"}, "event_timestamp": now() - 5}),
            ),
        ));
        let mut bad = set_claims("p-2", CREDENTIAL_CHANGE, json!({}));
        bad["aud"] = json!("elsewhere");
        state.waiting.push(("p-2".into(), set_signed(transmitter_key(), Some("secevent+jwt"), bad)));
    }
    assert_eq!(receiver.poll_once().await.unwrap(), 2);
    assert_eq!(get(demo, &frank).await, 401, "the polled credential change revoked frank's old token");
    // The next poll acknowledges p-1 and reports p-2's error.
    assert_eq!(receiver.poll_once().await.unwrap(), 0);
    let state = state.lock().unwrap();
    assert_eq!(state.acked, vec!["p-1".to_string()]);
    assert_eq!(state.errors.len(), 1);
    assert_eq!(state.errors[0]["p-2"]["err"], "invalid_audience");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_pushed_to_one_replica_is_enforced_by_the_other() {
    let Some(mut redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let tx = transmitter(Arc::default()).await;
    let replica = |name: &str| {
        let mut policy = policy(tx);
        let mut fleet = zt::fleet::FleetConfig::new(redis.url());
        fleet.prefix = "ssf".into();
        fleet.sync_interval = Duration::from_millis(200);
        fleet.timeout = Duration::from_millis(500);
        fleet.secret = Some(zt::fleet::FleetSecret::new("signals-test-fleet-secret-012345"));
        policy.fleet = Some(fleet);
        let _ = name;
        demo_guard(policy)
    };
    let (a, b) = (replica("axum"), replica("actix"));
    assert!(a.warm_up().await.is_empty());
    assert!(b.warm_up().await.is_empty());
    let push_a = spawn_push(a.clone()).await;
    let push_b = spawn_push(b.clone()).await;
    let demo_a = spawn_axum(a).await;
    let demo_b = spawn_actix(b);

    let gina_session = bearer_with("gina", json!({"sid": "g-1"}), 0);
    let hank = bearer_with("hank", json!({}), 0);
    for addr in [demo_a, demo_b] {
        assert_eq!(get(addr, &gina_session).await, 200);
        assert_eq!(get(addr, &hank).await, 200);
    }
    let revoke = set(
        "f-1",
        SESSION_REVOKED,
        json!({"subject": {"format": "complex",
        "session": {"format": "opaque", "id": "g-1"}}}),
    );
    assert_eq!(push(push_a, &revoke).await.status, 202);
    let mut disabled = set_claims("f-2", ACCOUNT_DISABLED, json!({}));
    disabled["sub_id"] = json!({"format": "opaque", "id": "hank"});
    assert_eq!(
        push(push_a, &set_signed(transmitter_key(), Some("secevent+jwt"), disabled)).await.status,
        202
    );

    // Bounded liveness wait (no timing assertion): both replicas refuse both.
    for (name, addr) in [("axum", demo_a), ("actix", demo_b)] {
        let mut done = false;
        for _ in 0..500 {
            if get(addr, &gina_session).await == 401 && get(addr, &hank).await == 403 {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(done, "{name}: the events pushed to replica a were not enforced");
    }
    // The same SET replayed to the other replica: refused there too (SET NX in Redis).
    let r = push(push_b, &revoke).await;
    assert_eq!((r.status, err_of(&r).as_str()), (400, "invalid_request"), "{r:?}");

    // A credential change (every token of ivy issued before it) pushed to replica b.
    let ivy_old = bearer_with("ivy", json!({}), -30);
    let mut changed =
        set_claims("f-3", CREDENTIAL_CHANGE, json!({"credential_type": "password", "change_type": "update"}));
    changed["sub_id"] = json!({"format": "opaque", "id": "ivy"});
    assert_eq!(push(push_b, &set_signed(transmitter_key(), Some("secevent+jwt"), changed)).await.status, 202);
    // A replica started after both events loads them from the shared store: the session
    // and issued-before revocations are enforced at its first request, like the block.
    let c = replica("late");
    assert!(c.warm_up().await.is_empty());
    let demo_c = spawn_axum(c).await;
    assert_eq!(get(demo_c, &gina_session).await, 401, "late replica: revoked session accepted");
    assert_eq!(get(demo_c, &hank).await, 403, "late replica: disabled account accepted");
    assert_eq!(get(demo_c, &ivy_old).await, 401, "late replica: token issued before the change accepted");
    let ivy_new = bearer_with("ivy", json!({}), 5);
    assert_eq!(get(demo_c, &ivy_new).await, 200, "late replica: a token issued after the change refused");
    let gina_other = bearer_with("gina", json!({"sid": "g-2"}), 0);
    assert_eq!(get(demo_c, &gina_other).await, 200, "late replica: another session of gina refused");

    // The store down when an event is pushed: accepted (202), in force on the receiving
    // replica at once, and written when the store is back (here: restarted empty, so the
    // replicas' copies are seeded back), so the other replicas get it too.
    redis.kill();
    let revoke_other = set(
        "f-4",
        SESSION_REVOKED,
        json!({"subject": {"format": "complex", "session": {"format": "opaque", "id": "g-2"}}}),
    );
    assert_eq!(push(push_a, &revoke_other).await.status, 202, "accepted while the store is down");
    assert_eq!(get(demo_a, &gina_other).await, 401, "in force on the receiving replica at once");
    assert!(redis.restart(), "redis restarted");
    for (name, addr) in [("actix", demo_b), ("late", demo_c)] {
        let mut done = false;
        for _ in 0..500 {
            if get(addr, &gina_other).await == 401 {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(done, "{name}: the session revoked during the outage never arrived");
        assert_eq!(get(addr, &gina_session).await, 401, "{name}: the earlier revocation still holds");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_push_authorization_is_required_on_both_adapters() {
    let tx = transmitter(Arc::default()).await;
    let mut policy = policy(tx);
    let secret = "Bearer ssf-push-7f3a9c2e5b1d4f60";
    if let Some(signals) = policy.signals.as_mut() {
        signals.push_authorization = Some(zt::signals::PushAuthorization::new(secret));
    }
    let servers =
        [("axum", spawn_axum(demo_guard(policy.clone())).await), ("actix", spawn_actix(demo_guard(policy)))];
    let send = |addr: SocketAddr, authorization: Option<&'static str>, set: String| async move {
        let mut headers = vec![("content-type", "application/secevent+jwt"), ("user-agent", "ssf-test")];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        raw_request(addr, "POST", "/zt/signals/push", &headers, Some(set.as_bytes())).await
    };
    for (i, (name, addr)) in servers.into_iter().enumerate() {
        let event = |n: usize| {
            let mut c = set_claims(&format!("auth-{i}-{n}"), CREDENTIAL_CHANGE, json!({}));
            c["sub_id"] = json!({"format": "opaque", "id": format!("nobody-{i}")});
            set_signed(transmitter_key(), Some("secevent+jwt"), c)
        };
        for (what, authorization) in [
            ("no authorization", None),
            ("another token", Some("Bearer ssf-push-7f3a9c2e5b1d4f61")),
            ("a prefix of it", Some("Bearer ssf-push-7f3a9c2e")),
        ] {
            let r = send(addr, authorization, event(0)).await;
            assert_eq!(
                (r.status, err_of(&r).as_str()),
                (401, "authentication_failed"),
                "{name}: {what}: {r:?}"
            );
            assert!(!r.body.contains("7f3a"), "{name}: the secret is never echoed");
        }
        let r = send(addr, Some(secret), event(0)).await;
        assert_eq!(r.status, 202, "{name}: the transmitter's authorization: {r:?}");
        // The header does not replace the signature: a SET whose signature does not verify
        // (another SET's signature under this one's claims) is refused.
        let (head, _) = event(1).rsplit_once('.').map(|(h, s)| (h.to_string(), s.to_string())).unwrap();
        let other = event(2);
        let (_, sig) = other.rsplit_once('.').unwrap();
        let r = send(addr, Some(secret), format!("{head}.{sig}")).await;
        assert_eq!(
            (r.status, err_of(&r).as_str()),
            (400, "authentication_failed"),
            "{name}: authorized but not signed by the transmitter: {r:?}"
        );
    }
}
