//! Trust zones and context conditions: segmentation beyond scopes.
//!
//! Routes are grouped into named zones (in the policy: a route's `zone`, a zone's `routes`, or
//! the OpenAPI `x-zt-zone` extension). Each zone admits a caller only when every configured
//! condition holds: allowed token issuers, allowed SPIFFE trust domains or IDs, mutual TLS
//! required, certificate-bound tokens required (RFC 8705), allowed source networks, a maximum
//! token age (`auth_time`, else `iat`), and required `acr` / `amr` values.
//!
//! When the policy defines zones, a route in no zone belongs to the zone named `default`;
//! when there is no such zone, those routes are denied. A policy without zones skips this
//! stage entirely.
//!
//! Ownership bindings (against BOLA, OWASP API1) tie a path parameter to a claim: with
//! `param = "tenant_id", claim = "tenant_id"`, a request to `/tenants/{tenant_id}/...` is
//! only admitted when the token's `tenant_id` claim equals the parameter (or is an array
//! containing it).
//!
//! ```
//! use zt_core::policy::Policy;
//!
//! let policy = Policy::from_toml_str(r#"
//!     [[zones]]
//!     name = "admin"
//!     require_mtls = true
//!     require_bound_token = true
//!     spiffe_trust_domains = ["prod.example"]
//!     source_cidrs = ["10.0.0.0/8", "127.0.0.1/32"]
//!     routes = ["DELETE /orders/{id}"]
//!
//!     [[zones]]
//!     name = "default"
//!
//!     [[bindings]]
//!     param = "tenant_id"
//!     claim = "tenant_id"
//! "#).unwrap();
//! assert_eq!(policy.zones.len(), 2);
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::denial::Reason;
use crate::error::PolicyError;
use crate::identity::Identity;

/// One trust zone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's name (`default` is the zone of routes in no other zone).
    pub name: String,
    /// Routes in this zone, as `"METHOD /template"`.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Token issuers admitted (empty: any trusted issuer).
    #[serde(default)]
    pub issuers: Vec<String>,
    /// SPIFFE trust domains admitted (client certificate). Empty: any.
    #[serde(default)]
    pub spiffe_trust_domains: Vec<String>,
    /// Exact SPIFFE IDs admitted. Empty: any.
    #[serde(default)]
    pub spiffe_ids: Vec<String>,
    /// A verified client certificate is required.
    #[serde(default)]
    pub require_mtls: bool,
    /// The access token must be bound to the client certificate (`cnf.x5t#S256`).
    #[serde(default)]
    pub require_bound_token: bool,
    /// The access token must be sender-constrained: bound to the client certificate
    /// (RFC 8705) or to a DPoP key whose possession this request proved (RFC 9449).
    #[serde(default)]
    pub require_sender_constrained: bool,
    /// Source networks admitted (CIDR). Empty: any.
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    /// The authentication (`auth_time` when the token has one, else `iat`; any NumericDate,
    /// fractions included) must be at most this old.
    #[serde(default, with = "humantime_serde")]
    pub max_token_age: Option<Duration>,
    /// The token's `acr` must be one of these. Empty: not checked.
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// The token's `amr` must contain all of these. Empty: not checked.
    #[serde(default)]
    pub amr_values: Vec<String>,
}

/// A path parameter bound to a claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnershipBinding {
    /// The path parameter name (as in the route template).
    pub param: String,
    /// The claim that must equal it (or be an array containing it).
    pub claim: String,
}

pub(crate) struct Zone {
    pub(crate) name: String,
    issuers: Vec<String>,
    trust_domains: Vec<String>,
    spiffe_ids: Vec<String>,
    require_mtls: bool,
    require_bound_token: bool,
    require_sender_constrained: bool,
    source: Vec<IpNet>,
    max_age: Option<u64>,
    acr: Vec<String>,
    amr: Vec<String>,
}

/// The compiled zones.
#[derive(Default)]
pub(crate) struct Zones {
    zones: Vec<Zone>,
    by_route: HashMap<(String, String), usize>,
    default: Option<usize>,
    pub(crate) bindings: Vec<OwnershipBinding>,
}

fn parse_route(entry: &str) -> Option<(String, String)> {
    let (method, path) = entry.trim().split_once(' ')?;
    let path = path.trim();
    (path.starts_with('/') && !method.is_empty()).then(|| (method.to_ascii_uppercase(), path.to_string()))
}

