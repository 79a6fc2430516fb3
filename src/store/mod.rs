//! The store: metadata in redb, bytes in blob files. Every method is
//! synchronous and meant to run on a blocking thread ([`Store::run`]); no
//! transaction outlives a call.
//!
//! Invariant (crash safety): a blob's bytes are durable before any record
//! refers to it, every metadata change is one redb transaction, and a blob
//! whose last reference goes away is recorded in `GARBAGE` in that same
//! transaction. So after a crash at any instant every acknowledged write is
//! readable, no record refers to a missing blob, and orphans are exactly the
//! unreferenced files in `tmp/` (see [`blobs`]).

pub mod blobs;
pub mod gc;
mod list;
pub mod multipart;
pub mod tables;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};

use crate::cors::CorsRule;
use crate::error::{Code, S3Error, S3Result};
use crate::time::now_ms;
use blobs::{BlobDir, PendingBlob};
use tables::*;

pub use list::{ListPage, ListQuery, UploadListPage};
pub use multipart::{CompletedPart, Completion};

#[derive(Debug)]
pub struct Store {
    db: Database,
    pub blobs: Arc<BlobDir>,
}

/// A precondition on the object a write replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    None,
    /// `If-None-Match: *`: the key must not exist.
    IfNoneMatch,
    /// `If-Match: "etag"`: the key must exist with this ETag (unquoted).
    IfMatch(String),
}

impl WriteCondition {
    /// Checks the condition against the current object. `Err` is the error
    /// for a request that sees this state before it starts.
    pub fn check(&self, current: Option<&ObjectRecord>) -> S3Result<()> {
        match (self, current) {
            (WriteCondition::None, _) => Ok(()),
            (WriteCondition::IfNoneMatch, None) => Ok(()),
            (WriteCondition::IfNoneMatch, Some(_)) => Err(Code::PreconditionFailed.into()),
            (WriteCondition::IfMatch(_), None) => Err(Code::NoSuchKey.into()),
            (WriteCondition::IfMatch(etag), Some(obj)) if etag_matches(etag, &obj.etag) => Ok(()),
            (WriteCondition::IfMatch(_), Some(_)) => Err(Code::PreconditionFailed.into()),
        }
    }

    /// At commit, a condition that held when the request began but no
    /// longer does means another writer won the race: S3 answers 409.
    fn check_at_commit(&self, current: Option<&ObjectRecord>) -> S3Result<()> {
        self.check(current)
            .map_err(|_| S3Error::new(Code::ConditionalRequestConflict))
    }
}

