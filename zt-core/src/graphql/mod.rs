//! GraphQL endpoints under the same zero trust: every operation is parsed, validated against
//! the schema, measured against limits, and authorized field by field before the service
//! sees it.
//!
//! A [`GraphqlSchema`] is compiled once from SDL and a [`GraphqlConfig`]. For each
//! GraphQL-over-HTTP request (the JSON body of a POST, or the query string of a GET),
//! [`GraphqlSchema::check`] answers with the operations it carries ([`OperationInfo`]:
//! name, kind, document hash, depth, estimated cost), or one [`GraphqlDenial`] for the
//! whole request: a request is never half-accepted, a batch is refused as a whole, and an
//! operation touching one field the caller may not see is refused entirely (no partial
//! execution with `null`s).
//!
//! Needs the `graphql` feature (everything but the configuration and the denial types).
//!
//! ```
//! # #[cfg(feature = "graphql")] {
//! use zt_core::graphql::{GraphqlConfig, GraphqlReason, GraphqlRequestBody, GraphqlSchema};
//!
//! let schema = GraphqlSchema::from_sdl(
//!     r#"type Query {
//!          orders(limit: Int): [Order!]! @requiresScopes(scopes: [["orders:read"]])
//!          version: String
//!        }
//!        type Order { id: ID! note: String @requiresScopes(scopes: [["orders:admin"]]) }"#,
//!     GraphqlConfig::default(),
//! ).unwrap();
//! let reader = ["orders:read".to_string()];
//!
//! let body = br#"{"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": 5}}"#;
//! let ops = schema.check_with_scopes(GraphqlRequestBody::Json(body), Some(&reader)).unwrap();
//! assert_eq!((ops[0].name.as_deref(), ops[0].cost, ops[0].depth), (Some("Q"), 6, 2));
//!
//! let body = br#"{"query": "{ orders { id note } }"}"#;
//! let denial = schema.check_with_scopes(GraphqlRequestBody::Json(body), Some(&reader)).unwrap_err();
//! assert_eq!((denial.reason, denial.status()), (GraphqlReason::ForbiddenField, 403));
//! assert_eq!(denial.field_paths, ["orders.note"]);
//!
//! let get = GraphqlRequestBody::Get { query: "query=%7B+version+%7D" };
//! assert!(schema.check_with_scopes(get, None).is_ok());
//! # }
//! ```
//!
//! # Order of checks
//!
//! Cheap, bounded checks come first, so no attacker-sized work is done before the limits
//! have been applied:
//!
//! 1. request size (`max_request_bytes`), strict JSON (duplicate keys and nesting over 64
//!    refused) or strict query-string parsing, batch size;
//! 2. document size, SHA-256 of the document, persisted-query resolution, safelist;
//! 3. a one-pass pre-scan counting tokens (`max_tokens`) and bracket nesting (deeper than
//!    the parser's recursion bound, `max(64, 2 x max_depth + 16)`: a depth denial), then
//!    parsing with the parser's own token and recursion limits;
//! 4. building the operation against the schema (unknown fields, types, fragments), then
//!    directives per location, then depth, aliases, root fields and expanded field count of
//!    the selected operation: fragments memoized, cycles detected, recursion capped;
//! 5. full validation against the schema (apollo-compiler); validated documents are cached
//!    by hash;
//! 6. GET only for queries, introspection scope, variable values, estimated cost with the
//!    actual variables (list sizes from `@listSize`, see [`GraphqlConfig::max_cost`]),
//!    field authorization;
//! 7. for a batch, the sum of its operations' costs against `max_cost`.
//!
//! # Authorization
//!
//! `@authenticated` and `@requiresScopes(scopes: [[String!]!]!)` (OR of AND-sets, as
//! [`Requirement`](crate::Requirement)) on field definitions, objects, interfaces, scalars
//! and enums; see the rules in `authz`. A type's rules hold wherever the type is reached:
//! its fields, fields returning it, and any selection on it (fragments through unions and
//! interfaces, `__typename`). The SDL may declare the directives itself (then
//! its declaration is used, and must not allow locations zt does not enforce) or leave them
//! undeclared (zt adds the definitions). A field without any rule is open to every caller
//! the route itself admits: the route's requirement is the floor, the directives narrow it.
//! Fields under `@skip`/`@include` count as selected (the check does not evaluate them).
//!
//! # Safe errors
//!
//! Denials carry a fixed message per reason, schema field paths, variable names and
//! locations in the caller's document: never values, never the compiler's own messages
//! (which quote input and suggest similar field names: "did you mean ..."), never
//! schema positions.
//!
//! # Wiring (for the Guard and the adapters)
//!
//! Declare the GraphQL route with its route-level requirement as usual; in the body phase,
//! pass `GraphqlRequestBody::Json(body)` for `POST` with `application/json` (refuse other
//! media types with 415 before), or `GraphqlRequestBody::Get { query }` with the raw query
//! string for `GET`, and the verified identity. Map a [`GraphqlDenial`] to
//! [`status()`](GraphqlDenial::status), `Allow` from [`allow()`](GraphqlDenial::allow),
//! `WWW-Authenticate: Bearer` for 401, and [`body()`](GraphqlDenial::body) as
//! `application/graphql-response+json` (or `application/json` when the client does not
//! accept it). In report-only mode, log the denial and forward.