impl Zones {
    pub(crate) fn compile(
        configs: &[ZoneConfig],
        route_zones: &[(String, String, String)],
        bindings: &[OwnershipBinding],
    ) -> Result<Zones, PolicyError> {
        let mut zones = Zones { bindings: bindings.to_vec(), ..Default::default() };
        for (i, z) in configs.iter().enumerate() {
            let at = format!("zones[{i}]");
            if z.name.is_empty() || zones.zones.iter().any(|o| o.name == z.name) {
                return Err(PolicyError::invalid(
                    format!("{at}.name"),
                    "zone names must be unique and non-empty",
                ));
            }
            let mut source = Vec::new();
            for (j, cidr) in z.source_cidrs.iter().enumerate() {
                let net = cidr
                    .parse::<IpNet>()
                    .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        PolicyError::invalid(
                            format!("{at}.source_cidrs[{j}]"),
                            format!("{cidr:?} is not a CIDR"),
                        )
                    })?;
                // As client addresses are keyed: `::ffff:10.0.0.0/104` admits IPv4 10/8.
                source.push(crate::limit::canonical_net(net));
            }
            for (j, d) in z.spiffe_trust_domains.iter().enumerate() {
                if d.is_empty() || d.contains('/') || d.chars().any(|c| c.is_ascii_uppercase()) {
                    return Err(PolicyError::invalid(
                        format!("{at}.spiffe_trust_domains[{j}]"),
                        "not a trust domain name",
                    ));
                }
            }
            for (j, id) in z.spiffe_ids.iter().enumerate() {
                crate::cert::SpiffeId::parse(id)
                    .map_err(|_| PolicyError::invalid(format!("{at}.spiffe_ids[{j}]"), "not a SPIFFE ID"))?;
            }
            if z.require_bound_token && !z.require_mtls {
                return Err(PolicyError::invalid(
                    format!("{at}.require_bound_token"),
                    "a bound token needs require_mtls = true",
                ));
            }
            let index = zones.zones.len();
            for (j, entry) in z.routes.iter().enumerate() {
                let key = parse_route(entry).ok_or_else(|| {
                    PolicyError::invalid(format!("{at}.routes[{j}]"), "expected \"METHOD /template\"")
                })?;
                if zones.by_route.insert(key, index).is_some() {
                    return Err(PolicyError::invalid(
                        format!("{at}.routes[{j}]"),
                        "this route is already in a zone",
                    ));
                }
            }
            if z.name == "default" {
                zones.default = Some(index);
            }
            zones.zones.push(Zone {
                name: z.name.clone(),
                issuers: z.issuers.clone(),
                trust_domains: z.spiffe_trust_domains.clone(),
                spiffe_ids: z.spiffe_ids.clone(),
                require_mtls: z.require_mtls,
                require_bound_token: z.require_bound_token,
                require_sender_constrained: z.require_sender_constrained,
                source,
                max_age: z.max_token_age.map(|d| d.as_secs()),
                acr: z.acr_values.clone(),
                amr: z.amr_values.clone(),
            });
        }
        for (method, path, zone) in route_zones {
            let Some(index) = zones.zones.iter().position(|z| &z.name == zone) else {
                return Err(PolicyError::invalid(
                    format!("route {method} {path}"),
                    format!("unknown zone {zone:?}"),
                ));
            };
            match zones.by_route.insert((method.clone(), path.clone()), index) {
                Some(other) if other != index => {
                    return Err(PolicyError::invalid(
                        format!("route {method} {path}"),
                        "assigned to two zones",
                    ));
                }
                _ => {}
            }
        }
        for (i, b) in bindings.iter().enumerate() {
            if b.param.is_empty() || b.claim.is_empty() {
                return Err(PolicyError::invalid(format!("bindings[{i}]"), "param and claim must be set"));
            }
        }
        Ok(zones)
    }

    /// True when no zone is configured (the stage is skipped).
    pub(crate) fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zone of a route (an index for [`Zones::zone`]): its own, else `default`; `Err`
    /// when zones exist but neither does. Resolved once per route when the routes are known.
    pub(crate) fn zone_of(&self, method: &str, template: &str) -> Result<Option<usize>, Reason> {
        if self.zones.is_empty() {
            return Ok(None);
        }
        let key = (method.to_string(), template.to_string());
        match self.by_route.get(&key).copied().or(self.default) {
            Some(i) => Ok(Some(i)),
            None => Err(Reason::ZoneDenied),
        }
    }

    /// The zone at `index` (from [`Zones::zone_of`]).
    pub(crate) fn zone(&self, index: usize) -> Option<&Zone> {
        self.zones.get(index)
    }

    /// The routes the zones name (`zones[].routes`, `x-zt-zone`, `routes[].zone`), as
    /// `(method, template)`: each must exist, or the policy names a route that is not served.
    pub(crate) fn named_routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_route.keys().map(|(m, t)| (m.as_str(), t.as_str()))
    }

    /// Checks ownership bindings against the identity's claims. `params` are the raw
    /// (percent-encoded) path parameters.
    pub(crate) fn check_bindings(
        &self,
        params: &[(String, String)],
        identity: Option<&Identity>,
    ) -> Result<(), Reason> {
        for binding in &self.bindings {
            let Some((_, raw)) = params.iter().find(|(name, _)| *name == binding.param) else { continue };
            let value = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| Reason::OwnershipMismatch)?;
            let owned = match identity.and_then(|i| i.claim(&binding.claim)) {
                Some(Value::String(s)) => *s == value,
                Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(&value)),
                Some(Value::Number(n)) => n.to_string() == value,
                _ => false,
            };
            if !owned {
                return Err(Reason::OwnershipMismatch);
            }
        }
        Ok(())
    }
}

