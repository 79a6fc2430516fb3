//! Multipart upload operations: CreateMultipartUpload, UploadPart,
//! UploadPartCopy, ListParts, CompleteMultipartUpload, AbortMultipartUpload.
//! (ListMultipartUploads lives with the other listings.)

use http::{Response, StatusCode};
use serde::Deserialize;

use super::objects::{copy_source, precheck, receive, source_conditions, write_condition};
use super::{
    Ctx, check_key, object_meta, parse_max, quoted, set_header, status_response, write_owner,
    xml_response,
};
use crate::checksum::{Algorithm, Checksum, ChecksumType};
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::ResponseBody;
use crate::store::ingest::Expect;
use crate::store::model::{CompletedPart, Completion, UploadRecord, hex};
use crate::time::{iso8601, now_ms};
use crate::xml::XmlWriter;

/// Part numbers are 1..=10000; anything else is `InvalidArgument`.
pub fn parse_part_number(v: &str) -> S3Result<u32> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
                "partNumber",
                v,
            )
        })
}

fn upload_id(ctx: &Ctx) -> S3Result<String> {
    match ctx.query.get("uploadId") {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(Code::NoSuchUpload.into()),
    }
}

/// `x-amz-checksum-algorithm` and `x-amz-checksum-type` of a
/// CreateMultipartUpload, checked against S3's table of what combines.
fn upload_checksum(ctx: &Ctx) -> S3Result<Option<(Algorithm, ChecksumType)>> {
    let invalid = |m: String| S3Error::with_message(Code::InvalidRequest, m);
    let kind = ctx.header("x-amz-checksum-type");
    let Some(algorithm) = ctx.header("x-amz-checksum-algorithm") else {
        return match kind {
            None => Ok(None),
            Some(_) => Err(invalid(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".into(),
            )),
        };
    };
    let algorithm = Algorithm::parse(algorithm).ok_or_else(|| {
        invalid("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]".into())
    })?;
    let kind = match kind {
        None => ChecksumType::default_for(algorithm),
        Some(v) => ChecksumType::parse(v)
            .ok_or_else(|| invalid("Value for x-amz-checksum-type header is invalid.".into()))?,
    };
    if !kind.allowed(algorithm) {
        return Err(invalid(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.name(),
            algorithm.name().to_ascii_lowercase()
        )));
    }
    Ok(Some((algorithm, kind)))
}

pub async fn create(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    check_key(ctx.key())?;
    let checksum = upload_checksum(ctx)?;
    let record = UploadRecord {
        initiated_ms: now_ms(),
        owner: ctx.principal.name().to_owned(),
        meta: object_meta(&ctx.headers)?,
        checksum,
        tags: super::tagging::from_header(ctx)?,
        acl: super::acl::from_headers(ctx, &[ctx.principal.name()])?.unwrap_or_default(),
        max_size: None,
        token: None,
        granted: None,
    };
    let (bucket, key) = (ctx.bucket().to_owned(), ctx.key().to_owned());
    let id = ctx.meta().create_upload(&bucket, &key, record).await?;
    let mut w = XmlWriter::new();
    w.root("InitiateMultipartUploadResult");
    w.elem("Bucket", &bucket);
    w.elem("Key", &key);
    w.elem("UploadId", &id);
    w.close("InitiateMultipartUploadResult");
    let mut r = xml_response(w.finish());
    if let Some((algorithm, kind)) = checksum {
        set_header(&mut r, "x-amz-checksum-algorithm", algorithm.name());
        set_header(&mut r, "x-amz-checksum-type", kind.name());
    }
    Ok(r)
}

/// The algorithm a part is checksummed with: its upload's, which a checksum
/// the client sends must match (and must be sent, for a composite upload,
/// whose object checksum is made of them); else what the client sends (the
/// caller's default when it sends none).
fn part_algorithm(ctx: &Ctx, upload: &UploadRecord) -> S3Result<Algorithm> {
    let Some((expected, kind)) = upload.checksum else {
        return Ok(Algorithm::Crc64Nvme);
    };
    let sent = crate::checksum::requested(&ctx.headers)?.map(|r| r.algorithm);
    let missing = sent.is_none() && kind == ChecksumType::Composite;
    if missing || sent.is_some_and(|a| a != expected) {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                expected.name().to_ascii_lowercase(),
                sent.map_or("null".to_owned(), |a| a.name().to_ascii_lowercase())
            ),
        ));
    }
    Ok(expected)
}

