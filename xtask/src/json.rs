//! A strict JSON reader (RFC 8259) for the machine-readable output of cargo and rustc.
//!
//! Host-side tool code: it touches nothing but the text it is given. The whole document is
//! parsed into a [`Value`] before anything looks at it, so a field is found by its place in
//! the structure, never by searching the text (a `"kind":["lib"]` inside a compiler message
//! is not a library). Anything outside the grammar — a control character in a string, an
//! unpaired UTF-16 surrogate, a trailing comma, text after the value, nesting deeper than
//! [`MAX_DEPTH`] — is an error that says where, never a panic.

use std::collections::BTreeMap;

/// How deeply arrays and objects may nest (cargo's messages stay below 20).
pub const MAX_DEPTH: usize = 128;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written (checked against the grammar, not converted: no precision lost).
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object; of repeated names, the last one counts.
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// The member `key` of an object (`None` for a missing member or a non-object).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(key),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A non-negative whole number that fits in 64 bits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Why a text is not JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem in the text.
    pub offset: usize,
    /// What is wrong there.
    pub reason: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Parses a complete JSON text (one value, with optional whitespace around it).
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser { text, pos: 0 };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(p.error("unexpected text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> ParseError {
        ParseError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `b`, or fails with `reason`.
    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end of the text, a value was expected")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.text[self.pos..].starts_with(word) {
                        self.pos += word.len();
                        return Ok(v);
                    }
                }
                Err(self.error("expected a value"))
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("arrays and objects nested too deeply"));
        }
        self.pos += 1; // '{'
        let mut members = BTreeMap::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a member name in double quotes"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':', "expected ':' after a member name")?;
            self.skip_ws();
            let v = self.value(depth)?;
            members.insert(key, v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("arrays and objects nested too deeply"));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    /// A string starting at the opening quote; returns it unescaped.
    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control character. All three are
            // ASCII, so the run ends on a character boundary of the (valid UTF-8) text.
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => {
                    return Err(self.error("control character in a string (must be escaped)"));
                }
            }
        }
    }

    /// The character of an escape sequence, just after its backslash.
    fn escape(&mut self) -> Result<char, ParseError> {
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated escape sequence"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let at = self.pos - 2;
                let hi = self.hex4()?;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by an escaped low one.
                        if !self.text[self.pos..].starts_with("\\u") {
                            return Err(ParseError {
                                offset: at,
                                reason: "unpaired UTF-16 high surrogate",
                            });
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(ParseError {
                                offset: at,
                                reason: "UTF-16 high surrogate not followed by a low one",
                            });
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(ParseError {
                            offset: at,
                            reason: "unpaired UTF-16 low surrogate",
                        });
                    }
                    c => c,
                };
                // Surrogates are excluded above, so every remaining code is a scalar value.
                char::from_u32(code).ok_or(ParseError {
                    offset: at,
                    reason: "escape is not a Unicode scalar value",
                })?
            }
            _ => {
                self.pos -= 1;
                return Err(self.error("unknown escape sequence"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(self.error("expected four hex digits after \\u"))?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad hex digits"))?;
        self.pos += 4;
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.error("leading zero in a number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        Ok(Value::Number(self.text[start..self.pos].to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    #[test]
    fn scalars_parse_to_their_values() {
        assert_eq!(parse("null"), Ok(Value::Null));
        assert_eq!(parse(" true "), Ok(Value::Bool(true)));
        assert_eq!(parse("false"), Ok(Value::Bool(false)));
        for n in ["0", "-0", "12", "-3.25", "1e10", "2.5E-3", "6.02e+23"] {
            assert_eq!(parse(n), Ok(Value::Number(n.into())), "{n}");
        }
        assert_eq!(parse("\"\""), Ok(s("")));
    }

    #[test]
    fn escapes_are_unescaped_including_surrogate_pairs() {
        assert_eq!(
            parse(r#""a\"b\\c\/d\b\f\n\r\t""#),
            Ok(s("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        );
        assert_eq!(parse(r#""\u00e9\u001b[1m""#), Ok(s("é\u{1b}[1m")));
        // U+1F600 as a UTF-16 surrogate pair; raw UTF-8 passes through unchanged.
        assert_eq!(parse(r#""\ud83d\ude00 ünï""#), Ok(s("😀 ünï")));
        assert_eq!(parse(r#""\uD83D\uDE00""#), Ok(s("😀")));
    }

    #[test]
    fn nested_structures_keep_their_shape() {
        let v = parse(r#" { "a" : [1, {"b": [ ]}, "x"], "c": {}, "d": null } "#).unwrap();
        let a = v.get("a").and_then(Value::as_array).unwrap();
        assert_eq!(a[0], Value::Number("1".into()));
        assert_eq!(a[1].get("b").and_then(Value::as_array), Some(&[][..]));
        assert_eq!(a[2].as_str(), Some("x"));
        assert_eq!(v.get("c"), Some(&Value::Object(BTreeMap::new())));
        assert!(v.get("d").unwrap().is_null());
        assert_eq!(v.get("missing"), None);
        assert_eq!(a[0].get("a"), None, "a number has no members");
    }

    #[test]
    fn the_last_of_repeated_member_names_counts() {
        assert_eq!(
            parse(r#"{"k":1,"k":2}"#).unwrap().get("k"),
            Some(&Value::Number("2".into()))
        );
    }

    #[test]
    fn malformed_texts_are_errors_with_an_offset() {
        for (text, offset) in [
            ("", 0),
            ("{", 1),
            ("{\"a\" 1}", 5),
            ("{\"a\":1,}", 7),
            ("[1,]", 3),
            ("[1 2]", 3),
            ("{a:1}", 1),
            ("\"abc", 4),
            ("\"a\nb\"", 2),
            ("\"\\x\"", 2),
            ("\"\\u12\"", 3),
            ("\"\\ud83d\"", 1),
            ("\"\\ud83d\\u0041\"", 1),
            ("\"\\ude00\"", 1),
            ("01", 1),
            ("1.", 2),
            ("1e", 2),
            ("-", 1),
            ("tru", 0),
            ("nul", 0),
            ("1 2", 2),
            ("{} x", 3),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.offset, offset, "{text:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(
            parse(&deep).unwrap_err().reason,
            "arrays and objects nested too deeply"
        );
    }
}
