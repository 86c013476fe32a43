//! GraphQL checks at scale: a generated real-world-sized schema (500 object types,
//! interfaces, enums, input objects, type- and field-level rules), and timing helpers.
//!
//! The timings are `#[ignore]`d (they mean something only in release):
//!
//! ```sh
//! cargo test -p zt-core --release --test graphql_timing -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use apollo_compiler::Schema;
use apollo_compiler::parser::Parser;
use serde_json::json;
use zt_core::graphql::{GraphqlConfig, GraphqlReason, GraphqlRequestBody, GraphqlSchema};

const ORDERS_SDL: &str = include_str!("../../examples/orders.graphql");

/// A dashboard query of about 1 KiB: named operation, variables with defaults, aliases,
/// a fragment spread twice, nested lists.
const TYPICAL_QUERY: &str = r#"# Dashboard of the orders service: recent orders, one order in detail.
# Variables: $limit (page size), $id (the order shown), $related (its customer's history).
query OrderDashboard($limit: Int = 20, $id: ID!, $related: Int = 5, $withNotes: Boolean = false) {
    recent: orders(limit: $limit) {
        ...OrderSummary
        customer {
            ...CustomerSummary
        }
    }
    selected: order(id: $id) {
        ...OrderSummary
        owner
        customer {
            ...CustomerSummary
            history: orders(limit: $related) {
                ...OrderSummary
                customer @skip(if: $withNotes) {
                    id
                }
            }
        }
    }
    again: order(id: $id) {
        id
        item
        quantity
        owner
    }
}

# Shared selections.
fragment OrderSummary on Order {
    id
    item
    quantity
    owner
    __typename
}

fragment CustomerSummary on Customer {
    id
    name
    __typename
}
"#;

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

/// Median and 90th percentile of `iterations` runs of `f`.
fn measure(iterations: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 9 / 10])
}

/// Generates an SDL with `types` object types in the shape of a real API: a `Node`
/// interface, timestamps, enums, connections with `first`, links between types (with
/// cycles), input objects for mutations, and scopes on a tenth of the types and fields.
fn large_sdl(types: usize) -> String {
    let mut sdl = String::from(
        "interface Node { id: ID! }\n\
         interface Timestamped { createdAt: String! updatedAt: String }\n\
         enum Status { ACTIVE SUSPENDED ARCHIVED DELETED }\n\
         scalar DateTime\n",
    );
    sdl.push_str("type Query {\n  node(id: ID!): Node\n");
    for i in 0..types.min(100) {
        sdl.push_str(&format!(
            "  t{i}(id: ID!): T{i}\n  allT{i}(first: Int = 10, after: String, status: Status): T{i}Connection! @requiresScopes(scopes: [[\"read:t{}\"], [\"admin\"]])\n",
            i % 10
        ));
    }
    sdl.push_str("}\ntype Mutation {\n");
    for i in 0..types.min(50) {
        sdl.push_str(&format!(
            "  updateT{i}(input: T{i}Input!): T{i} @requiresScopes(scopes: [[\"write:t{}\"]])\n",
            i % 10
        ));
    }
    sdl.push_str("}\n");
    for i in 0..types {
        let next = (i + 1) % types;
        let other = (i * 7 + 3) % types;
        let guard = if i % 10 == 0 { " @authenticated" } else { "" };
        sdl.push_str(&format!(
            "type T{i} implements Node & Timestamped{guard} {{\n  id: ID!\n  createdAt: String!\n  updatedAt: String\n  \
             name: String!\n  description: String\n  status: Status!\n  score: Float\n  count: Int!\n  tags: [String!]!\n  \
             at: DateTime\n  next: T{next}\n  related(first: Int, last: Int): [T{other}!]!\n  \
             secret: String @requiresScopes(scopes: [[\"secret:t{i}\"]])\n}}\n\
             type T{i}Edge {{ cursor: String! node: T{i}! }}\n\
             type T{i}Connection {{ edges: [T{i}Edge!]! totalCount: Int! }}\n\
             input T{i}Input {{ id: ID! name: String description: String status: Status tags: [String!] }}\n"
        ));
    }
    sdl
}

const LARGE_QUERY: &str = r#"
query Browse($first: Int = 5, $id: ID!) {
  allT3(first: $first, status: ACTIVE) {
    totalCount
    edges { cursor node { ...Basics next { id name related(first: 3) { id name } } } }
  }
  t3(id: $id) { ...Basics tags }
}
fragment Basics on T3 { id name status createdAt }
"#;

