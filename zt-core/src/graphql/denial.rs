//! Why a GraphQL request was refused, and the GraphQL error body that says so.
//!
//! Each [`GraphqlReason`] has a fixed HTTP status, a stable `extensions.code`, a problem
//! slug (rendered `urn:zt:problem:<slug>`, like [`Reason`](crate::Reason)) and a fixed,
//! safe message. A denial adds only what the caller already knows or what the schema
//! publishes: field paths built from schema field names, variable names, and line/column
//! locations in the caller's own document; never values, never the parser's or
//! validator's own messages (which quote input and suggest similar field names).

use serde_json::Value;

use crate::problem::PROBLEM_TYPE_BASE;

/// At most this many field paths are named in one denial.
pub const MAX_REPORTED_PATHS: usize = 20;
/// At most this many locations are named in one denial.
pub const MAX_REPORTED_LOCATIONS: usize = 5;

/// Why a GraphQL request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GraphqlReason {
    /// Not a well-formed GraphQL-over-HTTP request: malformed or duplicate-keyed JSON,
    /// unknown or mistyped members, no `query`, a repeated GET parameter, an
    /// `operationName` that names no operation (or none with several operations), or a
    /// `persistedQuery` hash that does not match the document sent (400).
    BadRequest,
    /// The body or query string is larger than `max_request_bytes` (413).
    RequestTooLarge,
    /// The document is larger than `max_document_bytes` (400).
    DocumentTooLarge,
    /// The document has more tokens than `max_tokens` (400).
    TokenLimit,
    /// The document is not syntactically valid GraphQL (400).
    ParseFailed,
    /// The document is not valid against the schema: unknown fields, types, arguments or
    /// variables, wrong literal types, fragment cycles, ... (400).
    ValidationFailed,
    /// A variable value does not match its declared type, a required variable is missing,
    /// or a variable was sent that the operation does not declare (400).
    InvalidVariables,
    /// The operation nests deeper than `max_depth` (400).
    DepthLimit,
    /// The operation uses more aliases than `max_aliases` (400).
    AliasLimit,
    /// The operation selects more root fields than `max_root_fields` (400).
    RootFieldLimit,
    /// A location carries more directives than `max_directives_per_field` (400).
    DirectiveLimit,
    /// The operation's estimated cost, or a batch's total, exceeds `max_cost`, or a list's
    /// size cannot be bounded (a required slicing argument is missing) (400).
    CostLimit,
    /// A batch (JSON array) was sent while batching is off, is empty, or is larger than
    /// `max_batch` (400).
    BatchLimit,
    /// The operation uses `__schema` or `__type` and the caller holds none of the
    /// introspection scopes (403).
    IntrospectionDisabled,
    /// The operation selects fields the caller may not see (403; the paths are named).
    ForbiddenField,
    /// The operation selects fields that need an authenticated caller, and there is none
    /// (401; the paths are named).
    Unauthenticated,
    /// Safelisting is on and the document is not on the safelist (403).
    PersistedQueryNotAllowed,
    /// Only a `persistedQuery` hash was sent and it names no registered document (400; the
    /// message is Apollo's `PersistedQueryNotFound`, so APQ clients resend the document).
    PersistedQueryNotFound,
    /// A mutation or subscription was sent over GET (405 with `Allow: POST`).
    MutationOverGet,
    /// GET is disabled for this endpoint (405 with `Allow: POST`).
    GetNotAllowed,
}

