//! The framework-neutral view of an incoming request.
//!
//! actix-web 4 is built on `http` 0.2 and Tower/axum on `http` 1.x, so the core never sees
//! either framework's request type. Adapters build a [`RequestView`] that borrows from their
//! own request: no copies, no allocation.

use std::net::SocketAddr;

/// What a request carries for one header name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// The header was not sent.
    Absent,
    /// The header was sent exactly once, with this value.
    One(&'a [u8]),
    /// The header was sent more than once.
    Repeated,
}

/// Read access to a request's headers, implemented by each adapter for its header map.
///
/// Header names passed in are always lower-case ASCII.
pub trait HeaderLookup: Sync {
    /// The `index`-th value (0-based, in the order received) of header `name`.
    fn nth(&self, name: &str, index: usize) -> Option<&[u8]>;

    /// How many header lines the request carried, when the lookup knows it cheaply (the
    /// adapters' header maps do). Monitoring only; `None` by default.
    fn line_count(&self) -> Option<usize> {
        None
    }

    /// The path the client sent (without the query), when a framework routed the request
    /// through a prefix before zt saw it and [`RequestView::path`] is the path below that
    /// prefix (axum's `nest_service("/api", app)` strips `/api`). The span's `url.path`
    /// records it; the Guard still matches [`RequestView::path`], as the app's routes are
    /// written. `None` by default (the path is the one sent).
    ///
    /// It lives on the header lookup, the one part of the view an adapter defines, so that
    /// adding it changed no `RequestView` literal.
    fn sent_path(&self) -> Option<&str> {
        None
    }

    /// Returns the header's value when it was sent once, or says it was absent or repeated.
    fn get_one(&self, name: &str) -> HeaderValue<'_> {
        match (self.nth(name, 0), self.nth(name, 1)) {
            (None, _) => HeaderValue::Absent,
            (Some(v), None) => HeaderValue::One(v),
            (Some(_), Some(_)) => HeaderValue::Repeated,
        }
    }

    /// Whether any of `names` (lower case) was sent. The Guard asks this on every request
    /// for headers that are almost never there (the method overrides); a lookup that can
    /// scan its few names faster than it can look each one up (hashing a name each time)
    /// overrides it.
    ///
    /// ```
    /// use zt_core::request::{HeaderList, HeaderLookup};
    ///
    /// let headers = HeaderList::default().with("x-http-method", "DELETE");
    /// assert!(headers.has_any(&["x-method-override", "x-http-method"]));
    /// assert!(!headers.has_any(&["x-method-override"]));
    /// ```
    fn has_any(&self, names: &[&str]) -> bool {
        names.iter().any(|name| self.nth(name, 0).is_some())
    }
}

/// The names the Guard looks up on most requests, as `http` header names built at compile
/// time: a lookup by `&str` parses the name first (validation and lower-casing), which
/// profiling showed costs more than the map lookup itself.
#[cfg(feature = "http")]
fn known_name(name: &str) -> Option<http::HeaderName> {
    use http::header;
    const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
    const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
    const X_HTTP_METHOD_OVERRIDE: http::HeaderName = http::HeaderName::from_static("x-http-method-override");
    const X_METHOD_OVERRIDE: http::HeaderName = http::HeaderName::from_static("x-method-override");
    const X_HTTP_METHOD: http::HeaderName = http::HeaderName::from_static("x-http-method");
    Some(match name {
        "authorization" => header::AUTHORIZATION,
        "content-type" => header::CONTENT_TYPE,
        "content-length" => header::CONTENT_LENGTH,
        "transfer-encoding" => header::TRANSFER_ENCODING,
        "accept" => header::ACCEPT,
        "accept-encoding" => header::ACCEPT_ENCODING,
        "accept-language" => header::ACCEPT_LANGUAGE,
        "user-agent" => header::USER_AGENT,
        "cookie" => header::COOKIE,
        "forwarded" => header::FORWARDED,
        "x-forwarded-for" => X_FORWARDED_FOR,
        "x-request-id" => X_REQUEST_ID,
        "x-http-method-override" => X_HTTP_METHOD_OVERRIDE,
        "x-method-override" => X_METHOD_OVERRIDE,
        "x-http-method" => X_HTTP_METHOD,
        _ => return None,
    })
}

#[cfg(feature = "http")]
impl HeaderLookup for http::HeaderMap {
    fn nth(&self, name: &str, index: usize) -> Option<&[u8]> {
        let mut values = match known_name(name) {
            Some(known) => self.get_all(known).iter(),
            None => self.get_all(name).iter(),
        };
        values.nth(index).map(http::HeaderValue::as_bytes)
    }