#[test]
fn a_large_generated_schema_compiles_and_checks() {
    let sdl = large_sdl(500);
    assert!(sdl.len() > 200_000, "{}", sdl.len());
    let started = Instant::now();
    let schema = GraphqlSchema::from_sdl(&sdl, GraphqlConfig::default()).unwrap();
    let compile = started.elapsed();
    assert!(compile < Duration::from_secs(30), "{compile:?}");
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

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn timing_typical_query() {
    let granted = vec!["orders:read".to_string()];
    let body = typical_body();
    println!("typical query: {} bytes of GraphQL, {} bytes of JSON", TYPICAL_QUERY.len(), body.len());
    let warm = demo();
    let (median, p90) = measure(20_000, || {
        warm.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted)).unwrap();
    });
    println!("warm (document cache hit):  median {median:?}  p90 {p90:?}");
    let cold = demo_with(GraphqlConfig { document_cache_bytes: 0, ..GraphqlConfig::default() });
    let (median, p90) = measure(5_000, || {
        cold.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted)).unwrap();
    });
    println!("cold (parse + validate):    median {median:?}  p90 {p90:?}");
    let denied = vec!["orders:none".to_string()];
    let (median, p90) = measure(20_000, || {
        warm.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&denied)).unwrap_err();
    });
    println!("warm, denied (403):         median {median:?}  p90 {p90:?}");
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn timing_large_schema() {
    let sdl = large_sdl(500);
    let started = Instant::now();
    let schema = GraphqlSchema::from_sdl(&sdl, GraphqlConfig::default()).unwrap();
    println!("large schema: {} bytes of SDL, compiled in {:?}", sdl.len(), started.elapsed());
    let cold =
        GraphqlSchema::from_sdl(&sdl, GraphqlConfig { document_cache_bytes: 0, ..GraphqlConfig::default() })
            .unwrap();
    let body = json!({"query": LARGE_QUERY, "variables": {"id": "t-1"}}).to_string();
    let granted = vec!["read:t3".to_string()];
    let (median, p90) = measure(20_000, || {
        schema.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted)).unwrap();
    });
    println!("large schema, warm:  median {median:?}  p90 {p90:?}");
    let (median, p90) = measure(5_000, || {
        cold.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted)).unwrap();
    });
    println!("large schema, cold:  median {median:?}  p90 {p90:?}");
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn timing_hostile_inputs() {
    let s = demo_with(GraphqlConfig { document_cache_bytes: 0, ..GraphqlConfig::default() });
    let granted = vec!["orders:read".to_string()];
    let cases: Vec<(&str, String)> = vec![
        (
            "16 KiB of tokens (token limit)",
            format!("{{ orders {{ {} }} }}", "id ".repeat(5000)).chars().take(16_000).collect(),
        ),
        (
            "600 aliases (alias limit)",
            format!(
                "{{ orders(limit: 1) {{ {} }} }}",
                (0..600).map(|i| format!("a{i}:id")).collect::<Vec<_>>().join(" ")
            )
            .chars()
            .take(16_000)
            .collect(),
        ),
        ("fragment fan-out 2^30 (cost)", {
            let mut q = String::from("{ orders(limit: 1) { ...F0 } }\n");
            for i in 0..30 {
                q.push_str(&format!("fragment F{i} on Order {{ ...F{} ...F{} }}\n", i + 1, i + 1));
            }
            q.push_str("fragment F30 on Order { id }");
            q
        }),
        (
            "deep nesting (depth)",
            format!("{{ {}id{} }}", "orders { customer { ".repeat(100), " } }".repeat(100)),
        ),
        (
            "800 fields, same name (validation merge)",
            format!("{{ orders(limit: 1) {{ {} }} }}", "id ".repeat(800)),
        ),
    ];
    for (name, query) in cases {
        let body = json!({ "query": query }).to_string();
        let outcome = s.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted));
        let (median, p90) = measure(200, || {
            let _ = s.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted));
        });
        let code = outcome.as_ref().err().map_or("ok", |d| d.code());
        println!("{name:<45} {code:<28} median {median:?}  p90 {p90:?}");
    }
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn timing_compiler_phases() {
    // Where a cold check spends its time: apollo-compiler's parser and validator.
    let schema = Schema::parse_and_validate(ORDERS_SDL, "orders.graphql").unwrap();
    let (parse, _) = measure(5_000, || {
        Parser::new().parse_ast(TYPICAL_QUERY, "q.graphql").unwrap();
    });
    let ast = Parser::new().parse_ast(TYPICAL_QUERY, "q.graphql").unwrap();
    let (build, _) = measure(5_000, || {
        ast.to_executable(&schema).unwrap();
    });
    let document = ast.to_executable(&schema).unwrap();
    let (validate, _) = measure(5_000, || {
        document.clone().validate(&schema).unwrap();
    });
    println!(
        "apollo-compiler on the typical query: parse {parse:?}, build {build:?}, validate {validate:?} (medians)"
    );
}
