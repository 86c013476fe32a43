//! Media types: parsing `Content-Type` values and declared ranges, and choosing the most
//! specific declaration for an actual type. Shared by request bodies, parameters with
//! `content`, and responses.

/// A parsed media type (or declared range), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MediaType {
    kind: String,
    subtype: String,
    charset: Option<String>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl MediaType {
    /// Parses `type/subtype; name=value; ...`; `None` when malformed.
    pub(super) fn parse(text: &str) -> Option<MediaType> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim();
        let (kind, subtype) = essence.split_once('/')?;
        if !is_token(kind) || !is_token(subtype) {
            return None;
        }
        let mut charset = None;
        for parameter in parts {
            let parameter = parameter.trim();
            if parameter.is_empty() {
                continue;
            }
            let (name, value) = parameter.split_once('=')?;
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            if name.trim().eq_ignore_ascii_case("charset") {
                charset = Some(value.to_ascii_lowercase());
            }
        }
        Some(MediaType { kind: kind.to_ascii_lowercase(), subtype: subtype.to_ascii_lowercase(), charset })
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
    fn rank(&self, actual: &MediaType) -> Option<u8> {
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
pub(super) fn select<'a, T>(entries: &'a [(MediaType, T)], actual: &MediaType) -> Option<&'a T> {
    entries
        .iter()
        .filter_map(|(range, entry)| range.rank(actual).map(|r| (r, entry)))
        .max_by_key(|(r, _)| *r)
        .map(|(_, entry)| entry)
}
