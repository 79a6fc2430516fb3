//! The metadata engine interface: everything Stowage knows about buckets,
//! objects, uploads and freed blobs, in S3 terms. Every method is one atomic
//! change (or one consistent read) inside the engine; an `Ok` from a method
//! that changes something means the change is durable.
//!
//! Implementations: [`super::redb::RedbMeta`] (embedded, the default).
//!
//! Written for engines with many concurrent writers and optimistic
//! transactions as much as for redb's single writer:
//! - Blob reference counts are touched only when a reference is made or
//!   dropped: a PutObject or UploadPart makes a new blob (no contention), a
//!   CopyObject of a single-blob object adds one to that blob's count, and a
//!   copy of a multipart object adds one to its manifest's count, never one
//!   per part. Copies of one popular object therefore meet on one row: under
//!   row locks they queue for that row's short transaction; under optimistic
//!   concurrency the loser retries. Neither loses an update, and since each
//!   change touches one counted row, there is no lock-order deadlock.
//! - Completing an upload moves its parts' references to the manifest
//!   without touching any count.
//! - Background work (expired uploads, due garbage) is claimed in bounded
//!   batches from indexes ordered by time.

use async_trait::async_trait;
use bytes::Bytes;

use super::model::*;
use crate::cors::CorsRule;
use crate::error::S3Result;
use crate::lifecycle::LifecycleRule;

