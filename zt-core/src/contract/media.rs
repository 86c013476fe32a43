//! Media types: parsing `Content-Type` values and declared ranges, and choosing the most
//! specific declaration for an actual type. Shared by request bodies, parameters with
//! `content`, and responses.

use std::borrow::Cow;

/// A parsed media type (or declared range), lower-cased. It borrows the text it was parsed
/// from when that is lower case already (every response's `application/json`), so reading
/// a request's or a response's `Content-Type` allocates nothing (issue 17: two `String`s
/// on every filtered response); declared ranges are kept as [`MediaType::into_owned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MediaType<'a> {
    kind: Cow<'a, str>,
    subtype: Cow<'a, str>,
    charset: Option<Cow<'a, str>>,
}

/// `text` in ASCII lower case, borrowed when it is already.
fn lower(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// The RFC 9110 `tchar` bytes, as a table: one load a byte (this runs on every read
/// response's and every request body's `Content-Type`).
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| TCHAR[usize::from(b)])
}

impl<'a> MediaType<'a> {
    /// Parses `type/subtype; name=value; ...`; `None` when malformed.
    pub(super) fn parse(text: &'a str) -> Option<MediaType<'a>> {
        // Byte searches rather than `split`'s pattern searcher: these texts are a few dozen
        // bytes, and the searcher's set-up cost more than the search (issue 17).
        let (essence, parameters) = match text.bytes().position(|b| b == b';') {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        let essence = essence.trim();
        let slash = essence.bytes().position(|b| b == b'/')?;
        let (kind, subtype) = (&essence[..slash], &essence[slash + 1..]);
        if !is_token(kind) || !is_token(subtype) {
            return None;
        }
        let mut charset = None;
        for parameter in parameters.into_iter().flat_map(|p| p.split(';')) {
            let parameter = parameter.trim();
            if parameter.is_empty() {
                continue;
            }
            let (name, value) = parameter.split_once('=')?;
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            if name.trim().eq_ignore_ascii_case("charset") {
                charset = Some(lower(value));
            }
        }
        Some(MediaType { kind: lower(kind), subtype: lower(subtype), charset })
    }

    /// The same media type, owning its text (a declared range, kept with the contract).
    pub(super) fn into_owned(self) -> MediaType<'static> {
        MediaType {
            kind: Cow::Owned(self.kind.into_owned()),
            subtype: Cow::Owned(self.subtype.into_owned()),
            charset: self.charset.map(|c| Cow::Owned(c.into_owned())),
        }
    }

    /// `application/json` or a `+json` structured suffix.
    pub(super) fn is_json(&self) -> bool {
        self.kind == "application" && (self.subtype == "json" || self.subtype.ends_with("+json"))
    }

    /// `application/x-www-form-urlencoded`.
    pub(super) fn is_form(&self) -> bool {
        self.kind == "application" && self.subtype == "x-www-form-urlencoded"
    }

    pub(super) fn utf8(&self) -> bool {
        self.charset.as_deref().is_none_or(|c| c == "utf-8" || c == "utf8")
    }

    /// How well this declared range matches `actual`: 3 exact, 2 `type/*`, 1 `*/*`.
    fn rank(&self, actual: &MediaType<'_>) -> Option<u8> {
        if self.kind == "*" && self.subtype == "*" {
            Some(1)
        } else if self.kind == actual.kind && self.subtype == "*" {
            Some(2)
        } else if self.kind == actual.kind && self.subtype == actual.subtype {
            Some(3)
        } else {
            None
        }
    }
}

/// The best declared entry for an actual media type.
pub(super) fn select<'e, T>(entries: &'e [(MediaType<'static>, T)], actual: &MediaType<'_>) -> Option<&'e T> {
    entries
        .iter()
        .filter_map(|(range, entry)| range.rank(actual).map(|r| (r, entry)))
        .max_by_key(|(r, _)| *r)
        .map(|(_, entry)| entry)
}
