//! The runtime controls over HTTP: list, block, unblock and revoke, for an operator or a SOAR
//! playbook. Framework-neutral; the adapters' routers mount it (`Router::controls(prefix)`
//! in `zt-tower` and `zt-actix`) and only translate requests and replies.
//!
//! | method and path (under the prefix) | body | answers |
//! |---|---|---|
//! | `GET {prefix}` | none | 200 `{"blocks": [...], "revocations": N}` |
//! | `POST {prefix}/blocks` | `{kind, value, seconds, reason?}` | 201 the block |
//! | `POST {prefix}/unblock` | `{kind, value}` | 204, or 404 when nothing was blocked |
//! | `POST {prefix}/revocations` | `{jti, expires_at}` | 201, or 503 when the list is full |
//!
//! - `kind` is `principal` (the canonical caller key, [`Identity::principal`]), `subject`
//!   (the bare `sub`, any issuer), `client` (an OAuth client id), `address` (an IP address)
//!   or `network` (a CIDR such as `10.0.0.0/8`, or any IP address in it). Addresses and
//!   networks are stored in the form client addresses are keyed in, whatever the spelling
//!   (`::ffff:192.0.2.7` is `192.0.2.7`, `::ffff:10.0.0.0/104` is `10.0.0.0/8`, host bits are
//!   cleared), and a network is at least the configured
//!   [`NetworkPrefix`](crate::observe::NetworkPrefix) wide (a single address blocks the
//!   network of that width around it); the reply names the target as stored. `value` is 1
//!   to 256 characters. `seconds` is 1 to 86 400; `reason` (at most 256 characters) defaults to
//!   `operator`.
//! - `jti` is a JSON string (1 to 256 characters) or an integer, matched as its decimal text,
//!   the text [`Identity::token_id`] gives for the token; `expires_at` is the token's `exp`
//!   (Unix seconds): the revocation lapses with the token.
//! - Integers (`seconds`, `expires_at`, a numeric `jti`) are read by value, whatever the
//!   spelling: `60.0` and `6e1` are 60, as JSON Schema counts them; a fraction or an
//!   integer beyond 64 bits is refused (400). (zt's own OpenAPI contract, in front of the
//!   controls in the demo, refuses integers not written as integers before they get here.)
//!
//! Bodies are parsed strictly here, whatever else checked them (an OpenAPI contract may, but
//! nothing relies on it): `Content-Type: application/json`, at most [`MAX_BODY_BYTES`], one
//! JSON object without unknown or repeated members, every member of the right type and in
//! range. A refused body is a 400 `application/problem+json` whose `detail` says which rule
//! failed, without echoing the value. Every error is a problem document (RFC 9457) with the
//! request id; with monitoring off (no observer), every endpoint answers 404.
//!
//! The routes are registered with [`RouteTable::add_always_enforced`](crate::RouteTable::add_always_enforced):
//! report-only mode never forwards an unauthorized control request. [`ControlsApi::handle`]
//! also checks the requirement itself before acting, so a request that reached it by any
//! other way (a report-only Guard that forwarded it) is still refused.
//!
//! ```
//! use zt_core::controls_api::{ControlRequest, ControlsApi, Endpoint};
//! use zt_core::{observe::ObserverConfig, policy::{IssuerConfig, Policy}, scopes, Guard, RequestId};
//!
//! let mut policy = Policy::builder()
//!     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
//!         .jwks_url("https://issuer.example/jwks"))
//!     .build();
//! policy.observe = Some(ObserverConfig::default());
//! let guard = Guard::new(policy).unwrap();
//! let api = ControlsApi::new(guard, scopes::all(["zt:admin"])).unwrap();
//! assert_eq!(Endpoint::Block.path("/zt/controls"), "/zt/controls/blocks");
//!
//! // No verified identity: refused, whatever the body.
//! let request_id = RequestId::generate();
//! let reply = api.handle(Endpoint::List, ControlRequest {
//!     identity: None,
//!     content_type: None,
//!     body: Ok(b""),
//!     request_id: request_id.as_str(),
//! });
//! // Without a fleet the answer is ready at once (with one, `.await` it).
//! let reply = futures_util::FutureExt::now_or_never(reply).unwrap();
//! assert_eq!(reply.status(), 401);
//! ```

use std::net::IpAddr;

use ipnet::IpNet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::Reply;
use crate::denial::{Denial, PROBLEM_TYPE_BASE, Reason};
use crate::error::PolicyError;
use crate::guard::{BodyError, Guard};
use crate::identity::Identity;
use crate::observe::{Block, Controls, Target};
use crate::scopes::{self, Requirement};

