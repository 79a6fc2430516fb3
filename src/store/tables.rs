//! Every redb table and stored record. This module owns the on-disk metadata
//! format: keys encode so that redb's order is S3's listing order (keys are
//! compared as UTF-8 strings, which is byte order), and every record value
//! starts with a format version byte so the format can evolve.

use redb::TableDefinition;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::checksum::Checksum;
use crate::error::{S3Error, S3Result};

/// bucket name → [`BucketRecord`]
pub const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// bucket name → `Vec<CorsRule>`, for buckets with a PutBucketCors
/// configuration.
pub const BUCKET_CORS: TableDefinition<&str, &[u8]> = TableDefinition::new("bucket_cors");
/// (bucket, key) → [`ObjectRecord`]
pub const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
/// (bucket, key, upload id) → [`UploadRecord`]. Upload ids begin with their
/// creation time, so one key's uploads list in initiation order.
pub const UPLOADS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("uploads");
/// (upload id, part number) → [`PartRecord`]
pub const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");
/// blob id → number of segments and parts that refer to it. A blob file
/// exists exactly for the ids in this table (or in [`GARBAGE`] until the
/// collector unlinks it).
pub const BLOBS: TableDefinition<u128, u32> = TableDefinition::new("blobs");
/// blob id → when it was freed (ms since the epoch). Written in the same
/// transaction that drops the last reference; the collector unlinks the file
/// and then removes the row.
pub const GARBAGE: TableDefinition<u128, i64> = TableDefinition::new("garbage");

const FORMAT_VERSION: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Serializing plain structs into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("record serializes"));
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> S3Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => postcard::from_bytes(rest)
            .map_err(|e| S3Error::internal(format!("corrupt metadata record: {e}"))),
        Some((v, _)) => Err(S3Error::internal(format!(
            "metadata record format {v} is newer than this binary"
        ))),
        None => Err(S3Error::internal("empty metadata record")),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRecord {
    pub created_ms: i64,
    /// Access key id of the creator.
    pub owner: String,
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Segment {
    pub blob: u128,
    pub len: u64,
    pub md5: [u8; 16],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub size: u64,
    /// Without quotes: hex MD5, or `hex-N` for a multipart object.
    pub etag: String,
    pub last_modified_ms: i64,
    pub meta: ObjectMeta,
    /// The object's bytes, in order. A PutObject makes one segment; a
    /// multipart object has one per part.
    pub segments: Vec<Segment>,
    /// The upload this object was completed from, so that a retried
    /// CompleteMultipartUpload can replay its success.
    pub upload_id: Option<String>,
    /// The whole object's checksum, when known.
    pub checksum: Option<Checksum>,
}

impl ObjectRecord {
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRecord {
    pub blob: u128,
    pub size: u64,
    pub md5: [u8; 16],
    pub last_modified_ms: i64,
    pub checksum: Option<Checksum>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_a_version_byte() {
        let p = PartRecord {
            blob: 7,
            size: 5,
            md5: [1; 16],
            last_modified_ms: 9,
            checksum: None,
        };
        let bytes = encode(&p);
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: PartRecord = decode(&bytes).unwrap();
        assert_eq!((back.blob, back.size, back.md5), (7, 5, [1; 16]));
    }

    #[test]
    fn unknown_versions_are_refused() {
        assert!(decode::<PartRecord>(&[99, 0]).is_err());
        assert!(decode::<PartRecord>(&[]).is_err());
    }
}
