// The module's documentation is on `GeoResolver`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::request::{HeaderLookup, HeaderValue};

/// An assigned ISO 3166-1 alpha-2 country code, upper case. Two bytes, `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

/// Assigned ISO 3166-1 alpha-2 codes (249) plus `XK`, sorted for binary search.
const ASSIGNED: &[[u8; 2]] = &[
    *b"AD", *b"AE", *b"AF", *b"AG", *b"AI", *b"AL", *b"AM", *b"AO", *b"AQ", *b"AR", *b"AS", *b"AT", *b"AU",
    *b"AW", *b"AX", *b"AZ", *b"BA", *b"BB", *b"BD", *b"BE", *b"BF", *b"BG", *b"BH", *b"BI", *b"BJ", *b"BL",
    *b"BM", *b"BN", *b"BO", *b"BQ", *b"BR", *b"BS", *b"BT", *b"BV", *b"BW", *b"BY", *b"BZ", *b"CA", *b"CC",
    *b"CD", *b"CF", *b"CG", *b"CH", *b"CI", *b"CK", *b"CL", *b"CM", *b"CN", *b"CO", *b"CR", *b"CU", *b"CV",
    *b"CW", *b"CX", *b"CY", *b"CZ", *b"DE", *b"DJ", *b"DK", *b"DM", *b"DO", *b"DZ", *b"EC", *b"EE", *b"EG",
    *b"EH", *b"ER", *b"ES", *b"ET", *b"FI", *b"FJ", *b"FK", *b"FM", *b"FO", *b"FR", *b"GA", *b"GB", *b"GD",
    *b"GE", *b"GF", *b"GG", *b"GH", *b"GI", *b"GL", *b"GM", *b"GN", *b"GP", *b"GQ", *b"GR", *b"GS", *b"GT",
    *b"GU", *b"GW", *b"GY", *b"HK", *b"HM", *b"HN", *b"HR", *b"HT", *b"HU", *b"ID", *b"IE", *b"IL", *b"IM",
    *b"IN", *b"IO", *b"IQ", *b"IR", *b"IS", *b"IT", *b"JE", *b"JM", *b"JO", *b"JP", *b"KE", *b"KG", *b"KH",
    *b"KI", *b"KM", *b"KN", *b"KP", *b"KR", *b"KW", *b"KY", *b"KZ", *b"LA", *b"LB", *b"LC", *b"LI", *b"LK",
    *b"LR", *b"LS", *b"LT", *b"LU", *b"LV", *b"LY", *b"MA", *b"MC", *b"MD", *b"ME", *b"MF", *b"MG", *b"MH",
    *b"MK", *b"ML", *b"MM", *b"MN", *b"MO", *b"MP", *b"MQ", *b"MR", *b"MS", *b"MT", *b"MU", *b"MV", *b"MW",
    *b"MX", *b"MY", *b"MZ", *b"NA", *b"NC", *b"NE", *b"NF", *b"NG", *b"NI", *b"NL", *b"NO", *b"NP", *b"NR",
    *b"NU", *b"NZ", *b"OM", *b"PA", *b"PE", *b"PF", *b"PG", *b"PH", *b"PK", *b"PL", *b"PM", *b"PN", *b"PR",
    *b"PS", *b"PT", *b"PW", *b"PY", *b"QA", *b"RE", *b"RO", *b"RS", *b"RU", *b"RW", *b"SA", *b"SB", *b"SC",
    *b"SD", *b"SE", *b"SG", *b"SH", *b"SI", *b"SJ", *b"SK", *b"SL", *b"SM", *b"SN", *b"SO", *b"SR", *b"SS",
    *b"ST", *b"SV", *b"SX", *b"SY", *b"SZ", *b"TC", *b"TD", *b"TF", *b"TG", *b"TH", *b"TJ", *b"TK", *b"TL",
    *b"TM", *b"TN", *b"TO", *b"TR", *b"TT", *b"TV", *b"TW", *b"TZ", *b"UA", *b"UG", *b"UM", *b"US", *b"UY",
    *b"UZ", *b"VA", *b"VC", *b"VE", *b"VG", *b"VI", *b"VN", *b"VU", *b"WF", *b"WS", *b"XK", *b"YE", *b"YT",
    *b"ZA", *b"ZM", *b"ZW",
];

