//! Every redb table of the embedded metadata engine. This module owns the
//! on-disk layout: keys encode so that redb's order is S3's listing order
//! (keys are compared as UTF-8 strings, which is byte order); record values
//! are encoded by [`crate::store::codec`].
//!
//! Format 3 (this one) keeps an object's head apart from its segments, so
//! HEAD and listings read one small record per key whatever the part count;
//! indexes uploads by initiation time and garbage by due time; and keeps
//! counters in the transactions that change them. Formats 1 and 2 are
//! migrated once, at open ([`super::migrate`]).

use redb::TableDefinition;

/// The data directory's format: `"format"` → 3.
pub const SCHEMA: TableDefinition<&str, u64> = TableDefinition::new("schema");
pub const FORMAT: u64 = 3;

/// bucket name → [`BucketRecord`]
pub const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// bucket name → `Vec<CorsRule>`, for buckets with a PutBucketCors
/// configuration.
pub const BUCKET_CORS: TableDefinition<&str, &[u8]> = TableDefinition::new("bucket_cors");
/// bucket name → [`Tags`], for buckets with a PutBucketTagging.
pub const BUCKET_TAGS: TableDefinition<&str, &[u8]> = TableDefinition::new("bucket_tags");
/// bucket name → `Vec<LifecycleRule>`, for buckets with a lifecycle
/// configuration.
pub const BUCKET_LIFECYCLE: TableDefinition<&str, &[u8]> = TableDefinition::new("bucket_lifecycle");
/// bucket name → bytes held by the parts of its incomplete uploads.
pub const BUCKET_UPLOAD_BYTES: TableDefinition<&str, u64> =
    TableDefinition::new("bucket_upload_bytes");
/// (bucket, key) → [`ObjectHead`]
/// Objects and their bytes, per bucket that has any (kept by the rules'
/// tallies; counted once when a data directory first lacks it).
pub const BUCKET_OBJECTS: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("bucket_objects");
/// Settings the server keeps for itself (the scrub's cursor).
pub const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
pub const HEADS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("heads");
/// (bucket, key) → the bytes of an object whose body is [`Body::Inline`].
pub const INLINE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("inline");
/// manifest id → number of objects sharing it.
pub const MANIFESTS: TableDefinition<u128, u32> = TableDefinition::new("manifests");
/// (manifest id, index) → [`SegmentRow`]
pub const SEGMENTS: TableDefinition<(u128, u32), &[u8]> = TableDefinition::new("segments");
/// (bucket, key, upload id) → [`UploadRecord`]. Upload ids begin with their
/// creation time, so one key's uploads list in initiation order.
pub const UPLOADS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("uploads");
/// upload id → (bucket, key): every upload in initiation order, for the
/// sweeper.
pub const UPLOAD_IDS: TableDefinition<&str, (&str, &str)> = TableDefinition::new("upload_ids");
/// (upload id, part number) → [`PartRecord`]
pub const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");
/// blob id → number of part rows, object heads and segment rows that refer
/// to it. A blob exists exactly for the ids in this table (or in
/// [`GARBAGE`] until the collector unlinks it).
pub const BLOBS: TableDefinition<u128, u32> = TableDefinition::new("blobs");
/// (due time in ms, id) → what it frees ([`crate::store::txn::Freed`]).
/// Written in the transaction that drops the last reference, due a grace period
/// later.
pub const GARBAGE: TableDefinition<(i64, u128), u8> = TableDefinition::new("garbage_due");
/// body id (blob or manifest) → until when a reader holds it (ms).
pub const LEASES: TableDefinition<u128, i64> = TableDefinition::new("leases");
/// name → value: [`UPLOADS_COUNT`], [`UPLOAD_BYTES`], [`GARBAGE_COUNT`],
/// [`PROBE`].
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
pub const UPLOADS_COUNT: &str = "uploads";
pub const UPLOAD_BYTES: &str = "upload_bytes";
pub const GARBAGE_COUNT: &str = "garbage";
/// When the last readiness probe wrote (ms).
pub const PROBE: &str = "probe";

/// Formats 1 and 2 kept whole objects, segments and all, in one record of
/// the `objects` table; read only to migrate them.
pub mod old {
    use redb::TableDefinition;
    use serde::{Deserialize, Serialize};

    use crate::checksum::{Checksum, ChecksumType};
    use crate::store::codec::{Record, v1};
    use crate::store::model::{ObjectMeta, Segment};

    /// (bucket, key) → [`ObjectRecord`]
    pub const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
    /// blob id → when it was freed (ms).
    pub const GARBAGE: TableDefinition<u128, i64> = TableDefinition::new("garbage");

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ObjectRecord {
        pub size: u64,
        pub etag: String,
        pub last_modified_ms: i64,
        pub meta: ObjectMeta,
        pub segments: Vec<Segment>,
        pub upload_id: Option<String>,
        pub checksum: Option<Checksum>,
        pub checksum_type: ChecksumType,
    }

    /// Version 2 added the checksum type and the segments' part checksums.
    impl Record for ObjectRecord {
        const VERSION: u8 = 2;

        fn from_v1(bytes: &[u8]) -> Result<Self, postcard::Error> {
            let v: v1::Object = postcard::from_bytes(bytes)?;
            Ok(ObjectRecord {
                size: v.size,
                etag: v.etag,
                last_modified_ms: v.last_modified_ms,
                meta: v.meta,
                segments: v
                    .segments
                    .into_iter()
                    .map(|s| Segment {
                        blob: s.blob,
                        len: s.len,
                        md5: s.md5,
                        checksum: None,
                    })
                    .collect(),
                upload_id: v.upload_id,
                checksum: v.checksum,
                checksum_type: ChecksumType::FullObject,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{Algorithm, Checksum, ChecksumType};
    use crate::store::codec::{decode, encode, v1};
    use crate::store::model::*;

    #[test]
    fn format_1_records_still_read() {
        // Byte for byte what the format-1 binary wrote (issue 2's landing).
        let old = v1::Object {
            size: 3,
            etag: "abc-1".into(),
            last_modified_ms: 5,
            meta: ObjectMeta::default(),
            segments: vec![v1::Segment {
                blob: 9,
                len: 3,
                md5: [2; 16],
            }],
            upload_id: Some("u".into()),
            checksum: Some(Checksum {
                algorithm: Algorithm::Crc32,
                value: "AAAAAA==".into(),
            }),
        };
        let mut bytes = vec![1];
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        let new: old::ObjectRecord = decode(&bytes).unwrap();
        assert_eq!(
            (new.size, new.segments[0].blob, new.segments[0].md5),
            (3, 9, [2; 16])
        );
        assert_eq!(new.checksum_type, ChecksumType::FullObject);
        assert!(new.segments[0].checksum.is_none());
        assert_eq!(new.upload_id.as_deref(), Some("u"));

        let mut bytes = vec![1];
        let upload = v1::Upload {
            initiated_ms: 7,
            owner: "o".into(),
            meta: ObjectMeta::default(),
        };
        bytes.extend(postcard::to_stdvec(&upload).unwrap());
        let new: UploadRecord = decode(&bytes).unwrap();
        assert_eq!((new.initiated_ms, new.owner.as_str()), (7, "o"));
        assert!(new.checksum.is_none());
        // A record written now reads back as itself.
        let again: UploadRecord = decode(&encode(&new)).unwrap();
        assert_eq!(again.initiated_ms, 7);
    }
}
