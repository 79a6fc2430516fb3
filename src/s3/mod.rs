//! Operations: one module per S3 family. [`handle`] routes a request, runs
//! its operation and renders any error; every response carries the request
//! id.

mod acl;

mod attributes;
mod buckets;
pub mod cors;
pub mod errors;
mod lifecycle;
mod list;
pub mod multipart;
pub mod objects;
mod post;
pub mod router;
pub mod tagging;

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;

use crate::auth::access;
use crate::auth::{self, Authenticated, Payload, Principal};
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::{self, RequestBody, ResponseBody};
pub use crate::server::body::{set_header, status_response};
pub use crate::server::state::{AppState, Outcome};
use crate::store::Store;
use crate::store::meta::MetaStore;
use crate::store::model::ObjectMeta;
pub use crate::store::rules::input::{check_key, object_meta_from};
use md5::Digest as _;
use router::{Operation, Query};

/// One request, parsed.
pub struct Ctx {
    pub state: Arc<AppState>,
    pub op: Operation,
    pub headers: HeaderMap,
    pub query: Query,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// Who the request acts as; its name owns what the request creates.
    pub principal: Principal,
    /// What the body must prove; taken with the body.
    payload: Option<Payload>,
    body: Option<Incoming>,
    /// The request's hold on its connection, taken once authenticated.
    hold: Option<Arc<crate::server::admission::Hold>>,
}

impl Ctx {
    /// The request is authenticated: its connection is not shed while it
    /// is served.
    pub fn authenticated(&self) {
        if let Some(hold) = &self.hold {
            hold.authenticated();
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.state.store
    }

    pub fn meta(&self) -> &dyn MetaStore {
        self.state.store.meta.as_ref()
    }

    /// The bucket a bucket or object operation names. The router gives
    /// those operations only to requests that name one; anything else reads
    /// as the empty name, which no bucket has, so a misrouted request is
    /// refused by the store and never panics.
    pub fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or_default()
    }

    /// The key an object operation names (likewise, never a panic).
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// The request body, read with framing removed and `limit` enforced.
    pub fn body(&mut self, limit: u64) -> S3Result<RequestBody> {
        let incoming = self
            .body
            .take()
            .ok_or_else(|| S3Error::internal("the request body was taken twice"))?;
        let payload = self.payload.take().unwrap_or_default();
        let limits = &self.state.config().limits;
        let grace = std::time::Duration::from_secs(limits.body_rate_grace_secs);
        Ok(RequestBody::new(incoming, &self.headers, limit, payload)?
            .with_min_rate(limits.min_body_rate, grace)
            .with_chunk_budget(&self.state.chunk_budget))
    }

    /// A small XML body, collected under the configured cap; its
    /// `Content-MD5`, if sent, must match.
    pub async fn xml_body(&mut self) -> S3Result<bytes::Bytes> {
        self.collect_xml(false, false).await
    }

    /// An XML body whose `x-amz-checksum-*` headers (or trailer) describe
    /// the body itself, as on DeleteObjects and PutBucketCors (on
    /// CompleteMultipartUpload they describe the object instead). With
    /// `required`, a request carrying neither that nor `Content-MD5` is
    /// refused, as S3 refuses it.
    pub async fn xml_body_checked(&mut self, required: bool) -> S3Result<bytes::Bytes> {
        self.collect_xml(true, required).await
    }

