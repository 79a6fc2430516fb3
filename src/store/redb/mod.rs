//! The embedded metadata engine: redb in `<data_dir>/meta.redb`.
//!
//! Reads run in short read transactions on the blocking pool. Every change
//! goes through the group-commit writer ([`batch`]): concurrent changes
//! share one write transaction and one fsync. The rules are the store's
//! ([`crate::store::rules`]); this engine provides the transactional
//! interface on its tables ([`view`]), its batching writer, its counters,
//! its reopening after I/O errors ([`cell`]) and its format migrations.

mod batch;
pub mod cell;
mod migrate;
#[cfg(test)]
pub mod sim;
pub mod tables;
pub mod view;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadOnlyDatabase, ReadableDatabase};

use crate::error::{S3Error, S3Result};
use crate::store::rules::Meta;
use crate::store::txn::{Change, Engine, Query, ready, run_change};
use batch::Writer;
use view::View;

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

/// The store's metadata on redb.
pub type RedbMeta = Meta<Redb>;

/// The redb engine: the database and its writer.
#[derive(Debug)]
pub struct Redb {
    db: Arc<cell::DbCell>,
    writer: Writer,
}

impl Meta<Redb> {
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
        migrate::init(&db, grace_ms).map_err(|e| format!("metadata store: {e}"))?;
        let db = Arc::new(cell::DbCell::new(db, open, on_fatal));
        let writer = Writer::start(Arc::clone(&db)).map_err(|e| e.to_string())?;
        Ok(Meta {
            engine: Redb { db, writer },
            grace_ms,
        })
    }
}

impl Engine for Redb {
    async fn query<Q: Query>(&self, q: Q) -> S3Result<Q::Output> {
        let cell = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = cell.get()?.begin_read()?;
            Ok(ready(q.run(&mut View(&txn)))?)
        })
        .await
        .map_err(S3Error::internal)?
    }

    async fn change<C: Change>(&self, c: C) -> S3Result<C::Output> {
        self.writer
            .write(move |txn| Ok(ready(run_change(&c, &mut View(txn)))?))
            .await
    }
}

/// A data directory's metadata opened read-only, for `stowage verify`:
/// queries only, and nothing created or migrated. Opening fails when a
/// server has the database open (stop it first), or when the database needs
/// the repair a server start performs after a crash.
pub struct RedbReadOnly(Arc<ReadOnlyDatabase>);

impl std::fmt::Debug for RedbReadOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbReadOnly")
    }
}

impl RedbReadOnly {
    pub fn open(data_dir: &Path) -> Result<RedbReadOnly, String> {
        let db_path = existing_database(data_dir)?;
        let db = ReadOnlyDatabase::open(&db_path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => already_open(&db_path),
            redb::DatabaseError::RepairAborted => format!(
                "{} was not closed cleanly; start and stop the server once to repair it",
                db_path.display()
            ),
            e => format!("cannot open {}: {e}", db_path.display()),
        })?;
        Ok(RedbReadOnly(Arc::new(db)))
    }
}

impl Engine for RedbReadOnly {
    async fn query<Q: Query>(&self, q: Q) -> S3Result<Q::Output> {
        let db = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || Ok(ready(q.run(&mut View(&db.begin_read()?)))?))
            .await
            .map_err(S3Error::internal)?
    }

    async fn change<C: Change>(&self, _c: C) -> S3Result<C::Output> {
        Err(S3Error::internal("the metadata is open read-only"))
    }
}

impl Meta<Redb> {
    /// Opens a data directory's existing metadata for `verify --repair`:
    /// for writing, which redb refuses while a server has it open.
    pub fn open_for_repair(data_dir: &Path) -> Result<RedbMeta, String> {
        let path = existing_database(data_dir)?;
        let opener: cell::Opener = Box::new(move || {
            Database::builder().open(&path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => already_open(&path),
                e => format!("cannot open {}: {e}", path.display()),
            })
        });
        RedbMeta::open_with(opener, 0, cell::exit_on_fatal())
    }
}

fn existing_database(data_dir: &Path) -> Result<std::path::PathBuf, String> {
    let path = data_dir.join("meta.redb");
    if !path.exists() {
        // A relative data_dir (the default ./data) is taken from the
        // working directory: say where that led.
        let absolute = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        return Err(format!(
            "no metadata at {}: no data directory there. data_dir is relative to the working directory; name the server's with --data-dir DIR (or --config PATH)",
            absolute.display()
        ));
    }
    Ok(path)
}

fn already_open(path: &Path) -> String {
    format!(
        "{} is open in another process; stop the server first",
        path.display()
    )
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

#[cfg(test)]
mod tests {
    use super::tables::*;
    use super::*;
    use crate::checksum::ChecksumType;
    use crate::error::Code;
    use crate::store::codec::{encode, v1};
    use crate::store::meta::MetaStore;
    use crate::store::model::*;
    use crate::time::now_ms;
    use bytes::Bytes;

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
                granted: None,
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
                // Counted once, as the migration found them.
                objects_by_bucket: vec![("b".into(), 4, 26)],
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
            granted: None,
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
