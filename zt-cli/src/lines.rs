//! JSON pointer -> line number, for reports.
//!
//! The document itself is parsed by zt-core (`zt_core::contract::load_document`); this
//! module only scans the same text once to remember on which line each member or element
//! starts. JSON is scanned token by token (exact). YAML is scanned by indentation: block
//! mappings and sequences (also indentless `- ` lists), quoted and plain keys, block scalars
//! and multi-line flow collections are understood; the members of a flow collection (`{a: 1}`
//! on one line) are not indexed and resolve to their parent's line. A pointer that is not in
//! the index resolves to the line of its nearest indexed ancestor.

use std::collections::HashMap;

/// Lines of the JSON pointers of one document.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// Indexes a document text (`json`: the text was parsed as JSON).
    pub fn new(text: &str, json: bool) -> LineIndex {
        let lines = if json { index_json(text) } else { index_yaml(text) };
        LineIndex { lines }
    }

    /// The 1-based line of `pointer`, or of its nearest indexed ancestor.
    pub fn line_of(&self, pointer: &str) -> Option<usize> {
        let mut current = pointer;
        loop {
            if let Some(line) = self.lines.get(current) {
                return Some(*line);
            }
            if current.is_empty() {
                return None;
            }
            current = match current.rfind('/') {
                Some(at) => &current[..at],
                None => "",
            };
        }
    }
}

/// Appends an escaped JSON-pointer segment.
pub fn push_segment(pointer: &mut String, segment: &str) {
    pointer.push('/');
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// `pointer` extended by one segment.
pub fn child(pointer: &str, segment: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + segment.len() + 1);
    out.push_str(pointer);
    push_segment(&mut out, segment);
    out
}

enum JsonFrame {
    Object { pointer: String, key: Option<String> },
    Array { pointer: String, index: usize },
}

fn value_pointer(stack: &[JsonFrame]) -> String {
    match stack.last() {
        None => String::new(),
        Some(JsonFrame::Object { pointer, key }) => match key {
            Some(k) => child(pointer, k),
            None => pointer.clone(),
        },
        Some(JsonFrame::Array { pointer, index }) => format!("{pointer}/{index}"),
    }
}

