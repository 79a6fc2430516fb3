//! The embedded metadata engine: redb in `<data_dir>/meta.redb`.
//!
//! Reads run in short read transactions on the blocking pool. Every change
//! goes through the group-commit writer ([`batch`]): concurrent changes
//! share one write transaction and one fsync. Each change below is written
//! check-then-write, so a refusal leaves nothing behind in its batch.
//!
//! Reference counts: a blob is counted once for each part row, single-blob
//! object head and manifest segment that names it; a manifest once for each
//! object head that names it. A count that reaches zero stays, at zero,
//! until the collector claims it, so a reader's lease can tell "freed but
//! still there" from "gone".

mod batch;
pub mod cell;
mod list;
#[cfg(test)]
pub mod sim;
pub mod tables;
pub mod verify;
mod writes;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableHandle};

use super::meta::MetaStore;
use super::model::*;
use crate::cors::CorsRule;
use crate::error::{Code, S3Error, S3Result};
use crate::lifecycle::LifecycleRule;
use crate::time::now_ms;
use batch::Writer;
use tables::*;

/// Maps any redb failure to the S3 error clients see (and the log keeps).
pub(crate) fn db_error(e: impl std::fmt::Display) -> S3Error {
    S3Error::internal(format!("metadata store: {e}"))
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for S3Error {
            fn from(e: $t) -> Self {
                db_error(e)
            }
        }
    )*};
}
redb_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// redb's own page cache. Its default (1 GiB) grows the process by every
/// page read or written, inline bodies included; the kernel's page cache
/// serves the file as well, so a small cache costs little speed and keeps
/// the server's memory flat.
const CACHE_BYTES: usize = 16 << 20;

#[derive(Debug)]
pub struct RedbMeta {
    db: Arc<cell::DbCell>,
    writer: Writer,
    /// How long a freed blob stays before the collector may unlink it.
    grace_ms: i64,
}

impl RedbMeta {
    /// Opens (or creates) `meta.redb` in `data_dir`, migrating an older
    /// format.
    pub fn open(data_dir: &Path, grace_ms: i64) -> Result<RedbMeta, String> {
        let path = data_dir.join("meta.redb");
        let opener: cell::Opener = Box::new(move || {
            let head =
                read_head(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if !head.is_empty() && never_created(&head) {
                tracing::warn!(
                    path = %path.display(),
                    "the metadata file's creation never completed (a crash at first start); creating it again"
                );
                std::fs::remove_file(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))
        });
        RedbMeta::open_with(opener, grace_ms, cell::exit_on_fatal())
    }

    /// Opens the database `open` gives (again after an I/O error), calling
    /// `on_fatal` when it cannot be reopened.
    pub fn open_with(
        open: cell::Opener,
        grace_ms: i64,
        on_fatal: cell::OnFatal,
    ) -> Result<RedbMeta, String> {
        let db = open()?;
        writes::init(&db, grace_ms).map_err(|e| format!("metadata store: {e}"))?;
        let db = Arc::new(cell::DbCell::new(db, open, on_fatal));
        let writer = Writer::start(Arc::clone(&db)).map_err(|e| e.to_string())?;
        Ok(RedbMeta {
            db,
            writer,
            grace_ms,
        })
    }

    async fn read<R, F>(&self, f: F) -> S3Result<R>
    where
        F: FnOnce(&ReadTransaction) -> S3Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let cell = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&cell.get()?.begin_read()?))
            .await
            .map_err(S3Error::internal)?
    }
}

