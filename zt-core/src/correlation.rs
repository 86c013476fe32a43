//! Correlating a request with the systems around it: its request id (`x-request-id`) and
//! its W3C trace context (`traceparent`).
//!
//! Every response carries `x-request-id`. By default zt makes a fresh id for every request:
//! an id a client chose must not be able to collide with, or impersonate, another
//! request's entry in the logs. Behind a gateway that already assigns request ids, turn
//! `trust_incoming` on and zt keeps the gateway's id (in the response header, the problem
//! body, the `zt.request` span and every event), provided it is at most
//! [`MAX_REQUEST_ID_LEN`] bytes of `A-Z a-z 0-9 - _ . :`; anything else (empty, too long,
//! spaces, quotes, control characters, a repeated header) gets a fresh id instead.
//!
//! ```
//! let policy = zt_core::Policy::from_toml_str(r#"
//!     [request_id]
//!     trust_incoming = true    # the gateway in front sets x-request-id
//! "#).unwrap();
//! assert!(policy.request_id.trust_incoming);
//! ```
//!
//! A valid W3C `traceparent` header (Trace Context Level 1: version, 32-hex trace id,
//! 16-hex parent id, flags; the all-zero ids and version `ff` are invalid) is always
//! honoured for correlation: its trace id is recorded as `trace_id` on the `zt.request` span,
//! on the `zt::decision` events and as `trace.id` on the `zt::security` events. It changes
//! no decision. An invalid one is ignored.
//!
//! ```
//! use zt_core::correlation::parse_traceparent;
//!
//! let trace = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
//! assert_eq!(parse_traceparent(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
//! ```

use serde::{Deserialize, Serialize};

use crate::request::RequestView;
use crate::telemetry::RequestId;

/// The longest incoming request id kept (bytes); a longer one is replaced.
///
/// 40 bytes hold a UUID (36), a ULID (26), 32 hex digits, or an AWS trace header value
/// (40), and keep [`RequestId`] small enough to copy freely.
pub const MAX_REQUEST_ID_LEN: usize = 40;

/// Request ids (`[request_id]` in the policy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIdConfig {
    /// Keep a valid incoming `x-request-id` instead of making a fresh one (default false:
    /// only behind a gateway that sets or overwrites the header, never when clients reach
    /// the service directly).
    #[serde(default)]
    pub trust_incoming: bool,
}

/// Whether `id` is an acceptable incoming request id: 1 to [`MAX_REQUEST_ID_LEN`] bytes of
/// ASCII letters, digits and `-_.:` (a UUID, ULID, or a gateway's hex id all are).
///
/// ```
/// use zt_core::correlation::valid_request_id;
/// assert!(valid_request_id(b"3f2b9c1e-8d4a-4f7e-9b1a-2c3d4e5f6a7b"));
/// assert!(!valid_request_id(b"id with spaces"));
/// assert!(!valid_request_id(b""));
/// ```
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The trace id of a W3C `traceparent` value (lower-case hex, 32 digits), or `None` when the
/// value is not a valid one. Versions above `00` are accepted when their first four fields
/// have the version-00 shape, as the specification asks of a version-00 parser.
pub fn parse_traceparent(value: &[u8]) -> Option<String> {
    let trace = trace_id_of(value)?;
    Some(String::from_utf8_lossy(trace).into_owned())
}

/// The trace id's bytes inside `value`, when `value` is a valid `traceparent`.
pub(crate) fn trace_id_of(value: &[u8]) -> Option<&[u8]> {
    // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 bytes.
    if value.len() < 55 {
        return None;
    }
    let hex = |part: &[u8]| part.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let zero = |part: &[u8]| part.iter().all(|b| *b == b'0');
    let (version, trace, parent, flags) = (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    let shaped = dashes && hex(version) && hex(trace) && hex(parent) && hex(flags);
    // Version 00 is exactly 55 bytes; a later version may append fields after a dash.
    let length_ok = if version == b"00" { value.len() == 55 } else { value.len() == 55 || value[55] == b'-' };
    if !shaped || version == b"ff" || !length_ok || zero(trace) || zero(parent) {
        return None;
    }
    Some(trace)
}

/// The id of a new request: the incoming `x-request-id` when the policy trusts it and it is
/// valid (exactly one header), else a fresh one; with the `traceparent`'s trace id.
pub(crate) fn request_id(view: &RequestView<'_>, config: &RequestIdConfig) -> RequestId {
    let mut id = None;
    if config.trust_incoming
        && view.headers.nth("x-request-id", 1).is_none()
        && let Some(incoming) = view.headers.nth("x-request-id", 0)
        && valid_request_id(incoming)
    {
        id = RequestId::from_validated(incoming);
    }
    let mut id = id.unwrap_or_else(RequestId::generate);
    // A repeated traceparent is invalid (the specification allows one), so it is ignored.
    if view.headers.nth("traceparent", 1).is_none()
        && let Some(trace) = view.headers.nth("traceparent", 0).and_then(trace_id_of)
    {
        id.set_trace_id(trace);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_shapes() {
        let ok = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id_of(ok), Some(&ok[3..35]));
        // Upper-case hex, wrong separators, short, long for version 00, version ff.
        assert_eq!(trace_id_of(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of(b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"), None);
        assert_eq!(trace_id_of(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"), None);
        assert_eq!(trace_id_of(b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of(b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), None);
        // A later version with an extra field.
        let v1 = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abcd";
        assert_eq!(trace_id_of(v1), Some(&v1[3..35]));
        assert_eq!(trace_id_of(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01abcd"), None);
    }

    #[test]
    fn request_id_charset_and_bound() {
        assert!(valid_request_id(&[b'a'; MAX_REQUEST_ID_LEN]));
        assert!(!valid_request_id(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
        for bad in [&b"a\"b"[..], b"a\r\nb", b"a b", b"a/b", b"\xc3\xa9"] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }
}
