//! What blocks, throttles and challenges apply to: a subject, an address, or a network of
//! a configured width. A leaf module shared by detection, responses and controls.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::store::{domain, key_of};

/// How wide a "network" is: the prefix that groups one subscriber's or one site's
/// addresses (blocks and credential-stuffing detection work per network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPrefix {
    /// IPv4 prefix length. Default 24.
    pub ipv4: u8,
    /// IPv6 prefix length. Default 64 (one subscriber usually holds a whole /64).
    pub ipv6: u8,
}

impl Default for NetworkPrefix {
    fn default() -> Self {
        NetworkPrefix { ipv4: 24, ipv6: 64 }
    }
}

impl NetworkPrefix {
    /// The network containing `ip` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn network_of(&self, ip: IpAddr) -> IpNet {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let len = match ip {
            IpAddr::V4(_) => self.ipv4.min(32),
            IpAddr::V6(_) => self.ipv6.min(128),
        };
        // The prefix is clamped to the address width, so this cannot fail; fall back to
        // the host route regardless.
        IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
    }
}

/// What a block, throttle or challenge applies to.
///
/// A caller can be named several ways; [`Controls::is_caller_blocked`](super::Controls::is_caller_blocked) checks them all:
/// - [`Target::Principal`]: the canonical caller key ([`Identity::principal`](crate::Identity::principal)), one issuer's
///   subject or client, or a certificate identity: the precise choice;
/// - [`Target::Subject`]: the bare `sub` claim, whichever issuer vouched for it;
/// - [`Target::Client`]: an OAuth client id (`azp`, else `client_id`), every user of it;
/// - [`Target::Address`] and [`Target::Network`]: where requests come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// A verified subject (the bare `sub`, any issuer).
    Subject(String),
    /// A canonical caller key, as [`Identity::principal`](crate::Identity::principal) spells it
    /// (`https://issuer.example|sub:alice`).
    Principal(String),
    /// An OAuth client id (`azp`, else `client_id`).
    Client(String),
    /// One client address.
    Address(IpAddr),
    /// A network ([`NetworkPrefix`] wide when created by the observer).
    Network(IpNet),
}

impl Target {
    /// `subject`, `principal`, `client`, `address`, or `network`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Subject(_) => "subject",
            Target::Principal(_) => "principal",
            Target::Client(_) => "client",
            Target::Address(_) => "address",
            Target::Network(_) => "network",
        }
    }

    pub(super) fn key(&self) -> u64 {
        match self {
            Target::Subject(s) => key_of(domain::SUBJECT, s.as_str()),
            Target::Principal(p) => key_of(domain::PRINCIPAL, p.as_str()),
            Target::Client(c) => key_of(domain::CLIENT, c.as_str()),
            Target::Address(ip) => key_of(domain::ADDRESS, ip),
            Target::Network(net) => key_of(domain::NETWORK, net),
        }
    }
}

impl Serialize for Target {
    /// As its display text, e.g. `network:203.0.113.0/24`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Subject(s) => write!(f, "subject:{s}"),
            Target::Principal(p) => write!(f, "principal:{p}"),
            Target::Client(c) => write!(f, "client:{c}"),
            Target::Address(ip) => write!(f, "address:{ip}"),
            Target::Network(net) => write!(f, "network:{net}"),
        }
    }
}
