//! The store: a metadata engine ([`meta::MetaStore`]) and a blob store
//! ([`blob::BlobStore`]), and the few flows that need both: receiving a
//! body, committing it, streaming an object back, start-up recovery and the
//! collector. Operations above this module see only the two interfaces and
//! these flows; no engine type, file path or process-local lock.
//!
//! Invariant (crash safety): a blob is durable before any record refers to
//! it, every metadata change is atomic, and a blob whose last reference goes
//! away is recorded as garbage in that same change. So after a crash at any
//! instant every acknowledged write is readable, no record refers to a
//! missing blob, and orphans are exactly the unpublished blobs that no
//! record refers to.
//!
//! Readers and the collector meet only in the metadata engine: a freed body
//! is unlinked a grace period after it was freed, and a reader that is
//! still reading after half that period takes a lease on what it reads (see
//! [`read`]). Nothing depends on reader and collector sharing a process.

pub mod blob;
pub mod codec;
pub mod ingest;
pub mod local;
pub mod meta;
pub mod model;
pub mod pg;
pub mod read;
pub mod redb;
pub mod rules;
pub mod scrub;
#[cfg(test)]
mod sim;
pub mod sweep;
pub mod txn;
pub mod verify;
pub mod write;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::checksum::{Algorithm, ChecksumType};
use crate::error::{Code, S3Error, S3Result};
use blob::BlobStore;
use meta::MetaStore;
use model::*;
use write::{BlobWriter, Received};

/// Bodies up to this size are kept inline in the metadata engine: a PUT of
/// one costs a batched metadata commit and no file, no rename and no
/// directory sync. Measured (`cargo bench --bench store`), an inline PUT
/// goes at 4-5 times the rate of one that makes a file; 16 KiB keeps the
/// metadata file lean (MinIO inlines up to 128 KiB, Garage 3 KiB) while
/// covering thumbnails, manifests and log lines.
pub const INLINE_MAX: usize = 16 << 10;

/// Garbage rows handled per collector pass.
pub const GC_BATCH: usize = 1000;

