//! Who the client is: the TCP peer, or what trusted reverse proxies say it is.
//!
//! A client-address header is only believed when the TCP peer is one of the configured
//! trusted proxies; from anyone else it is ignored, so a client can never choose its own
//! key by sending `X-Forwarded-For` (tower_governor trusts the left-most entry, which the
//! client controls). Behind trusted proxies the header's entries are walked right to left,
//! across all its lines in order (several lines form one list): each proxy appends the
//! address it received the request from, so the right-most entries are the most trusted
//! ones. Trusted proxies are skipped; the first untrusted entry is the client.
//!
//! Anything that cannot be read stops the walk at the last trusted hop, which then stands
//! for the client: a malformed entry, an RFC 7239 `unknown` or obfuscated (`_abc`)
//! identifier, a `Forwarded` element without `for=`, non-UTF-8 bytes, more than 32 hops.
//! Failing this way is safe: the key falls back to an address a trusted party vouched for,
//! never to one the client wrote.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) count as IPv4, and IPv6 clients are
//! keyed by their `/64` (configurable): one subscriber usually holds a whole /64 and could
//! otherwise rotate through 2^64 keys.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};

use crate::error::PolicyError;
use crate::limit::config::ClientIpHeader;
use crate::request::HeaderLookup;

/// Most header entries walked; a longer chain stops at the last trusted hop.
const MAX_HOPS: usize = 32;
/// Most header lines looked at.
const MAX_LINES: usize = 64;

/// Resolves the client address of a request.
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use zt_core::limit::{ClientAddressResolver, ClientIpHeader};
/// use zt_core::request::HeaderList;
///
/// let resolver = ClientAddressResolver::new(&["10.0.0.0/8".into()], ClientIpHeader::XForwardedFor, 64).unwrap();
/// let headers = HeaderList::default().with("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3");
/// let proxy: SocketAddr = "10.0.0.1:41000".parse().unwrap();
/// // 10.1.2.3 is another trusted proxy; 203.0.113.9 is the client; 6.6.6.6 is what the
/// // client claimed and is never looked at.
/// assert_eq!(resolver.client_address(Some(proxy), &headers), Some("203.0.113.9".parse().unwrap()));
///
/// let stranger: SocketAddr = "198.51.100.7:5000".parse().unwrap();
/// assert_eq!(resolver.client_address(Some(stranger), &headers), Some(stranger.ip()));
/// ```
#[derive(Debug, Clone)]
pub struct ClientAddressResolver {
    trusted: Vec<IpNet>,
    header: ClientIpHeader,
    ipv6_prefix: u8,
}

enum Hop {
    Address(IpAddr),
    /// Unknown, obfuscated or unreadable: the walk stops.
    Stop,
}

