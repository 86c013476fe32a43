//! The compiled schema: parsing, validation, limits, cost and field authorization of each
//! request (the `graphql` feature).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apollo_compiler::ast::{self, OperationType};
use apollo_compiler::diagnostic::ToCliReport;
use apollo_compiler::executable::{ExecutableDocument, Operation};
use apollo_compiler::parser::Parser;
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{Name, Schema};
use sha2::{Digest, Sha256};

use super::analysis::{Access, CostModel, Metrics, Stop};
use super::authz::{Rules, Who};
use super::listsize::ListSizes;
use super::request::{RawOperation, RawRequest};
use super::{
    GraphqlConfig, GraphqlDenial, GraphqlError, GraphqlReason, GraphqlRequestBody, Location,
    MAX_REPORTED_LOCATIONS, OperationInfo, OperationKind, analysis, authz, listsize, names, request, tokens,
    variables,
};
use crate::Identity;

/// The name request documents carry in the compiler (never shown to callers).
const DOCUMENT_PATH: &str = "request.graphql";

impl OperationKind {
    pub(super) fn of(kind: OperationType) -> OperationKind {
        match kind {
            OperationType::Query => OperationKind::Query,
            OperationType::Mutation => OperationKind::Mutation,
            OperationType::Subscription => OperationKind::Subscription,
        }
    }
}

/// A schema compiled for checking requests: the validated SDL, the field rules from its
/// directives, the configuration, registered documents, and a cache of validated documents.
///
/// Cheap to share (`Send + Sync`; wrap it in an `Arc`).
pub struct GraphqlSchema {
    schema: Valid<Schema>,
    rules: Rules,
    /// `@listSize` of the schema's list fields (cost estimation).
    sizes: ListSizes,
    config: GraphqlConfig,
    /// Safelisted hashes (configured plus persisted documents); `None`: safelisting off.
    safelist: Option<HashSet<String>>,
    /// Registered documents by hash.
    persisted: HashMap<String, Arc<Compiled>>,
    cache: Option<quick_cache::sync::Cache<String, Arc<Compiled>, DocumentWeight>>,
    /// Operation labels learned for the inventory.
    names: names::Names,
}

impl std::fmt::Debug for GraphqlSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphqlSchema")
            .field("types", &self.schema.types.len())
            .field("config", &self.config)
            .field("persisted", &self.persisted.len())
            .finish_non_exhaustive()
    }
}

/// Cache weight: the document's length in bytes.
#[derive(Debug, Clone, Copy)]
struct DocumentWeight;

impl quick_cache::Weighter<String, Arc<Compiled>> for DocumentWeight {
    fn weight(&self, _key: &String, value: &Arc<Compiled>) -> u64 {
        value.text_len as u64 + 1
    }
}

/// A parsed, validated document with what zt needs of each operation.
#[derive(Debug)]
struct Compiled {
    document: Valid<ExecutableDocument>,
    operations: Vec<CompiledOperation>,
    text_len: usize,
}

#[derive(Debug)]
struct CompiledOperation {
    name: Option<Name>,
    kind: OperationKind,
    metrics: Metrics,
    /// The guarded fields it selects; `None` when the operation exceeds the limits (it is
    /// refused before these would be needed).
    accesses: Option<Vec<Access>>,
    /// Introspection within the compiler's list-nesting bound.
    introspection_ok: bool,
    /// Root field coordinates and selection counts ([`OperationInfo::root_selections`]).
    root_selections: Vec<(String, u64)>,
}

/// Which operations of a document must pass the limits before it is validated.
#[derive(Debug, Clone, Copy)]
enum Select<'a> {
    /// The one a request selects (`operationName`).
    Request(Option<&'a str>),
    /// All of them (registered documents).
    All,
}

