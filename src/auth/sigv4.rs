//! AWS Signature Version 4 as S3 uses it: canonical requests, signing keys,
//! and the strings to sign of requests, presigned URLs, aws-chunked chunks
//! and trailers. Everything here is a pure function of its inputs.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html>

use std::fmt;

use ::hmac::{Hmac, KeyInit, Mac};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The SHA-256 of no bytes, which every chunk string to sign contains.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    crate::store::model::hex(bytes)
}

/// Parses 64 hex digits (either case) into 32 bytes.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The key derived from a secret for one day, region and service. Its
/// `Debug` output hides the bytes, so it can never reach a log.
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn derive(secret: &str, date: &str, region: &str, service: &str) -> SigningKey {
        let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k = hmac(&k, region.as_bytes());
        let k = hmac(&k, service.as_bytes());
        SigningKey(hmac(&k, b"aws4_request"))
    }

    /// The hex signature of `string_to_sign`.
    pub fn sign(&self, string_to_sign: &str) -> String {
        hex(&hmac(&self.0, string_to_sign.as_bytes()))
    }

    /// Whether `signature` (hex) signs `string_to_sign`, compared in
    /// constant time.
    pub fn verify(&self, string_to_sign: &str, signature: &str) -> bool {
        let Some(provided) = parse_hex32(signature) else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(&provided).is_ok()
    }
}

/// `date/region/service/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

pub fn string_to_sign(timestamp: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The string to sign of one aws-chunked chunk, chained from the previous
/// signature (the seed signature for the first chunk).
pub fn chunk_string_to_sign(
    timestamp: &str,
    scope: &str,
    previous: &str,
    chunk_sha256: &str,
) -> String {
    format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{timestamp}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{chunk_sha256}"
    )
}