    async fn collect_xml(&mut self, checksums: bool, required: bool) -> S3Result<bytes::Bytes> {
        use crate::checksum;
        let md5 = checksum::content_md5(&self.headers)?;
        let requested = if checksums {
            checksum::requested(&self.headers)?
        } else {
            None
        };
        let missing = || {
            S3Error::with_message(
                Code::InvalidRequest,
                "Missing required header for this request: Content-MD5",
            )
        };
        if required && md5.is_none() && requested.is_none() {
            return Err(missing());
        }
        let cap = self.state.config().limits.max_xml_body as u64;
        let mut body = self.body(cap)?;
        let mut data = bytes::BytesMut::new();
        while let Some(piece) = body.next().await? {
            data.extend_from_slice(&piece);
        }
        // Only a digest that is actually there counts: a bare algorithm
        // name, or a trailer announced but never sent, proves nothing.
        let has_value = matches!(
            requested.as_ref().map(|r| &r.source),
            Some(checksum::Source::Header(_))
        ) || body
            .trailers()
            .iter()
            .any(|(name, _)| name.starts_with("x-amz-checksum-"));
        if required && md5.is_none() && !has_value {
            return Err(missing());
        }
        if md5.is_some() {
            checksum::check_md5(md5, md5::Md5::digest(&data).into())?;
        }
        if let Some(requested) = &requested {
            let mut hasher = checksum::Hasher::new(requested.algorithm);
            hasher.update(&data);
            checksum::verify(Some(requested), &hasher.finish(), body.trailers())?;
        }
        Ok(data.freeze())
    }
}

