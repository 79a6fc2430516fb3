//! The small transactional interface each metadata engine provides, and
//! nothing more: typed record reads and writes, ordered range scans,
//! reference counts, the garbage index, leases and counters. The rules
//! (conditions, reference counting, completion, copies, expiry, listing)
//! are written once above it, in [`super::rules`].
//!
//! A change is two phases, and the types keep them apart:
//! - [`Change::check`] sees only [`Reads`]: it reads what the change needs
//!   and decides, and every refusal happens here;
//! - [`Change::apply`] sees only [`Writes`]: it writes what `check`
//!   decided, and can fail only with a [`Fault`] (storage, a broken
//!   connection, a corrupt record), never with a refusal.
//!
//! So a refused change has written nothing, whichever engine runs it: redb
//! keeps its batch-mates, PostgreSQL commits the reads that decided.
//!
//! Every method returns a `Send` future. An engine whose calls never wait
//! (redb) completes a whole change in one poll ([`ready`]).

use std::future::Future;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::model::*;
use crate::error::{Code, S3Error, S3Result};

/// A failure of the engine beneath a change: never a refusal. Clients see
/// it as an internal error (or, for an engine that can tell, a 503 when
/// its database is unreachable).
#[derive(Debug)]
pub struct Fault {
    pub message: String,
    /// The engine's own error, for an engine that retries or classifies.
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Fault {
    pub fn new(message: impl Into<String>) -> Fault {
        Fault {
            message: message.into(),
            source: None,
        }
    }

    /// Wraps an engine's error, keeping it for the engine to inspect.
    pub fn engine(e: impl std::error::Error + Send + Sync + 'static) -> Fault {
        Fault {
            message: format!("metadata store: {e}"),
            source: Some(Box::new(e)),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Fault> for S3Error {
    fn from(f: Fault) -> S3Error {
        S3Error::internal(f.message)
    }
}

/// Why a change's check stopped: a refusal (an S3 answer) or a fault.
#[derive(Debug)]
pub enum Stop {
    Refused(S3Error),
    Fault(Fault),
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        Stop::Fault(f)
    }
}

impl From<S3Error> for Stop {
    fn from(e: S3Error) -> Stop {
        if e.code == Code::InternalError {
            Stop::Fault(Fault::new(e.cause.unwrap_or(e.message)))
        } else {
            Stop::Refused(e)
        }
    }
}

impl From<Code> for Stop {
    fn from(c: Code) -> Stop {
        S3Error::from(c).into()
    }
}

impl From<Stop> for S3Error {
    fn from(s: Stop) -> S3Error {
        match s {
            Stop::Refused(e) => e,
            Stop::Fault(f) => f.into(),
        }
    }
}

pub type Done<T> = Result<T, Fault>;
pub type Checked<T> = Result<T, Stop>;

/// A bucket's optional configurations, each stored whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    Cors,
    Tags,
    Lifecycle,
}

/// What a reference count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A blob: once for each part row, single-blob head and manifest
    /// segment that names it.
    Blob,
    /// A manifest: once for each object head that names it.
    Manifest,
}

/// What a garbage row frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freed {
    Blob,
    /// A manifest, taken apart by the collector a batch at a time.
    Manifest,
}

impl Freed {
    pub fn code(self) -> u8 {
        match self {
            Freed::Blob => 0,
            Freed::Manifest => 1,
        }
    }

    pub fn from_code(code: u8) -> Freed {
        if code == 1 {
            Freed::Manifest
        } else {
            Freed::Blob
        }
    }
}

/// A change to the totals kept for [`Stats`]. An engine that computes them
/// on demand (with aggregates) ignores these.
#[derive(Debug, Clone, Copy)]
pub enum Tally<'a> {
    /// Incomplete uploads.
    Uploads(i64),
    /// Bytes held by the parts of `bucket`'s incomplete uploads.
    UploadBytes { bucket: &'a str, delta: i64 },
    /// Garbage rows.
    Garbage(i64),
    /// Objects stored in `bucket`, and their bytes.
    Objects {
        bucket: &'a str,
        objects: i64,
        bytes: i64,
    },
}

