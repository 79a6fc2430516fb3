//! Authentication: who sent a request (SigV4 in the `Authorization` header or
//! in a presigned query string, or nobody), and what its body must prove
//! (a SHA-256, signed chunks, or nothing). Authorisation, in [`access`],
//! then decides what that principal may do. Both run before any byte of the
//! body is read.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html>

pub mod access;
pub mod post_policy;
pub mod sigv4;

use http::{HeaderMap, Method};

use crate::config::{Config, Credential};
use crate::error::{Code, S3Error, S3Result};
use crate::query::Query;
use sigv4::SigningKey;

/// How far a request's clock may be from ours.
const MAX_SKEW_MS: i64 = 15 * 60 * 1000;
/// The longest a presigned URL may live (7 days).
const MAX_EXPIRES_SECS: i64 = 7 * 24 * 3600;

/// Who a request acts as.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    Key(Credential),
}

impl Principal {
    /// The owner name of what this principal creates.
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::Key(c) => &c.access_key_id,
        }
    }
}

/// What the request body must prove as it streams.
#[derive(Debug, Default)]
pub enum Payload {
    /// Nothing: `UNSIGNED-PAYLOAD`, a presigned URL, an anonymous request.
    #[default]
    Unsigned,
    /// The body must hash to this SHA-256.
    Sha256([u8; 32]),
    /// aws-chunked with every chunk signed, chained from the seed
    /// signature; with `STREAMING-...-TRAILER`, the trailer is signed too.
    SignedChunks(ChunkSigner),
}

/// Verifies the signature chain of a signed aws-chunked body.
#[derive(Debug)]
pub struct ChunkSigner {
    key: SigningKey,
    timestamp: String,
    scope: String,
    previous: String,
    /// Whether a signed trailer ends the body.
    pub trailer: bool,
}

impl ChunkSigner {
    pub fn new(
        key: SigningKey,
        timestamp: &str,
        scope: &str,
        seed: &str,
        trailer: bool,
    ) -> ChunkSigner {
        ChunkSigner {
            key,
            timestamp: timestamp.to_owned(),
            scope: scope.to_owned(),
            previous: seed.to_owned(),
            trailer,
        }
    }

    /// Checks the signature of the next chunk, whose data hashes to
    /// `data_sha256` (hex); on success it becomes the previous signature.
    pub fn verify_chunk(&mut self, data_sha256: &str, signature: &str) -> bool {
        let sts =
            sigv4::chunk_string_to_sign(&self.timestamp, &self.scope, &self.previous, data_sha256);
        self.accept(&sts, signature)
    }

    /// Checks the trailer signature over the trailer headers.
    pub fn verify_trailer(&mut self, trailers: &[(String, String)], signature: &str) -> bool {
        let sts =
            sigv4::trailer_string_to_sign(&self.timestamp, &self.scope, &self.previous, trailers);
        self.accept(&sts, signature)
    }

    fn accept(&mut self, string_to_sign: &str, signature: &str) -> bool {
        let ok = self.key.verify(string_to_sign, signature);
        if ok {
            signature.clone_into(&mut self.previous);
        }
        ok
    }
}

/// The outcome of authentication.
#[derive(Debug)]
pub struct Authenticated {
    pub principal: Principal,
    pub payload: Payload,
    /// How the request was authenticated, for the access log.
    pub mode: &'static str,
}

impl Authenticated {
    /// Authenticated by query parameters: the URL's signed `x-amz-*`
    /// parameters stand for headers.
    pub fn is_presigned(&self) -> bool {
        self.mode == "presigned"
    }

    pub fn anonymous() -> Authenticated {
        Authenticated {
            principal: Principal::Anonymous,
            payload: Payload::Unsigned,
            mode: "anonymous",
        }
    }
}

/// The request line and headers authentication looks at.
pub struct RequestParts<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub raw_query: Option<&'a str>,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
}