/// Checks that the upload exists; done before a part's body is read, so a
/// client waiting on `100 Continue` learns of a bad upload id at once.
async fn check_upload(ctx: &Ctx, id: &str) -> S3Result<UploadRecord> {
    ctx.meta().upload(ctx.bucket(), ctx.key(), id).await
}

pub async fn upload_part(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let part_number = parse_part_number(ctx.query.get("partNumber").unwrap_or(""))?;
    let id = upload_id(ctx)?;
    let upload = check_upload(ctx, &id).await?;
    // A part of an upload an upload grant bounds can never be larger than
    // the bound (the engine then checks the parts together).
    let limit = ctx.state.config().limits.max_object_size;
    let body = ctx.body(upload.max_size.map_or(limit, |max| max.min(limit)))?;
    let algorithm = part_algorithm(ctx, &upload)?;
    let received = receive(ctx, body, algorithm, false).await?;
    let part = ctx
        .store()
        .put_part((ctx.bucket(), ctx.key(), &id), part_number, received)
        .await?;
    let mut r = status_response(StatusCode::OK);
    set_header(&mut r, "etag", &quoted(&hex(&part.md5)));
    if let Some(c) = &part.checksum {
        set_header(&mut r, c.algorithm.header(), &c.value);
    }
    Ok(r)
}

/// `x-amz-copy-source-range: bytes=first-last`, both ends required.
pub fn parse_copy_range(v: &str, size: u64) -> S3Result<(u64, u64)> {
    let invalid = || {
        S3Error::invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
            "x-amz-copy-source-range",
            v,
        )
    };
    let (a, b) = v
        .trim()
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(invalid)?;
    let (first, last): (u64, u64) = (
        a.parse().map_err(|_| invalid())?,
        b.parse().map_err(|_| invalid())?,
    );
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        return Err(S3Error::with_message(
            Code::InvalidRange,
            "The requested range is not satisfiable",
        )
        .detail("ActualObjectSize", size.to_string()));
    }
    Ok((first, last + 1))
}

pub async fn upload_part_copy(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let part_number = parse_part_number(ctx.query.get("partNumber").unwrap_or(""))?;
    let id = upload_id(ctx)?;
    let (src_bucket, src_key) = copy_source(&ctx.headers)?;
    let read_at = std::time::Instant::now();
    let (source, inline) = ctx.meta().read_object(&src_bucket, &src_key).await?;
    source_conditions(&ctx.headers).check(&source)?;
    let (start, end) = match ctx.header("x-amz-copy-source-range") {
        Some(v) => parse_copy_range(v, source.size)?,
        None => (0, source.size),
    };
    if end - start > ctx.state.config().limits.max_object_size {
        return Err(Code::EntityTooLarge.into());
    }
    let upload = check_upload(ctx, &id).await?;
    let algorithm = upload.checksum.map_or(Algorithm::Crc64Nvme, |(a, _)| a);
    // The copied bytes take the one ingest path, free-space floor included.
    let mut expect = Expect::new(None, None, algorithm);
    expect.declared = Some(end - start);
    let mut copied = Copied {
        rx: (ctx.store()).stream(
            (&src_bucket, &src_key, &source),
            inline,
            (start, end),
            read_at,
        ),
        left: end - start,
    };
    let received = ctx.store().ingest(&mut copied, &expect).await?;
    let part = ctx
        .store()
        .put_part((ctx.bucket(), ctx.key(), &id), part_number, received)
        .await?;
    let mut w = XmlWriter::new();
    w.root("CopyPartResult");
    w.elem("LastModified", &iso8601(part.last_modified_ms));
    w.elem("ETag", &quoted(&hex(&part.md5)));
    if let Some(c) = &part.checksum {
        w.elem(checksum_element(c.algorithm), &c.value);
    }
    w.close("CopyPartResult");
    Ok(xml_response(w.finish()))
}

/// The bytes of a copy source, as a body to ingest; a source that ends
/// before its length is a fault of ours, not the client's.
struct Copied {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    left: u64,
}

impl crate::store::ingest::Source for Copied {
    async fn next_piece(&mut self) -> S3Result<Option<bytes::Bytes>> {
        match self.rx.recv().await {
            Some(piece) => {
                let piece = piece?;
                self.left = self.left.saturating_sub(piece.len() as u64);
                Ok(Some(piece))
            }
            None if self.left == 0 => Ok(None),
            None => Err(S3Error::internal("copy source ended early")),
        }
    }
}

