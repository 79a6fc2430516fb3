//! Record encoding, one codec for every engine: each stored record is
//! postcard behind a version byte. Each record type has its own version,
//! raised only when its shape changes, so a record is written in its
//! current format and read in any earlier one; nothing is rewritten in
//! place, and types that never changed stay readable by older binaries.
//! The older shapes live here too ([`v1`], [`v2`], [`v3`]), exactly as the
//! binaries of their time wrote them.

use serde::{Serialize, de::DeserializeOwned};

use super::model::*;
use super::txn::{Fault, SegmentRow};

/// A stored record type.
/// record type has its own version, raised only when its shape changes, so
/// a record is written in its current format and read in any earlier one;
/// nothing is rewritten in place, and types that never changed stay
/// readable by older binaries.
pub trait Record: Serialize + DeserializeOwned {
    const VERSION: u8 = 1;

    /// Reads the body of a format-1 record of a type now at a later
    /// version.
    fn from_v1(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// Reads the body of a record of an earlier `version` other than 1;
    /// `None` when this type never had that version.
    fn from_older(_version: u8, _bytes: &[u8]) -> Option<Result<Self, postcard::Error>> {
        None
    }
}

pub fn encode<T: Record>(value: &T) -> Vec<u8> {
    let mut out = vec![T::VERSION];
    // Serializing plain structs into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("record serializes"));
    out
}

pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, Fault> {
    let corrupt = |e: postcard::Error| Fault::new(format!("corrupt metadata record: {e}"));
    match bytes.split_first() {
        Some((&v, rest)) if v == T::VERSION => postcard::from_bytes(rest).map_err(corrupt),
        Some((1, rest)) => T::from_v1(rest).map_err(corrupt),
        Some((&v, rest)) if v < T::VERSION => match T::from_older(v, rest) {
            Some(record) => record.map_err(corrupt),
            None => Err(Fault::new(format!("unknown metadata record format {v}"))),
        },
        Some((v, _)) => Err(Fault::new(format!(
            "metadata record format {v} is newer than this binary"
        ))),
        None => Err(Fault::new("empty metadata record")),
    }
}

impl Record for Vec<crate::cors::CorsRule> {}
impl Record for SegmentRow {}
impl Record for Tags {}
impl Record for Vec<crate::lifecycle::LifecycleRule> {}

/// Version 2 added the bucket's ACL and policy.
impl Record for BucketRecord {
    const VERSION: u8 = 2;

    fn from_v1(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let v: v1::Bucket = postcard::from_bytes(bytes)?;
        Ok(BucketRecord {
            created_ms: v.created_ms,
            owner: v.owner,
            acl: Acl::Private,
            public_objects: false,
        })
    }
}

/// Version 2 added the object's ACL.
impl Record for ObjectHead {
    const VERSION: u8 = 2;

    fn from_v1(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let v: v1::Head = postcard::from_bytes(bytes)?;
        Ok(ObjectHead {
            size: v.size,
            etag: v.etag,
            last_modified_ms: v.last_modified_ms,
            meta: v.meta,
            upload_id: v.upload_id,
            checksum: v.checksum,
            checksum_type: v.checksum_type,
            body: v.body,
            tags: v.tags,
            acl: Acl::Private,
        })
    }
}

/// Version 2 added the upload's checksum algorithm and type, version 3 its
/// tags, version 4 its ACL, size bound and idempotency token, version 5
/// what a grant holds it to.
impl Record for UploadRecord {
    const VERSION: u8 = 5;

    fn from_v1(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let v: v1::Upload = postcard::from_bytes(bytes)?;
        Ok(UploadRecord {
            initiated_ms: v.initiated_ms,
            owner: v.owner,
            meta: v.meta,
            checksum: None,
            tags: Vec::new(),
            acl: Acl::Private,
            max_size: None,
            token: None,
            granted: None,
        })
    }

