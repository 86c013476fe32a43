//! `POST /graphql` (and `GET /graphql`) over the orders data, for both demos.
//!
//! zt checks every GraphQL request before it gets here (schema, limits, field scopes; see
//! `zt::graphql`); this is the service's own executor, written with apollo-compiler's
//! field resolvers, as a service with a hand-written GraphQL layer would. zt does not care
//! which GraphQL server runs behind it.

use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::JsonMap;
use apollo_compiler::response::serde_json_bytes::Value as JsonValue;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde::Deserialize;

use super::{Order, OrderStore, Reply};

/// The demo SDL (with its `@requiresScopes` directives), compiled into the binary.
pub const SDL: &str = include_str!("../orders.graphql");

/// The most orders one list field returns, whatever `limit` asks (and when it is absent).
/// The schema's `@listSize(assumedSize: 100)` says the same to zt's cost estimate: change
/// both together (`tests/adversarial_graphql.rs` checks they agree).
pub const MAX_LIST: usize = 100;

/// The demo's GraphQL limits (issue 9): depth 8, aliases 20, root fields 10, batch 5,
/// introspection for `zt:admin` only; everything else at zt's secure defaults.
pub fn config() -> zt::graphql::GraphqlConfig {
    zt::graphql::GraphqlConfig {
        max_depth: 8,
        max_aliases: 20,
        max_root_fields: 10,
        max_batch: 5,
        introspection_scopes: vec!["zt:admin".to_string()],
        ..Default::default()
    }
}

/// The schema zt enforces on `/graphql`.
pub fn guarded_schema() -> Result<zt::graphql::GraphqlSchema, String> {
    zt::graphql::GraphqlSchema::from_sdl(SDL, config()).map_err(|e| format!("demo GraphQL schema: {e}"))
}

/// One GraphQL-over-HTTP request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphqlRequest {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<JsonMap>,
}

/// The service's executor: the schema, compiled once.
pub struct GraphqlService {
    schema: Valid<Schema>,
}

impl GraphqlService {
    pub fn new() -> Result<GraphqlService, String> {
        let schema = Schema::parse_and_validate(SDL, "orders.graphql")
            .map_err(|e| format!("demo GraphQL schema: {}", e.errors))?;
        Ok(GraphqlService { schema })
    }

    /// Runs a `POST` body (one request, or a batch) for `caller`.
    pub fn post(&self, store: &OrderStore, caller: &str, body: &[u8], accept: Option<&str>) -> Reply {
        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(_) => return bypass("body is not JSON"),
        };
        let media = media_type(accept);
        if let serde_json::Value::Array(batch) = value {
            let mut body = String::from("[");
            for (index, item) in batch.into_iter().enumerate() {
                match serde_json::from_value::<GraphqlRequest>(item) {
                    Ok(request) => {
                        if index > 0 {
                            body.push(',');
                        }
                        match self.run(store, caller, request) {
                            Ok(answer) => body.push_str(&answer),
                            Err(what) => return bypass(what),
                        }
                    }
                    Err(_) => return bypass("batch member is not a GraphQL request"),
                }
            }
            body.push(']');
            return Reply { status: 200, body: Some(body), content_type: media };
        }
        match serde_json::from_value::<GraphqlRequest>(value) {
            Ok(request) => self.answer(store, caller, request, media),
            Err(_) => bypass("body is not a GraphQL request"),
        }
    }

    /// Runs a `GET` request (its query string) for `caller`.
    pub fn get(&self, store: &OrderStore, caller: &str, query: &str, accept: Option<&str>) -> Reply {
        let mut request = GraphqlRequest { query: None, operation_name: None, variables: None };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "query" => request.query = Some(value.into_owned()),
                // GraphQL over HTTP: an empty `operationName` is the same as none.
                "operationName" => {
                    request.operation_name = Some(value.into_owned()).filter(|n| !n.is_empty())
                }
                // `null` is the same as no variables (as in a POST body).
                "variables" => match serde_json::from_str::<Option<JsonMap>>(&value) {
                    Ok(variables) => request.variables = variables,
                    Err(_) => return bypass("variables are not a JSON object"),
                },
                _ => {}
            }
        }
        self.answer(store, caller, request, media_type(accept))
    }

    fn answer(
        &self,
        store: &OrderStore,
        caller: &str,
        request: GraphqlRequest,
        media: &'static str,
    ) -> Reply {
        match self.run(store, caller, request) {
            Ok(answer) => Reply { status: 200, body: Some(answer), content_type: media },
            Err(what) => bypass(what),
        }
    }

    /// Executes one request and returns the JSON response (fields in selection order). zt
    /// has validated it against the same schema; a document that does not validate here
    /// means something let it through: `Err`, answered as a server error.
    fn run(&self, store: &OrderStore, caller: &str, request: GraphqlRequest) -> Result<String, &'static str> {
        let Some(query) = request.query else {
            return Err("a request without a document");
        };
        let Ok(document) = ExecutableDocument::parse_and_validate(&self.schema, &query, "request.graphql")
        else {
            return Err("an invalid document");
        };
        let variables = request.variables.unwrap_or_default();
        let Ok(operation) = document.operations.get(request.operation_name.as_deref()) else {
            return Err("an operation that cannot be selected");
        };
        // Introspection is on in the executor: zt admits it only for `zt:admin` callers.
        let execution = Execution::new(&self.schema, &document)
            .operation(operation)
            .raw_variable_values(&variables)
            .enable_schema_introspection(true);
        let root = Root { store, caller, type_name: operation.object_type().as_str() };
        match execution.execute_sync(&root) {
            Ok(response) => serde_json::to_string(&response).map_err(|_| "an unserializable response"),
            Err(_) => Err("a request that cannot be executed (variables)"),
        }
    }
}