/// One segment of a manifest and the object offset where it starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentRow {
    pub start: u64,
    pub segment: Segment,
}

/// An object's head and, when its body is inline, its bytes.
pub type Object = (ObjectHead, Option<Bytes>);

/// A scan's upper end: keys (or upload keys) strictly below this.
pub type Below<'a> = Option<&'a str>;

/// An ordered scan: rows from `from`, with keys below `below`, at most
/// `max` of them.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a, B> {
    pub from: Bound<B>,
    pub below: Below<'a>,
    pub max: usize,
}

impl<'a, B> Scan<'a, B> {
    /// The first `max` rows.
    pub fn first(max: usize) -> Scan<'a, B> {
        Scan {
            from: Bound::Unbounded,
            below: None,
            max,
        }
    }
}

/// An object's place: (bucket, key).
pub type At<'a> = (&'a str, &'a str);
/// An inline body to store with a head, if any.
pub type Inline<'a> = Option<&'a [u8]>;
/// Heads by key.
pub type Heads = Vec<(String, ObjectHead)>;
/// Uploads: (key, upload id, record).
pub type Uploads = Vec<(String, String, UploadRecord)>;
/// Uploads by id: (upload id, bucket, key).
pub type UploadIds = Vec<(String, String, String)>;
/// Parts by number.
pub type PartList = Vec<(u32, PartRecord)>;
/// A manifest's segments by index.
pub type SegmentList = Vec<(u32, SegmentRow)>;
/// Reference counts by id.
pub type Counts = Vec<(u128, u32)>;

/// Consistent reads. Each method is one lookup or one ordered scan.
pub trait Reads: Send {
    fn bucket(&mut self, name: &str) -> impl Future<Output = Done<Option<BucketRecord>>> + Send;
    /// Every bucket, in byte order of their names.
    fn buckets(&mut self) -> impl Future<Output = Done<Vec<(String, BucketRecord)>>> + Send;
    /// `None` when the bucket does not exist; `Some(None)` when it has no
    /// such configuration.
    fn config(
        &mut self,
        name: &str,
        of: Config,
    ) -> impl Future<Output = Done<Option<Option<Vec<u8>>>>> + Send;
    /// Every bucket's configuration of a kind, for those that have one.
    fn configs(&mut self, of: Config) -> impl Future<Output = Done<Vec<(String, Vec<u8>)>>> + Send;