impl GraphqlSchema {
    /// Compiles an SDL schema with a configuration. Fails on an invalid configuration or
    /// schema, a misused `@authenticated`/`@requiresScopes`, or a persisted document that
    /// is invalid or over the limits.
    pub fn from_sdl(sdl: &str, config: GraphqlConfig) -> Result<GraphqlSchema, GraphqlError> {
        config.validate()?;
        let schema_error = |message: String| GraphqlError::Schema { message };
        let document =
            ast::Document::parse(sdl, "schema.graphql").map_err(|e| schema_error(e.errors.to_string()))?;
        let declared: HashSet<&str> = document
            .definitions
            .iter()
            .filter_map(|d| d.as_directive_definition())
            .map(|d| d.name.as_str())
            .collect();
        let mut injected = String::new();
        if !declared.contains("authenticated") {
            injected.push_str(authz::AUTHENTICATED_DEFINITION);
        }
        if !declared.contains("requiresScopes") {
            injected.push_str(authz::REQUIRES_SCOPES_DEFINITION);
        }
        if !declared.contains("listSize") {
            injected.push_str(listsize::LIST_SIZE_DEFINITION);
        }
        let mut builder = Schema::builder().add_ast(&document);
        if !injected.is_empty() {
            builder = builder.parse(injected, "zt-directives.graphql");
        }
        let schema = builder
            .build()
            .map_err(|e| schema_error(e.errors.to_string()))?
            .validate()
            .map_err(|e| schema_error(e.errors.to_string()))?;
        let rules = Rules::compile(&schema)?;
        let sizes = ListSizes::compile(&schema)?;
        let cache = (config.document_cache_bytes > 0).then(|| {
            let bytes = config.document_cache_bytes as u64;
            quick_cache::sync::Cache::with_weighter(
                (config.document_cache_bytes / 512).max(16),
                bytes,
                DocumentWeight,
            )
        });
        let mut compiled = GraphqlSchema {
            schema,
            rules,
            sizes,
            safelist: config.safelist.as_ref().map(|hashes| hashes.iter().cloned().collect()),
            config,
            persisted: HashMap::new(),
            cache,
            names: names::Names::default(),
        };
        for (index, text) in compiled.config.persisted_documents.iter().enumerate() {
            let failed = |denial: GraphqlDenial| GraphqlError::PersistedDocument {
                index,
                message: format!("{}: {}", denial.code(), denial.message()),
            };
            if text.len() > compiled.config.max_document_bytes {
                return Err(failed(GraphqlDenial::new(GraphqlReason::DocumentTooLarge)));
            }
            let document = compiled.compile(text, Select::All).map_err(failed)?;
            compiled.persisted.insert(sha256_hex(text), document);
        }
        if let Some(safelist) = &mut compiled.safelist {
            safelist.extend(compiled.persisted.keys().cloned());
        }
        Ok(compiled)
    }

    /// The configuration.
    pub fn config(&self) -> &GraphqlConfig {
        &self.config
    }

    /// Checks a request for the verified caller (`None`: anonymous). On success, one
    /// [`OperationInfo`] per operation (one, or one per batch member); on failure, the
    /// one denial for the whole request.
    pub fn check(
        &self,
        request: GraphqlRequestBody<'_>,
        caller: Option<&Identity>,
    ) -> Result<Vec<OperationInfo>, GraphqlDenial> {
        let who = match caller {
            Some(identity) => Who { authenticated: true, scopes: identity.scopes() },
            None => Who { authenticated: false, scopes: &[] },
        };
        let mut operations = self.check_as(request, who)?;
        self.label(&mut operations, caller.map(Identity::principal));
        Ok(operations)
    }

    /// [`check`](Self::check) for a caller known only by its granted scopes: `Some(scopes)`
    /// is a verified caller (possibly with no scopes), `None` an anonymous one.
    pub fn check_with_scopes(
        &self,
        request: GraphqlRequestBody<'_>,
        scopes: Option<&[String]>,
    ) -> Result<Vec<OperationInfo>, GraphqlDenial> {
        let who = match scopes {
            Some(scopes) => Who { authenticated: true, scopes },
            None => Who { authenticated: false, scopes: &[] },
        };
        // No principal: only registered and already learned operations are named.
        let mut operations = self.check_as(request, who)?;
        self.label(&mut operations, None);
        Ok(operations)
    }

