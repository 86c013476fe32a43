//! Unit tests of the orchestration; the behaviour against the demo schema is in
//! `zt-core/tests/graphql_*.rs`.

use serde_json::{Map, Value, json};

use super::*;
use crate::Identity;

const SDL: &str = r#"
type Query {
  orders(limit: Int): [Order!]! @requiresScopes(scopes: [["orders:read"]])
  order(id: ID!): Order @requiresScopes(scopes: [["orders:read"]])
  me: String @authenticated
  version: String
}
type Order { id: ID! internalNote: String @requiresScopes(scopes: [["orders:admin"]]) }
type Mutation { ping: String }
"#;

fn schema(config: GraphqlConfig) -> GraphqlSchema {
    GraphqlSchema::from_sdl(SDL, config).unwrap()
}

fn identity(scopes: &str) -> Identity {
    let Value::Object(claims) = json!({"sub": "alice", "scope": scopes}) else { unreachable!() };
    Identity::from_jwt_claims("https://issuer.example", claims)
}

fn post(
    schema: &GraphqlSchema,
    body: Value,
    caller: Option<&Identity>,
) -> Result<Vec<OperationInfo>, GraphqlDenial> {
    let body = body.to_string();
    schema.check(GraphqlRequestBody::Json(body.as_bytes()), caller)
}

#[test]
fn schema_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<GraphqlSchema>();
    shared::<GraphqlDenial>();
}

#[test]
fn identity_scopes_decide() {
    let s = schema(GraphqlConfig::default());
    let reader = identity("orders:read");
    let info = post(&s, json!({"query": "{ orders { id } }"}), Some(&reader)).unwrap();
    assert_eq!(info[0].kind, OperationKind::Query);
    assert_eq!(info[0].cost, 1 + 10);
    let denial = post(&s, json!({"query": "{ orders { id } }"}), None).unwrap_err();
    assert_eq!(
        (denial.reason, denial.field_paths.as_slice()),
        (GraphqlReason::Unauthenticated, &["orders".to_string()][..])
    );
    let denial = post(&s, json!({"query": "{ orders { internalNote } }"}), Some(&reader)).unwrap_err();
    assert_eq!(denial.reason, GraphqlReason::ForbiddenField);
    assert_eq!(denial.field_paths, ["orders.internalNote"]);
    // @authenticated: any verified caller.
    assert!(post(&s, json!({"query": "{ me }"}), Some(&identity(""))).is_ok());
    assert_eq!(
        post(&s, json!({"query": "{ me }"}), None).unwrap_err().reason,
        GraphqlReason::Unauthenticated
    );
    assert!(post(&s, json!({"query": "{ version __typename }"}), None).is_ok());
}

#[test]
fn the_cache_does_not_cache_decisions() {
    let s = schema(GraphqlConfig::default());
    let query = json!({"query": "query Q { orders { id internalNote } }"});
    let admin = identity("orders:read orders:admin");
    let reader = identity("orders:read");
    for _ in 0..3 {
        assert!(post(&s, query.clone(), Some(&admin)).is_ok());
        assert_eq!(post(&s, query.clone(), Some(&reader)).unwrap_err().reason, GraphqlReason::ForbiddenField);
    }
    let uncached = schema(GraphqlConfig { document_cache_bytes: 0, ..GraphqlConfig::default() });
    assert!(post(&uncached, query.clone(), Some(&admin)).is_ok());
    assert!(post(&uncached, query, Some(&reader)).is_err());
}

#[test]
fn cached_documents_still_apply_per_operation_limits_and_names() {
    let s = schema(GraphqlConfig { max_root_fields: 2, ..GraphqlConfig::default() });
    let doc = "query Small { version } query Big { a: version b: version c: version }";
    assert!(post(&s, json!({"query": doc, "operationName": "Small"}), None).is_ok());
    // Same document, now cached: the other operation is still measured.
    assert_eq!(
        post(&s, json!({"query": doc, "operationName": "Big"}), None).unwrap_err().reason,
        GraphqlReason::RootFieldLimit
    );
    assert_eq!(post(&s, json!({"query": doc}), None).unwrap_err().reason, GraphqlReason::BadRequest);
    assert_eq!(
        post(&s, json!({"query": doc, "operationName": "Nope"}), None).unwrap_err().reason,
        GraphqlReason::BadRequest
    );
}