    /// The head at `key`; `None` when the bucket does not exist (one
    /// lookup answers both).
    fn head(
        &mut self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Done<Option<Option<ObjectHead>>>> + Send;
    /// The head and, when its body is inline, the bytes, read together;
    /// `None` when the bucket does not exist.
    fn object(
        &mut self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Done<Option<Option<Object>>>> + Send;
    /// Heads of `bucket` in key byte order.
    fn heads(
        &mut self,
        bucket: &str,
        scan: Scan<'_, &str>,
    ) -> impl Future<Output = Done<Heads>> + Send;

    fn upload(
        &mut self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> impl Future<Output = Done<Option<UploadRecord>>> + Send;
    /// Uploads of `bucket` from `(key, id)`, by key and then id.
    fn uploads(
        &mut self,
        bucket: &str,
        scan: Scan<'_, (&str, &str)>,
    ) -> impl Future<Output = Done<Uploads>> + Send;
    /// Uploads of every bucket by id (so by initiation time).
    fn uploads_by_id(
        &mut self,
        scan: Scan<'_, &str>,
    ) -> impl Future<Output = Done<UploadIds>> + Send;
    fn part(
        &mut self,
        upload_id: &str,
        number: u32,
    ) -> impl Future<Output = Done<Option<PartRecord>>> + Send;
    /// Up to `max` parts numbered above `after`, by number.
    fn parts(
        &mut self,
        id: &str,
        after: u32,
        max: usize,
    ) -> impl Future<Output = Done<PartList>> + Send;
    /// The bytes of every part of an upload but number `except`.
    fn part_bytes(
        &mut self,
        upload_id: &str,
        except: u32,
    ) -> impl Future<Output = Done<u64>> + Send;

    /// Up to `max` segments of a manifest from index `first`.
    fn segments(
        &mut self,
        m: u128,
        first: u32,
        max: usize,
    ) -> impl Future<Output = Done<SegmentList>> + Send;
    /// The index of the last of a manifest's `count` segments that starts
    /// at or before `offset`.
    fn segment_at(
        &mut self,
        manifest: u128,
        count: u32,
        offset: u64,
    ) -> impl Future<Output = Done<u32>> + Send;

    /// A reference count; `Some(0)` for a freed body not yet collected.
    fn refs(&mut self, of: Counted, id: u128) -> impl Future<Output = Done<Option<u32>>> + Send;
    /// Up to `max` reference counts with ids above `after`, by id.
    fn counts(
        &mut self,
        of: Counted,
        after: Option<u128>,
        max: usize,
    ) -> impl Future<Output = Done<Counts>> + Send;
    /// Up to `max` garbage rows due at `now_ms`, by due time.
    fn garbage(
        &mut self,
        now_ms: i64,
        max: usize,
    ) -> impl Future<Output = Done<Vec<(i64, u128, Freed)>>> + Send;
    fn lease(&mut self, body: u128) -> impl Future<Output = Done<Option<i64>>> + Send;
    fn stats(&mut self) -> impl Future<Output = Done<Stats>> + Send;
    /// A setting the server keeps for itself (the scrub's cursor).
    fn setting(&mut self, name: &str) -> impl Future<Output = Done<Option<Vec<u8>>>> + Send;
}

/// Writes, inside the transaction whose reads decided them.
pub trait Writes: Send {
    fn put_bucket(
        &mut self,
        name: &str,
        record: &BucketRecord,
    ) -> impl Future<Output = Done<()>> + Send;
    /// Removes a bucket with its configurations and its totals.
    fn remove_bucket(&mut self, name: &str) -> impl Future<Output = Done<()>> + Send;
    fn set_config(
        &mut self,
        name: &str,
        of: Config,
        value: Option<&[u8]>,
    ) -> impl Future<Output = Done<()>> + Send;

    /// Writes a head; `inline`, when given, is its inline body (otherwise
    /// any inline body stays as it is).
    fn put_head(
        &mut self,
        at: At<'_>,
        head: &ObjectHead,
        inline: Inline<'_>,
    ) -> impl Future<Output = Done<()>> + Send;
    fn remove_inline(&mut self, bucket: &str, key: &str) -> impl Future<Output = Done<()>> + Send;
    /// Removes a head, and its inline body when it has one.
    fn remove_head(&mut self, at: At<'_>, inline: bool) -> impl Future<Output = Done<()>> + Send;

    fn put_upload(
        &mut self,
        at: At<'_>,
        id: &str,
        record: &UploadRecord,
    ) -> impl Future<Output = Done<()>> + Send;
    fn remove_upload(
        &mut self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> impl Future<Output = Done<()>> + Send;
    fn put_part(
        &mut self,
        upload_id: &str,
        number: u32,
        part: &PartRecord,
    ) -> impl Future<Output = Done<()>> + Send;
    /// Removes every part of an upload.
    fn remove_parts(&mut self, upload_id: &str) -> impl Future<Output = Done<()>> + Send;

    /// Writes a new manifest's segments, indexed from 0 (one statement
    /// where the engine can).
    fn put_segments(
        &mut self,
        manifest: u128,
        rows: &[SegmentRow],
    ) -> impl Future<Output = Done<()>> + Send;
    fn remove_segment(
        &mut self,
        manifest: u128,
        index: u32,
    ) -> impl Future<Output = Done<()>> + Send;

    /// A count of 1 for a new body.
    fn new_refs(&mut self, of: Counted, id: u128) -> impl Future<Output = Done<()>> + Send;
    /// Adds `delta` to a live count and returns the new count; `None` (and
    /// no change) when the count is missing or already zero.
    fn add_refs(
        &mut self,
        of: Counted,
        id: u128,
        delta: i32,
    ) -> impl Future<Output = Done<Option<u32>>> + Send;
    fn remove_refs(&mut self, of: Counted, id: u128) -> impl Future<Output = Done<()>> + Send;
    /// Sets a count outright (a repair).
    fn set_refs(&mut self, of: Counted, id: u128, n: u32) -> impl Future<Output = Done<()>> + Send;

    fn add_garbage(
        &mut self,
        due_ms: i64,
        id: u128,
        freed: Freed,
    ) -> impl Future<Output = Done<()>> + Send;
    /// Whether the row was there.
    fn remove_garbage(&mut self, due_ms: i64, id: u128) -> impl Future<Output = Done<bool>> + Send;
    /// Holds a body until at least `until_ms` (a later lease stands).
    fn extend_lease(&mut self, body: u128, until_ms: i64) -> impl Future<Output = Done<()>> + Send;
    fn remove_lease(&mut self, body: u128) -> impl Future<Output = Done<()>> + Send;

    fn tally(&mut self, tally: Tally<'_>) -> impl Future<Output = Done<()>> + Send;
    fn put_setting(&mut self, name: &str, value: &[u8]) -> impl Future<Output = Done<()>> + Send;
    /// A small durable write that proves the engine takes writes.
    fn probe(&mut self) -> impl Future<Output = Done<()>> + Send;
}

/// A read of the store, run in one consistent view.
pub trait Query: Send + Sync + 'static {
    type Output: Send + 'static;
    /// Whether the reads must see one snapshot even on an engine whose
    /// single-statement reads need none (a scan of the whole store).
    const SNAPSHOT: bool = false;
    fn run<R: Reads>(&self, txn: &mut R) -> impl Future<Output = Checked<Self::Output>> + Send;
}

/// One atomic change of the store. It may run more than once (a retried
/// transaction, a rebuilt batch), so it must not consume what it holds.
pub trait Change: Send + Sync + 'static {
    /// What `check` decided.
    type Plan: Send;
    type Output: Send + 'static;
    /// Reads and decides: every refusal happens here, before any write.
    fn check<R: Reads>(&self, txn: &mut R) -> impl Future<Output = Checked<Self::Plan>> + Send;
    /// Writes what `check` decided.
    fn apply<W: Writes>(
        &self,
        plan: Self::Plan,
        txn: &mut W,
    ) -> impl Future<Output = Done<Self::Output>> + Send;
}

/// What the rules need of an engine: a consistent read and an atomic,
/// durable change.
pub trait Engine: Send + Sync + std::fmt::Debug + 'static {
    fn query<Q: Query>(&self, q: Q) -> impl Future<Output = S3Result<Q::Output>> + Send;
    fn change<C: Change>(&self, c: C) -> impl Future<Output = S3Result<C::Output>> + Send;
    /// The engine's own housekeeping, run with each collector pass (the
    /// PostgreSQL engine folds its usage rows).
    fn tidy(&self) -> impl Future<Output = S3Result<()>> + Send {
        async { Ok(()) }
    }
}

/// Runs a change's two phases in one transaction that implements both
/// interfaces.
pub async fn run_change<C: Change, T: Reads + Writes>(c: &C, txn: &mut T) -> Checked<C::Output> {
    let plan = c.check(txn).await?;
    Ok(c.apply(plan, txn).await?)
}

/// Completes a future that never waits (an engine whose calls are
/// synchronous) in one poll.
pub fn ready<F: Future<Output = Checked<T>>, T>(f: F) -> Checked<T> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => {
            Err(Fault::new("metadata store: a synchronous call waited").into())
        }
    }
}
