//! Multipart uploads in the store. Parts are blobs; completion is a
//! metadata-only transaction that turns the listed parts into the object's
//! segments, so no byte is copied whatever the object's size.

use md5::{Digest, Md5};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::blobs::{self, PendingBlob};
use super::tables::*;
use super::{Store, WriteCondition, check_bucket, decref, hex, replace_object};
use crate::checksum::{self, Algorithm, Checksum, ChecksumType};
use crate::error::{Code, S3Error, S3Result};
use crate::time::now_ms;

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
}

struct UploadSize {
    bucket: String,
    key: String,
    id: String,
    initiated_ms: i64,
    bytes: u64,
}

pub fn new_upload_id(now_ms: i64) -> String {
    // Time first, so one key's uploads sort by initiation; 128 random bits
    // make the id unguessable. Hex keeps it URL-safe.
    format!("{:012x}{}", now_ms as u64, blobs::id_hex(blobs::new_id()))
}

impl Store {
    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        record: &UploadRecord,
    ) -> S3Result<String> {
        let txn = self.write_txn()?;
        let id = new_upload_id(record.initiated_ms);
        {
            check_bucket(&txn, bucket)?;
            let mut uploads = txn.open_table(UPLOADS)?;
            uploads.insert((bucket, key, id.as_str()), encode(record).as_slice())?;
        }
        txn.commit()?;
        Ok(id)
    }

    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord> {
        let txn = self.db.begin_read()?;
        if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
            return Err(Code::NoSuchBucket.into());
        }
        let uploads = txn.open_table(UPLOADS)?;
        let raw = uploads
            .get((bucket, key, upload_id))?
            .ok_or(Code::NoSuchUpload)?;
        decode(raw.value())
    }

    /// Stores `blob` as part `part_number`, replacing an earlier part with
    /// that number. The upload is checked inside the commit, so a part that
    /// was in flight while the upload was aborted is refused, not revived.
    pub fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        blob: PendingBlob,
    ) -> S3Result<PartRecord> {
        let txn = self.write_txn()?;
        let record = PartRecord {
            blob: blob.id,
            size: blob.written.len,
            md5: blob.written.md5,
            last_modified_ms: now_ms(),
            checksum: Some(blob.written.checksum.clone()),
            crc64nvme: Some(blob.written.crc64nvme.clone()),
        };
        {
            if txn
                .open_table(UPLOADS)?
                .get((bucket, key, upload_id))?
                .is_none()
            {
                return Err(Code::NoSuchUpload.into());
            }
            let mut parts = txn.open_table(PARTS)?;
            let old = parts.insert((upload_id, part_number), encode(&record).as_slice())?;
            let old: Option<PartRecord> = old.map(|raw| decode(raw.value())).transpose()?;
            drop(parts);
            let mut blobs = txn.open_table(BLOBS)?;
            blobs.insert(blob.id, 1)?;
            if let Some(old) = old {
                let mut garbage = txn.open_table(GARBAGE)?;
                decref(&mut blobs, &mut garbage, old.blob, record.last_modified_ms)?;
            }
        }
        super::commit_with_blob(txn, blob)?;
        Ok(record)
    }

    /// One part of an upload (for UploadPartCopy sources and ListParts).
    pub fn parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> S3Result<(Vec<(u32, PartRecord)>, bool)> {
        let txn = self.db.begin_read()?;
        let parts = txn.open_table(PARTS)?;
        let mut out = Vec::new();
        let mut truncated = false;
        for row in parts.range((upload_id, after.saturating_add(1))..=(upload_id, u32::MAX))? {
            let (k, v) = row?;
            if out.len() == max {
                truncated = true;
                break;
            }
            out.push((k.value().1, decode(v.value())?));
        }
        Ok((out, truncated))
    }

    /// CompleteMultipartUpload.
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completion: &Completion,
        min_part_size: u64,
        condition: &WriteCondition,
    ) -> S3Result<ObjectRecord> {
        let txn = self.write_txn()?;
        let record = {
            check_bucket(&txn, bucket)?;
            let upload: Option<UploadRecord> = {
                let uploads = txn.open_table(UPLOADS)?;
                let raw = uploads.get((bucket, key, upload_id))?;
                raw.map(|raw| decode(raw.value())).transpose()?
            };
            let Some(upload) = upload else {
                return replay_completion(&txn, bucket, key, upload_id);
            };
            let now = now_ms();
            let stored = {
                let parts = txn.open_table(PARTS)?;
                let mut stored = std::collections::BTreeMap::new();
                for row in parts.range((upload_id, 0)..=(upload_id, u32::MAX))? {
                    let (k, v) = row?;
                    stored.insert(k.value().1, decode::<PartRecord>(v.value())?);
                }
                stored
            };
            let segments =
                validate_parts(&completion.parts, &stored, min_part_size, upload.checksum)?;
            // Validated: every listed part is stored.
            let crc64s: Vec<Option<&Checksum>> = completion
                .parts
                .iter()
                .map(|p| {
                    stored
                        .get(&p.part_number)
                        .and_then(|r| r.crc64nvme.as_ref())
                })
                .collect();
            let (checksum, checksum_type) = object_checksum(upload.checksum, &segments, &crc64s);
            let mut md5s = Md5::new();
            for seg in &segments {
                md5s.update(seg.md5);
            }
            let digest: [u8; 16] = md5s.finalize().into();
            let record = ObjectRecord {
                size: segments.iter().map(|s| s.len).sum(),
                etag: format!("{}-{}", hex(&digest), segments.len()),
                last_modified_ms: now,
                meta: upload.meta,
                segments,
                upload_id: Some(upload_id.to_owned()),
                checksum,
                checksum_type,
            };
            check_expected(completion, upload.checksum, &record)?;
            // The listed parts' references move to the object; the others
            // are freed with the upload.
            let keep: Vec<u128> = record.segments.iter().map(|s| s.blob).collect();
            drop_upload(&txn, bucket, key, upload_id, Some(&keep), now)?;
            replace_object(&txn, bucket, key, &record, condition, now)?;
            record
        };
        txn.commit()?;
        Ok(record)
    }

    pub fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let txn = self.write_txn()?;
        {
            check_bucket(&txn, bucket)?;
            if txn
                .open_table(UPLOADS)?
                .get((bucket, key, upload_id))?
                .is_none()
            {
                return Err(Code::NoSuchUpload.into());
            }
            drop_upload(&txn, bucket, key, upload_id, None, now_ms())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Every incomplete upload with the bytes its parts hold.
    fn upload_sizes(&self) -> S3Result<Vec<UploadSize>> {
        let txn = self.db.begin_read()?;
        let uploads = txn.open_table(UPLOADS)?;
        let parts = txn.open_table(PARTS)?;
        let mut out = Vec::new();
        for row in uploads.iter()? {
            let (k, v) = row?;
            let (bucket, key, id) = k.value();
            let record: UploadRecord = decode(v.value())?;
            let mut bytes = 0;
            for part in parts.range((id, 0)..=(id, u32::MAX))? {
                bytes += decode::<PartRecord>(part?.1.value())?.size;
            }
            out.push(UploadSize {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                id: id.to_owned(),
                initiated_ms: record.initiated_ms,
                bytes,
            });
        }
        Ok(out)
    }

    /// How many uploads are incomplete, and the bytes their parts hold.
    pub fn incomplete_uploads(&self) -> S3Result<(u64, u64)> {
        let sizes = self.upload_sizes()?;
        Ok((sizes.len() as u64, sizes.iter().map(|s| s.bytes).sum()))
    }

    /// Aborts every upload initiated before `cutoff_ms`. Returns the number
    /// aborted, the bytes they freed, and the bytes still held by the
    /// remaining incomplete uploads.
    pub fn sweep_uploads(&self, cutoff_ms: i64) -> S3Result<(usize, u64, u64)> {
        let (expired, kept): (Vec<_>, Vec<_>) = self
            .upload_sizes()?
            .into_iter()
            .partition(|u| u.initiated_ms < cutoff_ms);
        let freed = expired.iter().map(|u| u.bytes).sum();
        let held = kept.iter().map(|u| u.bytes).sum();
        if expired.is_empty() {
            return Ok((0, 0, held));
        }
        let txn = self.write_txn()?;
        let now = now_ms();
        for u in &expired {
            // An upload completed or aborted since the scan is simply gone.
            drop_upload(&txn, &u.bucket, &u.key, &u.id, None, now)?;
        }
        txn.commit()?;
        Ok((expired.len(), freed, held))
    }
}

