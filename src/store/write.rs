//! Receiving bytes: a body streams into a new blob while it is hashed, and
//! small bodies stay in memory to be stored inline in the metadata.
//!
//! Each batch is written and hashed by two blocking calls side by side while
//! the next batch is received, so a PUT goes as fast as the slowest of
//! socket, disk and hash rather than their sum. No thread ever waits on a
//! slow client: file I/O and hashing run in short `spawn_blocking` calls,
//! one batch at a time. Dropping a writer or an uncommitted blob (a failed or
//! cancelled request) discards the blob.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::task::spawn_blocking;

use super::blob::{BlobSink, BlobStore};
use super::model::{BlobId, id_hex, new_id};
use crate::checksum::{Algorithm, Checksum, Hasher};
use crate::error::{S3Error, S3Result};

/// Bytes gathered from the socket before one blocking write-and-hash.
const WRITE_BATCH: usize = 1 << 20;
/// Pieces smaller than this are copied together rather than kept apart.
const SMALL_PIECE: usize = 64 * 1024;

/// What a finished write knows about its bytes.
#[derive(Debug, Clone)]
pub struct Written {
    pub len: u64,
    pub md5: [u8; 16],
    /// In the algorithm the writer was created with.
    pub checksum: Checksum,
    /// Always computed (it costs a few percent of the MD5), so that any
    /// multipart object can get a full-object CRC64NVME, as S3 gives it.
    pub crc64nvme: Checksum,
}

struct Hashes {
    md5: Md5,
    checksum: Hasher,
    /// Unless `checksum` already is one.
    crc64nvme: Option<Hasher>,
}

impl Hashes {
    fn new(algorithm: Algorithm) -> Hashes {
        Hashes {
            md5: Md5::new(),
            checksum: Hasher::new(algorithm),
            crc64nvme: (algorithm != Algorithm::Crc64Nvme)
                .then(|| Hasher::new(Algorithm::Crc64Nvme)),
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.checksum.update(data);
        if let Some(crc) = &mut self.crc64nvme {
            crc.update(data);
        }
    }

    fn finish(self, len: u64) -> Written {
        let checksum = self.checksum.finish();
        let crc64nvme = match self.crc64nvme {
            Some(crc) => crc.finish(),
            None => checksum.clone(),
        };
        Written {
            len,
            md5: self.md5.finalize().into(),
            checksum,
            crc64nvme,
        }
    }
}

/// A received body: bytes small enough to store inline, or a durable blob
/// waiting for its metadata commit.
pub enum Received {
    Inline(Bytes, Written),
    Blob(PendingBlob),
}

impl Received {
    pub fn written(&self) -> &Written {
        match self {
            Received::Inline(_, w) => w,
            Received::Blob(b) => &b.written,
        }
    }
}

type InFlight = (
    tokio::task::JoinHandle<io::Result<Box<dyn BlobSink>>>,
    tokio::task::JoinHandle<Hashes>,
);

/// Streams bytes into a new blob. With an inline limit, bytes stay in
/// memory until they pass it; only then is a blob created.
pub struct BlobWriter {
    id: BlobId,
    store: Arc<dyn BlobStore>,
    inline_max: Option<usize>,
    /// The sink and hashes when no batch is in flight; no sink yet while
    /// the body is still small enough to inline.
    idle: Option<(Option<Box<dyn BlobSink>>, Hashes)>,
    in_flight: Option<InFlight>,
    len: u64,
    batch: Vec<Bytes>,
    /// Small pieces not yet sealed into `batch`.
    small: BytesMut,
    batch_len: usize,
    /// A blob exists and must be discarded if the writer is dropped.
    armed: bool,
}

impl BlobWriter {
    /// A writer hashing MD5 and `algorithm` (and CRC64NVME). Bodies of at
    /// most `inline_max` bytes never become a blob; `None` always makes one.
    pub fn new(
        store: &Arc<dyn BlobStore>,
        algorithm: Algorithm,
        inline_max: Option<usize>,
    ) -> BlobWriter {
        BlobWriter {
            id: new_id(),
            store: Arc::clone(store),
            inline_max,
            idle: Some((None, Hashes::new(algorithm))),
            in_flight: None,
            len: 0,
            batch: Vec::new(),
            small: BytesMut::new(),
            batch_len: 0,
            armed: false,
        }
    }

    pub async fn write(&mut self, data: Bytes) -> S3Result<()> {
        self.batch_len += data.len();
        if data.len() < SMALL_PIECE {
            // Tiny pieces (a body of 1-byte aws-chunked chunks, say) are
            // gathered into one buffer, so a batch holds a few large
            // pieces and costs a few system calls.
            self.small.extend_from_slice(&data);
        } else {
            self.seal_small();
            self.batch.push(data);
        }
        let outgrown = !self.armed && self.inline_max.is_some_and(|max| self.batch_len > max);
        if self.batch_len >= WRITE_BATCH || outgrown {
            self.flush().await?;
        }
        Ok(())
    }

    fn seal_small(&mut self) {
        if !self.small.is_empty() {
            self.batch.push(self.small.split().freeze());
        }
    }

    /// Waits for the batch in flight, if any, and takes back the sink and
    /// hashes.
    async fn settle(&mut self) -> S3Result<(Option<Box<dyn BlobSink>>, Hashes)> {
        match self.in_flight.take() {
            Some((write, hash)) => {
                let (written, hashed) = tokio::join!(write, hash);
                let sink = written
                    .map_err(S3Error::internal)?
                    .map_err(|e| blob_error("writing blob", e))?;
                Ok((Some(sink), hashed.map_err(S3Error::internal)?))
            }
            None => self
                .idle
                .take()
                .ok_or_else(|| S3Error::internal("blob writer failed earlier")),
        }
    }