    /// Sets each accepted operation's inventory label (see [`OperationInfo::label`]).
    fn label(&self, operations: &mut [OperationInfo], principal: Option<&str>) {
        for operation in operations {
            let label = match &operation.name {
                Some(name) => name.clone(),
                None => format!("#{}", &operation.hash[..operation.hash.len().min(12)]),
            };
            let registered = operation.persisted || operation.safelisted == Some(true);
            operation.label = self.names.label(
                label,
                registered,
                principal,
                self.config.inventory_names_per_principal,
                self.config.inventory_max_names,
            );
        }
    }

    fn check_as(
        &self,
        request: GraphqlRequestBody<'_>,
        who: Who<'_>,
    ) -> Result<Vec<OperationInfo>, GraphqlDenial> {
        let refuse = GraphqlDenial::new;
        match request {
            GraphqlRequestBody::Json(body) => {
                // Larger than `max_request_bytes`: `RequestTooLarge`, before any byte is read.
                match request::parse_json_body(body, self.config.max_request_bytes).map_err(refuse)? {
                    RawRequest::Single(operation) => Ok(vec![self.check_operation(operation, false, who)?]),
                    RawRequest::Batch(items) => {
                        if items.is_empty() || items.len() > self.config.max_batch {
                            return Err(refuse(GraphqlReason::BatchLimit));
                        }
                        let mut infos = Vec::with_capacity(items.len());
                        for (index, item) in items.into_iter().enumerate() {
                            let at = |mut denial: GraphqlDenial| {
                                denial.batch_index = Some(index);
                                denial
                            };
                            let operation = request::operation_from_json(item).map_err(|r| at(refuse(r)))?;
                            infos.push(self.check_operation(operation, false, who).map_err(at)?);
                        }
                        // One request, one budget: `max_cost` bounds what the whole batch
                        // makes the service do, not each member (five members at the limit
                        // would be five times the work).
                        let total = infos.iter().fold(0u64, |sum, info| sum.saturating_add(info.cost));
                        if total > self.config.max_cost {
                            return Err(refuse(GraphqlReason::CostLimit));
                        }
                        Ok(infos)
                    }
                }
            }
            GraphqlRequestBody::Get { query } => {
                if !self.config.allow_get {
                    return Err(refuse(GraphqlReason::GetNotAllowed));
                }
                if query.len() > self.config.max_request_bytes {
                    return Err(refuse(GraphqlReason::RequestTooLarge));
                }
                let operation =
                    request::parse_query_string(query, self.config.max_request_bytes).map_err(refuse)?;
                Ok(vec![self.check_operation(operation, true, who)?])
            }
        }
    }