/// Compares an `If-Match`-style list (`"a", "b"` or `*`) with an ETag.
pub fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*"
            || candidate.trim_start_matches("W/").trim_matches('"') == etag.trim_matches('"')
    })
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and recovers from any crash.
    pub fn open(data_dir: &Path) -> Result<Store, String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let blobs = BlobDir::open(data_dir).map_err(|e| format!("blob directories: {e}"))?;
        let db_path = data_dir.join("meta.redb");
        let db = Database::create(&db_path)
            .map_err(|e| format!("cannot open {}: {e}", db_path.display()))?;
        let store = Store {
            db,
            blobs: Arc::new(blobs),
        };
        store.init_tables().map_err(|e| e.to_string())?;
        store.recover().map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// Runs `f` on a blocking thread.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> S3Result<T>
    where
        F: FnOnce(&Store) -> S3Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(S3Error::internal)?
    }

    fn init_tables(&self) -> S3Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(BUCKETS)?;
        txn.open_table(BUCKET_CORS)?;
        txn.open_table(OBJECTS)?;
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.open_table(BLOBS)?;
        txn.open_table(GARBAGE)?;
        txn.commit()?;
        Ok(())
    }

    /// Start-up recovery: a file in `tmp/` is either a committed blob whose
    /// move was cut short (finish the move) or the remains of a write that
    /// was never acknowledged (delete it).
    fn recover(&self) -> S3Result<()> {
        let (ids, strays) = self.blobs.tmp_entries()?;
        let txn = self.db.begin_read()?;
        let live = txn.open_table(BLOBS)?;
        let (mut moved, mut removed) = (0, 0);
        for id in ids {
            if live.get(id)?.is_some() {
                self.blobs.publish(id)?;
                moved += 1;
            } else {
                std::fs::remove_file(self.blobs.tmp_path(id))?;
                removed += 1;
            }
        }
        for path in strays {
            std::fs::remove_file(path)?;
            removed += 1;
        }
        if moved + removed > 0 {
            tracing::info!(moved, removed, "recovered blobs left in tmp/ by a crash");
        }
        Ok(())
    }

    fn write_txn(&self) -> S3Result<WriteTransaction> {
        Ok(self.db.begin_write()?)
    }

    // ---- buckets ----

    pub fn create_bucket(&self, name: &str, owner: &str) -> S3Result<()> {
        let txn = self.write_txn()?;
        {
            let mut buckets = txn.open_table(BUCKETS)?;
            if let Some(existing) = buckets.get(name)? {
                let existing: BucketRecord = decode(existing.value())?;
                return Err(if existing.owner == owner {
                    Code::BucketAlreadyOwnedByYou.into()
                } else {
                    Code::BucketAlreadyExists.into()
                });
            }
            let record = BucketRecord {
                created_ms: now_ms(),
                owner: owner.to_owned(),
            };
            buckets.insert(name, encode(&record).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn bucket(&self, name: &str) -> S3Result<BucketRecord> {
        let txn = self.db.begin_read()?;
        let buckets = txn.open_table(BUCKETS)?;
        let record = buckets.get(name)?.ok_or(Code::NoSuchBucket)?;
        decode(record.value())
    }

    pub fn list_buckets(&self) -> S3Result<Vec<(String, BucketRecord)>> {
        let txn = self.db.begin_read()?;
        let buckets = txn.open_table(BUCKETS)?;
        let mut out = Vec::new();
        for row in buckets.iter()? {
            let (name, record) = row?;
            out.push((name.value().to_owned(), decode(record.value())?));
        }
        Ok(out)
    }

    /// Deletes an empty bucket. Incomplete multipart uploads do not keep a
    /// bucket alive; they are aborted with it and their parts freed.
    pub fn delete_bucket(&self, name: &str) -> S3Result<()> {
        let txn = self.write_txn()?;
        {
            let mut buckets = txn.open_table(BUCKETS)?;
            if buckets.get(name)?.is_none() {
                return Err(Code::NoSuchBucket.into());
            }
            let objects = txn.open_table(OBJECTS)?;
            if objects
                .range((name, "")..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == name)
            {
                return Err(Code::BucketNotEmpty.into());
            }
            drop(objects);
            let uploads: Vec<(String, String)> = {
                let table = txn.open_table(UPLOADS)?;
                let mut v = Vec::new();
                for row in table.range((name, "", "")..)? {
                    let (k, _) = row?;
                    let (b, key, id) = k.value();
                    if b != name {
                        break;
                    }
                    v.push((key.to_owned(), id.to_owned()));
                }
                v
            };
            let now = now_ms();
            for (key, id) in uploads {
                multipart::drop_upload(&txn, name, &key, &id, None, now)?;
            }
            buckets.remove(name)?;
            txn.open_table(BUCKET_CORS)?.remove(name)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The bucket's own CORS rules, if it has any.
    pub fn bucket_cors(&self, name: &str) -> S3Result<Option<Vec<CorsRule>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BUCKET_CORS)?;
        table.get(name)?.map(|v| decode(v.value())).transpose()
    }

    /// Sets (`Some`) or deletes (`None`) a bucket's CORS rules.
    pub fn set_bucket_cors(&self, name: &str, rules: Option<&[CorsRule]>) -> S3Result<()> {
        let txn = self.write_txn()?;
        {
            if txn.open_table(BUCKETS)?.get(name)?.is_none() {
                return Err(Code::NoSuchBucket.into());
            }
            let mut table = txn.open_table(BUCKET_CORS)?;
            match rules {
                Some(rules) => {
                    table.insert(name, encode(&rules.to_vec()).as_slice())?;
                }
                None => {
                    table.remove(name)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    // ---- objects ----

    pub fn object(&self, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
        let txn = self.db.begin_read()?;
        if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
            return Err(Code::NoSuchBucket.into());
        }
        let objects = txn.open_table(OBJECTS)?;
        let record = objects.get((bucket, key))?.ok_or(Code::NoSuchKey)?;
        decode(record.value())
    }

    /// The object at `key` with its blobs pinned against the collector
    /// until the guard drops (see [`blobs::BlobDir::unpinned`]).
    pub fn object_for_read(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<(ObjectRecord, blobs::PinGuard)> {
        let _gate = self.blobs.read_gate();
        let record = self.object(bucket, key)?;
        let pin = self.blobs.pin(record.segments.iter().map(|s| s.blob));
        Ok((record, pin))
    }

    /// The object at `key`, if any; `NoSuchBucket` if the bucket is gone.
    pub fn object_opt(&self, bucket: &str, key: &str) -> S3Result<Option<ObjectRecord>> {
        match self.object(bucket, key) {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.code == Code::NoSuchKey => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes `blob` the single segment of a new object at `key`.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        mut record: ObjectRecord,
        blob: PendingBlob,
        condition: &WriteCondition,
    ) -> S3Result<ObjectRecord> {
        let txn = self.write_txn()?;
        {
            check_bucket(&txn, bucket)?;
            let now = now_ms();
            record.last_modified_ms = now;
            let mut blobs = txn.open_table(BLOBS)?;
            blobs.insert(blob.id, 1)?;
            drop(blobs);
            replace_object(&txn, bucket, key, &record, condition, now)?;
        }
        commit_with_blob(txn, blob)?;
        Ok(record)
    }

    /// Copies an object by reference: the new object shares the source's
    /// immutable blobs, so no byte is copied. `meta` replaces the source's
    /// metadata when given (`x-amz-metadata-directive: REPLACE`).
    pub fn copy_object(
        &self,
        src: (&str, &str),
        dst: (&str, &str),
        meta: Option<ObjectMeta>,
        source_check: &dyn Fn(&ObjectRecord) -> S3Result<()>,
    ) -> S3Result<ObjectRecord> {
        let txn = self.write_txn()?;
        let record = {
            check_bucket(&txn, src.0)?;
            check_bucket(&txn, dst.0)?;
            let mut source: ObjectRecord = {
                let objects = txn.open_table(OBJECTS)?;
                let raw = objects.get(src)?.ok_or(Code::NoSuchKey)?;
                decode(raw.value())?
            };
            source_check(&source)?;
            let now = now_ms();
            let mut blobs = txn.open_table(BLOBS)?;
            for seg in &source.segments {
                incref(&mut blobs, seg.blob)?;
            }
            drop(blobs);
            if let Some(meta) = meta {
                source.meta = meta;
            }
            // A copy was not completed from any upload: a Complete retried
            // against the copy's key must not replay.
            source.upload_id = None;
            source.last_modified_ms = now;
            replace_object(&txn, dst.0, dst.1, &source, &WriteCondition::None, now)?;
            source
        };
        txn.commit()?;
        Ok(record)
    }

    /// Deletes `key`; a missing key is not an error (S3 answers 204).
    pub fn delete_object(&self, bucket: &str, key: &str) -> S3Result<()> {
        self.delete_objects(bucket, &[key.to_owned()])
    }

    /// Deletes many keys in one transaction; missing keys are skipped.
    pub fn delete_objects(&self, bucket: &str, keys: &[String]) -> S3Result<()> {
        let txn = self.write_txn()?;
        {
            check_bucket(&txn, bucket)?;
            let now = now_ms();
            let mut objects = txn.open_table(OBJECTS)?;
            let mut blobs = txn.open_table(BLOBS)?;
            let mut garbage = txn.open_table(GARBAGE)?;
            for key in keys {
                if let Some(old) = objects.remove((bucket, key.as_str()))? {
                    let old: ObjectRecord = decode(old.value())?;
                    for seg in &old.segments {
                        decref(&mut blobs, &mut garbage, seg.blob, now)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// Lower-case hex, as in ETags.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Commits a transaction that makes `blob` live, then publishes the blob.
/// A failed commit may still have reached the disk, so the file is left
/// for start-up recovery to judge rather than deleted.
fn commit_with_blob(txn: WriteTransaction, blob: PendingBlob) -> S3Result<()> {
    match txn.commit() {
        Ok(()) => {
            blob.committed();
            Ok(())
        }
        Err(e) => {
            blob.outcome_unknown();
            Err(e.into())
        }
    }
}

fn check_bucket(txn: &WriteTransaction, bucket: &str) -> S3Result<()> {
    if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
        return Err(Code::NoSuchBucket.into());
    }
    Ok(())
}

/// Writes `record` at `key` after checking `condition`, freeing the blobs of
/// the object it replaces. The caller has already counted the new record's
/// references.
fn replace_object(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    condition: &WriteCondition,
    now: i64,
) -> S3Result<()> {
    let mut objects = txn.open_table(OBJECTS)?;
    let old: Option<ObjectRecord> = match objects.get((bucket, key))? {
        Some(raw) => Some(decode(raw.value())?),
        None => None,
    };
    condition.check_at_commit(old.as_ref())?;
    objects.insert((bucket, key), encode(record).as_slice())?;
    if let Some(old) = old {
        let mut blobs = txn.open_table(BLOBS)?;
        let mut garbage = txn.open_table(GARBAGE)?;
        for seg in &old.segments {
            decref(&mut blobs, &mut garbage, seg.blob, now)?;
        }
    }
    Ok(())
}

fn incref(blobs: &mut Table<u128, u32>, id: u128) -> S3Result<()> {
    let n = blobs.get(id)?.map(|g| g.value()).ok_or_else(|| {
        S3Error::internal(format!("blob {} has no reference count", blobs::id_hex(id)))
    })?;
    blobs.insert(id, n + 1)?;
    Ok(())
}

/// Drops one reference; the last one sends the blob to the collector.
fn decref(
    blobs: &mut Table<u128, u32>,
    garbage: &mut Table<u128, i64>,
    id: u128,
    now: i64,
) -> S3Result<()> {
    let n = blobs.get(id)?.map(|g| g.value()).unwrap_or(0);
    if n > 1 {
        blobs.insert(id, n - 1)?;
    } else {
        blobs.remove(id)?;
        garbage.insert(id, now)?;
    }
    Ok(())
}
