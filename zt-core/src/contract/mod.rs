//! OpenAPI contract enforcement: requests must match the documented API, exactly.
//!
//! A [`Contract`] is compiled once from an OpenAPI 3.0.x or 3.1.x document (JSON or YAML,
//! `$ref`s within the document and to relative files) into a route table and one compiled
//! JSON Schema (2020-12) validator per schema use. At request time it answers three
//! questions, each bounded in work and never panicking on any input:
//!
//! 1. [`Contract::lookup`]: which operation does `(method, canonical path)` name? Unknown
//!    paths and undeclared methods are denied by the caller (404/405).
//! 2. [`Contract::validate_request`]: do the parameters and the body match the operation?
//!    Failures are [`Violations`]: JSON pointers into the request and the failed keyword,
//!    never the offending values, so they are safe in 400 bodies and logs.
//! 3. [`Contract::validate_response`]: does a response body match what the operation
//!    declares for its status, and which fields does it carry that no schema declares
//!    (data exposure)?
//!
//! ```
//! use zt_core::contract::{Contract, ContractOptions, ContractRequest, Lookup};
//! use zt_core::request::HeaderList;
//!
//! let document = serde_json::json!({
//!     "openapi": "3.1.0",
//!     "info": { "title": "orders", "version": "1" },
//!     "paths": { "/orders/{id}": { "get": {
//!         "parameters": [{ "name": "id", "in": "path", "required": true,
//!                          "schema": { "type": "string", "pattern": "^[0-9]{1,12}$" } }],
//!         "responses": { "200": { "description": "the order" } } } } }
//! });
//! let contract = Contract::from_value(document, None, ContractOptions::default()).unwrap();
//! let headers = HeaderList::default();
//!
//! let Lookup::Found { op, path_params } = contract.lookup("GET", "/orders/42") else { panic!() };
//! let request = ContractRequest { path_params: &path_params, query: None, headers: &headers, body: None };
//! assert!(contract.validate_request(op, &request).is_ok());
//!
//! let Lookup::Found { op, path_params } = contract.lookup("GET", "/orders/4x2") else { panic!() };
//! let request = ContractRequest { path_params: &path_params, query: Some("debug=1"), headers: &headers, body: None };
//! let violations = contract.validate_request(op, &request).unwrap_err();
//! let found: Vec<_> = violations.items.iter().map(|v| (v.pointer.as_str(), v.keyword.as_str())).collect();
//! assert_eq!(found, [("/path/id", "pattern"), ("/query/debug", "unknown")]);
//! ```
//!
//! # Violation keywords
//!
//! | keyword | meaning |
//! |---|---|
//! | JSON Schema keywords (`type`, `maximum`, `maxLength`, `pattern`, `enum`, `format`, `oneOf`, ...) | the value fails that keyword of its schema |
//! | `required` | a required body property is absent (pointer names it), or a required body is absent (`/body`) |
//! | `unevaluatedProperties` / `additionalProperties` | a body property the schema does not declare (pointer names it) |
//! | `readOnly` | a `readOnly` property sent in a request (mass assignment) |
//! | `writeOnly` | a `writeOnly` property in a response |
//! | `missing` | a required parameter is absent |
//! | `unknown` | a query parameter the operation does not declare (strict mode) |
//! | `duplicate` | a single-valued parameter, form field, cookie, header, or JSON key sent twice (parameter pollution) |
//! | `empty` | an empty query value for a parameter without `allowEmptyValue` |
//! | `encoding` | percent-decoding gave invalid UTF-8 (or a header is not UTF-8) |
//! | `style` | the value does not follow the parameter's serialization style (`label` without `.`, odd `k,v` lists, nested `deepObject` keys) |
//! | `syntax` | the JSON body (or JSON-encoded parameter) is malformed |
//! | `depth` | JSON nested deeper than 64 levels |
//! | `limit` | more than 1000 query pairs or form fields |
//! | `unexpected` | a body sent to an operation that declares none |
//! | `mediaType`, `charset`, `missing` (415) | `Content-Type` is undeclared or malformed, not UTF-8 for JSON/forms, or absent |
//! | `methodOverride` | `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` or `_method` was sent: never honoured |
//! | `undeclared` (responses) | no response is declared for the status (pointer `/status`) |
//! | `operation` | the operation index passed in does not exist (a caller bug) |
//!
//! Names the client chose (unknown parameters, unknown properties) appear in pointers only
//! when at most 64 printable ASCII characters; otherwise the segment reads `*`.
//!
//! # Documented choices
//!
//! - **Integers are written as integers** (requests): where a schema's `type` admits
//!   `integer` but not `number`, a number must be written without a fraction or an exponent
//!   and fit `i64` or `u64` (`60`, `-3`, `18446744073709551615`), else the violation is
//!   `type`. JSON Schema alone also counts `60.0`, `6e1` and `1e20` as integers, but zt hands
//!   the request on as sent, and a handler's integer parser (serde into `u32`,
//!   `str::parse::<i64>`) refuses them: admitting them would turn a valid-looking request
//!   into a handler failure. Responses are validated as JSON Schema says.
//! - **Strict mode** ([`ContractOptions::strict`], default on; `x-zt-strict: false|true` on an
//!   operation overrides it): unknown query parameters are violations, and request-body
//!   objects are closed with `unevaluatedProperties: false` on the outermost schema at each
//!   instance location, never on the parts it composes: `allOf` parts and `anyOf`
//!   alternatives stay open, so the composition accepts exactly the union of what its
//!   matching branches declare. `oneOf` alternatives that make up the whole object schema
//!   are closed one by one, so exactly the alternative whose properties were sent matches; a
//!   `oneOf` beside other properties keeps open alternatives, which must then differ in
//!   `required` properties or `const`/`enum` values. A schema that declares
//!   `additionalProperties` itself (`false`, `true`, or a schema) keeps its own rule:
//!   explicit `true` stays open. Objects that declare no properties at all
//!   (`{type: object}`) are free-form and stay open. When a branch fails for another
//!   reason, the properties it declared are not also reported as unevaluated.
//! - **readOnly / writeOnly**: a `readOnly` property in a request is a violation (in every
//!   mode, strict or not: it is mass assignment, not an unknown field) and is not
//!   required in requests; `writeOnly` mirrors this for responses. A `required` entry is
//!   dropped when the flagged property is declared in the same schema or in the schemas it
//!   composes (not when declared only in a sibling branch).
//! - **Loading**: `$ref`s resolve within the document (`#/components/...`) and to relative
//!   files (`common.yaml#/components/schemas/Money`, against the referencing file's
//!   directory); URLs, absolute paths and plain-name anchors are refused. Schema `$ref`s stay
//!   references in the compiled schema, so recursive schemas are fine; a cycle that never
//!   descends into a property or item is refused. OpenAPI 3.0 schemas are converted to
//!   JSON Schema 2020-12 (`nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum`,
//!   `format: int32`/`int64` as bounds; `example`, `discriminator`, `xml`, `externalDocs`
//!   and `x-*` are annotations). `$id`, `$anchor`, `$dynamicRef` and pre-2020 keywords are
//!   refused rather than half-honoured; unknown keywords are annotations, as in 2020-12.
//!   `format` is asserted (`date-time`, `email`, `uuid`, `uri`, `byte`, ...; unknown formats
//!   such as `phone-number` assert nothing).
//! - **Parameters**: duplicates of single-valued parameters are violations in every mode.
//!   `+` in the query is a space; values are percent-decoded exactly once and
//!   split by their style's delimiter after decoding; header and cookie values are not
//!   decoded; `Accept`, `Content-Type` and `Authorization` header parameters are ignored (as
//!   OpenAPI says). A form-exploded object parameter spreads its properties over the query
//!   (`?offset=1&size=2`); one that declares no properties takes every otherwise unknown
//!   name (strict mode then has nothing to reject). Matrix-style path parameters are parsed,
//!   but the canonical-path rules reject `;`, so such routes only match when the path policy
//!   lets `;` through. Methods are matched exactly: `HEAD` is not implied by `GET`.
//! - **Bodies**: an empty body is no body, except under `application/x-www-form-urlencoded`,
//!   whose empty representation is the empty form (validated, so required fields are
//!   reported). JSON is parsed once with duplicate keys refused.
//!   Form bodies are typed by the property schemas; object properties are JSON text (the
//!   OpenAPI default `contentType`). Other declared media types are not inspected.
//! - **Security**: see [`Operation::requirement`].
//! - **Not used**: `servers` (paths are matched as written under `paths`), `callbacks` and
//!   `webhooks` (outgoing), examples, links, response headers.