    fn check_operation(
        &self,
        raw: RawOperation,
        is_get: bool,
        who: Who<'_>,
    ) -> Result<OperationInfo, GraphqlDenial> {
        let refuse = GraphqlDenial::new;
        let name_requested = raw.operation_name.as_deref();
        // The document: sent, or registered and named by hash.
        let (hash, known, persisted) = match (&raw.query, &raw.persisted_hash) {
            (Some(text), claimed) => {
                if text.len() > self.config.max_document_bytes {
                    return Err(refuse(GraphqlReason::DocumentTooLarge));
                }
                let hash = sha256_hex(text);
                if claimed.as_ref().is_some_and(|c| *c != hash) {
                    return Err(refuse(GraphqlReason::BadRequest));
                }
                let known = self.persisted.get(&hash).cloned();
                (hash, known, false)
            }
            (None, Some(hash)) => match self.persisted.get(hash) {
                Some(document) => (hash.clone(), Some(document.clone()), true),
                None => return Err(refuse(GraphqlReason::PersistedQueryNotFound)),
            },
            (None, None) => return Err(refuse(GraphqlReason::BadRequest)),
        };
        let safelisted = self.safelist.as_ref().map(|list| list.contains(&hash));
        if safelisted == Some(false) && !self.config.safelist_report_only {
            return Err(refuse(GraphqlReason::PersistedQueryNotAllowed));
        }
        let compiled = match known.or_else(|| self.cache.as_ref().and_then(|c| c.get(&hash))) {
            Some(compiled) => compiled,
            None => {
                // Without a document text we would have returned above.
                let text = raw.query.as_deref().unwrap_or_default();
                let compiled = self.compile(text, Select::Request(name_requested))?;
                if let Some(cache) = &self.cache {
                    cache.insert(hash.clone(), compiled.clone());
                }
                compiled
            }
        };
        let (operation, compiled_op) = compiled.select(name_requested)?;
        self.check_limits(&compiled_op.metrics)?;
        if is_get && compiled_op.kind != OperationKind::Query {
            return Err(refuse(GraphqlReason::MutationOverGet));
        }
        if compiled_op.metrics.introspection {
            if !self.may_introspect(who) {
                return Err(refuse(GraphqlReason::IntrospectionDisabled));
            }
            if !compiled_op.introspection_ok {
                return Err(refuse(GraphqlReason::DepthLimit));
            }
        }
        variables::check(&self.schema, operation, &raw.variables)
            .map_err(|path| GraphqlDenial::with_paths(GraphqlReason::InvalidVariables, vec![path]))?;
        let model = CostModel {
            list_size_arguments: &self.config.list_size_arguments,
            default_list_size: self.config.default_list_size,
            sizes: &self.sizes,
        };
        let cost = analysis::cost(&compiled.document, operation, &raw.variables, &model);
        if cost > self.config.max_cost {
            return Err(refuse(GraphqlReason::CostLimit));
        }
        let Some(accesses) = &compiled_op.accesses else {
            return Err(refuse(GraphqlReason::CostLimit));
        };
        let denied: Vec<String> = accesses
            .iter()
            .filter(|access| {
                !access.rules.iter().all(|id| self.rules.rule(*id).is_some_and(|rule| rule.allows(who)))
            })
            .map(|access| access.path.clone())
            .collect();
        if !denied.is_empty() {
            let reason = if who.authenticated {
                GraphqlReason::ForbiddenField
            } else {
                GraphqlReason::Unauthenticated
            };
            return Err(GraphqlDenial::with_paths(reason, denied));
        }
        let metrics = compiled_op.metrics;
        Ok(OperationInfo {
            name: compiled_op.name.as_ref().map(|n| n.to_string()),
            kind: compiled_op.kind,
            hash,
            cost,
            depth: metrics.shape.depth,
            aliases: metrics.shape.aliases,
            root_fields: metrics.root_fields,
            introspection: metrics.introspection,
            persisted,
            safelisted,
            // Set once the whole request is accepted (`label`).
            label: String::new(),
            root_selections: compiled_op.root_selections.clone(),
        })
    }

    fn may_introspect(&self, who: Who<'_>) -> bool {
        who.authenticated && self.config.introspection_scopes.iter().any(|s| who.scopes.contains(s))
    }

    fn check_limits(&self, metrics: &Metrics) -> Result<(), GraphqlDenial> {
        let config = &self.config;
        let reason = if metrics.shape.depth > config.max_depth {
            GraphqlReason::DepthLimit
        } else if metrics.shape.aliases > u64::from(config.max_aliases) {
            GraphqlReason::AliasLimit
        } else if metrics.root_fields > u64::from(config.max_root_fields) {
            GraphqlReason::RootFieldLimit
        } else if metrics.shape.fields > config.max_cost {
            GraphqlReason::CostLimit
        } else {
            return Ok(());
        };
        Err(GraphqlDenial::new(reason))
    }

