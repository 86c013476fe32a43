//! GraphQL request checks (issue 9): `cargo bench --bench graphql`, or
//! `scripts/bench_graphql.sh`, which also fetches GitHub's public schema for the
//! real-world group.
//!
//! - `orders`: the typical 1 KiB dashboard query against the demo schema, cold (no document
//!   cache: parse, validate, analyse, authorize), warm (cache hit) and denied (403); next to
//!   apollo-compiler's own parse + validate of the same document, the floor of any cold
//!   check built on it (the ratio is zt's overhead).
//! - `generated`: a generated schema of 500 object types (about 260 KB of SDL).
//! - `github`: GitHub's public schema (about 1.2 MB of SDL) when `ZT_GITHUB_SCHEMA` names
//!   it (the script sets it); skipped otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "data/graphql_fixtures.rs"]
mod fixtures;
#[path = "../examples/orders/mod.rs"]
mod orders;

use std::hint::black_box;

use apollo_compiler::parser::Parser;
use apollo_compiler::{ExecutableDocument, Schema};
use criterion::{Criterion, criterion_group, criterion_main};
use fixtures::{LARGE_QUERY, TYPICAL_QUERY, large_sdl};
use serde_json::json;
use zt::graphql::{GraphqlConfig, GraphqlRequestBody, GraphqlSchema};

use orders::graphql::{SDL as ORDERS_SDL, config as demo_config};

fn cold(config: GraphqlConfig) -> GraphqlConfig {
    GraphqlConfig { document_cache_bytes: 0, ..config }
}

fn orders(c: &mut Criterion) {
    let body =
        json!({"query": TYPICAL_QUERY, "operationName": "OrderDashboard", "variables": {"id": "42", "limit": 10}})
            .to_string();
    let granted = vec!["orders:read".to_string()];
    let denied = vec!["orders:none".to_string()];
    let warm = GraphqlSchema::from_sdl(ORDERS_SDL, demo_config()).unwrap();
    let uncached = GraphqlSchema::from_sdl(ORDERS_SDL, cold(demo_config())).unwrap();
    let request = || GraphqlRequestBody::Json(body.as_bytes());
    assert!(uncached.check_with_scopes(request(), Some(&granted)).is_ok());

    let mut group = c.benchmark_group("graphql/orders_1KiB");
    group.bench_function("apollo_parse_validate", |b| {
        let schema = Schema::parse_and_validate(ORDERS_SDL, "orders.graphql").unwrap();
        b.iter(|| {
            ExecutableDocument::parse_and_validate(&schema, black_box(TYPICAL_QUERY), "q.graphql").unwrap()
        })
    });
    group.bench_function("apollo_parse_only", |b| {
        b.iter(|| Parser::new().parse_ast(black_box(TYPICAL_QUERY), "q.graphql").unwrap())
    });
    group.bench_function("zt_check_cold", |b| {
        b.iter(|| uncached.check_with_scopes(request(), Some(&granted)).unwrap())
    });
    group.bench_function("zt_check_warm", |b| {
        b.iter(|| warm.check_with_scopes(request(), Some(&granted)).unwrap())
    });
    group.bench_function("zt_check_warm_denied", |b| {
        b.iter(|| warm.check_with_scopes(request(), Some(&denied)).unwrap_err())
    });
    group.finish();
}

fn generated(c: &mut Criterion) {
    let sdl = large_sdl(500);
    let body = json!({"query": LARGE_QUERY, "variables": {"id": "t-1"}}).to_string();
    let granted = vec!["read:t3".to_string()];
    let warm = GraphqlSchema::from_sdl(&sdl, GraphqlConfig::default()).unwrap();
    let uncached = GraphqlSchema::from_sdl(&sdl, cold(GraphqlConfig::default())).unwrap();
    let request = || GraphqlRequestBody::Json(body.as_bytes());
    let mut group = c.benchmark_group("graphql/generated_500_types");
    group.bench_function("zt_check_cold", |b| {
        b.iter(|| uncached.check_with_scopes(request(), Some(&granted)).unwrap())
    });
    group.bench_function("zt_check_warm", |b| {
        b.iter(|| warm.check_with_scopes(request(), Some(&granted)).unwrap())
    });
    group.finish();
}

/// A query a GitHub client sends: the viewer's repositories with recent issues and pull
/// requests, through a fragment.
const GITHUB_QUERY: &str = r#"
query Dashboard($first: Int = 10, $issues: Int = 5) {
  viewer {
    login
    name
    repositories(first: $first, orderBy: {field: UPDATED_AT, direction: DESC}) {
      totalCount
      nodes {
        ...Repo
        issues(first: $issues, states: OPEN) { nodes { number title author { login } createdAt } }
        pullRequests(first: $issues, states: OPEN) { nodes { number title isDraft } }
      }
    }
  }
}
fragment Repo on Repository { id name nameWithOwner stargazerCount isPrivate updatedAt }
"#;

fn github(c: &mut Criterion) {
    let Some(path) = std::env::var_os("ZT_GITHUB_SCHEMA") else {
        eprintln!("graphql/github skipped: set ZT_GITHUB_SCHEMA (scripts/bench_graphql.sh does)");
        return;
    };
    let sdl = std::fs::read_to_string(&path).expect("ZT_GITHUB_SCHEMA");
    // A real client's query costs more than the demo's default budget: 10 repositories x
    // (5 issues + 5 pull requests) x their fields.
    let config = GraphqlConfig { max_cost: 5000, ..GraphqlConfig::default() };
    let warm = GraphqlSchema::from_sdl(&sdl, config.clone()).expect("GitHub schema compiles");
    let uncached = GraphqlSchema::from_sdl(&sdl, cold(config)).unwrap();
    let body = json!({"query": GITHUB_QUERY, "operationName": "Dashboard"}).to_string();
    let request = || GraphqlRequestBody::Json(body.as_bytes());
    let granted: Vec<String> = Vec::new();
    if let Err(denial) = uncached.check_with_scopes(request(), Some(&granted)) {
        panic!("the GitHub query is refused: {denial}");
    }
    let mut group = c.benchmark_group("graphql/github");
    group.sample_size(20);
    group.bench_function("compile_schema", |b| {
        b.iter(|| GraphqlSchema::from_sdl(black_box(&sdl), GraphqlConfig::default()).unwrap())
    });
    group.bench_function("apollo_parse_validate", |b| {
        let schema = Schema::parse_and_validate(&sdl, "github.graphql").unwrap();
        b.iter(|| {
            ExecutableDocument::parse_and_validate(&schema, black_box(GITHUB_QUERY), "q.graphql").unwrap()
        })
    });
    group.sample_size(100);
    group.bench_function("zt_check_cold", |b| {
        b.iter(|| uncached.check_with_scopes(request(), Some(&granted)).unwrap())
    });
    group.bench_function("zt_check_warm", |b| {
        b.iter(|| warm.check_with_scopes(request(), Some(&granted)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, orders, generated, github);
criterion_main!(benches);