/// Removes an upload and its parts, freeing every part blob not in `keep`.
pub(super) fn drop_upload(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    upload_id: &str,
    keep: Option<&[u128]>,
    now: i64,
) -> S3Result<()> {
    txn.open_table(UPLOADS)?.remove((bucket, key, upload_id))?;
    let mut parts = txn.open_table(PARTS)?;
    let mut blobs = txn.open_table(BLOBS)?;
    let mut garbage = txn.open_table(GARBAGE)?;
    let removed = parts.extract_from_if((upload_id, 0)..=(upload_id, u32::MAX), |_, _| true)?;
    for row in removed {
        let (_, v) = row?;
        let part: PartRecord = decode(v.value())?;
        if !keep.is_some_and(|keep| keep.contains(&part.blob)) {
            decref(&mut blobs, &mut garbage, part.blob, now)?;
        }
    }
    Ok(())
}

/// A Complete for an upload that no longer exists succeeds again if that
/// upload became the current object (a client retrying after a lost
/// response); otherwise the upload is unknown.
fn replay_completion(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<ObjectRecord> {
    let objects = txn.open_table(OBJECTS)?;
    if let Some(raw) = objects.get((bucket, key))? {
        let current: ObjectRecord = decode(raw.value())?;
        if current.upload_id.as_deref() == Some(upload_id) {
            return Ok(current);
        }
    }
    Err(Code::NoSuchUpload.into())
}

/// The checksum of a completed object: what its upload asked for, combined
/// from the parts' checksums without reading a byte. An upload that asked
/// for none gets a full-object CRC64NVME, as S3 gives it, from the CRC64NVME
/// every part carries (parts stored before those existed fall back to a CRC
/// they share, if any).
fn object_checksum(
    asked: Option<(Algorithm, ChecksumType)>,
    segments: &[Segment],
    crc64s: &[Option<&Checksum>],
) -> (Option<Checksum>, ChecksumType) {
    let lens = segments.iter().map(|s| s.len);
    let full = |algorithm, checksums: Vec<&Checksum>| {
        let with_len: Vec<(&Checksum, u64)> = checksums.into_iter().zip(lens.clone()).collect();
        checksum::combine(algorithm, &with_len)
    };
    let part_checksums: Option<Vec<&Checksum>> =
        segments.iter().map(|s| s.checksum.as_ref()).collect();
    match asked {
        Some((algorithm, kind)) => {
            let value = part_checksums.and_then(|c| match kind {
                ChecksumType::Composite => checksum::composite(algorithm, &c),
                ChecksumType::FullObject => full(algorithm, c),
            });
            (value, kind)
        }
        None => {
            let value = match crc64s.iter().copied().collect::<Option<Vec<&Checksum>>>() {
                Some(crcs) => full(Algorithm::Crc64Nvme, crcs),
                None => part_checksums.and_then(|c| {
                    let algorithm = c.first()?.algorithm;
                    full(algorithm, c)
                }),
            };
            (value, ChecksumType::FullObject)
        }
    }
}

/// The checksum and type a Complete request said the object must have.
fn check_expected(
    completion: &Completion,
    asked: Option<(Algorithm, ChecksumType)>,
    record: &ObjectRecord,
) -> S3Result<()> {
    if let Some(kind) = completion.kind
        && asked.is_some_and(|(_, k)| k != kind)
    {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            format!(
                "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                asked.map_or("", |(_, k)| k.name())
            ),
        ));
    }
    let Some((algorithm, expected)) = &completion.expected else {
        return Ok(());
    };
    let bad = || {
        S3Error::with_message(
            Code::BadDigest,
            format!(
                "The {} you specified did not match the calculated checksum.",
                algorithm.name()
            ),
        )
    };
    match (record.checksum_value(), &record.checksum) {
        (Some((a, shown)), Some(stored))
            if a == *algorithm && (*expected == shown || *expected == stored.value) =>
        {
            Ok(())
        }
        (Some((a, _)), _) if a == *algorithm => Err(bad()),
        // S3 ignores an expected checksum of another algorithm on an
        // upload that named none.
        _ if asked.is_none() => Ok(()),
        _ => Err(S3Error::with_message(
            Code::InvalidRequest,
            format!(
                "The upload was not created with the {} checksum algorithm.",
                algorithm.name()
            ),
        )),
    }
}

