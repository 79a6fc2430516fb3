//! Listings: ListObjects (V1), ListObjectsV2, ListObjectVersions and
//! ListMultipartUploads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Ctx, parse_max, quoted, write_owner, xml_response};
use crate::error::{S3Error, S3Result};
use crate::server::body::ResponseBody;
use crate::store::model::{ListPage, ListQuery};
use crate::time::iso8601;
use crate::xml::XmlWriter;

/// Characters left as they are by `encoding-type=url` (RFC 3986 unreserved,
/// and `/` as S3 keeps it).
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Writes values as they are, or URL-encoded when the client asked.
struct Enc(bool);

impl Enc {
    fn from(ctx: &Ctx) -> S3Result<Enc> {
        match ctx.query.get("encoding-type") {
            None => Ok(Enc(false)),
            Some("url") => Ok(Enc(true)),
            Some(v) => Err(S3Error::invalid_argument(
                "Invalid Encoding Method specified in Request",
                "encoding-type",
                v,
            )),
        }
    }

    fn elem(&self, w: &mut XmlWriter, name: &str, value: &str) {
        if self.0 {
            w.elem(name, &utf8_percent_encode(value, KEY_ENCODE).to_string());
        } else {
            w.elem(name, value);
        }
    }

    fn header(&self, w: &mut XmlWriter) {
        if self.0 {
            w.elem("EncodingType", "url");
        }
    }
}

fn query(ctx: &Ctx, after: Option<String>, max: usize) -> ListQuery {
    ListQuery {
        prefix: ctx.query.get("prefix").unwrap_or("").to_owned(),
        delimiter: ctx
            .query
            .get("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        after,
        max,
    }
}

async fn fetch(ctx: &Ctx, q: ListQuery) -> S3Result<ListPage> {
    if q.max == 0 {
        // Nothing asked for, nothing truncated; the bucket must still exist.
        ctx.meta().bucket(ctx.bucket()).await?;
        return Ok(ListPage::default());
    }
    ctx.meta().list_objects(ctx.bucket(), q).await
}

fn write_common(w: &mut XmlWriter, enc: &Enc, ctx: &Ctx, q: &ListQuery, page: &ListPage) {
    w.elem("Name", ctx.bucket());
    enc.elem(w, "Prefix", &q.prefix);
    if let Some(d) = &q.delimiter {
        enc.elem(w, "Delimiter", d);
    }
    w.elem_display("MaxKeys", q.max);
    enc.header(w);
    w.elem_display("IsTruncated", page.truncated);
}

fn write_contents(w: &mut XmlWriter, enc: &Enc, page: &ListPage, owner: Option<&str>) {
    for (key, obj) in &page.objects {
        w.open("Contents");
        enc.elem(w, "Key", key);
        w.elem("LastModified", &iso8601(obj.last_modified_ms));
        w.elem("ETag", &quoted(&obj.etag));
        if let Some(c) = &obj.checksum {
            w.elem("ChecksumAlgorithm", c.algorithm.name());
            w.elem("ChecksumType", obj.checksum_type.name());
        }
        w.elem_display("Size", obj.size);
        if let Some(owner) = owner {
            write_owner(w, "Owner", owner);
        }
        w.elem("StorageClass", "STANDARD");
        w.close("Contents");
    }
    write_prefixes(w, enc, &page.common_prefixes);
}

fn write_prefixes(w: &mut XmlWriter, enc: &Enc, prefixes: &[String]) {
    for p in prefixes {
        w.open("CommonPrefixes");
        enc.elem(w, "Prefix", p);
        w.close("CommonPrefixes");
    }
}

pub async fn list_objects_v1(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let enc = Enc::from(ctx)?;
    let max = parse_max(&ctx.query, "max-keys", 1000, 1000)?;
    let marker = ctx
        .query
        .get("marker")
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let q = query(ctx, marker.clone(), max);
    let page = fetch(ctx, q.clone()).await?;
    let mut w = XmlWriter::new();
    w.root("ListBucketResult");
    write_common(&mut w, &enc, ctx, &q, &page);
    enc.elem(&mut w, "Marker", marker.as_deref().unwrap_or(""));
    if page.truncated
        && let Some(last) = &page.last
    {
        enc.elem(&mut w, "NextMarker", last);
    }
    write_contents(&mut w, &enc, &page, Some(ctx.principal.name()));
    w.close("ListBucketResult");
    Ok(xml_response(w.finish()))
}

pub async fn list_objects_v2(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let enc = Enc::from(ctx)?;
    let max = parse_max(&ctx.query, "max-keys", 1000, 1000)?;
    let token = ctx.query.get("continuation-token").map(str::to_owned);
    let start_after = ctx
        .query
        .get("start-after")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    // The continuation token is opaque to clients: the last key or common
    // prefix of the previous page. It wins over start-after.
    let after = match &token {
        Some(t) => Some(decode_token(t)?),
        None => start_after.clone(),
    };
    let q = query(ctx, after, max);
    let page = fetch(ctx, q.clone()).await?;
    let fetch_owner = ctx.query.get("fetch-owner") == Some("true");
    let mut w = XmlWriter::new();
    w.root("ListBucketResult");
    write_common(&mut w, &enc, ctx, &q, &page);
    w.elem_display("KeyCount", page.objects.len() + page.common_prefixes.len());
    if let Some(t) = &token {
        w.elem("ContinuationToken", t);
    }
    if page.truncated
        && let Some(last) = &page.last
    {
        w.elem("NextContinuationToken", &encode_token(last));
    }
    if let Some(s) = &start_after {
        enc.elem(&mut w, "StartAfter", s);
    }
    write_contents(
        &mut w,
        &enc,
        &page,
        fetch_owner.then_some(ctx.principal.name()),
    );
    w.close("ListBucketResult");
    Ok(xml_response(w.finish()))
}

/// A continuation token: opaque to clients, the last name of the page.
pub(super) fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last)
}