/// Authenticates a request at `now_ms`.
pub fn authenticate(config: &Config, req: &RequestParts, now_ms: i64) -> S3Result<Authenticated> {
    let authorization = req.headers.get("authorization");
    let presigned = req.query.has("X-Amz-Algorithm") || req.query.has("X-Amz-Credential");
    match (authorization, presigned) {
        (Some(_), true) => Err(S3Error::with_message(
            Code::InvalidArgument,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
        )
        .detail("ArgumentName", "Authorization")),
        (Some(value), false) => {
            let value = value.to_str().map_err(|_| malformed_header("it is not ASCII"))?;
            header_auth(config, req, value, now_ms)
        }
        (None, true) => query_auth(config, req, now_ms),
        (None, false) if req.query.has("AWSAccessKeyId") && req.query.has("Signature") => {
            Err(v2_unsupported())
        }
        (None, false) => Ok(Authenticated::anonymous()),
    }
}

fn v2_unsupported() -> S3Error {
    S3Error::with_message(
        Code::InvalidRequest,
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
    )
}

fn malformed_header(why: &str) -> S3Error {
    S3Error::with_message(
        Code::AuthorizationHeaderMalformed,
        format!("The authorization header is malformed; {why}."),
    )
}

fn query_error(message: impl Into<String>) -> S3Error {
    S3Error::with_message(Code::AuthorizationQueryParametersError, message)
}

/// `AKID/20130524/us-east-1/s3/aws4_request`, split.
struct CredentialScope<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

fn parse_credential(value: &str) -> Option<CredentialScope<'_>> {
    let mut parts = value.rsplitn(5, '/');
    let terminal = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let date = parts.next()?;
    let access_key = parts.next()?;
    (terminal == "aws4_request" && !access_key.is_empty()).then_some(CredentialScope {
        access_key,
        date,
        region,
        service,
    })
}

/// The parts of a SigV4 signature, from a header or a query string.
struct Signed<'a> {
    scope: CredentialScope<'a>,
    signed_headers: &'a str,
    signature: &'a str,
    /// `x-amz-date`/`X-Amz-Date`, `YYYYMMDDTHHMMSSZ`.
    timestamp: String,
}

/// The credential scope, signed headers and signature of an
/// `Authorization: AWS4-HMAC-SHA256 ...` header.
fn parse_authorization(value: &str) -> S3Result<(CredentialScope<'_>, &str, &str)> {
    if value.starts_with("AWS ") {
        return Err(v2_unsupported());
    }
    let Some(fields) = value
        .strip_prefix(sigv4::ALGORITHM)
        .filter(|r| r.starts_with(' '))
    else {
        return Err(malformed_header("the algorithm must be AWS4-HMAC-SHA256"));
    };
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',') {
        let Some((name, v)) = field.trim().split_once('=') else {
            return Err(malformed_header("a field is not name=value"));
        };
        match name {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(malformed_header("it has an unknown field")),
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(malformed_header(
            "it needs Credential, SignedHeaders and Signature",
        ));
    };
    let scope = parse_credential(credential).ok_or_else(|| {
        malformed_header(
            "incorrect Credential; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"",
        )
    })?;
    Ok((scope, signed_headers, signature))
}

