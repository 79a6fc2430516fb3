//! Every change the redb engine makes, one function each, applied inside a
//! group-commit batch. Each checks everything it can refuse before its
//! first write (see [`super::batch`]).

use redb::{Database, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::tables::*;
use super::{has_table, has_table_txn, upload_parts};
use crate::cors::CorsRule;
use crate::error::{Code, S3Error, S3Result};
use crate::lifecycle::LifecycleRule;
use crate::store::complete;
use crate::store::model::*;
use crate::time::now_ms;

/// Creates the tables of a new data directory, or migrates an old one.
pub fn init(db: &Database, grace_ms: i64) -> S3Result<()> {
    let format = {
        let txn = db.begin_write()?;
        let format = txn.open_table(SCHEMA)?.get("format")?.map(|v| v.value());
        // Tables added within a format are created here.
        if format == Some(FORMAT) {
            txn.open_table(BUCKET_TAGS)?;
            txn.open_table(BUCKET_LIFECYCLE)?;
            if !has_table_txn(&txn, BUCKET_UPLOAD_BYTES.name())? {
                count_bucket_upload_bytes(&txn)?;
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
            txn.open_table(COUNTERS)?;
            if migrating {
                migrate(&txn, grace_ms)?;
            }
            count_bucket_upload_bytes(&txn)?;
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
                garbage.insert((freed.value() + grace_ms, id.value()), GARBAGE_BLOB)?;
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

// ---- shared pieces ----

fn check_bucket(txn: &WriteTransaction, bucket: &str) -> S3Result<()> {
    match txn.open_table(BUCKETS)?.get(bucket)? {
        Some(_) => Ok(()),
        None => Err(Code::NoSuchBucket.into()),
    }
}

fn head(txn: &WriteTransaction, bucket: &str, key: &str) -> S3Result<Option<ObjectHead>> {
    let heads = txn.open_table(HEADS)?;
    let raw = heads.get((bucket, key))?;
    raw.map(|raw| decode(raw.value())).transpose()
}

fn add_counter(txn: &WriteTransaction, name: &str, delta: i64) -> S3Result<()> {
    if delta == 0 {
        return Ok(());
    }
    let mut counters = txn.open_table(COUNTERS)?;
    let current = counters.get(name)?.map_or(0, |v| v.value());
    counters.insert(name, current.saturating_add_signed(delta))?;
    Ok(())
}

/// Changes what `bucket`'s incomplete uploads hold; a row that reaches 0
/// goes.
fn add_bucket_upload_bytes(txn: &WriteTransaction, bucket: &str, delta: i64) -> S3Result<()> {
    if delta == 0 {
        return Ok(());
    }
    let mut table = txn.open_table(BUCKET_UPLOAD_BYTES)?;
    let current = table.get(bucket)?.map_or(0, |v| v.value());
    match current.saturating_add_signed(delta) {
        0 => table.remove(bucket)?,
        n => table.insert(bucket, n)?,
    };
    Ok(())
}

fn add_garbage(txn: &WriteTransaction, due_ms: i64, id: u128, kind: u8) -> S3Result<()> {
    txn.open_table(GARBAGE)?.insert((due_ms, id), kind)?;
    add_counter(txn, GARBAGE_COUNT, 1)
}

/// Adds `delta` to a live reference count in `table` (blobs or
/// manifests) and returns the new count. A missing or zero count is an
/// error, never taken for the last reference: freeing what something else
/// may still use would lose data.
fn recount(
    txn: &WriteTransaction,
    (table, what): (TableDefinition<u128, u32>, &str),
    id: u128,
    delta: i64,
) -> S3Result<u32> {
    let mut counts = txn.open_table(table)?;
    let n = counts.get(id)?.map(|g| g.value()).filter(|n| *n > 0);
    let n = n.ok_or_else(|| missing_count(what, id))?;
    let new = u32::try_from(i64::from(n) + delta).map_err(S3Error::internal)?;
    counts.insert(id, new)?;
    Ok(new)
}

const BLOB_COUNTS: (TableDefinition<u128, u32>, &str) = (BLOBS, "blob");
const MANIFEST_COUNTS: (TableDefinition<u128, u32>, &str) = (MANIFESTS, "manifest");

/// Counts one more reference to a blob that already has one.
fn incref_blob(txn: &WriteTransaction, id: BlobId) -> S3Result<()> {
    recount(txn, BLOB_COUNTS, id, 1).map(drop)
}

/// Drops one reference; the last one sends the blob to the collector (and
/// returns `true`).
fn decref_blob(txn: &WriteTransaction, id: BlobId, due_ms: i64) -> S3Result<bool> {
    let last = recount(txn, BLOB_COUNTS, id, -1)? == 0;
    if last {
        add_garbage(txn, due_ms, id, GARBAGE_BLOB)?;
    }
    Ok(last)
}

fn missing_count(what: &str, id: u128) -> S3Error {
    S3Error::internal(format!("{what} {} has no reference count", id_hex(id)))
}

/// Drops the references an object's body holds.
fn free_body(
    txn: &WriteTransaction,
    (bucket, key): (&str, &str),
    body: &Body,
    due_ms: i64,
) -> S3Result<()> {
    match body {
        Body::Inline => {
            txn.open_table(INLINE)?.remove((bucket, key))?;
        }
        Body::Blob(seg) => {
            decref_blob(txn, seg.blob, due_ms)?;
        }
        Body::Parts { manifest, .. } => {
            if recount(txn, MANIFEST_COUNTS, *manifest, -1)? == 0 {
                add_garbage(txn, due_ms, *manifest, GARBAGE_MANIFEST)?;
            }
        }
    }
    Ok(())
}

/// Writes `head` at `key`, whose current head is `old`: the old body's
/// references are dropped first, so a copy onto itself keeps its blobs.
fn replace_head(
    txn: &WriteTransaction,
    at: (&str, &str),
    head: &ObjectHead,
    old: Option<&ObjectHead>,
    inline: Option<&[u8]>,
    due_ms: i64,
) -> S3Result<()> {
    if let Some(old) = old {
        free_body(txn, at, &old.body, due_ms)?;
    }
    if let Some(bytes) = inline {
        txn.open_table(INLINE)?.insert(at, bytes)?;
    }
    txn.open_table(HEADS)?.insert(at, encode(head).as_slice())?;
    Ok(())
}

// ---- buckets ----

pub fn create_bucket(txn: &WriteTransaction, name: &str, owner: &str, acl: Acl) -> S3Result<()> {
    let mut buckets = txn.open_table(BUCKETS)?;
    if let Some(existing) = buckets.get(name)? {
        let existing: BucketRecord = decode(existing.value())?;
        return Err(if existing.owner == owner {
            Code::BucketAlreadyOwnedByYou.into()
        } else {
            Code::BucketAlreadyExists.into()
        });
    }
    let record = BucketRecord {
        created_ms: now_ms(),
        owner: owner.to_owned(),
        acl,
        public_objects: false,
    };
    buckets.insert(name, encode(&record).as_slice())?;
    Ok(())
}

/// Changes a bucket's record in place (its ACL or policy).
pub fn update_bucket(
    txn: &WriteTransaction,
    name: &str,
    change: impl FnOnce(&mut BucketRecord),
) -> S3Result<()> {
    let mut buckets = txn.open_table(BUCKETS)?;
    let mut record: BucketRecord = match buckets.get(name)? {
        Some(v) => decode(v.value())?,
        None => return Err(Code::NoSuchBucket.into()),
    };
    change(&mut record);
    buckets.insert(name, encode(&record).as_slice())?;
    Ok(())
}

/// Incomplete multipart uploads do not keep a bucket alive; they are
/// aborted with it and their parts freed.
pub fn delete_bucket(txn: &WriteTransaction, name: &str, due_ms: i64) -> S3Result<()> {
    check_bucket(txn, name)?;
    let heads = txn.open_table(HEADS)?;
    let first = heads.range((name, "")..)?.next().transpose()?;
    if first.is_some_and(|(k, _)| k.value().0 == name) {
        return Err(Code::BucketNotEmpty.into());
    }
    drop(heads);
    let uploads: Vec<(String, String)> = {
        let table = txn.open_table(UPLOADS)?;
        let mut v = Vec::new();
        for row in table.range((name, "", "")..)? {
            let (k, _) = row?;
            let (b, key, id) = k.value();
            if b != name {
                break;
            }
            v.push((key.to_owned(), id.to_owned()));
        }
        v
    };
    for (key, id) in uploads {
        drop_upload(txn, (name, &key, &id), Dropped::All, due_ms)?;
    }
    txn.open_table(BUCKETS)?.remove(name)?;
    txn.open_table(BUCKET_CORS)?.remove(name)?;
    txn.open_table(BUCKET_TAGS)?.remove(name)?;
    txn.open_table(BUCKET_LIFECYCLE)?.remove(name)?;
    txn.open_table(BUCKET_UPLOAD_BYTES)?.remove(name)?;
    Ok(())
}

pub fn set_bucket_lifecycle(
    txn: &WriteTransaction,
    name: &str,
    rules: Option<&Vec<LifecycleRule>>,
) -> S3Result<()> {
    check_bucket(txn, name)?;
    let mut table = txn.open_table(BUCKET_LIFECYCLE)?;
    match rules {
        Some(rules) => table.insert(name, encode(rules).as_slice())?,
        None => table.remove(name)?,
    };
    Ok(())
}

pub fn set_bucket_tags(txn: &WriteTransaction, name: &str, tags: Option<&Tags>) -> S3Result<()> {
    check_bucket(txn, name)?;
    let mut table = txn.open_table(BUCKET_TAGS)?;
    match tags {
        Some(tags) => table.insert(name, encode(tags).as_slice())?,
        None => table.remove(name)?,
    };
    Ok(())
}

/// Changes an object's tags or ACL. Its Last-Modified stays: neither is
/// its content (as on S3).
pub fn update_head(
    txn: &WriteTransaction,
    at: (&str, &str),
    change: impl FnOnce(&mut ObjectHead),
) -> S3Result<()> {
    check_bucket(txn, at.0)?;
    let mut head = head(txn, at.0, at.1)?.ok_or(Code::NoSuchKey)?;
    change(&mut head);
    txn.open_table(HEADS)?
        .insert(at, encode(&head).as_slice())?;
    Ok(())
}

pub fn set_bucket_cors(
    txn: &WriteTransaction,
    name: &str,
    rules: Option<&Vec<CorsRule>>,
) -> S3Result<()> {
    check_bucket(txn, name)?;
    let mut table = txn.open_table(BUCKET_CORS)?;
    match rules {
        Some(rules) => table.insert(name, encode(rules).as_slice())?,
        None => table.remove(name)?,
    };
    Ok(())
}

// ---- objects ----

pub fn put_object(
    txn: &WriteTransaction,
    at: (&str, &str),
    new: &ObjectHead,
    inline: Option<&[u8]>,
    condition: &WriteCondition,
    due_ms: i64,
) -> S3Result<()> {
    check_bucket(txn, at.0)?;
    let old = head(txn, at.0, at.1)?;
    condition.check_at_commit(old.as_ref())?;
    if let Body::Blob(seg) = &new.body {
        txn.open_table(BLOBS)?.insert(seg.blob, 1)?;
    }
    replace_head(txn, at, new, old.as_ref(), inline, due_ms)
}

pub fn copy_object(
    txn: &WriteTransaction,
    src: (&str, &str),
    dst: (&str, &str),
    changes: &CopyChanges,
    conditions: &SourceConditions,
    grace_ms: i64,
) -> S3Result<ObjectHead> {
    check_bucket(txn, src.0)?;
    check_bucket(txn, dst.0)?;
    let mut copy = head(txn, src.0, src.1)?.ok_or(Code::NoSuchKey)?;
    conditions.check(&copy)?;
    let old = head(txn, dst.0, dst.1)?;
    let inline = match &copy.body {
        Body::Inline => {
            let table = txn.open_table(INLINE)?;
            let raw = table
                .get(src)?
                .ok_or_else(|| S3Error::internal("inline body missing"))?;
            Some(raw.value().to_vec())
        }
        Body::Blob(seg) => {
            incref_blob(txn, seg.blob)?;
            None
        }
        Body::Parts { manifest, .. } => {
            recount(txn, MANIFEST_COUNTS, *manifest, 1)?;
            None
        }
    };
    if let Some(meta) = &changes.meta {
        copy.meta = meta.clone();
    }
    if let Some(tags) = &changes.tags {
        copy.tags = tags.clone();
    }
    copy.acl = changes.acl;
    // A copy was not completed from any upload: a Complete retried against
    // the copy's key must not replay.
    copy.upload_id = None;
    copy.last_modified_ms = now_ms();
    let due = copy.last_modified_ms + grace_ms;
    replace_head(txn, dst, &copy, old.as_ref(), inline.as_deref(), due)?;
    Ok(copy)
}

pub fn delete_objects(
    txn: &WriteTransaction,
    bucket: &str,
    keys: &[String],
    due_ms: i64,
) -> S3Result<()> {
    check_bucket(txn, bucket)?;
    for key in keys {
        let old: Option<ObjectHead> = {
            let mut heads = txn.open_table(HEADS)?;
            let removed = heads.remove((bucket, key.as_str()))?;
            removed.map(|raw| decode(raw.value())).transpose()?
        };
        if let Some(old) = old {
            free_body(txn, (bucket, key), &old.body, due_ms)?;
        }
    }
    Ok(())
}

// ---- multipart uploads ----

pub fn create_upload(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    record: &UploadRecord,
) -> S3Result<String> {
    check_bucket(txn, bucket)?;
    if let Some(token) = &record.token {
        let uploads = txn.open_table(UPLOADS)?;
        for row in uploads.range((bucket, key, "")..)? {
            let (k, v) = row?;
            if k.value().0 != bucket || k.value().1 != key {
                break;
            }
            let existing: UploadRecord = decode(v.value())?;
            if existing.token.as_deref() == Some(token) {
                return Ok(k.value().2.to_owned());
            }
        }
    }
    let id = new_upload_id(record.initiated_ms);
    txn.open_table(UPLOADS)?
        .insert((bucket, key, id.as_str()), encode(record).as_slice())?;
    txn.open_table(UPLOAD_IDS)?
        .insert(id.as_str(), (bucket, key))?;
    add_counter(txn, UPLOADS_COUNT, 1)?;
    Ok(id)
}

fn check_upload(
    txn: &WriteTransaction,
    (bucket, key, id): (&str, &str, &str),
) -> S3Result<UploadRecord> {
    match txn.open_table(UPLOADS)?.get((bucket, key, id))? {
        Some(v) => decode(v.value()),
        None => Err(Code::NoSuchUpload.into()),
    }
}

/// Refuses a part that would take an upload bounded by a grant past its
/// bound (counting every other part already stored).
fn check_bound(
    txn: &WriteTransaction,
    upload: &UploadRecord,
    id: &str,
    number: u32,
    size: u64,
) -> S3Result<()> {
    let Some(max) = upload.max_size else {
        return Ok(());
    };
    let mut total = size;
    for row in txn.open_table(PARTS)?.range((id, 0)..=(id, u32::MAX))? {
        let (k, v) = row?;
        if k.value().1 != number {
            total += decode::<PartRecord>(v.value())?.size;
        }
    }
    if total > max {
        return Err(S3Error::with_message(
            Code::EntityTooLarge,
            format!("This part would bring the upload to {total} bytes; its upload grant allows at most {max}."),
        )
        .detail("MaxSizeAllowed", max.to_string()));
    }
    Ok(())
}

pub fn put_part(
    txn: &WriteTransaction,
    upload: (&str, &str, &str),
    number: u32,
    part: &PartRecord,
    grace_ms: i64,
) -> S3Result<()> {
    let record = check_upload(txn, upload)?;
    check_bound(txn, &record, upload.2, number, part.size)?;
    let mut part = part.clone();
    part.last_modified_ms = now_ms();
    let old = txn
        .open_table(PARTS)?
        .insert((upload.2, number), encode(&part).as_slice())?
        .map(|raw| decode::<PartRecord>(raw.value()))
        .transpose()?;
    txn.open_table(BLOBS)?.insert(part.blob, 1)?;
    let mut grown = part.size as i64;
    if let Some(old) = old {
        decref_blob(txn, old.blob, part.last_modified_ms + grace_ms)?;
        grown -= old.size as i64;
    }
    add_counter(txn, UPLOAD_BYTES, grown)?;
    add_bucket_upload_bytes(txn, upload.0, grown)
}

/// What dropping an upload frees.
enum Dropped<'a> {
    /// Every part (an abort): read from the part rows.
    All,
    /// A completion, whose plan already knows the parts: only `freed` lose
    /// their reference (the others' move to the object), and they held
    /// `bytes` in all.
    Completed { freed: &'a [BlobId], bytes: u64 },
}

/// Removes an upload and its parts, freeing what `dropped` says. Returns
/// the bytes its parts held.
fn drop_upload(
    txn: &WriteTransaction,
    (bucket, key, id): (&str, &str, &str),
    dropped: Dropped,
    due_ms: i64,
) -> S3Result<u64> {
    txn.open_table(UPLOADS)?.remove((bucket, key, id))?;
    txn.open_table(UPLOAD_IDS)?.remove(id)?;
    let range = (id, 0)..=(id, u32::MAX);
    let bytes = match dropped {
        Dropped::All => {
            let mut parts = Vec::new();
            for row in txn.open_table(PARTS)?.extract_from_if(range, |_, _| true)? {
                parts.push(decode::<PartRecord>(row?.1.value())?);
            }
            for part in &parts {
                decref_blob(txn, part.blob, due_ms)?;
            }
            parts.iter().map(|p| p.size).sum()
        }
        Dropped::Completed { freed, bytes } => {
            txn.open_table(PARTS)?.retain_in(range, |_, _| false)?;
            for blob in freed {
                decref_blob(txn, *blob, due_ms)?;
            }
            bytes
        }
    };
    add_counter(txn, UPLOADS_COUNT, -1)?;
    add_counter(txn, UPLOAD_BYTES, -(bytes as i64))?;
    add_bucket_upload_bytes(txn, bucket, -(bytes as i64))?;
    Ok(bytes)
}

pub fn complete_upload(
    txn: &WriteTransaction,
    upload: (&str, &str, &str),
    completion: &Completion,
    condition: &WriteCondition,
    grace_ms: i64,
) -> S3Result<ObjectHead> {
    let (bucket, key, id) = upload;
    check_bucket(txn, bucket)?;
    let record: Option<UploadRecord> = {
        let uploads = txn.open_table(UPLOADS)?;
        let raw = uploads.get(upload)?;
        raw.map(|raw| decode(raw.value())).transpose()?
    };
    let Some(record) = record else {
        // A Complete for an upload that no longer exists succeeds again if
        // that upload became the current object (a client retrying after
        // a lost response); otherwise the upload is unknown.
        return match head(txn, bucket, key)? {
            Some(current) if current.upload_id.as_deref() == Some(id) => Ok(current),
            _ => Err(Code::NoSuchUpload.into()),
        };
    };
    let stored = upload_parts(&txn.open_table(PARTS)?, id)?;
    let now = now_ms();
    let plan = complete::plan(record, id, &stored, completion, new_id(), now)?;
    let old = head(txn, bucket, key)?;
    condition.check_at_commit(old.as_ref())?;
    // Checked; from here on, only writes.
    let due = now + grace_ms;
    let dropped = Dropped::Completed {
        freed: &plan.freed,
        bytes: plan.upload_bytes,
    };
    drop_upload(txn, upload, dropped, due)?;
    let Body::Parts { manifest, .. } = plan.head.body else {
        return Err(S3Error::internal("a completion makes a manifest"));
    };
    txn.open_table(MANIFESTS)?.insert(manifest, 1)?;
    {
        let mut segments = txn.open_table(SEGMENTS)?;
        let mut start = 0;
        for (i, segment) in plan.segments.into_iter().enumerate() {
            let len = segment.len;
            let row = SegmentRow { start, segment };
            segments.insert((manifest, i as u32), encode(&row).as_slice())?;
            start += len;
        }
    }
    replace_head(txn, (bucket, key), &plan.head, old.as_ref(), None, due)?;
    Ok(plan.head)
}

pub fn abort_upload(
    txn: &WriteTransaction,
    upload: (&str, &str, &str),
    due_ms: i64,
) -> S3Result<()> {
    check_bucket(txn, upload.0)?;
    check_upload(txn, upload)?;
    drop_upload(txn, upload, Dropped::All, due_ms)?;
    Ok(())
}

// ---- background work ----

/// Aborts each upload still incomplete.
pub fn abort_uploads(
    txn: &WriteTransaction,
    uploads: &[UploadRef],
    due_ms: i64,
) -> S3Result<Swept> {
    let mut swept = Swept::default();
    for u in uploads {
        let exists = txn
            .open_table(UPLOADS)?
            .get((u.bucket.as_str(), u.key.as_str(), u.id.as_str()))?
            .is_some();
        if exists {
            swept.freed_bytes +=
                drop_upload(txn, (&u.bucket, &u.key, &u.id), Dropped::All, due_ms)?;
            swept.aborted += 1;
        }
    }
    Ok(swept)
}

/// Deletes each object still as the sweep saw it.
pub fn expire_objects(
    txn: &WriteTransaction,
    bucket: &str,
    objects: &[Expired],
    due_ms: i64,
) -> S3Result<u64> {
    let mut gone = 0;
    for o in objects {
        let Some(current) = head(txn, bucket, &o.key)? else {
            continue;
        };
        if current.etag != o.etag
            || current.last_modified_ms != o.last_modified_ms
            || current.tags != o.tags
        {
            continue;
        }
        txn.open_table(HEADS)?.remove((bucket, o.key.as_str()))?;
        free_body(txn, (bucket, &o.key), &current.body, due_ms)?;
        gone += 1;
    }
    Ok(gone)
}

pub fn due_garbage(txn: &WriteTransaction, now: i64, max: usize) -> S3Result<DueGarbage> {
    let rows: Vec<(i64, u128, u8)> = {
        let garbage = txn.open_table(GARBAGE)?;
        let mut rows = Vec::new();
        for row in garbage.range(..=(now, u128::MAX))?.take(max) {
            let (k, kind) = row?;
            let (due, id) = k.value();
            rows.push((due, id, kind.value()));
        }
        rows
    };
    let mut due = DueGarbage {
        blobs: Vec::new(),
        more: rows.len() == max,
    };
    let mut budget = max;
    for (due_ms, id, kind) in rows {
        let lease = txn.open_table(LEASES)?.get(id)?.map(|v| v.value());
        match lease {
            // A reader still holds it: put it off until the lease ends.
            Some(until) if until > now => {
                let mut garbage = txn.open_table(GARBAGE)?;
                garbage.remove((due_ms, id))?;
                garbage.insert((until, id), kind)?;
                continue;
            }
            Some(_) => {
                txn.open_table(LEASES)?.remove(id)?;
            }
            None => {}
        }
        if kind == GARBAGE_MANIFEST {
            // Claimed: no new lease can be taken on it from now on.
            txn.open_table(MANIFESTS)?.remove(id)?;
            budget = budget.saturating_sub(dismantle(txn, (due_ms, id), budget, &mut due)?);
        } else {
            txn.open_table(BLOBS)?.remove(id)?;
            due.blobs.push(Garbage { due_ms, blob: id });
            budget = budget.saturating_sub(1);
        }
        if budget == 0 {
            due.more = true;
            break;
        }
    }
    Ok(due)
}

/// Takes apart up to `max` segments of the freed manifest whose garbage row
/// is `(due_ms, manifest)`, and forgets the manifest when none remain. A
/// segment blob freed here is due with its manifest (whose grace covered
/// it) and claimed at once, so it goes out in this same batch. Returns the
/// segments handled (at least 1, so a pass always advances).
fn dismantle(
    txn: &WriteTransaction,
    (due_ms, manifest): (i64, u128),
    max: usize,
    due: &mut DueGarbage,
) -> S3Result<usize> {
    let mut segments = txn.open_table(SEGMENTS)?;
    let mut rows = Vec::new();
    for row in segments
        .range((manifest, 0)..=(manifest, u32::MAX))?
        .take(max + 1)
    {
        let (k, v) = row?;
        rows.push((k.value().1, decode::<SegmentRow>(v.value())?.segment.blob));
    }
    let left = rows.len() > max;
    rows.truncate(max);
    for (index, _) in &rows {
        segments.remove((manifest, *index))?;
    }
    drop(segments);
    for (_, blob) in &rows {
        if decref_blob(txn, *blob, due_ms)? {
            txn.open_table(BLOBS)?.remove(*blob)?;
            due.blobs.push(Garbage {
                due_ms,
                blob: *blob,
            });
        }
    }
    if left {
        due.more = true;
    } else {
        txn.open_table(GARBAGE)?.remove((due_ms, manifest))?;
        add_counter(txn, GARBAGE_COUNT, -1)?;
    }
    Ok(rows.len().max(1))
}

pub fn forget_garbage(txn: &WriteTransaction, done: &[Garbage]) -> S3Result<()> {
    let mut forgotten = 0;
    {
        let mut garbage = txn.open_table(GARBAGE)?;
        for g in done {
            if garbage.remove((g.due_ms, g.blob))?.is_some() {
                forgotten += 1;
            }
        }
    }
    add_counter(txn, GARBAGE_COUNT, -forgotten)
}

pub fn lease(txn: &WriteTransaction, body: u128, until_ms: i64) -> S3Result<bool> {
    let exists = txn.open_table(BLOBS)?.get(body)?.is_some()
        || txn.open_table(MANIFESTS)?.get(body)?.is_some();
    if !exists {
        return Ok(false);
    }
    let mut leases = txn.open_table(LEASES)?;
    let current = leases.get(body)?.map_or(0, |v| v.value());
    leases.insert(body, current.max(until_ms))?;
    Ok(true)
}
