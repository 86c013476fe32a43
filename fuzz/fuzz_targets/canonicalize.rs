//! Path canonicalization and routing.
//!
//! Input: byte 0 picks the path policy (bit 0 `normalize`, bit 1 `strip_trailing_slash`) and
//! the method (bits 2..5); the rest is the request target (`path[?query]`, lossy UTF-8).
//!
//! Properties: `canonicalize` never panics; its output is a fixed point (canonicalizing it
//! again under the same policy gives it back unchanged, borrowed); strict mode only ever
//! returns the input itself (less a trailing slash with `strip_trailing_slash`); a normalized path is canonical in strict mode too; whatever
//! strict mode accepts, normalize mode accepts. Routing through a `Guard` with the demo
//! routes never panics and agrees with `canonicalize`: a rejected path is a 400
//! `InvalidPath`, an accepted one is never; a matched route's template matches the canonical
//! path; the path an allowed request is forwarded with (`rewritten_path`) is the canonical one; and no request without
//! credentials is let through to a scoped route.
#![no_main]

mod common;

use std::borrow::Cow;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zt::canonical::{PathPolicy, canonicalize};
use zt::request::HeaderList;
use common::Outcome;
use zt::{Guard, Reason, RequestView};

const METHODS: [&str; 8] = ["GET", "POST", "DELETE", "PUT", "HEAD", "get", "OPTIONS", "GET "];

fn policy(flags: u8) -> PathPolicy {
    PathPolicy { normalize: flags & 1 != 0, strip_trailing_slash: flags & 2 != 0 }
}

fn guards() -> &'static [Guard; 4] {
    static GUARDS: OnceLock<[Guard; 4]> = OnceLock::new();
    GUARDS.get_or_init(|| [0u8, 1, 2, 3].map(|flags| common::demo_guard(policy(flags))))
}

/// Does the demo route `template` match the canonical `path`?
fn template_matches(template: &str, path: &str) -> bool {
    match template {
        "/orders/{id}" => path.strip_prefix("/orders/").is_some_and(|id| !id.is_empty() && !id.contains('/')),
        literal => literal == path,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let target = String::from_utf8_lossy(rest);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*target, None),
    };
    let policy = policy(flags);
    let method = METHODS[usize::from((flags >> 2) & 7)];

    let strict = PathPolicy { normalize: false, ..policy };
    let normalizing = PathPolicy { normalize: true, ..policy };
    let canonical = canonicalize(path, &policy);
    if let Ok(c) = &canonical {
        match canonicalize(c, &policy) {
            Ok(Cow::Borrowed(again)) => assert_eq!(again, &**c, "canonical form is not a fixed point"),
            Ok(Cow::Owned(again)) => panic!("canonical form {c:?} rewritten again to {again:?}"),
            Err(e) => panic!("canonical form {c:?} of {path:?} rejected: {e:?}"),
        }
        assert!(c.starts_with('/'), "canonical form {c:?} is not absolute");
        if !policy.normalize {
            // Strict mode returns the path as sent, less a trailing slash when asked to.
            let expected = match path.strip_suffix('/') {
                Some(stripped) if policy.strip_trailing_slash && !stripped.is_empty() => stripped,
                _ => path,
            };
            assert_eq!(&**c, expected, "strict mode changed the path");
        }
        if policy.normalize {
            assert!(canonicalize(c, &strict).is_ok(), "normalized {c:?} is not canonical in strict mode");
        }
    }
    if canonicalize(path, &strict).is_ok() {
        assert!(canonicalize(path, &normalizing).is_ok(), "normalize mode rejects what strict mode accepts");
    }

    let guard = &guards()[usize::from(flags & 3)];
    let headers = HeaderList::default();
    let view =
        RequestView { method, path, query, headers: &headers, peer_addr: None, peer_certificates: None, body: zt::BodyHint::Empty };
    let verdict = common::decide(guard, &view);
    match (&canonical, &verdict.outcome) {
        (Err(_), Outcome::Deny(d)) => assert_eq!(d.reason, Reason::InvalidPath, "rejected path {path:?}"),
        (Err(e), Outcome::Allow(_)) => panic!("path {path:?} rejected by canonicalize ({e:?}) but allowed"),
        (Ok(c), Outcome::Deny(d)) => {
            assert_ne!(d.reason, Reason::InvalidPath, "canonical path {c:?} denied as invalid")
        }
        (Ok(_), Outcome::Allow(identity)) => {
            assert!(identity.is_none(), "an identity without credentials");
            assert_eq!(
                verdict.route.as_deref(),
                Some("/health"),
                "anonymous request allowed to a scoped route"
            );
        }
    }
    if let (Ok(c), Some(route)) = (&canonical, verdict.route.as_deref()) {
        assert!(template_matches(route, c), "route {route} matched for canonical path {c:?}");
        if matches!(verdict.outcome, Outcome::Deny(_)) {
            return; // nothing is forwarded
        }
        let expected = match c {
            Cow::Owned(o) => Some(o.as_str()),
            Cow::Borrowed(_) => None,
        };
        assert_eq!(
            verdict.rewritten_path.as_deref(),
            expected,
            "forwarded path differs from the checked one"
        );
    }
});
