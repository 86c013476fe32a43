//! Issue 14, GraphQL findings that take more than one request (batches, quotas,
//! inventory, telemetry), each sent over real HTTP on 127.0.0.1 to BOTH demo services.
//! Single-request cases are in the shared table (`tests/support/cases.rs`, `adv14_*`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::*;

/// Both demos with one guard built from `policy` (each adapter its own store).
async fn both(policy: zt::Policy) -> [(&'static str, SocketAddr, zt::Guard); 2] {
    let axum_guard = demo_guard(policy.clone());
    let actix_guard = demo_guard(policy);
    let axum = spawn_axum(axum_guard.clone()).await;
    let actix = spawn_actix(actix_guard.clone());
    [("axum", axum, axum_guard), ("actix", actix, actix_guard)]
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn graphql(addr: SocketAddr, token: &str, body: &Value) -> (u16, Value) {
    let r = post_json(addr, "/graphql", &bearer(token), body.to_string().as_bytes()).await;
    (r.status, serde_json::from_str(&r.body).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &Value {
    &body["errors"][0]["extensions"]["code"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_3_graphql_cost_is_one_budget_per_batch() {
    let reader = token("alice", "orders:read");
    // Each member costs 1 + 100 x 2 = 201 (no `limit`: the resolver's cap of 100).
    let member = json!({"query": "{ orders { id item } }"});
    for (adapter, addr, _) in both(policy_with_jwks(trusted_jwks())).await {
        let (status, body) = graphql(addr, &reader, &json!(vec![member.clone(); 4])).await;
        assert_eq!(status, 200, "{adapter}: four members (804) fit: {body}");
        let (status, body) = graphql(addr, &reader, &json!(vec![member.clone(); 5])).await;
        assert_eq!((status, code(&body)), (400, &json!("COST_LIMIT")), "{adapter}: five (1005): {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_3_graphql_list_bound_is_what_the_executor_returns() {
    // What zt assumes for a list without `limit` is what the executor returns then.
    let schema = orders::graphql::guarded_schema().unwrap();
    let body = br#"{"query": "{ orders { id } }"}"#;
    let reader_scopes = ["orders:read".to_string()];
    let ops =
        schema.check_with_scopes(zt::graphql::GraphqlRequestBody::Json(body), Some(&reader_scopes)).unwrap();
    assert_eq!(ops[0].cost, 1 + orders::graphql::MAX_LIST as u64);

    let writer = token("carol", "orders:read orders:write");
    for (adapter, addr, _) in both(policy_with_jwks(trusted_jwks())).await {
        for _ in 0..=orders::graphql::MAX_LIST {
            let r = post_json(addr, "/orders", &bearer(&writer), br#"{"item":"book","quantity":1}"#).await;
            assert_eq!(r.status, 201, "{adapter}: {}", r.body);
        }
        let (status, body) = graphql(addr, &writer, &json!({"query": "{ orders { id } }"})).await;
        assert_eq!(status, 200, "{adapter}: {body}");
        let returned = body["data"]["orders"].as_array().map(Vec::len);
        assert_eq!(returned, Some(orders::graphql::MAX_LIST), "{adapter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_6_graphql_batch_with_a_member_the_executor_would_fail() {
    let reader = token("alice", "orders:read");
    let good = json!({"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": 5}});
    for (adapter, addr, _) in both(policy_with_jwks(trusted_jwks())).await {
        for bad in [json!(5.0), json!(-0.0), json!(2_147_483_648_i64)] {
            let member =
                json!({"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": bad}});
            let (status, body) = graphql(addr, &reader, &json!([good, member])).await;
            assert_eq!((status, code(&body)), (400, &json!("BAD_USER_INPUT")), "{adapter} {bad}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["batch_index"], 1, "{adapter}");
        }
        let id =
            json!({"query": "query O($id: ID!) { order(id: $id) { id } }", "variables": {"id": u64::MAX}});
        let (status, body) = graphql(addr, &reader, &json!([good, id])).await;
        assert_eq!((status, code(&body)), (400, &json!("BAD_USER_INPUT")), "{adapter}: {body}");
        // The same batch with members the executor takes runs (no 500 "contract bypass").
        let id = json!({"query": "query O($id: ID!) { order(id: $id) { id } }", "variables": {"id": 7}});
        let (status, body) = graphql(addr, &reader, &json!([good, id])).await;
        assert_eq!(status, 200, "{adapter}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_4_demo_store_is_bounded_per_owner() {
    // One writer past its own bound drops its own oldest orders, never anyone else's.
    let victim = token("victim", "orders:read orders:write");
    let writer = token("flooder", "orders:read orders:write");
    let order = br#"{"item":"book","quantity":1}"#;
    for (adapter, addr, _) in both(policy_with_jwks(trusted_jwks())).await {
        let r = post_json(addr, "/orders", &bearer(&victim), order).await;
        assert_eq!(r.status, 201, "{adapter}");
        let mutation: String =
            (0..10).map(|i| format!("a{i}: createOrder(item: \"x\", quantity: 1) {{ id }} ")).collect();
        let batch = json!(vec![json!({ "query": format!("mutation {{ {mutation} }}") }); 5]);
        for _ in 0..=(orders::MAX_ORDERS_PER_OWNER / 50) {
            let (status, body) = graphql(addr, &writer, &batch).await;
            assert_eq!(status, 200, "{adapter}: {body}");
        }
        let r = raw_request(addr, "GET", "/orders", &[("authorization", &bearer(&victim))], None).await;
        let mine: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(mine.as_array().map(Vec::len), Some(1), "{adapter}: the victim's order survived");
        let r = raw_request(addr, "GET", "/orders", &[("authorization", &bearer(&writer))], None).await;
        let theirs: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(theirs.as_array().map(Vec::len), Some(orders::MAX_ORDERS_PER_OWNER), "{adapter}");
    }
}

/// The demo policy's quotas: `POST /orders` 10/s burst 20 per identity, and GraphQL's
/// `createOrder` sharing it (the README's GraphQL section shows the same).
fn quota_policy(extra: &str) -> zt::Policy {
    let mut policy = policy_with_jwks(trusted_jwks());
    let limits = format!(
        r#"
[[routes]]
method = "POST"
path = "/orders"
rate = "10/s"
burst = 20
[[graphql]]
path = "/graphql"
field = "Mutation.createOrder"
shares = "POST /orders"
{extra}
"#
    );
    policy.limits = Some(zt::limit::LimitConfig::from_toml_str(&limits).unwrap());
    policy
}

fn aliased_creates(n: usize) -> String {
    let fields: String =
        (0..n).map(|i| format!("c{i}: createOrder(item: \"x\", quantity: 1) {{ id }} ")).collect();
    format!("mutation {{ {fields} }}")
}

async fn my_orders(addr: SocketAddr, token: &str) -> usize {
    let r = raw_request(addr, "GET", "/orders", &[("authorization", &bearer(token))], None).await;
    serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v.as_array().map(Vec::len)).unwrap_or(usize::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_4_graphql_batch_of_aliased_mutations_takes_the_route_quota() {
    let writer = token("dave", "orders:read orders:write");
    let batch = json!(vec![json!({ "query": aliased_creates(10) }); 5]);
    for (adapter, addr, _) in both(quota_policy("")).await {
        // 50 createOrder: 50 units of the 20-burst POST /orders quota: refused whole.
        let r = post_json(addr, "/graphql", &bearer(&writer), batch.to_string().as_bytes()).await;
        assert_eq!(r.status, 429, "{adapter}: {}", r.body);
        assert!(r.header("retry-after").is_some(), "{adapter}");
        assert_eq!(my_orders(addr, &writer).await, 0, "{adapter}: nothing ran");
        // One bucket whatever the door: 15 over REST, then 10 over GraphQL do not fit ...
        for _ in 0..15 {
            let r = post_json(addr, "/orders", &bearer(&writer), br#"{"item":"a","quantity":1}"#).await;
            assert_eq!(r.status, 201, "{adapter}");
        }
        let (status, _) = graphql(addr, &writer, &json!({ "query": aliased_creates(10) })).await;
        assert_eq!(status, 429, "{adapter}");
        // ... 5 do, and then REST is spent too.
        let (status, body) = graphql(addr, &writer, &json!({ "query": aliased_creates(5) })).await;
        assert_eq!(status, 200, "{adapter}: {body}");
        let r = post_json(addr, "/orders", &bearer(&writer), br#"{"item":"a","quantity":1}"#).await;
        assert_eq!(r.status, 429, "{adapter}");
        assert_eq!(my_orders(addr, &writer).await, 20, "{adapter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_4_graphql_route_quota_counts_each_mutation_field() {
    // No quota names createOrder here: the GraphQL route's own quota (10, burst 10) takes
    // one unit per mutation root field.
    let mut policy = policy_with_jwks(trusted_jwks());
    let limits = "[[routes]]\nmethod = \"POST\"\npath = \"/graphql\"\nrate = \"10/m\"\nburst = 10\n";
    policy.limits = Some(zt::limit::LimitConfig::from_toml_str(limits).unwrap());
    let writer = token("erin", "orders:read orders:write");
    for (adapter, addr, _) in both(policy).await {
        let (status, body) = graphql(addr, &writer, &json!({ "query": aliased_creates(8) })).await;
        assert_eq!(status, 200, "{adapter}: {body}");
        let (status, _) = graphql(addr, &writer, &json!({ "query": aliased_creates(3) })).await;
        assert_eq!(status, 429, "{adapter}: 8 + 3 > 10");
        // The refused request still took the unit every request takes before its body is
        // read: one left.
        let (status, body) = graphql(addr, &writer, &json!({ "query": aliased_creates(1) })).await;
        assert_eq!(status, 200, "{adapter}: 8 + 1 + 1 = 10: {body}");
        let (status, _) = graphql(addr, &writer, &json!({ "query": aliased_creates(1) })).await;
        assert_eq!(status, 429, "{adapter}: spent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_10_graphql_invented_operation_names_do_not_fill_the_inventory() {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(zt::observe::ObserverConfig::default());
    let inventor = token("mallory", "orders:read");
    let honest = token("alice", "orders:read");
    for (adapter, addr, guard) in both(policy).await {
        // One caller invents 100 names: its budget (20) become entries, the rest `{other}`.
        for i in 0..100 {
            let body = json!({ "query": format!("query Invented{i} {{ orders(limit: 1) {{ id }} }}") });
            let (status, _) = graphql(addr, &inventor, &body).await;
            assert_eq!(status, 200, "{adapter}");
        }
        // Another caller's new operation still gets its own entry.
        let (status, _) =
            graphql(addr, &honest, &json!({"query": "query Dashboard { orders(limit: 5) { id } }"})).await;
        assert_eq!(status, 200, "{adapter}");
        let snapshot = guard.observer().unwrap().inventory().snapshot();
        let routes: Vec<&str> = snapshot.endpoints.iter().map(|e| e.route.as_str()).collect();
        let invented = routes.iter().filter(|r| r.starts_with("/graphql query Invented")).count();
        assert_eq!(invented, 20, "{adapter}: {routes:?}");
        let other = snapshot.endpoint("POST", "/graphql query {other}").map(|e| e.calls);
        assert_eq!(other, Some(80), "{adapter}: {routes:?}");
        assert!(snapshot.endpoint("POST", "/graphql query Dashboard").is_some(), "{adapter}: {routes:?}");
    }
}

/// What the `zt.request` spans and the `zt::graphql` events said, by request id.
mod capture {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Mutex, Once, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;

    pub type Fields = BTreeMap<String, String>;

    /// Span fields (latest values) and events, by request id.
    pub fn spans() -> &'static Mutex<HashMap<String, Fields>> {
        static SPANS: OnceLock<Mutex<HashMap<String, Fields>>> = OnceLock::new();
        SPANS.get_or_init(Mutex::default)
    }
    pub fn events() -> &'static Mutex<HashMap<String, Vec<Fields>>> {
        static EVENTS: OnceLock<Mutex<HashMap<String, Vec<Fields>>>> = OnceLock::new();
        EVENTS.get_or_init(Mutex::default)
    }

    #[derive(Default)]
    struct Recorded(Fields);

    impl Visit for Recorded {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_string(), value.to_string());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    struct Capture;

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            if attrs.metadata().name() == "zt.request" {
                let mut recorded = Recorded::default();
                attrs.record(&mut recorded);
                if let Some(span) = ctx.span(id) {
                    span.extensions_mut().insert(recorded);
                }
            }
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            let Some(span) = ctx.span(id) else { return };
            let mut extensions = span.extensions_mut();
            let Some(recorded) = extensions.get_mut::<Recorded>() else { return };
            values.record(recorded);
            if let Some(request_id) = recorded.0.get("zt.request_id") {
                spans().lock().unwrap().insert(request_id.clone(), recorded.0.clone());
            }
        }

        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if event.metadata().target() != "zt::graphql" {
                return;
            }
            let mut recorded = Recorded::default();
            event.record(&mut recorded);
            let request_id = recorded.0.get("zt.request_id").cloned().unwrap_or_default();
            events().lock().unwrap().entry(request_id).or_default().push(recorded.0);
        }
    }

    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Capture);
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_12_graphql_batch_is_recorded_under_every_operation() {
    capture::install();
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(zt::observe::ObserverConfig::default());
    let writer = token("frank", "orders:read orders:write");
    let decoy = json!({"query": "query Decoy { orders(limit: 1) { id } }"});
    let hidden = json!({"query": format!("mutation Hidden {{ {} }}", (0..3).map(|i| format!("h{i}: createOrder(item: \"x\", quantity: 1) {{ id }}")).collect::<Vec<_>>().join(" "))});
    for (adapter, addr, guard) in both(policy).await {
        let body = json!([decoy, hidden]).to_string();
        let r = post_json(addr, "/graphql", &bearer(&writer), body.as_bytes()).await;
        assert_eq!(r.status, 200, "{adapter}: {}", r.body);
        let request_id = r.header("x-request-id").unwrap().to_string();
        let span = capture::spans().lock().unwrap().get(&request_id).cloned().unwrap_or_default();
        assert_eq!(
            span.get("graphql.operation.name").map(String::as_str),
            Some("Decoy,Hidden"),
            "{adapter}: {span:?}"
        );
        assert_eq!(
            span.get("graphql.operation.type").map(String::as_str),
            Some("query,mutation"),
            "{adapter}"
        );
        assert_eq!(span.get("zt.graphql.document_hash").map(|h| h.split(',').count()), Some(2), "{adapter}");
        let events = capture::events().lock().unwrap().get(&request_id).cloned().unwrap_or_default();
        let named: Vec<&str> =
            events.iter().filter_map(|e| e.get("graphql.operation.name").map(String::as_str)).collect();
        assert_eq!(named, ["Decoy", "Hidden"], "{adapter}: {events:?}");
        // The observer records after the response has left: wait for it, bounded (only so
        // that a record that never comes fails instead of hanging).
        for route in ["/graphql query Decoy", "/graphql mutation Hidden"] {
            let mut calls = None;
            for _ in 0..3000 {
                calls =
                    guard.observer().unwrap().inventory().snapshot().endpoint("POST", route).map(|e| e.calls);
                if calls.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(calls, Some(1), "{adapter}: {route}");
        }
    }
}