mod body;
mod compile;
mod error;
mod loader;
mod media;
mod operation;
mod params;
mod report;
mod response;
mod router;
mod schema;
mod security;
mod source;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

use serde_json::Value;

pub use error::ContractError;
pub use operation::{ContractOptions, ContractRequest, Lookup, Operation};
pub use report::{ResponseReport, Violation, ViolationKind, Violations, Withheld};
pub use source::{SourceDocument, load_document};

use crate::request::HeaderLookup;
use report::Collector;

/// Headers whose presence asks a server to act as another method; zt never honours them
/// (the route stage refuses them on every route, the contract names which one was sent).
pub(crate) const METHOD_OVERRIDE_HEADERS: [&str; 3] =
    ["x-http-method-override", "x-http-method", "x-method-override"];

/// A compiled OpenAPI contract. Compiled once, then shared (`Send + Sync`).
pub struct Contract {
    operations: Vec<Operation>,
    compiled: Vec<compile::CompiledOp>,
    router: router::Router,
    options: ContractOptions,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("operations", &self.operations)
            .field("options", &self.options)
            .finish()
    }
}

impl Contract {
    fn from_compiled(parts: compile::CompiledContract) -> Contract {
        let compile::CompiledContract { operations, compiled, router, options } = parts;
        Contract { operations, compiled, router, options }
    }

