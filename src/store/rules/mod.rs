//! The store's rules, written once for every metadata engine: each change
//! and read of [`MetaStore`] is a [`Change`] or a [`Query`] over the
//! engine's small transactional interface ([`crate::store::txn`]).
//!
//! Written for engines with many concurrent writers and optimistic
//! transactions as much as for redb's single writer:
//! - Blob reference counts are touched only when a reference is made or
//!   dropped: a PutObject or UploadPart makes a new blob (no contention), a
//!   CopyObject of a single-blob object adds one to that blob's count, and a
//!   copy of a multipart object adds one to its manifest's count, never one
//!   per part. Copies of one popular object therefore meet on one row, and
//!   since each change touches one counted row, there is no lock-order
//!   deadlock.
//! - Completing an upload moves its parts' references to the manifest
//!   without touching any count.
//! - Background work (expired uploads, due garbage) is claimed in bounded
//!   batches from indexes ordered by time.

pub mod buckets;
pub mod complete;
pub mod garbage;
pub mod input;
pub mod listing;
pub mod objects;
pub mod refs;
pub mod scrub;
pub mod uploads;

use async_trait::async_trait;
use bytes::Bytes;

use super::codec::{Record, decode, encode};
use super::meta::MetaStore;
use super::model::*;
use super::txn::{Config, Engine};
use crate::cors::CorsRule;
use crate::error::S3Result;
use crate::lifecycle::LifecycleRule;
use buckets::*;
use garbage::*;
use listing::*;
use objects::*;
use uploads::*;

/// The metadata store over an engine: [`MetaStore`], implemented once.
#[derive(Debug)]
pub struct Meta<E> {
    pub engine: E,
    /// How long a freed body stays before the collector may reclaim it.
    pub grace_ms: i64,
}

impl<E: Engine> Meta<E> {
    async fn config<T: Record>(&self, name: &str, of: Config) -> S3Result<Option<T>> {
        let name = name.to_owned();
        let raw = self.engine.query(GetConfig { name, of }).await?;
        Ok(raw.map(|v| decode(&v)).transpose()?)
    }

    async fn set_config<T: Record>(&self, name: &str, of: Config, v: Option<T>) -> S3Result<()> {
        let value = v.as_ref().map(encode);
        let name = name.to_owned();
        self.engine.change(SetConfig { name, of, value }).await
    }

    async fn update_bucket(&self, name: &str, change: BucketChange) -> S3Result<()> {
        let name = name.to_owned();
        self.engine.change(UpdateBucket { name, change }).await
    }

    async fn update_head(&self, bucket: &str, key: &str, change: HeadChange) -> S3Result<()> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.engine
            .change(UpdateHead {
                bucket,
                key,
                change,
            })
            .await
    }
}