impl CountryCode {
    /// Parses a code (case-insensitive, surrounding whitespace ignored); `None` unless it
    /// is an assigned ISO 3166-1 alpha-2 code or `XK`.
    pub fn parse(text: &[u8]) -> Option<CountryCode> {
        let text = text.trim_ascii();
        let [a, b] = text else { return None };
        let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
        ASSIGNED.binary_search(&code).is_ok().then_some(CountryCode(code))
    }

    /// The code, e.g. `DE`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters from ASSIGNED ever get here.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl std::fmt::Display for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CountryCode::parse(text.as_bytes())
            .ok_or_else(|| serde::de::Error::custom("not an ISO 3166-1 alpha-2 country code"))
    }
}

/// Where countries come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// A header set by a trusted proxy or CDN, e.g. `cf-ipcountry`. Default: none.
    pub trusted_header: Option<String>,
    /// A MaxMind-format database file (GeoIP2/GeoLite2 Country or City); needs the
    /// `geoip` feature. Default: none.
    pub database: Option<std::path::PathBuf>,
    /// Most addresses whose database answer is cached. Default 10 000.
    pub cache_capacity: usize,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig { trusted_header: None, database: None, cache_capacity: 10_000 }
    }
}

/// Resolves a client's country. Cheap to share (`Arc` it); lookups never block on I/O.
///
/// The client's country: from a trusted proxy's header, or from a MaxMind-format database.
///
/// A CDN in front of the service often says where the client is (Cloudflare's
/// `cf-ipcountry`, CloudFront's `cloudfront-viewer-country`). That header is believed only
/// when the Guard says the TCP peer is a trusted proxy: from anyone else it is the
/// client's own claim. Values are accepted only when they are an assigned ISO 3166-1
/// alpha-2 code (plus `XK`, which MaxMind and CDNs use for Kosovo); CDN placeholders such
/// as `XX` (unknown) and `T1` (Tor) read as unknown.
///
/// With the `geoip` feature, a GeoIP2/GeoLite2 Country or City database answers when no
/// trusted header does. Lookups are cached per address (bounded, default 10 000 entries,
/// approximate-LRU eviction), and private, loopback and link-local addresses are never
/// looked up.
///
/// ```
/// use std::net::IpAddr;
/// use zt_core::observe::{GeoConfig, GeoResolver};
/// use zt_core::request::HeaderList;
///
/// let geo = GeoResolver::new(&GeoConfig { trusted_header: Some("cf-ipcountry".into()), ..GeoConfig::default() })?;
/// let headers = HeaderList::default().with("cf-ipcountry", "de");
/// let ip: IpAddr = "192.0.2.1".parse()?;
/// assert_eq!(geo.resolve(&headers, true, Some(ip)).map(|c| c.to_string()), Some("DE".into()));
/// // From a peer that is not a trusted proxy, the header is ignored.
/// assert_eq!(geo.resolve(&headers, false, Some(ip)), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GeoResolver {
    header: Option<String>,
    #[cfg(feature = "geoip")]
    database: Option<maxminddb::Reader<Vec<u8>>>,
    #[cfg_attr(not(feature = "geoip"), allow(dead_code))]
    cache: quick_cache::sync::Cache<IpAddr, Option<CountryCode>>,
}

impl std::fmt::Debug for GeoResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoResolver")
            .field("header", &self.header)
            .field("database", &self.has_database())
            .finish_non_exhaustive()
    }
}

