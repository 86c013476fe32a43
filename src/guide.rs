//! # The adopter's guide: zt in front of a real service
//!
//! This module holds no code: it is the guide a team reads to put zt in front of an axum or
//! actix-web service. Every example is compiled as a doctest.
//!
//! 1. [Features](#features)
//! 2. [The policy, section by section](#the-policy-section-by-section)
//! 3. [What each switch turns on](#what-each-switch-turns-on)
//! 4. [Start-up: `Guard::warm_up`](#start-up-guardwarm_up)
//! 5. [Metrics, SIEM and traces](#metrics-siem-and-traces)
//! 6. [Layer order: CORS, compression, tracing](#layer-order-cors-compression-tracing)
//! 7. [Static files, WebSockets, server-sent events](#static-files-websockets-server-sent-events)
//! 8. [Nesting](#nesting)
//! 9. [Custom error bodies](#custom-error-bodies)
//! 10. [Relative paths](#relative-paths)
//! 11. [Many replicas](#many-replicas)
//! 12. [Migrating from jwt-authorizer](#migrating-from-jwt-authorizer)
//! 13. [Migrating from tower_governor](#migrating-from-tower_governor)
//!
//! ## Features
//!
//! No web framework is on by default: ask for the one you serve with, so an axum service
//! does not build actix-web (and the other way round).
//!
//! ```toml
//! [dependencies]
//! zt = { version = "0.1", features = ["axum"] }     # or ["actix"]
//! ```
//!
//! | feature | default | turns on |
//! |---|---|---|
//! | `axum` | no | `zt::axum`: the Tower layer, the guarded `Router`, the `Identity` and `Claims` extractors (zt-tower) |
//! | `tower` | no | alias of `axum` (the layer works on any Tower service) |
//! | `actix` | no | `zt::actix`: the actix-web middleware, `Router` and extractors (zt-actix) |
//! | `aws-lc-rs` | yes | JWT signature verification through aws-lc-rs (and the token issuer's key generation) |
//! | `rust-crypto` | no | JWT signature verification through the pure-Rust RustCrypto crates (turn `aws-lc-rs` off) |
//! | `redis` | no | the shared store of many replicas (`[fleet]`, `[limits.store.redis]`) |
//! | `prometheus` | no | [`observe::install_prometheus`](crate::observe): KPIs in the Prometheus text format |
//! | `geoip` | no | country lookups from a MaxMind database (`[observe.geo]`) |
//! | `graphql` | no | GraphQL endpoints: `[[graphql]]`, [`graphql::GraphqlSchema`](crate::graphql), `GuardBuilder::graphql` (parsing and validation through apollo-compiler, about 30 crates) |
//! | `otlp` | no | only the `otlp_orders` example and its test; adds nothing to the library |
//!
//! Without `graphql`, the `[[graphql]]` section still parses, and a policy that declares an
//! endpoint is refused when the Guard is built, with an error that names the endpoint
//! (`graphql[0]`) and the missing feature: the route is never served unchecked.
//!
//! The adapter crates can be used directly as well (`zt-tower`, `zt-actix`, with `zt-core`);
//! the facade only re-exports them.
//!
//! ## The policy, section by section
//!
//! A policy is plain data: a TOML or YAML file ([`Policy::from_file`](crate::Policy::from_file),
//! [`Guard::from_policy_file`](crate::Guard::from_policy_file)) or built in code
//! ([`Policy::builder`](crate::Policy::builder)). Unknown keys are errors, so a typo never
//! silently turns a protection off. Every section is optional; the defaults are the secure
//! choice.
//!
//! | section | default | what it is |
//! |---|---|---|
//! | `mode` | `"enforce"` | `"report"` logs every denial as `would_deny` and lets the request through (not the control plane: controls stay enforced) |
//! | `realm` | `"zt"` | the `realm` of `WWW-Authenticate` challenges |
//! | `[[issuers]]` | none | trusted issuers, each with `audiences` (required) and exactly one key source: `jwks_url`, `oidc_discovery`, `jwks_file`, `jwks`, `pem_keys`, `hmac_secrets` or `introspection`; `leeway` 60 s; `algorithms` narrowed by the keys; `required_typ`, `required_claims`, `claim_values`, `max_token_age` unset |
//! | `[tokens]` | `Authorization` only | `cookie` and `header` sources off, `dangerous_allow_query_token = false`, `cache = true` (claims, never decisions), `cache_capacity = 10000`, `max_token_length = 8192` |
//! | `[remote_keys]` | | `default_refresh` 5 min, `refresh_floor` 30 s, `refresh_ceiling` 1 h, `unknown_kid_refetch_interval` 30 s, `timeout` 5 s, `max_document_bytes` 1 MiB, https only (`dangerous_allow_http` for non-loopback hosts) |
//! | `[[routes]]` | none | requirements declared in the policy (`method`, `path`, `public` or `scopes` as OR of AND-sets, `zone`), merged with those registered in code |
//! | `[paths]` | reject | `normalize = false` (non-canonical paths are 400, not rewritten), `strip_trailing_slash = false` |
//! | `max_body_bytes` | 1 MiB | largest request body unless an operation says otherwise |
//! | `[[zones]]` | none (stage skipped) | trust zones: `routes`, `issuers`, `spiffe_trust_domains`, `spiffe_ids`, `require_mtls`, `require_bound_token`, `require_sender_constrained`, `source_cidrs`, `max_token_age`, `acr_values`, `amr_values` ([`zones`](crate::zones)) |
//! | `[[bindings]]` | none | a path parameter bound to a claim (ownership, against BOLA) |
//! | `[contract]` | off | the OpenAPI document (`file`), `strict = true` (closed request objects, unknown query parameters refused), `max_violations = 10`, `allow_undeclared_routes = false`, `responses = "off"` (`report`, `strip`, `block`) ([`contract`](crate::contract)) |
//! | `[limits]` | off | rate limits: `identity` 600/min per verified caller, `address` 300/min per client address, `[[limits.routes]]`, `[limits.lockout]` (on: 10 failures in 5 min, 30 s doubling to 1 h), `trusted_proxies` none, `ipv6_prefix = 64`, `capacity = 100000` keys, `store = "memory"` ([`limit`](crate::limit)) |
//! | `[observe]` | off | monitoring, detection and automatic response, runtime controls, the API inventory ([`observe`](crate::observe)); see the next section |
//! | `[[graphql]]` | none | GraphQL endpoints (feature `graphql`): `path`, `schema_file`, `[graphql.options]` (depth 10, aliases 30, root fields 10, cost 1000, document 16 KiB, introspection off, ...) |
//! | `span_level` | `"debug"` | the level of the `zt.request` span ([`telemetry`](crate::telemetry)) |
//! | `[request_id]` | fresh ids | `trust_incoming = false`: keep a valid incoming `x-request-id` only when set ([`correlation`](crate::correlation)) |
//! | `[fleet]` | off | the Redis store the replicas share (feature `redis`, [`fleet`](crate::fleet)) |
//! | `[dpop]` | on | `Authorization: DPoP` accepted (`enabled = true`), algorithms ES256, ES384, EdDSA, RS256, PS256, proofs 60 s old at most ([`dpop`](crate::dpop)) |
//! | `[resource]` | off | this API as an OAuth protected resource (RFC 9728 metadata, [`resource`](crate::resource)) |
//! | `[signals]` | off | a Shared Signals receiver: CAEP/RISC events become revocations and blocks ([`signals`](crate::signals)) |
//!
//! ```
//! let policy = zt::Policy::from_toml_str(r#"
//!     realm = "orders-api"
//!
//!     [[issuers]]
//!     issuer = "https://issuer.example"
//!     audiences = ["orders-api"]
//!     jwks_url = "https://issuer.example/.well-known/jwks.json"
//!
//!     [contract]
//!     file = "examples/orders.openapi.yaml"
//!
//!     [limits]
//!     identity = { rate = "120/m", burst = 40 }
//!
//!     [request_id]
//!     trust_incoming = true   # the gateway in front sets x-request-id
//! "#).unwrap();
//! assert!(policy.contract.as_ref().unwrap().strict, "strict by default");
//! assert_eq!(policy.max_body_bytes, 1024 * 1024);
//! ```
//!
//! `zt policy check zt.toml` (the `zt-cli` crate) runs the same start-up validation without
//! starting the service, and warns about quotas and zone routes that match no route.
//!
//! ## What each switch turns on
//!
//! - **`[[issuers]]`** turns on authentication: every non-public route needs a token of one
//!   of them. Without issuers only public routes and mutual TLS callers get through.
//! - **`[contract]`** turns on request validation (parameters, media types, bodies) and
//!   makes every operation of the document a route (its `security` is the requirement);
//!   a route registered in code but absent from the document is a start-up error unless
//!   `allow_undeclared_routes`. An operation with no handler answers the 404 problem.
//! - **`[limits]`** turns on *both* default quotas (per caller and per address) and the
//!   lockout, not only the routes you list: set `identity = "off"` or `address = "off"` to
//!   drop one. Behind a proxy set `trusted_proxies`, or every client shares the proxy's
//!   address quota.
//! - **`[observe]`** turns on more than metrics. Monitoring, the inventory and the KPIs
//!   come with **detection and automatic response**: each detection rule fires its
//!   [`Rule::default_action`](crate::observe::Rule::default_action) unless
//!   `[observe.response.actions]` says otherwise. Enumeration **blocks** the caller,
//!   credential stuffing and request-rate anomalies **throttle** it (to 10 % of its quota for
//!   15 min), bot signals **challenge** it (a block, without a challenge hook), new networks
//!   and unusual hours are logged, the rest alert. To watch first, run the whole policy in
//!   `mode = "report"`, or give the rules `log`/`alert` actions:
//!
//! ```
//! let policy = zt::Policy::from_toml_str(r#"
//!     [observe.response.actions]
//!     enumeration = "alert"
//!     credential_stuffing = "alert"
//!     request_rate = "alert"
//!     bot_user_agent = "log"
//!     bot_timing = "log"
//! "#).unwrap();
//! let actions = &policy.observe.unwrap().response.actions;
//! assert_eq!(actions[&zt::observe::Rule::Enumeration], zt::observe::Action::Alert);
//! ```
//!
//! - **`[fleet]`** shares quotas, blocks, revocations, lockouts and detection counters
//!   between replicas (feature `redis`).
//! - **`[dpop]`** is on by default: DPoP-bound tokens (`cnf.jkt`) need their proof, and are
//!   refused as bearer tokens whatever it says.
//!
//! ## Start-up: `Guard::warm_up`
//!
//! A guard fetches remote key sets in the background; the first requests wait for them.
//! Call [`Guard::warm_up`](crate::Guard::warm_up) before serving to fetch them (and, with a
//! `[fleet]`, load the shared controls) first; it returns the issuers that failed.
//! [`Guard::fetch_keys`](crate::Guard::fetch_keys) fails instead, for services that must not
//! start without their issuers.
//!
//! ```no_run
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = zt::Guard::from_policy_file("zt.toml")?;
//! for issuer in guard.warm_up().await {
//!     tracing::warn!(%issuer, "keys not fetched yet; requests wait for them");
//! }
//! # Ok(()) }
//! ```
//!
//! ## Metrics, SIEM and traces
//!
//! - **Prometheus** (features `prometheus`, with `[observe]`):
//!   `zt::observe::install_prometheus("127.0.0.1:9464".parse()?)` installs the recorder and
//!   serves `/metrics` (no authentication: keep it on loopback or a private interface).
//!   With another `metrics` recorder installed, the same KPIs go there.
//! - **ECS / SIEM**: security events are `tracing` events on target `zt::security` with
//!   Elastic Common Schema names. [`EcsJsonLayer`](crate::observe::EcsJsonLayer) writes them
//!   as ECS JSON lines (to a file, stdout, or a non-blocking queue) for Filebeat, Vector or
//!   a SIEM; the [`observe`](crate::observe) module lists every field and its mapping.
//! - **OTLP**: each request is one `zt.request` span (target `zt::request`, level
//!   `span_level`, DEBUG by default) with OpenTelemetry HTTP field names; export it with
//!   `tracing-opentelemetry`, filtered to `zt::request` at DEBUG so the console stays at
//!   INFO. The `otlp_orders` example (`cargo run --example otlp_orders --features otlp`) is
//!   the full wiring.
//! - **Correlation**: every response carries `x-request-id` (also in problem bodies, the span
//!   and every event); a valid W3C `traceparent`'s trace id is recorded as `trace_id` on the
//!   span and the decision events and as `trace.id` on security events
//!   ([`correlation`](crate::correlation)).
//!
//! ```
//! use tracing_subscriber::{filter::Targets, layer::SubscriberExt, Layer};
//! use zt::observe::EcsJsonLayer;
//!
//! let subscriber = tracing_subscriber::registry()
//!     // Denials and alerts on the console.
//!     .with(tracing_subscriber::fmt::layer().with_filter(tracing::level_filters::LevelFilter::INFO))
//!     // Security events as ECS JSON lines for the SIEM.
//!     .with(EcsJsonLayer::from_writer(std::io::stderr()))
//!     // Stands for `tracing_opentelemetry::layer()`: every `zt.request` span.
//!     .with(tracing_subscriber::fmt::layer().json().with_filter(
//!         Targets::new().with_default(tracing::Level::INFO).with_target("zt::request", tracing::Level::DEBUG),
//!     ));
//! # drop(subscriber);
//! ```
//!
//! ## Layer order: CORS, compression, tracing
//!
//! Layers that must see every request, denials included, go *outside* zt:
//! `zt::axum::GuardedApp::layer` on axum, `App::wrap` on actix-web
//! (middleware added with `wrap` runs before zt's). Layers that need the caller go inside
//! (`zt::axum::Router::layer`, after zt's decision).
//!
//! - **CORS outside**: a browser's preflight (`OPTIONS` without a token) must be answered by
//!   the CORS layer, and zt's 401/403 need the CORS headers or the browser hides them.
//! - **Compression outside**: zt's response checks (contract validation, withheld
//!   properties) read the body the handler wrote, not a compressed one.
//! - **Tracing outermost**: tower-http's `TraceLayer` then times the whole request, zt
//!   included, and its span is the parent of `zt.request`.
//!
//! ```
//! use tower_http::{compression::CompressionLayer, cors::CorsLayer, trace::TraceLayer};
//! use zt::{axum::{routing::get, Router}, scopes};
//!
//! # let guard = zt::Guard::new(zt::Policy::default()).unwrap();
//! let app = Router::new(guard)
//!     .route("/health", get(|| async { "ok" }), scopes::public())
//!     .into_axum()
//!     // Applied inside out: the last one sees the request first.
//!     .layer(CompressionLayer::new())
//!     .layer(CorsLayer::permissive())
//!     .layer(TraceLayer::new_for_http());
//! # drop(app);
//! ```
//!
//! On actix-web: `App::new().wrap(Compress::default()).wrap(cors).service(routes.service())`
//! (actix-cors), with `routes.service()` registered first or alone.
//!
//! ## Static files, WebSockets, server-sent events
//!
//! - **Static files**: nest the file service under a prefix with its own requirement:
//!   `nest_service("/static", ServeDir::new("assets"), scopes::public())` on axum,
//!   `nest_service("/static", || actix_files::Files::new("", "assets"), ...)` on actix-web.
//!   zt checks the canonical path before the file service sees it, so `..` and encoded
//!   spellings never escape the prefix.
//! - **WebSockets**: the upgrade request is an ordinary GET: route it with a requirement
//!   (axum's `WebSocketUpgrade`, `actix_ws::handle`); zt decides on the handshake, and the
//!   socket then belongs to the handler.
//! - **Server-sent events and other streams** pass through as streams: zt reads a response
//!   body only when the contract validates responses or withholds `x-zt-scopes`
//!   properties (a stream it cannot read is then never sent unfiltered).
//!
//! ```
//! use axum::extract::ws::WebSocketUpgrade;
//! use tower_http::services::ServeDir;
//! use zt::{axum::{routing::get, Router}, scopes};
//!
//! async fn chat(upgrade: WebSocketUpgrade) -> axum::response::Response {
//!     upgrade.on_upgrade(|_socket| async {})
//! }
//! # let guard = zt::Guard::new(zt::Policy::default()).unwrap();
//! let app = Router::new(guard)
//!     .route("/chat", get(chat), scopes::all(["chat"]))
//!     .nest_service("/static", ServeDir::new("assets"), scopes::public())
//!     .into_axum();
//! # drop(app);
//! ```
//!
//! ## Nesting
//!
//! Build each part as its own zt `Router` and `nest` it: the
//! requirements move with the routes (`/orders` + `/{id}` is `/orders/{id}` for zt too).
//! `merge` combines routers at the same level. There is no way to add an unguarded route
//! to the finished app: it has no `route`, `nest` or `fallback`. To serve the whole API
//! under a prefix, nest it in code (`Router::new(guard).nest("/api", api)`) rather than
//! wrapping the finished app in another router.
//!
//! ```
//! use zt::{axum::{routing::get, Router}, scopes};
//!
//! # let guard = zt::Guard::new(zt::Policy::default()).unwrap();
//! let orders = Router::new(guard.clone())
//!     .route("/", get(|| async { "list" }), scopes::all(["orders:read"]))
//!     .route("/{id}", get(|| async { "one" }), scopes::all(["orders:read"]));
//! let app = Router::new(guard).nest("/api/orders", orders).into_axum();
//! # drop(app);
//! ```
//!
//! ## Custom error bodies
//!
//! Denials are RFC 9457 `application/problem+json` documents by default. To answer in your
//! API's own error shape, give the guard a [`DenialRenderer`](crate::denial::DenialRenderer)
//! (any `Fn(&Denial, &str) -> Option<ErrorBody>`): both adapters answer through it. zt keeps
//! the status and the headers that carry meaning (`WWW-Authenticate`, `Allow`, `Retry-After`,
//! `RateLimit`, `x-request-id`); `None` keeps the problem document for that denial.
//!
//! ```
//! use std::sync::Arc;
//! use zt::{denial::ErrorBody, Denial, Guard, Policy};
//!
//! let renderer = |denial: &Denial, request_id: &str| {
//!     Some(ErrorBody::json(&serde_json::json!({
//!         "error": { "code": denial.reason.slug(), "message": denial.reason.detail(), "request": request_id }
//!     })))
//! };
//! let guard = Guard::builder(Policy::default()).denial_renderer(Arc::new(renderer)).build().unwrap();
//! # drop(guard);
//! ```
//!
//! ## Relative paths
//!
//! Relative paths in a policy (`jwks_file`, `pem_file`, `contract.file`, `schema_file`,
//! `[observe.geo]` databases) resolve from the **working directory** of the process, not
//! from the policy file's directory (`$ref`s inside an OpenAPI document resolve from the
//! document's own directory). Start the service, and run `zt policy check`, from the same
//! directory, or use absolute paths in deployments.
//!
//! ## Many replicas
//!
//! Each replica keeps its own quotas, blocks and detection state unless the policy has a
//! `[fleet]` (feature `redis`): then one Redis (a server, Sentinel or a Cluster) carries them
//! for all replicas. The crate's README section
//! [Many replicas](crate#many-replicas-one-posture-through-redis) has the configuration and
//! the failure behaviour.
//!
//! ## Migrating from jwt-authorizer
//!
//! jwt-authorizer validates a JWT in a layer and hands claims to handlers; authorization is
//! left to each handler. With zt the requirement sits next to the route, and the Guard also
//! checks audiences, algorithms pinned per key, the contract and the limits.
//!
//! Before (jwt-authorizer):
//!
//! ```text
//! let auth: Authorizer<Claims> = JwtAuthorizer::from_oidc("https://issuer.example")
//!     .validation(Validation::new().aud(&["orders-api"]))
//!     .build().await?;
//! let app = axum::Router::new()
//!     .route("/orders", get(list_orders))          // the scope check is in list_orders
//!     .layer(auth.into_layer());
//! async fn list_orders(JwtClaims(claims): JwtClaims<Claims>) -> Result<Json<Vec<Order>>, StatusCode> {
//!     if !claims.scope.split(' ').any(|s| s == "orders:read") { return Err(StatusCode::FORBIDDEN) }
//!     ...
//! }
//! ```
//!
//! After (zt):
//!
//! ```
//! use zt::{axum::{routing::get, Identity, Router}, policy::{IssuerConfig, Policy}, scopes, Guard};
//!
//! async fn list_orders(who: Identity) -> String {
//!     format!("orders of {}", who.subject().unwrap_or("?"))   // already authorized
//! }
//! let guard = Guard::new(Policy::builder()
//!     .issuer(IssuerConfig::new("https://issuer.example").audience("orders-api").oidc_discovery())
//!     .build()).unwrap();
//! let app = Router::new(guard)
//!     .route("/orders", get(list_orders), scopes::all(["orders:read"]))
//!     .into_axum();
//! # drop(app);
//! ```
//!
//! Claims you read from `JwtClaims<T>` come from `zt::axum::Claims<T>` (your own
//! `Deserialize` type) or `zt::axum::Identity` (subject, client id, scopes); on actix-web
//! from `zt::actix::Claims` and `zt::actix::Identity`.
//!
//! ## Migrating from tower_governor
//!
//! tower_governor limits by peer address (or a key extractor) in a layer, before anything
//! knows the caller. zt's `[limits]` key quotas on the verified caller (so a shared NAT is
//! not one caller), keep a per-address ceiling checked before any signature work, answer
//! 429 problems with `Retry-After` and `RateLimit` headers, and share the counts between
//! replicas with `[fleet]`.
//!
//! Before (tower_governor):
//!
//! ```text
//! let config = GovernorConfigBuilder::default().per_second(2).burst_size(5).finish().unwrap();
//! let app = axum::Router::new()
//!     .route("/orders", get(list_orders))
//!     .layer(GovernorLayer::new(config));
//! ```
//!
//! After (zt):
//!
//! ```
//! let policy = zt::Policy::from_toml_str(r#"
//!     [limits]
//!     identity = { rate = "120/m", burst = 5 }      # per verified caller
//!     address = { rate = "300/m" }                  # per client address, before verification
//!     trusted_proxies = ["10.0.0.0/8"]              # behind a load balancer
//!
//!     [[limits.routes]]                             # one route gets its own quota
//!     method = "POST"
//!     path = "/orders"
//!     rate = "10/m"
//! "#).unwrap();
//! assert_eq!(policy.limits.unwrap().routes[0].path, "/orders");
//! ```
