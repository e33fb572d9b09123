//! The `Sec-WebSocket-Extensions` header (RFC 6455 §9.1): a comma-separated list of
//! extensions, each a token followed by `;`-separated parameters, each parameter a
//! token with an optional value (a token or a quoted string).
//!
//! ```text
//! extension-list = 1#extension
//! extension      = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//! ```
//!
//! The header may be split over several header lines (RFC 9110 §5.3): their values
//! are one list. [`parse`] keeps going after a malformed element, so that a server can
//! decline what it cannot read and still accept a later offer.

use std::fmt;

/// One element of the list: an extension's name and its parameters, in order.
///
/// ```
/// use rfc6455::extensions::{parse, Extension};
///
/// let offers = parse(&["permessage-deflate; client_max_window_bits, x-foo; a=\"1\""]);
/// assert_eq!(offers[0].as_ref().unwrap().name, "permessage-deflate");
/// assert_eq!(offers[0].as_ref().unwrap().params, [("client_max_window_bits".to_string(), None)]);
/// assert_eq!(offers[1].as_ref().unwrap().params, [("a".to_string(), Some("1".to_string()))]);
/// assert_eq!(offers[1].as_ref().unwrap().to_string(), "x-foo; a=1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension token, as sent.
    pub name: String,
    /// Each parameter's name and value (unquoted), as sent.
    pub params: Vec<(String, Option<String>)>,
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            match value {
                Some(value) => write!(f, "; {name}={value}")?,
                None => write!(f, "; {name}")?,
            }
        }
        Ok(())
    }
}

/// Why an element of the list is not an extension (RFC 6455 §9.1).
///
/// ```
/// use rfc6455::extensions::{parse, SyntaxError};
///
/// // A quoted value must be a token once unquoted (RFC 6455 §9.1); the next element is
/// // still read.
/// let list = parse(&["x-foo; a=\"not a token\", permessage-deflate"]);
/// assert_eq!(list[0], Err(SyntaxError("x-foo; a=\"not a token\"".into())));
/// assert!(list[1].is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed Sec-WebSocket-Extensions element {:?} (RFC 6455 §9.1)",
            self.0
        )
    }
}

impl std::error::Error for SyntaxError {}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A non-empty run of `tchar`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_tchar)
}

/// Splits `s` at every `sep` outside a quoted string (backslash escapes honoured).
/// An unterminated quote leaves the rest of `s` in the last piece.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            pieces.push(&s[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&s[start..]);
    pieces
}

/// A parameter value: a token, or a quoted string whose content, unescaped, is a
/// token (RFC 6455 §9.1: "the value after quoted-string unescaping MUST conform to the
/// 'token' ABNF").
fn parse_value(raw: &str) -> Option<String> {
    let value = match raw.strip_prefix('"') {
        None => raw.to_string(),
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '"' => return None,
                    c => out.push(c),
                }
            }
            out
        }
    };
    is_token(&value).then_some(value)
}

fn parse_element(element: &str) -> Result<Extension, SyntaxError> {
    let bad = || SyntaxError(element.trim().to_string());
    let mut parts = split_outside_quotes(element, ';').into_iter();
    let name = parts.next().unwrap_or_default().trim();
    if !is_token(name) {
        return Err(bad());
    }
    let mut params = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (key.trim(), Some(parse_value(value.trim()).ok_or_else(bad)?)),
            None => (part.trim(), None),
        };
        if !is_token(key) {
            return Err(bad());
        }
        params.push((key.to_string(), value));
    }
    Ok(Extension {
        name: name.to_string(),
        params,
    })
}

/// Parses the values of every `Sec-WebSocket-Extensions` header line, in order, into
/// one list. Empty elements (`a, , b`) are skipped, as RFC 9110 §5.6.1 asks; each other
/// element is an [`Extension`] or a [`SyntaxError`].
///
/// ```
/// use rfc6455::extensions::parse;
///
/// let list = parse(&["a; x=\"1\"", "b;;", "c; y=\"not a token\""]);
/// assert_eq!(list.len(), 3);
/// assert!(list[0].is_ok());
/// assert!(list[1].is_err()); // an empty parameter
/// assert!(list[2].is_err()); // a quoted value that is not a token
/// ```
pub fn parse(values: &[&str]) -> Vec<Result<Extension, SyntaxError>> {
    values
        .iter()
        .flat_map(|value| split_outside_quotes(value, ','))
        .filter(|element| !element.trim().is_empty())
        .map(parse_element)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_commas_and_semicolons_do_not_split() {
        let list = parse(&["a; p=\"x,y\", b; q=\"1;2\""]);
        // Both quoted values are not tokens: both elements are malformed, but they are
        // two elements, not four.
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(Result::is_err));
    }

    #[test]
    fn escapes_and_whitespace() {
        let list = parse(&["  permessage-deflate ;client_max_window_bits = \"1\\0\" "]);
        let ext = list[0].as_ref().unwrap();
        assert_eq!(ext.name, "permessage-deflate");
        assert_eq!(
            ext.params[0],
            ("client_max_window_bits".into(), Some("10".into()))
        );
    }

    #[test]
    fn malformed_elements() {
        for bad in ["=x", "a; =1", "a; b=", "a; b=\"1", "a b", "a; b c", "\"a\""] {
            assert!(parse(&[bad])[0].is_err(), "{bad}");
        }
    }
}