impl Zone {
    /// Checks every condition of the zone.
    pub(crate) fn admit(
        &self,
        identity: Option<&Identity>,
        client_ip: Option<IpAddr>,
        now: u64,
    ) -> Result<(), Reason> {
        let certificate = identity.and_then(Identity::certificate);
        if self.require_mtls && certificate.is_none() {
            return Err(Reason::MtlsRequired);
        }
        if !self.trust_domains.is_empty() || !self.spiffe_ids.is_empty() {
            let spiffe = certificate.and_then(|c| c.spiffe_id()).ok_or(Reason::WorkloadNotAllowed)?;
            let domain_ok =
                self.trust_domains.is_empty() || self.trust_domains.iter().any(|d| spiffe.is_member_of(d));
            let id_ok =
                self.spiffe_ids.is_empty() || self.spiffe_ids.iter().any(|i| *i == spiffe.to_string());
            if !(domain_ok && id_ok) {
                return Err(Reason::WorkloadNotAllowed);
            }
        }
        if !self.source.is_empty()
            && !client_ip
                .map(|ip| ip.to_canonical())
                .is_some_and(|ip| self.source.iter().any(|n| n.contains(&ip)))
        {
            return Err(Reason::SourceNotAllowed);
        }
        let jwt = identity.filter(|i| i.has_access_token());
        if !self.issuers.is_empty() && !jwt.is_some_and(|i| self.issuers.iter().any(|x| x == i.issuer())) {
            return Err(Reason::IssuerNotAllowed);
        }
        if self.require_bound_token && !jwt.is_some_and(Identity::is_certificate_bound) {
            return Err(Reason::BoundTokenRequired);
        }
        if self.require_sender_constrained && !jwt.is_some_and(Identity::is_sender_constrained) {
            return Err(Reason::SenderConstrainedRequired);
        }
        if let Some(max_age) = self.max_age {
            // `auth_time` when the token has one, whatever its numeric form (verification
            // refused a value that is not a NumericDate); `iat` only when it has none.
            let authenticated = jwt.and_then(|i| match i.claim("auth_time") {
                Some(auth_time) => crate::token::numeric_date_value(auth_time),
                None => i.claim("iat").and_then(crate::token::numeric_date_value),
            });
            if authenticated.is_none_or(|t| now.saturating_sub(t) > max_age) {
                return Err(Reason::AuthenticationTooOld);
            }
        }
        if !self.acr.is_empty() {
            let acr = jwt.and_then(|i| i.claim("acr")).and_then(Value::as_str);
            if !acr.is_some_and(|a| self.acr.iter().any(|x| x == a)) {
                return Err(Reason::AuthenticationContextNotMet);
            }
        }
        if !self.amr.is_empty() {
            let amr: Vec<&str> = jwt
                .and_then(|i| i.claim("amr"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !self.amr.iter().all(|m| amr.contains(&m.as_str())) {
                return Err(Reason::AuthenticationContextNotMet);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(toml: &str) -> Zones {
        let configs: Vec<ZoneConfig> = vec![toml::from_str(toml).unwrap()];
        Zones::compile(&configs, &[], &[]).unwrap()
    }

    #[test]
    fn source_networks_are_read_as_client_addresses_are_keyed() {
        let zones =
            zone("name = \"default\"\nsource_cidrs = [\"::ffff:10.0.0.0/104\", \"::ffff:192.0.2.7\"]");
        let z = zones.zone(0).unwrap();
        for (ip, admitted) in [
            ("10.1.2.3", true),
            ("::ffff:10.9.9.9", true),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("11.0.0.1", false),
        ] {
            let result = z.admit(None, Some(ip.parse().unwrap()), 0);
            assert_eq!(result.is_ok(), admitted, "{ip}: {result:?}");
        }
    }
}