/// The first bytes of a database file; empty when there is none.
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    match std::fs::File::open(path) {
        Ok(f) => {
            let mut head = Vec::new();
            f.take(16).read_to_end(&mut head)?;
            Ok(head)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Whether a database file's first bytes show a creation that never
/// completed. redb writes its magic number at offset 0 last, once the rest
/// of a new file is durable; a crash before leaves zeros there, a file no
/// acknowledged write can have reached, which it refuses to open.
pub fn never_created(head: &[u8]) -> bool {
    head.iter().take(9).all(|b| *b == 0)
}

fn check_bucket_read(txn: &ReadTransaction, bucket: &str) -> S3Result<()> {
    match txn.open_table(BUCKETS)?.get(bucket)? {
        Some(_) => Ok(()),
        None => Err(Code::NoSuchBucket.into()),
    }
}

fn head_read(txn: &ReadTransaction, bucket: &str, key: &str) -> S3Result<ObjectHead> {
    check_bucket_read(txn, bucket)?;
    let heads = txn.open_table(HEADS)?;
    let raw = heads.get((bucket, key))?.ok_or(Code::NoSuchKey)?;
    decode(raw.value())
}

fn segment_start(
    table: &impl ReadableTable<(u128, u32), &'static [u8]>,
    manifest: u128,
    index: u32,
) -> S3Result<u64> {
    let raw = table
        .get((manifest, index))?
        .ok_or_else(|| S3Error::internal("manifest segment missing"))?;
    Ok(decode::<SegmentRow>(raw.value())?.start)
}

#[async_trait]
impl MetaStore for RedbMeta {
    async fn create_bucket(&self, name: &str, owner: &str, acl: Acl) -> S3Result<()> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.writer
            .write(move |txn| writes::create_bucket(txn, &name, &owner, acl))
            .await
    }

    async fn set_bucket_acl(&self, name: &str, acl: Acl) -> S3Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |txn| writes::update_bucket(txn, &name, |b| b.acl = acl))
            .await
    }

    async fn set_bucket_policy(&self, name: &str, public_objects: bool) -> S3Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |txn| {
                writes::update_bucket(txn, &name, |b| b.public_objects = public_objects)
            })
            .await
    }

    async fn bucket(&self, name: &str) -> S3Result<BucketRecord> {
        let name = name.to_owned();
        self.read(move |txn| {
            let buckets = txn.open_table(BUCKETS)?;
            let record = buckets.get(name.as_str())?.ok_or(Code::NoSuchBucket)?;
            decode(record.value())
        })
        .await
    }

    async fn list_buckets(&self) -> S3Result<Vec<(String, BucketRecord)>> {
        self.read(|txn| {
            let buckets = txn.open_table(BUCKETS)?;
            let mut out = Vec::new();
            for row in buckets.iter()? {
                let (name, record) = row?;
                out.push((name.value().to_owned(), decode(record.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_bucket(&self, name: &str) -> S3Result<()> {
        let name = name.to_owned();
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| writes::delete_bucket(txn, &name, now_ms() + grace))
            .await
    }

    async fn bucket_cors(&self, name: &str) -> S3Result<Option<Vec<CorsRule>>> {
        let name = name.to_owned();
        self.read(move |txn| {
            check_bucket_read(txn, &name)?;
            let table = txn.open_table(BUCKET_CORS)?;
            let rules = table.get(name.as_str())?;
            rules.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn set_bucket_cors(&self, name: &str, rules: Option<Vec<CorsRule>>) -> S3Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |txn| writes::set_bucket_cors(txn, &name, rules.as_ref()))
            .await
    }

    async fn bucket_tags(&self, name: &str) -> S3Result<Option<Tags>> {
        let name = name.to_owned();
        self.read(move |txn| {
            check_bucket_read(txn, &name)?;
            let table = txn.open_table(BUCKET_TAGS)?;
            let tags = table.get(name.as_str())?;
            tags.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn set_bucket_tags(&self, name: &str, tags: Option<Tags>) -> S3Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |txn| writes::set_bucket_tags(txn, &name, tags.as_ref()))
            .await
    }

    async fn bucket_lifecycle(&self, name: &str) -> S3Result<Option<Vec<LifecycleRule>>> {
        let name = name.to_owned();
        self.read(move |txn| {
            check_bucket_read(txn, &name)?;
            let table = txn.open_table(BUCKET_LIFECYCLE)?;
            let rules = table.get(name.as_str())?;
            rules.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn set_bucket_lifecycle(
        &self,
        name: &str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> S3Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |txn| writes::set_bucket_lifecycle(txn, &name, rules.as_ref()))
            .await
    }

    async fn lifecycles(&self) -> S3Result<Vec<(String, Vec<LifecycleRule>)>> {
        self.read(|txn| {
            let mut all = Vec::new();
            for row in txn.open_table(BUCKET_LIFECYCLE)?.iter()? {
                let (bucket, rules) = row?;
                all.push((bucket.value().to_owned(), decode(rules.value())?));
            }
            Ok(all)
        })
        .await
    }

    async fn set_object_tags(&self, bucket: &str, key: &str, tags: Tags) -> S3Result<()> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.writer
            .write(move |txn| writes::update_head(txn, (&bucket, &key), |h| h.tags = tags.clone()))
            .await
    }

    async fn set_object_acl(&self, bucket: &str, key: &str, acl: Acl) -> S3Result<()> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.writer
            .write(move |txn| writes::update_head(txn, (&bucket, &key), |h| h.acl = acl))
            .await
    }

    async fn head_object(&self, bucket: &str, key: &str) -> S3Result<ObjectHead> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |txn| head_read(txn, &bucket, &key)).await
    }

    async fn read_object(&self, bucket: &str, key: &str) -> S3Result<(ObjectHead, Option<Bytes>)> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |txn| {
            let head = head_read(txn, &bucket, &key)?;
            let inline = match head.body {
                Body::Inline => {
                    let table = txn.open_table(INLINE)?;
                    let raw = table
                        .get((bucket.as_str(), key.as_str()))?
                        .ok_or_else(|| S3Error::internal("inline body missing"))?;
                    Some(Bytes::copy_from_slice(raw.value()))
                }
                _ => None,
            };
            Ok((head, inline))
        })
        .await
    }

    async fn segments(
        &self,
        manifest: u128,
        first: u32,
        max: u32,
    ) -> S3Result<Vec<(u64, Segment)>> {
        self.read(move |txn| {
            let table = txn.open_table(SEGMENTS)?;
            let mut out = Vec::new();
            for row in table.range((manifest, first)..=(manifest, u32::MAX))? {
                if out.len() == max as usize {
                    break;
                }
                let row: SegmentRow = decode(row?.1.value())?;
                out.push((row.start, row.segment));
            }
            Ok(out)
        })
        .await
    }

    async fn segment_at(&self, manifest: u128, count: u32, offset: u64) -> S3Result<u32> {
        self.read(move |txn| {
            let table = txn.open_table(SEGMENTS)?;
            // The last segment starting at or before `offset`.
            let (mut lo, mut hi) = (0u32, count.saturating_sub(1));
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if segment_start(&table, manifest, mid)? <= offset {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            Ok(lo)
        })
        .await
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        head: ObjectHead,
        inline: Option<Bytes>,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| {
                let mut head = head.clone();
                head.last_modified_ms = now_ms();
                let due = head.last_modified_ms + grace;
                writes::put_object(
                    txn,
                    (&bucket, &key),
                    &head,
                    inline.as_deref(),
                    &condition,
                    due,
                )?;
                Ok(head)
            })
            .await
    }

    async fn copy_object(
        &self,
        src: (&str, &str),
        dst: (&str, &str),
        changes: CopyChanges,
        source: SourceConditions,
    ) -> S3Result<ObjectHead> {
        let src = (src.0.to_owned(), src.1.to_owned());
        let dst = (dst.0.to_owned(), dst.1.to_owned());
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| {
                writes::copy_object(
                    txn,
                    (&src.0, &src.1),
                    (&dst.0, &dst.1),
                    &changes,
                    &source,
                    grace,
                )
            })
            .await
    }

    async fn delete_objects(&self, bucket: &str, keys: Vec<String>) -> S3Result<()> {
        let bucket = bucket.to_owned();
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| writes::delete_objects(txn, &bucket, &keys, now_ms() + grace))
            .await
    }

    async fn list_objects(&self, bucket: &str, q: ListQuery) -> S3Result<ListPage> {
        let bucket = bucket.to_owned();
        self.read(move |txn| {
            check_bucket_read(txn, &bucket)?;
            list::objects(&txn.open_table(HEADS)?, &bucket, &q)
        })
        .await
    }

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        record: UploadRecord,
    ) -> S3Result<String> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.writer
            .write(move |txn| writes::create_upload(txn, &bucket, &key, &record))
            .await
    }

    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.read(move |txn| {
            check_bucket_read(txn, &bucket)?;
            let uploads = txn.open_table(UPLOADS)?;
            let raw = uploads
                .get((bucket.as_str(), key.as_str(), id.as_str()))?
                .ok_or(Code::NoSuchUpload)?;
            decode(raw.value())
        })
        .await
    }

    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        part: PartRecord,
    ) -> S3Result<()> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| {
                writes::put_part(txn, (&bucket, &key, &id), part_number, &part, grace)
            })
            .await
    }

    async fn parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> S3Result<(Vec<(u32, PartRecord)>, bool)> {
        let id = upload_id.to_owned();
        self.read(move |txn| {
            let parts = txn.open_table(PARTS)?;
            let mut out = Vec::new();
            let mut truncated = false;
            let from = after.saturating_add(1);
            for row in parts.range((id.as_str(), from)..=(id.as_str(), u32::MAX))? {
                let (k, v) = row?;
                if out.len() == max {
                    truncated = true;
                    break;
                }
                out.push((k.value().1, decode(v.value())?));
            }
            Ok((out, truncated))
        })
        .await
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completion: Completion,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| {
                writes::complete_upload(txn, (&bucket, &key, &id), &completion, &condition, grace)
            })
            .await
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| writes::abort_upload(txn, (&bucket, &key, &id), now_ms() + grace))
            .await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        q: ListQuery,
        upload_id_marker: Option<String>,
    ) -> S3Result<UploadListPage> {
        let bucket = bucket.to_owned();
        self.read(move |txn| {
            check_bucket_read(txn, &bucket)?;
            list::uploads(
                &txn.open_table(UPLOADS)?,
                &bucket,
                &q,
                upload_id_marker.as_deref(),
            )
        })
        .await
    }

    async fn uploads_before(
        &self,
        cutoff_ms: i64,
        after: Option<String>,
        max: usize,
    ) -> S3Result<Vec<UploadRef>> {
        self.read(move |txn| {
            // Upload ids begin with their initiation time in 12 hex digits.
            let cutoff = format!("{:012x}", cutoff_ms.max(0) as u64);
            let ids = txn.open_table(UPLOAD_IDS)?;
            let rows = match &after {
                Some(after) => ids.range::<&str>((
                    std::ops::Bound::Excluded(after.as_str()),
                    std::ops::Bound::Excluded(cutoff.as_str()),
                ))?,
                None => ids.range(..cutoff.as_str())?,
            };
            let mut found = Vec::new();
            for row in rows.take(max) {
                let (id, at) = row?;
                let (bucket, key) = at.value();
                let id = id.value().to_owned();
                let initiated_ms = id
                    .get(..12)
                    .and_then(|t| i64::from_str_radix(t, 16).ok())
                    .unwrap_or(0);
                found.push(UploadRef {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    id,
                    initiated_ms,
                });
            }
            Ok(found)
        })
        .await
    }

    async fn abort_uploads(&self, uploads: Vec<UploadRef>) -> S3Result<Swept> {
        let grace = self.grace_ms;
        self.writer
            .write(move |txn| writes::abort_uploads(txn, &uploads, now_ms() + grace))
            .await
    }

    async fn expire_objects(&self, bucket: &str, objects: Vec<Expired>) -> S3Result<u64> {
        let (bucket, grace) = (bucket.to_owned(), self.grace_ms);
        self.writer
            .write(move |txn| writes::expire_objects(txn, &bucket, &objects, now_ms() + grace))
            .await
    }

    async fn due_garbage(&self, now_ms: i64, max: usize) -> S3Result<DueGarbage> {
        self.writer
            .write(move |txn| writes::due_garbage(txn, now_ms, max))
            .await
    }

    async fn forget_garbage(&self, done: Vec<Garbage>) -> S3Result<()> {
        self.writer
            .write(move |txn| writes::forget_garbage(txn, &done))
            .await
    }

    async fn lease(&self, body: u128, until_ms: i64) -> S3Result<bool> {
        self.writer
            .write(move |txn| writes::lease(txn, body, until_ms))
            .await
    }

    async fn probe(&self) -> S3Result<()> {
        self.writer
            .write(|txn| {
                txn.open_table(COUNTERS)?
                    .insert(PROBE, now_ms().max(0) as u64)?;
                Ok(())
            })
            .await
    }

    async fn stats(&self) -> S3Result<Stats> {
        self.read(|txn| {
            let counters = txn.open_table(COUNTERS)?;
            let get = |name| -> S3Result<u64> { Ok(counters.get(name)?.map_or(0, |v| v.value())) };
            Ok(Stats {
                incomplete_uploads: get(UPLOADS_COUNT)?,
                incomplete_upload_bytes: get(UPLOAD_BYTES)?,
                upload_bytes_by_bucket: {
                    let mut v = Vec::new();
                    for row in txn.open_table(BUCKET_UPLOAD_BYTES)?.iter()? {
                        let (bucket, bytes) = row?;
                        v.push((bucket.value().to_owned(), bytes.value()));
                    }
                    v
                },
                garbage_blobs: get(GARBAGE_COUNT)?,
            })
        })
        .await
    }

    async fn live_blobs(&self, ids: Vec<BlobId>) -> S3Result<Vec<BlobId>> {
        self.read(move |txn| {
            let blobs = txn.open_table(BLOBS)?;
            let mut live = Vec::new();
            for id in ids {
                if blobs.get(id)?.is_some() {
                    live.push(id);
                }
            }
            Ok(live)
        })
        .await
    }
}

