//! XML in and out. Responses are written with a small element writer (S3's
//! documents are flat and their element order is fixed, so a writer states the
//! shape more plainly than serde attributes would); request bodies are parsed
//! with quick-xml's serde support into typed structs, under a size cap.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::error::{Code, S3Error, S3Result};

pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Builds one XML document; every text value is escaped.
pub struct XmlWriter {
    out: String,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        }
    }

    /// Opens the document's root element in the S3 namespace.
    pub fn root(&mut self, name: &str) {
        let _ = write!(self.out, "<{name} xmlns=\"{S3_NS}\">");
    }

    pub fn open(&mut self, name: &str) {
        let _ = write!(self.out, "<{name}>");
    }

    pub fn close(&mut self, name: &str) {
        let _ = write!(self.out, "</{name}>");
    }

    pub fn elem(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.out, text);
        self.close(name);
    }

    /// Escaped text inside the current element.
    pub fn text(&mut self, text: &str) {
        escape_into(&mut self.out, text);
    }

    /// Markup written as is; only for constant strings.
    pub fn out_raw(&mut self, markup: &'static str) {
        self.out.push_str(markup);
    }

    pub fn elem_opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.elem(name, text);
        }
    }

    pub fn elem_display(&mut self, name: &str, value: impl std::fmt::Display) {
        let _ = write!(self.out, "<{name}>{value}</{name}>");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes markup characters, and writes characters XML 1.0 cannot carry
/// literally (control characters other than tab, LF, CR) as character
/// references, as S3 does for such keys.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Parses a request body into `T`; anything that is not the expected
/// document is `MalformedXML`.
pub fn parse<'de, T: Deserialize<'de>>(body: &'de [u8]) -> S3Result<T> {
    // XML 1.0 cannot carry U+0000, raw or as a reference; the parser would
    // take it raw, and what was stored could not be given back
    // (regression_xml_nul_round_trips, found by fuzzing).
    if body.contains(&0) {
        return Err(S3Error::with_message(
            Code::MalformedXML,
            "XML cannot carry the character U+0000.",
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| S3Error::new(Code::MalformedXML))?;
    quick_xml::de::from_str(text).map_err(|e| {
        let mut err = S3Error::new(Code::MalformedXML);
        err.cause = Some(e.to_string());
        err
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        let mut w = XmlWriter::new();
        w.elem("Key", "a<b>&\"c'\u{1}d");
        assert!(
            w.finish()
                .ends_with("<Key>a&lt;b&gt;&amp;&quot;c&apos;&#x1;d</Key>")
        );
    }

    #[test]
    fn root_carries_the_s3_namespace() {
        let mut w = XmlWriter::new();
        w.root("ListAllMyBucketsResult");
        w.close("ListAllMyBucketsResult");
        assert!(w.finish().contains(
            "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></ListAllMyBucketsResult>"
        ));
    }
}
