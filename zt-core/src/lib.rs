//! # zt-core
//!
//! The framework-neutral decision engine of zt: every security decision is made here, on a
//! borrowed [`RequestView`]; the `zt-tower` and `zt-actix` adapters only translate.
//!
//! A request passes these stages, each its own module:
//! 1. route: the canonical path is matched against the [`RouteTable`]; unknown routes and
//!    methods are denied (default deny).
//! 2. authenticate: a bearer JWT is read from its configured source and verified against
//!    the issuer's pinned keys ([`keys`], [`token`](crate::Guard)); verified tokens are cached.
//! 3. authorize: the route's [`scopes::Requirement`] is evaluated on every call.
//!
//! Denials carry a typed [`Reason`] that renders as RFC 6750 challenges and RFC 9457
//! problem bodies ([`denial`]); each request is one `tracing` span ([`telemetry`]).
//!
//! ```
//! use zt_core::{policy::{IssuerConfig, Policy}, request::HeaderList, scopes, Check, Guard,
//!               Outcome, Reason, RequestView, RouteTable};
//!
//! let policy = Policy::builder()
//!     .issuer(IssuerConfig::new("https://issuer.example").audience("orders-api")
//!         .hmac_secret("HS256", "a-demo-secret-that-is-long-enough-32b", None))
//!     .build();
//! let mut routes = RouteTable::new();
//! routes.add("GET", "/orders", scopes::all(["orders:read"])).unwrap();
//! let guard = Guard::new(policy).unwrap().with_routes(&routes).unwrap();
//!
//! let headers = HeaderList::default();
//! let view = RequestView { method: "GET", path: "/orders", query: None, headers: &headers, peer_addr: None, peer_certificates: None };
//! let Check::Ready(verdict) = guard.check(&view) else { unreachable!() };
//! match verdict.outcome {
//!     Outcome::Deny(denial) => assert_eq!(denial.reason, Reason::MissingCredentials),
//!     Outcome::Allow(_) => unreachable!("no token, no access"),
//! }
//! ```
#![deny(missing_docs)]

// No compile-time check for the crypto provider: with neither or both of `aws-lc-rs` and
// `rust-crypto`, an application may still install one through jsonwebtoken's
// `CryptoProvider::install_default`. `Guard::new` checks and fails with
// `PolicyError::NoCryptoProvider`, so a misbuilt binary fails at start-up, never on a request.

pub mod canonical;
pub mod cert;
pub mod contract;
pub mod denial;
mod error;
pub mod graphql;
mod guard;
pub mod identity;
pub mod issuer;
mod json;
pub mod keys;
pub mod limit;
mod mode;
pub mod observe;
mod observed;
pub mod policy;
mod problem;
pub mod request;
pub mod response;
mod routes;
pub mod scopes;
pub mod telemetry;
#[cfg(feature = "tls")]
pub mod tls;
mod token;
pub mod zones;

pub use cert::{CertificateIdentity, SpiffeId};
pub use denial::{Denial, DenialResponse, Reason};
pub use error::PolicyError;
pub use guard::{BodyCheck, BodyError, Check, Guard, GuardBuilder, Outcome, PendingCheck, Resume, Verdict};
pub use identity::{AuthMethod, Identity};
pub use mode::Mode;
pub use observed::{ObservationContext, Observed};
pub use policy::Policy;
pub use request::{CheckedRoute, HeaderLookup, HeaderValue, PeerCertificates, RequestView};
pub use routes::RouteTable;
pub use scopes::Requirement;
pub use telemetry::RequestId;