pub async fn list_parts(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let id = upload_id(ctx)?;
    let max = parse_max(&ctx.query, "max-parts", 1000, 1000)?;
    let marker = match ctx.query.get("part-number-marker") {
        None | Some("") => 0,
        Some(v) => v.parse::<u32>().map_err(|_| {
            S3Error::invalid_argument("Invalid part number marker", "part-number-marker", v)
        })?,
    };
    let upload = check_upload(ctx, &id).await?;
    let (parts, truncated) = ctx.meta().parts(&id, marker, max).await?;
    let mut w = XmlWriter::new();
    w.root("ListPartsResult");
    w.elem("Bucket", ctx.bucket());
    w.elem("Key", ctx.key());
    w.elem("UploadId", &id);
    write_owner(&mut w, "Initiator", &upload.owner);
    write_owner(&mut w, "Owner", &upload.owner);
    w.elem("StorageClass", "STANDARD");
    if let Some((algorithm, kind)) = upload.checksum {
        w.elem("ChecksumAlgorithm", algorithm.name());
        w.elem("ChecksumType", kind.name());
    }
    w.elem_display("PartNumberMarker", marker);
    if let Some((last, _)) = parts.last() {
        w.elem_display("NextPartNumberMarker", last);
    }
    w.elem_display("MaxParts", max);
    w.elem_display("IsTruncated", truncated);
    for (number, part) in &parts {
        w.open("Part");
        w.elem_display("PartNumber", number);
        w.elem("LastModified", &iso8601(part.last_modified_ms));
        w.elem("ETag", &quoted(&hex(&part.md5)));
        w.elem_display("Size", part.size);
        if let Some(c) = &part.checksum {
            w.elem(checksum_element(c.algorithm), &c.value);
        }
        w.close("Part");
    }
    w.close("ListPartsResult");
    Ok(xml_response(w.finish()))
}

#[derive(Debug, Deserialize)]
pub struct CompleteRequest {
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompleteRequestPart>,
}

#[derive(Debug, Deserialize)]
pub struct CompleteRequestPart {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "ChecksumCRC32")]
    crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C")]
    crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME")]
    crc64nvme: Option<String>,
    #[serde(rename = "ChecksumSHA1")]
    sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256")]
    sha256: Option<String>,
}

impl CompleteRequestPart {
    /// The part checksum the request lists, if any. More than one, or one
    /// that is not base64 of its algorithm's length, is S3's
    /// `InvalidArgument`.
    pub fn checksum(&self) -> S3Result<Option<Checksum>> {
        let mut listed = [
            (Algorithm::Crc32, &self.crc32),
            (Algorithm::Crc32c, &self.crc32c),
            (Algorithm::Crc64Nvme, &self.crc64nvme),
            (Algorithm::Sha1, &self.sha1),
            (Algorithm::Sha256, &self.sha256),
        ]
        .into_iter()
        .filter_map(|(algorithm, v)| {
            v.as_ref().map(|v| Checksum {
                algorithm,
                value: v.trim().to_owned(),
            })
        });
        let first = listed.next();
        if listed.next().is_some() || first.as_ref().is_some_and(|c| c.raw().is_none()) {
            return Err(S3Error::invalid_argument(
                "Invalid Base64 or multiple checksums present in request",
                "Checksum",
                &self.part_number.to_string(),
            ));
        }
        Ok(first)
    }
}

/// The XML element of a checksum: `ChecksumCRC32` and so on.
pub fn checksum_element(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Crc32 => "ChecksumCRC32",
        Algorithm::Crc32c => "ChecksumCRC32C",
        Algorithm::Crc64Nvme => "ChecksumCRC64NVME",
        Algorithm::Sha1 => "ChecksumSHA1",
        Algorithm::Sha256 => "ChecksumSHA256",
    }
}

/// The `x-amz-checksum-*` header of a Complete: the object's expected
/// checksum.
fn expected_checksum(ctx: &Ctx) -> S3Result<Option<(Algorithm, String)>> {
    let mut sent = Algorithm::ALL
        .into_iter()
        .filter_map(|a| ctx.header(a.header()).map(|v| (a, v.trim().to_owned())));
    let first = sent.next();
    if sent.next().is_some() {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ));
    }
    Ok(first)
}

