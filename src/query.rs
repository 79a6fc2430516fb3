//! A request's query string, decoded: shared by every front-end and by
//! presigned-URL authentication.

use percent_encoding::percent_decode_str;

use crate::error::{Code, S3Error, S3Result};

/// Decoded query parameters, in request order.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> S3Result<Query> {
        let mut out = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push((decode_query(k)?, decode_query(v)?));
        }
        Ok(Query(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

fn decode_query(s: &str) -> S3Result<String> {
    // In a query string `+` stands for a space (form encoding); SDKs send
    // `%2B` for a plus.
    let s = s.replace('+', " ");
    percent_decode_str(&s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| S3Error::new(Code::InvalidURI))
}
