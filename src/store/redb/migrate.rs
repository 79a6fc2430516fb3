//! Opening a data directory: creating the tables of a new one, adding the
//! tables added within format 3, and migrating formats 1 and 2 once.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable, TableHandle, WriteTransaction};

use super::tables::*;
use crate::error::{S3Error, S3Result};
use crate::store::codec::{decode, encode};
use crate::store::model::*;
use crate::store::txn::{Freed, SegmentRow};

pub fn init(db: &Database, grace_ms: i64) -> S3Result<()> {
    let format = {
        let txn = db.begin_write()?;
        let format = txn.open_table(SCHEMA)?.get("format")?.map(|v| v.value());
        // Tables added within a format are created here.
        if format == Some(FORMAT) {
            txn.open_table(BUCKET_TAGS)?;
            txn.open_table(BUCKET_LIFECYCLE)?;
            txn.open_table(SETTINGS)?;
            if !has_table_txn(&txn, BUCKET_UPLOAD_BYTES.name())? {
                count_bucket_upload_bytes(&txn)?;
            }
            if !has_table_txn(&txn, BUCKET_OBJECTS.name())? {
                count_bucket_objects(&txn)?;
            }
        }
        txn.commit()?;
        format
    };
    match format {
        // An older binary run on a migrated directory writes whole objects
        // to `objects` again, where this one would never see them.
        Some(FORMAT) if has_table(db, old::OBJECTS.name())? => Err(S3Error::internal(
            "an older stowage has written to this data directory since it was migrated; its objects would be lost: restore a backup or run that version",
        )),
        Some(FORMAT) => Ok(()),
        Some(newer) if newer > FORMAT => Err(S3Error::internal(format!(
            "the data directory has format {newer}, newer than this binary's {FORMAT}; run a newer stowage"
        ))),
        _ => {
            let migrating = has_table(db, old::OBJECTS.name())?;
            let txn = db.begin_write()?;
            txn.open_table(BUCKETS)?;
            txn.open_table(BUCKET_CORS)?;
            txn.open_table(BUCKET_TAGS)?;
            txn.open_table(BUCKET_LIFECYCLE)?;
            txn.open_table(HEADS)?;
            txn.open_table(INLINE)?;
            txn.open_table(UPLOADS)?;
            txn.open_table(PARTS)?;
            txn.open_table(MANIFESTS)?;
            txn.open_table(SEGMENTS)?;
            txn.open_table(UPLOAD_IDS)?;
            txn.open_table(BLOBS)?;
            txn.open_table(GARBAGE)?;
            txn.open_table(LEASES)?;
            txn.open_table(SETTINGS)?;
            txn.open_table(COUNTERS)?;
            if migrating {
                migrate(&txn, grace_ms)?;
            }
            count_bucket_upload_bytes(&txn)?;
            count_bucket_objects(&txn)?;
            txn.open_table(SCHEMA)?.insert("format", FORMAT)?;
            txn.commit()?;
            if migrating {
                tracing::info!("migrated the metadata to format {FORMAT}");
            }
            Ok(())
        }
    }
}

/// Fills [`BUCKET_UPLOAD_BYTES`] from the part rows (a table added within
/// format 3).
fn count_bucket_upload_bytes(txn: &WriteTransaction) -> S3Result<()> {
    let mut by_bucket = std::collections::BTreeMap::<String, u64>::new();
    {
        let uploads = txn.open_table(UPLOADS)?;
        let parts = txn.open_table(PARTS)?;
        for row in uploads.iter()? {
            let (k, _) = row?;
            let (bucket, _, id) = k.value();
            let bytes: u64 = upload_parts(&parts, id)?.values().map(|p| p.size).sum();
            *by_bucket.entry(bucket.to_owned()).or_default() += bytes;
        }
    }
    let mut table = txn.open_table(BUCKET_UPLOAD_BYTES)?;
    for (bucket, bytes) in by_bucket {
        table.insert(bucket.as_str(), bytes)?;
    }
    Ok(())
}

/// Counts each bucket's objects and bytes (the table is new within format
/// 3, and a migrated directory starts without it).
fn count_bucket_objects(txn: &WriteTransaction) -> S3Result<()> {
    let mut by_bucket = std::collections::BTreeMap::<String, (u64, u64)>::new();
    for row in txn.open_table(HEADS)?.iter()? {
        let (k, v) = row?;
        let (bucket, _) = k.value();
        let head: ObjectHead = decode(v.value())?;
        let totals = by_bucket.entry(bucket.to_owned()).or_default();
        totals.0 += 1;
        totals.1 += head.size;
    }
    let mut table = txn.open_table(BUCKET_OBJECTS)?;
    for (bucket, totals) in by_bucket {
        table.insert(bucket.as_str(), totals)?;
    }
    Ok(())
}

