// The module's documentation is on `DataClass`: the module is private, its items are
// re-exported at `zt_core::observe`.

use base64::Engine;
use serde::{Serialize, Serializer};

use super::geo::CountryCode;

/// A class of sensitive data.
///
/// Sensitive-data classification of sampled response bodies.
///
/// Finds which *classes* of sensitive data a response contains; never what the values
/// are. Checks carry their own validation so that arbitrary numbers do not count:
///
/// | class | matched when |
/// |---|---|
/// | `email` | `local@domain.tld`, a dotted domain ending in 2+ letters |
/// | `phone` | `+` and 8-15 digits (E.164; separators ` -.()` allowed). Numbers without `+` are not judged: too many ids look like phone numbers |
/// | `payment_card` | 13-19 digits (single ` ` or `-` between groups), first digit 2-6, Luhn-valid |
/// | `iban` | an ISO country code, 2 check digits, 11-30 letters/digits (single spaces allowed), mod-97 valid |
/// | `national_id` | US SSN `ddd-dd-dddd` with a valid area (not 000, 666, 9xx), group and serial |
/// | `jwt` | `eyJ...` three base64url segments whose first decodes to a JSON header with `alg` |
/// | `api_key` | Stripe `sk_live_`/`sk_test_`/`rk_live_`, AWS `AKIA`/`ASIA`, GitHub `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_`/`github_pat_`, Slack `xox?-`, Google `AIza`, GitLab `glpat-`, `sk-proj-`/`sk-ant-`, each with its length and alphabet |
/// | `private_key` | a PEM `-----BEGIN ... PRIVATE KEY-----` line |
///
/// Work is linear in the sample, which the caller caps (default 4 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// E-mail addresses.
    Email,
    /// Phone numbers in international format.
    Phone,
    /// Payment card numbers (Luhn-checked).
    PaymentCard,
    /// IBANs (mod-97 checked).
    Iban,
    /// National identifiers (US SSN format).
    NationalId,
    /// JSON Web Tokens.
    Jwt,
    /// API keys with well-known prefixes.
    ApiKey,
    /// PEM private keys.
    PrivateKey,
}

impl DataClass {
    /// Every class.
    pub const ALL: [DataClass; 8] = [
        DataClass::Email,
        DataClass::Phone,
        DataClass::PaymentCard,
        DataClass::Iban,
        DataClass::NationalId,
        DataClass::Jwt,
        DataClass::ApiKey,
        DataClass::PrivateKey,
    ];

    /// The slug, e.g. `payment_card`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Email => "email",
            DataClass::Phone => "phone",
            DataClass::PaymentCard => "payment_card",
            DataClass::Iban => "iban",
            DataClass::NationalId => "national_id",
            DataClass::Jwt => "jwt",
            DataClass::ApiKey => "api_key",
            DataClass::PrivateKey => "private_key",
        }
    }

    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of data classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataClasses(pub(crate) u16);

impl DataClasses {
    /// True when `class` is in the set.
    pub fn contains(self, class: DataClass) -> bool {
        self.0 & class.bit() != 0
    }

    /// True when no class is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The classes, in [`DataClass::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = DataClass> {
        DataClass::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    fn add(&mut self, class: DataClass) {
        self.0 |= class.bit();
    }
}

