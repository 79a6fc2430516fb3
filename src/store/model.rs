//! What the store holds, in S3 terms and independent of any engine: buckets,
//! object heads and their bodies, uploads and parts, and the conditions a
//! write may carry. Both store interfaces speak these types; how an engine
//! lays them out on disk is its own business.

use serde::{Deserialize, Serialize};

use crate::checksum::{Algorithm, Checksum, ChecksumType};
use crate::error::{Code, S3Error, S3Result};

/// A blob's name: 128 random bits, never derived from a key.
pub type BlobId = u128;

pub fn new_id() -> u128 {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    u128::from_le_bytes(b)
}

/// A new upload id. Time first, so one key's uploads (and the sweep's
/// index) sort by initiation; 128 random bits make it unguessable. Hex
/// keeps it URL-safe.
pub fn new_upload_id(now_ms: i64) -> String {
    format!("{:012x}{}", now_ms as u64, id_hex(new_id()))
}

/// The smallest id of an upload initiated at `ms`: every upload initiated
/// earlier has an id below it.
pub fn upload_id_floor(ms: i64) -> String {
    format!("{:012x}", ms.max(0) as u64)
}

/// When an upload was initiated, read from its id (0 for an id that is not
/// one of ours).
pub fn upload_initiated_ms(id: &str) -> i64 {
    id.get(..12)
        .and_then(|t| i64::from_str_radix(t, 16).ok())
        .unwrap_or(0)
}

pub fn id_hex(id: u128) -> String {
    format!("{id:032x}")
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRecord {
    pub created_ms: i64,
    /// Access key id of the creator.
    pub owner: String,
    /// Who besides the owner may list the bucket.
    pub acl: Acl,
    /// Whether the bucket has the one policy Stowage keeps: anyone may read
    /// every object in it (`s3:GetObject` for Principal `*`).
    pub public_objects: bool,
}

/// A canned ACL: who, besides the owner (who always has full control), may
/// read. Grants to other accounts and anonymous writes are not supported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acl {
    #[default]
    Private,
    /// `public-read`: everyone, signed or not (AllUsers READ).
    PublicRead,
    /// `authenticated-read`: every request signed by a known key
    /// (AuthenticatedUsers READ).
    AuthenticatedRead,
}

impl Acl {
    /// Whether this ACL lets a request read, given whether it was signed by
    /// a known key.
    pub fn grants_read(self, authenticated: bool) -> bool {
        match self {
            Acl::Private => false,
            Acl::PublicRead => true,
            Acl::AuthenticatedRead => authenticated,
        }
    }
}

/// The HTTP metadata stored with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    /// `x-amz-meta-*` pairs, names lower-cased and without the prefix.
    pub user: Vec<(String, String)>,
}

/// One contiguous piece of an object: a whole blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub blob: BlobId,
    pub len: u64,
    pub md5: [u8; 16],
    /// The part's checksum, for a multipart object (GET `?partNumber`,
    /// GetObjectAttributes).
    pub checksum: Option<Checksum>,
}

/// Where an object's bytes are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// Small enough to live in the metadata engine itself: writing it costs
    /// one (batched) metadata commit and no file.
    Inline,
    /// One blob: a PutObject.
    Blob(Segment),
    /// A multipart object: `count` segments kept apart from the head, under
    /// `manifest`, so the head stays small whatever the part count. Copies
    /// share the manifest.
    Parts { manifest: u128, count: u32 },
}

/// What HEAD, listings and conditions need to know of an object: small, and
/// the same size for one part or ten thousand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectHead {
    pub size: u64,
    /// Without quotes: hex MD5, or `hex-N` for a multipart object.
    pub etag: String,
    pub last_modified_ms: i64,
    pub meta: ObjectMeta,
    /// The upload this object was completed from, so that a retried
    /// CompleteMultipartUpload can replay its success.
    pub upload_id: Option<String>,
    /// The object's checksum, when known: of its bytes, or (composite) of
    /// its parts' checksums.
    pub checksum: Option<Checksum>,
    pub checksum_type: ChecksumType,
    pub body: Body,
    /// Object tags, in the order given.
    pub tags: Tags,
    pub acl: Acl,
}

/// What a CopyObject sets on its copy besides the source's bytes: `meta`
/// and `tags` replace the source's when given (the `REPLACE` directives);
/// the ACL is never copied (as on S3).
#[derive(Debug, Clone, Default)]
pub struct CopyChanges {
    pub meta: Option<ObjectMeta>,
    pub tags: Option<Tags>,
    pub acl: Acl,
}

/// Tags of an object or a bucket: (key, value) pairs with unique keys.
pub type Tags = Vec<(String, String)>;

impl ObjectHead {
    /// How many parts the object has (1 unless multipart).
    pub fn parts(&self) -> u32 {
        match self.body {
            Body::Parts { count, .. } => count,
            _ => 1,
        }
    }

    /// The checksum as S3 shows it: a composite one carries `-N`.
    pub fn checksum_value(&self) -> Option<(Algorithm, String)> {
        let c = self.checksum.as_ref()?;
        Some(match self.checksum_type {
            ChecksumType::FullObject => (c.algorithm, c.value.clone()),
            ChecksumType::Composite => (c.algorithm, format!("{}-{}", c.value, self.parts())),
        })
    }