impl GraphqlReason {
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: [GraphqlReason; 20] = [
        GraphqlReason::BadRequest,
        GraphqlReason::RequestTooLarge,
        GraphqlReason::DocumentTooLarge,
        GraphqlReason::TokenLimit,
        GraphqlReason::ParseFailed,
        GraphqlReason::ValidationFailed,
        GraphqlReason::InvalidVariables,
        GraphqlReason::DepthLimit,
        GraphqlReason::AliasLimit,
        GraphqlReason::RootFieldLimit,
        GraphqlReason::DirectiveLimit,
        GraphqlReason::CostLimit,
        GraphqlReason::BatchLimit,
        GraphqlReason::IntrospectionDisabled,
        GraphqlReason::ForbiddenField,
        GraphqlReason::Unauthenticated,
        GraphqlReason::PersistedQueryNotAllowed,
        GraphqlReason::PersistedQueryNotFound,
        GraphqlReason::MutationOverGet,
        GraphqlReason::GetNotAllowed,
    ];

    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            GraphqlReason::RequestTooLarge => 413,
            GraphqlReason::IntrospectionDisabled
            | GraphqlReason::ForbiddenField
            | GraphqlReason::PersistedQueryNotAllowed => 403,
            GraphqlReason::Unauthenticated => 401,
            GraphqlReason::MutationOverGet | GraphqlReason::GetNotAllowed => 405,
            // Listed one by one: a new reason must choose its status, never inherit 400.
            GraphqlReason::BadRequest
            | GraphqlReason::DocumentTooLarge
            | GraphqlReason::TokenLimit
            | GraphqlReason::ParseFailed
            | GraphqlReason::ValidationFailed
            | GraphqlReason::InvalidVariables
            | GraphqlReason::DepthLimit
            | GraphqlReason::AliasLimit
            | GraphqlReason::RootFieldLimit
            | GraphqlReason::DirectiveLimit
            | GraphqlReason::CostLimit
            | GraphqlReason::BatchLimit
            | GraphqlReason::PersistedQueryNotFound => 400,
        }
    }

    /// The GraphQL `extensions.code` (stable; Apollo's names where Apollo has one).
    pub fn code(self) -> &'static str {
        match self {
            GraphqlReason::BadRequest => "BAD_REQUEST",
            GraphqlReason::RequestTooLarge => "REQUEST_TOO_LARGE",
            GraphqlReason::DocumentTooLarge => "DOCUMENT_TOO_LARGE",
            GraphqlReason::TokenLimit => "TOKEN_LIMIT",
            GraphqlReason::ParseFailed => "GRAPHQL_PARSE_FAILED",
            GraphqlReason::ValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            GraphqlReason::InvalidVariables => "BAD_USER_INPUT",
            GraphqlReason::DepthLimit => "DEPTH_LIMIT",
            GraphqlReason::AliasLimit => "ALIAS_LIMIT",
            GraphqlReason::RootFieldLimit => "ROOT_FIELD_LIMIT",
            GraphqlReason::DirectiveLimit => "DIRECTIVE_LIMIT",
            GraphqlReason::CostLimit => "COST_LIMIT",
            GraphqlReason::BatchLimit => "BATCH_LIMIT",
            GraphqlReason::IntrospectionDisabled => "INTROSPECTION_DISABLED",
            GraphqlReason::ForbiddenField => "FORBIDDEN_FIELD",
            GraphqlReason::Unauthenticated => "UNAUTHENTICATED",
            GraphqlReason::PersistedQueryNotAllowed => "PERSISTED_QUERY_NOT_ALLOWED",
            GraphqlReason::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            GraphqlReason::MutationOverGet => "MUTATION_OVER_GET",
            GraphqlReason::GetNotAllowed => "GET_NOT_ALLOWED",
        }
    }

    /// The problem slug: the problem `type` is `urn:zt:problem:<slug>`.
    pub fn slug(self) -> &'static str {
        match self {
            GraphqlReason::BadRequest => "graphql-bad-request",
            GraphqlReason::RequestTooLarge => "graphql-request-too-large",
            GraphqlReason::DocumentTooLarge => "graphql-document-too-large",
            GraphqlReason::TokenLimit => "graphql-token-limit",
            GraphqlReason::ParseFailed => "graphql-parse-failed",
            GraphqlReason::ValidationFailed => "graphql-validation-failed",
            GraphqlReason::InvalidVariables => "graphql-invalid-variables",
            GraphqlReason::DepthLimit => "graphql-depth-limit",
            GraphqlReason::AliasLimit => "graphql-alias-limit",
            GraphqlReason::RootFieldLimit => "graphql-root-field-limit",
            GraphqlReason::DirectiveLimit => "graphql-directive-limit",
            GraphqlReason::CostLimit => "graphql-cost-limit",
            GraphqlReason::BatchLimit => "graphql-batch-limit",
            GraphqlReason::IntrospectionDisabled => "graphql-introspection-disabled",
            GraphqlReason::ForbiddenField => "graphql-forbidden-field",
            GraphqlReason::Unauthenticated => "graphql-unauthenticated",
            GraphqlReason::PersistedQueryNotAllowed => "graphql-persisted-query-not-allowed",
            GraphqlReason::PersistedQueryNotFound => "graphql-persisted-query-not-found",
            GraphqlReason::MutationOverGet => "graphql-mutation-over-get",
            GraphqlReason::GetNotAllowed => "graphql-get-not-allowed",
        }
    }

    /// The fixed, safe message.
    pub fn message(self) -> &'static str {
        match self {
            GraphqlReason::BadRequest => "The request is not a well-formed GraphQL-over-HTTP request.",
            GraphqlReason::RequestTooLarge => "The request is larger than this endpoint accepts.",
            GraphqlReason::DocumentTooLarge => "The GraphQL document is larger than this endpoint accepts.",
            GraphqlReason::TokenLimit => "The GraphQL document has more tokens than this endpoint accepts.",
            GraphqlReason::ParseFailed => "The GraphQL document is not syntactically valid.",
            GraphqlReason::ValidationFailed => "The GraphQL document is not valid against the schema.",
            GraphqlReason::InvalidVariables => "The variables do not match the operation's declared types.",
            GraphqlReason::DepthLimit => "The operation is nested deeper than this endpoint accepts.",
            GraphqlReason::AliasLimit => "The operation uses more aliases than this endpoint accepts.",
            GraphqlReason::RootFieldLimit => {
                "The operation selects more root fields than this endpoint accepts."
            }
            GraphqlReason::DirectiveLimit => {
                "The document repeats directives more than this endpoint accepts."
            }
            GraphqlReason::CostLimit => "The operation's estimated cost exceeds what this endpoint accepts.",
            GraphqlReason::BatchLimit => "The batch is empty or larger than this endpoint accepts.",
            GraphqlReason::IntrospectionDisabled => "Introspection is not allowed for this caller.",
            GraphqlReason::ForbiddenField => "The operation selects fields this caller may not access.",
            GraphqlReason::Unauthenticated => "The operation selects fields that require authentication.",
            GraphqlReason::PersistedQueryNotAllowed => "Only registered operations are accepted here.",
            GraphqlReason::PersistedQueryNotFound => "PersistedQueryNotFound",
            GraphqlReason::MutationOverGet => "Only queries may be sent with GET; use POST.",
            GraphqlReason::GetNotAllowed => "GraphQL requests must be sent with POST.",
        }
    }

    /// The methods to list in `Allow` for 405 reasons (`POST`), else `None`.
    pub fn allow(self) -> Option<&'static str> {
        matches!(self, GraphqlReason::MutationOverGet | GraphqlReason::GetNotAllowed).then_some("POST")
    }
}