impl GeoResolver {
    /// Builds a resolver; opens and checks the database file when one is configured.
    ///
    /// Errors name the entry: `observe.geo.database: ...` (a database configured without
    /// the `geoip` feature is an error, not silently ignored).
    pub fn new(config: &GeoConfig) -> Result<GeoResolver, PolicyError> {
        let header = match &config.trusted_header {
            Some(h) if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
                return Err(PolicyError::invalid("observe.geo.trusted_header", "not a header name"));
            }
            Some(h) => Some(h.to_ascii_lowercase()),
            None => None,
        };
        if config.cache_capacity == 0 {
            return Err(PolicyError::invalid("observe.geo.cache_capacity", "must be at least 1"));
        }
        let cache = quick_cache::sync::Cache::new(config.cache_capacity);
        #[cfg(feature = "geoip")]
        {
            let database = match &config.database {
                Some(path) => Some(open_database(path)?),
                None => None,
            };
            Ok(GeoResolver { header, database, cache })
        }
        #[cfg(not(feature = "geoip"))]
        {
            if config.database.is_some() {
                return Err(PolicyError::invalid(
                    "observe.geo.database",
                    "country databases need the zt feature `geoip`",
                ));
            }
            Ok(GeoResolver { header, cache })
        }
    }

    /// A resolver with a database read from memory (e.g. bytes embedded in a test).
    #[cfg(feature = "geoip")]
    pub fn with_database_bytes(config: &GeoConfig, bytes: Vec<u8>) -> Result<GeoResolver, PolicyError> {
        let mut resolver = GeoResolver::new(&GeoConfig { database: None, ..config.clone() })?;
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| PolicyError::invalid("observe.geo.database", e.to_string()))?;
        resolver.database = Some(reader);
        Ok(resolver)
    }

    fn has_database(&self) -> bool {
        #[cfg(feature = "geoip")]
        {
            self.database.is_some()
        }
        #[cfg(not(feature = "geoip"))]
        {
            false
        }
    }

    /// The client's country: the trusted header when `peer_is_trusted_proxy` and it holds
    /// one valid code (sent once), else the database's answer for `client_ip`, else `None`.
    pub fn resolve(
        &self,
        headers: &dyn HeaderLookup,
        peer_is_trusted_proxy: bool,
        client_ip: Option<IpAddr>,
    ) -> Option<CountryCode> {
        if peer_is_trusted_proxy
            && let Some(name) = &self.header
            && let HeaderValue::One(value) = headers.get_one(name)
            && let Some(code) = CountryCode::parse(value)
        {
            return Some(code);
        }
        client_ip.and_then(|ip| self.lookup(ip))
    }

    /// The database's answer for an address (cached); `None` without a database, for
    /// non-public addresses, and for addresses the database does not know.
    pub fn lookup(&self, ip: IpAddr) -> Option<CountryCode> {
        if !self.has_database() || !is_public(ip) {
            return None;
        }
        if let Some(hit) = self.cache.get(&ip) {
            return hit;
        }
        let answer = self.lookup_uncached(ip);
        self.cache.insert(ip, answer);
        answer
    }

    #[cfg(feature = "geoip")]
    fn lookup_uncached(&self, ip: IpAddr) -> Option<CountryCode> {
        let reader = self.database.as_ref()?;
        let result = reader.lookup(ip).ok()?;
        // Country and City databases both have country.iso_code; fall back to the
        // registered country (e.g. for anycast ranges without a located country).
        let code: Option<String> =
            result.decode_path(&maxminddb::path!["country", "iso_code"]).ok().flatten();
        let code = match code {
            Some(code) => Some(code),
            None => result.decode_path(&maxminddb::path!["registered_country", "iso_code"]).ok().flatten(),
        };
        code.and_then(|c| CountryCode::parse(c.as_bytes()))
    }

    #[cfg(not(feature = "geoip"))]
    fn lookup_uncached(&self, _ip: IpAddr) -> Option<CountryCode> {
        None
    }

    /// Addresses whose database answer is cached now (at most the configured capacity).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(feature = "geoip")]
fn open_database(path: &std::path::Path) -> Result<maxminddb::Reader<Vec<u8>>, PolicyError> {
    maxminddb::Reader::open_readfile(path).map_err(|e| {
        PolicyError::invalid("observe.geo.database", format!("cannot open {}: {e}", path.display()))
    })
}

