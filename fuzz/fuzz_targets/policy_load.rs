//! Policy loading: arbitrary bytes (lossy UTF-8) parsed as a TOML and as a YAML policy; each
//! policy that parses is built into a `Guard`, which then decides two requests.
//!
//! So that the target does no I/O, a parsed policy is scrubbed before `Guard::builder`:
//! `jwks_file`, `pem_file`, `contract.file` and `observe.geo.database` are cleared (a
//! fuzzer-chosen path could be `/dev/zero` or a FIFO), and remote key sets are fetched by a
//! fetcher that always fails (no network). Everything else is as parsed.
//!
//! Properties: parsing and `Guard::build` return `Ok` or `Err` and never panic or hang; a
//! guard that builds decides a request without credentials and one with a garbage token
//! without panicking, and (enforce mode) lets neither through to the scoped `GET /orders`.
#![no_main]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use zt::keys::{FetchError, FetchedDocument, KeyFetcher};
use zt::request::HeaderList;
use common::Outcome;
use zt::{Guard, Policy, RequestView};

struct NoNetwork;

impl KeyFetcher for NoNetwork {
    fn fetch<'a>(
        &'a self,
        _url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<FetchedDocument, FetchError>> + Send + 'a>> {
        Box::pin(async { Err(FetchError("the fuzz harness has no network".into())) })
    }
}

fn scrub(mut policy: Policy) -> Policy {
    for issuer in &mut policy.issuers {
        issuer.jwks_file = None;
        for pem in &mut issuer.pem_keys {
            pem.pem_file = None;
        }
    }
    if let Some(contract) = &mut policy.contract {
        contract.file.clear();
    }
    if let Some(observe) = &mut policy.observe {
        observe.geo.database = None;
    }
    policy
}

fn exercise(policy: Policy) {
    let Ok(guard) = Guard::builder(scrub(policy)).key_fetcher(Arc::new(NoNetwork)).build() else { return };
    let Ok(guard) = guard.with_routes(&common::demo_routes()) else { return };
    let anonymous = HeaderList::default();
    let garbage = HeaderList::default().with("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA");
    for headers in [&anonymous, &garbage] {
        let view = RequestView {
            method: "GET",
            path: "/orders",
            query: Some("limit=5"),
            headers,
            peer_addr: Some(([127, 0, 0, 1], 40000).into()),
            peer_certificates: None,
            body: zt::BodyHint::Empty,
        };
        let verdict = common::decide(&guard, &view);
        if guard.mode() == zt::Mode::Enforce {
            assert!(
                matches!(verdict.outcome, Outcome::Deny(_)),
                "an enforcing guard let GET /orders through without a valid token"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(policy) = Policy::from_toml_str(&text) {
        exercise(policy);
    }
    if let Ok(policy) = Policy::from_yaml_str(&text) {
        exercise(policy);
    }
});