/// The scope [`default_requirement`] asks for.
pub const DEFAULT_SCOPE: &str = "zt:admin";

/// The requirement of the controls when none is given: the scope [`DEFAULT_SCOPE`].
pub fn default_requirement() -> Requirement {
    scopes::all([DEFAULT_SCOPE])
}

/// The largest request body read (a real one is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest block, in seconds (one day): a longer one belongs in the policy.
pub const MAX_BLOCK_SECONDS: u64 = 86_400;

/// The most characters of a `value`, `reason` or string `jti`.
pub const MAX_TEXT_CHARS: usize = 256;

/// The latest `expires_at` accepted: 9999-12-31T23:59:59Z.
pub const MAX_EXPIRES_AT: u64 = 253_402_300_799;

/// One endpoint of the controls API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET {prefix}`: the blocks in force and the number of revocations.
    List,
    /// `POST {prefix}/blocks`: puts a block in place.
    Block,
    /// `POST {prefix}/unblock`: lifts a block.
    Unblock,
    /// `POST {prefix}/revocations`: revokes a token by `jti`.
    Revoke,
}

impl Endpoint {
    /// Every endpoint, in table order.
    pub const ALL: [Endpoint; 4] = [Endpoint::List, Endpoint::Block, Endpoint::Unblock, Endpoint::Revoke];

    /// The HTTP method (`GET` or `POST`).
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::List => "GET",
            Endpoint::Block | Endpoint::Unblock | Endpoint::Revoke => "POST",
        }
    }

    /// The path under `prefix` (`/zt/controls` + [`Endpoint::Block`] is
    /// `/zt/controls/blocks`; a trailing slash on the prefix is not doubled).
    pub fn path(self, prefix: &str) -> String {
        let prefix = prefix.trim_end_matches('/');
        let suffix = match self {
            Endpoint::List => "",
            Endpoint::Block => "/blocks",
            Endpoint::Unblock => "/unblock",
            Endpoint::Revoke => "/revocations",
        };
        match (prefix, suffix) {
            ("", "") => "/".to_string(),
            _ => format!("{prefix}{suffix}"),
        }
    }
}

/// What a control request carries, as the adapter read it.
#[derive(Debug, Clone, Copy)]
pub struct ControlRequest<'a> {
    /// The verified caller, if the Guard admitted one.
    pub identity: Option<&'a Identity>,
    /// The `Content-Type` header, if one was sent.
    pub content_type: Option<&'a [u8]>,
    /// The body, read with a limit of [`MAX_BODY_BYTES`].
    pub body: Result<&'a [u8], BodyError>,
    /// The request id (for the problem documents).
    pub request_id: &'a str,
}

/// Why a control request was refused (the `detail` of its problem document is the
/// `Display` text: it names the rule, never the value sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The `Content-Type` is not `application/json` (415).
    #[error("the body must be sent as application/json")]
    UnsupportedMediaType,
    /// The body is longer than [`MAX_BODY_BYTES`] (413).
    #[error("the body is larger than {} bytes", MAX_BODY_BYTES)]
    TooLarge,
    /// The body could not be read (400).
    #[error("the body could not be read")]
    Unreadable,
    /// The body is not JSON (400).
    #[error("the body is not valid JSON")]
    NotJson,
    /// The body is JSON but not an object (400).
    #[error("the body must be a JSON object")]
    NotObject,
    /// A member appears twice (400): which one counts would depend on the parser.
    #[error("the body repeats a member")]
    DuplicateMember,
    /// A member this endpoint does not know (400).
    #[error("the body has an unknown member (allowed: {allowed})")]
    UnknownMember {
        /// The members this endpoint takes.
        allowed: &'static str,
    },
    /// A required member is absent (400).
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// A member has the wrong type or is out of range (400).
    #[error("`{field}` must be {expected}")]
    Invalid {
        /// The member.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// Monitoring is off: there are no controls (404).
    #[error("monitoring is off: there are no runtime controls")]
    MonitoringOff,
    /// `unblock` named a target that is not blocked (404).
    #[error("no block is in force for this target")]
    NoSuchBlock,
    /// The revocation list is full of unexpired revocations (503): rotate keys instead.
    #[error("the revocation list is full of unexpired revocations")]
    RevocationsFull,
    /// The fleet's shared store did not acknowledge the change (503): nothing changed, on
    /// this replica or any other; retry. `cause` is `timeout`, `unreachable` or
    /// `server_error` (never a URL, key or value).
    #[error("the shared store did not acknowledge the change ({cause}): nothing was changed, retry")]
    StoreUnavailable {
        /// Why, in one word.
        cause: &'static str,
    },
}