/// Addresses worth looking up: not private, loopback, link-local, unspecified or
/// documentation ranges (which no database locates anyway).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast())
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HeaderList;

    #[test]
    fn assigned_list_is_sorted_and_complete() {
        assert!(ASSIGNED.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ASSIGNED.len(), 250, "249 assigned codes plus XK");
    }

    #[test]
    fn parses_only_assigned_codes() {
        assert_eq!(CountryCode::parse(b" de ").map(|c| c.to_string()), Some("DE".into()));
        for bad in [&b"XX"[..], b"T1", b"ZZ", b"D", b"DEU", b"", b"\xffE"] {
            assert_eq!(CountryCode::parse(bad), None, "{bad:?}");
        }
        let json = serde_json::to_string(&CountryCode::parse(b"fr")).unwrap();
        assert_eq!(json, "\"FR\"");
    }

    #[test]
    fn header_only_from_trusted_proxy_and_only_once() {
        let geo = GeoResolver::new(&GeoConfig {
            trusted_header: Some("CF-IPCountry".into()),
            ..GeoConfig::default()
        })
        .unwrap();
        let ip = Some("198.51.100.7".parse().unwrap());
        let one = HeaderList::default().with("cf-ipcountry", "US");
        assert_eq!(geo.resolve(&one, true, ip).map(|c| c.to_string()), Some("US".into()));
        assert_eq!(geo.resolve(&one, false, ip), None);
        let twice = one.clone().with("cf-ipcountry", "DE");
        assert_eq!(geo.resolve(&twice, true, ip), None);
        let tor = HeaderList::default().with("cf-ipcountry", "T1");
        assert_eq!(geo.resolve(&tor, true, ip), None);
    }

    #[test]
    fn bad_config_is_named() {
        let err = GeoResolver::new(&GeoConfig { trusted_header: Some("a b".into()), ..GeoConfig::default() })
            .unwrap_err();
        assert!(err.to_string().contains("observe.geo.trusted_header"));
        #[cfg(not(feature = "geoip"))]
        {
            let err =
                GeoResolver::new(&GeoConfig { database: Some("x.mmdb".into()), ..GeoConfig::default() })
                    .unwrap_err();
            assert!(err.to_string().contains("geoip"));
        }
    }

    #[test]
    fn public_address_filter() {
        for private in ["10.1.2.3", "127.0.0.1", "192.168.0.1", "169.254.1.1", "::1", "fd00::1", "fe80::1"] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["81.2.69.160", "2a02:db8::1", "::ffff:81.2.69.160"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    /// A minimal MaxMind DB (IPv4 tree, 24-bit records) mapping 81.0.0.0/8 to `country`,
    /// written by hand from the published format so the test needs no database file.
    #[cfg(feature = "geoip")]
    fn tiny_mmdb(country: &str) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.push(0x40 | s.len() as u8); // type 2 (UTF-8 string), size < 29
            out.extend_from_slice(s.as_bytes());
        }
        fn uint(out: &mut Vec<u8>, type_bits: u8, v: u8) {
            out.push((type_bits << 5) | 1);
            out.push(v);
        }
        let first_octet = 81u8;
        let node_count = 8u32;
        let data_pointer = node_count + 16; // data offset 0
        let mut tree = Vec::new();
        for bit in 0..8 {
            let set = (first_octet >> (7 - bit)) & 1 == 1;
            let next = if bit == 7 { data_pointer } else { bit + 1 };
            let (left, right) = if set { (node_count, next) } else { (next, node_count) };
            tree.extend_from_slice(&left.to_be_bytes()[1..]);
            tree.extend_from_slice(&right.to_be_bytes()[1..]);
        }
        let mut out = tree;
        out.extend_from_slice(&[0u8; 16]);
        out.push(0xe1); // map, 1 entry
        string(&mut out, "country");
        out.push(0xe1);
        string(&mut out, "iso_code");
        string(&mut out, country);
        out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
        out.push(0xe9); // map, 9 entries
        string(&mut out, "node_count");
        uint(&mut out, 6, node_count as u8);
        string(&mut out, "record_size");
        uint(&mut out, 5, 24);
        string(&mut out, "ip_version");
        uint(&mut out, 5, 4);
        string(&mut out, "binary_format_major_version");
        uint(&mut out, 5, 2);
        string(&mut out, "binary_format_minor_version");
        out.push(0xa0); // uint16 0
        string(&mut out, "build_epoch");
        out.extend_from_slice(&[0x01, 0x02, 0x01]); // extended type 9 (uint64), size 1, value 1
        string(&mut out, "database_type");
        string(&mut out, "zt-test-country");
        string(&mut out, "languages");
        out.extend_from_slice(&[0x00, 0x04]); // extended type 11 (array), empty
        string(&mut out, "description");
        out.push(0xe0); // empty map
        out
    }

    #[cfg(feature = "geoip")]
    #[test]
    fn database_lookup_is_cached_and_bounded() {
        let config = GeoConfig { cache_capacity: 4, ..GeoConfig::default() };
        let geo = GeoResolver::with_database_bytes(&config, tiny_mmdb("SE")).unwrap();
        let inside: IpAddr = "81.2.69.160".parse().unwrap();
        assert_eq!(geo.lookup(inside).map(|c| c.to_string()), Some("SE".into()));
        assert_eq!(geo.lookup("82.1.1.1".parse().unwrap()), None);
        assert_eq!(geo.lookup("10.0.0.1".parse().unwrap()), None, "private: never looked up");
        for i in 0..50u8 {
            geo.lookup(IpAddr::from([81, 0, 0, i]));
        }
        assert!(geo.cached() as u64 <= geo.cache.capacity());
        // Without a trusted header, the database answers.
        let none = HeaderList::default();
        assert_eq!(geo.resolve(&none, false, Some(inside)).map(|c| c.to_string()), Some("SE".into()));
    }
}
