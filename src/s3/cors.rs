//! CORS: Get/Put/DeleteBucketCors, the `OPTIONS` preflight, and the
//! headers that let a page read the response of a request it was allowed
//! to send (`ETag` above all, for multipart uploads from a browser).

use http::{Method, Response};

use super::{AppState, Ctx, status_response, xml_response};
use crate::cors::{self, CorsRule};
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::ResponseBody;
use crate::server::cors::{decorate_with, preflight_request, preflight_with};

pub async fn get_bucket_cors(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let rules = ctx.meta().bucket_cors(ctx.bucket()).await?.ok_or_else(|| {
        S3Error::new(Code::NoSuchCORSConfiguration).detail("BucketName", ctx.bucket())
    })?;
    Ok(xml_response(cors::to_xml(&rules)))
}

pub async fn put_bucket_cors(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let body = ctx.xml_body_checked(false).await?;
    let rules = cors::parse_xml(&body)?;
    ctx.meta()
        .set_bucket_cors(ctx.bucket(), Some(rules))
        .await?;
    Ok(status_response(http::StatusCode::OK))
}

pub async fn delete_bucket_cors(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    ctx.meta().set_bucket_cors(ctx.bucket(), None).await?;
    Ok(status_response(http::StatusCode::NO_CONTENT))
}

/// The rules that govern a bucket: its own, else (also for a bucket that
/// does not exist) the configured default.
async fn rules_for(state: &AppState, bucket: &str) -> S3Result<Vec<CorsRule>> {
    let own = match state.store.meta.bucket_cors(bucket).await {
        Err(e) if e.code == Code::NoSuchBucket => None,
        other => other?,
    };
    Ok(own.unwrap_or_else(|| state.config().cors.clone()))
}

pub async fn preflight(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let Some(bucket) = ctx.bucket.clone() else {
        // Checked after the request's own shape, as below.
        preflight_request(&ctx.headers)?;
        return Err(S3Error::with_message(
            Code::AccessForbidden,
            "CORSResponse: Bucket not found",
        ));
    };
    let rules = rules_for(&ctx.state, &bucket).await?;
    preflight_with(&rules, &ctx.headers)
}

/// Adds CORS headers to the response of an actual cross-origin request
/// whose origin and method a rule allows (errors included, so that a page
/// can read them).
pub async fn decorate(
    state: &AppState,
    bucket: &str,
    origin: &str,
    method: &Method,
    response: &mut Response<ResponseBody>,
) {
    let Ok(rules) = rules_for(state, bucket).await else {
        return;
    };
    decorate_with(&rules, origin, method, response);
}