    /// Multipart objects (and copies of them) keep their parts: their ETag
    /// is `md5-N` and `partNumber` reads one segment.
    pub fn is_multipart(&self) -> bool {
        self.etag.contains('-')
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    pub initiated_ms: i64,
    pub owner: String,
    pub meta: ObjectMeta,
    /// `x-amz-checksum-algorithm` and `-type` given at creation.
    pub checksum: Option<(Algorithm, ChecksumType)>,
    /// `x-amz-tagging` given at creation: the object's tags.
    pub tags: Tags,
    /// `x-amz-acl` given at creation: the object's ACL.
    pub acl: Acl,
    /// The most its parts may hold together, when an upload grant bounds
    /// it: a part that would pass it is refused.
    pub max_size: Option<u64>,
    /// The creation's idempotency token: a create that brings the same
    /// token for the same key gets this upload again.
    pub token: Option<String>,
    /// Set on an upload made under an upload grant.
    pub granted: Option<Granted>,
}

/// What an upload grant holds its uploads to beyond their size bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    /// Identifies the grant: under one grant, a key has at most one
    /// unfinished upload (a new one replaces it).
    pub grant: String,
    /// The least the completed object may hold (the grant's
    /// `content-length-range` minimum).
    pub min_size: u64,
    /// When the upload is gone: the grant's expiry and a resume window
    /// after it, at most the server's age for abandoned uploads.
    pub expires_ms: i64,
    /// What its parts hold now, kept as each is stored: the running total
    /// its size bound is checked against.
    pub held: u64,
}

impl UploadRecord {
    /// Whether a grant's upload has outlived its time at `now_ms` (it is
    /// then treated as gone, and the sweep aborts it).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.granted
            .as_ref()
            .is_some_and(|g| g.expires_ms <= now_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartRecord {
    pub blob: BlobId,
    pub size: u64,
    pub md5: [u8; 16],
    pub last_modified_ms: i64,
    pub checksum: Option<Checksum>,
    /// The part's CRC64NVME, whatever its checksum's algorithm (absent in
    /// parts stored by format 1).
    pub crc64nvme: Option<Checksum>,
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
    pub fn check(&self, current: Option<&ObjectHead>) -> S3Result<()> {
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
    pub fn check_at_commit(&self, current: Option<&ObjectHead>) -> S3Result<()> {
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

/// `x-amz-copy-source-if-*`: conditions a copy's source must meet, checked
/// by the engine against the source it actually copies.
#[derive(Debug, Clone, Default)]
pub struct SourceConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    /// Seconds since the epoch.
    pub if_unmodified_since: Option<i64>,
    pub if_modified_since: Option<i64>,
}

impl SourceConditions {
    pub fn check(&self, obj: &ObjectHead) -> S3Result<()> {
        let modified = obj.last_modified_ms / 1000;
        let failed = self
            .if_match
            .as_deref()
            .is_some_and(|l| !etag_matches(l, &obj.etag))
            || self
                .if_none_match
                .as_deref()
                .is_some_and(|l| etag_matches(l, &obj.etag))
            || (self.if_match.is_none() && self.if_unmodified_since.is_some_and(|t| modified > t))
            || (self.if_none_match.is_none()
                && self.if_modified_since.is_some_and(|t| modified <= t));
        if failed {
            Err(Code::PreconditionFailed.into())
        } else {
            Ok(())
        }
    }
}

/// One `<Part>` of a CompleteMultipartUpload body.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub part_number: u32,
    /// Unquoted.
    pub etag: String,
    /// The part's checksum, if the body gave one.
    pub checksum: Option<Checksum>,
}

/// A CompleteMultipartUpload request, parsed but not validated.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub parts: Vec<CompletedPart>,
    /// `x-amz-checksum-<algorithm>`: the value the object's checksum must
    /// have (a composite one with or without its `-N`).
    pub expected: Option<(Algorithm, String)>,
    /// `x-amz-checksum-type`, which must be the upload's.
    pub kind: Option<ChecksumType>,
    /// Smallest size of a part other than the last.
    pub min_part_size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume strictly after this key (or after the common prefix it names).
    pub after: Option<String>,
    pub max: usize,
}

#[derive(Debug, Default)]
pub struct ListPage {
    pub objects: Vec<(String, ObjectHead)>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix on the page: where the next page starts.
    pub last: Option<String>,
}

#[derive(Debug, Default)]
pub struct UploadListPage {
    /// (key, upload id, record)
    pub uploads: Vec<(String, String, UploadRecord)>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
}

/// What the store holds that costs disk but is no object, kept current by
/// the transactions that change it (so reading it scans nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub incomplete_uploads: u64,
    pub incomplete_upload_bytes: u64,
    /// Bytes held by incomplete uploads, per bucket that has any.
    pub upload_bytes_by_bucket: Vec<(String, u64)>,
    pub garbage_blobs: u64,
    /// Objects and their bytes, per bucket that has any.
    pub objects_by_bucket: Vec<(String, u64, u64)>,
}

/// An incomplete upload, as the sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRef {
    pub bucket: String,
    pub key: String,
    pub id: String,
    pub initiated_ms: i64,
    /// When a grant's upload expires, if it was made under one.
    pub expires_ms: Option<i64>,
}

/// What aborting a batch of expired uploads did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Swept {
    pub aborted: u64,
    pub freed_bytes: u64,
}

/// An object the sweep found expired, as it saw it: it is deleted only if
/// it is still that object (not overwritten since).
#[derive(Debug, Clone)]
pub struct Expired {
    pub key: String,
    pub etag: String,
    pub last_modified_ms: i64,
    /// Tags change without changing Last-Modified, and rules filter by them.
    pub tags: Tags,
}

/// What the collector may unlink now.
#[derive(Debug, Clone, Default)]
pub struct DueGarbage {
    pub blobs: Vec<Garbage>,
    /// More is due: collect again without waiting.
    pub more: bool,
}

/// A freed blob the collector may unlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garbage {
    pub due_ms: i64,
    pub blob: BlobId,
}
