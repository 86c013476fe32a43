//! # zt-tower
//!
//! zt for Tower and axum: a [`ZeroTrustLayer`] that puts every request through a
//! [`Guard`](zt_core::Guard), a [`Router`] that keeps each route's requirement next to its
//! handler and finishes into a [`GuardedApp`], and the [`Identity`] and [`Claims`] extractors.
//!
//! ```no_run
//! use axum::Json;
//! use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
//! use zt_tower::{routing::get, Identity, Router};
//!
//! async fn list_orders(who: Identity) -> Json<Vec<String>> {
//!     Json(vec![format!("orders of {}", who.subject().unwrap_or("?"))])
//! }
//! async fn health() -> &'static str { "ok" }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Guard::new(Policy::builder()
//!     .issuer(IssuerConfig::new("https://issuer.example").audience("orders-api")
//!         .jwks_url("https://issuer.example/.well-known/jwks.json"))
//!     .build())?;
//! let app = Router::new(guard)
//!     .route("/orders", get(list_orders), scopes::all(["orders:read"]))
//!     .route("/health", get(health), scopes::public())
//!     .into_axum();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! Default deny: the layer only forwards requests whose `(method, route)` was registered,
//! and the [`GuardedApp`] that [`Router::into_axum`] returns takes no more routes (adding one
//! is a compile error), so there is no way to put a route behind zt's back.
#![deny(missing_docs)]

mod extract;
pub mod issuer;
mod layer;
mod router;
pub mod tls;

pub use extract::{Claims, Identity, ZtRejection};
pub use layer::{ResponseFuture, ZeroTrustLayer, ZeroTrustService};
pub use router::{ANY_METHODS, BuiltinHandler, GuardedApp, MethodRoute, Router, routing};
pub use zt_core;