    /// Loads and compiles a document file: `.json` files as JSON, others as YAML. Relative
    /// file `$ref`s resolve against the directory of the file that holds them.
    pub fn from_file(path: impl AsRef<Path>, options: ContractOptions) -> Result<Contract, ContractError> {
        let path = path.as_ref();
        let (document, canonical) = loader::read_file(path)?;
        let dir = canonical.parent().map(Path::to_path_buf);
        compile::compile(document, Some(path.display().to_string()), dir, Some(canonical), options)
            .map(Contract::from_compiled)
    }

    /// Compiles a document given as a value (for example one generated by utoipa). Relative
    /// file `$ref`s resolve against `base_dir`; without it they are errors.
    pub fn from_value(
        document: Value,
        base_dir: Option<&Path>,
        options: ContractOptions,
    ) -> Result<Contract, ContractError> {
        compile::compile(document, None, base_dir.map(Path::to_path_buf), None, options)
            .map(Contract::from_compiled)
    }

    /// Compiles a document given as JSON or YAML text.
    pub fn from_text(
        text: &str,
        base_dir: Option<&Path>,
        options: ContractOptions,
    ) -> Result<Contract, ContractError> {
        let document = loader::parse_text(text, false)
            .map_err(|message| ContractError::Syntax { file: None, message })?;
        Contract::from_value(document, base_dir, options)
    }

    /// Every operation, sorted by path template, then by method (get, put, post, delete,
    /// options, head, patch, trace). Indices are stable for the life of the contract.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation at `op`, if any.
    pub fn operation(&self, op: usize) -> Option<&Operation> {
        self.operations.get(op)
    }

    /// The options the contract was compiled with.
    pub fn options(&self) -> &ContractOptions {
        &self.options
    }

    /// Finds the operation for a method and a canonical raw path (still percent-encoded;
    /// literal segments win over parameters). Methods are case-sensitive.
    pub fn lookup(&self, method: &str, path: &str) -> Lookup {
        self.router.lookup(method, path)
    }

