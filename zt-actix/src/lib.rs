//! # zt-actix
//!
//! zt for actix-web: the [`ZeroTrust`] middleware puts every request through a
//! [`Guard`](zt_core::Guard); a [`Router`] keeps each route's requirement next to its
//! handler; [`Identity`] and [`Claims`] are extractors. Behaviour is identical to
//! `zt-tower`: same statuses, headers and problem bodies.
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use zt_actix::{get, Identity, Router};
//! use zt_core::{policy::{IssuerConfig, Policy}, scopes, Guard};
//!
//! async fn list_orders(who: Identity) -> String {
//!     format!("orders of {}", who.subject().unwrap_or("?"))
//! }
//! async fn health() -> &'static str { "ok" }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Guard::new(Policy::builder()
//!     .issuer(IssuerConfig::new("https://issuer.example").audience("orders-api")
//!         .jwks_url("https://issuer.example/.well-known/jwks.json"))
//!     .build())?;
//! let routes = Router::new(guard)
//!     .route("/orders", get(list_orders), scopes::all(["orders:read"]))
//!     .route("/health", get(health), scopes::public())
//!     .finish()?;
//! // One call installs the middleware and every route: nothing can be served without zt.
//! HttpServer::new(move || App::new().service(routes.service()))
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod extract;
pub mod issuer;
mod middleware;
mod router;
pub mod tls;

pub use extract::{Claims, Identity, ZtRejection};
pub use middleware::{ZeroTrust, ZeroTrustMiddleware};
pub use router::{MethodRoute, Router, Routes, any, delete, get, head, options, patch, post, put};
pub use zt_core;
pub use zt_core::ANY_METHODS;