/// The media type zt's GraphQL denials use too, so both kinds of answer agree.
fn media_type(accept: Option<&str>) -> &'static str {
    zt::graphql::response_media_type(accept.map(str::as_bytes))
}

fn bypass(what: &str) -> Reply {
    // The same words as the REST handlers': the soak and schemathesis scripts scan for them.
    tracing::error!(what, "a GraphQL request the contract forbids reached the handler");
    Reply {
        status: 500,
        body: Some(
            r#"{"errors":[{"message":"contract bypass","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#
                .into(),
        ),
        content_type: "application/json",
    }
}

/// `limit` as a list size: absent means all (up to [`MAX_LIST`]), negative means none.
fn list_limit(info: &ResolveInfo<'_>) -> usize {
    match info.arguments().get("limit").and_then(JsonValue::as_i64) {
        Some(n) => usize::try_from(n).unwrap_or(0).min(MAX_LIST),
        None => MAX_LIST,
    }
}

fn orders_list<'a>(store: &'a OrderStore, owner: &str, limit: usize) -> ResolvedValue<'a> {
    let orders = store.orders_of(owner, limit);
    ResolvedValue::list(
        orders
            .into_iter()
            .map(move |order| ResolvedValue::object(OrderObject { store, order, created: false })),
    )
}

/// `Query` and `Mutation`: the caller's view of the store.
struct Root<'a> {
    store: &'a OrderStore,
    caller: &'a str,
    type_name: &'a str,
}

impl ObjectValue for Root<'_> {
    fn type_name(&self) -> &str {
        self.type_name
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        match info.field_name() {
            "orders" => Ok(orders_list(self.store, self.caller, list_limit(info))),
            "order" => {
                let id = match info.arguments().get("id") {
                    Some(JsonValue::String(s)) => s.as_str().parse::<u64>().ok(),
                    Some(other) => other.as_i64().and_then(|n| u64::try_from(n).ok()),
                    None => None,
                };
                let order = id.and_then(|id| self.store.find(self.caller, id));
                Ok(ResolvedValue::nullable_object(order.map(|order| OrderObject {
                    store: self.store,
                    order,
                    created: false,
                })))
            }
            "createOrder" => {
                let item = info.arguments().get("item").and_then(JsonValue::as_str).unwrap_or_default();
                let quantity = info.arguments().get("quantity").and_then(JsonValue::as_i64).unwrap_or(0);
                if !(1..=64).contains(&item.chars().count()) {
                    return Err(FieldError { message: "item must be 1 to 64 characters".into() });
                }
                let Some(quantity) = u32::try_from(quantity).ok().filter(|q| (1..=1000).contains(q)) else {
                    return Err(FieldError { message: "quantity must be between 1 and 1000".into() });
                };
                match self.store.insert(self.caller, item.to_string(), quantity, None) {
                    Some(order) => {
                        Ok(ResolvedValue::object(OrderObject { store: self.store, order, created: true }))
                    }
                    None => Err(FieldError { message: "the order store is full".into() }),
                }
            }
            _ => Err(self.unknown_field_error(info)),
        }
    }
}

/// An order (the caller's own: every path to one starts from the caller): an `Order`, or
/// the `CreatedOrder` a mutation returns (no `internalNote`; its `customer` needs
/// orders:read, which zt checks).
struct OrderObject<'a> {
    store: &'a OrderStore,
    order: Order,
    created: bool,
}

impl ObjectValue for OrderObject<'_> {
    fn type_name(&self) -> &str {
        if self.created { "CreatedOrder" } else { "Order" }
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        let order = &self.order;
        match info.field_name() {
            "id" => Ok(ResolvedValue::leaf(order.id.to_string())),
            "item" => Ok(ResolvedValue::leaf(order.item.as_str())),
            "quantity" => Ok(ResolvedValue::leaf(order.quantity)),
            "owner" => Ok(ResolvedValue::leaf(order.owner.as_str())),
            "internalNote" => Ok(match &order.note {
                Some(note) => ResolvedValue::leaf(note.as_str()),
                None => ResolvedValue::null(),
            }),
            "customer" => {
                Ok(ResolvedValue::object(CustomerObject { store: self.store, owner: &order.owner }))
            }
            _ => Err(self.unknown_field_error(info)),
        }
    }
}

/// A customer is an order's owner (the demo keeps no other customer data).
struct CustomerObject<'a> {
    store: &'a OrderStore,
    owner: &'a str,
}

impl ObjectValue for CustomerObject<'_> {
    fn type_name(&self) -> &str {
        "Customer"
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        match info.field_name() {
            "id" | "name" => Ok(ResolvedValue::leaf(self.owner)),
            "orders" => Ok(orders_list(self.store, self.owner, list_limit(info))),
            _ => Err(self.unknown_field_error(info)),
        }
    }
}
