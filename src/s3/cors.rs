//! CORS: Get/Put/DeleteBucketCors, the `OPTIONS` preflight, and the
//! headers that let a page read the response of a request it was allowed
//! to send (`ETag` above all, for multipart uploads from a browser).

use http::{HeaderMap, Method, Response};

use super::{AppState, Ctx, set_header, status_response, xml_response};
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::ResponseBody;
use crate::server::cors::{self, CorsRule};

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
    Ok(own.unwrap_or_else(|| state.config.cors.clone()))
}

const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

fn allow_origin(r: &mut Response<ResponseBody>, rule: &CorsRule, origin: &str) {
    let allowed = rule.allow_origin(origin);
    set_header(r, "access-control-allow-origin", allowed);
    if allowed != "*" {
        set_header(r, "access-control-allow-credentials", "true");
    }
    set_header(
        r,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set_header(
            r,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_secs {
        set_header(r, "access-control-max-age", &age.to_string());
    }
    set_header(r, "vary", VARY);
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

/// Origin, method and requested headers of a preflight.
fn preflight_request(headers: &HeaderMap) -> S3Result<(String, String, Vec<String>)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bad = |m: &str| S3Error::with_message(Code::BadRequest, m);
    let origin = header("origin")
        .ok_or_else(|| bad("Insufficient information. Origin request header needed."))?
        .to_owned();
    let method = header("access-control-request-method")
        .ok_or_else(|| bad("Invalid Access-Control-Request-Method: null"))?
        .to_owned();
    let requested: Vec<String> = header("access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    Ok((origin, method, requested))
}

/// Answers a preflight from `rules`.
pub fn preflight_with(rules: &[CorsRule], headers: &HeaderMap) -> S3Result<Response<ResponseBody>> {
    let (origin, method, requested) = preflight_request(headers)?;
    if rules.is_empty() {
        return Err(S3Error::with_message(
            Code::AccessForbidden,
            "CORSResponse: CORS is not enabled for this bucket.",
        ));
    }
    let headers: Vec<&str> = requested.iter().map(String::as_str).collect();
    let rule = cors::find(rules, &origin, &method, &headers).ok_or_else(|| {
        S3Error::with_message(
            Code::AccessForbidden,
            "CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        )
    })?;
    let mut r = status_response(http::StatusCode::OK);
    allow_origin(&mut r, rule, &origin);
    if !requested.is_empty() {
        set_header(
            &mut r,
            "access-control-allow-headers",
            &requested.join(", "),
        );
    }
    Ok(r)
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

/// Adds the headers of the rule of `rules` that allows `origin` and
/// `method`, if any.
pub fn decorate_with(
    rules: &[CorsRule],
    origin: &str,
    method: &Method,
    response: &mut Response<ResponseBody>,
) {
    match cors::find(rules, origin, method.as_str(), &[]) {
        Some(rule) => allow_origin(response, rule, origin),
        None => set_header(response, "vary", VARY),
    }
}
