//! GraphQL checks at scale: a generated real-world-sized schema (500 object types,
//! interfaces, enums, input objects, type- and field-level rules) and the typical 1 KiB
//! query. Their timings are criterion benches: `cargo bench --bench graphql`.
#![cfg(feature = "graphql")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../benches/data/graphql_fixtures.rs"]
mod fixtures;

use fixtures::{LARGE_QUERY, TYPICAL_QUERY, large_sdl};
use serde_json::json;
use zt_core::graphql::{GraphqlConfig, GraphqlReason, GraphqlRequestBody, GraphqlSchema};

const ORDERS_SDL: &str = include_str!("../../examples/orders.graphql");

/// A dashboard query of about 1 KiB: named operation, variables with defaults, aliases,
/// a fragment spread twice, nested lists.
fn demo() -> GraphqlSchema {
    demo_with(GraphqlConfig::default())
}

fn demo_with(config: GraphqlConfig) -> GraphqlSchema {
    GraphqlSchema::from_sdl(
        ORDERS_SDL,
        GraphqlConfig { max_depth: 8, max_aliases: 20, max_root_fields: 10, max_batch: 5, ..config },
    )
    .unwrap()
}

fn typical_body() -> String {
    json!({"query": TYPICAL_QUERY, "operationName": "OrderDashboard", "variables": {"id": "42", "limit": 10}})
        .to_string()
}

#[test]
fn a_large_generated_schema_compiles_and_checks() {
    let sdl = large_sdl(500);
    assert!(sdl.len() > 200_000, "{}", sdl.len());
    let schema = GraphqlSchema::from_sdl(&sdl, GraphqlConfig::default()).unwrap();
    let body = json!({"query": LARGE_QUERY, "variables": {"id": "t-1"}}).to_string();
    let granted = vec!["read:t3".to_string()];
    let check = |granted: Option<&[String]>| {
        schema.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), granted)
    };
    let info = check(Some(&granted)).unwrap();
    assert_eq!(info[0].depth, 6);
    // T3.next is T4, T3.related is [T24]: neither needs more than `read:t3`...
    // ...but a T0/T10/... (every tenth type) needs authentication.
    assert!(check(Some(&["admin".to_string()])).is_ok());
    let denial = check(None).unwrap_err();
    assert_eq!(
        (denial.reason, denial.field_paths.as_slice()),
        (GraphqlReason::Unauthenticated, &["allT3".to_string()][..])
    );
    let secret = json!({"query": "{ t5(id: 1) { next { secret } } }"}).to_string();
    let denial =
        schema.check_with_scopes(GraphqlRequestBody::Json(secret.as_bytes()), Some(&granted)).unwrap_err();
    assert_eq!(denial.field_paths, ["t5.next.secret"]);
    // Through the interface, the rules of every implementation apply: T0, T10, ... are
    // @authenticated, so `Node.id` needs an authenticated caller.
    let node = json!({"query": "{ node(id: 1) { id ... on T7 { name } } }"}).to_string();
    assert!(schema.check_with_scopes(GraphqlRequestBody::Json(node.as_bytes()), Some(&[])).is_ok());
    let denial = schema.check_with_scopes(GraphqlRequestBody::Json(node.as_bytes()), None).unwrap_err();
    assert_eq!(
        (denial.reason, denial.field_paths.as_slice()),
        (GraphqlReason::Unauthenticated, &["node.id".to_string()][..])
    );
    // Errors stay free of schema names that were not asked for.
    let typo = json!({"query": "{ t5(id: 1) { nam } }"}).to_string();
    let denial =
        schema.check_with_scopes(GraphqlRequestBody::Json(typo.as_bytes()), Some(&granted)).unwrap_err();
    assert_eq!(denial.reason, GraphqlReason::ValidationFailed);
    assert!(!denial.body("r").contains("name"));
}

#[test]
fn the_typical_query_is_about_one_kibibyte_and_valid() {
    assert!((900..=1300).contains(&TYPICAL_QUERY.len()), "{}", TYPICAL_QUERY.len());
    let granted = vec!["orders:read".to_string()];
    let body = typical_body();
    let info = demo().check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted)).unwrap();
    assert_eq!(info[0].name.as_deref(), Some("OrderDashboard"));
    assert_eq!(info[0].aliases, 4);
}
