//! One canonical form for request paths, shared by routing and the adapters.
//!
//! The router and the application must never read a path differently (CVE classes: path
//! confusion, `..` smuggling, `%2f` splitting, overlong UTF-8, matrix parameters). zt
//! therefore accepts exactly one spelling of every path and rejects the rest (400):
//!
//! - percent-escapes must be well formed and are decoded exactly once;
//! - an escape may not encode `/`, `\`, `%` (double encoding), `.`, `;`, NUL or any control
//!   character, nor an unreserved character (`A-Z a-z 0-9 - . _ ~`, which must be sent as
//!   is); escaped bytes must form valid UTF-8 (this rejects overlong encodings);
//! - no raw `\`, `;`, control characters, or non-ASCII bytes;
//! - no empty segment (`//`) except a trailing slash, no `.` or `..` segment;
//! - matching is case-sensitive, and a trailing slash is part of the path (`/orders/` is
//!   not `/orders`) unless [`PathPolicy::strip_trailing_slash`] is set.
//!
//! Because a canonical path is left as it was sent, the handler sees exactly the path that
//! was checked. [`PathPolicy::normalize`] is a documented opt-in that rewrites some forms
//! instead of rejecting them (collapses `//`, resolves dot segments, decodes escaped
//! unreserved characters, strips trailing slashes); the adapters then rewrite the request
//! so the application sees the normalized path. Escaped `/`, `\`, `%`, NUL, controls and
//! invalid UTF-8 are rejected in every mode: there is no safe way to normalize them.
//!
//! ```
//! use zt_core::canonical::{canonicalize, PathPolicy};
//!
//! let strict = PathPolicy::default();
//! assert_eq!(canonicalize("/orders/42", &strict).unwrap(), "/orders/42");
//! assert!(canonicalize("/orders/../admin", &strict).is_err());
//! assert!(canonicalize("/orders%2f42", &strict).is_err());
//!
//! let lenient = PathPolicy { normalize: true, ..PathPolicy::default() };
//! assert_eq!(canonicalize("//orders/./42/", &lenient).unwrap(), "/orders/42");
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// How paths are canonicalized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathPolicy {
    /// Rewrite normalizable forms instead of rejecting them (default false: reject).
    #[serde(default)]
    pub normalize: bool,
    /// Treat `/orders/` as `/orders` (default false: a trailing slash is significant).
    #[serde(default)]
    pub strip_trailing_slash: bool,
}

/// Why a path is not canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Does not start with `/`.
    NotAbsolute,
    /// A malformed escape (`%` not followed by two hex digits).
    BadEscape,
    /// An escape of `/`, `\`, `%`, `.`, `;`, NUL, a control, or an unreserved character.
    AmbiguousEscape,
    /// Escaped bytes that are not valid UTF-8 (including overlong encodings).
    InvalidUtf8,
    /// A raw `\`, `;`, control character or non-ASCII byte.
    ForbiddenCharacter,
    /// An empty segment (`//`).
    EmptySegment,
    /// A `.` or `..` segment.
    DotSegment,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Checks the escapes and characters of `path`. Returns whether any escaped unreserved
/// character was found (only an error in strict mode).
fn check_bytes(path: &[u8], normalize: bool) -> Result<bool, PathError> {
    let mut i = 0;
    let mut has_unreserved_escape = false;
    // Bytes of the current run of escaped non-ASCII bytes, validated as UTF-8 when it ends.
    let mut run: Vec<u8> = Vec::new();
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let (Some(h), Some(l)) =
                (path.get(i + 1).and_then(|c| hex(*c)), path.get(i + 2).and_then(|c| hex(*c)))
            else {
                return Err(PathError::BadEscape);
            };
            let decoded = h * 16 + l;
            if decoded >= 0x80 {
                run.push(decoded);
            } else {
                flush_utf8(&mut run)?;
                match decoded {
                    b'/' | b'\\' | b'%' | b'.' | b';' | 0..=0x1f | 0x7f => {
                        return Err(PathError::AmbiguousEscape);
                    }
                    c if is_unreserved(c) => {
                        if !normalize {
                            return Err(PathError::AmbiguousEscape);
                        }
                        has_unreserved_escape = true;
                    }
                    _ => {}
                }
            }
            i += 3;
            continue;
        }
        flush_utf8(&mut run)?;
        if b == b'\\' || b == b';' || !(0x20..0x7f).contains(&b) {
            return Err(PathError::ForbiddenCharacter);
        }
        i += 1;
    }
    flush_utf8(&mut run)?;
    Ok(has_unreserved_escape)
}

fn flush_utf8(run: &mut Vec<u8>) -> Result<(), PathError> {
    if !run.is_empty() {
        std::str::from_utf8(run).map_err(|_| PathError::InvalidUtf8)?;
        run.clear();
    }
    Ok(())
}

