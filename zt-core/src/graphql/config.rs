//! The limits and switches of a GraphQL endpoint: plain data (serde), secure defaults.

use serde::{Deserialize, Serialize};

use super::GraphqlError;

/// How a GraphQL endpoint is guarded. Every limit is checked on every operation; the
/// defaults are the secure ones (see each field). Unknown keys are refused when read from a
/// policy file.
///
/// ```
/// use zt_core::graphql::GraphqlConfig;
///
/// let config: GraphqlConfig = toml::from_str(r#"
///     max_depth = 8
///     max_aliases = 20
///     max_batch = 5
/// "#).unwrap();
/// assert_eq!(config.max_cost, 1000);
/// assert_eq!(config.introspection_scopes, ["zt:admin"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlConfig {
    /// The largest request zt reads as one GraphQL request: the JSON body of a POST (a batch
    /// included) or the query string of a GET, in bytes (default 64 KiB). Larger: 413.
    pub max_request_bytes: usize,
    /// The largest GraphQL document (the `query` text), in bytes (default 16 KiB).
    pub max_document_bytes: usize,
    /// The most lexical tokens a document may hold (default 2000). Punctuators, names,
    /// numbers, strings, commas and comments count; whitespace does not. Counted before the
    /// document is parsed.
    pub max_tokens: usize,
    /// The deepest field nesting an operation may reach, through fragments
    /// (default 10; `{ a { b } }` has depth 2). Subtrees of `__schema`/`__type` count as one
    /// level: introspection is bounded by its own list-nesting check.
    pub max_depth: u32,
    /// The most aliases an operation may use, counted through fragments: a fragment spread
    /// twice counts twice (default 30).
    pub max_aliases: u32,
    /// The most fields an operation may select at its root, through fragments (default 10).
    pub max_root_fields: u32,
    /// The most directives on one field, fragment spread, inline fragment, operation,
    /// fragment or variable definition anywhere in the document (default 5).
    pub max_directives_per_field: u32,
    /// The highest estimated cost a request may have (default 1000): one operation, or the
    /// sum over a batch's operations. Each selected field costs 1 plus, for fields returning
    /// objects, the cost of its selection; a list field multiplies that by its list size
    /// (aliases are separate selections and count each). Independently of list sizes, an
    /// operation may select at most this many fields once fragments are expanded.
    ///
    /// A list's size is the upper bound the server honours: `@listSize(assumedSize:,
    /// slicingArguments:)` on the field definition (GraphQL cost directives), else the
    /// largest [`list_size_arguments`](Self::list_size_arguments) given, else
    /// [`default_list_size`](Self::default_list_size). Put `@listSize` on every list whose
    /// resolver returns more than `default_list_size` items when not asked for fewer.
    pub max_cost: u64,
    /// The list size assumed for a list field without `@listSize` and without a list-size
    /// argument, and for a `@listSize` field given neither a slicing argument nor
    /// `assumedSize` (default 10); also for each inner level of nested lists. A list size
    /// below 1 counts as 1.
    pub default_list_size: u64,
    /// For list fields without `@listSize`: arguments whose value is the list's size
    /// (default `first`, `last`, `limit`): a literal, a variable's value (its default when not
    /// sent), or the argument's schema default. When several are given, the largest counts.
    pub list_size_arguments: Vec<String>,
    /// The most operations one batched POST (a JSON array) may carry (default 0: batching
    /// off, arrays are refused).
    pub max_batch: usize,
    /// Introspection (`__schema`, `__type`; never `__typename`) is answered only for
    /// identities holding at least one of these scopes (default `["zt:admin"]`; empty: never).
    pub introspection_scopes: Vec<String>,
    /// Accept queries over GET (default `true`). Mutations and subscriptions are never
    /// accepted over GET (405 with `Allow: POST`).
    pub allow_get: bool,
    /// Safelisting: the SHA-256 (lowercase hex) of every document this endpoint accepts;
    /// documents in [`persisted_documents`](Self::persisted_documents) are added. `None`
    /// (default): any valid document is accepted.
    pub safelist: Option<Vec<String>>,
    /// Report-only safelisting (default `false`): a document outside the safelist is not
    /// denied but flagged in [`OperationInfo::safelisted`](super::OperationInfo::safelisted),
    /// so the Guard can log a `would_deny` while a safelist is being collected.
    pub safelist_report_only: bool,
    /// Registered documents (GraphQL text). A request may name one by its SHA-256 alone
    /// (`extensions.persistedQuery.sha256Hash`, as Apollo's persisted queries do); each is
    /// parsed and validated against the schema at start-up.
    pub persisted_documents: Vec<String>,
    /// How many new operation names (or anonymous documents) one verified principal may
    /// add to the inventory as entries of their own (default 20); beyond, its unknown
    /// operations are recorded as `{other}`. Registered and safelisted documents need no
    /// budget. Anonymous callers add none.
    pub inventory_names_per_principal: usize,
    /// The most operation names learned from callers, all principals together (default
    /// 500, below the inventory's 2 000 declared routes).
    pub inventory_max_names: usize,
    /// Validated documents are cached by their SHA-256, up to this many bytes of document
    /// text (default 1 MiB; 0: no cache). The cache holds parse and validation results only:
    /// authorization, variables and cost are evaluated on every request.
    pub document_cache_bytes: usize,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        GraphqlConfig {
            max_request_bytes: 64 * 1024,
            max_document_bytes: 16 * 1024,
            max_tokens: 2000,
            max_depth: 10,
            max_aliases: 30,
            max_root_fields: 10,
            max_directives_per_field: 5,
            max_cost: 1000,
            default_list_size: 10,
            list_size_arguments: vec!["first".into(), "last".into(), "limit".into()],
            max_batch: 0,
            introspection_scopes: vec!["zt:admin".into()],
            allow_get: true,
            safelist: None,
            safelist_report_only: false,
            persisted_documents: Vec::new(),
            document_cache_bytes: 1024 * 1024,
            inventory_names_per_principal: 20,
            inventory_max_names: 500,
        }
    }
}