/// A line and column (both from 1, columns in Unicode scalar values) in the caller's
/// document, as GraphQL error `locations` give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

/// A refused GraphQL request: the reason, plus the field paths (for
/// [`ForbiddenField`](GraphqlReason::ForbiddenField), [`Unauthenticated`](GraphqlReason::Unauthenticated)
/// and [`InvalidVariables`](GraphqlReason::InvalidVariables)) and document locations (for
/// parse and validation failures) that help the caller fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlDenial {
    /// Why.
    pub reason: GraphqlReason,
    /// Schema field paths (`orders.internalNote`, at most [`MAX_REPORTED_PATHS`], sorted),
    /// or variable paths (`$input.quantity`) for invalid variables. Only names the schema or
    /// the operation declares appear: a name the caller invented reads `*`.
    pub field_paths: Vec<String>,
    /// Where in the document (at most [`MAX_REPORTED_LOCATIONS`]).
    pub locations: Vec<Location>,
    /// For batches: the index of the refused operation in the batch array.
    pub batch_index: Option<usize>,
}

impl GraphqlDenial {
    #[cfg(feature = "graphql")]
    pub(super) fn new(reason: GraphqlReason) -> GraphqlDenial {
        GraphqlDenial { reason, field_paths: Vec::new(), locations: Vec::new(), batch_index: None }
    }