impl Serialize for DataClasses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The classes of sensitive data in `data`.
pub(crate) fn classify(data: &[u8]) -> DataClasses {
    let mut found = DataClasses::default();
    if has_private_key(data) {
        found.add(DataClass::PrivateKey);
    }
    if has_jwt(data) {
        found.add(DataClass::Jwt);
    }
    if has_api_key(data) {
        found.add(DataClass::ApiKey);
    }
    if has_email(data) {
        found.add(DataClass::Email);
    }
    let (iban, iban_spans) = scan_ibans(data);
    if iban {
        found.add(DataClass::Iban);
    }
    scan_numbers(data, &iban_spans, &mut found);
    found
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// True when the byte before `at` is not alphanumeric (or `at` is the start).
fn boundary_before(data: &[u8], at: usize) -> bool {
    at == 0 || data.get(at - 1).is_none_or(|b| !b.is_ascii_alphanumeric())
}

fn boundary_at(data: &[u8], at: usize) -> bool {
    data.get(at).is_none_or(|b| !b.is_ascii_alphanumeric())
}

fn has_private_key(data: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(data, b"-----BEGIN ", from) {
        let rest = &data[at + 11..];
        let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len()).min(64);
        let line = &rest[..line_end];
        if let Some(end) = find(line, b"-----", 0)
            && line[..end].ends_with(b"PRIVATE KEY")
        {
            return true;
        }
        from = at + 11;
    }
    false
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn has_jwt(data: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(data, b"eyJ", from) {
        from = at + 3;
        if !boundary_before(data, at) {
            continue;
        }
        let segment = |start: usize| data[start..].iter().take_while(|&&b| is_b64url(b)).count();
        let header_len = segment(at);
        let dot1 = at + header_len;
        // Whatever follows inside this segment cannot start another token: keeps the scan
        // linear on hostile input.
        from = from.max(dot1);
        if header_len < 10 || data.get(dot1) != Some(&b'.') {
            continue;
        }
        let payload_len = segment(dot1 + 1);
        let dot2 = dot1 + 1 + payload_len;
        if payload_len < 2 || data.get(dot2) != Some(&b'.') || !data[dot1 + 1..].starts_with(b"eyJ") {
            continue;
        }
        let header = &data[at..dot1];
        if let Ok(decoded) = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header.get(..header.len().min(512)).unwrap_or(header))
            && decoded.first() == Some(&b'{')
            && find(&decoded, b"\"alg\"", 0).is_some()
        {
            return true;
        }
    }
    false
}

/// `(prefix, minimum body length, maximum body length, body alphabet)`.
type KeyShape = (&'static [u8], usize, usize, fn(u8) -> bool);

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}
fn alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

const KEY_SHAPES: &[KeyShape] = &[
    (b"sk_live_", 16, 256, alnum),
    (b"sk_test_", 16, 256, alnum),
    (b"rk_live_", 16, 256, alnum),
    (b"AKIA", 16, 16, upper_alnum),
    (b"ASIA", 16, 16, upper_alnum),
    (b"ghp_", 36, 36, alnum),
    (b"gho_", 36, 36, alnum),
    (b"ghu_", 36, 36, alnum),
    (b"ghs_", 36, 36, alnum),
    (b"ghr_", 36, 36, alnum),
    (b"github_pat_", 22, 255, alnum_underscore),
    (b"xoxb-", 10, 255, alnum_dash),
    (b"xoxp-", 10, 255, alnum_dash),
    (b"xoxa-", 10, 255, alnum_dash),
    (b"xoxr-", 10, 255, alnum_dash),
    (b"AIza", 35, 35, is_b64url),
    (b"glpat-", 20, 64, is_b64url),
    (b"sk-proj-", 20, 256, is_b64url),
    (b"sk-ant-", 20, 256, is_b64url),
];