    fn max(&self) -> usize {
        self.options.max_violations.max(1)
    }

    /// Checks the `Content-Type` of a request that carries a body, before the body is read
    /// (the 415 decision needs no body). `Ok` when the operation declares no body: sending
    /// one anyway is reported by [`validate_request`](Self::validate_request).
    pub fn check_media_type(&self, op: usize, headers: &dyn HeaderLookup) -> Result<(), Violations> {
        let Some(spec) = self.compiled.get(op).and_then(|c| c.body.as_ref()) else {
            return Ok(());
        };
        match spec.negotiate(headers.get_one("content-type")) {
            Ok(_) => Ok(()),
            Err(body::Refusal::Unsupported(keyword)) => {
                Err(Violations::single(ViolationKind::UnsupportedMediaType, "/header/content-type", keyword))
            }
            Err(body::Refusal::Repeated) => {
                Err(Violations::single(ViolationKind::Parameters, "/header/content-type", "duplicate"))
            }
        }
    }

    /// Validates a request against operation `op`: method override first, then the media
    /// type (415), then parameters and body (400).
    pub fn validate_request(&self, op: usize, request: &ContractRequest<'_>) -> Result<(), Violations> {
        let (Some(operation), Some(compiled)) = (self.operations.get(op), self.compiled.get(op)) else {
            return Err(Violations::single(ViolationKind::Parameters, "", "operation"));
        };
        if let Some(pointer) = method_override(request) {
            return Err(Violations::single(ViolationKind::MethodOverride, &pointer, "methodOverride"));
        }
        let mut out = Collector::new(self.max());
        // An empty body is no body, except an empty form: `application/x-www-form-urlencoded`
        // has an empty representation (no fields), which the schema then judges.
        let body = match request.body {
            Some(bytes) if !bytes.is_empty() => Some(bytes),
            Some(bytes) if compiled.body.is_some() && declares_form(request.headers) => Some(bytes),
            _ => None,
        };
        let mut pending_body: Option<&'static str> = None;
        let mut matched = None;
        match (body, &compiled.body) {
            (Some(_), None) => pending_body = Some("unexpected"),
            (Some(bytes), Some(spec)) => match spec.negotiate(request.headers.get_one("content-type")) {
                Ok((entry, actual)) => matched = Some((entry, actual, bytes)),
                Err(body::Refusal::Unsupported(keyword)) => {
                    return Err(Violations::single(
                        ViolationKind::UnsupportedMediaType,
                        "/header/content-type",
                        keyword,
                    ));
                }
                Err(body::Refusal::Repeated) => out.push("/header/content-type".into(), "duplicate"),
            },
            (None, Some(spec)) if spec.required => pending_body = Some("required"),
            (None, _) => {}
        }
        params::validate(&compiled.params, &compiled.plan, operation.strict, request, &mut out);
        let parameters_failed = !out.is_empty();
        if let Some(keyword) = pending_body {
            out.push("/body".into(), keyword);
        }
        if let Some((entry, actual, bytes)) = matched
            && !out.is_full()
        {
            body::validate(entry, &actual, bytes, operation.body_limit, &mut out);
        }
        if out.is_empty() {
            return Ok(());
        }
        let kind = if parameters_failed { ViolationKind::Parameters } else { ViolationKind::Body };
        Err(out.into_violations(kind))
    }

    /// Validates a response of operation `op`: the body (JSON media types only) against
    /// the schema declared for `status` (exact code, then `2XX`-style class, then
    /// `default`), and the fields no schema declares. Empty bodies are not judged.
    pub fn validate_response(
        &self,
        op: usize,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> ResponseReport {
        match self.compiled.get(op) {
            Some(compiled) => compiled.responses.validate(status, content_type, body, self.max()),
            None => ResponseReport {
                violations: vec![Violation { pointer: String::new(), keyword: "operation".into() }],
                ..ResponseReport::default()
            },
        }
    }
}

impl Contract {
    /// True when a response of operation `op` may carry properties that need a scope
    /// (`x-zt-scopes` on a property schema): its bodies must be read and passed to
    /// [`Contract::withhold_response`] before they are sent, whether or not responses are
    /// validated.
    pub fn guards_response_fields(&self, op: usize) -> bool {
        self.compiled.get(op).is_some_and(|c| c.responses.guards_fields())
    }