    fn from_older(version: u8, bytes: &[u8]) -> Option<Result<Self, postcard::Error>> {
        match version {
            2 => Some(
                postcard::from_bytes(bytes).map(|v: v2::Upload| UploadRecord {
                    initiated_ms: v.initiated_ms,
                    owner: v.owner,
                    meta: v.meta,
                    checksum: v.checksum,
                    tags: Vec::new(),
                    acl: Acl::Private,
                    max_size: None,
                    token: None,
                    granted: None,
                }),
            ),
            3 => Some(
                postcard::from_bytes(bytes).map(|v: v3::Upload| UploadRecord {
                    initiated_ms: v.initiated_ms,
                    owner: v.owner,
                    meta: v.meta,
                    checksum: v.checksum,
                    tags: v.tags,
                    acl: Acl::Private,
                    max_size: None,
                    token: None,
                    granted: None,
                }),
            ),
            4 => Some(
                postcard::from_bytes(bytes).map(|v: v4::Upload| UploadRecord {
                    initiated_ms: v.initiated_ms,
                    owner: v.owner,
                    meta: v.meta,
                    checksum: v.checksum,
                    tags: v.tags,
                    acl: v.acl,
                    max_size: v.max_size,
                    token: v.token,
                    granted: None,
                }),
            ),
            _ => None,
        }
    }
}

/// Version-4 shapes of records whose shape has changed since.
pub mod v4 {
    use serde::{Deserialize, Serialize};

    use crate::checksum::{Algorithm, ChecksumType};
    use crate::store::model::{Acl, ObjectMeta, Tags};

    #[derive(Serialize, Deserialize)]
    pub struct Upload {
        pub initiated_ms: i64,
        pub owner: String,
        pub meta: ObjectMeta,
        pub checksum: Option<(Algorithm, ChecksumType)>,
        pub tags: Tags,
        pub acl: Acl,
        pub max_size: Option<u64>,
        pub token: Option<String>,
    }
}

/// Version-3 shapes of records whose shape has changed since.
pub mod v3 {
    use serde::{Deserialize, Serialize};

    use crate::checksum::{Algorithm, ChecksumType};
    use crate::store::model::{ObjectMeta, Tags};

    #[derive(Serialize, Deserialize)]
    pub struct Upload {
        pub initiated_ms: i64,
        pub owner: String,
        pub meta: ObjectMeta,
        pub checksum: Option<(Algorithm, ChecksumType)>,
        pub tags: Tags,
    }
}

/// Version-2 shapes of records whose shape has changed since.
pub mod v2 {
    use serde::{Deserialize, Serialize};

    use crate::checksum::{Algorithm, ChecksumType};
    use crate::store::model::ObjectMeta;

    #[derive(Serialize, Deserialize)]
    pub struct Upload {
        pub initiated_ms: i64,
        pub owner: String,
        pub meta: ObjectMeta,
        pub checksum: Option<(Algorithm, ChecksumType)>,
    }
}

/// Version 2 added the part's CRC64NVME.
impl Record for PartRecord {
    const VERSION: u8 = 2;

    fn from_v1(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let v: v1::Part = postcard::from_bytes(bytes)?;
        Ok(PartRecord {
            blob: v.blob,
            size: v.size,
            md5: v.md5,
            last_modified_ms: v.last_modified_ms,
            checksum: v.checksum,
            crc64nvme: None,
        })
    }
}

/// Version-1 shapes of the records whose shape has changed since, exactly
/// as the binaries of their time wrote them (the tests write them too).
/// All but `Head` date from format 1; `Head` from format 3.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::checksum::{Checksum, ChecksumType};
    use crate::store::model::{Body, ObjectMeta, Tags};

