//! Extractors: the verified caller, as handlers see it.

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use zt_core::{Admission, Reason};

use crate::middleware::reply;

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
    admission: Option<Admission>,
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
        match (&self.admission, self.reason) {
            (Some(admission), Some(reason)) => reply(admission.reject(reason)),
            // No middleware in front of this handler: a wiring bug, never a reason to let
            // the request through.
            _ => HttpResponse::InternalServerError().body(self.to_string()),
        }
    }
}

/// The caller, or why not: no identity (401), or no zt in front of the route (a wiring bug).
fn lookup(req: &HttpRequest) -> Result<Identity, ZtRejection> {
    let extensions = req.extensions();
    let Some(admission) = extensions.get::<Admission>() else {
        return Err(ZtRejection { reason: None, admission: None });
    };
    admission
        .identity()
        .cloned()
        .map(Identity)
        .ok_or_else(|| rejection(admission, Reason::MissingCredentials))
}

fn rejection(admission: &Admission, reason: Reason) -> ZtRejection {
    ZtRejection { reason: Some(reason), admission: Some(admission.clone()) }
}

impl FromRequest for Identity {
    type Error = ZtRejection;
    type Future = Ready<Result<Self, ZtRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(lookup(req))
    }
}

impl<T: DeserializeOwned> FromRequest for Claims<T> {
    type Error = ZtRejection;
    type Future = Ready<Result<Self, ZtRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(lookup(req).and_then(|identity| {
            identity.claims::<T>().map(Claims).map_err(|_| {
                let extensions = req.extensions();
                ZtRejection {
                    reason: Some(Reason::InvalidClaims),
                    admission: extensions.get::<Admission>().cloned(),
                }
            })
        }))
    }
}