    /// Parses, measures and validates a document (bounded at every step).
    fn compile(&self, text: &str, select: Select<'_>) -> Result<Arc<Compiled>, GraphqlDenial> {
        let config = &self.config;
        // The parser may recurse this deep (selection sets, lists, objects, arguments).
        let recursion_limit = (config.max_depth as usize).saturating_mul(2).saturating_add(16).clamp(64, 500);
        let scan = tokens::scan(text, config.max_tokens.saturating_add(1));
        if scan.tokens > config.max_tokens {
            return Err(GraphqlDenial::new(GraphqlReason::TokenLimit));
        }
        if scan.nesting > recursion_limit {
            return Err(GraphqlDenial::new(GraphqlReason::DepthLimit));
        }
        // Backstop: the parser counts whitespace runs as tokens too.
        let token_limit = config.max_tokens.saturating_mul(2).saturating_add(8);
        let mut parser = Parser::new().token_limit(token_limit).recursion_limit(recursion_limit);
        let ast = match parser.parse_ast(text, DOCUMENT_PATH) {
            Ok(ast) => ast,
            Err(failed) => {
                let reason = if parser.tokens_reached() >= token_limit {
                    GraphqlReason::TokenLimit
                } else if parser.recursion_reached() >= recursion_limit {
                    GraphqlReason::DepthLimit
                } else {
                    GraphqlReason::ParseFailed
                };
                return Err(GraphqlDenial::with_locations(reason, self.locations(&failed.errors)));
            }
        };
        let document = ast.to_executable(&self.schema).map_err(|failed| {
            GraphqlDenial::with_locations(GraphqlReason::ValidationFailed, self.locations(&failed.errors))
        })?;
        let stopped = |stop: Stop| {
            GraphqlDenial::new(match stop {
                Stop::Cycle => GraphqlReason::ValidationFailed,
                Stop::TooDeep => GraphqlReason::DepthLimit,
                Stop::TooLarge => GraphqlReason::CostLimit,
            })
        };
        if analysis::max_directives(&document).map_err(stopped)? > config.max_directives_per_field as usize {
            return Err(GraphqlDenial::new(GraphqlReason::DirectiveLimit));
        }
        let mut measured = Vec::with_capacity(document.operations.len());
        for operation in document.operations.iter() {
            let metrics = analysis::measure(&document, operation).map_err(stopped)?;
            measured.push((operation.name.clone(), OperationKind::of(operation.operation_type), metrics));
        }
        match select {
            Select::Request(name) => {
                let operation = document
                    .operations
                    .get(name)
                    .map_err(|_| GraphqlDenial::new(GraphqlReason::BadRequest))?;
                if let Some((_, _, metrics)) = measured.iter().find(|(n, _, _)| *n == operation.name) {
                    self.check_limits(metrics)?;
                }
            }
            Select::All => {
                for (_, _, metrics) in &measured {
                    self.check_limits(metrics)?;
                }
            }
        }
        let document = document.validate(&self.schema).map_err(|failed| {
            GraphqlDenial::with_locations(GraphqlReason::ValidationFailed, self.locations(&failed.errors))
        })?;
        let mut operations = Vec::with_capacity(measured.len());
        for (name, kind, metrics) in measured {
            let Ok(operation) = document.operations.get(name.as_ref().map(Name::as_str)) else {
                continue;
            };
            let within_limits = self.check_limits(&metrics).is_ok();
            let accesses = if within_limits {
                Some(analysis::accesses(&document, operation, &self.rules).map_err(stopped)?)
            } else {
                None
            };
            let introspection_ok = !metrics.introspection
                || apollo_compiler::introspection::check_max_depth(&document, operation).is_ok();
            let root_type = operation.object_type().as_str();
            let root_selections = analysis::root_selections(&document, operation)
                .map_err(stopped)?
                .into_iter()
                .map(|(field, count)| (format!("{root_type}.{field}"), count))
                .collect();
            operations.push(CompiledOperation {
                name,
                kind,
                metrics,
                accesses,
                introspection_ok,
                root_selections,
            });
        }
        Ok(Arc::new(Compiled { document, operations, text_len: text.len() }))
    }

    /// Locations in the request document (never in the schema) of the first diagnostics.
    fn locations(&self, errors: &DiagnosticList) -> Vec<Location> {
        errors
            .iter()
            .filter_map(|diagnostic| {
                let span = diagnostic.error.location()?;
                if self.schema.sources.contains_key(&span.file_id()) {
                    return None;
                }
                let at = span.line_column(diagnostic.sources)?;
                Some(Location { line: at.line, column: at.column })
            })
            .take(MAX_REPORTED_LOCATIONS)
            .collect()
    }
}

impl Compiled {
    /// GetOperation: the named operation, or the only one when no name is given.
    fn select(&self, name: Option<&str>) -> Result<(&Operation, &CompiledOperation), GraphqlDenial> {
        let bad = || GraphqlDenial::new(GraphqlReason::BadRequest);
        let operation = self.document.operations.get(name).map_err(|_| bad())?;
        let compiled = self.operations.iter().find(|o| o.name == operation.name).ok_or_else(bad)?;
        Ok((operation, compiled))
    }
}

/// SHA-256 of `text`, lowercase hex.
fn sha256_hex(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}