    #[derive(Serialize, Deserialize)]
    pub struct Bucket {
        pub created_ms: i64,
        pub owner: String,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Head {
        pub size: u64,
        pub etag: String,
        pub last_modified_ms: i64,
        pub meta: ObjectMeta,
        pub upload_id: Option<String>,
        pub checksum: Option<Checksum>,
        pub checksum_type: ChecksumType,
        pub body: Body,
        pub tags: Tags,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Segment {
        pub blob: u128,
        pub len: u64,
        pub md5: [u8; 16],
    }

    #[derive(Serialize, Deserialize)]
    pub struct Object {
        pub size: u64,
        pub etag: String,
        pub last_modified_ms: i64,
        pub meta: ObjectMeta,
        pub segments: Vec<Segment>,
        pub upload_id: Option<String>,
        pub checksum: Option<Checksum>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Upload {
        pub initiated_ms: i64,
        pub owner: String,
        pub meta: ObjectMeta,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Part {
        pub blob: u128,
        pub size: u64,
        pub md5: [u8; 16],
        pub last_modified_ms: i64,
        pub checksum: Option<Checksum>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{Algorithm, ChecksumType};

    #[test]
    fn records_round_trip_with_a_version_byte() {
        let tags: Tags = vec![("k".into(), "v".into())];
        let bytes = encode(&tags);
        assert_eq!(bytes[0], 1, "an unchanged type keeps version 1");
        let back: Tags = decode(&bytes).unwrap();
        assert_eq!(back, tags);

        let b = BucketRecord {
            created_ms: 7,
            owner: "o".into(),
            acl: Acl::AuthenticatedRead,
            public_objects: true,
        };
        let bytes = encode(&b);
        assert_eq!(bytes[0], 2);
        let back: BucketRecord = decode(&bytes).unwrap();
        assert_eq!((back.created_ms, back.owner.as_str()), (7, "o"));
        assert_eq!(
            (back.acl, back.public_objects),
            (Acl::AuthenticatedRead, true)
        );
    }

    #[test]
    fn records_from_before_acls_read_as_private() {
        let v1 = v1::Bucket {
            created_ms: 7,
            owner: "o".into(),
        };
        let mut bytes = vec![1];
        bytes.extend(postcard::to_stdvec(&v1).unwrap());
        let bucket: BucketRecord = decode(&bytes).unwrap();
        assert_eq!((bucket.owner.as_str(), bucket.acl), ("o", Acl::Private));
        assert!(!bucket.public_objects);

        let head = v1::Head {
            size: 3,
            etag: "e".into(),
            last_modified_ms: 9,
            meta: ObjectMeta::default(),
            upload_id: None,
            checksum: None,
            checksum_type: ChecksumType::FullObject,
            body: Body::Inline,
            tags: vec![("t".into(), "1".into())],
        };
        let mut bytes = vec![1];
        bytes.extend(postcard::to_stdvec(&head).unwrap());
        let head: ObjectHead = decode(&bytes).unwrap();
        assert_eq!((head.size, head.acl), (3, Acl::Private));
        assert_eq!(head.tags.len(), 1);

        let upload = v3::Upload {
            initiated_ms: 7,
            owner: "o".into(),
            meta: ObjectMeta::default(),
            checksum: None,
            tags: vec![("t".into(), "1".into())],
        };
        let mut bytes = vec![3];
        bytes.extend(postcard::to_stdvec(&upload).unwrap());
        let upload: UploadRecord = decode(&bytes).unwrap();
        assert_eq!((upload.tags.len(), upload.acl), (1, Acl::Private));
        assert_eq!(encode(&upload)[0], 5);
    }

    #[test]
    fn format_1_parts_still_read() {
        let mut bytes = vec![1];
        let old = v1::Part {
            blob: 7,
            size: 5,
            md5: [1; 16],
            last_modified_ms: 9,
            checksum: None,
        };
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        let part: PartRecord = decode(&bytes).unwrap();
        assert_eq!((part.blob, part.size, part.md5), (7, 5, [1; 16]));
        assert!(part.crc64nvme.is_none());
        assert_eq!(encode(&part)[0], 2);
    }

    #[test]
    fn format_2_uploads_still_read() {
        let old = v2::Upload {
            initiated_ms: 7,
            owner: "o".into(),
            meta: ObjectMeta::default(),
            checksum: Some((Algorithm::Crc32, ChecksumType::Composite)),
        };
        let mut bytes = vec![2];
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        let new: UploadRecord = decode(&bytes).unwrap();
        assert_eq!(
            new.checksum,
            Some((Algorithm::Crc32, ChecksumType::Composite))
        );
        assert!(new.tags.is_empty());
        assert_eq!(encode(&new)[0], 5);
    }

    #[test]
    fn format_4_uploads_read_as_made_without_a_grant() {
        let old = v4::Upload {
            initiated_ms: 7,
            owner: "o".into(),
            meta: ObjectMeta::default(),
            checksum: None,
            tags: vec![("k".into(), "v".into())],
            acl: Acl::PublicRead,
            max_size: Some(1000),
            token: Some("t".into()),
        };
        let mut bytes = vec![4];
        bytes.extend(postcard::to_stdvec(&old).unwrap());
        let mut new: UploadRecord = decode(&bytes).unwrap();
        assert_eq!(
            (new.max_size, new.token.as_deref()),
            (Some(1000), Some("t"))
        );
        assert_eq!((new.acl, new.tags.len()), (Acl::PublicRead, 1));
        assert!(new.granted.is_none());
        new.granted = Some(Granted {
            grant: "g".into(),
            min_size: 100,
            expires_ms: 9,
            held: 0,
        });
        let back: UploadRecord = decode(&encode(&new)).unwrap();
        assert_eq!(back.granted, new.granted);
    }

    #[test]
    fn unknown_versions_are_refused() {
        assert!(decode::<PartRecord>(&[99, 0]).is_err());
        assert!(decode::<PartRecord>(&[]).is_err());
    }
}
