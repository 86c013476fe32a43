//! # zt-core
//!
//! The framework-neutral decision engine of zt: every security decision is made here, on a
//! borrowed [`RequestView`]; the `zt-tower` and `zt-actix` adapters only translate.
//!
//! A request passes these stages, in one fixed order, over facts computed once:
//! route (canonical path, [`RouteTable`] match: unknown routes and methods are denied),
//! credential (certificate, client address, the presented token), address abuse (blocks,
//! lockout, the per-address ceiling), authenticate (the token verified against the
//! issuer's pinned keys, [`keys`]; verified tokens are cached), controls (revocations and
//! blocks), authorize (the route's [`scopes::Requirement`], on every call), zones, quota,
//! and contract (parameters and media type before the body). A stage that waits for I/O
//! (keys, a shared store) resumes where it waited.
//!
//! The request's lifecycle is core's too: [`Guard::check`] gives a [`Decision`];
//! [`Admitted::body`] checks a body, [`Admitted::forward`] hands the [`Admission`] to the
//! handler, and [`Responding::head`] finishes the response (status recorded, headers
//! added, observer told, exactly once). The adapters only convert types.
//!
//! Denials carry a typed [`Reason`] that renders as RFC 6750 challenges and RFC 9457
//! problem bodies ([`denial`]); each request is one `tracing` span ([`telemetry`]).
//!
//! ```
//! use zt_core::{policy::{IssuerConfig, Policy}, request::HeaderList, scopes, Check, Decision,
//!               Guard, Reason, RequestView, RouteTable};
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
//! let view = RequestView { method: "GET", path: "/orders", query: None, headers: &headers, peer_addr: None, peer_certificates: None, body: zt_core::BodyHint::Empty };
//! let Check::Ready(decision) = guard.check(&view) else { unreachable!() };
//! match decision {
//!     Decision::Rejected(rejected) => {
//!         assert_eq!(rejected.reason(), Reason::MissingCredentials);
//!         let response = rejected.into_response(); // status, headers, problem+json body
//!         assert_eq!(response.status(), 401);
//!     }
//!     Decision::Admitted(_) => unreachable!("no token, no access"),
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
pub mod controls_api;
pub mod correlation;
pub mod denial;
pub mod dpop;
mod error;
pub mod fleet;
pub mod graphql;
mod guard;
pub mod identity;
pub mod introspect;
pub mod issuer;
mod json;
pub mod keys;
pub mod limit;
mod mode;
pub mod observe;
pub mod policy;
mod problem;
mod registry;
mod reply;
pub mod request;
pub mod resource;
pub mod response;
mod routes;
pub mod scopes;
pub mod signals;
pub mod telemetry;
#[cfg(feature = "tls")]
pub mod tls;
mod token;
pub mod zones;

pub use cert::{CertificateIdentity, SpiffeId};
pub use denial::{Denial, Reason};
pub use error::PolicyError;
pub use guard::{
    Admission, Admitted, BodyError, Check, Decision, Guard, GuardBuilder, Pending, ReadResponse, Rejected,
    Responding, ResponseBody, ResponseHeaders, ResponsePlan, Resume,
};
pub use identity::{AuthMethod, Identity};
pub use mode::Mode;
pub use policy::Policy;
pub use registry::{BuiltinEndpoint, BuiltinRequest, RouteRegistry, nested_path};
pub use reply::Reply;
pub use request::{BodyHint, HeaderLookup, HeaderValue, PeerCertificates, RequestView};
pub use routes::{ANY_METHODS, RouteTable};
pub use scopes::Requirement;
pub use telemetry::{RequestId, TraceId};
