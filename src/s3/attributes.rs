//! GetObjectAttributes: an object's ETag, checksum, parts, storage class
//! and size in one XML document, without its body.
//!
//! As S3 answers it: the ETag is unquoted; a composite checksum has no
//! `-N`; parts are listed (with their checksums) only for a composite
//! multipart object, other multipart objects give just their part count,
//! and single-part objects have no `ObjectParts` at all.

use http::Response;

use super::multipart::checksum_element;
use super::{Ctx, check_version_id, set_header, xml_response};
use crate::checksum::ChecksumType;
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::ResponseBody;
use crate::store::model::Body;
use crate::time::http_date;
use crate::xml::XmlWriter;

const ATTRIBUTES: [&str; 5] = [
    "ETag",
    "Checksum",
    "ObjectParts",
    "StorageClass",
    "ObjectSize",
];

/// The requested attributes: `x-amz-object-attributes`, comma-separated,
/// possibly over several header lines (the Rust SDK sends one per name).
fn wanted(ctx: &Ctx) -> S3Result<Vec<&'static str>> {
    let mut wanted = Vec::new();
    for value in ctx.headers.get_all("x-amz-object-attributes") {
        let value = value.to_str().unwrap_or_default();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let known = ATTRIBUTES
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    S3Error::invalid_argument(
                        "Invalid attribute name specified.",
                        "x-amz-object-attributes",
                        name,
                    )
                })?;
            wanted.push(*known);
        }
    }
    if wanted.is_empty() {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        ));
    }
    Ok(wanted)
}

pub async fn get_object_attributes(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    check_version_id(&ctx.query)?;
    let wanted = wanted(ctx)?;
    // S3 ignores a malformed x-amz-max-parts, and so do we (0 included: a
    // page that can never advance would loop a paginating client).
    let max_parts = ctx
        .header("x-amz-max-parts")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(1000, |n| n.min(1000));
    let marker = ctx
        .header("x-amz-part-number-marker")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let obj = ctx.meta().head_object(ctx.bucket(), ctx.key()).await?;
    let has = |name| wanted.contains(&name);

    let mut w = XmlWriter::new();
    w.root("GetObjectAttributesResponse");
    if has("ETag") {
        w.elem("ETag", &obj.etag);
    }
    if has("Checksum")
        && let Some(c) = &obj.checksum
    {
        w.open("Checksum");
        w.elem(checksum_element(c.algorithm), &c.value);
        w.elem("ChecksumType", obj.checksum_type.name());
        w.close("Checksum");
    }
    if has("ObjectParts") && obj.is_multipart() {
        w.open("ObjectParts");
        if let Body::Parts { manifest, count } = obj.body
            && obj.checksum_type == ChecksumType::Composite
            && obj.checksum.is_some()
        {
            let first = marker.min(count as usize) as u32;
            let page = ctx
                .meta()
                .segments(manifest, first, max_parts as u32)
                .await?;
            let truncated = first as usize + page.len() < count as usize;
            w.elem_display("PartNumberMarker", marker);
            if !page.is_empty() {
                w.elem_display("NextPartNumberMarker", first as usize + page.len());
            }
            w.elem_display("MaxParts", max_parts);
            w.elem_display("IsTruncated", truncated);
            for (i, (_, seg)) in page.iter().enumerate() {
                w.open("Part");
                w.elem_display("PartNumber", first as usize + i + 1);
                w.elem_display("Size", seg.len);
                if let Some(c) = &seg.checksum {
                    w.elem(checksum_element(c.algorithm), &c.value);
                }
                w.close("Part");
            }
        }
        w.elem_display("PartsCount", obj.parts());
        w.close("ObjectParts");
    }
    if has("StorageClass") {
        w.elem("StorageClass", "STANDARD");
    }
    if has("ObjectSize") {
        w.elem_display("ObjectSize", obj.size);
    }
    w.close("GetObjectAttributesResponse");
    let mut r = xml_response(w.finish());
    set_header(&mut r, "last-modified", &http_date(obj.last_modified_ms));
    Ok(r)
}
