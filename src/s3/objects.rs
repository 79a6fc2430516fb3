//! Object operations: PutObject, GetObject/HeadObject (ranges, parts,
//! conditions, response overrides), DeleteObject, DeleteObjects, CopyObject.

use http::{Response, StatusCode};
use serde::Deserialize;

use super::{
    Ctx, check_key, check_version_id, meta_headers, object_meta, quoted, set_header,
    status_response, xml_response,
};
use crate::checksum::{self, Algorithm, ChecksumType};
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::{ChannelBody, RequestBody, ResponseBody};
use crate::store::ingest::Expect;
use crate::store::model::{
    Body, CopyChanges, ObjectHead, ObjectMeta, Segment, SourceConditions, WriteCondition,
    etag_matches,
};
use crate::store::write::Received;
use crate::time::{http_date, iso8601, parse_http_date};
use crate::xml::XmlWriter;

/// Receives a PutObject or UploadPart body through the store's one ingest
/// path, bound by the request's digest headers.
pub async fn receive(
    ctx: &Ctx,
    mut body: RequestBody,
    fallback: Algorithm,
    inline: bool,
) -> S3Result<Received> {
    let mut expect = Expect::new(
        checksum::content_md5(&ctx.headers)?,
        checksum::requested(&ctx.headers)?,
        fallback,
    );
    expect.declared = body.declared_len();
    expect.inline = inline;
    ctx.store().ingest(&mut body, &expect).await
}

/// `x-amz-checksum-<algorithm>` and `x-amz-checksum-type` of an object
/// (a composite value carries its `-N`) or a part.
pub fn checksum_headers(
    r: &mut Response<ResponseBody>,
    algorithm: Algorithm,
    value: &str,
    kind: ChecksumType,
) {
    set_header(r, algorithm.header(), value);
    set_header(r, "x-amz-checksum-type", kind.name());
}

/// `If-None-Match: *` / `If-Match` on a write (PutObject, Complete).
pub fn write_condition(ctx: &Ctx) -> S3Result<WriteCondition> {
    match (ctx.header("if-none-match"), ctx.header("if-match")) {
        (Some(_), Some(_)) => Err(S3Error::with_message(
            Code::NotImplemented,
            "If-Match and If-None-Match together are not supported on writes.",
        )),
        (Some(v), None) if v.trim() == "*" => Ok(WriteCondition::IfNoneMatch),
        (Some(_), None) => Err(S3Error::with_message(
            Code::NotImplemented,
            "If-None-Match on a write only supports '*'.",
        )),
        (None, Some(v)) => Ok(WriteCondition::IfMatch(v.trim().to_owned())),
        (None, None) => Ok(WriteCondition::None),
    }
}

/// Checks that the bucket exists and the write condition holds before the
/// body is read, so a request that cannot succeed fails fast (and before
/// `100 Continue`).
pub async fn precheck(ctx: &Ctx, condition: &WriteCondition) -> S3Result<()> {
    if *condition == WriteCondition::None {
        return ctx.meta().bucket(ctx.bucket()).await.map(drop);
    }
    let current = match ctx.meta().head_object(ctx.bucket(), ctx.key()).await {
        Ok(head) => Some(head),
        Err(e) if e.code == Code::NoSuchKey => None,
        Err(e) => return Err(e),
    };
    condition.check(current.as_ref())
}

pub async fn put_object(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    check_key(ctx.key())?;
    let meta = object_meta(&ctx.headers)?;
    let tags = super::tagging::from_header(ctx)?;
    let acl = super::acl::from_headers(ctx, &[ctx.principal.name()])?.unwrap_or_default();
    let condition = write_condition(ctx)?;
    let body = ctx.body(ctx.state.config().limits.max_object_size)?;
    precheck(ctx, &condition).await?;
    let received = receive(ctx, body, Algorithm::Crc64Nvme, true).await?;
    let record = ctx
        .store()
        .put_object(
            (ctx.bucket(), ctx.key()),
            received,
            (meta, tags, acl),
            condition,
        )
        .await?;
    let mut r = status_response(StatusCode::OK);
    set_header(&mut r, "etag", &quoted(&record.etag));
    if let Some((algorithm, value)) = record.checksum_value() {
        checksum_headers(&mut r, algorithm, &value, record.checksum_type);
    }
    Ok(r)
}

/// A byte range as sent in `Range:` (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    From(u64, Option<u64>),
    Suffix(u64),
}