#[derive(Debug)]
pub struct Store {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// How long after being freed a body may be reclaimed.
    pub grace_ms: i64,
    /// Free space kept for metadata commits and deletes: writes that would
    /// go below it are refused ([`Store::check_space`]).
    floor: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens the embedded store in `data_dir` (redb + local blob files) and
    /// recovers from any crash.
    pub async fn open_embedded(data_dir: &Path, grace_ms: i64) -> Result<Store, String> {
        let dir = data_dir.to_path_buf();
        let (meta, blobs) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let blobs =
                local::LocalBlobs::open(&dir).map_err(|e| format!("blob directories: {e}"))?;
            let meta = redb::RedbMeta::open(&dir, grace_ms)?;
            Ok::<_, String>((meta, blobs))
        })
        .await
        .map_err(|e| e.to_string())??;
        let store = Store {
            meta: Arc::new(meta),
            blobs: Arc::new(blobs),
            grace_ms,
            floor: Default::default(),
        };
        store.recover().await.map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// Opens a store shared by several nodes: metadata in PostgreSQL at
    /// `url`, blobs in `data_dir` (a filesystem every node mounts), this
    /// node's temporary files under `tmp/<node>/`, so its start-up
    /// recovery never touches another node's uploads in flight.
    pub async fn open_shared(
        data_dir: &Path,
        url: &str,
        node: &str,
        grace_ms: i64,
    ) -> Result<Store, String> {
        if node.is_empty() || node.contains(['/', '\\']) || node.starts_with('.') {
            return Err(format!("node_id {node:?} must be a plain name"));
        }
        let meta = pg::PgMeta::connect(url, grace_ms, node).await?;
        let (dir, node) = (data_dir.to_path_buf(), node.to_owned());
        let blobs = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            local::LocalBlobs::open_node(&dir, &node).map_err(|e| format!("blob directories: {e}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        let store = Store {
            meta: Arc::new(meta),
            blobs: Arc::new(blobs),
            grace_ms,
            floor: Default::default(),
        };
        store.recover().await.map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// Start-up recovery: an unpublished blob is either live (its commit
    /// landed, a crash came before its publish: publish it) or the remains
    /// of a write that was never acknowledged (discard it).
    async fn recover(&self) -> S3Result<()> {
        let (moved, removed) = self.settle().await?;
        if moved + removed > 0 {
            tracing::info!(
                moved,
                removed,
                "recovered blobs left unpublished by a crash"
            );
        }
        Ok(())
    }

    /// After a clean stop cut requests short (the shutdown grace ran
    /// out): waits a little for their commits and discards to finish,
    /// then settles what they left as start-up recovery would, so the
    /// next start finds nothing to recover.
    pub async fn tidy_after_stop(&self) -> S3Result<()> {
        if !write::Aftermath::settled(std::time::Duration::from_secs(10)).await {
            tracing::warn!("commits still running at the stop: the next start recovers them");
            return Ok(());
        }
        let (moved, removed) = self.settle().await?;
        if moved + removed > 0 {
            tracing::info!(
                published = moved,
                removed,
                "temporary files of requests cut by the stop settled"
            );
        }
        Ok(())
    }

    /// Publishes each of this node's unpublished blobs that the metadata
    /// refers to and discards the rest; how many of each. Only when no
    /// write is in flight.
    async fn settle(&self) -> S3Result<(usize, usize)> {
        let blobs = Arc::clone(&self.blobs);
        let ids = tokio::task::spawn_blocking(move || blobs.unpublished())
            .await
            .map_err(crate::error::S3Error::internal)??;
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let live = self.meta.live_blobs(ids.clone()).await?;
        let blobs = Arc::clone(&self.blobs);
        tokio::task::spawn_blocking(move || -> S3Result<(usize, usize)> {
            let live: std::collections::HashSet<BlobId> = live.into_iter().collect();
            for id in &ids {
                if live.contains(id) {
                    blobs.publish(*id)?;
                } else {
                    blobs.discard(*id);
                }
            }
            Ok((live.len(), ids.len() - live.len()))
        })
        .await
        .map_err(crate::error::S3Error::internal)?
    }

    /// Refuses a write of `incoming` more bytes when it would leave less
    /// than the floor free (507: the condition rarely clears within an
    /// SDK's retries, so clients should fail fast and say why). Deletes,
    /// aborts and the collector never ask.
    pub fn check_space(&self, incoming: u64) -> S3Result<()> {
        let floor = self.floor();
        if floor == 0 {
            return Ok(());
        }
        let free = match self.blobs.free_bytes() {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!("cannot read free space: {e}");
                return Ok(());
            }
        };
        if free < floor.saturating_add(incoming) {
            return Err(S3Error::with_message(
                Code::InsufficientStorage,
                format!(
                    "The server's disk has {free} bytes free and keeps {} for its own records (limits.min_free_bytes); nothing was stored. Deletes still work, and writes will again once space is freed.",
                    floor
                ),
            ));
        }
        Ok(())
    }

    /// The free space writes never take (0: no check); settings reloads
    /// change it while the server runs.
    pub fn floor(&self) -> u64 {
        self.floor.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_floor(&self, bytes: u64) {
        self.floor
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// A writer for a body; `inline` lets a small one stay in memory.
    pub fn writer(&self, algorithm: Algorithm, inline: bool) -> BlobWriter {
        BlobWriter::new(&self.blobs, algorithm, inline.then_some(INLINE_MAX))
    }

    /// Commits a received PutObject body as the object at `key`.
    pub async fn put_object(
        &self,
        (bucket, key): (&str, &str),
        received: Received,
        (meta, tags, acl): (ObjectMeta, Tags, Acl),
        condition: WriteCondition,
    ) -> S3Result<ObjectHead> {
        let written = received.written().clone();
        let mut head = ObjectHead {
            size: written.len,
            etag: hex(&written.md5),
            last_modified_ms: 0,
            meta,
            upload_id: None,
            checksum: Some(written.checksum.clone()),
            checksum_type: ChecksumType::FullObject,
            body: Body::Inline,
            tags,
            acl,
        };
        match received {
            Received::Inline(bytes, _) => {
                self.meta
                    .put_object(bucket, key, head, Some(bytes), condition)
                    .await
            }
            Received::Blob(blob) => {
                head.body = Body::Blob(Segment {
                    blob: blob.id,
                    len: written.len,
                    md5: written.md5,
                    checksum: None,
                });
                let (meta, bucket, key) =
                    (Arc::clone(&self.meta), bucket.to_owned(), key.to_owned());
                commit_detached(blob, async move {
                    meta.put_object(&bucket, &key, head, None, condition).await
                })
                .await
            }
        }
    }

    /// Commits a received part.
    pub async fn put_part(
        &self,
        upload: (&str, &str, &str),
        part_number: u32,
        received: Received,
    ) -> S3Result<PartRecord> {
        let Received::Blob(blob) = received else {
            return Err(crate::error::S3Error::internal("a part is always a blob"));
        };
        let part = PartRecord {
            blob: blob.id,
            size: blob.written.len,
            md5: blob.written.md5,
            last_modified_ms: crate::time::now_ms(),
            checksum: Some(blob.written.checksum.clone()),
            crc64nvme: Some(blob.written.crc64nvme.clone()),
        };
        let meta = Arc::clone(&self.meta);
        let (bucket, key, id) = (
            upload.0.to_owned(),
            upload.1.to_owned(),
            upload.2.to_owned(),
        );
        commit_detached(blob, async move {
            let stored = meta.put_part(&bucket, &key, &id, part_number, part.clone());
            stored.await.map(|()| part)
        })
        .await
    }

    /// Streams the bytes `[start, end)` of an object whose head was read
    /// at `read_at` or later (what it names is safe to read for half the
    /// grace period from then; see [`read`]).
    pub fn stream(
        self: &Arc<Self>,
        (bucket, key, head): (&str, &str, &ObjectHead),
        inline: Option<Bytes>,
        range: (u64, u64),
        read_at: std::time::Instant,
    ) -> tokio::sync::mpsc::Receiver<std::io::Result<Bytes>> {
        let full_object = head.checksum_type == crate::checksum::ChecksumType::FullObject;
        let named = read::Named {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            crc: head.checksum.clone().filter(|_| full_object),
        };
        let body = (head.body.clone(), named);
        read::spawn(Arc::clone(self), body, inline, range, read_at)
    }

    /// Unlinks one batch of due garbage; returns how many blobs went and
    /// whether more is due.
    pub async fn collect_garbage(&self) -> S3Result<(usize, bool)> {
        let now = crate::time::now_ms();
        let DueGarbage { blobs: due, more } = self.meta.due_garbage(now, GC_BATCH).await?;
        if due.is_empty() {
            return Ok((0, more));
        }
        let blobs = Arc::clone(&self.blobs);
        let ids: Vec<BlobId> = due.iter().map(|g| g.blob).collect();
        let removed = tokio::task::spawn_blocking(move || blobs.remove(&ids))
            .await
            .map_err(crate::error::S3Error::internal)??;
        let removed: std::collections::HashSet<BlobId> = removed.into_iter().collect();
        let done: Vec<Garbage> = due
            .into_iter()
            .filter(|g| removed.contains(&g.blob))
            .collect();
        let n = done.len();
        self.meta.forget_garbage(done).await?;
        Ok((n, more))
    }
}

/// Runs `commit`, a change that makes `blob` live, then publishes the blob
/// if the commit landed, discards it if the change was refused, and leaves
/// it for start-up recovery if the outcome is unknown (an internal error
/// may have struck the commit itself). It runs as a task of its own: a
/// request cancelled mid-commit (its client gone) must not drop the blob
/// while the commit that refers to it may still land.
async fn commit_detached<T: Send + 'static>(
    blob: write::PendingBlob,
    commit: impl std::future::Future<Output = S3Result<T>> + Send + 'static,
) -> S3Result<T> {
    let pending = write::Aftermath::begin();
    tokio::spawn(async move {
        let _pending = pending;
        let result = commit.await;
        match &result {
            Ok(_) => blob.committed().await,
            Err(e) if e.code == Code::InternalError => blob.outcome_unknown(),
            Err(_) => drop(blob),
        }
        result
    })
    .await
    .map_err(crate::error::S3Error::internal)?
}