fn index_json(text: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    out.insert(String::new(), 1);
    let bytes = text.as_bytes();
    let mut stack: Vec<JsonFrame> = Vec::new();
    let mut expect_key = false;
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => line += 1,
            b'{' | b'[' => {
                let pointer = value_pointer(&stack);
                out.entry(pointer.clone()).or_insert(line);
                if b == b'{' {
                    stack.push(JsonFrame::Object { pointer, key: None });
                    expect_key = true;
                } else {
                    stack.push(JsonFrame::Array { pointer, index: 0 });
                }
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(JsonFrame::Object { .. }) => expect_key = true,
                Some(JsonFrame::Array { index, .. }) => *index += 1,
                None => {}
            },
            b'"' => {
                let (s, end, newlines) = scan_json_string(bytes, i);
                line += newlines;
                i = end;
                if expect_key && let Some(JsonFrame::Object { pointer, key }) = stack.last_mut() {
                    out.entry(child(pointer, &s)).or_insert(line);
                    *key = Some(s);
                    expect_key = false;
                } else {
                    out.entry(value_pointer(&stack)).or_insert(line);
                }
                continue;
            }
            b' ' | b'\t' | b'\r' | b':' => {}
            _ => {
                out.entry(value_pointer(&stack)).or_insert(line);
                while i < bytes.len() && !matches!(bytes[i], b',' | b'}' | b']' | b'\n' | b' ') {
                    i += 1;
                }
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Reads the JSON string starting at `start` (a quote): its decoded text, the index after the
/// closing quote, and the newlines inside (none in valid JSON).
fn scan_json_string(bytes: &[u8], start: usize) -> (String, usize, usize) {
    let mut raw = Vec::new();
    let mut i = start + 1;
    let mut newlines = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return (decode_json_escapes(&raw), i + 1, newlines),
            b'\\' if i + 1 < bytes.len() => {
                raw.push(bytes[i]);
                raw.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            b'\n' => newlines += 1,
            _ => {}
        }
        raw.push(bytes[i]);
        i += 1;
    }
    (decode_json_escapes(&raw), i, newlines)
}

fn decode_json_escapes(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if !text.contains('\\') {
        return text.into_owned();
    }
    // serde_json decodes exactly as the document parser did.
    serde_json::from_str::<String>(&format!("\"{text}\"")).unwrap_or_else(|_| text.into_owned())
}

enum YamlFrame {
    Map { col: usize, pointer: String },
    Seq { col: usize, pointer: String, next: usize },
}

impl YamlFrame {
    fn col(&self) -> usize {
        match self {
            YamlFrame::Map { col, .. } | YamlFrame::Seq { col, .. } => *col,
        }
    }
}

struct YamlScan {
    out: HashMap<String, usize>,
    stack: Vec<YamlFrame>,
    /// The pointer of the latest key or item: its value may be the next, deeper block.
    last: String,
    /// Inside a block scalar whose owner sits at this column.
    block: Option<usize>,
    /// Open brackets of a flow collection spanning lines.
    flow: i64,
}

fn index_yaml(text: &str) -> HashMap<String, usize> {
    let mut scan =
        YamlScan { out: HashMap::new(), stack: Vec::new(), last: String::new(), block: None, flow: 0 };
    scan.out.insert(String::new(), 1);
    for (i, raw) in text.lines().enumerate() {
        scan.line(i + 1, raw);
    }
    scan.out
}

impl YamlScan {
    fn line(&mut self, number: usize, raw: &str) {
        let trimmed = raw.trim_end();
        let content = trimmed.trim_start_matches(' ');
        let col = trimmed.len() - content.len();
        if let Some(owner) = self.block {
            if content.is_empty() || col > owner {
                return;
            }
            self.block = None;
        }
        if self.flow > 0 {
            self.flow = (self.flow + bracket_delta(content)).max(0);
            return;
        }
        if content.is_empty()
            || content.starts_with('#')
            || content.starts_with("---")
            || content.starts_with("...")
            || content.starts_with('%')
        {
            return;
        }
        self.entry(number, col, content);
    }

    fn pop_to(&mut self, col: usize) {
        while self.stack.last().is_some_and(|f| f.col() > col) {
            self.stack.pop();
        }
    }

    fn entry(&mut self, number: usize, col: usize, content: &str) {
        if content == "-" || content.starts_with("- ") {
            self.pop_to(col);
            let parent = match self.stack.last_mut() {
                Some(YamlFrame::Seq { col: c, pointer, next }) if *c == col => {
                    let index = *next;
                    *next += 1;
                    format!("{pointer}/{index}")
                }
                _ => {
                    let pointer = self.last.clone();
                    self.stack.push(YamlFrame::Seq { col, pointer: pointer.clone(), next: 1 });
                    format!("{pointer}/0")
                }
            };
            self.out.entry(parent.clone()).or_insert(number);
            self.last = parent;
            let rest = content[1..].trim_start_matches(' ');
            let rest_col = col + (content.len() - rest.len());
            if !rest.is_empty() && !rest.starts_with('#') {
                self.entry(number, rest_col, rest);
            }
            return;
        }
        match split_key(content) {
            Some((key, value)) => {
                self.pop_to(col);
                if matches!(self.stack.last(), Some(YamlFrame::Seq { col: c, .. }) if *c == col) {
                    self.stack.pop();
                }
                let parent = match self.stack.last() {
                    Some(YamlFrame::Map { col: c, pointer }) if *c == col => pointer.clone(),
                    _ => {
                        let pointer = if self.stack.is_empty() { String::new() } else { self.last.clone() };
                        self.stack.push(YamlFrame::Map { col, pointer: pointer.clone() });
                        pointer
                    }
                };
                let pointer = child(&parent, &key);
                self.out.entry(pointer.clone()).or_insert(number);
                self.last = pointer;
                self.value(col, value);
            }
            None => self.value(col, content),
        }
    }

    /// Looks at a scalar or the opening of a nested value on the key's line.
    fn value(&mut self, owner: usize, value: &str) {
        let mut value = value.trim();
        // Anchors and tags precede the value.
        while value.starts_with('&') || value.starts_with('!') {
            value = value.split_once(' ').map_or("", |(_, rest)| rest.trim_start());
        }
        if value.starts_with('|') || value.starts_with('>') {
            self.block = Some(owner);
        } else if value.starts_with('[') || value.starts_with('{') {
            self.flow = bracket_delta(value).max(0);
        }
    }
}

/// Net `[`/`{` opened minus closed, outside quotes and comments.
fn bracket_delta(text: &str) -> i64 {
    let mut delta = 0;
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' if previous == ' ' => break,
                '[' | '{' => delta += 1,
                ']' | '}' => delta -= 1,
                _ => {}
            },
        }
        previous = c;
    }
    delta
}