pub async fn handle(state: Arc<AppState>, req: Request<Incoming>, request_id: &str) -> Outcome {
    let (mut parts, incoming) = req.into_parts();
    let resource = parts.uri.path().to_owned();
    let host = parts.headers.get("host").and_then(|v| v.to_str().ok());
    let target = router::split_target(parts.uri.path(), host, state.config().domain.as_deref());
    let parsed =
        target.and_then(|(bucket, key)| Ok((bucket, key, Query::parse(parts.uri.query())?)));
    let (bucket, key, query) = match parsed {
        Ok(p) => p,
        Err(e) => {
            return error_outcome(
                e,
                Operation::NotImplemented,
                None,
                None,
                &resource,
                request_id,
                false,
            );
        }
    };
    let op = router::route(
        &parts.method,
        bucket.as_deref(),
        key.as_deref(),
        &query,
        parts.headers.contains_key("x-amz-copy-source"),
    );
    let is_head = parts.method == http::Method::HEAD;
    // Kept for the CORS headers, which go on every response, errors too.
    let origin = (op != Operation::CorsPreflight)
        .then(|| {
            parts
                .headers
                .get("origin")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .flatten();
    let target = (bucket.as_deref(), key.as_deref());
    let admitted = admit(&state, &parts, &query, op, target).await;
    let mut outcome = match admitted {
        Err(e) => error_outcome(e, op, bucket, key, &resource, request_id, is_head),
        Ok(authenticated) => {
            // A form's signature is in its body: POST Object takes the
            // hold itself once it has checked it. An anonymous reader
            // (a public bucket) holds nothing: it stays sheddable, so
            // readers who stop reading cannot keep every place.
            if op != Operation::PostObject && authenticated.mode != "anonymous" {
                crate::server::admission::Hold::mark(&parts.extensions);
            }
            let mode = authenticated.mode;
            if authenticated.is_presigned() {
                presigned_params_as_headers(&query, &mut parts.headers);
            }
            let mut ctx = Ctx {
                state: Arc::clone(&state),
                op,
                headers: std::mem::take(&mut parts.headers),
                query,
                bucket: bucket.clone(),
                key: key.clone(),
                principal: authenticated.principal,
                payload: Some(authenticated.payload),
                body: Some(incoming),
                hold: parts.extensions.get().cloned(),
            };
            let mut result = dispatch(&mut ctx).await;
            if let Err(e) = &mut result
                && mode == "presigned"
            {
                explain_empty_body_checksum(e, &ctx.query);
            }
            // A POST form names its key and signer in its fields.
            let mode = match (&ctx.principal, op) {
                (Principal::Key(_), Operation::PostObject) => "post-policy",
                _ => mode,
            };
            let auth = Some((ctx.principal.name().to_owned(), mode));
            let key = ctx.key.take();
            match result {
                Ok(response) => Outcome {
                    response,
                    op: format!("{op:?}"),
                    bucket,
                    key,
                    error: None,
                    auth,
                },
                Err(e) => Outcome {
                    auth,
                    ..error_outcome(e, op, bucket, key, &resource, request_id, is_head)
                },
            }
        }
    };
    decorate_cors(&state, origin, &parts.method, &mut outcome).await;
    outcome
}

/// Puts a bucket's CORS headers on its response, errors included; without
/// an Origin, says that the response varies by it.
async fn decorate_cors(
    state: &AppState,
    origin: Option<String>,
    method: &http::Method,
    outcome: &mut Outcome,
) {
    match (origin, &outcome.bucket) {
        (Some(origin), Some(bucket)) => {
            cors::decorate(state, bucket, &origin, method, &mut outcome.response).await;
        }
        // Whether a bucket's response carries CORS headers depends on the
        // request's Origin, so a cache must not hand this one to a page.
        (None, Some(_)) if !outcome.response.headers().contains_key("vary") => {
            set_header(&mut outcome.response, "vary", "Origin");
        }
        _ => {}
    }
}

/// aws-sdk-js v3 (since 3.729) presigns PutObject and UploadPart with the
/// CRC32 of an empty body unless told otherwise, and S3 then refuses the
/// real body. The refusal stays; its message says what happened.
fn explain_empty_body_checksum(e: &mut S3Error, query: &Query) {
    const EMPTY_CRC32: &str = "AAAAAA==";
    if e.code == Code::BadDigest
        && query
            .0
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-amz-checksum-crc32") && v == EMPTY_CRC32)
    {
        e.message = "The presigned URL carries x-amz-checksum-crc32=AAAAAA==, the CRC32 of an empty body, so no other body can match it. aws-sdk-js v3 (3.729 and later) bakes it in by default: create the S3Client that presigns with requestChecksumCalculation: \"WHEN_REQUIRED\", or presign with the body's real ChecksumCRC32.".into();
    }
}

/// Authenticates and authorises a request, before any of its body is read.
async fn admit(
    state: &AppState,
    parts: &http::request::Parts,
    query: &Query,
    op: Operation,
    (bucket, key): (Option<&str>, Option<&str>),
) -> S3Result<Authenticated> {
    // A preflight is never authenticated; a POST form authenticates with
    // its own fields, which the operation reads.
    if matches!(op, Operation::CorsPreflight | Operation::PostObject) {
        return Ok(Authenticated::anonymous());
    }
    let request = auth::RequestParts {
        method: &parts.method,
        path: parts.uri.path(),
        raw_query: parts.uri.query(),
        query,
        headers: &parts.headers,
    };
    let authenticated = auth::authenticate(&state.config(), &request, crate::time::now_ms())?;
    let write = !matches!(parts.method, http::Method::GET | http::Method::HEAD);
    authorize(state, &authenticated.principal, op, write, (bucket, key)).await?;
    if matches!(op, Operation::CopyObject | Operation::UploadPartCopy) {
        // Fails closed: a source that cannot be parsed is refused here.
        let (src_bucket, src_key) = objects::copy_source(&parts.headers)?;
        let principal = &authenticated.principal;
        let source = (Some(src_bucket.as_str()), Some(src_key.as_str()));
        authorize(state, principal, Operation::GetObject, false, source).await?;
    }
    Ok(authenticated)
}

/// Authorises `op` on `target` for `principal` ([`access::authorize`]).
pub(crate) async fn authorize(
    state: &AppState,
    principal: &Principal,
    op: Operation,
    write: bool,
    target: (Option<&str>, Option<&str>),
) -> S3Result<()> {
    let config = state.config();
    let on = (config.as_ref(), state.store.as_ref());
    access::authorize(on, principal, op.action(), write, target).await
}

/// A presigned URL carries the checksum headers its signer baked in as
/// query parameters; they bind the body exactly as the headers would, and
/// the signed value wins over any header of the same name.
fn presigned_params_as_headers(query: &Query, headers: &mut HeaderMap) {
    for (name, value) in &query.0 {
        let name = name.to_ascii_lowercase();
        if (name.starts_with("x-amz-checksum-") || name == "x-amz-sdk-checksum-algorithm")
            && let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value))
        {
            headers.insert(n, v);
        }
    }
}