fn has_api_key(data: &[u8]) -> bool {
    KEY_SHAPES.iter().any(|&(prefix, min, max, alphabet)| {
        let mut from = 0;
        while let Some(at) = find(data, prefix, from) {
            from = at + prefix.len();
            if !boundary_before(data, at) {
                continue;
            }
            let body = data[from..].iter().take(max + 1).take_while(|&&b| alphabet(b)).count();
            // Exact-length shapes must end there (an AKIA inside a longer word is not a key).
            if (min..=max).contains(&body) && (min != max || boundary_at(data, from + body)) {
                return true;
            }
        }
        false
    })
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn has_email(data: &[u8]) -> bool {
    for (at, _) in data.iter().enumerate().filter(|(_, b)| **b == b'@') {
        let local_len = data[..at].iter().rev().take(64).take_while(|&&b| is_local(b)).count();
        if local_len == 0 {
            continue;
        }
        let local = &data[at - local_len..at];
        if local.starts_with(b".") || local.ends_with(b".") {
            continue;
        }
        let domain_len = data[at + 1..]
            .iter()
            .take(253)
            .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            .count();
        let mut domain = &data[at + 1..at + 1 + domain_len];
        // A sentence may end right after the address.
        while let [rest @ .., b'.'] = domain {
            domain = rest;
        }
        let labels: Vec<&[u8]> = domain.split(|&b| b == b'.').collect();
        let Some(tld) = labels.last() else { continue };
        if labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty() && !l.starts_with(b"-") && !l.ends_with(b"-"))
            && tld.len() >= 2
            && tld.iter().all(u8::is_ascii_alphabetic)
        {
            return true;
        }
    }
    false
}

/// IBAN-shaped sequences (country code, two digits, groups): whether any is mod-97
/// valid, and where the last one ends (digits inside are not card numbers).
fn scan_ibans(data: &[u8]) -> (bool, Vec<(usize, usize)>) {
    let mut valid = false;
    let mut spans = Vec::new();
    let mut i = 0;
    while i + 4 <= data.len() {
        let starts = data[i].is_ascii_uppercase()
            && data[i + 1].is_ascii_uppercase()
            && data[i + 2].is_ascii_digit()
            && data[i + 3].is_ascii_digit()
            && boundary_before(data, i);
        if !starts || CountryCode::parse(&data[i..i + 2]).is_none() {
            i += 1;
            continue;
        }
        // Collect up to 34 characters, allowing single spaces between groups of four.
        let mut chars = [0u8; 34];
        let mut n = 0;
        let mut j = i;
        while j < data.len() && n < 34 {
            let b = data[j];
            if b.is_ascii_uppercase() || b.is_ascii_digit() {
                chars[n] = b;
                n += 1;
                j += 1;
            } else if b == b' '
                && n.is_multiple_of(4)
                && data.get(j + 1).is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                j += 1;
            } else {
                break;
            }
        }
        if (15..=34).contains(&n) && boundary_at(data, j) {
            spans.push((i, j));
            valid |= iban_valid(&chars[..n]);
            i = j;
        } else {
            i += 1;
        }
    }
    (valid, spans)
}

