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

use http::{Method, Response};
use hyper::body::Incoming;

use crate::error::{Code, S3Error, S3Result};
use crate::server::EXTENSIONS;
use crate::server::body::{self, ResponseBody, json};
use crate::server::cors;
use crate::server::state::{AppState, Outcome};

/// A call to one of the upload routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Preflight,
    Params,
    Create,
    ListParts,
    SignParts,
    SignPart,
    Complete,
    Abort,
    Unknown,
}

impl Call {
    /// The route's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Call::Preflight => "CorsPreflight",
            Call::Params => "UppyParams",
            Call::Create => "UppyCreate",
            Call::ListParts => "UppyListParts",
            Call::SignParts => "UppySignParts",
            Call::SignPart => "UppySignPart",
            Call::Complete => "UppyComplete",
            Call::Abort => "UppyAbort",
            Call::Unknown => "NotImplemented",
        }
    }
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

/// What an upload route did, for the access log.
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
    let rest = path.strip_prefix(EXTENSIONS).unwrap_or("");
    let call = route(&parts.method, rest);
    let origin = parts
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let result = match call {
        Call::Preflight => {
            cors::preflight_with(&state.config().cors, &parts.headers).map(|response| Done {
                response,
                bucket: None,
                key: None,
                access_key: None,
            })
        }
        Call::Unknown => Err(S3Error::with_message(
            Code::NoSuchKey,
            format!("No Stowage extension answers {} {path}.", parts.method),
        )),
        _ => uppy::handle(&state, call, &parts, incoming, rest).await,
    };
    let (mut response, bucket, key, access_key, error) = match result {
        Ok(done) => (done.response, done.bucket, done.key, done.access_key, None),
        Err(e) => (json_error(&e, request_id), None, None, None, Some(e)),
    };
    if let Some(origin) = origin
        && call != Call::Preflight
    {
        cors::decorate_with(&state.config().cors, &origin, &parts.method, &mut response);
    }
    Outcome {
        response,
        op: call.name().to_owned(),
        bucket,
        key,
        error,
        auth: Some(match access_key {
            Some(key) => (key, "upload-grant"),
            None => ("anonymous".into(), "anonymous"),
        }),
    }
}

/// The call a path below `/_stowage/` makes.
fn route(method: &Method, rest: &str) -> Call {
    if method == Method::OPTIONS {
        return Call::Preflight;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["s3", "params"]) => Call::Params,
        ("POST", ["s3", "multipart"]) => Call::Create,
        ("GET", ["s3", "multipart", _]) => Call::ListParts,
        ("GET", ["s3", "multipart", _, "batch"]) => Call::SignParts,
        ("GET", ["s3", "multipart", _, _]) => Call::SignPart,
        ("POST", ["s3", "multipart", _, "complete"]) => Call::Complete,
        ("DELETE", ["s3", "multipart", _]) => Call::Abort,
        _ => Call::Unknown,
    }
}

/// The body of a JSON request, at most `max` bytes.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    (headers, max): (&http::HeaderMap, u64),
    incoming: Incoming,
) -> S3Result<T> {
    let limits = &state.config().limits;
    let grace = std::time::Duration::from_secs(limits.body_rate_grace_secs);
    let body = body::RequestBody::new(incoming, headers, max, crate::auth::Payload::Unsigned)?
        .with_min_rate(limits.min_body_rate, grace);
    let bytes = body.collect().await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        S3Error::with_message(Code::InvalidArgument, format!("Invalid JSON body: {e}"))
    })
}