    fn line_count(&self) -> Option<usize> {
        Some(self.len())
    }

    // A request's usual dozen names compared by length and bytes cost less than hashing
    // each wanted name for a lookup (about 220 instructions each in the axum demo, issue
    // 17); a request with many header names is looked up as before.
    fn has_any(&self, names: &[&str]) -> bool {
        if self.keys_len() <= 16 {
            self.keys().any(|key| names.contains(&key.as_str()))
        } else {
            names.iter().any(|name| self.nth(name, 0).is_some())
        }
    }

    // One map lookup instead of two (`nth(0)` and `nth(1)`).
    fn get_one(&self, name: &str) -> HeaderValue<'_> {
        let mut values = match known_name(name) {
            Some(known) => self.get_all(known).iter(),
            None => self.get_all(name).iter(),
        };
        match (values.next(), values.next()) {
            (None, _) => HeaderValue::Absent,
            (Some(v), None) => HeaderValue::One(v.as_bytes()),
            (Some(_), Some(_)) => HeaderValue::Repeated,
        }
    }
}

/// A borrowed, framework-neutral view of the parts of a request the Guard decides on.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    /// The request method as sent (e.g. `GET`).
    pub method: &'a str,
    /// The raw request path, without the query string, exactly as received.
    pub path: &'a str,
    /// The raw query string without the leading `?`, if any.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a dyn HeaderLookup,
    /// The TCP peer address, if known.
    pub peer_addr: Option<SocketAddr>,
    /// The client certificate chain the TLS layer verified (mutual TLS), if any.
    pub peer_certificates: Option<&'a PeerCertificates>,
    /// What the adapter knows of the body it holds. `Content-Length` and
    /// `Transfer-Encoding` decide when the request has them; without either (HTTP/2 and
    /// HTTP/3 need neither), this does: a body the adapter cannot prove empty is read and
    /// checked, never forwarded unseen.
    pub body: BodyHint,
}

/// What an adapter knows of a request's body before reading it (from its framework's end
/// of stream and size hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyHint {
    /// There is no body (the stream has ended, e.g. an HTTP/1.1 request without framing
    /// headers, or HTTP/2 headers with `END_STREAM`).
    Empty,
    /// Exactly this many bytes.
    Exact(u64),
    /// Not known until read.
    Unknown,
}

/// The verified client certificate chain of a mutual-TLS connection, leaf first, DER.
///
/// The TLS glue of the adapters puts this into each request of a connection whose client
/// presented a certificate that the configured CA bundle verified. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificates(pub std::sync::Arc<Vec<Vec<u8>>>);

impl PeerCertificates {
    /// The chain from DER certificates, leaf first.
    pub fn new(chain: Vec<Vec<u8>>) -> Self {
        PeerCertificates(std::sync::Arc::new(chain))
    }

    /// The leaf (client) certificate, DER.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.0.first().map(Vec::as_slice)
    }
}

/// A header map for tests, examples and benchmarks: a list of `(name, value)` pairs.
#[derive(Debug, Clone, Default)]
pub struct HeaderList(pub Vec<(String, Vec<u8>)>);

impl HeaderList {
    /// Adds a header (name is lower-cased).
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.0.push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }
}

impl HeaderLookup for HeaderList {
    fn nth(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.0.iter().filter(|(n, _)| n == name).nth(index).map(|(_, v)| v.as_slice())
    }

    fn line_count(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The route template the Guard matched and checked (e.g. `/orders/{id}`). The adapters put
/// it into request extensions, so handlers and tests can see which route was authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRoute(pub std::sync::Arc<str>);

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::HeaderLookup;

    /// The scan of a small map and the lookups of a large one give the same answers.
    #[test]
    fn header_map_has_any_scans_small_maps_and_looks_up_large_ones() {
        let wanted = ["x-http-method-override", "x-method-override", "x-http-method"];
        for extra in [0, 3, 16, 40] {
            let mut map = http::HeaderMap::new();
            for i in 0..extra {
                map.insert(
                    http::HeaderName::try_from(format!("x-filler-{i}")).unwrap(),
                    "1".parse().unwrap(),
                );
            }
            map.insert(http::header::HOST, "example".parse().unwrap());
            assert!(!map.has_any(&wanted), "{extra} other headers");
            map.append("x-method-override", "DELETE".parse().unwrap());
            assert!(map.has_any(&wanted), "{extra} other headers");
            assert!(!map.has_any(&["x-http-method"]), "{extra} other headers");
        }
    }
}
