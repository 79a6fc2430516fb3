//! What every front-end shares beneath it: request and response bodies
//! (limits while bytes stream), CORS, the connection limits and I/O
//! timeouts, TLS, and the metrics. The front-ends (S3 in [`crate::s3`], the
//! upload routes in [`crate::uploads`]) stand side by side on it, and
//! [`crate::app`] dispatches each request to one of them.

pub mod admission;
pub mod body;
pub mod cors;
pub mod health;
pub mod io;
pub mod metrics;
pub mod state;
pub mod tls;

/// Everything Stowage serves that S3 does not lives below this path: no
/// bucket name can begin with `_`, so path-style S3 never collides with it.
pub const EXTENSIONS: &str = "/_stowage/";
/// What path-style routing takes for the bucket of an extension's path.
pub const EXTENSIONS_BUCKET: &str = "_stowage";