impl ByteRange {
    /// `None` when the header is not a single byte range: S3 then ignores it
    /// and sends the whole object.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        if a.is_empty() {
            return Some(ByteRange::Suffix(b.parse().ok()?));
        }
        let start = a.parse().ok()?;
        let end = if b.is_empty() {
            None
        } else {
            Some(b.parse().ok()?)
        };
        if end.is_some_and(|e| e < start) {
            return None;
        }
        Some(ByteRange::From(start, end))
    }

    /// The half-open range `[start, end)` within an object of `size` bytes,
    /// or `InvalidRange`.
    pub fn resolve(self, size: u64) -> S3Result<(u64, u64)> {
        let range = match self {
            ByteRange::From(start, _) if start >= size => None,
            ByteRange::From(start, end) => {
                Some((start, end.map_or(size, |e| e.saturating_add(1).min(size))))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size.saturating_sub(n), size)),
        };
        range.filter(|(s, e)| s < e).ok_or_else(|| {
            S3Error::new(Code::InvalidRange).detail("ActualObjectSize", size.to_string())
        })
    }
}

/// GET/HEAD preconditions, in the order RFC 7232 and S3 evaluate them.
fn check_read_conditions(ctx: &Ctx, obj: &ObjectHead) -> S3Result<Option<StatusCode>> {
    let modified_after = |h: &str| {
        ctx.header(h)
            .and_then(parse_http_date)
            .map(|t| obj.last_modified_ms / 1000 > t / 1000)
    };
    let if_match = ctx.header("if-match");
    if let Some(list) = if_match {
        if !etag_matches(list, &obj.etag) {
            return Err(Code::PreconditionFailed.into());
        }
    } else if modified_after("if-unmodified-since") == Some(true) {
        return Err(Code::PreconditionFailed.into());
    }
    if let Some(list) = ctx.header("if-none-match") {
        if etag_matches(list, &obj.etag) {
            return Ok(Some(StatusCode::NOT_MODIFIED));
        }
    } else if modified_after("if-modified-since") == Some(false) {
        return Ok(Some(StatusCode::NOT_MODIFIED));
    }
    Ok(None)
}

pub async fn get_object(ctx: &mut Ctx, head: bool) -> S3Result<Response<ResponseBody>> {
    check_version_id(&ctx.query)?;
    let part_number = match ctx.query.get("partNumber") {
        Some(v) => Some(super::multipart::parse_part_number(v)?),
        None => None,
    };
    let range = ctx.header("range").and_then(ByteRange::parse);
    if part_number.is_some() && ctx.header("range").is_some() {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    let read_at = std::time::Instant::now();
    let (obj, inline) = ctx.meta().read_object(ctx.bucket(), ctx.key()).await?;
    if let Some(status) = check_read_conditions(ctx, &obj)? {
        let mut r = status_response(status);
        set_header(&mut r, "etag", &quoted(&obj.etag));
        set_header(&mut r, "last-modified", &http_date(obj.last_modified_ms));
        return Ok(r);
    }
    let size = obj.size;
    let part = match part_number {
        Some(n) if obj.is_multipart() => Some(part_segment(ctx, &obj, n).await?),
        _ => None,
    };
    let (start, end, partial) = match (part_number, range) {
        (Some(n), _) => {
            if let Some((start, seg)) = &part {
                // An empty part has no byte range to name.
                (*start, start + seg.len, seg.len > 0)
            } else if n == 1 {
                (0, size, size > 0)
            } else {
                return Err(Code::InvalidPartNumber.into());
            }
        }
        (None, Some(range)) => {
            let (s, e) = range.resolve(size)?;
            (s, e, true)
        }
        (None, None) => (0, size, false),
    };
    let len = end - start;
    let mut r = if head || len == 0 {
        status_response(StatusCode::OK)
    } else {
        let named = (ctx.bucket(), ctx.key(), &obj);
        let rx = ctx.store().stream(named, inline, (start, end), read_at);
        Response::new(ChannelBody::boxed(rx, len))
    };
    if partial {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        set_header(
            &mut r,
            "content-range",
            &format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    if part_number.is_some() && obj.is_multipart() {
        set_header(&mut r, "x-amz-mp-parts-count", &obj.parts().to_string());
    }
    set_header(&mut r, "content-length", &len.to_string());
    set_header(&mut r, "etag", &quoted(&obj.etag));
    set_header(&mut r, "last-modified", &http_date(obj.last_modified_ms));
    set_header(&mut r, "accept-ranges", "bytes");
    read_headers(ctx, &mut r, &obj, part.as_ref().map(|(_, seg)| seg), len)?;
    Ok(r)
}

/// The headers of a read that describe the object: its checksum (only on a
/// read of exactly what it describes), metadata and tag count, and the
/// `response-*` overrides a signed request may ask for.
fn read_headers(
    ctx: &Ctx,
    r: &mut Response<ResponseBody>,
    obj: &ObjectHead,
    part: Option<&Segment>,
    len: u64,
) -> S3Result<()> {
    // A checksum describes the whole object or one part, so only a read of
    // exactly that carries it.
    if ctx.header("x-amz-checksum-mode") == Some("ENABLED") {
        match part {
            Some(seg) => {
                if let Some(c) = &seg.checksum {
                    checksum_headers(r, c.algorithm, &c.value, ChecksumType::FullObject);
                }
            }
            None if len == obj.size => {
                if let Some((algorithm, value)) = obj.checksum_value() {
                    checksum_headers(r, algorithm, &value, obj.checksum_type);
                }
            }
            None => {}
        }
    }
    meta_headers(r, &obj.meta);
    if !obj.tags.is_empty() {
        set_header(r, "x-amz-tagging-count", &obj.tags.len().to_string());
    }
    if matches!(ctx.principal, crate::auth::Principal::Anonymous)
        && ctx.query.0.iter().any(|(k, _)| k.starts_with("response-"))
    {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "Request specific response headers cannot be used for anonymous GET requests.",
        ));
    }
    for (param, header) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let Some(v) = ctx.query.get(param) {
            set_header(r, header, v);
        }
    }
    Ok(())
}

