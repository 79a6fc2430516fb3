//! One conformance suite for the metadata interface ([`MetaStore`]), run
//! against every engine. Each case is written once, against the trait only
//! (`Arc<dyn MetaStore>`), and [`conformance!`] makes it two tests,
//! `<case>::redb` and `<case>::postgres`, so a failure names the engine.
//! Every engine gets a fresh store per test: a temporary directory for
//! redb, a new database on the test process's PostgreSQL.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use stowage::error::{Code, S3Result};
use stowage::store::meta::MetaStore;
use stowage::store::model::*;
use stowage::time::now_ms;

/// How long a freed body waits before the collector may take it, in every
/// engine the suite opens.
pub const GRACE_MS: i64 = 60_000;

pub const DAY_MS: i64 = 86_400_000;

/// Makes one case two tests: `$name::redb` and `$name::postgres`. The case
/// is a closure taking the engine as `Arc<dyn MetaStore>` and returning a
/// future.
macro_rules! conformance {
    ($name:ident, $case:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case(meta: std::sync::Arc<dyn stowage::store::meta::MetaStore>) {
                $crate::conformance::run(meta, $case).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn redb() {
                $crate::conformance::on_redb(case).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                $crate::conformance::on_postgres(case).await
            }
        }
    };
}

mod buckets;
mod concurrency;
mod expiry;
mod garbage;
mod listing;
mod objects;
mod uploads;

/// Gives the case closure its argument's type.
pub async fn run<F, Fut>(meta: Arc<dyn MetaStore>, case: F)
where
    F: FnOnce(Arc<dyn MetaStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    case(meta).await
}

pub async fn on_redb<Fut>(case: fn(Arc<dyn MetaStore>) -> Fut)
where
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = stowage::store::redb::RedbMeta::open(dir.path(), GRACE_MS).expect("open redb");
    case(Arc::new(meta)).await;
}

pub async fn on_postgres<Fut>(case: fn(Arc<dyn MetaStore>) -> Fut)
where
    Fut: Future<Output = ()>,
{
    let url = tokio::task::spawn_blocking(|| crate::pg::Postgres::get().new_database())
        .await
        .expect("create a database");
    let meta = stowage::store::pg::PgMeta::connect(&url, GRACE_MS, "conformance")
        .await
        .expect("connect to PostgreSQL");
    case(Arc::new(meta)).await;
}

// ---- helpers shared by the cases ----

/// The error code of a call that must be refused.
#[track_caller]
pub fn code<T: std::fmt::Debug>(result: S3Result<T>) -> Code {
    match result {
        Ok(v) => panic!("expected a refusal, got Ok({v:?})"),
        Err(e) => e.code,
    }
}

/// Far enough in the future that everything freed is due and every lease
/// the cases take has ended.
pub fn far() -> i64 {
    now_ms() + 3650 * DAY_MS
}

pub fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// 16 random bytes, standing in for the MD5 of bytes the test never made.
pub fn random_md5() -> [u8; 16] {
    new_id().to_le_bytes()
}

pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

pub fn base_head(size: u64, etag: String, body: Body) -> ObjectHead {
    ObjectHead {
        size,
        etag,
        last_modified_ms: 0,
        meta: ObjectMeta::default(),
        upload_id: None,
        checksum: None,
        checksum_type: stowage::checksum::ChecksumType::FullObject,
        body,
        tags: Vec::new(),
        acl: Acl::Private,
    }
}

/// The head of a small object whose bytes live in the engine.
pub fn inline_head(bytes: &[u8]) -> ObjectHead {
    base_head(bytes.len() as u64, hex(&md5_of(bytes)), Body::Inline)
}

/// The head of a PutObject of `size` bytes in a new blob.
pub fn blob_head(size: u64) -> ObjectHead {
    let md5 = random_md5();
    let segment = Segment {
        blob: new_id(),
        len: size,
        md5,
        checksum: None,
    };
    base_head(size, hex(&md5), Body::Blob(segment))
}

/// The blob of a single-blob head.
#[track_caller]
pub fn blob_of(head: &ObjectHead) -> BlobId {
    match &head.body {
        Body::Blob(segment) => segment.blob,
        other => panic!("not a single-blob object: {other:?}"),
    }
}

/// The manifest of a multipart head.
#[track_caller]
pub fn manifest_of(head: &ObjectHead) -> u128 {
    match head.body {
        Body::Parts { manifest, .. } => manifest,
        ref other => panic!("not a multipart object: {other:?}"),
    }
}

pub async fn new_bucket(meta: &Arc<dyn MetaStore>, name: &str) {
    meta.create_bucket(name, "owner", Acl::Private)
        .await
        .expect("create bucket");
}

pub async fn put_inline(
    meta: &Arc<dyn MetaStore>,
    bucket: &str,
    key: &str,
    bytes: &[u8],
) -> ObjectHead {
    meta.put_object(
        bucket,
        key,
        inline_head(bytes),
        Some(Bytes::copy_from_slice(bytes)),
        WriteCondition::None,
    )
    .await
    .expect("put an inline object")
}

