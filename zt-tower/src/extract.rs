//! Extractors: the verified caller, as handlers see it.

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;
use zt_core::{Admission, Reason};

use crate::layer::reply;

/// The verified caller. Rejects with 401 when the request carries no verified identity
/// (use `Option<Identity>` on public routes).
///
/// ```
/// use zt_tower::Identity;
/// async fn me(who: Identity) -> String {
///     format!("{} via {:?}", who.subject().unwrap_or("?"), who.client_id())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Identity(pub zt_core::Identity);

impl Deref for Identity {
    type Target = zt_core::Identity;
    fn deref(&self) -> &zt_core::Identity {
        &self.0
    }
}

/// The verified token's claims, deserialized into your type. Rejects with 401 when there is
/// no identity or the claims do not have the expected shape.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct TenantClaims { tenant: String }
/// async fn handler(zt_tower::Claims(c): zt_tower::Claims<TenantClaims>) -> String { c.tenant }
/// ```
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

/// Why an extractor rejected the request; renders as the same problem+json as a denial.
#[derive(Debug)]
pub struct ZtRejection {
    reason: Option<Reason>,
    admission: Option<Admission>,
}

impl IntoResponse for ZtRejection {
    fn into_response(self) -> Response {
        match (self.admission, self.reason) {
            (Some(admission), Some(reason)) => reply(admission.reject(reason)),
            // No zt layer in front of this handler: a wiring bug, never a reason to let the
            // request through.
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "zt: the ZeroTrustLayer is not installed on this route")
                .into_response(),
        }
    }
}

fn rejection(admission: &Admission, reason: Reason) -> ZtRejection {
    ZtRejection { reason: Some(reason), admission: Some(admission.clone()) }
}

/// The Guard's admission of this request; its absence is a wiring bug (no zt in front).
fn admission(parts: &Parts) -> Result<&Admission, ZtRejection> {
    parts.extensions.get::<Admission>().ok_or(ZtRejection { reason: None, admission: None })
}

fn identity(parts: &Parts) -> Result<Option<Identity>, ZtRejection> {
    Ok(admission(parts)?.identity().cloned().map(Identity))
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ZtRejection;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ZtRejection> {
        let admission = admission(parts)?;
        admission
            .identity()
            .cloned()
            .map(Identity)
            .ok_or_else(|| rejection(admission, Reason::MissingCredentials))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = ZtRejection;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, ZtRejection> {
        identity(parts)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = ZtRejection;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ZtRejection> {
        let admission = admission(parts)?;
        let identity =
            admission.identity().ok_or_else(|| rejection(admission, Reason::MissingCredentials))?;
        identity.claims::<T>().map(Claims).map_err(|_| rejection(admission, Reason::InvalidClaims))
    }
}