/// S3's checks on a completion's part list, in S3's order; returns the
/// object's segments.
fn validate_parts(
    listed: &[CompletedPart],
    stored: &std::collections::BTreeMap<u32, PartRecord>,
    min_part_size: u64,
    asked: Option<(Algorithm, ChecksumType)>,
) -> S3Result<Vec<Segment>> {
    if listed.is_empty() {
        return Err(S3Error::with_message(
            Code::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    if listed
        .windows(2)
        .any(|w| w[0].part_number >= w[1].part_number)
    {
        return Err(Code::InvalidPartOrder.into());
    }
    // With a checksum algorithm, S3 wants the parts numbered 1, 2, 3...
    if asked.is_some() && listed.iter().zip(1..).any(|(p, n)| p.part_number != n) {
        return Err(S3Error::with_message(
            Code::InvalidPartOrder,
            "An upload with a checksum algorithm must list parts numbered consecutively from 1.",
        ));
    }
    let mut segments = Vec::with_capacity(listed.len());
    for (i, want) in listed.iter().enumerate() {
        let part = stored
            .get(&want.part_number)
            .filter(|p| hex(&p.md5) == want.etag.trim_matches('"'))
            .ok_or_else(|| {
                S3Error::new(Code::InvalidPart)
                    .detail("PartNumber", want.part_number.to_string())
                    .detail("ETag", want.etag.clone())
            })?;
        match (&want.checksum, asked) {
            (Some(sent), Some((algorithm, _))) if sent.algorithm != algorithm => {
                return Err(S3Error::with_message(
                    Code::BadDigest,
                    format!(
                        "The {} you specified for part {} did not match what we received.",
                        sent.algorithm.name().to_ascii_lowercase(),
                        want.part_number
                    ),
                ));
            }
            (Some(sent), _) if part.checksum.as_ref() != Some(sent) => {
                return Err(S3Error::with_message(
                    Code::InvalidPart,
                    format!(
                        "One or more of the specified parts could not be found. The part's {} checksum does not match the one that was uploaded.",
                        sent.algorithm.name()
                    ),
                )
                .detail("PartNumber", want.part_number.to_string())
                .detail("ETag", want.etag.clone()));
            }
            (None, Some((algorithm, ChecksumType::Composite))) => {
                return Err(S3Error::with_message(
                    Code::InvalidRequest,
                    format!(
                        "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                        algorithm.name().to_ascii_lowercase(),
                        want.part_number
                    ),
                ));
            }
            _ => {}
        }
        let last = i + 1 == listed.len();
        if !last && part.size < min_part_size {
            return Err(S3Error::new(Code::EntityTooSmall)
                .detail("ProposedSize", part.size.to_string())
                .detail("MinSizeAllowed", min_part_size.to_string())
                .detail("PartNumber", want.part_number.to_string())
                .detail("ETag", hex(&part.md5)));
        }
        segments.push(Segment {
            blob: part.blob,
            len: part.size,
            md5: part.md5,
            checksum: part.checksum.clone(),
        });
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(size: u64, md5: u8) -> PartRecord {
        PartRecord {
            blob: md5 as u128,
            size,
            md5: [md5; 16],
            last_modified_ms: 0,
            checksum: None,
            crc64nvme: None,
        }
    }

    fn listed(n: u32, md5: u8) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: format!("\"{}\"", hex(&[md5; 16])),
            checksum: None,
        }
    }

    #[test]
    fn parts_must_ascend_exist_match_and_be_large_enough() {
        let stored: std::collections::BTreeMap<u32, PartRecord> =
            [(1, part(10, 1)), (2, part(3, 2)), (3, part(1, 3))].into();
        let ok = validate_parts(&[listed(1, 1), listed(3, 3)], &stored, 5, None).unwrap();
        assert_eq!(ok.len(), 2);
        let e = validate_parts(&[listed(3, 3), listed(1, 1)], &stored, 5, None).unwrap_err();
        assert_eq!(e.code, Code::InvalidPartOrder);
        let e = validate_parts(&[listed(1, 1), listed(1, 1)], &stored, 5, None).unwrap_err();
        assert_eq!(e.code, Code::InvalidPartOrder);
        let e = validate_parts(&[listed(1, 9)], &stored, 5, None).unwrap_err();
        assert_eq!(e.code, Code::InvalidPart);
        let e = validate_parts(&[listed(4, 3)], &stored, 5, None).unwrap_err();
        assert_eq!(e.code, Code::InvalidPart);
        let e = validate_parts(&[listed(2, 2), listed(3, 3)], &stored, 5, None).unwrap_err();
        assert_eq!(e.code, Code::EntityTooSmall);
        let sha = Some((Algorithm::Sha256, ChecksumType::Composite));
        let e = validate_parts(&[listed(1, 1), listed(3, 3)], &stored, 1, sha).unwrap_err();
        assert_eq!(
            e.code,
            Code::InvalidPartOrder,
            "gaps with a checksum algorithm"
        );
        assert_eq!(
            validate_parts(&[], &stored, 5, None).unwrap_err().code,
            Code::MalformedXML
        );
    }

    #[test]
    fn upload_ids_sort_by_time_and_are_url_safe() {
        let a = new_upload_id(1_000);
        let b = new_upload_id(2_000);
        assert!(a < b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_upload_id(1_000), a);
    }
}