/// The parts of an upload, by number.
fn upload_parts(
    parts: &impl ReadableTable<(&'static str, u32), &'static [u8]>,
    upload_id: &str,
) -> S3Result<BTreeMap<u32, PartRecord>> {
    let mut stored = BTreeMap::new();
    for row in parts.range((upload_id, 0)..=(upload_id, u32::MAX))? {
        let (k, v) = row?;
        stored.insert(k.value().1, decode::<PartRecord>(v.value())?);
    }
    Ok(stored)
}

/// Whether the database still has a table of an older format.
fn has_table(db: &Database, name: &str) -> S3Result<bool> {
    let txn = db.begin_read()?;
    let found = txn.list_tables()?.any(|t| t.name() == name);
    Ok(found)
}

fn has_table_txn(txn: &redb::WriteTransaction, name: &str) -> S3Result<bool> {
    let found = txn.list_tables()?.any(|t| t.name() == name);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::tables::{old, v1};
    use super::*;
    use crate::checksum::ChecksumType;

    fn seg(blob: u128, len: u64) -> Segment {
        Segment {
            blob,
            len,
            md5: [blob as u8; 16],
            checksum: None,
        }
    }

    fn old_object(etag: &str, segments: Vec<Segment>) -> old::ObjectRecord {
        old::ObjectRecord {
            size: segments.iter().map(|s| s.len).sum(),
            etag: etag.into(),
            last_modified_ms: 1,
            meta: ObjectMeta::default(),
            segments,
            upload_id: None,
            checksum: None,
            checksum_type: ChecksumType::FullObject,
        }
    }

    /// A data directory as the format-2 binary left it: objects whole in
    /// `objects`, one of them still in format 1, a copy of a multipart
    /// object sharing its blobs, an incomplete upload, a freed blob.
    fn write_format_2(path: &Path) {
        let db = Database::create(path.join("meta.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let bucket = v1::Bucket {
                created_ms: 1,
                owner: "o".into(),
            };
            let mut bucket_bytes = vec![1];
            bucket_bytes.extend(postcard::to_stdvec(&bucket).unwrap());
            txn.open_table(BUCKETS)
                .unwrap()
                .insert("b", bucket_bytes.as_slice())
                .unwrap();
            let mut objects = txn.open_table(old::OBJECTS).unwrap();
            let single = old_object("aa", vec![seg(1, 4)]);
            objects
                .insert(("b", "a"), encode(&single).as_slice())
                .unwrap();
            let multi = old_object("bb-2", vec![seg(2, 5), seg(3, 3)]);
            for key in ["m", "m-copy"] {
                objects
                    .insert(("b", key), encode(&multi).as_slice())
                    .unwrap();
            }
            let format_1 = v1::Object {
                size: 6,
                etag: "cc".into(),
                last_modified_ms: 1,
                meta: ObjectMeta::default(),
                segments: vec![v1::Segment {
                    blob: 6,
                    len: 6,
                    md5: [6; 16],
                }],
                upload_id: None,
                checksum: None,
            };
            let mut bytes = vec![1];
            bytes.extend(postcard::to_stdvec(&format_1).unwrap());
            objects.insert(("b", "v1"), bytes.as_slice()).unwrap();
            let upload = UploadRecord {
                initiated_ms: 1,
                owner: "o".into(),
                meta: ObjectMeta::default(),
                checksum: None,
                tags: Vec::new(),
                acl: Acl::Private,
                max_size: None,
                token: None,
            };
            let id = "000000000001ab";
            txn.open_table(UPLOADS)
                .unwrap()
                .insert(("b", "u", id), encode(&upload).as_slice())
                .unwrap();
            let part = PartRecord {
                blob: 4,
                size: 7,
                md5: [4; 16],
                last_modified_ms: 1,
                checksum: None,
                crc64nvme: None,
            };
            txn.open_table(PARTS)
                .unwrap()
                .insert((id, 1), encode(&part).as_slice())
                .unwrap();
            let mut blobs = txn.open_table(BLOBS).unwrap();
            for (id, n) in [(1, 1), (2, 2), (3, 2), (4, 1), (6, 1)] {
                blobs.insert(id, n).unwrap();
            }
            txn.open_table(old::GARBAGE)
                .unwrap()
                .insert(5, 1_000)
                .unwrap();
        }
        txn.commit().unwrap();
    }

    #[tokio::test]
    async fn a_format_2_directory_is_migrated_and_keeps_every_reference() {
        let dir = tempfile::tempdir().unwrap();
        write_format_2(dir.path());
        let meta = RedbMeta::open(dir.path(), 60_000).unwrap();

        let a = meta.head_object("b", "a").await.unwrap();
        assert_eq!(a.body, Body::Blob(seg(1, 4)));
        let v1 = meta.head_object("b", "v1").await.unwrap();
        assert_eq!((v1.size, v1.etag.as_str()), (6, "cc"));
        assert!(matches!(v1.body, Body::Blob(Segment { blob: 6, .. })));
        let m = meta.head_object("b", "m").await.unwrap();
        let Body::Parts { manifest, count } = m.body else {
            panic!("a multipart object gets a manifest: {m:?}");
        };
        assert_eq!((count, m.size, m.parts()), (2, 8, 2));
        let segments = meta.segments(manifest, 0, 10).await.unwrap();
        assert_eq!(segments, vec![(0, seg(2, 5)), (5, seg(3, 3))]);
        assert_eq!(meta.segment_at(manifest, 2, 4).await.unwrap(), 0);
        assert_eq!(meta.segment_at(manifest, 2, 5).await.unwrap(), 1);
        assert_eq!(meta.segment_at(manifest, 2, 7).await.unwrap(), 1);
        let stats = meta.stats().await.unwrap();
        assert_eq!(
            stats,
            Stats {
                incomplete_uploads: 1,
                incomplete_upload_bytes: 7,
                upload_bytes_by_bucket: vec![("b".into(), 7)],
                garbage_blobs: 1,
            }
        );
        let listed = meta.list_objects(
            "b",
            ListQuery {
                max: 10,
                ..Default::default()
            },
        );
        let keys: Vec<String> = listed
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.0)
            .collect();
        assert_eq!(keys, ["a", "m", "m-copy", "v1"]);

        // The blobs the two multipart objects share are freed only once
        // both are gone; the old freed blob is still collected.
        meta.delete_objects("b", vec!["m".into()]).await.unwrap();
        assert!(meta.head_object("b", "m-copy").await.is_ok());
        meta.delete_objects("b", vec!["m-copy".into()])
            .await
            .unwrap();
        let later = now_ms() + 3_600_000;
        let mut freed = Vec::new();
        loop {
            // Small batches: a manifest is taken apart over several.
            let due = meta.due_garbage(later, 1).await.unwrap();
            freed.extend(due.blobs.iter().map(|g| g.blob));
            meta.forget_garbage(due.blobs).await.unwrap();
            if !due.more {
                break;
            }
        }
        assert_eq!(meta.stats().await.unwrap().garbage_blobs, 0);
        freed.sort();
        assert_eq!(freed, [2, 3, 5]);
        drop(meta);

        // Opened again, it is simply format 3.
        let meta = RedbMeta::open(dir.path(), 60_000).unwrap();
        assert!(meta.head_object("b", "a").await.is_ok());
        assert_eq!(meta.live_blobs(vec![1, 2, 4]).await.unwrap(), [1, 4]);
    }

    fn upload_record(max_size: Option<u64>, token: Option<&str>) -> UploadRecord {
        UploadRecord {
            initiated_ms: now_ms(),
            owner: "o".into(),
            meta: ObjectMeta::default(),
            checksum: None,
            tags: Vec::new(),
            acl: Acl::Private,
            max_size,
            token: token.map(str::to_owned),
        }
    }

    fn part_of(size: u64) -> PartRecord {
        PartRecord {
            blob: new_id(),
            size,
            md5: [0; 16],
            last_modified_ms: 0,
            checksum: None,
            crc64nvme: None,
        }
    }

    /// A grant's bound holds however parts race: the engine counts the
    /// parts already stored in the change that adds one.
    #[tokio::test]
    async fn a_bounded_upload_refuses_parts_past_its_bound_even_in_a_race() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::sync::Arc::new(RedbMeta::open(dir.path(), 0).unwrap());
        meta.create_bucket("b", "o", Acl::Private).await.unwrap();
        let id = meta
            .create_upload("b", "k", upload_record(Some(100), None))
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 1..=5 {
            let (meta, id) = (meta.clone(), id.clone());
            tasks.spawn(async move { meta.put_part("b", "k", &id, n, part_of(40)).await });
        }
        let mut accepted = 0;
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(()) => accepted += 1,
                Err(e) => assert_eq!(e.code, Code::EntityTooLarge),
            }
        }
        assert_eq!(accepted, 2, "40 + 40 fit in 100; a third would not");
        let (parts, _) = meta.parts(&id, 0, 10).await.unwrap();
        let stored: u64 = parts.iter().map(|(_, p)| p.size).sum();
        assert_eq!(stored, 80);
        // Replacing a stored part counts it once.
        let (first, _) = parts[0];
        meta.put_part("b", "k", &id, first, part_of(60))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_create_with_a_known_token_returns_the_same_upload() {
        let dir = tempfile::tempdir().unwrap();
        let meta = RedbMeta::open(dir.path(), 0).unwrap();
        meta.create_bucket("b", "o", Acl::Private).await.unwrap();
        let first = meta
            .create_upload("b", "k", upload_record(None, Some("t1")))
            .await
            .unwrap();
        let again = meta
            .create_upload("b", "k", upload_record(None, Some("t1")))
            .await
            .unwrap();
        let other = meta
            .create_upload("b", "k", upload_record(None, Some("t2")))
            .await
            .unwrap();
        let elsewhere = meta
            .create_upload("b", "k2", upload_record(None, Some("t1")))
            .await
            .unwrap();
        assert_eq!(first, again);
        assert!(other != first && elsewhere != first);
        // Once the upload is gone, the token makes a new one.
        meta.abort_upload("b", "k", &first).await.unwrap();
        let after = meta
            .create_upload("b", "k", upload_record(None, Some("t1")))
            .await
            .unwrap();
        assert!(after != first);
    }

    fn inline_head(etag: &str) -> ObjectHead {
        ObjectHead {
            size: 1,
            etag: etag.into(),
            last_modified_ms: 0,
            meta: ObjectMeta::default(),
            upload_id: None,
            checksum: None,
            checksum_type: crate::checksum::ChecksumType::FullObject,
            body: Body::Inline,
            tags: Vec::new(),
            acl: Acl::Private,
        }
    }

    #[tokio::test]
    async fn an_expiry_spares_an_object_overwritten_since_the_sweep_saw_it() {
        let dir = tempfile::tempdir().unwrap();
        let meta = RedbMeta::open(dir.path(), 0).unwrap();
        meta.create_bucket("b", "o", Acl::Private).await.unwrap();
        let put = |key: &'static str, etag: &'static str| {
            meta.put_object(
                "b",
                key,
                inline_head(etag),
                Some(Bytes::from_static(b"x")),
                WriteCondition::None,
            )
        };
        let seen_old = put("old", "aa").await.unwrap();
        let seen_new = put("new", "bb").await.unwrap();
        put("new", "cc").await.unwrap();
        let expired = [("old", &seen_old), ("new", &seen_new), ("gone", &seen_old)]
            .into_iter()
            .map(|(key, h)| Expired {
                key: key.into(),
                etag: h.etag.clone(),
                last_modified_ms: h.last_modified_ms,
                tags: h.tags.clone(),
            })
            .collect();
        assert_eq!(meta.expire_objects("b", expired).await.unwrap(), 1);
        assert_eq!(
            meta.head_object("b", "old").await.unwrap_err().code,
            Code::NoSuchKey
        );
        assert_eq!(meta.head_object("b", "new").await.unwrap().etag, "cc");
    }

    #[tokio::test]
    async fn per_bucket_upload_bytes_are_counted_and_rebuilt_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let meta = RedbMeta::open(dir.path(), 0).unwrap();
            meta.create_bucket("a", "o", Acl::Private).await.unwrap();
            meta.create_bucket("b", "o", Acl::Private).await.unwrap();
            let ua = meta
                .create_upload("a", "k", upload_record(None, None))
                .await
                .unwrap();
            let ub = meta
                .create_upload("b", "k", upload_record(None, None))
                .await
                .unwrap();
            meta.put_part("a", "k", &ua, 1, part_of(10)).await.unwrap();
            meta.put_part("a", "k", &ua, 2, part_of(5)).await.unwrap();
            meta.put_part("b", "k", &ub, 1, part_of(7)).await.unwrap();
            meta.abort_upload("b", "k", &ub).await.unwrap();
            let stats = meta.stats().await.unwrap();
            assert_eq!(stats.upload_bytes_by_bucket, vec![("a".into(), 15)]);
        }
        {
            // A directory written before the table existed.
            let db = Database::create(dir.path().join("meta.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(BUCKET_UPLOAD_BYTES).unwrap();
            txn.commit().unwrap();
        }
        let meta = RedbMeta::open(dir.path(), 0).unwrap();
        let stats = meta.stats().await.unwrap();
        assert_eq!(stats.upload_bytes_by_bucket, vec![("a".into(), 15)]);
    }

    /// A RedbMeta on a simulated disk, and the messages it would exit with.
    fn on_sim_disk(disk: &Arc<sim::SimDisk>) -> (RedbMeta, Arc<std::sync::Mutex<Vec<String>>>) {
        let fatal = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, f) = (Arc::clone(disk), Arc::clone(&fatal));
        let meta = RedbMeta::open_with(
            Box::new(move || {
                Database::builder()
                    .create_with_backend(d.backend())
                    .map_err(|e| e.to_string())
            }),
            0,
            Box::new(move |m| f.lock().unwrap().push(m.to_owned())),
        )
        .unwrap();
        (meta, fatal)
    }

    #[tokio::test]
    async fn after_an_io_error_the_database_reopens_and_writes_resume() {
        use std::sync::atomic::Ordering;
        for fault in ["write", "sync"] {
            let disk = sim::SimDisk::new();
            let (meta, fatal) = on_sim_disk(&disk);
            meta.create_bucket("before", "o", Acl::Private)
                .await
                .unwrap();
            let budget = match fault {
                "write" => &disk.fail_writes,
                _ => &disk.fail_syncs,
            };
            budget.store(1, Ordering::SeqCst);
            let e = meta
                .create_bucket("during", "o", Acl::Private)
                .await
                .unwrap_err();
            assert_eq!(e.code, Code::InternalError, "{fault}");
            // The next write lands on the reopened database: no latched
            // "Previous I/O error".
            meta.create_bucket("after", "o", Acl::Private)
                .await
                .unwrap();
            meta.bucket("before").await.unwrap();
            meta.bucket("after").await.unwrap();
            meta.probe().await.unwrap();
            assert!(fatal.lock().unwrap().is_empty(), "{fault}");
        }
    }

    #[tokio::test]
    async fn a_database_that_cannot_reopen_is_fatal() {
        use std::sync::atomic::Ordering;
        let disk = sim::SimDisk::new();
        let (meta, fatal) = on_sim_disk(&disk);
        meta.create_bucket("before", "o", Acl::Private)
            .await
            .unwrap();
        disk.fail_syncs.store(u64::MAX, Ordering::SeqCst);
        disk.fail_writes.store(u64::MAX, Ordering::SeqCst);
        let e = meta
            .create_bucket("during", "o", Acl::Private)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::InternalError);
        let start = std::time::Instant::now();
        while fatal.lock().unwrap().is_empty() {
            assert!(start.elapsed() < std::time::Duration::from_secs(5));
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let message = fatal.lock().unwrap()[0].clone();
        assert!(message.contains("cannot reopen"), "{message}");
        // Without a database every request fails cleanly, none hangs.
        let e = meta.bucket("before").await.unwrap_err();
        assert_eq!(e.code, Code::InternalError);
    }

    #[tokio::test]
    async fn a_database_file_whose_creation_never_completed_is_created_again() {
        let dir = tempfile::tempdir().unwrap();
        // What a crash during the first start leaves: the file, without its
        // magic number.
        let mut blank = vec![0u8; 8192];
        blank[9..13].copy_from_slice(&[4, 0, 0, 0]);
        std::fs::write(dir.path().join("meta.redb"), &blank).unwrap();
        let meta = RedbMeta::open(dir.path(), 0).unwrap();
        meta.create_bucket("b", "o", Acl::Private).await.unwrap();
        drop(meta);
        // A real database is never taken for one.
        let meta = RedbMeta::open(dir.path(), 0).unwrap();
        meta.bucket("b").await.unwrap();
        drop(meta);
        let mut other = vec![0u8; 8192];
        other[..4].copy_from_slice(b"junk");
        std::fs::write(dir.path().join("meta.redb"), &other).unwrap();
        assert!(RedbMeta::open(dir.path(), 0).is_err());
    }

    #[tokio::test]
    async fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbMeta::open(dir.path(), 0).unwrap());
        {
            let db = Database::create(dir.path().join("meta.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(SCHEMA)
                .unwrap()
                .insert("format", FORMAT + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let e = RedbMeta::open(dir.path(), 0).unwrap_err();
        assert!(e.contains("newer than this binary"), "{e}");
    }

    #[test]
    fn objects_written_by_an_older_binary_after_migration_are_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbMeta::open(dir.path(), 0).unwrap());
        {
            // What a format-2 binary does to a format-3 directory.
            let db = Database::create(dir.path().join("meta.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(old::OBJECTS).unwrap();
            txn.commit().unwrap();
        }
        let e = RedbMeta::open(dir.path(), 0).unwrap_err();
        assert!(e.contains("older stowage"), "{e}");
    }
}