#[async_trait]
impl<E: Engine> MetaStore for Meta<E> {
    async fn create_bucket(&self, name: &str, owner: &str, acl: Acl) -> S3Result<()> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.engine.change(CreateBucket { name, owner, acl }).await
    }

    async fn bucket(&self, name: &str) -> S3Result<BucketRecord> {
        self.engine.query(GetBucket(name.to_owned())).await
    }

    async fn list_buckets(&self) -> S3Result<Vec<(String, BucketRecord)>> {
        self.engine.query(ListBuckets).await
    }

    async fn delete_bucket(&self, name: &str) -> S3Result<()> {
        let name = name.to_owned();
        let grace_ms = self.grace_ms;
        self.engine.change(DeleteBucket { name, grace_ms }).await
    }

    async fn bucket_cors(&self, name: &str) -> S3Result<Option<Vec<CorsRule>>> {
        self.config(name, Config::Cors).await
    }

    async fn set_bucket_cors(&self, name: &str, rules: Option<Vec<CorsRule>>) -> S3Result<()> {
        self.set_config(name, Config::Cors, rules).await
    }

    async fn set_bucket_acl(&self, name: &str, acl: Acl) -> S3Result<()> {
        self.update_bucket(name, BucketChange::Acl(acl)).await
    }

    async fn set_bucket_policy(&self, name: &str, public_objects: bool) -> S3Result<()> {
        let change = BucketChange::Policy { public_objects };
        self.update_bucket(name, change).await
    }

    async fn bucket_tags(&self, name: &str) -> S3Result<Option<Tags>> {
        self.config(name, Config::Tags).await
    }

    async fn set_bucket_tags(&self, name: &str, tags: Option<Tags>) -> S3Result<()> {
        self.set_config(name, Config::Tags, tags).await
    }

    async fn bucket_lifecycle(&self, name: &str) -> S3Result<Option<Vec<LifecycleRule>>> {
        self.config(name, Config::Lifecycle).await
    }

    async fn set_bucket_lifecycle(
        &self,
        name: &str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> S3Result<()> {
        self.set_config(name, Config::Lifecycle, rules).await
    }

    async fn lifecycles(&self) -> S3Result<Vec<(String, Vec<LifecycleRule>)>> {
        let all = self.engine.query(AllConfigs(Config::Lifecycle)).await?;
        all.into_iter()
            .map(|(bucket, raw)| Ok((bucket, decode(&raw)?)))
            .collect()
    }

    async fn head_object(&self, bucket: &str, key: &str) -> S3Result<ObjectHead> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.engine.query(HeadObject { bucket, key }).await
    }

    async fn read_object(&self, bucket: &str, key: &str) -> S3Result<(ObjectHead, Option<Bytes>)> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.engine.query(ReadObject { bucket, key }).await
    }

    async fn segments(
        &self,
        manifest: u128,
        first: u32,
        max: u32,
    ) -> S3Result<Vec<(u64, Segment)>> {
        let q = Segments {
            manifest,
            first,
            max,
        };
        self.engine.query(q).await
    }

    async fn segment_at(&self, manifest: u128, count: u32, offset: u64) -> S3Result<u32> {
        let q = SegmentAt {
            manifest,
            count,
            offset,
        };
        self.engine.query(q).await
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        head: ObjectHead,
        inline: Option<Bytes>,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead> {
        let put = PutObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            head,
            inline,
            condition,
            grace_ms: self.grace_ms,
        };
        self.engine.change(put).await
    }

    async fn copy_object(
        &self,
        src: (&str, &str),
        dst: (&str, &str),
        changes: CopyChanges,
        conditions: SourceConditions,
    ) -> S3Result<ObjectHead> {
        let copy = CopyObject {
            src: (src.0.to_owned(), src.1.to_owned()),
            dst: (dst.0.to_owned(), dst.1.to_owned()),
            changes,
            conditions,
            grace_ms: self.grace_ms,
        };
        self.engine.change(copy).await
    }

    async fn set_object_tags(&self, bucket: &str, key: &str, tags: Tags) -> S3Result<()> {
        self.update_head(bucket, key, HeadChange::Tags(tags)).await
    }

    async fn set_object_acl(&self, bucket: &str, key: &str, acl: Acl) -> S3Result<()> {
        self.update_head(bucket, key, HeadChange::Acl(acl)).await
    }

    async fn delete_objects(&self, bucket: &str, keys: Vec<String>) -> S3Result<()> {
        let bucket = bucket.to_owned();
        let grace_ms = self.grace_ms;
        let delete = DeleteObjects {
            bucket,
            keys,
            grace_ms,
        };
        self.engine.change(delete).await
    }

    async fn list_objects(&self, bucket: &str, q: ListQuery) -> S3Result<ListPage> {
        let bucket = bucket.to_owned();
        self.engine.query(ListObjects { bucket, q }).await
    }

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        record: UploadRecord,
    ) -> S3Result<String> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let create = CreateUpload {
            bucket,
            key,
            record,
            grace_ms: self.grace_ms,
        };
        self.engine.change(create).await
    }

    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.engine.query(GetUpload { bucket, key, id }).await
    }

    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        part: PartRecord,
    ) -> S3Result<()> {
        let put = PutPart {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            id: upload_id.to_owned(),
            number,
            part,
            grace_ms: self.grace_ms,
        };
        self.engine.change(put).await
    }

    async fn parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> S3Result<(Vec<(u32, PartRecord)>, bool)> {
        let id = upload_id.to_owned();
        self.engine.query(Parts { id, after, max }).await
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completion: Completion,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead> {
        let complete = CompleteUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            id: upload_id.to_owned(),
            completion,
            condition,
            grace_ms: self.grace_ms,
        };
        self.engine.change(complete).await
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let abort = AbortUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            id: upload_id.to_owned(),
            grace_ms: self.grace_ms,
        };
        self.engine.change(abort).await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        q: ListQuery,
        upload_id_marker: Option<String>,
    ) -> S3Result<UploadListPage> {
        let list = ListUploads {
            bucket: bucket.to_owned(),
            q,
            upload_id_marker,
        };
        self.engine.query(list).await
    }

    async fn uploads_before(
        &self,
        cutoff_ms: i64,
        after: Option<String>,
        max: usize,
    ) -> S3Result<Vec<UploadRef>> {
        let q = UploadsBefore {
            cutoff_ms,
            after,
            max,
        };
        self.engine.query(q).await
    }

    async fn abort_uploads(&self, uploads: Vec<UploadRef>) -> S3Result<Swept> {
        let grace_ms = self.grace_ms;
        self.engine.change(AbortUploads { uploads, grace_ms }).await
    }

    async fn expire_objects(&self, bucket: &str, objects: Vec<Expired>) -> S3Result<u64> {
        let expire = ExpireObjects {
            bucket: bucket.to_owned(),
            objects,
            grace_ms: self.grace_ms,
        };
        self.engine.change(expire).await
    }

    async fn due_garbage(&self, now_ms: i64, max: usize) -> S3Result<DueGarbage> {
        self.engine.change(ClaimGarbage { now_ms, max }).await
    }

    async fn forget_garbage(&self, done: Vec<Garbage>) -> S3Result<()> {
        self.engine.change(ForgetGarbage(done)).await
    }

    async fn lease(&self, body: u128, until_ms: i64) -> S3Result<bool> {
        self.engine.change(Lease { body, until_ms }).await
    }

    async fn stats(&self) -> S3Result<Stats> {
        self.engine.query(GetStats).await
    }

    async fn probe(&self) -> S3Result<()> {
        self.engine.change(Probe).await
    }

    async fn tidy(&self) -> S3Result<()> {
        self.engine.tidy().await
    }

    async fn scrub_cursor(&self) -> S3Result<Option<scrub::ScrubCursor>> {
        self.engine.query(scrub::GetScrubCursor).await
    }

    async fn move_scrub_cursor(
        &self,
        seen: Option<scrub::ScrubCursor>,
        next: scrub::ScrubCursor,
    ) -> S3Result<bool> {
        match self
            .engine
            .change(scrub::MoveScrubCursor { seen, next })
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.code == crate::error::Code::ConditionalRequestConflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn live_blobs(&self, ids: Vec<BlobId>) -> S3Result<Vec<BlobId>> {
        self.engine.query(LiveBlobs(ids)).await
    }
}