pub async fn delete_object(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    check_version_id(&ctx.query)?;
    ctx.meta()
        .delete_objects(ctx.bucket(), vec![ctx.key().to_owned()])
        .await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRequest {
    #[serde(default)]
    pub quiet: bool,
    #[serde(default)]
    pub object: Vec<DeleteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteEntry {
    pub key: String,
    pub version_id: Option<String>,
}

/// DeleteObjects: up to 1000 keys, one result each.
pub async fn delete_objects(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    // S3 requires a Content-MD5 or flexible checksum of the request here.
    let body = ctx.xml_body_checked(true).await?;
    let request: DeleteRequest = crate::xml::parse(&body)?;
    if request.object.is_empty() || request.object.len() > 1000 {
        return Err(Code::MalformedXML.into());
    }
    let mut w = XmlWriter::new();
    w.root("DeleteResult");
    let mut keys = Vec::new();
    let mut refused = Vec::new();
    for entry in request.object {
        match entry.version_id.as_deref() {
            None | Some("null") => keys.push(entry),
            Some(_) => refused.push(entry),
        }
    }
    let names: Vec<String> = keys.iter().map(|e| e.key.clone()).collect();
    ctx.meta().delete_objects(ctx.bucket(), names).await?;
    if !request.quiet {
        for entry in &keys {
            w.open("Deleted");
            w.elem("Key", &entry.key);
            w.elem_opt("VersionId", entry.version_id.as_deref());
            w.close("Deleted");
        }
    }
    // Only the `null` version exists in an unversioned bucket.
    for entry in refused {
        w.open("Error");
        w.elem("Key", &entry.key);
        w.elem_opt("VersionId", entry.version_id.as_deref());
        w.elem("Code", "NoSuchVersion");
        w.elem("Message", "The specified version does not exist.");
        w.close("Error");
    }
    w.close("DeleteResult");
    Ok(xml_response(w.finish()))
}

/// Parses `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded,
/// optionally `?versionId=null`). Authorisation reads the source bucket
/// with this same function.
pub fn copy_source(headers: &http::HeaderMap) -> S3Result<(String, String)> {
    let raw = headers
        .get("x-amz-copy-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (path, version) = match raw.split_once('?') {
        Some((p, q)) => (p, q.strip_prefix("versionId=")),
        None => (raw, None),
    };
    if version.is_some_and(|v| v != "null") {
        return Err(S3Error::invalid_argument(
            "Invalid version id specified",
            "x-amz-copy-source",
            raw,
        ));
    }
    let decoded = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| S3Error::new(Code::InvalidURI))?;
    match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_owned(), k.to_owned())),
        _ => Err(S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            raw,
        )),
    }
}

