//! A cheap pre-scan that counts a document's tokens before anything is parsed.
//!
//! One pass over the bytes, no allocation, stopping as soon as the limit is passed. It
//! follows the GraphQL lexical grammar closely enough to count: punctuators (`...` is one),
//! names, numbers, strings and block strings (escapes honoured), comments and commas each
//! count as one token; whitespace and line terminators count as none. A byte that starts no
//! token counts as one. It also measures how deeply `{`, `(` and `[` nest, so a document
//! nested beyond what the parser may recurse into is refused before parsing. The full parser
//! then runs with its own token and recursion limits as a backstop.

/// What the pre-scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scan {
    /// Tokens counted (at most the `stop_at` passed in).
    pub(super) tokens: usize,
    /// The deepest nesting of `{`, `(` and `[` seen (closing ones unwind it, never below 0).
    pub(super) nesting: usize,
}

/// Counts tokens, stopping once `stop_at` is reached.
#[cfg(test)]
pub(super) fn count(text: &str, stop_at: usize) -> usize {
    scan(text, stop_at).tokens
}

/// Counts tokens and measures bracket nesting, stopping once `stop_at` tokens are counted.
pub(super) fn scan(text: &str, stop_at: usize) -> Scan {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut tokens = 0usize;
    let (mut depth, mut nesting) = (0usize, 0usize);
    while i < bytes.len() && tokens < stop_at {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            // U+FEFF (byte order mark) is ignored like whitespace.
            0xEF if bytes.get(i + 1..i + 3) == Some(&[0xBB, 0xBF]) => i += 3,
            b'#' => {
                tokens += 1;
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes.get(i..i + 3) == Some(b"\"\"\"") => {
                tokens += 1;
                i = skip_block_string(bytes, i + 3);
            }
            b'"' => {
                tokens += 1;
                i = skip_string(bytes, i + 1);
            }
            b'.' if bytes.get(i..i + 3) == Some(b"...") => {
                tokens += 1;
                i += 3;
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                tokens += 1;
                i += 1;
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                tokens += 1;
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'+' | b'-' | b'_'))
                {
                    i += 1;
                }
            }
            _ => {
                // Punctuators, commas, and anything that starts no token.
                match b {
                    b'{' | b'(' | b'[' => {
                        depth += 1;
                        nesting = nesting.max(depth);
                    }
                    b'}' | b')' | b']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                tokens += 1;
                i += 1;
            }
        }
    }
    Scan { tokens, nesting }
}

/// Skips a string body after its opening quote; returns the index after the closing quote
/// (or the line end / text end for an unterminated string).
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Skips a block string body after its opening `"""`; `\"""` does not close it.
fn skip_block_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1..i + 4) == Some(b"\"\"\"") {
            i += 4;
        } else if bytes.get(i..i + 3) == Some(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> usize {
        count(text, usize::MAX)
    }

    #[test]
    fn counts_significant_tokens() {
        assert_eq!(n(""), 0);
        assert_eq!(n("{ a }"), 3);
        assert_eq!(n("query Q($x: Int = -1.5e3) { a(x: $x) @skip(if: true) }"), 26);
        assert_eq!(n("{ ...F }"), 4);
        assert_eq!(n("a,b,,c"), 6);
        assert_eq!(n("\u{feff} a # comment with \"quotes\"\n b"), 3);
    }

    #[test]
    fn strings_are_one_token() {
        assert_eq!(n(r#"a(s: "x \" y { } z")"#), 6);
        assert_eq!(n("a(s: \"\"\" block \\\"\"\" still { } \"\"\")"), 6);
        assert_eq!(n("\"unterminated\n a"), 2);
        assert_eq!(n("\"\"\"never closed { a b c"), 1);
    }

    #[test]
    fn stops_early() {
        let long = "a ".repeat(100_000);
        assert_eq!(count(&long, 10), 10);
        assert_eq!(count(&long, usize::MAX), 100_000);
    }

    #[test]
    fn measures_nesting_outside_strings_and_comments() {
        assert_eq!(scan("{ a(x: [[1]]) { b } }", usize::MAX).nesting, 4);
        assert_eq!(scan("{ a } { b } } } {", usize::MAX).nesting, 1);
        assert_eq!(scan("{ a(s: \"{{{{\") # {{{{\n }", usize::MAX).nesting, 2);
        assert_eq!(scan(&"{".repeat(1000), usize::MAX).nesting, 1000);
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for text in ["\\", "\"\\", "\"\"\"\\", ".", "..", "\u{fe}", "é{", "\u{feff}", "-", "\"\"\"\"\""] {
            let _ = n(text);
        }
    }
}