pub async fn complete(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let id = upload_id(ctx)?;
    let condition = write_condition(ctx)?;
    let body = ctx.xml_body().await?;
    let request: CompleteRequest = crate::xml::parse(&body)?;
    let kind = match ctx.header("x-amz-checksum-type") {
        None => None,
        Some(v) => Some(ChecksumType::parse(v).ok_or_else(|| {
            S3Error::with_message(
                Code::InvalidRequest,
                "Value for x-amz-checksum-type header is invalid.",
            )
        })?),
    };
    let completion = Completion {
        parts: request
            .parts
            .iter()
            .map(|p| {
                Ok(CompletedPart {
                    part_number: p.part_number,
                    etag: p.etag.trim().trim_matches('"').to_owned(),
                    checksum: p.checksum()?,
                })
            })
            .collect::<S3Result<_>>()?,
        expected: expected_checksum(ctx)?,
        kind,
        min_part_size: ctx.state.config().limits.min_part_size,
    };
    // The condition is checked after NoSuchUpload, and not at all when the
    // request replays an earlier success.
    if check_upload(ctx, &id).await.is_ok() {
        precheck(ctx, &condition).await?;
    }
    let (bucket, key) = (ctx.bucket().to_owned(), ctx.key().to_owned());
    let record = ctx
        .meta()
        .complete_upload(&bucket, &key, &id, completion, condition)
        .await?;
    let host = ctx.header("host").unwrap_or("localhost");
    let mut w = XmlWriter::new();
    w.root("CompleteMultipartUploadResult");
    w.elem("Location", &format!("http://{host}/{bucket}/{key}"));
    w.elem("Bucket", &bucket);
    w.elem("Key", &key);
    w.elem("ETag", &quoted(&record.etag));
    if let Some((algorithm, value)) = record.checksum_value() {
        w.elem(checksum_element(algorithm), &value);
        w.elem("ChecksumType", record.checksum_type.name());
    }
    w.close("CompleteMultipartUploadResult");
    Ok(xml_response(w.finish()))
}

pub async fn abort(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let id = upload_id(ctx)?;
    ctx.meta()
        .abort_upload(ctx.bucket(), ctx.key(), &id)
        .await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_are_1_to_10000() {
        assert_eq!(parse_part_number("1").unwrap(), 1);
        assert_eq!(parse_part_number("10000").unwrap(), 10000);
        for bad in ["0", "10001", "-1", "x", ""] {
            assert_eq!(
                parse_part_number(bad).unwrap_err().code,
                Code::InvalidArgument
            );
        }
    }

    #[test]
    fn copy_ranges_need_both_ends_inside_the_source() {
        assert_eq!(parse_copy_range("bytes=0-4", 10).unwrap(), (0, 5));
        assert_eq!(
            parse_copy_range("bytes=0-10", 10).unwrap_err().code,
            Code::InvalidRange
        );
        assert_eq!(
            parse_copy_range("bytes=5-", 10).unwrap_err().code,
            Code::InvalidArgument
        );
        assert_eq!(
            parse_copy_range("bytes=5-4", 10).unwrap_err().code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn complete_body_parses_with_part_checksums() {
        let xml = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Part><ETag>"abc"</ETag><PartNumber>1</PartNumber><ChecksumCRC32>AAAA</ChecksumCRC32></Part>
            <Part><PartNumber>2</PartNumber><ETag>def</ETag></Part></CompleteMultipartUpload>"#;
        let r: CompleteRequest = crate::xml::parse(xml).unwrap();
        assert_eq!(r.parts.len(), 2);
        assert_eq!(r.parts[0].part_number, 1);
        assert_eq!(r.parts[1].etag, "def");
        assert_eq!(
            r.parts[0].checksum().unwrap_err().code,
            Code::InvalidArgument,
            "AAAA is not four bytes"
        );
        assert!(r.parts[1].checksum().unwrap().is_none());
        let xml = br#"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag>
            <ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber>
            <ETag>b</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32><ChecksumSHA1>x</ChecksumSHA1>
            </Part></CompleteMultipartUpload>"#;
        let r: CompleteRequest = crate::xml::parse(xml).unwrap();
        let c = r.parts[0].checksum().unwrap().unwrap();
        assert_eq!(
            (c.algorithm, c.value.as_str()),
            (Algorithm::Crc32, "AAAAAA==")
        );
        assert_eq!(
            r.parts[1].checksum().unwrap_err().code,
            Code::InvalidArgument
        );
        assert!(crate::xml::parse::<CompleteRequest>(b"<nope").is_err());
    }
}
