//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, GetBucketVersioning. ACLs and policies are in
//! [`super::acl`].

use http::{Response, StatusCode};

use super::{Ctx, set_header, status_response, write_owner, xml_response};
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::ResponseBody;
use crate::time::iso8601;
use crate::xml::XmlWriter;

/// S3's bucket naming rules:
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|&b| edge_ok(b) || b == b'.' || b == b'-')
        && edge_ok(bytes[0])
        && edge_ok(bytes[bytes.len() - 1])
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && !name.starts_with("xn--")
        && !name.starts_with("sthree-")
        && !name.ends_with("-s3alias")
        && !name.ends_with("--ol-s3")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// ListBuckets, paged as S3 pages it since 2024: `max-buckets` (1..=10000),
/// `continuation-token` (opaque to clients: the last name of the previous
/// page), `prefix`, and `bucket-region` (every bucket is in this server's).
pub async fn list_buckets(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let max = match ctx.query.get("max-buckets") {
        None => usize::MAX,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Argument max-buckets must be an integer between 1 and 10000",
                    "max-buckets",
                    v,
                )
            })?,
    };
    let after = match ctx
        .query
        .get("continuation-token")
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(token) => Some(super::list::decode_token(token)?),
    };
    let prefix = ctx.query.get("prefix").unwrap_or("");
    let region = &ctx.state.config().region;
    let in_region = ctx.query.get("bucket-region").is_none_or(|r| r == region);
    let buckets = ctx.meta().list_buckets().await?;
    let mut visible = buckets.into_iter().filter(|(name, record)| {
        in_region
            && name.starts_with(prefix)
            && after.as_ref().is_none_or(|a| name > a)
            && crate::auth::access::lists(&ctx.principal, name, &record.owner)
    });
    let page: Vec<_> = visible.by_ref().take(max).collect();
    let more = visible.next().is_some();
    let mut w = XmlWriter::new();
    w.root("ListAllMyBucketsResult");
    write_owner(&mut w, "Owner", ctx.principal.name());
    w.open("Buckets");
    for (name, record) in &page {
        w.open("Bucket");
        w.elem("Name", name);
        w.elem("CreationDate", &iso8601(record.created_ms));
        w.elem("BucketRegion", region);
        w.close("Bucket");
    }
    w.close("Buckets");
    if more && let Some((last, _)) = page.last() {
        w.elem("ContinuationToken", &super::list::encode_token(last));
    }
    if ctx.query.get("prefix").is_some() {
        w.elem("Prefix", prefix);
    }
    w.close("ListAllMyBucketsResult");
    Ok(xml_response(w.finish()))
}

pub async fn create_bucket(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let name = ctx.bucket().to_owned();
    if !valid_bucket_name(&name) {
        return Err(S3Error::new(Code::InvalidBucketName).detail("BucketName", name));
    }
    // An optional CreateBucketConfiguration; its LocationConstraint, when
    // given, must be our region.
    let body = ctx.xml_body().await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct CreateBucketConfiguration {
            location_constraint: Option<String>,
        }
        let cfg: CreateBucketConfiguration = crate::xml::parse(&body)?;
        let region = &ctx.state.config().region;
        if let Some(loc) = cfg.location_constraint.filter(|l| !l.is_empty())
            && &loc != region
        {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                format!("The {loc} location constraint is incompatible with the region {region} this server answers as."),
            )
            .detail("ArgumentName", "LocationConstraint")
            .detail("ArgumentValue", loc));
        }
    }
    let owner = ctx.principal.name().to_owned();
    let acl = super::acl::from_headers(ctx, &[&owner])?.unwrap_or_default();
    match ctx.meta().create_bucket(&name, &owner, acl).await {
        // In us-east-1 S3 answers 200 to a CreateBucket of a bucket the
        // caller already owns, and changes nothing (its objects, ACL and
        // configuration stay); every other region answers 409.
        Err(e)
            if e.code == Code::BucketAlreadyOwnedByYou
                && ctx.state.config().region == "us-east-1" => {}
        other => other?,
    }
    let mut r = status_response(StatusCode::OK);
    set_header(&mut r, "location", &format!("/{name}"));
    Ok(r)
}

pub async fn head_bucket(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    ctx.meta().bucket(ctx.bucket()).await?;
    let mut r = status_response(StatusCode::OK);
    set_header(&mut r, "x-amz-bucket-region", &ctx.state.config().region);
    Ok(r)
}

pub async fn delete_bucket(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    ctx.meta().delete_bucket(ctx.bucket()).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

pub async fn get_bucket_location(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    ctx.meta().bucket(ctx.bucket()).await?;
    let mut w = XmlWriter::new();
    w.root("LocationConstraint");
    // us-east-1 is reported as an empty constraint, as S3 does.
    if ctx.state.config().region != "us-east-1" {
        w.text(&ctx.state.config().region);
    }
    w.close("LocationConstraint");
    Ok(xml_response(w.finish()))
}

/// Stowage buckets are unversioned: the configuration is empty, which is
/// what S3 answers for a bucket whose versioning was never enabled.
pub async fn get_bucket_versioning(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    ctx.meta().bucket(ctx.bucket()).await?;
    let mut w = XmlWriter::new();
    w.root("VersioningConfiguration");
    w.close("VersioningConfiguration");
    Ok(xml_response(w.finish()))
}

#[cfg(test)]
mod tests {
    use super::valid_bucket_name;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket.photos", "a1b", &"a".repeat(63)] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "ABC",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "xn--abc",
            "192.168.1.1",
            "a_b",
            &"a".repeat(64),
            "bucket-s3alias",
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
