//! The blob store interface: immutable byte files named by a random id.
//!
//! A blob's life: [`BlobStore::create`] it, write it, [`BlobSink::finish`]
//! it (durable, but not yet referenced by anything), commit the metadata
//! that refers to it, then [`BlobStore::publish`] it. A blob that never gets
//! its metadata is [`BlobStore::discard`]ed, or found by
//! [`BlobStore::unpublished`] at start-up. Freed blobs are
//! [`BlobStore::remove`]d by the collector. Every method blocks: callers run
//! them off the async workers.
//!
//! Implementations: [`super::local::LocalBlobs`] (files under the data
//! directory, the default).

use std::io::{self, Read, Seek};

use super::model::BlobId;

pub trait BlobStore: Send + Sync + std::fmt::Debug + 'static {
    /// A new, empty blob to write.
    fn create(&self, id: BlobId) -> io::Result<Box<dyn BlobSink>>;
    /// Deletes a blob that no metadata refers to (a failed or cancelled
    /// write). Best effort: start-up recovery catches what this misses.
    fn discard(&self, id: BlobId);
    /// Moves a blob whose metadata has committed to its permanent place.
    /// Until then (and if this fails) it stays readable where it was
    /// written.
    fn publish(&self, id: BlobId) -> io::Result<()>;
    fn open(&self, id: BlobId) -> io::Result<Box<dyn BlobSource>>;
    /// Removes freed blobs, durably: once this returns, no crash brings
    /// them back. A blob already gone is fine. Returns those removed.
    fn remove(&self, ids: &[BlobId]) -> io::Result<Vec<BlobId>>;
    /// Blobs written but never published: each is either live (its commit
    /// landed but a crash came before its publish) or an orphan.
    fn unpublished(&self) -> io::Result<Vec<BlobId>>;
    /// Bytes free for new blobs (what an unprivileged writer may use).
    fn free_bytes(&self) -> io::Result<u64>;
}

pub trait BlobSink: Send {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes the written bytes durable: after it returns, a crash loses
    /// nothing of this blob.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

pub trait BlobSource: Read + Seek + Send {}

impl<T: Read + Seek + Send> BlobSource for T {}