pub(super) fn decode_token(t: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "The continuation token provided is incorrect",
                "continuation-token",
                t,
            )
        })
}

/// ListObjectVersions on an unversioned bucket: every object is its only,
/// latest version, with version id `null`.
pub async fn list_object_versions(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let enc = Enc::from(ctx)?;
    let max = parse_max(&ctx.query, "max-keys", 1000, 1000)?;
    let key_marker = ctx
        .query
        .get("key-marker")
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let q = query(ctx, key_marker.clone(), max);
    let page = fetch(ctx, q.clone()).await?;
    let mut w = XmlWriter::new();
    w.root("ListVersionsResult");
    write_common(&mut w, &enc, ctx, &q, &page);
    enc.elem(&mut w, "KeyMarker", key_marker.as_deref().unwrap_or(""));
    w.elem(
        "VersionIdMarker",
        ctx.query.get("version-id-marker").unwrap_or(""),
    );
    if page.truncated
        && let Some(last) = &page.last
    {
        enc.elem(&mut w, "NextKeyMarker", last);
        w.elem("NextVersionIdMarker", "null");
    }
    for (key, obj) in &page.objects {
        w.open("Version");
        enc.elem(&mut w, "Key", key);
        w.elem("VersionId", "null");
        w.elem("IsLatest", "true");
        w.elem("LastModified", &iso8601(obj.last_modified_ms));
        w.elem("ETag", &quoted(&obj.etag));
        w.elem_display("Size", obj.size);
        write_owner(&mut w, "Owner", ctx.principal.name());
        w.elem("StorageClass", "STANDARD");
        w.close("Version");
    }
    write_prefixes(&mut w, &enc, &page.common_prefixes);
    w.close("ListVersionsResult");
    Ok(xml_response(w.finish()))
}

pub async fn list_multipart_uploads(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let enc = Enc::from(ctx)?;
    let max = parse_max(&ctx.query, "max-uploads", 1000, 1000)?;
    let key_marker = ctx
        .query
        .get("key-marker")
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let id_marker = ctx.query.get("upload-id-marker").unwrap_or("").to_owned();
    let q = query(ctx, key_marker.clone(), max);
    let bucket = ctx.bucket().to_owned();
    let page = if max == 0 {
        ctx.meta().bucket(&bucket).await?;
        Default::default()
    } else {
        ctx.meta()
            .list_uploads(&bucket, q.clone(), Some(id_marker.clone()))
            .await?
    };
    let mut w = XmlWriter::new();
    w.root("ListMultipartUploadsResult");
    w.elem("Bucket", ctx.bucket());
    enc.elem(&mut w, "KeyMarker", key_marker.as_deref().unwrap_or(""));
    w.elem(
        "UploadIdMarker",
        if key_marker.is_some() { &id_marker } else { "" },
    );
    if page.truncated {
        let last = page
            .uploads
            .last()
            .map(|(k, id, _)| (k.as_str(), id.as_str()));
        let last_prefix = page.common_prefixes.last().map(String::as_str);
        // Whichever came last in key order is where the next page starts.
        let (next_key, next_id) = match (last, last_prefix) {
            (Some((k, id)), Some(p)) if k > p => (k, id),
            (_, Some(p)) => (p, ""),
            (Some((k, id)), None) => (k, id),
            (None, None) => ("", ""),
        };
        enc.elem(&mut w, "NextKeyMarker", next_key);
        w.elem("NextUploadIdMarker", next_id);
    }
    enc.elem(&mut w, "Prefix", &q.prefix);
    if let Some(d) = &q.delimiter {
        enc.elem(&mut w, "Delimiter", d);
    }
    w.elem_display("MaxUploads", max);
    enc.header(&mut w);
    w.elem_display("IsTruncated", page.truncated);
    for (key, id, upload) in &page.uploads {
        w.open("Upload");
        enc.elem(&mut w, "Key", key);
        w.elem("UploadId", id);
        write_owner(&mut w, "Initiator", &upload.owner);
        write_owner(&mut w, "Owner", &upload.owner);
        w.elem("StorageClass", "STANDARD");
        w.elem("Initiated", &iso8601(upload.initiated_ms));
        if let Some((algorithm, kind)) = upload.checksum {
            w.elem("ChecksumAlgorithm", algorithm.name());
            w.elem("ChecksumType", kind.name());
        }
        w.close("Upload");
    }
    write_prefixes(&mut w, &enc, &page.common_prefixes);
    w.close("ListMultipartUploadsResult");
    Ok(xml_response(w.finish()))
}