#[async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    // ---- buckets ----

    /// `BucketAlreadyOwnedByYou` / `BucketAlreadyExists` if the name is taken.
    async fn create_bucket(&self, name: &str, owner: &str, acl: Acl) -> S3Result<()>;
    /// `NoSuchBucket` if absent.
    async fn bucket(&self, name: &str) -> S3Result<BucketRecord>;
    async fn list_buckets(&self) -> S3Result<Vec<(String, BucketRecord)>>;
    /// Deletes an empty bucket (`BucketNotEmpty` otherwise), aborting its
    /// incomplete uploads.
    async fn delete_bucket(&self, name: &str) -> S3Result<()>;
    /// The bucket's own CORS rules, if it has any; `NoSuchBucket` if absent.
    async fn bucket_cors(&self, name: &str) -> S3Result<Option<Vec<CorsRule>>>;
    /// Sets (`Some`) or deletes (`None`) a bucket's CORS rules.
    async fn set_bucket_cors(&self, name: &str, rules: Option<Vec<CorsRule>>) -> S3Result<()>;
    /// Sets a bucket's canned ACL; `NoSuchBucket` if absent.
    async fn set_bucket_acl(&self, name: &str, acl: Acl) -> S3Result<()>;
    /// Sets or clears a bucket's anonymous-read policy.
    async fn set_bucket_policy(&self, name: &str, public_objects: bool) -> S3Result<()>;
    /// The bucket's tags, if it has any; `NoSuchBucket` if absent.
    async fn bucket_tags(&self, name: &str) -> S3Result<Option<Tags>>;
    /// Sets (`Some`) or deletes (`None`) a bucket's tags.
    async fn set_bucket_tags(&self, name: &str, tags: Option<Tags>) -> S3Result<()>;
    /// The bucket's lifecycle rules, if it has any; `NoSuchBucket` if absent.
    async fn bucket_lifecycle(&self, name: &str) -> S3Result<Option<Vec<LifecycleRule>>>;
    /// Sets (`Some`) or deletes (`None`) a bucket's lifecycle rules.
    async fn set_bucket_lifecycle(
        &self,
        name: &str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> S3Result<()>;
    /// Every bucket's lifecycle rules, for the sweep.
    async fn lifecycles(&self) -> S3Result<Vec<(String, Vec<LifecycleRule>)>>;

    // ---- objects ----

    /// The object's head; `NoSuchBucket` or `NoSuchKey`.
    async fn head_object(&self, bucket: &str, key: &str) -> S3Result<ObjectHead>;
    /// The head and, for an inline object, its bytes, read together.
    async fn read_object(&self, bucket: &str, key: &str) -> S3Result<(ObjectHead, Option<Bytes>)>;
    /// Up to `max` segments of a manifest from index `first` (0-based),
    /// each with the object offset it starts at.
    async fn segments(&self, manifest: u128, first: u32, max: u32)
    -> S3Result<Vec<(u64, Segment)>>;
    /// The index of the segment holding byte `offset` (O(log parts)).
    async fn segment_at(&self, manifest: u128, count: u32, offset: u64) -> S3Result<u32>;
    /// Makes `head` the object at `key` if `condition` holds, freeing what
    /// it replaces. A [`Body::Blob`] head brings a new blob, which this
    /// makes live; an [`Body::Inline`] head brings its bytes in `inline`.
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        head: ObjectHead,
        inline: Option<Bytes>,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead>;
    /// Copies by reference (no byte copied): the new object shares the
    /// source's blobs or manifest.
    async fn copy_object(
        &self,
        src: (&str, &str),
        dst: (&str, &str),
        changes: CopyChanges,
        source: SourceConditions,
    ) -> S3Result<ObjectHead>;
    /// Replaces an object's tags (empty: removes them); `NoSuchKey`.
    async fn set_object_tags(&self, bucket: &str, key: &str, tags: Tags) -> S3Result<()>;
    /// Sets an object's canned ACL; `NoSuchKey`.
    async fn set_object_acl(&self, bucket: &str, key: &str, acl: Acl) -> S3Result<()>;
    /// Deletes keys; missing keys are skipped.
    async fn delete_objects(&self, bucket: &str, keys: Vec<String>) -> S3Result<()>;
    async fn list_objects(&self, bucket: &str, q: ListQuery) -> S3Result<ListPage>;

    // ---- multipart uploads ----

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        record: UploadRecord,
    ) -> S3Result<String>;
    /// `NoSuchUpload` if absent.
    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord>;
    /// Stores a part (its blob is new and becomes live), replacing an
    /// earlier part of that number. The upload is checked in the same
    /// change, so a part in flight while the upload was aborted is refused.
    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        part: PartRecord,
    ) -> S3Result<()>;
    /// Parts numbered above `after`, at most `max`, and whether more follow.
    async fn parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> S3Result<(Vec<(u32, PartRecord)>, bool)>;
    /// CompleteMultipartUpload; replays the result of an earlier success.
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completion: Completion,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead>;
    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()>;
    /// ListMultipartUploads: by key, then initiation time.
    async fn list_uploads(
        &self,
        bucket: &str,
        q: ListQuery,
        upload_id_marker: Option<String>,
    ) -> S3Result<UploadListPage>;

    // ---- background work and recovery ----

    /// Up to `max` incomplete uploads initiated before `cutoff_ms`, oldest
    /// first, from after upload id `after`.
    async fn uploads_before(
        &self,
        cutoff_ms: i64,
        after: Option<String>,
        max: usize,
    ) -> S3Result<Vec<UploadRef>>;
    /// Aborts these uploads (those still incomplete), in one change.
    async fn abort_uploads(&self, uploads: Vec<UploadRef>) -> S3Result<Swept>;
    /// Deletes, in one change, each object still as the sweep saw it;
    /// returns how many went.
    async fn expire_objects(&self, bucket: &str, objects: Vec<Expired>) -> S3Result<u64>;
    /// Freed blobs due for unlinking at `now_ms` and not under a reader's
    /// lease, claimed (no lease can be taken on them any more); about `max`
    /// rows of work. Leased ones are put off, never returned; freed
    /// manifests are taken apart here, a bounded batch at a time.
    async fn due_garbage(&self, now_ms: i64, max: usize) -> S3Result<DueGarbage>;
    /// Forgets garbage whose blobs are unlinked.
    async fn forget_garbage(&self, done: Vec<Garbage>) -> S3Result<()>;
    /// A reader's lease on a body (a blob id or a manifest id) until
    /// `until_ms`: what it refers to is not reclaimed before. `false` when
    /// it is already gone (the reader waited too long).
    async fn lease(&self, body: u128, until_ms: i64) -> S3Result<bool>;
    async fn stats(&self) -> S3Result<Stats>;
    /// The engine's housekeeping, with each collector pass.
    async fn tidy(&self) -> S3Result<()>;
    /// Where the online scrub stands, across every node.
    async fn scrub_cursor(&self) -> S3Result<Option<super::rules::scrub::ScrubCursor>>;
    /// Moves the scrub's cursor from `seen` (as read) to `next`; `false`
    /// when another node moved it first.
    async fn move_scrub_cursor(
        &self,
        seen: Option<super::rules::scrub::ScrubCursor>,
        next: super::rules::scrub::ScrubCursor,
    ) -> S3Result<bool>;
    /// A small durable write, to prove the engine takes writes (readiness).
    async fn probe(&self) -> S3Result<()>;
    /// Which of `ids` any record refers to (start-up recovery of blobs that
    /// a crash left unpublished).
    async fn live_blobs(&self, ids: Vec<BlobId>) -> S3Result<Vec<BlobId>>;
}
