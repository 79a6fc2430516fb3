//! CORS on the wire, for every front-end: answering a preflight from a set
//! of rules ([`crate::cors`]), and decorating an actual cross-origin
//! response (errors included, so that a page can read them).

use http::{HeaderMap, Method, Response};

use super::body::{ResponseBody, set_header, status_response};
use crate::cors::{self, CorsRule};
use crate::error::{Code, S3Error, S3Result};

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

/// Origin, method and requested headers of a preflight.
pub fn preflight_request(headers: &HeaderMap) -> S3Result<(String, String, Vec<String>)> {
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