/// Returns the canonical form of `path` (borrowed when it already is canonical), or why it
/// cannot be accepted.
pub fn canonicalize<'a>(path: &'a str, policy: &PathPolicy) -> Result<Cow<'a, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let unreserved_escapes = check_bytes(path.as_bytes(), policy.normalize)?;
    let mut needs_rewrite = unreserved_escapes;
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment.is_empty() && !last {
            if !policy.normalize {
                return Err(PathError::EmptySegment);
            }
            needs_rewrite = true;
        } else if segment == "." || segment == ".." {
            if !policy.normalize {
                return Err(PathError::DotSegment);
            }
            needs_rewrite = true;
        } else if segment.is_empty()
            && last
            && path.len() > 1
            && (policy.strip_trailing_slash || policy.normalize)
        {
            needs_rewrite = true;
        }
    }
    if !needs_rewrite {
        return Ok(Cow::Borrowed(path));
    }
    // Normalize: decode escaped unreserved characters, drop empty and `.` segments, let
    // `..` pop (never above the root), strip the trailing slash.
    let mut out: Vec<String> = Vec::new();
    for segment in path[1..].split('/') {
        let segment = decode_unreserved(segment);
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    Ok(Cow::Owned(format!("/{}", out.join("/"))))
}

fn decode_unreserved(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).and_then(|c| hex(*c)), bytes.get(i + 2).and_then(|c| hex(*c)))
            && is_unreserved(h * 16 + l)
        {
            out.push(char::from(h * 16 + l));
            i += 3;
            continue;
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: PathPolicy = PathPolicy { normalize: false, strip_trailing_slash: false };
    const NORMALIZE: PathPolicy = PathPolicy { normalize: true, strip_trailing_slash: false };

    #[test]
    fn canonical_paths_pass_unchanged() {
        for ok in
            ["/", "/orders", "/orders/12", "/a%20b", "/orders/", "/caf%C3%A9", "/a:b@c!$&'()*+,=", "/ORDERS"]
        {
            assert!(matches!(canonicalize(ok, &STRICT), Ok(Cow::Borrowed(p)) if p == ok), "{ok}");
        }
    }

    #[test]
    fn ambiguous_paths_are_rejected() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::NotAbsolute),
            ("orders", PathError::NotAbsolute),
            ("//orders", PathError::EmptySegment),
            ("/orders//1", PathError::EmptySegment),
            ("/./orders", PathError::DotSegment),
            ("/orders/..", PathError::DotSegment),
            ("/a/../b", PathError::DotSegment),
            ("/a%2fb", PathError::AmbiguousEscape),
            ("/a%2Fb", PathError::AmbiguousEscape),
            ("/a%5cb", PathError::AmbiguousEscape),
            ("/a/%2e%2e/b", PathError::AmbiguousEscape),
            ("/a/%2E/b", PathError::AmbiguousEscape),
            ("/a/%252e%252e/b", PathError::AmbiguousEscape),
            ("/a%00", PathError::AmbiguousEscape),
            ("/a%0a", PathError::AmbiguousEscape),
            ("/a%3bx", PathError::AmbiguousEscape),
            ("/or%64ers", PathError::AmbiguousEscape),
            ("/a\\b", PathError::ForbiddenCharacter),
            ("/a;x=1", PathError::ForbiddenCharacter),
            ("/a\tb", PathError::ForbiddenCharacter),
            ("/a%zz", PathError::BadEscape),
            ("/a%", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/a%c0%af", PathError::InvalidUtf8),
            ("/a%e0%80%af", PathError::InvalidUtf8),
            ("/a%ff", PathError::InvalidUtf8),
            ("/a%C3", PathError::InvalidUtf8),
        ];
        for (path, want) in cases {
            assert_eq!(canonicalize(path, &STRICT), Err(*want), "{path}");
        }
    }

    #[test]
    fn normalize_is_opt_in_and_still_rejects_the_unsafe() {
        assert_eq!(canonicalize("//orders/./42/", &NORMALIZE).unwrap(), "/orders/42");
        assert_eq!(canonicalize("/a/b/../c", &NORMALIZE).unwrap(), "/a/c");
        assert_eq!(canonicalize("/../../etc", &NORMALIZE).unwrap(), "/etc");
        assert_eq!(canonicalize("/or%64ers", &NORMALIZE).unwrap(), "/orders");
        assert_eq!(canonicalize("/", &NORMALIZE).unwrap(), "/");
        for bad in ["/a%2fb", "/a%00", "/a%c0%af", "/a%252e", "/a\\b", "/a%2e%2e/b"] {
            assert!(canonicalize(bad, &NORMALIZE).is_err(), "{bad}");
        }
        let strip = PathPolicy { normalize: false, strip_trailing_slash: true };
        assert_eq!(canonicalize("/orders/", &strip).unwrap(), "/orders");
        assert!(canonicalize("/orders//", &strip).is_err());
    }

    #[test]
    fn canonicalization_is_idempotent() {
        for p in ["//a/./b/../c/", "/x%41y", "/plain", "/", "/a/b/"] {
            for policy in [NORMALIZE, PathPolicy { normalize: true, strip_trailing_slash: true }] {
                if let Ok(once) = canonicalize(p, &policy) {
                    let twice = canonicalize(&once, &policy).unwrap().into_owned();
                    assert_eq!(once, twice, "{p}");
                    assert!(canonicalize(&once, &STRICT).is_ok() || once.ends_with('/'), "{once}");
                }
            }
        }
    }
}