    #[cfg(feature = "graphql")]
    pub(super) fn with_paths(reason: GraphqlReason, mut paths: Vec<String>) -> GraphqlDenial {
        paths.sort();
        paths.dedup();
        paths.truncate(MAX_REPORTED_PATHS);
        GraphqlDenial { field_paths: paths, ..GraphqlDenial::new(reason) }
    }

    #[cfg(feature = "graphql")]
    pub(super) fn with_locations(reason: GraphqlReason, mut locations: Vec<Location>) -> GraphqlDenial {
        locations.truncate(MAX_REPORTED_LOCATIONS);
        GraphqlDenial { locations, ..GraphqlDenial::new(reason) }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.reason.status()
    }

    /// The GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        self.reason.code()
    }

    /// The problem slug (`urn:zt:problem:<slug>`).
    pub fn problem_slug(&self) -> &'static str {
        self.reason.slug()
    }

    /// The problem `type` URI.
    pub fn problem_type(&self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.reason.slug())
    }

    /// The fixed, safe message.
    pub fn message(&self) -> &'static str {
        self.reason.message()
    }

    /// `Allow` header value for 405 denials.
    pub fn allow(&self) -> Option<&'static str> {
        self.reason.allow()
    }

    /// The GraphQL response body (for `application/graphql-response+json` or
    /// `application/json`):
    ///
    /// ```json
    /// {"errors":[{"message":"...","locations":[{"line":1,"column":3}],
    ///   "extensions":{"code":"FORBIDDEN_FIELD","type":"urn:zt:problem:graphql-forbidden-field",
    ///                 "request_id":"...","paths":["orders.internalNote"]}}]}
    /// ```
    ///
    /// `locations`, `paths` and `batch_index` appear only when there are some.
    pub fn body(&self, request_id: &str) -> String {
        use std::fmt::Write;
        // Written by hand to keep the conventional member order; strings via serde_json.
        let quoted = |text: &str| Value::from(text).to_string();
        let mut out = String::with_capacity(320);
        out.push_str("{\"errors\":[{\"message\":");
        out.push_str(&quoted(self.message()));
        if !self.locations.is_empty() {
            out.push_str(",\"locations\":[");
            for (index, location) in self.locations.iter().enumerate() {
                let separator = if index == 0 { "" } else { "," };
                let _ =
                    write!(out, "{separator}{{\"line\":{},\"column\":{}}}", location.line, location.column);
            }
            out.push(']');
        }
        out.push_str(",\"extensions\":{\"code\":");
        out.push_str(&quoted(self.code()));
        out.push_str(",\"type\":");
        out.push_str(&quoted(&self.problem_type()));
        out.push_str(",\"request_id\":");
        out.push_str(&quoted(request_id));
        if !self.field_paths.is_empty() {
            out.push_str(",\"paths\":");
            out.push_str(&Value::from(self.field_paths.clone()).to_string());
        }
        if let Some(index) = self.batch_index {
            let _ = write!(out, ",\"batch_index\":{index}");
        }
        out.push_str("}}]}");
        out
    }
}

impl std::fmt::Display for GraphqlDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.status())
    }
}

impl std::error::Error for GraphqlDenial {}

/// A schema or configuration that cannot be compiled into a [`GraphqlSchema`](super::GraphqlSchema):
/// a start-up error, naming what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphqlError {
    /// A configuration value is out of range or malformed.
    #[error("graphql.{field}: {message}")]
    Config {
        /// The configuration field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The SDL does not parse or is not a valid schema (the compiler's diagnostics, with
    /// line and column).
    #[error("invalid GraphQL schema: {message}")]
    Schema {
        /// The diagnostics.
        message: String,
    },
    /// `@authenticated` or `@requiresScopes` is declared or applied in a way zt cannot
    /// enforce faithfully (e.g. a scope list that is not a list of lists of strings).
    #[error("GraphQL schema {coordinate}: {message}")]
    Directive {
        /// The schema coordinate (`Order.internalNote`, `@requiresScopes`).
        coordinate: String,
        /// What is wrong.
        message: String,
    },
    /// A persisted document is not acceptable (does not parse, is invalid against the
    /// schema, or exceeds the limits).
    #[error("graphql.persisted_documents[{index}]: {message}")]
    PersistedDocument {
        /// Its index in the configuration.
        index: usize,
        /// What is wrong.
        message: String,
    },
}