/// The string to sign of the trailer of a signed aws-chunked body: the
/// trailer headers (names lower-case, values trimmed) as `name:value\n`
/// lines sorted by name, hashed.
pub fn trailer_string_to_sign(
    timestamp: &str,
    scope: &str,
    previous: &str,
    trailers: &[(String, String)],
) -> String {
    let mut sorted: Vec<&(String, String)> = trailers.iter().collect();
    sorted.sort();
    let mut canonical = String::new();
    for (name, value) in sorted {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    format!(
        "AWS4-HMAC-SHA256-TRAILER\n{timestamp}\n{scope}\n{previous}\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

/// URI-encodes per SigV4: unreserved characters stay, everything else
/// becomes `%XX` (upper case); `/` stays when `keep_slash`.
pub fn uri_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && keep_slash)
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// S3's canonical URI: the decoded path encoded exactly once, never
/// normalised (`//` and `.` segments are part of keys).
pub fn canonical_uri(raw_path: &str) -> String {
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    let mut out = String::with_capacity(raw_path.len() + 8);
    if !decoded.starts_with(b"/") {
        out.push('/');
    }
    uri_encode(&decoded, true, &mut out);
    out
}

/// The canonical query string: every parameter but `skip` (the presigned
/// `X-Amz-Signature`), names and values decoded then encoded once, sorted.
/// SDKs never send a raw `+`; one is read as a space, exactly as the router
/// reads it, so that what was signed is what the operation sees.
pub fn canonical_query(raw: Option<&str>, skip: Option<&str>) -> String {
    let decode = |s: &str| -> Vec<u8> { percent_decode_str(&s.replace('+', " ")).collect() };
    let mut pairs: Vec<(String, String)> = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k);
            if skip.is_some_and(|s| s.as_bytes() == k.as_slice()) {
                return None;
            }
            let (mut name, mut value) = (String::new(), String::new());
            uri_encode(&k, false, &mut name);
            uri_encode(&decode(v), false, &mut value);
            Some((name, value))
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// A header value as signed: surrounding whitespace trimmed and inner runs
/// of spaces collapsed to one.
fn canonical_value(value: &[u8], out: &mut String) {
    let value = String::from_utf8_lossy(value);
    let mut first = true;
    for word in value.split_ascii_whitespace() {
        if !first {
            out.push(' ');
        }
        out.push_str(word);
        first = false;
    }
}

/// The canonical request. `signed_headers` is the client's `;`-separated,
/// lower-case list; several values of one header are joined with commas.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &http::HeaderMap,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(method);
    out.push('\n');
    out.push_str(canonical_uri);
    out.push('\n');
    out.push_str(canonical_query);
    out.push('\n');
    for name in signed_headers.split(';') {
        out.push_str(name);
        out.push(':');
        for (i, value) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            canonical_value(value.as_bytes(), &mut out);
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The client side of SigV4, for the benchmark and the tests' raw
/// requests (the server only verifies). Signs every header present; the
/// request must already carry `x-amz-date` and `x-amz-content-sha256`.
pub struct Signer<'a> {
    pub access_key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
}

impl Signer<'_> {
    /// `YYYYMMDD` of a `YYYYMMDDTHHMMSSZ` timestamp.
    fn date(timestamp: &str) -> &str {
        timestamp.get(..8).unwrap_or(timestamp)
    }

    fn key(&self, timestamp: &str) -> SigningKey {
        SigningKey::derive(self.secret, Self::date(timestamp), self.region, "s3")
    }

    /// The `Authorization` header value and the signature in it (the seed
    /// of a signed chunk stream).
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        raw_query: Option<&str>,
        headers: &http::HeaderMap,
    ) -> (String, String) {
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let timestamp = value("x-amz-date");
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let signed_headers = names.join(";");
        let creq = canonical_request(
            method,
            &canonical_uri(path),
            &canonical_query(raw_query, None),
            headers,
            &signed_headers,
            value("x-amz-content-sha256"),
        );
        let scope = scope(Self::date(timestamp), self.region, "s3");
        let signature = self
            .key(timestamp)
            .sign(&string_to_sign(timestamp, &scope, &creq));
        let header = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key
        );
        (header, signature)
    }

    /// A presigned URL's path and query: `method` on `path` (as sent,
    /// percent-encoded) with `params` signed in, valid for `expires`
    /// seconds from `timestamp`, for a client that sends only `host`.
    pub fn presign(
        &self,
        method: &str,
        (host, path): (&str, &str),
        params: &[(&str, &str)],
        timestamp: &str,
        expires: u64,
    ) -> String {
        let scope = scope(Self::date(timestamp), self.region, "s3");
        let credential = format!("{}/{scope}", self.access_key);
        let expires = expires.to_string();
        let mut query = String::new();
        let signing = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", credential.as_str()),
            ("X-Amz-Date", timestamp),
            ("X-Amz-Expires", expires.as_str()),
            ("X-Amz-SignedHeaders", "host"),
        ];
        for (name, value) in params.iter().chain(signing.iter()) {
            if !query.is_empty() {
                query.push('&');
            }
            uri_encode(name.as_bytes(), false, &mut query);
            query.push('=');
            uri_encode(value.as_bytes(), false, &mut query);
        }
        let mut headers = http::HeaderMap::new();
        if let Ok(h) = http::HeaderValue::from_str(host) {
            headers.insert(http::header::HOST, h);
        }
        let creq = canonical_request(
            method,
            &canonical_uri(path),
            &canonical_query(Some(&query), None),
            &headers,
            "host",
            "UNSIGNED-PAYLOAD",
        );
        let signature = self
            .key(timestamp)
            .sign(&string_to_sign(timestamp, &scope, &creq));
        format!("{path}?{query}&X-Amz-Signature={signature}")
    }

    /// The signature of the next chunk of a signed stream.
    pub fn chunk_signature(&self, timestamp: &str, previous: &str, data_sha256: &str) -> String {
        let scope = scope(Self::date(timestamp), self.region, "s3");
        self.key(timestamp).sign(&chunk_string_to_sign(
            timestamp,
            &scope,
            previous,
            data_sha256,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_signer_reproduces_the_documented_get_example() {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ] {
            h.insert(k, http::HeaderValue::from_static(v));
        }
        let signer = Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
        };
        let (header, signature) = signer.authorization("GET", "/test.txt", None, &h);
        assert_eq!(
            signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(header.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;"
        ));
    }

    #[test]
    fn canonical_uri_encodes_once_and_keeps_slashes() {
        assert_eq!(canonical_uri("/bkt/a%20b/c+d"), "/bkt/a%20b/c%2Bd");
        assert_eq!(canonical_uri("/bkt/%7Euser/x$y"), "/bkt/~user/x%24y");
        assert_eq!(canonical_uri("/bkt//./k"), "/bkt//./k");
        assert_eq!(canonical_uri(""), "/");
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query(None, None), "");
        assert_eq!(
            canonical_query(Some("uploads&prefix=a%2Fb&max-keys=2&a=x+y"), None),
            "a=x%20y&max-keys=2&prefix=a%2Fb&uploads="
        );
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=ff&b=1"), Some("X-Amz-Signature")),
            "b=1"
        );
    }

    #[test]
    fn hex32_parses_either_case_and_rejects_junk() {
        let lower = sha256_hex(b"");
        assert_eq!(lower, EMPTY_SHA256);
        assert_eq!(
            parse_hex32(&lower),
            parse_hex32(&lower.to_ascii_uppercase())
        );
        assert!(parse_hex32(&lower[1..]).is_none());
        assert!(parse_hex32(&format!("g{}", &lower[1..])).is_none());
    }
}
