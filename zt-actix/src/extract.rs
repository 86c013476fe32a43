//! Extractors: the verified caller, as handlers see it.

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use zt_core::{Denial, Reason};

use crate::middleware::{RequestContext, denial_response};

/// The verified caller. Rejects with 401 when the request carries no verified identity
/// (use `Option<Identity>` on public routes).
///
/// ```
/// async fn me(who: zt_actix::Identity) -> String {
///     who.subject().unwrap_or("?").to_string()
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

/// The verified token's claims, deserialized into your type.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct TenantClaims { tenant: String }
/// async fn handler(zt_actix::Claims(c): zt_actix::Claims<TenantClaims>) -> String { c.tenant }
/// ```
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

/// Why an extractor rejected the request; renders as the same problem+json as a denial.
#[derive(Debug)]
pub struct ZtRejection {
    reason: Option<Reason>,
    context: Option<RequestContext>,
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext").field("request_id", &self.request_id).finish_non_exhaustive()
    }
}

impl std::fmt::Display for ZtRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            Some(reason) => f.write_str(reason.title()),
            None => f.write_str("zt: the ZeroTrust middleware is not installed on this route"),
        }
    }
}

impl ResponseError for ZtRejection {
    fn status_code(&self) -> actix_web::http::StatusCode {
        let status = self.reason.map_or(500, Reason::status);
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match (&self.context, self.reason) {
            (Some(ctx), Some(reason)) => denial_response(&ctx.guard, &Denial::new(reason), &ctx.request_id),
            // No middleware in front of this handler: a wiring bug, never a reason to let
            // the request through.
            _ => HttpResponse::InternalServerError().body(self.to_string()),
        }
    }
}

fn lookup(req: &HttpRequest) -> Result<Option<Identity>, ZtRejection> {
    let extensions = req.extensions();
    if extensions.get::<RequestContext>().is_none() {
        return Err(ZtRejection { reason: None, context: None });
    }
    Ok(extensions.get::<Identity>().cloned())
}

fn rejection(req: &HttpRequest, reason: Reason) -> ZtRejection {
    ZtRejection { reason: Some(reason), context: req.extensions().get::<RequestContext>().cloned() }
}

impl FromRequest for Identity {
    type Error = ZtRejection;
    type Future = Ready<Result<Self, ZtRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(lookup(req).and_then(|found| found.ok_or_else(|| rejection(req, Reason::MissingCredentials))))
    }
}

impl<T: DeserializeOwned> FromRequest for Claims<T> {
    type Error = ZtRejection;
    type Future = Ready<Result<Self, ZtRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            lookup(req)
                .and_then(|found| found.ok_or_else(|| rejection(req, Reason::MissingCredentials)))
                .and_then(|identity| {
                    identity.claims::<T>().map(Claims).map_err(|_| rejection(req, Reason::InvalidClaims))
                }),
        )
    }
}