#[test]
fn configuration_is_validated() {
    for bad in [
        GraphqlConfig { max_depth: 0, ..GraphqlConfig::default() },
        GraphqlConfig { max_document_bytes: 1 << 20, ..GraphqlConfig::default() },
        GraphqlConfig { safelist: Some(vec!["abc".into()]), ..GraphqlConfig::default() },
        GraphqlConfig { introspection_scopes: vec!["a b".into()], ..GraphqlConfig::default() },
        GraphqlConfig { list_size_arguments: vec!["1x".into()], ..GraphqlConfig::default() },
    ] {
        assert!(matches!(GraphqlSchema::from_sdl(SDL, bad), Err(GraphqlError::Config { .. })));
    }
    let err = GraphqlSchema::from_sdl("type Query { a: Nope }", GraphqlConfig::default()).unwrap_err();
    assert!(matches!(err, GraphqlError::Schema { .. }), "{err}");
    let err = GraphqlSchema::from_sdl(
        SDL,
        GraphqlConfig { persisted_documents: vec!["{ nope }".into()], ..GraphqlConfig::default() },
    )
    .unwrap_err();
    assert!(matches!(err, GraphqlError::PersistedDocument { index: 0, .. }), "{err}");
}

#[test]
fn config_defaults_and_serde() {
    let config: GraphqlConfig = toml::from_str("").unwrap();
    assert_eq!(config, GraphqlConfig::default());
    assert!(toml::from_str::<GraphqlConfig>("max_dept = 3").is_err());
    let config: GraphqlConfig = serde_json::from_value(json!({"safelist": [], "max_batch": 5})).unwrap();
    assert_eq!((config.safelist, config.max_batch), (Some(vec![]), 5));
}

#[test]
fn reasons_have_distinct_codes_and_slugs() {
    let mut codes = std::collections::HashSet::new();
    let mut slugs = std::collections::HashSet::new();
    for reason in GraphqlReason::ALL {
        assert!(codes.insert(reason.code()));
        assert!(slugs.insert(reason.slug()));
        assert!(reason.slug().starts_with("graphql-"));
        assert!(matches!(reason.status(), 400 | 401 | 403 | 405 | 413));
        assert_eq!(reason.allow().is_some(), reason.status() == 405);
    }
}

#[test]
fn body_shape() {
    let denial = GraphqlDenial {
        reason: GraphqlReason::ForbiddenField,
        field_paths: vec!["orders.internalNote".into()],
        locations: vec![Location { line: 1, column: 3 }],
        batch_index: Some(2),
    };
    let text = denial.body("req-\"1\"");
    assert!(text.starts_with(r#"{"errors":[{"message":"The operation"#), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({"errors": [{
            "message": "The operation selects fields this caller may not access.",
            "locations": [{"line": 1, "column": 3}],
            "extensions": {"code": "FORBIDDEN_FIELD", "type": "urn:zt:problem:graphql-forbidden-field",
                           "request_id": "req-\"1\"", "paths": ["orders.internalNote"], "batch_index": 2}
        }]})
    );
    let plain: Value =
        serde_json::from_str(&GraphqlDenial::new(GraphqlReason::DepthLimit).body("r")).unwrap();
    assert_eq!(plain["errors"][0].as_object().map(Map::len), Some(2));
}

