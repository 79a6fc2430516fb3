//! Extensions beyond S3, all under `/_stowage/` (no bucket name can begin
//! with `_`, so path-style S3 never reaches here): the Uppy-compatible
//! signing routes at `/_stowage/s3/…`, authorised by upload grants.
//!
//! Their answers are JSON, errors included (`{"error": code, "message":
//! ..., "requestId": ...}`, with S3's status for the same failure), since
//! the browser clients that call them read JSON. Their CORS rules are the
//! configured defaults (`[[cors]]`, or the development default): a
//! preflight carries no grant, so no bucket's own rules can apply.

pub mod grant;
mod uppy;

use std::sync::Arc;

use http::header::HeaderValue;
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::error::{Code, S3Error, S3Result};
use crate::s3::router::Operation;
use crate::s3::{AppState, Outcome, cors};
use crate::server::body::{self, ResponseBody};
use crate::store::Store;

pub const PREFIX: &str = "/_stowage/";
/// What path-style routing takes for the bucket of an extension's path.
pub const BUCKET: &str = "_stowage";

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut r = Response::new(body::full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn json_error(e: &S3Error, request_id: &str) -> Response<ResponseBody> {
    json(
        e.status(),
        &serde_json::json!({
            "error": format!("{:?}", e.code),
            "message": e.message,
            "requestId": request_id,
        }),
    )
}

/// What an extension route did, for the access log.
pub struct Done {
    pub response: Response<ResponseBody>,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub access_key: Option<String>,
}

pub async fn handle(
    state: Arc<AppState>,
    parts: http::request::Parts,
    incoming: Incoming,
    request_id: &str,
) -> Outcome {
    let path = parts.uri.path().to_owned();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let op = route(&parts.method, rest);
    let origin = parts
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let result = match op {
        Operation::CorsPreflight => {
            cors::preflight_with(&state.config.cors, &parts.headers).map(|response| Done {
                response,
                bucket: None,
                key: None,
                access_key: None,
            })
        }
        Operation::HealthLive | Operation::HealthReady => Ok(Done {
            response: health(&state.store, op).await,
            bucket: None,
            key: None,
            access_key: None,
        }),
        Operation::NotImplemented => Err(S3Error::with_message(
            Code::NoSuchKey,
            format!("No Stowage extension answers {} {path}.", parts.method),
        )),
        _ => uppy::handle(&state, op, &parts, incoming, rest).await,
    };
    let (mut response, bucket, key, access_key, error) = match result {
        Ok(done) => (done.response, done.bucket, done.key, done.access_key, None),
        Err(e) => (json_error(&e, request_id), None, None, None, Some(e)),
    };
    if let Some(origin) = origin
        && op != Operation::CorsPreflight
    {
        cors::decorate_with(&state.config.cors, &origin, &parts.method, &mut response);
    }
    Outcome {
        response,
        op,
        bucket,
        key,
        error,
        auth: Some(match access_key {
            Some(key) => (key, "upload-grant"),
            None => ("anonymous".into(), "anonymous"),
        }),
    }
}

/// Liveness (the process answers) and readiness (metadata takes a durable
/// write and the disk is above its floor), for orchestrators; no
/// credentials needed.
pub async fn health(store: &Store, op: Operation) -> Response<ResponseBody> {
    if op == Operation::HealthLive {
        return json(StatusCode::OK, &serde_json::json!({"status": "live"}));
    }
    let metadata = store.meta.probe().await;
    let disk = store.check_space(0);
    let failed: Vec<String> = [("metadata", metadata), ("disk", disk)]
        .into_iter()
        .filter_map(|(what, r)| r.err().map(|e| format!("{what}: {}", e.message)))
        .collect();
    if failed.is_empty() {
        json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not ready", "problems": failed}),
        )
    }
}

/// The health operation a path names, if it is one.
pub fn health_route(path: &str) -> Option<Operation> {
    match path.strip_prefix(PREFIX)? {
        "health/live" => Some(Operation::HealthLive),
        "health/ready" => Some(Operation::HealthReady),
        _ => None,
    }
}

/// The operation of a path below `/_stowage/`.
fn route(method: &Method, rest: &str) -> Operation {
    use Operation::*;
    if method == Method::OPTIONS {
        return CorsPreflight;
    }
    if matches!(method.as_str(), "GET" | "HEAD")
        && let Some(health) = health_route(&format!("{PREFIX}{rest}"))
    {
        return health;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["s3", "params"]) => UppyParams,
        ("POST", ["s3", "multipart"]) => UppyCreate,
        ("GET", ["s3", "multipart", _]) => UppyListParts,
        ("GET", ["s3", "multipart", _, "batch"]) => UppySignParts,
        ("GET", ["s3", "multipart", _, _]) => UppySignPart,
        ("POST", ["s3", "multipart", _, "complete"]) => UppyComplete,
        ("DELETE", ["s3", "multipart", _]) => UppyAbort,
        _ => NotImplemented,
    }
}

/// `scheme://host` as the client reached us, for URLs we hand out.
pub fn origin_of(state: &AppState, headers: &http::HeaderMap) -> String {
    let scheme = if state.config.tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// The body of a JSON request, at most 1 MiB.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &http::HeaderMap,
    incoming: Incoming,
) -> S3Result<T> {
    let limits = &state.config.limits;
    let grace = std::time::Duration::from_secs(limits.body_rate_grace_secs);
    let body = crate::server::body::RequestBody::new(
        incoming,
        headers,
        1 << 20,
        crate::auth::Payload::Unsigned,
    )?
    .with_min_rate(limits.min_body_rate, grace);
    let bytes = body.collect().await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        S3Error::with_message(Code::InvalidArgument, format!("Invalid JSON body: {e}"))
    })
}