pub async fn put_blob(meta: &Arc<dyn MetaStore>, bucket: &str, key: &str, size: u64) -> ObjectHead {
    meta.put_object(bucket, key, blob_head(size), None, WriteCondition::None)
        .await
        .expect("put a blob object")
}

pub fn record() -> UploadRecord {
    record_at(now_ms())
}

pub fn record_at(initiated_ms: i64) -> UploadRecord {
    UploadRecord {
        initiated_ms,
        owner: "owner".into(),
        meta: ObjectMeta::default(),
        checksum: None,
        tags: Vec::new(),
        acl: Acl::Private,
        max_size: None,
        token: None,
        granted: None,
    }
}

/// A part of `size` bytes in a new blob.
pub fn part(size: u64) -> PartRecord {
    PartRecord {
        blob: new_id(),
        size,
        md5: random_md5(),
        last_modified_ms: 0,
        checksum: None,
        crc64nvme: None,
    }
}

/// A `<Part>` of a CompleteMultipartUpload naming `part` as number `n`.
pub fn listed(n: u32, part: &PartRecord) -> CompletedPart {
    CompletedPart {
        part_number: n,
        etag: hex(&part.md5),
        checksum: None,
    }
}

pub fn completion(parts: &[(u32, &PartRecord)], min_part_size: u64) -> Completion {
    Completion {
        parts: parts.iter().map(|(n, p)| listed(*n, p)).collect(),
        min_part_size,
        ..Completion::default()
    }
}

/// S3's ETag of a multipart object: the MD5 of its parts' MD5s, `-N`.
pub fn multipart_etag(parts: &[&PartRecord]) -> String {
    let mut all = Md5::new();
    for p in parts {
        all.update(p.md5);
    }
    let digest: [u8; 16] = all.finalize().into();
    format!("{}-{}", hex(&digest), parts.len())
}

/// Uploads parts of `sizes` to a new upload of `bucket/key` and completes
/// it with all of them; returns the object's head and its part blobs.
pub async fn put_multipart(
    meta: &Arc<dyn MetaStore>,
    bucket: &str,
    key: &str,
    sizes: &[u64],
) -> (ObjectHead, Vec<BlobId>) {
    let id = meta
        .create_upload(bucket, key, record())
        .await
        .expect("create upload");
    let parts: Vec<PartRecord> = sizes.iter().map(|s| part(*s)).collect();
    for (n, p) in (1..).zip(&parts) {
        meta.put_part(bucket, key, &id, n, p.clone())
            .await
            .expect("put part");
    }
    let numbered: Vec<(u32, &PartRecord)> = (1..).zip(&parts).collect();
    let head = meta
        .complete_upload(
            bucket,
            key,
            &id,
            completion(&numbered, 0),
            WriteCondition::None,
        )
        .await
        .expect("complete upload");
    (head, parts.iter().map(|p| p.blob).collect())
}

/// The blobs an object's body refers to.
pub async fn body_blobs(meta: &Arc<dyn MetaStore>, head: &ObjectHead) -> Vec<BlobId> {
    match &head.body {
        Body::Inline => Vec::new(),
        Body::Blob(segment) => vec![segment.blob],
        Body::Parts { manifest, count } => meta
            .segments(*manifest, 0, *count)
            .await
            .expect("segments")
            .into_iter()
            .map(|(_, s)| s.blob)
            .collect(),
    }
}

/// Every object of `bucket`, by key.
pub async fn all_objects(meta: &Arc<dyn MetaStore>, bucket: &str) -> Vec<(String, ObjectHead)> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery {
            after,
            max: 1000,
            ..ListQuery::default()
        };
        let page = meta.list_objects(bucket, q).await.expect("list objects");
        out.extend(page.objects);
        if !page.truncated {
            return out;
        }
        after = page.last;
    }
}

/// Collects everything due in `max`-row batches until nothing more is due
/// at `now`, forgetting each batch as the collector would once unlinked;
/// returns the freed blobs, each of which must come exactly once.
pub async fn drain_at(meta: &Arc<dyn MetaStore>, now: i64, max: usize) -> Vec<BlobId> {
    let mut freed = Vec::new();
    for _ in 0..2_000 {
        let due = meta.due_garbage(now, max).await.expect("due garbage");
        freed.extend(due.blobs.iter().map(|g| g.blob));
        meta.forget_garbage(due.blobs)
            .await
            .expect("forget garbage");
        if !due.more {
            let unique: BTreeSet<BlobId> = freed.iter().copied().collect();
            assert_eq!(unique.len(), freed.len(), "a blob was freed twice");
            return sorted(freed);
        }
    }
    panic!("the garbage never ran out");
}

/// Collects everything there is.
pub async fn drain(meta: &Arc<dyn MetaStore>) -> Vec<BlobId> {
    drain_at(meta, far(), 1000).await
}

pub async fn garbage_count(meta: &Arc<dyn MetaStore>) -> u64 {
    meta.stats().await.expect("stats").garbage_blobs
}

/// Which of `ids` are live, in order.
pub async fn live(meta: &Arc<dyn MetaStore>, ids: &[BlobId]) -> Vec<BlobId> {
    sorted(meta.live_blobs(ids.to_vec()).await.expect("live blobs"))
}