impl ClientAddressResolver {
    /// Parses the trusted-proxy list (CIDRs or single addresses) and checks the prefix
    /// (1..=128). Errors name the entry, e.g. `limits.trusted_proxies[1]`.
    pub fn new(
        trusted_proxies: &[String],
        header: ClientIpHeader,
        ipv6_prefix: u8,
    ) -> Result<ClientAddressResolver, PolicyError> {
        let mut trusted = Vec::with_capacity(trusted_proxies.len());
        for (i, entry) in trusted_proxies.iter().enumerate() {
            let text = entry.trim();
            let net = match text.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(PolicyError::invalid(
                            format!("limits.trusted_proxies[{i}]"),
                            format!("`{text}` is not a CIDR (e.g. `10.0.0.0/8`) or an IP address"),
                        ));
                    }
                },
            };
            trusted.push(canonical_net(net));
        }
        if !(1..=128).contains(&ipv6_prefix) {
            return Err(PolicyError::invalid("limits.ipv6_prefix", "must be between 1 and 128"));
        }
        Ok(ClientAddressResolver { trusted, header, ipv6_prefix })
    }

    /// True when `ip` is inside a trusted-proxy range.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, or behind trusted proxies the first untrusted hop of
    /// the configured header. `None` only without a peer (headers alone are never believed).
    pub fn client_address(&self, peer: Option<SocketAddr>, headers: &dyn HeaderLookup) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if self.trusted.is_empty() || !self.is_trusted(peer) {
            return Some(peer);
        }
        Some(self.walk(peer, headers))
    }

    /// The address a quota or lockout is keyed by: [`client_address`](Self::client_address)
    /// with IPv6 grouped by the configured prefix.
    pub fn client_key(&self, peer: Option<SocketAddr>, headers: &dyn HeaderLookup) -> Option<IpAddr> {
        self.client_address(peer, headers).map(|ip| self.group(ip))
    }

    /// Groups an address for keying: IPv4 (also IPv4-mapped IPv6) as is, IPv6 truncated to
    /// the configured prefix.
    pub fn group(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }

    fn walk(&self, peer: IpAddr, headers: &dyn HeaderLookup) -> IpAddr {
        let name = self.header.header_name();
        let mut lines = 0;
        while lines < MAX_LINES && headers.nth(name, lines).is_some() {
            lines += 1;
        }
        let mut current = peer;
        let mut hops = 0;
        for line in (0..lines).rev() {
            let Some(Ok(text)) = headers.nth(name, line).map(std::str::from_utf8) else {
                return current;
            };
            for element in text.rsplit(',') {
                // RFC 9110 s.5.6.1: empty list elements are ignored.
                if element.trim_matches([' ', '\t']).is_empty() {
                    continue;
                }
                hops += 1;
                if hops > MAX_HOPS {
                    return current;
                }
                let hop = match self.header {
                    ClientIpHeader::XForwardedFor => parse_xff_node(element),
                    ClientIpHeader::Forwarded => parse_forwarded_element(element),
                };
                match hop {
                    Hop::Address(ip) => {
                        let ip = ip.to_canonical();
                        if !self.is_trusted(ip) {
                            return ip;
                        }
                        current = ip;
                    }
                    Hop::Stop => return current,
                }
            }
        }
        current
    }
}

/// Trusted ranges written as IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) match IPv4 peers.
/// Also how the runtime controls store a blocked network (`observe::Controls`).
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

