//! Non-ASCII user metadata, as S3 carries it in HTTP headers: a value sent
//! as RFC 2047 encoded-words (`=?UTF-8?B?...?=`) is decoded before it is
//! stored; raw bytes are UTF-8 when they are valid UTF-8 (what clients
//! that send raw bytes mean) and ISO-8859-1 otherwise; and a
//! stored value that is not printable US-ASCII is returned as one
//! `=?UTF-8?B?...?=` word. SDKs refuse non-ASCII header values, so this is
//! how a client stores `café` and reads it back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The value to return in a header.
pub fn encode(value: &str) -> String {
    let plain = value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
    if plain {
        value.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(value))
    }
}

/// The value to store for raw header bytes.
pub fn decode(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(text) => decode_words(text).unwrap_or_else(|| text.to_owned()),
        Err(_) => raw.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A value made only of encoded-words, separated by whitespace (which
/// RFC 2047 drops between adjacent words); `None` for anything else.
fn decode_words(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut words = text.split_ascii_whitespace().peekable();
    words.peek()?;
    for word in words {
        out.push_str(&decode_word(word)?);
    }
    Some(out)
}

/// One `=?charset?encoding?text?=`.
fn decode_word(word: &str) -> Option<String> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let (charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = match encoding {
        "B" | "b" => STANDARD.decode(text).ok()?,
        "Q" | "q" => decode_q(text)?,
        _ => return None,
    };
    match charset.to_ascii_uppercase().as_str() {
        "UTF-8" => String::from_utf8(bytes).ok(),
        "ISO-8859-1" | "US-ASCII" => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

/// The "Q" encoding: `_` is a space, `=XX` a byte in hex.
fn decode_q(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_passes_through_both_ways() {
        assert_eq!(decode(b"plain value"), "plain value");
        assert_eq!(encode("plain value"), "plain value");
    }

    #[test]
    fn encoded_words_are_stored_decoded_and_returned_encoded() {
        let stored = decode(b"=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?=");
        assert_eq!(stored, "Hello World\u{e9}");
        assert_eq!(encode(&stored), "=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?=");
        assert_eq!(
            decode(b"=?utf-8?q?caf=C3=A9_au_lait?="),
            "caf\u{e9} au lait"
        );
        assert_eq!(
            decode(b"=?ISO-8859-1?Q?caf=E9?= =?UTF-8?B?IQ==?="),
            "caf\u{e9}!"
        );
    }

    #[test]
    fn raw_bytes_are_utf_8_when_they_can_be_and_latin_1_otherwise() {
        // Raw UTF-8 for "é" is "é" (it once came back as mojibake).
        assert_eq!(decode("Hello World\u{e9}".as_bytes()), "Hello World\u{e9}");
        assert_eq!(decode(b"caf\xe9"), "caf\u{e9}");
        assert_eq!(decode(b"=?UTF-8?X?abc?="), "=?UTF-8?X?abc?=");
        assert_eq!(decode(b"=?UTF-8?B?not base64?="), "=?UTF-8?B?not base64?=");
    }
}