fn header_auth(
    config: &Config,
    req: &RequestParts,
    value: &str,
    now_ms: i64,
) -> S3Result<Authenticated> {
    let (scope, signed_headers, signature) = parse_authorization(value)?;
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let (timestamp, timestamp_ms) = match header("x-amz-date") {
        Some(v) => (v.to_owned(), crate::time::parse_amz_date(v)),
        None => match header("date").and_then(crate::time::parse_http_date) {
            Some(ms) => (crate::time::amz_date(ms), Some(ms)),
            None => (String::new(), None),
        },
    };
    let Some(timestamp_ms) = timestamp_ms else {
        return Err(S3Error::with_message(
            Code::AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header",
        ));
    };
    let signed = Signed {
        scope,
        signed_headers,
        signature,
        timestamp,
    };
    let credential = check_scope(config, &signed, false)?;
    if (now_ms - timestamp_ms).abs() > MAX_SKEW_MS {
        return Err(S3Error::new(Code::RequestTimeTooSkewed)
            .detail("RequestTime", signed.timestamp.clone())
            .detail("ServerTime", crate::time::iso8601(now_ms))
            .detail("MaxAllowedSkewMilliseconds", MAX_SKEW_MS.to_string()));
    }
    let Some(payload_hash) = header("x-amz-content-sha256") else {
        return Err(S3Error::new(Code::MissingSecurityHeader)
            .detail("MissingHeaderName", "x-amz-content-sha256"));
    };
    check_signed_headers(req.headers, signed_headers, None)?;
    let key = verify(req, &signed, &credential, payload_hash, None)?;
    let mode = match payload_hash {
        "UNSIGNED-PAYLOAD" => "sigv4-unsigned",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => "sigv4-unsigned-trailer",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => "sigv4-signed-chunks",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => "sigv4-signed-chunks-trailer",
        _ => "sigv4-sha256",
    };
    let payload = match payload_hash {
        "UNSIGNED-PAYLOAD" | "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Payload::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => {
            Payload::SignedChunks(ChunkSigner::new(
                key,
                &signed.timestamp,
                &scope_string(&signed),
                signature,
                payload_hash.ends_with("-TRAILER"),
            ))
        }
        hash => match sigv4::parse_hex32(hash) {
            Some(digest) => Payload::Sha256(digest),
            None => {
                return Err(S3Error::invalid_argument(
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
                    "x-amz-content-sha256",
                    hash,
                ));
            }
        },
    };
    Ok(Authenticated {
        principal: Principal::Key(credential),
        payload,
        mode,
    })
}

