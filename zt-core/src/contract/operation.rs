//! The vocabulary of a contract: compile options, operations, lookups and the request
//! parts checked. A leaf module, so compiling, routing and validation name it without
//! naming the contract itself.

use crate::request::HeaderLookup;
use crate::scopes::Requirement;

/// Options for compiling a [`Contract`](super::Contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractOptions {
    /// Reject unknown query parameters and close request-body objects (default `true`).
    /// An operation overrides it with the `x-zt-strict` extension.
    pub strict: bool,
    /// At most this many violations are reported per request or response (default 10; at
    /// least 1 is always reported).
    pub max_violations: usize,
    /// Request body size limit in bytes for operations without `x-zt-body-limit`
    /// (default 1 MiB). The contract reports it as [`Operation::body_limit`]; the caller
    /// enforces it while reading the body.
    pub default_body_limit: usize,
}

impl Default for ContractOptions {
    fn default() -> Self {
        ContractOptions { strict: true, max_violations: 10, default_body_limit: 1024 * 1024 }
    }
}

/// One operation of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The HTTP method, upper case (`GET`).
    pub method: String,
    /// The OpenAPI path template (`/orders/{id}`).
    pub template: String,
    /// The `operationId`, if declared.
    pub operation_id: Option<String>,
    /// The access requirement from `security` (the operation's, else the document's):
    /// - `oauth2`/`openIdConnect` scopes become [`Requirement::Scopes`], one AND-set per
    ///   requirement object (OR between objects);
    /// - `apiKey`, `http` and `mutualTLS` schemes mean "authenticated" (an AND-set without
    ///   scopes), never public; role names listed for them are required as scopes;
    /// - `security: []` or an empty requirement object `{}` is [`Requirement::Public`];
    /// - `None` when no `security` is declared anywhere (the route's requirement must then
    ///   come from code or the policy).
    pub requirement: Option<Requirement>,
    /// Strict mode for this operation (see the module documentation).
    pub strict: bool,
    /// Maximum request body size in bytes (`x-zt-body-limit`, else the default).
    pub body_limit: usize,
    /// The operation declares a `requestBody`.
    pub has_body: bool,
    /// The declared `requestBody` is `required: true`.
    pub body_required: bool,
    /// The operation is `deprecated`.
    pub deprecated: bool,
    /// The operation's `tags`.
    pub tags: Vec<String>,
    /// The trust zone from the `x-zt-zone` extension.
    pub zone: Option<String>,
}

/// What [`Contract::lookup`](super::Contract::lookup) found for a method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The operation (index into [`Contract::operations`](super::Contract::operations)) and the path parameters.
    Found {
        /// The operation index.
        op: usize,
        /// `(name, raw value)`: values as they appear in the path, still percent-encoded.
        path_params: Vec<(String, String)>,
    },
    /// No path template matches (404).
    NotFound,
    /// A template matches but not for this method (405).
    MethodNotAllowed {
        /// The methods declared for the path, sorted (for the `Allow` header).
        allowed: Vec<String>,
    },
}

/// The parts of a request the contract checks.
#[derive(Clone, Copy)]
pub struct ContractRequest<'a> {
    /// Path parameters as returned by [`Contract::lookup`](super::Contract::lookup).
    pub path_params: &'a [(String, String)],
    /// The raw query string without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a dyn HeaderLookup,
    /// The body; `None` when no body was sent. An empty body counts as none, except an
    /// empty `application/x-www-form-urlencoded` body (the empty form).
    pub body: Option<&'a [u8]>,
}