impl GraphqlConfig {
    /// How close accepted operations came to the limits: the largest share of any limit one
    /// of them used (depth, aliases, root fields), or all of them together (cost, batch
    /// size), in `[0, 1]`. The observer's GraphQL abuse signal
    /// ([`RequestRecord::graphql_pressure`](crate::observe::RequestRecord::graphql_pressure))
    /// counts documents at or above `observe.detection.graphql_near_share` (0.8).
    ///
    /// ```
    /// use zt_core::graphql::{GraphqlConfig, OperationInfo, OperationKind};
    ///
    /// let config = GraphqlConfig { max_depth: 10, max_batch: 5, ..GraphqlConfig::default() };
    /// let op = OperationInfo {
    ///     name: None, kind: OperationKind::Query, hash: String::new(), cost: 10, depth: 9,
    ///     aliases: 0, root_fields: 1, introspection: false, persisted: false, safelisted: None,
    ///     label: String::new(), root_selections: Vec::new(),
    /// };
    /// assert_eq!(config.pressure(std::slice::from_ref(&op)), 0.9);
    /// ```
    pub fn pressure(&self, operations: &[super::OperationInfo]) -> f32 {
        let share =
            |used: u64, limit: u64| if limit == 0 { 0.0 } else { (used as f64 / limit as f64).min(1.0) };
        let each = operations.iter().map(|o| {
            share(u64::from(o.depth), u64::from(self.max_depth))
                .max(share(o.aliases, u64::from(self.max_aliases)))
                .max(share(o.root_fields, u64::from(self.max_root_fields)))
        });
        let cost = operations.iter().fold(0u64, |sum, o| sum.saturating_add(o.cost));
        // A batch of one is no batch: only batches count toward the batch limit.
        let batch =
            if operations.len() > 1 { share(operations.len() as u64, self.max_batch as u64) } else { 0.0 };
        each.fold(share(cost, self.max_cost).max(batch), f64::max) as f32
    }

    /// Checks the values: limits that must be positive are, safelist entries are SHA-256 hex
    /// digests, scope names are well-formed. Called by
    /// [`GraphqlSchema::from_sdl`](super::GraphqlSchema::from_sdl).
    pub fn validate(&self) -> Result<(), GraphqlError> {
        let positive: [(&'static str, u64); 7] = [
            ("max_request_bytes", self.max_request_bytes as u64),
            ("max_document_bytes", self.max_document_bytes as u64),
            ("max_tokens", self.max_tokens as u64),
            ("max_depth", u64::from(self.max_depth)),
            ("max_root_fields", u64::from(self.max_root_fields)),
            ("max_cost", self.max_cost),
            ("default_list_size", self.default_list_size),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.max_document_bytes > self.max_request_bytes {
            return Err(invalid("max_document_bytes", "must not exceed max_request_bytes"));
        }
        for name in &self.list_size_arguments {
            if !is_graphql_name(name) {
                return Err(invalid("list_size_arguments", "entries must be GraphQL names"));
            }
        }
        for scope in &self.introspection_scopes {
            crate::scopes::all([scope.as_str()])
                .validate()
                .map_err(|message| invalid("introspection_scopes", &message))?;
        }
        if let Some(safelist) = &self.safelist {
            for hash in safelist {
                if !is_sha256_hex(hash) {
                    return Err(invalid("safelist", "entries must be SHA-256 digests in lowercase hex"));
                }
            }
        }
        Ok(())
    }
}

fn invalid(field: &'static str, message: &str) -> GraphqlError {
    GraphqlError::Config { field, message: message.to_string() }
}

/// `[_A-Za-z][_0-9A-Za-z]*`
pub(super) fn is_graphql_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'_' | b'a'..=b'z' | b'A'..=b'Z'))
        && bytes.all(|b| matches!(b, b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'))
}

/// 64 lowercase hex digits.
pub(super) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