fn error_outcome(
    e: S3Error,
    op: Operation,
    bucket: Option<String>,
    key: Option<String>,
    resource: &str,
    request_id: &str,
    is_head: bool,
) -> Outcome {
    Outcome {
        response: error_response(&e, resource, request_id, is_head),
        op: format!("{op:?}"),
        bucket,
        key,
        error: Some(e),
        auth: None,
    }
}

/// An S3 error as it goes out: its XML document (none for a HEAD) with
/// its status.
pub fn error_response(
    e: &S3Error,
    resource: &str,
    request_id: &str,
    is_head: bool,
) -> Response<ResponseBody> {
    let mut response = if is_head {
        // HEAD responses carry no body; the status says it all.
        Response::new(body::empty())
    } else {
        let xml = errors::document(e, resource, request_id);
        let mut r = Response::new(body::full(xml));
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/xml"));
        r
    };
    *response.status_mut() = e.status();
    if e.code == Code::InvalidRange
        && let Some((_, size)) = e.details.iter().find(|(n, _)| *n == "ActualObjectSize")
        && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
    {
        response.headers_mut().insert("content-range", v);
    }
    response
}

async fn dispatch(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    use Operation::*;
    match ctx.op {
        ListBuckets => buckets::list_buckets(ctx).await,
        CreateBucket => buckets::create_bucket(ctx).await,
        DeleteBucket => buckets::delete_bucket(ctx).await,
        HeadBucket => buckets::head_bucket(ctx).await,
        GetBucketLocation => buckets::get_bucket_location(ctx).await,
        GetBucketVersioning => buckets::get_bucket_versioning(ctx).await,
        GetBucketAcl => acl::get_acl(ctx).await,
        PutBucketAcl => acl::put_acl(ctx).await,
        ListObjects => list::list_objects_v1(ctx).await,
        ListObjectsV2 => list::list_objects_v2(ctx).await,
        ListObjectVersions => list::list_object_versions(ctx).await,
        ListMultipartUploads => list::list_multipart_uploads(ctx).await,
        DeleteObjects => objects::delete_objects(ctx).await,
        PutObject => objects::put_object(ctx).await,
        PostObject => post::post_object(ctx).await,
        CopyObject => objects::copy_object(ctx).await,
        GetObject => objects::get_object(ctx, false).await,
        HeadObject => objects::get_object(ctx, true).await,
        DeleteObject => objects::delete_object(ctx).await,
        GetObjectAcl => acl::get_acl(ctx).await,
        PutObjectAcl => acl::put_acl(ctx).await,
        CreateMultipartUpload => multipart::create(ctx).await,
        UploadPart => multipart::upload_part(ctx).await,
        UploadPartCopy => multipart::upload_part_copy(ctx).await,
        ListParts => multipart::list_parts(ctx).await,
        CompleteMultipartUpload => multipart::complete(ctx).await,
        AbortMultipartUpload => multipart::abort(ctx).await,
        GetObjectAttributes => attributes::get_object_attributes(ctx).await,
        GetBucketCors => cors::get_bucket_cors(ctx).await,
        PutBucketCors => cors::put_bucket_cors(ctx).await,
        DeleteBucketCors => cors::delete_bucket_cors(ctx).await,
        GetBucketPolicy => acl::get_bucket_policy(ctx).await,
        PutBucketPolicy => acl::put_bucket_policy(ctx).await,
        DeleteBucketPolicy => acl::delete_bucket_policy(ctx).await,
        GetBucketLifecycle => lifecycle::get(ctx).await,
        PutBucketLifecycle => lifecycle::put(ctx).await,
        DeleteBucketLifecycle => lifecycle::delete(ctx).await,
        GetBucketTagging => tagging::get_bucket_tagging(ctx).await,
        PutBucketTagging => tagging::put_bucket_tagging(ctx).await,
        DeleteBucketTagging => tagging::delete_bucket_tagging(ctx).await,
        GetObjectTagging => tagging::get_object_tagging(ctx).await,
        PutObjectTagging => tagging::put_object_tagging(ctx).await,
        DeleteObjectTagging => tagging::delete_object_tagging(ctx).await,
        CorsPreflight => cors::preflight(ctx).await,
        NotImplemented => Err(Code::NotImplemented.into()),
    }
}