/// `x-amz-copy-source-if-*`: the conditions a copy's source must meet.
pub fn source_conditions(headers: &http::HeaderMap) -> SourceConditions {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let date = |n: &str| {
        header(n)
            .and_then(|v| parse_http_date(&v))
            .map(|t| t / 1000)
    };
    SourceConditions {
        if_match: header("x-amz-copy-source-if-match"),
        if_none_match: header("x-amz-copy-source-if-none-match"),
        if_unmodified_since: date("x-amz-copy-source-if-unmodified-since"),
        if_modified_since: date("x-amz-copy-source-if-modified-since"),
    }
}

/// Part `n` (1-based) of a multipart object, with the offset it starts at.
pub async fn part_segment(ctx: &Ctx, obj: &ObjectHead, n: u32) -> S3Result<(u64, Segment)> {
    let Body::Parts { manifest, count } = obj.body else {
        return Err(Code::InvalidPartNumber.into());
    };
    if n > count {
        return Err(Code::InvalidPartNumber.into());
    }
    let mut segments = ctx.meta().segments(manifest, n - 1, 1).await?;
    segments
        .pop()
        .ok_or_else(|| S3Error::internal("manifest segment missing"))
}

/// CopyObject shares the source's blobs: no byte is copied.
pub async fn copy_object(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    check_key(ctx.key())?;
    let (src_bucket, src_key) = copy_source(&ctx.headers)?;
    let replace = match ctx.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(v) => {
            return Err(S3Error::invalid_argument(
                "Unknown metadata directive.",
                "x-amz-metadata-directive",
                v,
            ));
        }
    };
    let (bucket, key) = (ctx.bucket().to_owned(), ctx.key().to_owned());
    if !replace && src_bucket == bucket && src_key == key {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let meta: Option<ObjectMeta> = if replace {
        Some(object_meta(&ctx.headers)?)
    } else {
        None
    };
    let tags = match ctx.header("x-amz-tagging-directive") {
        None | Some("COPY") => None,
        Some("REPLACE") => Some(super::tagging::from_header(ctx)?),
        Some(v) => {
            return Err(S3Error::invalid_argument(
                "Unknown tagging directive.",
                "x-amz-tagging-directive",
                v,
            ));
        }
    };
    let acl = super::acl::from_headers(ctx, &[ctx.principal.name()])?.unwrap_or_default();
    let record = ctx
        .meta()
        .copy_object(
            (&src_bucket, &src_key),
            (&bucket, &key),
            CopyChanges { meta, tags, acl },
            source_conditions(&ctx.headers),
        )
        .await?;
    let mut w = XmlWriter::new();
    w.root("CopyObjectResult");
    w.elem("LastModified", &iso8601(record.last_modified_ms));
    w.elem("ETag", &quoted(&record.etag));
    // The copy shares the source's bytes, so it keeps its checksum.
    if let Some((algorithm, value)) = record.checksum_value() {
        w.elem("ChecksumType", record.checksum_type.name());
        w.elem(super::multipart::checksum_element(algorithm), &value);
    }
    w.close("CopyObjectResult");
    Ok(xml_response(w.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_s3() {
        assert_eq!(
            ByteRange::parse("bytes=0-9"),
            Some(ByteRange::From(0, Some(9)))
        );
        assert_eq!(ByteRange::parse("bytes=5-"), Some(ByteRange::From(5, None)));
        assert_eq!(ByteRange::parse("bytes=-3"), Some(ByteRange::Suffix(3)));
        assert_eq!(ByteRange::parse("bytes=9-5"), None);
        assert_eq!(ByteRange::parse("bytes=0-1,4-5"), None);
        assert_eq!(ByteRange::parse("items=0-1"), None);
        assert_eq!(ByteRange::parse("bytes=a-b"), None);
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(ByteRange::From(0, Some(9)).resolve(5).unwrap(), (0, 5));
        assert_eq!(ByteRange::From(2, None).resolve(5).unwrap(), (2, 5));
        assert_eq!(ByteRange::Suffix(3).resolve(5).unwrap(), (2, 5));
        assert_eq!(ByteRange::Suffix(30).resolve(5).unwrap(), (0, 5));
        assert_eq!(
            ByteRange::From(5, None).resolve(5).unwrap_err().code,
            Code::InvalidRange
        );
        assert_eq!(
            ByteRange::Suffix(0).resolve(5).unwrap_err().code,
            Code::InvalidRange
        );
        assert_eq!(
            ByteRange::From(0, None).resolve(0).unwrap_err().code,
            Code::InvalidRange
        );
    }
}
