//! Get/Put/DeleteBucketLifecycleConfiguration. The rules act in the sweep
//! ([`crate::store::sweep`]).

use http::{Response, StatusCode};

use super::{Ctx, status_response, xml_response};
use crate::error::{Code, S3Error, S3Result};
use crate::lifecycle;
use crate::server::body::ResponseBody;

pub async fn get(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let rules = ctx
        .meta()
        .bucket_lifecycle(ctx.bucket())
        .await?
        .ok_or_else(|| {
            S3Error::new(Code::NoSuchLifecycleConfiguration).detail("BucketName", ctx.bucket())
        })?;
    Ok(xml_response(lifecycle::to_xml(&rules)))
}

/// S3 requires a digest of the body (Content-MD5 or a checksum); SDKs send
/// one.
pub async fn put(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let body = ctx.xml_body_checked(true).await?;
    let rules = lifecycle::parse_xml(&body)?;
    ctx.meta()
        .set_bucket_lifecycle(ctx.bucket(), Some(rules))
        .await?;
    Ok(status_response(StatusCode::OK))
}

pub async fn delete(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    ctx.meta().set_bucket_lifecycle(ctx.bucket(), None).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}
