//! Reference counts and garbage, the pieces every change that makes or
//! drops a reference shares. A blob is counted once for each part row,
//! single-blob object head and manifest segment that names it; a manifest
//! once for each object head that names it. A count that reaches zero
//! stays, at zero, until the collector claims it, so a reader's lease can
//! tell "freed but still there" from "gone"; the change that drops the last
//! reference records the body as garbage, due a grace period later.

use crate::store::model::*;
use crate::store::txn::{Counted, Done, Fault, Freed, Reads, Tally, Writes};

/// A missing or zero count is a fault, never taken for the last reference:
/// freeing what something else may still use would lose data.
fn missing(of: Counted, id: u128) -> Fault {
    let what = match of {
        Counted::Blob => "blob",
        Counted::Manifest => "manifest",
    };
    Fault::new(format!("{what} {} has no reference count", id_hex(id)))
}

/// Adds `delta` to a live count; returns the new count.
pub async fn recount<W: Writes>(txn: &mut W, of: Counted, id: u128, delta: i32) -> Done<u32> {
    let n = txn.add_refs(of, id, delta).await?;
    n.ok_or_else(|| missing(of, id))
}

pub async fn add_garbage<W: Writes>(txn: &mut W, due_ms: i64, id: u128, freed: Freed) -> Done<()> {
    txn.add_garbage(due_ms, id, freed).await?;
    txn.tally(Tally::Garbage(1)).await
}

/// Drops one reference to a blob; the last sends it to the collector (and
/// returns `true`).
pub async fn decref_blob<W: Writes>(txn: &mut W, id: BlobId, due_ms: i64) -> Done<bool> {
    let last = recount(txn, Counted::Blob, id, -1).await? == 0;
    if last {
        add_garbage(txn, due_ms, id, Freed::Blob).await?;
    }
    Ok(last)
}

/// Counts one more reference to what a body already refers to (a copy).
pub async fn incref_body<W: Writes>(txn: &mut W, body: &Body) -> Done<()> {
    match body {
        Body::Inline => {}
        Body::Blob(seg) => {
            recount(txn, Counted::Blob, seg.blob, 1).await?;
        }
        Body::Parts { manifest, .. } => {
            recount(txn, Counted::Manifest, *manifest, 1).await?;
        }
    }
    Ok(())
}

/// Drops the references an object's body holds (an inline body goes with
/// its head).
pub async fn free_body<W: Writes>(txn: &mut W, body: &Body, due_ms: i64) -> Done<()> {
    match body {
        Body::Inline => {}
        Body::Blob(seg) => {
            decref_blob(txn, seg.blob, due_ms).await?;
        }
        Body::Parts { manifest, .. } => {
            if recount(txn, Counted::Manifest, *manifest, -1).await? == 0 {
                add_garbage(txn, due_ms, *manifest, Freed::Manifest).await?;
            }
        }
    }
    Ok(())
}

/// Writes `head` at `(bucket, key)`, whose current head is `old`: the old
/// body's references are dropped first, so a copy onto itself keeps its
/// blobs (the copy counted its own reference already).
pub async fn replace_head<W: Writes>(
    txn: &mut W,
    (bucket, key): (&str, &str),
    head: &ObjectHead,
    old: Option<&ObjectHead>,
    inline: Option<&[u8]>,
    due_ms: i64,
) -> Done<()> {
    if let Some(old) = old {
        free_body(txn, &old.body, due_ms).await?;
        if old.body == Body::Inline && inline.is_none() {
            txn.remove_inline(bucket, key).await?;
        }
    }
    let was = old.map_or(0, |o| o.size as i64);
    txn.tally(Tally::Objects {
        bucket,
        objects: i64::from(old.is_none()),
        bytes: head.size as i64 - was,
    })
    .await?;
    txn.put_head((bucket, key), head, inline).await
}

/// Removes a head and drops its body's references.
pub async fn remove_object<W: Writes>(
    txn: &mut W,
    (bucket, key): (&str, &str),
    old: &ObjectHead,
    due_ms: i64,
) -> Done<()> {
    txn.remove_head((bucket, key), old.body == Body::Inline)
        .await?;
    txn.tally(Tally::Objects {
        bucket,
        objects: -1,
        bytes: -(old.size as i64),
    })
    .await?;
    free_body(txn, &old.body, due_ms).await
}

/// An upload about to be dropped, as its check read it.
#[derive(Debug)]
pub struct Dropping {
    pub bucket: String,
    pub key: String,
    pub id: String,
    pub drops: Drops,
}

/// What dropping an upload frees.
#[derive(Debug)]
pub enum Drops {
    /// Every part (an abort), as read.
    All(Vec<PartRecord>),
    /// A completion: only `freed` lose their reference (the others' move
    /// to the object), and the parts held `bytes` in all.
    Completed { freed: Vec<BlobId>, bytes: u64 },
}

impl Dropping {
    /// Reads what aborting an upload frees; `None` when it is gone.
    pub async fn read<R: Reads>(
        txn: &mut R,
        (bucket, key, id): (&str, &str, &str),
    ) -> Done<Option<Dropping>> {
        if txn.upload(bucket, key, id).await?.is_none() {
            return Ok(None);
        }
        let parts = txn.parts(id, 0, usize::MAX).await?;
        Ok(Some(Dropping {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            id: id.to_owned(),
            drops: Drops::All(parts.into_iter().map(|(_, p)| p).collect()),
        }))
    }

    /// Removes the upload and its parts, freeing what it drops; returns the
    /// bytes its parts held.
    pub async fn apply<W: Writes>(&self, txn: &mut W, due_ms: i64) -> Done<u64> {
        txn.remove_upload(&self.bucket, &self.key, &self.id).await?;
        txn.remove_parts(&self.id).await?;
        let bytes = match &self.drops {
            Drops::All(parts) => {
                for part in parts {
                    decref_blob(txn, part.blob, due_ms).await?;
                }
                parts.iter().map(|p| p.size).sum()
            }
            Drops::Completed { freed, bytes } => {
                for blob in freed {
                    decref_blob(txn, *blob, due_ms).await?;
                }
                *bytes
            }
        };
        txn.tally(Tally::Uploads(-1)).await?;
        let delta = -(bytes as i64);
        let bucket = &self.bucket;
        txn.tally(Tally::UploadBytes { bucket, delta }).await?;
        Ok(bytes)
    }
}