impl ControlError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::UnsupportedMediaType => 415,
            ControlError::TooLarge => 413,
            ControlError::MonitoringOff | ControlError::NoSuchBlock => 404,
            ControlError::RevocationsFull | ControlError::StoreUnavailable { .. } => 503,
            _ => 400,
        }
    }

    /// The problem `type`: the Guard's own types for a refused body (`invalid-body`,
    /// `payload-too-large`, `unsupported-media-type`), so a client reads one vocabulary.
    pub fn problem_type(&self) -> String {
        let slug = match self {
            ControlError::UnsupportedMediaType => Reason::UnsupportedMediaType.slug(),
            ControlError::TooLarge => Reason::PayloadTooLarge.slug(),
            ControlError::MonitoringOff => "monitoring-off",
            ControlError::NoSuchBlock => "no-such-block",
            ControlError::RevocationsFull => "revocation-list-full",
            ControlError::StoreUnavailable { .. } => "controls-unavailable",
            _ => Reason::InvalidBody.slug(),
        };
        format!("{PROBLEM_TYPE_BASE}{slug}")
    }

    fn title(&self) -> &'static str {
        match self {
            ControlError::UnsupportedMediaType => "Unsupported media type",
            ControlError::TooLarge => "Payload too large",
            ControlError::MonitoringOff => "Monitoring is off",
            ControlError::NoSuchBlock => "No such block",
            ControlError::RevocationsFull => "Revocation list full",
            ControlError::StoreUnavailable { .. } => "Controls unavailable",
            _ => "Invalid control request",
        }
    }

    /// The `application/problem+json` reply.
    pub fn reply(&self, request_id: &str) -> Reply {
        let body = serde_json::json!({
            "type": self.problem_type(),
            "title": self.title(),
            "status": self.status(),
            "detail": self.to_string(),
            "request_id": request_id,
        });
        let mut headers = vec![
            ("content-type", "application/problem+json".to_string()),
            ("cache-control", "no-store".to_string()),
            ("x-request-id", request_id.to_string()),
        ];
        if let ControlError::StoreUnavailable { .. } = self {
            // The store is retried every second while it is down.
            headers.push(("retry-after", "1".to_string()));
        }
        Reply { status: self.status(), headers, body: body.to_string() }
    }
}

/// The controls API of one Guard's observer, behind one requirement.
#[derive(Clone)]
pub struct ControlsApi {
    guard: Guard,
    requirement: Requirement,
}

impl std::fmt::Debug for ControlsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlsApi")
            .field("requirement", &self.requirement.describe())
            .finish_non_exhaustive()
    }
}

impl ControlsApi {
    /// The controls of `guard`'s observer, for callers meeting `requirement`. A public
    /// requirement is an error: anyone could then lift blocks and block anyone.
    pub fn new(guard: Guard, requirement: Requirement) -> Result<ControlsApi, PolicyError> {
        if requirement.is_public() {
            return Err(PolicyError::invalid(
                "runtime controls",
                "the control plane cannot be public (use scopes::all([\"zt:admin\"]) or similar)",
            ));
        }
        requirement.validate().map_err(|m| PolicyError::invalid("runtime controls", m))?;
        Ok(ControlsApi { guard, requirement })
    }

    /// Who may use the controls.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }

    /// Answers one request: the caller is checked against the requirement first (401 without
    /// an identity, 403 `insufficient_scope`, rendered like the Guard's denials), then the
    /// body, then the controls act.
    ///
    /// With a `[fleet]`, a block, unblock or revocation is answered once the shared store
    /// acknowledged it (at most `fleet.timeout`), so every replica enforces it from then on
    /// (within the sync bound); when the store does not answer, nothing changed and the
    /// answer is a 503 problem ([`ControlError::StoreUnavailable`]). Without a fleet the
    /// future is ready at once.
    pub async fn handle(&self, endpoint: Endpoint, request: ControlRequest<'_>) -> Reply {
        if let Err(denial) = self.authorize(request.identity) {
            let rendered = denial.render(self.guard.realm(), request.request_id);
            return Reply { status: rendered.status, headers: rendered.headers, body: rendered.body };
        }
        let Some(observer) = self.guard.observer() else {
            return ControlError::MonitoringOff.reply(request.request_id);
        };
        let controls = observer.controls();
        let result = match endpoint {
            Endpoint::List => Ok(list(controls)),
            Endpoint::Block => match json_body(&request) {
                Ok(body) => block(controls, body).await,
                Err(e) => Err(e),
            },
            Endpoint::Unblock => match json_body(&request) {
                Ok(body) => unblock(controls, body).await,
                Err(e) => Err(e),
            },
            Endpoint::Revoke => match json_body(&request) {
                Ok(body) => revoke(controls, body).await,
                Err(e) => Err(e),
            },
        };
        result.unwrap_or_else(|e| e.reply(request.request_id))
    }

