//! Tags: Get/Put/DeleteObjectTagging, Get/Put/DeleteBucketTagging, and the
//! `x-amz-tagging` header on PutObject, CreateMultipartUpload and
//! CopyObject, with S3's limits.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html>

use http::{Response, StatusCode};
use serde::Deserialize;

use super::{Ctx, status_response, xml_response};
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::ResponseBody;
use crate::store::model::Tags;
use crate::xml::XmlWriter;

/// Most tags an object may have.
const OBJECT_MAX: usize = 10;
/// Most tags a bucket may have.
const BUCKET_MAX: usize = 50;

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(Code::InvalidTag, message)
}

/// S3's rules for a tag set of at most `max` tags.
fn validate(tags: &Tags, max: usize) -> S3Result<()> {
    if tags.len() > max {
        return Err(invalid(if max == OBJECT_MAX {
            "Object tags cannot be greater than 10".to_owned()
        } else {
            format!("Bucket tags cannot be greater than {max}")
        }));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() {
            return Err(invalid("The TagKey you have provided is invalid"));
        }
        if key.chars().count() > 128 {
            return Err(invalid("The TagKey you have provided is too long, max 128"));
        }
        if value.chars().count() > 256 {
            return Err(invalid(
                "The TagValue you have provided is too long, max 256",
            ));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(())
}

/// `x-amz-tagging: k1=v1&k2=v2` (URL-encoded, as a query string); empty
/// when absent.
pub fn from_header(ctx: &Ctx) -> S3Result<Tags> {
    let Some(raw) = ctx.header("x-amz-tagging") else {
        return Ok(Tags::new());
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| invalid("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
    };
    let mut tags = Tags::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(k)?, decode(v)?));
    }
    validate(&tags, OBJECT_MAX)?;
    Ok(tags)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tagging {
    tag_set: TagSet,
}

#[derive(Debug, Default, Deserialize)]
struct TagSet {
    #[serde(rename = "Tag", default)]
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

/// The `tagging` field of a POST form: a `Tagging` document.
pub fn parse_object_tags(body: &[u8]) -> S3Result<Tags> {
    parse(body, OBJECT_MAX)
}

fn parse(body: &[u8], max: usize) -> S3Result<Tags> {
    let tagging: Tagging = crate::xml::parse(body)?;
    let tags: Tags = tagging
        .tag_set
        .tags
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    validate(&tags, max)?;
    Ok(tags)
}

fn render(tags: &Tags) -> Response<ResponseBody> {
    let mut w = XmlWriter::new();
    w.root("Tagging");
    w.open("TagSet");
    for (key, value) in tags {
        w.open("Tag");
        w.elem("Key", key);
        w.elem("Value", value);
        w.close("Tag");
    }
    w.close("TagSet");
    w.close("Tagging");
    xml_response(w.finish())
}

pub async fn get_object_tagging(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    super::check_version_id(&ctx.query)?;
    let head = ctx.meta().head_object(ctx.bucket(), ctx.key()).await?;
    Ok(render(&head.tags))
}

pub async fn put_object_tagging(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    super::check_version_id(&ctx.query)?;
    let body = ctx.xml_body_checked(false).await?;
    let tags = parse(&body, OBJECT_MAX)?;
    ctx.meta()
        .set_object_tags(ctx.bucket(), ctx.key(), tags)
        .await?;
    Ok(status_response(StatusCode::OK))
}

pub async fn delete_object_tagging(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    super::check_version_id(&ctx.query)?;
    ctx.meta()
        .set_object_tags(ctx.bucket(), ctx.key(), Tags::new())
        .await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

/// A bucket that never had tags answers 404 `NoSuchTagSet`, as on S3.
pub async fn get_bucket_tagging(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let tags = ctx.meta().bucket_tags(ctx.bucket()).await?;
    let tags =
        tags.ok_or_else(|| S3Error::new(Code::NoSuchTagSet).detail("BucketName", ctx.bucket()))?;
    Ok(render(&tags))
}

pub async fn put_bucket_tagging(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let body = ctx.xml_body_checked(false).await?;
    let tags = parse(&body, BUCKET_MAX)?;
    ctx.meta().set_bucket_tags(ctx.bucket(), Some(tags)).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

pub async fn delete_bucket_tagging(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    ctx.meta().set_bucket_tags(ctx.bucket(), None).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn s3_limits() {
        assert!(validate(&tags(&[("a", "1"), ("b", "")]), OBJECT_MAX).is_ok());
        let eleven: Tags = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            validate(&eleven, OBJECT_MAX).unwrap_err().code,
            Code::InvalidTag
        );
        assert!(validate(&eleven, BUCKET_MAX).is_ok());
        let long_key = "k".repeat(129);
        assert!(validate(&tags(&[(&long_key, "v")]), OBJECT_MAX).is_err());
        assert!(validate(&tags(&[("k", &"v".repeat(257))]), OBJECT_MAX).is_err());
        assert!(validate(&tags(&[("k", "1"), ("k", "2")]), OBJECT_MAX).is_err());
        assert!(validate(&tags(&[("", "1")]), OBJECT_MAX).is_err());
    }

    #[test]
    fn tagging_documents_parse() {
        let xml = br#"<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>
            <Tag><Key>project</Key><Value>blue</Value></Tag><Tag><Key>empty</Key><Value></Value></Tag>
            </TagSet></Tagging>"#;
        assert_eq!(
            parse(xml, OBJECT_MAX).unwrap(),
            tags(&[("project", "blue"), ("empty", "")])
        );
        assert!(
            parse(b"<Tagging><TagSet/></Tagging>", OBJECT_MAX)
                .unwrap()
                .is_empty()
        );
    }
}