/// ISO 13616 mod-97 check: move the first four characters to the end, letters to 10..35.
pub(crate) fn iban_valid(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in iban[4..].iter().chain(&iban[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// The Luhn checksum used by payment cards.
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn ssn_valid(run: &[u8]) -> bool {
    let [a1, a2, a3, b'-', g1, g2, b'-', s1, s2, s3, s4] = run else { return false };
    let all = [a1, a2, a3, g1, g2, s1, s2, s3, s4];
    if !all.iter().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let area = [*a1, *a2, *a3];
    area != *b"000"
        && area != *b"666"
        && *a1 != b'9'
        && [*g1, *g2] != *b"00"
        && [*s1, *s2, *s3, *s4] != *b"0000"
}

/// Reads consecutive digits from `at`; returns the end.
fn digits_from(data: &[u8], at: usize) -> usize {
    at + data.get(at..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// A card number starting at `start`: 13-19 contiguous digits, or groups (the first of
/// four digits, then groups of three to six, one separator kind) as cards are printed
/// (4-4-4-4, 4-6-5, 4-4-4-4-3). Returns the end when the number is Luhn-valid.
fn card_at(data: &[u8], start: usize) -> Option<usize> {
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut push = |from: usize, to: usize, count: &mut usize| -> bool {
        for &b in &data[from..to] {
            if *count >= digits.len() {
                return false;
            }
            digits[*count] = b - b'0';
            *count += 1;
        }
        true
    };
    let first_end = digits_from(data, start);
    let end = match first_end - start {
        13..=19 => {
            push(start, first_end, &mut count);
            first_end
        }
        4 => {
            push(start, first_end, &mut count);
            let separator = *data.get(first_end).filter(|b| matches!(b, b' ' | b'-'))?;
            let mut end = first_end;
            while data.get(end) == Some(&separator) {
                let group_end = digits_from(data, end + 1);
                if !(3..=6).contains(&(group_end - end - 1)) || !push(end + 1, group_end, &mut count) {
                    break;
                }
                end = group_end;
            }
            end
        }
        _ => return None,
    };
    let valid = (13..=19).contains(&count)
        && (2..=6).contains(&digits[0])
        && boundary_at(data, end)
        && luhn_valid(&digits[..count]);
    valid.then_some(end)
}

/// A phone number after `+` at `plus`: 8-15 digits, separators ` -.()` (at most two in a
/// row, as in `) `). Returns the end when it is one.
fn phone_at(data: &[u8], plus: usize) -> Option<usize> {
    const SEPARATORS: &[u8] = b" -.()";
    let mut count = 0;
    let mut first = None;
    let mut j = plus + 1;
    while let Some(&c) = data.get(j) {
        if c.is_ascii_digit() {
            first.get_or_insert(c);
            count += 1;
            j += 1;
        } else if SEPARATORS.contains(&c)
            && (data.get(j + 1).is_some_and(u8::is_ascii_digit)
                || (data.get(j + 1).is_some_and(|n| SEPARATORS.contains(n))
                    && data.get(j + 2).is_some_and(u8::is_ascii_digit)))
        {
            j += 1;
        } else {
            break;
        }
    }
    ((8..=15).contains(&count) && first != Some(b'0') && boundary_at(data, j)).then_some(j)
}

/// Payment cards, SSNs and (after `+`) phone numbers. Linear: every position is looked at
/// a bounded number of times.
fn scan_numbers(data: &[u8], skip: &[(usize, usize)], found: &mut DataClasses) {
    let mut i = 0;
    let mut spans = skip.iter().peekable();
    while i < data.len() {
        // `skip` is sorted and disjoint: walk it alongside.
        while spans.peek().is_some_and(|(_, to)| *to <= i) {
            spans.next();
        }
        if let Some(&&(from, to)) = spans.peek()
            && from <= i
        {
            i = to;
            continue;
        }
        let b = data[i];
        if !boundary_before(data, i) || !(b.is_ascii_digit() || b == b'+') {
            i += 1;
            continue;
        }
        if b == b'+' {
            if data.get(i + 1).is_some_and(u8::is_ascii_digit)
                && let Some(end) = phone_at(data, i)
            {
                found.add(DataClass::Phone);
                i = end;
            } else {
                i += 1;
            }
            continue;
        }
        if i > 0 && data[i - 1] == b'+' {
            // The digits of something `+`-prefixed that is not a phone number.
            i = digits_from(data, i);
            continue;
        }
        if data.get(i..i + 11).is_some_and(ssn_valid) && boundary_at(data, i + 11) {
            found.add(DataClass::NationalId);
            i += 11;
            continue;
        }
        if let Some(end) = card_at(data, i) {
            found.add(DataClass::PaymentCard);
            i = end;
            continue;
        }
        // Not a match: skip this digit group.
        i = digits_from(data, i).max(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> Vec<&'static str> {
        classify(text.as_bytes()).iter().map(DataClass::as_str).collect()
    }

    #[test]
    fn payment_cards_need_luhn() {
        assert_eq!(classes(r#"{"card":"4111 1111 1111 1111"}"#), ["payment_card"]);
        assert_eq!(classes("pan=5555-5555-5555-4444;"), ["payment_card"]);
        assert_eq!(classes(r#"{"n":378282246310005}"#), ["payment_card"]);
        // Same shapes, wrong check digit.
        assert!(classes(r#"{"card":"4111 1111 1111 1112"}"#).is_empty());
        assert!(classes("order 1234567890123456").is_empty());
        // Luhn-valid but not a card's first digit, too short, or part of a longer token.
        assert!(classes("id 0000000000000000").is_empty());
        assert!(classes("4111111111111111x").is_empty());
        assert!(classes("42").is_empty());
    }

    #[test]
    fn ibans_need_mod97() {
        assert_eq!(classes("IBAN: DE89 3704 0044 0532 0130 00."), ["iban"]);
        assert_eq!(classes(r#"["GB82WEST12345698765432"]"#), ["iban"]);
        assert!(
            classes("DE89 3704 0044 0532 0130 01").is_empty(),
            "bad checksum; its digits are no card either"
        );
        assert!(classes("ZZ89370400440532013000").is_empty(), "no such country");
        assert!(iban_valid(b"NL91ABNA0417164300"));
        assert!(!iban_valid(b"NL91ABNA0417164301"));
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(classes("contact: jane.doe+x@mail.example.com."), ["email"]);
        assert!(classes("user@localhost").is_empty());
        assert!(classes("@handle and a@b").is_empty());
        assert!(classes("a@-bad-.com").is_empty());
        assert_eq!(classes(r#"{"phone":"+1 (415) 555-2671"}"#), ["phone"]);
        assert_eq!(classes("+442071838750"), ["phone"]);
        assert!(classes("+12").is_empty());
        assert!(classes("version 1.2+3").is_empty());
        assert!(classes("call 4155552671").is_empty(), "without + a number is not judged");
    }

    #[test]
    fn national_ids() {
        assert_eq!(classes("ssn 123-45-6789"), ["national_id"]);
        for bad in ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000", "123-45-67890"]
        {
            assert!(classes(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn tokens_and_keys() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(classes(&format!(r#"{{"token":"{jwt}"}}"#)), ["jwt"]);
        assert!(classes("eyJhbGciOi").is_empty());
        assert!(classes("eyJub3RhbGciOjF9.eyJzdWIiOjF9.x").is_empty(), "header without alg");
        assert_eq!(classes("key=sk_live_4eC39HqLyjWDarjtT1zdp7dc"), ["api_key"]);
        assert_eq!(classes("AKIAIOSFODNN7EXAMPLE"), ["api_key"]);
        assert!(classes("AKIAIOSFODNN7EXAMPLEX").is_empty(), "too long for an AWS key id");
        assert!(classes("XAKIAIOSFODNN7EXAMPLE").is_empty(), "inside a word");
        assert_eq!(classes("ghp_16C7e42F292c6912E7710c838347Ae178B4a"), ["api_key"]);
        assert!(classes("ghp_short").is_empty());
        assert_eq!(classes("-----BEGIN RSA PRIVATE KEY-----\nMIIE..."), ["private_key"]);
        assert_eq!(classes("-----BEGIN PRIVATE KEY-----"), ["private_key"]);
        assert!(classes("-----BEGIN PUBLIC KEY-----\nMFkw").is_empty());
        assert!(classes("-----BEGIN CERTIFICATE-----").is_empty());
    }

    #[test]
    fn several_classes_and_hostile_input() {
        let text = "jane@example.org 4111111111111111 123-45-6789";
        assert_eq!(classes(text), ["email", "payment_card", "national_id"]);
        // Arbitrary bytes never panic.
        let mut noise = Vec::new();
        for i in 0..4096u32 {
            noise.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
        }
        noise.extend_from_slice(b"@@..--++eyJ-----BEGIN ");
        let _ = classify(&noise);
        assert!(classify(b"").is_empty());
        let json = serde_json::to_string(&classify(text.as_bytes())).unwrap();
        assert_eq!(json, r#"["email","payment_card","national_id"]"#);
    }
}