fn query_auth(config: &Config, req: &RequestParts, now_ms: i64) -> S3Result<Authenticated> {
    let q = req.query;
    if q.get("X-Amz-Algorithm") != Some(sigv4::ALGORITHM) {
        return Err(query_error(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let required = [
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ];
    let [
        Some(credential),
        Some(date),
        Some(expires),
        Some(signed_headers),
        Some(signature),
    ] = required.map(|name| q.get(name))
    else {
        return Err(query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        ));
    };
    let scope = parse_credential(credential).ok_or_else(|| {
        query_error("Error parsing the X-Amz-Credential parameter; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"")
    })?;
    let timestamp_ms = crate::time::parse_amz_date(date).ok_or_else(|| {
        query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    let expires_secs: i64 =
        expires.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            query_error("X-Amz-Expires must be a number of seconds from 1 to 604800")
        })?;
    if expires_secs > MAX_EXPIRES_SECS {
        return Err(query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    let signed = Signed {
        scope,
        signed_headers,
        signature,
        timestamp: date.to_owned(),
    };
    let credential = check_scope(config, &signed, true)?;
    if timestamp_ms - now_ms > MAX_SKEW_MS {
        return Err(S3Error::with_message(
            Code::AccessDenied,
            "Request is not valid yet",
        ));
    }
    if now_ms > timestamp_ms + expires_secs * 1000 {
        return Err(
            S3Error::with_message(Code::AccessDenied, "Request has expired")
                .detail("X-Amz-Expires", expires)
                .detail(
                    "Expires",
                    crate::time::iso8601(timestamp_ms + expires_secs * 1000),
                )
                .detail("ServerTime", crate::time::iso8601(now_ms)),
        );
    }
    check_signed_headers(req.headers, signed_headers, Some(q))?;
    let payload_hash = q.get("X-Amz-Content-Sha256").unwrap_or("UNSIGNED-PAYLOAD");
    verify(
        req,
        &signed,
        &credential,
        payload_hash,
        Some("X-Amz-Signature"),
    )?;
    // A URL that signed its body's hash binds the body to it.
    let payload = sigv4::parse_hex32(payload_hash).map_or(Payload::Unsigned, Payload::Sha256);
    Ok(Authenticated {
        principal: Principal::Key(credential),
        payload,
        mode: "presigned",
    })
}

fn scope_string(signed: &Signed) -> String {
    let s = &signed.scope;
    sigv4::scope(s.date, s.region, s.service)
}

/// Finds the credential and checks the scope's date, region and service.
fn check_scope(config: &Config, signed: &Signed, query: bool) -> S3Result<Credential> {
    let s = &signed.scope;
    let Some(credential) = config.credential(s.access_key) else {
        return Err(S3Error::new(Code::InvalidAccessKeyId).detail("AWSAccessKeyId", s.access_key));
    };
    let malformed = |why: String| {
        if query {
            query_error(format!(
                "Error parsing the X-Amz-Credential parameter; {why}"
            ))
        } else {
            malformed_header(&why)
        }
    };
    if s.region != config.region {
        return Err(malformed(format!(
            "the region '{}' is wrong; expecting '{}'",
            s.region, config.region
        ))
        .detail("Region", config.region.clone()));
    }
    if s.service != "s3" {
        return Err(malformed(format!(
            "incorrect service '{}'. This endpoint belongs to 's3'",
            s.service
        )));
    }
    if !signed.timestamp.starts_with(s.date) || s.date.len() != 8 {
        return Err(malformed(format!(
            "invalid credential date '{}'; it must be the date of the request time",
            s.date
        )));
    }
    Ok(credential)
}

/// `host` must be signed, and so must every `x-amz-*` header sent (S3 lets
/// a presigned URL carry them as query parameters instead), except
/// `x-amz-content-sha256`, whose value the canonical request covers anyway.
fn check_signed_headers(
    headers: &HeaderMap,
    signed_headers: &str,
    query: Option<&Query>,
) -> S3Result<()> {
    let signed = |name: &str| signed_headers.split(';').any(|h| h == name);
    if !signed("host") {
        return Err(S3Error::with_message(
            Code::AccessDenied,
            "There were headers present in the request which were not signed",
        )
        .detail("HeadersNotSigned", "host"));
    }
    let unsigned: Vec<&str> = headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| n.starts_with("x-amz-") && *n != "x-amz-content-sha256" && !signed(n))
        .filter(|n| {
            // A presigned URL may carry the header as a signed parameter;
            // a header repeating it is fine, one that differs is not.
            let value = headers.get(*n).and_then(|v| v.to_str().ok());
            !query.is_some_and(|q| {
                q.0.iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(n) && Some(v.as_str()) == value)
            })
        })
        .collect();
    if !unsigned.is_empty() {
        return Err(S3Error::with_message(
            Code::AccessDenied,
            "There were headers present in the request which were not signed",
        )
        .detail("HeadersNotSigned", unsigned.join(", ")));
    }
    Ok(())
}

/// Computes the canonical request and checks the signature. S3 canonicalises
/// the path from its decoded form; a client that signed its path exactly as
/// sent, in another valid encoding, is accepted too (the path decodes to the
/// same key either way).
fn verify(
    req: &RequestParts,
    signed: &Signed,
    credential: &Credential,
    payload_hash: &str,
    skip_param: Option<&str>,
) -> S3Result<SigningKey> {
    let s = &signed.scope;
    let key = SigningKey::derive(&credential.secret_access_key, s.date, s.region, s.service);
    let scope = scope_string(signed);
    let query = sigv4::canonical_query(req.raw_query, skip_param);
    let attempt = |uri: &str| {
        let creq = sigv4::canonical_request(
            req.method.as_str(),
            uri,
            &query,
            req.headers,
            signed.signed_headers,
            payload_hash,
        );
        let sts = sigv4::string_to_sign(&signed.timestamp, &scope, &creq);
        let ok = key.verify(&sts, signed.signature);
        (ok, creq, sts)
    };
    let uri = sigv4::canonical_uri(req.path);
    let (ok, creq, sts) = attempt(&uri);
    if ok || (req.path != uri && attempt(req.path).0) {
        return Ok(key);
    }
    Err(S3Error::new(Code::SignatureDoesNotMatch)
        .detail("AWSAccessKeyId", s.access_key)
        .detail("StringToSign", sts)
        .detail("SignatureProvided", signed.signature)
        .detail("CanonicalRequest", creq))
}

#[cfg(test)]
mod tests;