// ---- helpers shared by the operation modules ----

pub fn xml_response(xml: String) -> Response<ResponseBody> {
    let mut r = Response::new(body::full(xml));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    r
}

pub fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Parses `max-keys`-style integers: 0..=cap, default when absent.
pub fn parse_max(q: &Query, name: &str, default: usize, cap: usize) -> S3Result<usize> {
    match q.get(name) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as usize).min(cap))
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    format!("Provided {name} not an integer or within integer range"),
                    name,
                    v,
                )
            }),
    }
}

/// Only `versionId=null` exists in an unversioned bucket.
pub fn check_version_id(q: &Query) -> S3Result<()> {
    match q.get("versionId") {
        None | Some("null") => Ok(()),
        Some(v) => Err(S3Error::invalid_argument(
            "Invalid version id specified",
            "versionId",
            v,
        )),
    }
}

/// The metadata of a PutObject, CopyObject (REPLACE) or
/// CreateMultipartUpload, from its headers. S3 caps user metadata at 2 KiB
/// and a request's headers at 8 KiB; the stored system headers are held to
/// that 8 KiB too, so that an object's head stays small.
pub fn object_meta(headers: &HeaderMap) -> S3Result<ObjectMeta> {
    const STANDARD: [&str; 6] = [
        "content-type",
        "content-encoding",
        "content-disposition",
        "content-language",
        "cache-control",
        "expires",
    ];
    let mut fields = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name.starts_with("x-amz-meta-") {
            fields.push((name, crate::rfc2047::decode(value.as_bytes())));
        } else if STANDARD.contains(&name) {
            // Kept as sent when it is UTF-8 (it goes back out as the same
            // bytes); other bytes would be lost, so they are refused.
            let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                S3Error::with_message(
                    Code::InvalidArgument,
                    format!("The {name} header is not UTF-8 text."),
                )
                .detail("ArgumentName", name)
            })?;
            fields.push((name, value.to_owned()));
        }
    }
    object_meta_from(fields.into_iter())
}

/// Writes an object's stored metadata as response headers, with
/// `X-Content-Type-Options: nosniff`.
pub fn meta_headers(r: &mut Response<ResponseBody>, meta: &ObjectMeta) {
    // An object's bytes are the client's: a browser must not guess at
    // them, whatever its Content-Type says (or failed to).
    set_header(r, "x-content-type-options", "nosniff");
    set_header(
        r,
        "content-type",
        meta.content_type
            .as_deref()
            .unwrap_or("binary/octet-stream"),
    );
    let optional = [
        ("content-encoding", &meta.content_encoding),
        ("content-disposition", &meta.content_disposition),
        ("content-language", &meta.content_language),
        ("cache-control", &meta.cache_control),
        ("expires", &meta.expires),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            set_header(r, name, value);
        }
    }
    for (name, value) in &meta.user {
        set_header(
            r,
            &format!("x-amz-meta-{name}"),
            &crate::rfc2047::encode(value),
        );
    }
}

/// The owner block of listings and ACLs.
pub fn write_owner(w: &mut crate::xml::XmlWriter, tag: &str, owner: &str) {
    w.open(tag);
    w.elem("ID", owner);
    w.elem("DisplayName", owner);
    w.close(tag);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_checksum_parameters_bind_the_body_like_headers() {
        let q = Query::parse(Some(
            "X-Amz-Signature=ab&x-amz-checksum-crc32=AAAAAA%3D%3D&x-amz-meta-a=b&X-Amz-SDK-Checksum-Algorithm=CRC32",
        ))
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-checksum-crc32", HeaderValue::from_static("forged=="));
        presigned_params_as_headers(&q, &mut headers);
        assert_eq!(headers["x-amz-checksum-crc32"], "AAAAAA==");
        assert_eq!(headers["x-amz-sdk-checksum-algorithm"], "CRC32");
        assert!(!headers.contains_key("x-amz-meta-a"));
        assert!(!headers.contains_key("x-amz-signature"));
    }
}
