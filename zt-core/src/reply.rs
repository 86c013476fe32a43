//! [`Reply`]: every answer zt writes itself (denials, controls, token endpoints), in one
//! framework-neutral shape for the adapters to translate.

/// A framework-neutral HTTP answer: a denial, a controls-API reply, a token endpoint's
/// answer.
///
/// The parts are read with accessors and taken with [`Reply::into_parts`], not public
/// fields: an adapter that destructures the parts stops compiling when a part is added,
/// instead of silently sending an answer without it.
///
/// ```
/// use zt_core::{Denial, Reason};
///
/// let (status, headers, body) = Denial::new(Reason::TokenExpired).render("zt", "req-1").into_parts();
/// assert_eq!(status, 401);
/// assert!(headers.iter().any(|(name, _)| *name == "www-authenticate"));
/// assert!(body.contains("urn:zt:problem:token-expired"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

impl Reply {
    /// HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Response headers (names lower-case).
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The body (JSON or `application/problem+json`; empty for 201 and 204 replies).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Status, headers and body, for an adapter to translate all three.
    pub fn into_parts(self) -> (u16, Vec<(&'static str, String)>, String) {
        (self.status, self.headers, self.body)
    }
}