/// Splits `key: value` (plain, single- or double-quoted key). `None` when the line holds no
/// mapping key.
fn split_key(content: &str) -> Option<(String, &str)> {
    let first = content.chars().next()?;
    if first == '"' || first == '\'' {
        let (key, after) = quoted(content, first)?;
        let after = after.trim_start();
        let rest = after.strip_prefix(':')?;
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None;
        }
        return Some((key, rest));
    }
    if matches!(first, '[' | '{' | '|' | '>' | '#' | '&' | '*' | '!' | '?' | '@' | '`') {
        return None;
    }
    let bytes = content.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' && i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
        if bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            return Some((content[..i].trim_end().to_string(), &content[i + 1..]));
        }
        i += 1;
    }
    None
}

fn quoted(content: &str, quote: char) -> Option<(String, &str)> {
    let mut key = String::new();
    let mut chars = content.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if quote == '\'' && c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                key.push('\'');
                continue;
            }
            return Some((key, &content[i + 1..]));
        }
        if quote == '"' && c == '\\' {
            if let Some((_, n)) = chars.next() {
                key.push(match n {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
            }
            continue;
        }
        if quote == '"' && c == '"' {
            return Some((key, &content[i + 1..]));
        }
        key.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        let text =
            "{\n  \"paths\": {\n    \"/a/{id}\": {\n      \"get\": {}\n    }\n  },\n  \"x\": [1,\n 2]\n}";
        let index = LineIndex::new(text, true);
        assert_eq!(index.line_of("/paths/~1a~1{id}/get"), Some(4));
        assert_eq!(index.line_of("/paths/~1a~1{id}/get/responses"), Some(4));
        assert_eq!(index.line_of("/x/1"), Some(8));
        assert_eq!(index.line_of(""), Some(1));
    }

    #[test]
    fn yaml_lines() {
        let text = "openapi: 3.0.0\npaths:\n  /pets:\n    get:\n      description: |\n        a: b\n        c\n      parameters:\n      - name: x\n        in: query\n      - $ref: '#/p'\n      responses:\n        '200':\n          description: ok\n        default: {description: x,\n          y: z}\n  \"/q\":\n    post: {}\ntags: [a, b]\n";
        let index = LineIndex::new(text, false);
        assert_eq!(index.line_of("/paths/~1pets/get"), Some(4));
        assert_eq!(index.line_of("/paths/~1pets/get/parameters/0/in"), Some(10));
        assert_eq!(index.line_of("/paths/~1pets/get/parameters/1"), Some(11));
        assert_eq!(index.line_of("/paths/~1pets/get/responses/200/description"), Some(14));
        assert_eq!(index.line_of("/paths/~1q/post"), Some(18));
        assert_eq!(index.line_of("/tags/1"), Some(19));
    }
}