// Without the feature, the module's docs still name the schema they describe.
#![cfg_attr(not(feature = "graphql"), allow(rustdoc::broken_intra_doc_links))]

// The schema compiler and everything built on it (apollo-compiler, ~30 crates) is the
// `graphql` feature. What stays without it is what the rest of zt names whatever the build:
// the configuration (`[[graphql]]` in a policy still parses, so a build without the feature
// refuses it with a clear error instead of "unknown field"), the denial reasons (so
// `Reason::Graphql` is the same enum in every build: features stay additive) and the
// accepted operations' description, which the limits and the observer read.
#[cfg(feature = "graphql")]
mod analysis;
#[cfg(feature = "graphql")]
mod authz;
mod config;
mod denial;
#[cfg(feature = "graphql")]
mod listsize;
#[cfg(feature = "graphql")]
mod names;
#[cfg(feature = "graphql")]
mod request;
#[cfg(feature = "graphql")]
mod schema;
#[cfg(test)]
#[cfg(feature = "graphql")]
mod tests;
#[cfg(feature = "graphql")]
mod tokens;
#[cfg(feature = "graphql")]
mod variables;

#[cfg(feature = "graphql")]
pub use self::schema::GraphqlSchema;

pub use self::config::GraphqlConfig;
pub use self::denial::{
    GraphqlDenial, GraphqlError, GraphqlReason, Location, MAX_REPORTED_LOCATIONS, MAX_REPORTED_PATHS,
};
/// The inventory label of every operation the endpoint does not know by name (see
/// [`OperationInfo::label`]): callers cannot fill the inventory with invented names.
pub const OTHER_OPERATIONS: &str = "{other}";

/// The media type of a GraphQL response for a request's `Accept` value (GraphQL over HTTP):
/// `application/graphql-response+json` when the client names it, else `application/json`.
/// zt's denials use it, and so can the service for its own answers.
///
/// ```
/// use zt_core::graphql::response_media_type;
///
/// assert_eq!(response_media_type(Some(b"Application/GraphQL-Response+JSON, */*")), "application/graphql-response+json");
/// assert_eq!(response_media_type(Some(b"application/json")), "application/json");
/// assert_eq!(response_media_type(None), "application/json");
/// ```
pub fn response_media_type(accept: Option<&[u8]>) -> &'static str {
    const GRAPHQL_RESPONSE: &[u8] = b"application/graphql-response+json";
    match accept {
        Some(accept)
            if accept.windows(GRAPHQL_RESPONSE.len()).any(|w| w.eq_ignore_ascii_case(GRAPHQL_RESPONSE)) =>
        {
            "application/graphql-response+json"
        }
        _ => "application/json",
    }
}

/// A GraphQL-over-HTTP request, as the adapter read it.
#[derive(Debug, Clone, Copy)]
pub enum GraphqlRequestBody<'a> {
    /// A `POST` with `Content-Type: application/json`: `{"query", "operationName"?,
    /// "variables"?, "extensions"?}`, or an array of such objects when batching is on.
    Json(&'a [u8]),
    /// A `GET`: the raw (still percent-encoded) query string, without `?`, with the
    /// parameters `query`, `operationName`, `variables` and `extensions` (JSON).
    Get {
        /// The raw query string.
        query: &'a str,
    },
}

/// The kind of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// `query`
    Query,
    /// `mutation`
    Mutation,
    /// `subscription`
    Subscription,
}

impl OperationKind {
    /// `query`, `mutation` or `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
        }
    }
}

/// An accepted operation, for logs and telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationInfo {
    /// The operation's name, if it has one.
    pub name: Option<String>,
    /// Query, mutation or subscription.
    pub kind: OperationKind,
    /// SHA-256 (lowercase hex) of the document text: the persisted-query / safelist key.
    pub hash: String,
    /// The estimated cost with the request's variables.
    pub cost: u64,
    /// The deepest field nesting.
    pub depth: u32,
    /// Aliases used (fragments expanded).
    pub aliases: u64,
    /// Fields at the root.
    pub root_fields: u64,
    /// The operation uses `__schema` or `__type` (the caller holds an introspection scope).
    pub introspection: bool,
    /// The document was named by its hash alone (`persistedQuery`) and resolved from
    /// [`GraphqlConfig::persisted_documents`].
    pub persisted: bool,
    /// With safelisting on: whether the document is on the safelist (`Some(false)` only in
    /// report-only safelisting: the Guard should log a `would_deny`). `None`: safelisting off.
    pub safelisted: Option<bool>,
    /// The operation's label in the inventory and baselines: its name (`#` and a hash
    /// prefix when anonymous) when the endpoint knows it (registered or safelisted, or
    /// learned from a verified caller within its budget), else
    /// [`OTHER_OPERATIONS`] (`{other}`): callers cannot fill the inventory with invented
    /// names.
    pub label: String,
    /// The root fields selected, as schema coordinates (`Mutation.createOrder`), with how
    /// many times each is selected (aliases and fragments each count; `__typename` does
    /// not): what quotas per root field charge. Sorted by coordinate.
    pub root_selections: Vec<(String, u64)>,
}
