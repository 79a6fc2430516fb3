//! What every front-end shares beneath it: request and response bodies
//! (limits while bytes stream), CORS, the connection limits and I/O
//! timeouts, TLS, and the metrics. The front-ends (S3 in [`crate::s3`], the
//! upload routes in [`crate::uploads`]) stand side by side on it, and
//! [`crate::app`] dispatches each request to one of them.

pub mod body;
pub mod cors;
pub mod io;
pub mod metrics;
pub mod tls;