    fn authorize(&self, identity: Option<&Identity>) -> Result<(), Denial> {
        let Some(identity) = identity else {
            return Err(Denial::new(Reason::MissingCredentials));
        };
        match self.requirement.missing_scopes(|s| identity.has_scope(s)) {
            None => Ok(()),
            Some(missing) => {
                let mut denial = Denial::new(Reason::InsufficientScope);
                denial.required_scopes = missing.to_vec();
                Err(denial)
            }
        }
    }
}

fn ok_json(status: u16, value: &Value) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".to_string()),
            ("cache-control", "no-store".to_string()),
        ],
        body: value.to_string(),
    }
}

fn empty(status: u16) -> Reply {
    Reply { status, headers: vec![("cache-control", "no-store".to_string())], body: String::new() }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn view(block: &Block) -> Value {
    serde_json::json!({
        "target": block.target.to_string(),
        "kind": block.slug(),
        "reason": block.reason,
        "automatic": block.automatic,
        "expires_at": unix(block.expires_at),
    })
}

fn list(controls: &Controls) -> Reply {
    let blocks: Vec<Value> = controls.blocks().iter().map(|b| view(b)).collect();
    ok_json(200, &serde_json::json!({"blocks": blocks, "revocations": controls.revocations()}))
}

async fn block(controls: &Controls, body: Object) -> Result<Reply, ControlError> {
    let mut fields = body.fields(&["kind", "value", "seconds", "reason"], "kind, value, seconds, reason")?;
    let target = target(&mut fields)?;
    let seconds = match fields.take("seconds") {
        None => return Err(ControlError::Missing("seconds")),
        Some(value) => whole_number(&value)
            .filter(|s| (1..=MAX_BLOCK_SECONDS).contains(s))
            .ok_or(ControlError::Invalid { field: "seconds", expected: "an integer from 1 to 86400" })?,
    };
    let reason = match fields.take("reason") {
        None => "operator".to_string(),
        Some(value) => text(value, 0).ok_or(ControlError::Invalid {
            field: "reason",
            expected: "a string of at most 256 characters",
        })?,
    };
    let block = controls.block_target_confirmed(target, Duration::from_secs(seconds), &reason).await?;
    tracing::warn!(zt.target = %block.target, seconds, "operator block");
    Ok(ok_json(201, &view(&block)))
}

async fn unblock(controls: &Controls, body: Object) -> Result<Reply, ControlError> {
    let mut fields = body.fields(&["kind", "value"], "kind, value")?;
    let target = target(&mut fields)?;
    if controls.unblock_confirmed(&target).await? {
        tracing::warn!(zt.target = %target, "operator unblock");
        Ok(empty(204))
    } else {
        Err(ControlError::NoSuchBlock)
    }
}

async fn revoke(controls: &Controls, body: Object) -> Result<Reply, ControlError> {
    let mut fields = body.fields(&["jti", "expires_at"], "jti, expires_at")?;
    const JTI: ControlError =
        ControlError::Invalid { field: "jti", expected: "a string of 1 to 256 characters or an integer" };
    let jti = match fields.take("jti") {
        None => return Err(ControlError::Missing("jti")),
        // The text `Identity::token_id` gives for the token: a string as it is, an integer
        // (in any spelling: `4711.0` is `4711`) as its decimal text.
        Some(Value::Number(n)) => crate::json::integral(&n).ok_or(JTI)?.to_string(),
        Some(value @ Value::String(_)) => text(value, 1).ok_or(JTI)?,
        Some(_) => return Err(JTI),
    };
    let expires_at = match fields.take("expires_at") {
        None => return Err(ControlError::Missing("expires_at")),
        Some(value) => {
            whole_number(&value).filter(|s| *s <= MAX_EXPIRES_AT).ok_or(ControlError::Invalid {
                field: "expires_at",
                expected: "an integer from 0 to 253402300799 (the token's exp, Unix seconds)",
            })?
        }
    };
    let exp = UNIX_EPOCH + Duration::from_secs(expires_at);
    controls.revoke_confirmed(&jti, exp).await?;
    tracing::warn!(expires_at, "operator revocation");
    Ok(empty(201))
}

/// `{kind, value}` as a target.
fn target(fields: &mut Fields) -> Result<Target, ControlError> {
    const KIND: ControlError = ControlError::Invalid {
        field: "kind",
        expected: "one of principal, subject, client, address, network",
    };
    let kind = match fields.take("kind") {
        None => return Err(ControlError::Missing("kind")),
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(KIND),
    };
    let value = match fields.take("value") {
        None => return Err(ControlError::Missing("value")),
        Some(value) => text(value, 1)
            .ok_or(ControlError::Invalid { field: "value", expected: "a string of 1 to 256 characters" })?,
    };
    const ADDRESS: ControlError = ControlError::Invalid {
        field: "value",
        expected: "an IP address for an address block, a CIDR or an IP address for a network block",
    };
    // `Controls` stores addresses and networks in the form client addresses are keyed in
    // (IPv4-mapped IPv6 as IPv4, host bits cleared, a network at least the configured
    // width): the block the reply shows is the one that matches.
    match kind.as_str() {
        "principal" => Ok(Target::Principal(value)),
        "subject" => Ok(Target::Subject(value)),
        "client" => Ok(Target::Client(value)),
        "address" => value.parse::<IpAddr>().map(Target::Address).map_err(|_| ADDRESS),
        "network" => match value.parse::<IpNet>() {
            Ok(net) => Ok(Target::Network(net)),
            Err(_) => value.parse::<IpAddr>().map(|ip| Target::Network(ip.into())).map_err(|_| ADDRESS),
        },
        _ => Err(KIND),
    }
}

/// A string of `min..=MAX_TEXT_CHARS` characters.
fn text(value: Value, min: usize) -> Option<String> {
    match value {
        Value::String(s) if (min..=MAX_TEXT_CHARS).contains(&s.chars().count()) => Some(s),
        _ => None,
    }
}

/// A non-negative whole number in any spelling (`600`, `600.0`, `6e2`): JSON Schema's
/// `integer` counts them all, so a contract other than zt's (which refuses the last two)
/// may let them through; this API takes each as the integer it is rather than fail on it.
fn whole_number(value: &Value) -> Option<u64> {
    value.as_number().and_then(crate::json::integral).and_then(|i| u64::try_from(i).ok())
}

fn json_body(request: &ControlRequest<'_>) -> Result<Object, ControlError> {
    if !is_json(request.content_type) {
        return Err(ControlError::UnsupportedMediaType);
    }
    let body = request.body.map_err(|e| match e {
        BodyError::TooLarge => ControlError::TooLarge,
        BodyError::Unreadable => ControlError::Unreadable,
    })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ControlError::TooLarge);
    }
    serde_json::from_slice::<Object>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ControlError::NotObject,
        _ => ControlError::NotJson,
    })
}

