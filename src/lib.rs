//! Stowage: an S3-compatible object server whose heart is multipart and
//! resumable upload. Metadata lives in redb, object bytes in blob files on
//! local disk. See DESIGN.md in the shared notes for the shape.

pub mod app;
pub mod auth;
pub mod checksum;
pub mod chunked;
pub mod config;
pub mod cors;
pub mod error;
pub mod lifecycle;
pub mod query;
pub mod rfc2047;
pub mod s3;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod uploads;
pub mod xml;