/// Formats 1 and 2 → 3: each object splits into its head and, if it has
/// parts, a manifest of its own (its blobs' counts already count it once
/// per segment); uploads get their time index; garbage gets its due time;
/// the counters are computed once.
fn migrate(txn: &WriteTransaction, grace_ms: i64) -> S3Result<()> {
    {
        let objects = txn.open_table(old::OBJECTS)?;
        let mut heads = txn.open_table(HEADS)?;
        let mut manifests = txn.open_table(MANIFESTS)?;
        let mut segments = txn.open_table(SEGMENTS)?;
        for row in objects.iter()? {
            let (k, v) = row?;
            let (bucket, key) = k.value();
            let o: old::ObjectRecord = decode(v.value())?;
            let body = if o.segments.len() == 1 && !o.etag.contains('-') {
                Body::Blob(o.segments[0].clone())
            } else {
                let manifest = new_id();
                manifests.insert(manifest, 1)?;
                let mut start = 0;
                for (i, segment) in o.segments.iter().enumerate() {
                    let row = SegmentRow {
                        start,
                        segment: segment.clone(),
                    };
                    segments.insert((manifest, i as u32), encode(&row).as_slice())?;
                    start += segment.len;
                }
                Body::Parts {
                    manifest,
                    count: o.segments.len() as u32,
                }
            };
            let head = ObjectHead {
                size: o.size,
                etag: o.etag,
                last_modified_ms: o.last_modified_ms,
                meta: o.meta,
                upload_id: o.upload_id,
                checksum: o.checksum,
                checksum_type: o.checksum_type,
                body,
                tags: Vec::new(),
                acl: Acl::Private,
            };
            heads.insert((bucket, key), encode(&head).as_slice())?;
        }
    }
    txn.delete_table(old::OBJECTS)?;
    let (mut uploads_count, mut upload_bytes) = (0u64, 0u64);
    {
        let uploads = txn.open_table(UPLOADS)?;
        let parts = txn.open_table(PARTS)?;
        let mut ids = txn.open_table(UPLOAD_IDS)?;
        for row in uploads.iter()? {
            let (k, _) = row?;
            let (bucket, key, id) = k.value();
            ids.insert(id, (bucket, key))?;
            uploads_count += 1;
            upload_bytes += upload_parts(&parts, id)?
                .values()
                .map(|p| p.size)
                .sum::<u64>();
        }
    }
    let mut garbage_count = 0;
    if has_table_txn(txn, old::GARBAGE.name())? {
        {
            let old_garbage = txn.open_table(old::GARBAGE)?;
            let mut garbage = txn.open_table(GARBAGE)?;
            for row in old_garbage.iter()? {
                let (id, freed) = row?;
                garbage.insert((freed.value() + grace_ms, id.value()), Freed::Blob.code())?;
                garbage_count += 1;
            }
        }
        txn.delete_table(old::GARBAGE)?;
    }
    let mut counters = txn.open_table(COUNTERS)?;
    counters.insert(UPLOADS_COUNT, uploads_count)?;
    counters.insert(UPLOAD_BYTES, upload_bytes)?;
    counters.insert(GARBAGE_COUNT, garbage_count)?;
    Ok(())
}

/// The parts of an upload, by number.
fn upload_parts(
    parts: &impl ReadableTable<(&'static str, u32), &'static [u8]>,
    upload_id: &str,
) -> S3Result<BTreeMap<u32, PartRecord>> {
    let mut stored = BTreeMap::new();
    for row in parts.range((upload_id, 0)..=(upload_id, u32::MAX))? {
        let (k, v) = row?;
        stored.insert(k.value().1, decode::<PartRecord>(v.value())?);
    }
    Ok(stored)
}

/// Whether the database still has a table of an older format.
fn has_table(db: &Database, name: &str) -> S3Result<bool> {
    let txn = db.begin_read()?;
    let found = txn.list_tables()?.any(|t| t.name() == name);
    Ok(found)
}

fn has_table_txn(txn: &WriteTransaction, name: &str) -> S3Result<bool> {
    let found = txn.list_tables()?.any(|t| t.name() == name);
    Ok(found)
}