/// `application/json`, with any parameters (`; charset=utf-8`), in any case.
fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type else { return false };
    let essence = value.split(|b| *b == b';').next().unwrap_or_default();
    essence.trim_ascii().eq_ignore_ascii_case(b"application/json")
}

/// A JSON object's members in order, repeats kept (so they can be refused: `serde_json`'s
/// own map would silently keep the last one).
struct Object(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Object(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl Object {
    /// The members, checked against the endpoint's list.
    fn fields(self, allowed: &[&'static str], listed: &'static str) -> Result<Fields, ControlError> {
        let mut seen: Vec<&str> = Vec::with_capacity(self.0.len());
        for (name, _) in &self.0 {
            if !allowed.contains(&name.as_str()) {
                return Err(ControlError::UnknownMember { allowed: listed });
            }
            if seen.contains(&name.as_str()) {
                return Err(ControlError::DuplicateMember);
            }
            seen.push(name);
        }
        Ok(Fields(self.0))
    }
}

struct Fields(Vec<(String, Value)>);

impl Fields {
    fn take(&mut self, name: &str) -> Option<Value> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.swap_remove(at).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestId;
    use crate::observe::ObserverConfig;
    use crate::policy::{IssuerConfig, Policy};

    /// With a subscriber of its own, like the observer's tests (see `observe::tests::quiet`):
    /// the events these emit must not change the callsite interest other tests see.
    fn quiet<T>(f: impl FnOnce() -> T) -> T {
        tracing::subscriber::with_default(tracing_subscriber::registry(), f)
    }

    fn api(observe: bool) -> ControlsApi {
        let mut policy = Policy::builder()
            .issuer(
                IssuerConfig::new("https://issuer.test").audience("api").jwks_url("https://issuer.test/jwks"),
            )
            .build();
        if observe {
            policy.observe = Some(ObserverConfig::default());
        }
        ControlsApi::new(Guard::new(policy).unwrap(), default_requirement()).unwrap()
    }

    fn who(scope: &str) -> Identity {
        let claims = serde_json::json!({"sub": "root", "scope": scope, "client_id": "ops"});
        let serde_json::Value::Object(claims) = claims else { unreachable!("an object") };
        Identity::from_jwt_claims("https://issuer.test", claims)
    }

    fn call(api: &ControlsApi, endpoint: Endpoint, identity: Option<&Identity>, body: &str) -> Reply {
        let request_id = RequestId::generate();
        let reply = api.handle(
            endpoint,
            ControlRequest {
                identity,
                content_type: Some(b"application/json; charset=utf-8"),
                body: Ok(body.as_bytes()),
                request_id: request_id.as_str(),
            },
        );
        // No fleet: ready at once.
        futures_util::FutureExt::now_or_never(reply).expect("no fleet, no wait")
    }

    fn detail(reply: &Reply) -> String {
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(v["status"], reply.status, "{v}");
        assert!(reply.headers.contains(&("content-type", "application/problem+json".to_string())));
        v["detail"].as_str().unwrap().to_string()
    }

    #[test]
    fn the_requirement_is_checked_before_anything_else() {
        quiet(|| {
            let api = api(true);
            let reply = call(&api, Endpoint::Block, None, "not even json");
            assert_eq!(reply.status, 401);
            assert!(reply.headers.iter().any(|(n, v)| *n == "www-authenticate" && v.starts_with("Bearer")));
            let reader = who("orders:read");
            let reply = call(&api, Endpoint::List, Some(&reader), "");
            assert_eq!(reply.status, 403);
            assert!(reply.body.contains("urn:zt:problem:insufficient-scope"), "{}", reply.body);
            assert!(ControlsApi::new(api.guard.clone(), scopes::public()).is_err(), "never public");
        })
    }

    #[test]
    fn block_list_unblock_and_revoke() {
        quiet(|| {
            let api = api(true);
            let admin = who("zt:admin");
            let body = r#"{"kind": "client", "value": "scraper", "seconds": 600.0, "reason": "abuse"}"#;
            let reply = call(&api, Endpoint::Block, Some(&admin), body);
            assert_eq!(reply.status, 201, "{}", reply.body);
            let created: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(created["target"], "client:scraper");
            assert_eq!(
                (created["kind"].as_str(), created["automatic"].as_bool()),
                (Some("blocked"), Some(false))
            );
            let body = r#"{"kind": "principal", "value": "https://issuer.test|sub:mallory", "seconds": 60}"#;
            assert_eq!(call(&api, Endpoint::Block, Some(&admin), body).status, 201);
            let listed: Value =
                serde_json::from_str(&call(&api, Endpoint::List, Some(&admin), "").body).unwrap();
            assert_eq!(listed["blocks"].as_array().unwrap().len(), 2, "{listed}");
            assert_eq!(listed["revocations"], 0);

            let target = r#"{"kind": "client", "value": "scraper"}"#;
            assert_eq!(call(&api, Endpoint::Unblock, Some(&admin), target).status, 204);
            let again = call(&api, Endpoint::Unblock, Some(&admin), target);
            assert_eq!(again.status, 404);
            assert!(again.body.contains("urn:zt:problem:no-such-block"));

            let exp = unix(SystemTime::now()) + 600;
            let controls = api.guard.observer().unwrap().controls();
            let reply = call(
                &api,
                Endpoint::Revoke,
                Some(&admin),
                &format!(r#"{{"jti": 4711, "expires_at": {exp}}}"#),
            );
            assert_eq!((reply.status, reply.body.as_str()), (201, ""));
            assert!(controls.is_revoked("4711"), "an integer jti is matched as its decimal text");
            let body = format!(r#"{{"jti": "j-1", "expires_at": {exp}}}"#);
            assert_eq!(call(&api, Endpoint::Revoke, Some(&admin), &body).status, 201);
            assert!(controls.is_revoked("j-1"));
            // Integers in any spelling are the integers they are (never a 500, never refused
            // for the spelling): a float `jti` names the token whose `jti` is that integer.
            let body = format!(r#"{{"jti": 4712.0, "expires_at": {exp}.0}}"#);
            assert_eq!(call(&api, Endpoint::Revoke, Some(&admin), &body).status, 201);
            assert!(controls.is_revoked("4712"));
            let body = format!(r#"{{"jti": 4.713e3, "expires_at": {}e0}}"#, exp);
            assert_eq!(call(&api, Endpoint::Revoke, Some(&admin), &body).status, 201);
            assert!(controls.is_revoked("4713"));
            let body = r#"{"kind": "subject", "value": "x", "seconds": 6e1}"#;
            assert_eq!(call(&api, Endpoint::Block, Some(&admin), body).status, 201);
        })
    }

    #[test]
    fn addresses_and_networks_are_stored_as_clients_are_keyed() {
        quiet(|| {
            let api = api(true);
            let admin = who("zt:admin");
            let controls = api.guard.observer().unwrap().controls();
            for (kind, value, stored) in [
                ("address", "::ffff:127.0.0.7", "address:127.0.0.7"),
                ("address", "2001:DB8:0:0::1", "address:2001:db8::1"),
                ("network", "::ffff:10.0.0.0/104", "network:10.0.0.0/8"),
                ("network", "172.16.9.9/12", "network:172.16.0.0/12"),
                ("network", "::ffff:198.51.100.9", "network:198.51.100.0/24"),
                ("network", "198.51.100.9/28", "network:198.51.100.0/24"),
            ] {
                let body = serde_json::json!({"kind": kind, "value": value, "seconds": 60}).to_string();
                let reply = call(&api, Endpoint::Block, Some(&admin), &body);
                assert_eq!(reply.status, 201, "{value}: {}", reply.body);
                let created: Value = serde_json::from_str(&reply.body).unwrap();
                assert_eq!(created["target"], stored, "{value}");
            }
            for ip in ["127.0.0.7", "10.255.0.1", "172.31.0.1", "198.51.100.200"] {
                assert!(controls.is_blocked(None, Some(ip.parse().unwrap())).is_some(), "{ip}");
            }
            assert!(controls.is_blocked(None, Some("172.32.0.1".parse().unwrap())).is_none());
            let body = r#"{"kind": "network", "value": "::ffff:10.9.9.9/104"}"#;
            assert_eq!(
                call(&api, Endpoint::Unblock, Some(&admin), body).status,
                204,
                "any spelling lifts it"
            );
            assert!(controls.is_blocked(None, Some("10.255.0.1".parse().unwrap())).is_none());
        })
    }

    #[test]
    fn bodies_are_parsed_strictly_with_a_clear_detail() {
        quiet(|| {
            let api = api(true);
            let admin = who("zt:admin");
            let cases: &[(Endpoint, &str, &str)] = &[
                (Endpoint::Block, "{", "the body is not valid JSON"),
                (Endpoint::Block, "[1]", "the body must be a JSON object"),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "a", "seconds": 60} x"#,
                    "the body is not valid JSON",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "a", "seconds": 60, "tenant": 1}"#,
                    "the body has an unknown member (allowed: kind, value, seconds, reason)",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "kind": "address", "value": "a", "seconds": 60}"#,
                    "the body repeats a member",
                ),
                (Endpoint::Block, r#"{"value": "a", "seconds": 60}"#, "`kind` is required"),
                (
                    Endpoint::Block,
                    r#"{"kind": "tenant", "value": "a", "seconds": 60}"#,
                    "`kind` must be one of principal, subject, client, address, network",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": 7, "value": "a", "seconds": 60}"#,
                    "`kind` must be one of principal, subject, client, address, network",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "", "seconds": 60}"#,
                    "`value` must be a string of 1 to 256 characters",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "address", "value": "not-an-ip", "seconds": 60}"#,
                    "`value` must be an IP address for an address block, a CIDR or an IP address for a network block",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "address", "value": "10.0.0.0/8", "seconds": 60}"#,
                    "`value` must be an IP address for an address block, a CIDR or an IP address for a network block",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "network", "value": "10.0.0.0/33", "seconds": 60}"#,
                    "`value` must be an IP address for an address block, a CIDR or an IP address for a network block",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "a", "seconds": 0}"#,
                    "`seconds` must be an integer from 1 to 86400",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "a", "seconds": 86401}"#,
                    "`seconds` must be an integer from 1 to 86400",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "a", "seconds": "60"}"#,
                    "`seconds` must be an integer from 1 to 86400",
                ),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "a", "seconds": 1.5}"#,
                    "`seconds` must be an integer from 1 to 86400",
                ),
                (Endpoint::Block, r#"{"kind": "subject", "value": "a"}"#, "`seconds` is required"),
                (
                    Endpoint::Block,
                    r#"{"kind": "subject", "value": "a", "seconds": 60, "reason": null}"#,
                    "`reason` must be a string of at most 256 characters",
                ),
                (
                    Endpoint::Unblock,
                    r#"{"kind": "subject", "value": "a", "seconds": 60}"#,
                    "the body has an unknown member (allowed: kind, value)",
                ),
                (
                    Endpoint::Revoke,
                    r#"{"jti": true, "expires_at": 1}"#,
                    "`jti` must be a string of 1 to 256 characters or an integer",
                ),
                (
                    Endpoint::Revoke,
                    r#"{"jti": 1.5, "expires_at": 1}"#,
                    "`jti` must be a string of 1 to 256 characters or an integer",
                ),
                (
                    Endpoint::Revoke,
                    r#"{"jti": "", "expires_at": 1}"#,
                    "`jti` must be a string of 1 to 256 characters or an integer",
                ),
                (
                    Endpoint::Revoke,
                    r#"{"jti": "a", "expires_at": -1}"#,
                    "`expires_at` must be an integer from 0 to 253402300799 (the token's exp, Unix seconds)",
                ),
                (
                    Endpoint::Revoke,
                    r#"{"jti": "a", "expires_at": 253402300800}"#,
                    "`expires_at` must be an integer from 0 to 253402300799 (the token's exp, Unix seconds)",
                ),
                (
                    Endpoint::Revoke,
                    r#"{"jti": 1e20, "expires_at": 1}"#,
                    "`jti` must be a string of 1 to 256 characters or an integer",
                ),
                (
                    Endpoint::Revoke,
                    r#"{"jti": "a", "expires_at": 1700000000.5}"#,
                    "`expires_at` must be an integer from 0 to 253402300799 (the token's exp, Unix seconds)",
                ),
                (Endpoint::Revoke, r#"{"jti": "a"}"#, "`expires_at` is required"),
            ];
            for (endpoint, body, want) in cases {
                let reply = call(&api, *endpoint, Some(&admin), body);
                assert_eq!(reply.status, 400, "{body}: {}", reply.body);
                assert_eq!(detail(&reply), *want, "{body}");
                assert!(reply.body.contains("urn:zt:problem:invalid-body"));
            }
            let long = format!(r#"{{"kind": "subject", "value": "{}", "seconds": 60}}"#, "x".repeat(257));
            assert_eq!(call(&api, Endpoint::Block, Some(&admin), &long).status, 400);
            assert_eq!(api.guard.observer().unwrap().controls().active_blocks(), 0, "nothing was blocked");

            let request_id = RequestId::generate();
            let request = |content_type: Option<&'static [u8]>, body: Result<&'static [u8], BodyError>| {
                let reply = api.handle(
                    Endpoint::Block,
                    ControlRequest {
                        identity: Some(&admin),
                        content_type,
                        body,
                        request_id: request_id.as_str(),
                    },
                );
                futures_util::FutureExt::now_or_never(reply).expect("no fleet, no wait")
            };
            assert_eq!(request(None, Ok(b"{}")).status, 415);
            assert_eq!(request(Some(b"text/plain"), Ok(b"{}")).status, 415);
            assert_eq!(request(Some(b"application/jsonx"), Ok(b"{}")).status, 415);
            assert_eq!(request(Some(b"APPLICATION/JSON"), Ok(b"{}")).status, 400, "a known type, no members");
            let too_large = request(Some(b"application/json"), Err(BodyError::TooLarge));
            assert_eq!(too_large.status, 413);
            assert!(too_large.body.contains("urn:zt:problem:payload-too-large"));
            assert_eq!(request(Some(b"application/json"), Err(BodyError::Unreadable)).status, 400);
        })
    }

    #[test]
    fn monitoring_off_is_a_404_problem() {
        let api = api(false);
        let reply = call(&api, Endpoint::List, Some(&who("zt:admin")), "");
        assert_eq!(reply.status, 404);
        assert_eq!(detail(&reply), "monitoring is off: there are no runtime controls");
        assert!(reply.body.contains("urn:zt:problem:monitoring-off"));
    }

    #[test]
    fn endpoint_paths() {
        assert_eq!(Endpoint::List.path("/zt/controls"), "/zt/controls");
        assert_eq!(Endpoint::Revoke.path("/zt/controls/"), "/zt/controls/revocations");
        assert_eq!(Endpoint::List.path("/"), "/");
        assert_eq!(Endpoint::Unblock.path(""), "/unblock");
    }
}