/// Issue 14 finding 2: a type's requirement holds wherever the type is reached: through a
/// mutation's result, nested fields, a union or an interface (fragments on the type and
/// `__typename` included), as Apollo's `@requiresScopes` on types does.
#[test]
fn type_requirements_hold_on_every_path() {
    let sdl = r#"
        type Query { search: [Hit!]! node: Node }
        union Hit = Secret | Open
        interface Node { id: ID! }
        type Secret implements Node @requiresScopes(scopes: [["secret:read"]]) { id: ID! }
        type Open implements Node { id: ID! }
        enum Level @requiresScopes(scopes: [["level:read"]]) { LOW HIGH }
        type Mutation { make: Made! }
        type Made { id: ID! secret: Secret! level: Level }
    "#;
    let s = GraphqlSchema::from_sdl(sdl, GraphqlConfig::default()).unwrap();
    let caller = Some(&["other".to_string()][..]);
    let check = |query: &str| {
        let body = json!({ "query": query }).to_string();
        s.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), caller)
    };
    for (query, path) in [
        ("mutation { make { secret { id } } }", "make.secret"),
        ("mutation { make { secret { __typename } } }", "make.secret"),
        ("mutation { make { level } }", "make.level"),
        ("{ search { ... on Secret { __typename } } }", "search"),
        ("{ search { ...S } } fragment S on Secret { id }", "search"),
        ("{ node { ... on Secret { __typename } } }", "node"),
    ] {
        let denial = check(query).unwrap_err();
        assert_eq!(denial.reason, GraphqlReason::ForbiddenField, "{query}");
        assert!(denial.field_paths.iter().any(|p| p == path), "{query}: {:?}", denial.field_paths);
    }
    for query in ["mutation { make { id } }", "{ search { ... on Open { id } } }", "{ node { id } }"] {
        // `node { id }` may reach a Secret: interfaces carry their implementations' rules.
        let result = check(query);
        if query == "{ node { id } }" {
            assert_eq!(result.unwrap_err().reason, GraphqlReason::ForbiddenField);
        } else {
            assert!(result.is_ok(), "{query}: {result:?}");
        }
    }
}

/// Issue 14 finding 3: list sizes are the bound the server honours (`@listSize`), and a
/// batch shares one `max_cost`.
#[test]
fn list_sizes_follow_list_size_and_batches_share_the_budget() {
    let sdl = r#"
        type Query {
          orders(limit: Int): [Order!]! @listSize(assumedSize: 100, slicingArguments: ["limit"], requireOneSlicingArgument: false)
          page(first: Int, last: Int): [Order!]! @listSize(slicingArguments: ["first", "last"])
          fixed: [Order!]! @listSize(assumedSize: 3)
          plain(limit: Int = 7): [Order!]!
        }
        type Order { id: ID! }
    "#;
    let config = GraphqlConfig { max_batch: 5, ..GraphqlConfig::default() };
    let s = GraphqlSchema::from_sdl(sdl, config).unwrap();
    let cost = |body: Value| {
        let body = body.to_string();
        s.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), None)
            .map(|ops| ops.iter().map(|o| o.cost).collect::<Vec<_>>())
            .map_err(|d| d.reason)
    };
    assert_eq!(cost(json!({"query": "{ orders { id } }"})), Ok(vec![101]));
    assert_eq!(cost(json!({"query": "{ orders(limit: 5) { id } }"})), Ok(vec![6]));
    assert_eq!(cost(json!({"query": "{ orders(limit: null) { id } }"})), Ok(vec![101]));
    let with_var = "query Q($n: Int) { orders(limit: $n) { id } }";
    assert_eq!(cost(json!({"query": with_var})), Ok(vec![101]));
    assert_eq!(cost(json!({"query": with_var, "variables": {"n": 2}})), Ok(vec![3]));
    assert_eq!(cost(json!({"query": with_var, "variables": {"n": null}})), Ok(vec![101]));
    assert_eq!(cost(json!({"query": "{ fixed { id } }"})), Ok(vec![4]));
    // Without @listSize: the argument's schema default (7), as the executor sees it.
    assert_eq!(cost(json!({"query": "{ plain { id } }"})), Ok(vec![8]));
    let unset = "query Q($n: Int) { plain(limit: $n) { id } }";
    assert_eq!(cost(json!({"query": unset})), Ok(vec![8]));
    // requireOneSlicingArgument (default true): exactly one of first/last.
    assert_eq!(cost(json!({"query": "{ page(first: 4) { id } }"})), Ok(vec![5]));
    assert_eq!(cost(json!({"query": "{ page { id } }"})), Err(GraphqlReason::CostLimit));
    assert_eq!(cost(json!({"query": "{ page(first: 1, last: 1) { id } }"})), Err(GraphqlReason::CostLimit));
    // Aliases are separate selections.
    let aliased = "{ a: orders { id } b: orders { id } c: orders { id } }";
    assert_eq!(cost(json!({"query": aliased})), Ok(vec![303]));
    // A batch: each member within max_cost (1000), the sum over it not.
    let member = json!({"query": "{ a: orders { id } b: orders { id } c: orders { id } }"});
    assert_eq!(cost(json!([member, member, member])), Ok(vec![303, 303, 303]));
    assert_eq!(cost(json!([member, member, member, member])), Err(GraphqlReason::CostLimit));
}
