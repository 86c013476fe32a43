//! Extractors: the verified caller, as handlers see it.

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;
use zt_core::{Denial, Reason};

use crate::layer::{RequestContext, denial_response};

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
    context: Option<RequestContext>,
}

impl IntoResponse for ZtRejection {
    fn into_response(self) -> Response {
        match (self.context, self.reason) {
            (Some(ctx), Some(reason)) => denial_response(&ctx.guard, &Denial::new(reason), &ctx.request_id),
            // No zt layer in front of this handler: a wiring bug, never a reason to let the
            // request through.
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "zt: the ZeroTrustLayer is not installed on this route")
                .into_response(),
        }
    }
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext").field("request_id", &self.request_id).finish_non_exhaustive()
    }
}

fn rejection(parts: &Parts, reason: Reason) -> ZtRejection {
    ZtRejection { reason: Some(reason), context: parts.extensions.get::<RequestContext>().cloned() }
}

fn require_layer(parts: &Parts) -> Result<(), ZtRejection> {
    if parts.extensions.get::<RequestContext>().is_some() {
        Ok(())
    } else {
        Err(ZtRejection { reason: None, context: None })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ZtRejection;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ZtRejection> {
        require_layer(parts)?;
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| rejection(parts, Reason::MissingCredentials))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = ZtRejection;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, ZtRejection> {
        require_layer(parts)?;
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = ZtRejection;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ZtRejection> {
        require_layer(parts)?;
        let identity =
            parts.extensions.get::<Identity>().ok_or_else(|| rejection(parts, Reason::MissingCredentials))?;
        identity.claims::<T>().map(Claims).map_err(|_| rejection(parts, Reason::InvalidClaims))
    }
}