    /// The blob's sink, created (and the writer armed to discard it) if
    /// the body has not needed one yet.
    async fn sink_or_create(
        &mut self,
        sink: Option<Box<dyn BlobSink>>,
    ) -> S3Result<Box<dyn BlobSink>> {
        if let Some(sink) = sink {
            return Ok(sink);
        }
        let (store, id) = (Arc::clone(&self.store), self.id);
        let sink = spawn_blocking(move || store.create(id))
            .await
            .map_err(S3Error::internal)?
            .map_err(|e| blob_error("creating blob", e))?;
        self.armed = true;
        Ok(sink)
    }

    async fn flush(&mut self) -> S3Result<()> {
        self.seal_small();
        if self.batch.is_empty() {
            return Ok(());
        }
        let (sink, mut hashes) = self.settle().await?;
        let mut sink = self.sink_or_create(sink).await?;
        let batch = std::mem::take(&mut self.batch);
        let to_hash = batch.clone();
        self.len += self.batch_len as u64;
        self.batch_len = 0;
        let write = spawn_blocking(move || -> io::Result<Box<dyn BlobSink>> {
            for data in &batch {
                sink.write_all(data)?;
            }
            Ok(sink)
        });
        let hash = spawn_blocking(move || {
            for data in &to_hash {
                hashes.update(data);
            }
            hashes
        });
        self.in_flight = Some((write, hash));
        Ok(())
    }

    /// Ends the body. `check` sees the digests before anything is synced,
    /// so a body that fails it costs no fsync; then the blob is made
    /// durable and waits for its metadata commit. A small body comes back
    /// inline, never having touched the disk.
    pub async fn finish(
        mut self,
        check: impl FnOnce(&Written) -> S3Result<()>,
    ) -> S3Result<Received> {
        if !self.armed && self.inline_max.is_some_and(|max| self.batch_len <= max) {
            self.seal_small();
            let (_, mut hashes) = self.settle().await?;
            let mut data = BytesMut::with_capacity(self.batch_len);
            for piece in std::mem::take(&mut self.batch) {
                hashes.update(&piece);
                data.extend_from_slice(&piece);
            }
            let written = hashes.finish(data.len() as u64);
            check(&written)?;
            return Ok(Received::Inline(data.freeze(), written));
        }
        self.flush().await?;
        let (sink, hashes) = self.settle().await?;
        let written = hashes.finish(self.len);
        check(&written)?;
        // An empty body with inlining off still gets its (empty) blob.
        let sink = self.sink_or_create(sink).await?;
        spawn_blocking(move || sink.finish())
            .await
            .map_err(S3Error::internal)?
            .map_err(|e| blob_error("syncing blob", e))?;
        self.armed = false;
        Ok(Received::Blob(PendingBlob {
            id: self.id,
            written,
            store: Some(Arc::clone(&self.store)),
        }))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.armed {
            discard(&self.store, self.id);
        }
    }
}

fn blob_error(what: &str, e: io::Error) -> S3Error {
    S3Error::internal(format!("{what}: {e}"))
}

/// Blob work that outlives the request that began it (detached commits,
/// discards of bodies never committed), counted across the process so
/// that a clean stop can wait for it before it tidies up.
static AFTERMATH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One piece of such work, counted while it lives.
pub struct Aftermath(());

impl Aftermath {
    pub fn begin() -> Aftermath {
        AFTERMATH.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Aftermath(())
    }

    /// Waits until no such work is left, for at most `limit`; whether
    /// none is.
    pub async fn settled(limit: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while AFTERMATH.load(std::sync::atomic::Ordering::Acquire) > 0 {
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        true
    }
}

impl Drop for Aftermath {
    fn drop(&mut self) {
        AFTERMATH.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Discards an uncommitted blob, off the async workers when called from one
/// (a multi-GiB unlink takes a while).
fn discard(store: &Arc<dyn BlobStore>, id: BlobId) {
    let store = Arc::clone(store);
    let pending = Aftermath::begin();
    let unlink = move || {
        store.discard(id);
        drop(pending);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(unlink)),
        Err(_) => unlink(),
    }
}

/// A durable blob that no metadata refers to yet. Dropping it without
/// [`PendingBlob::committed`] or [`PendingBlob::outcome_unknown`] discards
/// it.
pub struct PendingBlob {
    pub id: BlobId,
    pub written: Written,
    store: Option<Arc<dyn BlobStore>>,
}

impl PendingBlob {
    /// Called once the metadata referring to the blob has committed.
    pub async fn committed(mut self) {
        if let Some(store) = self.store.take() {
            let id = self.id;
            let published = spawn_blocking(move || store.publish(id)).await;
            if let Ok(Err(e)) = published {
                // The blob is live and stays readable where it is; start-up
                // recovery retries the move.
                tracing::warn!(blob = %id_hex(id), error = %e, "publishing committed blob");
            }
        }
    }

    /// Called when a commit failed in a way that leaves its outcome unknown
    /// (it may be durable): the blob stays for start-up recovery, which
    /// keeps it exactly if the metadata refers to it.
    pub fn outcome_unknown(mut self) {
        self.store = None;
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            discard(&store, self.id);
        }
    }
}