/// An `X-Forwarded-For` entry: an address, optionally bracketed or with a port (some
/// proxies add one).
fn parse_xff_node(element: &str) -> Hop {
    let text = element.trim_matches([' ', '\t']);
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Hop::Address(ip);
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Hop::Address(sa.ip());
    }
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).map(str::parse::<Ipv6Addr>) {
        Some(Ok(v6)) => Hop::Address(IpAddr::V6(v6)),
        _ => Hop::Stop,
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// One RFC 7239 `forwarded-element`: `;`-separated pairs, exactly one of them `for=`.
fn parse_forwarded_element(element: &str) -> Hop {
    let mut node = None;
    for pair in element.split(';') {
        let pair = pair.trim_matches([' ', '\t']);
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else { return Hop::Stop };
        if name.is_empty() || !name.chars().all(is_tchar) {
            return Hop::Stop;
        }
        let value = match value.strip_prefix('"') {
            Some(quoted) => match quoted.strip_suffix('"') {
                // Escapes never occur in a valid node; refusing them keeps parsing simple.
                Some(inner) if !inner.contains(['"', '\\']) => inner,
                _ => return Hop::Stop,
            },
            None if !value.is_empty() && value.chars().all(|c| is_tchar(c) || c == ':') => value,
            None => return Hop::Stop,
        };
        if name.eq_ignore_ascii_case("for") {
            if node.is_some() {
                return Hop::Stop;
            }
            node = Some(value);
        }
    }
    match node {
        Some(node) => parse_forwarded_node(node),
        None => Hop::Stop,
    }
}

/// An RFC 7239 `node`: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`,
/// `[2001:db8::17]:4711`, `unknown`, `_hidden` (ports may be obfuscated too).
fn parse_forwarded_node(node: &str) -> Hop {
    let (address, port) = if let Some(rest) = node.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else { return Hop::Stop };
        match inner.parse::<Ipv6Addr>() {
            Ok(v6) => (IpAddr::V6(v6), after),
            Err(_) => return Hop::Stop,
        }
    } else {
        let (host, port) = match node.find(':') {
            Some(i) => (&node[..i], &node[i..]),
            None => (node, ""),
        };
        // `unknown` and obfuscated identifiers fail to parse here and stop the walk.
        match host.parse::<std::net::Ipv4Addr>() {
            Ok(v4) => (IpAddr::V4(v4), port),
            Err(_) => return Hop::Stop,
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => {
            (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
                || (p.starts_with('_')
                    && p.len() > 1
                    && p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        }
    };
    if port_ok { Hop::Address(address) } else { Hop::Stop }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HeaderList;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn peer(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip(s), 4242))
    }
    fn xff(trusted: &[&str]) -> ClientAddressResolver {
        let t: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        ClientAddressResolver::new(&t, ClientIpHeader::XForwardedFor, 64).unwrap()
    }
    fn fwd(trusted: &[&str]) -> ClientAddressResolver {
        let t: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        ClientAddressResolver::new(&t, ClientIpHeader::Forwarded, 64).unwrap()
    }

    #[test]
    fn spoofed_xff_from_untrusted_peer_is_ignored() {
        let r = xff(&["10.0.0.0/8"]);
        let h = HeaderList::default().with("x-forwarded-for", "1.2.3.4");
        assert_eq!(r.client_address(peer("198.51.100.7"), &h), Some(ip("198.51.100.7")));
        // Without any trusted proxy the header is never read.
        let none = xff(&[]);
        assert_eq!(none.client_address(peer("10.0.0.1"), &h), Some(ip("10.0.0.1")));
        // No peer, no address: headers alone are never believed.
        assert_eq!(r.client_address(None, &h), None);
    }

    #[test]
    fn trusted_chain_is_walked_right_to_left() {
        let r = xff(&["10.0.0.0/8", "192.168.0.0/16"]);
        let h = HeaderList::default().with("x-forwarded-for", "6.6.6.6, 203.0.113.9, 192.168.1.1, 10.9.9.9");
        assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("203.0.113.9")));
    }

    #[test]
    fn several_header_lines_form_one_list() {
        let r = xff(&["10.0.0.0/8"]);
        // The client's own line comes first; the proxy's appended line last.
        let h = HeaderList::default()
            .with("x-forwarded-for", "6.6.6.6")
            .with("x-forwarded-for", "203.0.113.9, 10.2.2.2");
        assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("203.0.113.9")));
        let h =
            HeaderList::default().with("x-forwarded-for", "203.0.113.9").with("x-forwarded-for", "10.2.2.2");
        assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("203.0.113.9")));
    }

    #[test]
    fn all_trusted_chain_yields_left_most_trusted_hop() {
        let r = xff(&["10.0.0.0/8"]);
        let h = HeaderList::default().with("x-forwarded-for", "10.3.3.3, 10.2.2.2");
        assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("10.3.3.3")));
        let empty = HeaderList::default();
        assert_eq!(r.client_address(peer("10.0.0.1"), &empty), Some(ip("10.0.0.1")));
    }

    #[test]
    fn malformed_entries_stop_at_last_trusted_hop() {
        let r = xff(&["10.0.0.0/8"]);
        for value in [
            "203.0.113.9, garbage, 10.2.2.2",
            "203.0.113.9, 1.2.3.4.5, 10.2.2.2",
            "203.0.113.9, unknown, 10.2.2.2",
            "203.0.113.9, fe80::1%eth0, 10.2.2.2",
        ] {
            let h = HeaderList::default().with("x-forwarded-for", value);
            assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("10.2.2.2")), "{value}");
        }
        let h = HeaderList::default().with("x-forwarded-for", b"\xff\xfe".as_slice());
        assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("10.0.0.1")));
        // Empty list elements are ignored, not malformed.
        let h = HeaderList::default().with("x-forwarded-for", "203.0.113.9, , 10.2.2.2,");
        assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("203.0.113.9")));
    }

    #[test]
    fn xff_accepts_ports_and_brackets() {
        let r = xff(&["10.0.0.0/8"]);
        for (value, want) in [
            ("203.0.113.9:5555", "203.0.113.9"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            let h = HeaderList::default().with("x-forwarded-for", value);
            assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip(want)), "{value}");
        }
    }

    #[test]
    fn too_long_chains_stop() {
        let r = xff(&["10.0.0.0/8"]);
        let mut hops: Vec<String> = vec!["203.0.113.9".into()];
        hops.extend((0..40).map(|i| format!("10.0.1.{i}")));
        let h = HeaderList::default().with("x-forwarded-for", hops.join(", "));
        let got = r.client_address(peer("10.0.0.1"), &h).unwrap();
        assert!(r.is_trusted(got), "stopped at a trusted hop, got {got}");
    }

    #[test]
    fn forwarded_header() {
        let r = fwd(&["10.0.0.0/8"]);
        for (value, want) in [
            ("for=203.0.113.9", "203.0.113.9"),
            ("for=6.6.6.6, for=203.0.113.9;proto=https, for=10.2.2.2", "203.0.113.9"),
            ("For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]\";by=10.0.0.1", "2001:db8:cafe::17"),
            ("for=\"203.0.113.9:47011\"", "203.0.113.9"),
            ("for=\"203.0.113.9:_port\"", "203.0.113.9"),
            ("proto=http;for=203.0.113.9;by=_proxy", "203.0.113.9"),
        ] {
            let h = HeaderList::default().with("forwarded", value);
            assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip(want)), "{value}");
        }
    }

    #[test]
    fn forwarded_unknown_and_obfuscated_stop_the_walk() {
        let r = fwd(&["10.0.0.0/8"]);
        for value in [
            "for=203.0.113.9, for=unknown, for=10.2.2.2",
            "for=203.0.113.9, for=_hidden, for=10.2.2.2",
            "for=203.0.113.9, proto=https, for=10.2.2.2",
            "for=203.0.113.9, for=1.1.1.1;for=2.2.2.2, for=10.2.2.2",
            "for=203.0.113.9, for=2001:db8::1, for=10.2.2.2",
            "for=203.0.113.9, for=\"[2001:db8::1]:99999999\", for=10.2.2.2",
            "for=\"1.1.1.1, for=9.9.9.9\", for=10.2.2.2",
        ] {
            let h = HeaderList::default().with("forwarded", value);
            assert_eq!(r.client_address(peer("10.0.0.1"), &h), Some(ip("10.2.2.2")), "{value}");
        }
    }

    #[test]
    fn forwarded_is_ignored_when_xff_configured_and_vice_versa() {
        let h = HeaderList::default().with("forwarded", "for=203.0.113.9");
        assert_eq!(xff(&["10.0.0.0/8"]).client_address(peer("10.0.0.1"), &h), Some(ip("10.0.0.1")));
        let h = HeaderList::default().with("x-forwarded-for", "203.0.113.9");
        assert_eq!(fwd(&["10.0.0.0/8"]).client_address(peer("10.0.0.1"), &h), Some(ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_grouping_and_mapped_addresses() {
        let r = xff(&["::ffff:10.0.0.0/104"]);
        assert!(r.is_trusted(ip("10.1.2.3")));
        assert_eq!(r.group(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        assert_eq!(r.group(ip("2001:db8:1:2::1")), r.group(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(r.group(ip("2001:db8:1:2::1")), r.group(ip("2001:db8:1:3::1")));
        assert_eq!(r.group(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        let h = HeaderList::default();
        assert_eq!(r.client_key(peer("::ffff:198.51.100.7"), &h), Some(ip("198.51.100.7")));
        // A mapped peer inside a trusted IPv4 range is trusted.
        let h = HeaderList::default().with("x-forwarded-for", "2001:db8:7:7::5");
        assert_eq!(r.client_key(peer("::ffff:10.0.0.1"), &h), Some(ip("2001:db8:7:7::")));
        let r48 = ClientAddressResolver::new(&[], ClientIpHeader::XForwardedFor, 48).unwrap();
        assert_eq!(r48.group(ip("2001:db8:1:2::1")), ip("2001:db8:1::"));
        let r128 = ClientAddressResolver::new(&[], ClientIpHeader::XForwardedFor, 128).unwrap();
        assert_eq!(r128.group(ip("2001:db8::1")), ip("2001:db8::1"));
    }

    #[test]
    fn invalid_config_names_the_entry() {
        let err = ClientAddressResolver::new(
            &["10.0.0.0/8".into(), "10.0.0.0/33".into()],
            ClientIpHeader::XForwardedFor,
            64,
        )
        .unwrap_err();
        assert!(err.to_string().contains("limits.trusted_proxies[1]"), "{err}");
        assert!(ClientAddressResolver::new(&["192.0.2.1".into()], ClientIpHeader::Forwarded, 64).is_ok());
        let err = ClientAddressResolver::new(&[], ClientIpHeader::XForwardedFor, 0).unwrap_err();
        assert!(err.to_string().contains("limits.ipv6_prefix"), "{err}");
        assert!(ClientAddressResolver::new(&[], ClientIpHeader::XForwardedFor, 129).is_err());
    }
}
