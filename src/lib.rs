//! Stowage: an S3-compatible object server whose heart is multipart and
//! resumable upload. Metadata lives in redb, object bytes in blob files on
//! local disk. See DESIGN.md in the shared notes for the shape.

pub mod auth;
pub mod body;
pub mod checksum;
pub mod chunked;
pub mod config;
pub mod cors;
pub mod error;
pub mod ext;
#[cfg(test)]
mod fuzz;
pub mod io;
pub mod lifecycle;
pub mod metrics;
pub mod ops;
pub mod rfc2047;
pub mod router;
pub mod server;
pub mod store;
pub mod time;
pub mod tls;
pub mod xml;