    /// Removes from a response body of operation `op` the properties the caller may not
    /// see: those whose schema, for `status` and the body's media type, says
    /// `x-zt-scopes: [...]` with a scope `has_scope` denies. The REST counterpart of a
    /// GraphQL field's `@requiresScopes`: the same data, guarded the same on both paths.
    ///
    /// Only JSON bodies are walked; properties are found wherever the schema puts them
    /// (nested objects, array items, `$ref`, `allOf`/`anyOf`/`oneOf` branches, maps).
    /// A property that needs a scope should not be `required` (a response without it
    /// would then fail validation).
    ///
    /// ```
    /// use zt_core::contract::{Contract, ContractOptions, Withheld};
    ///
    /// let document = serde_json::json!({
    ///     "openapi": "3.1.0",
    ///     "info": { "title": "orders", "version": "1" },
    ///     "paths": { "/orders/{id}": { "get": {
    ///         "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
    ///         "responses": { "200": { "description": "an order", "content": { "application/json": {
    ///             "schema": { "type": "object", "properties": {
    ///                 "item": { "type": "string" },
    ///                 "note": { "type": "string", "x-zt-scopes": ["orders:admin"] } } } } } } } } } }
    /// });
    /// let contract = Contract::from_value(document, None, ContractOptions::default()).unwrap();
    /// assert!(contract.guards_response_fields(0));
    /// let body = br#"{"item":"lamp","note":"back door"}"#;
    /// let reader = |scope: &str| scope == "orders:read";
    /// let Withheld::Removed { body, fields } =
    ///     contract.withhold_response(0, 200, Some("application/json"), body, &reader)
    /// else { panic!("note is withheld") };
    /// assert_eq!(body, br#"{"item":"lamp"}"#);
    /// assert_eq!(fields, ["/body/note"]);
    /// let admin = |scope: &str| scope == "orders:admin";
    /// let body = br#"{"item":"lamp","note":"back door"}"#;
    /// assert_eq!(contract.withhold_response(0, 200, Some("application/json"), body, &admin), Withheld::Nothing);
    /// ```
    pub fn withhold_response(
        &self,
        op: usize,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        has_scope: &dyn Fn(&str) -> bool,
    ) -> Withheld {
        match self.compiled.get(op) {
            Some(compiled) => compiled.responses.withhold(status, content_type, body, has_scope),
            None => Withheld::Nothing,
        }
    }
}

/// True when the request's `Content-Type` is `application/x-www-form-urlencoded`.
fn declares_form(headers: &dyn HeaderLookup) -> bool {
    match headers.get_one("content-type") {
        crate::request::HeaderValue::One(bytes) => {
            std::str::from_utf8(bytes).ok().and_then(media::MediaType::parse).is_some_and(|m| m.is_form())
        }
        _ => false,
    }
}

/// The pointer of a method-override attempt, if the request makes one.
fn method_override(request: &ContractRequest<'_>) -> Option<String> {
    // One scan for the usual answer (none of them), then which one.
    if request.headers.has_any(&METHOD_OVERRIDE_HEADERS) {
        for header in METHOD_OVERRIDE_HEADERS {
            if request.headers.nth(header, 0).is_some() {
                return Some(format!("/header/{header}"));
            }
        }
    }
    let query = request.query?;
    // Only a name spelling `_method`, literally or percent-encoded, can decode to it.
    if !query.contains("_method") && !query.contains('%') {
        return None;
    }
    query
        .split('&')
        .map(|piece| piece.split_once('=').map_or(piece, |(name, _)| name))
        .any(|name| params::decode(name, true).is_some_and(|n| n == "_method"))
        .then(|| "/query/_method".to_string())
}
