//! CompleteMultipartUpload's rules, apart from any engine: S3's checks on
//! the listed parts, the object's ETag and checksum combined from its parts'
//! without reading a byte, and which part blobs the object keeps. One pass
//! over the parts, O(parts).

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::checksum::{self, Algorithm, Checksum, ChecksumType};
use crate::error::{Code, S3Error, S3Result};
use crate::store::model::*;

/// What a valid completion turns into.
#[derive(Debug)]
pub struct Plan {
    pub head: ObjectHead,
    /// The object's segments, in order: the listed parts.
    pub segments: Vec<Segment>,
    /// Part blobs the object does not keep.
    pub freed: Vec<BlobId>,
    /// Bytes the upload's parts held.
    pub upload_bytes: u64,
}

/// Checks `completion` against the upload's `stored` parts and plans the
/// object, whose segments go under `manifest`.
pub fn plan(
    upload: UploadRecord,
    upload_id: &str,
    stored: &BTreeMap<u32, PartRecord>,
    completion: &Completion,
    manifest: u128,
    now_ms: i64,
) -> S3Result<Plan> {
    let segments = validate_parts(
        &completion.parts,
        stored,
        completion.min_part_size,
        upload.checksum,
    )?;
    let size: u64 = segments.iter().map(|s| s.len).sum();
    if let Some(granted) = &upload.granted
        && size < granted.min_size
    {
        return Err(S3Error::with_message(
            Code::EntityTooSmall,
            format!(
                "The upload holds {size} bytes; its upload grant requires at least {}.",
                granted.min_size
            ),
        )
        .detail("ProposedSize", size.to_string())
        .detail("MinSizeAllowed", granted.min_size.to_string()));
    }
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
    let head = ObjectHead {
        size,
        etag: format!("{}-{}", hex(&digest), segments.len()),
        last_modified_ms: now_ms,
        meta: upload.meta,
        upload_id: Some(upload_id.to_owned()),
        checksum,
        checksum_type,
        body: Body::Parts {
            manifest,
            count: segments.len() as u32,
        },
        tags: upload.tags,
        acl: upload.acl,
    };
    check_expected(completion, upload.checksum, &head)?;
    // Listed parts ascend strictly, so a merge walk finds the unlisted ones.
    let mut listed = completion.parts.iter().map(|p| p.part_number).peekable();
    let mut freed = Vec::new();
    for (number, part) in stored {
        while listed.next_if(|n| n < number).is_some() {}
        if listed.next_if_eq(number).is_none() {
            freed.push(part.blob);
        }
    }
    Ok(Plan {
        head,
        segments,
        freed,
        upload_bytes: stored.values().map(|p| p.size).sum(),
    })
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
    record: &ObjectHead,
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
    stored: &BTreeMap<u32, PartRecord>,
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
        let stored: BTreeMap<u32, PartRecord> =
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
}
