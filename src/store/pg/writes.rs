//! Every change the PostgreSQL engine makes, one function each, run inside
//! a SERIALIZABLE transaction by [`super::transact`]. They follow the
//! embedded engine's changes ([`crate::store::redb`]) step for step: the
//! same checks before the first write, the same reference counting, the
//! same garbage rows.

use std::collections::BTreeMap;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgResult, bid, id_of, key_of};
use crate::error::{Code, S3Error};
use crate::store::complete;
use crate::store::model::*;
use crate::store::redb::tables::{
    GARBAGE_BLOB, GARBAGE_MANIFEST, Record, SegmentRow, decode, encode,
};
use crate::time::now_ms;

type Txn<'a> = deadpool_postgres::Transaction<'a>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

// Every statement is prepared once per connection (the pool keeps the
// cache), so a request costs one round trip per statement, not two.

async fn opt(
    txn: &Txn<'_>,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = txn.prepare_cached(sql).await?;
    txn.query_opt(&statement, params).await
}

async fn all(
    txn: &Txn<'_>,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = txn.prepare_cached(sql).await?;
    txn.query(&statement, params).await
}

async fn one(txn: &Txn<'_>, sql: &str, params: Params<'_>) -> Result<Row, tokio_postgres::Error> {
    let statement = txn.prepare_cached(sql).await?;
    txn.query_one(&statement, params).await
}

async fn exec(txn: &Txn<'_>, sql: &str, params: Params<'_>) -> Result<u64, tokio_postgres::Error> {
    let statement = txn.prepare_cached(sql).await?;
    txn.execute(&statement, params).await
}

pub async fn check_bucket(txn: &Txn<'_>, bucket: &str) -> PgResult<()> {
    let row = opt(txn, "SELECT 1 FROM buckets WHERE name = $1", &[&bucket]).await?;
    match row {
        Some(_) => Ok(()),
        None => Err(Code::NoSuchBucket.into()),
    }
}

pub async fn head(txn: &Txn<'_>, bucket: &str, key: &str) -> PgResult<Option<ObjectHead>> {
    let row = opt(
        txn,
        "SELECT record FROM heads WHERE bucket = $1 AND key = $2",
        &[&bucket, &key.as_bytes()],
    )
    .await?;
    Ok(row
        .map(|r| decode::<ObjectHead>(r.get::<_, &[u8]>(0)))
        .transpose()?)
}

fn add_garbage_sql() -> &'static str {
    "INSERT INTO garbage (due, id, kind) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
}

async fn add_garbage(txn: &Txn<'_>, due_ms: i64, id: u128, kind: u8) -> PgResult<()> {
    exec(
        txn,
        add_garbage_sql(),
        &[&due_ms, &&bid(id)[..], &i16::from(kind)],
    )
    .await?;
    Ok(())
}

/// The table holding `what`'s counts.
fn counts_table(manifest: bool) -> &'static str {
    if manifest { "manifests" } else { "blobs" }
}

/// Adds `delta` to a live reference count and returns the new count. A
/// missing or zero count is an error, never taken for the last reference.
async fn recount(txn: &Txn<'_>, manifest: bool, id: u128, delta: i32) -> PgResult<i32> {
    let table = counts_table(manifest);
    let sql =
        format!("UPDATE {table} SET refs = refs + $2 WHERE id = $1 AND refs > 0 RETURNING refs");
    let row = opt(txn, &sql, &[&&bid(id)[..], &delta]).await?;
    match row {
        Some(r) => Ok(r.get(0)),
        None => {
            let what = if manifest { "manifest" } else { "blob" };
            Err(S3Error::internal(format!("{what} {} has no reference count", id_hex(id))).into())
        }
    }
}

async fn new_blob(txn: &Txn<'_>, id: u128) -> PgResult<()> {
    exec(
        txn,
        "INSERT INTO blobs (id, refs) VALUES ($1, 1)",
        &[&&bid(id)[..]],
    )
    .await?;
    Ok(())
}

async fn incref_blob(txn: &Txn<'_>, id: BlobId) -> PgResult<()> {
    recount(txn, false, id, 1).await.map(drop)
}

/// Drops one reference; the last one sends the blob to the collector.
async fn decref_blob(txn: &Txn<'_>, id: BlobId, due_ms: i64) -> PgResult<bool> {
    let last = recount(txn, false, id, -1).await? == 0;
    if last {
        add_garbage(txn, due_ms, id, GARBAGE_BLOB).await?;
    }
    Ok(last)
}

async fn free_body(txn: &Txn<'_>, body: &Body, due_ms: i64) -> PgResult<()> {
    match body {
        Body::Inline => {}
        Body::Blob(seg) => {
            decref_blob(txn, seg.blob, due_ms).await?;
        }
        Body::Parts { manifest, .. } => {
            if recount(txn, true, *manifest, -1).await? == 0 {
                add_garbage(txn, due_ms, *manifest, GARBAGE_MANIFEST).await?;
            }
        }
    }
    Ok(())
}

/// Writes `head` at `at`, whose current head is `old`: the old body's
/// references are dropped first, so a copy onto itself keeps its blobs.
async fn replace_head(
    txn: &Txn<'_>,
    (bucket, key): (&str, &str),
    head: &ObjectHead,
    old: Option<&ObjectHead>,
    inline: Option<&[u8]>,
    due_ms: i64,
) -> PgResult<()> {
    if let Some(old) = old {
        free_body(txn, &old.body, due_ms).await?;
    }
    exec(txn,
        "INSERT INTO heads (bucket, key, record, inline_body) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (bucket, key) DO UPDATE SET record = excluded.record, inline_body = excluded.inline_body",
        &[&bucket, &key.as_bytes(), &encode(head), &inline],
    )
    .await?;
    Ok(())
}

// ---- buckets ----

pub async fn create_bucket(txn: &Txn<'_>, name: &str, owner: &str, acl: Acl) -> PgResult<()> {
    let existing = opt(txn, "SELECT record FROM buckets WHERE name = $1", &[&name]).await?;
    if let Some(row) = existing {
        let existing: BucketRecord = decode(row.get::<_, &[u8]>(0))?;
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
    exec(
        txn,
        "INSERT INTO buckets (name, record) VALUES ($1, $2)",
        &[&name, &encode(&record)],
    )
    .await?;
    Ok(())
}

pub async fn update_bucket(
    txn: &Txn<'_>,
    name: &str,
    change: impl FnOnce(&mut BucketRecord),
) -> PgResult<()> {
    let row = opt(txn, "SELECT record FROM buckets WHERE name = $1", &[&name])
        .await?
        .ok_or(Code::NoSuchBucket)?;
    let mut record: BucketRecord = decode(row.get::<_, &[u8]>(0))?;
    change(&mut record);
    exec(
        txn,
        "UPDATE buckets SET record = $2 WHERE name = $1",
        &[&name, &encode(&record)],
    )
    .await?;
    Ok(())
}

/// Sets one of a bucket's optional configurations (`cors`, `tags`,
/// `lifecycle`), or clears it.
pub async fn set_bucket_config<T: Record>(
    txn: &Txn<'_>,
    name: &str,
    column: &'static str,
    value: Option<&T>,
) -> PgResult<()> {
    let sql = format!("UPDATE buckets SET {column} = $2 WHERE name = $1");
    let n = exec(txn, &sql, &[&name, &value.map(encode)]).await?;
    if n == 0 {
        return Err(Code::NoSuchBucket.into());
    }
    Ok(())
}

pub async fn delete_bucket(txn: &Txn<'_>, name: &str, due_ms: i64) -> PgResult<()> {
    check_bucket(txn, name).await?;
    let any = opt(
        txn,
        "SELECT 1 FROM heads WHERE bucket = $1 LIMIT 1",
        &[&name],
    )
    .await?;
    if any.is_some() {
        return Err(Code::BucketNotEmpty.into());
    }
    let uploads = all(txn, "SELECT id FROM uploads WHERE bucket = $1", &[&name]).await?;
    for row in uploads {
        let id: Vec<u8> = row.get(0);
        drop_upload(txn, &id, Dropped::All, due_ms).await?;
    }
    exec(txn, "DELETE FROM buckets WHERE name = $1", &[&name]).await?;
    Ok(())
}

/// Changes an object's tags or ACL; its Last-Modified stays.
pub async fn update_head(
    txn: &Txn<'_>,
    (bucket, key): (&str, &str),
    change: impl FnOnce(&mut ObjectHead),
) -> PgResult<()> {
    check_bucket(txn, bucket).await?;
    let mut current = head(txn, bucket, key).await?.ok_or(Code::NoSuchKey)?;
    change(&mut current);
    exec(
        txn,
        "UPDATE heads SET record = $3 WHERE bucket = $1 AND key = $2",
        &[&bucket, &key.as_bytes(), &encode(&current)],
    )
    .await?;
    Ok(())
}

// ---- objects ----

pub async fn put_object(
    txn: &Txn<'_>,
    at: (&str, &str),
    new: &ObjectHead,
    inline: Option<&[u8]>,
    condition: &WriteCondition,
    due_ms: i64,
) -> PgResult<()> {
    check_bucket(txn, at.0).await?;
    let old = head(txn, at.0, at.1).await?;
    condition.check_at_commit(old.as_ref())?;
    if let Body::Blob(seg) = &new.body {
        new_blob(txn, seg.blob).await?;
    }
    replace_head(txn, at, new, old.as_ref(), inline, due_ms).await
}

pub async fn copy_object(
    txn: &Txn<'_>,
    src: (&str, &str),
    dst: (&str, &str),
    changes: &CopyChanges,
    conditions: &SourceConditions,
    grace_ms: i64,
) -> PgResult<ObjectHead> {
    check_bucket(txn, src.0).await?;
    check_bucket(txn, dst.0).await?;
    let row = opt(
        txn,
        "SELECT record, inline_body FROM heads WHERE bucket = $1 AND key = $2",
        &[&src.0, &src.1.as_bytes()],
    )
    .await?
    .ok_or(Code::NoSuchKey)?;
    let mut copy: ObjectHead = decode(row.get::<_, &[u8]>(0))?;
    let inline: Option<Vec<u8>> = row.get(1);
    conditions.check(&copy)?;
    let old = head(txn, dst.0, dst.1).await?;
    match &copy.body {
        Body::Inline if inline.is_none() => {
            return Err(S3Error::internal("inline body missing").into());
        }
        Body::Inline => {}
        Body::Blob(seg) => incref_blob(txn, seg.blob).await?,
        Body::Parts { manifest, .. } => {
            recount(txn, true, *manifest, 1).await?;
        }
    }
    if let Some(meta) = &changes.meta {
        copy.meta = meta.clone();
    }
    if let Some(tags) = &changes.tags {
        copy.tags = tags.clone();
    }
    copy.acl = changes.acl;
    copy.upload_id = None;
    copy.last_modified_ms = now_ms();
    let due = copy.last_modified_ms + grace_ms;
    replace_head(txn, dst, &copy, old.as_ref(), inline.as_deref(), due).await?;
    Ok(copy)
}

pub async fn delete_objects(
    txn: &Txn<'_>,
    bucket: &str,
    keys: &[String],
    due_ms: i64,
) -> PgResult<()> {
    check_bucket(txn, bucket).await?;
    for key in keys {
        let removed = opt(
            txn,
            "DELETE FROM heads WHERE bucket = $1 AND key = $2 RETURNING record",
            &[&bucket, &key.as_bytes()],
        )
        .await?;
        if let Some(row) = removed {
            let old: ObjectHead = decode(row.get::<_, &[u8]>(0))?;
            free_body(txn, &old.body, due_ms).await?;
        }
    }
    Ok(())
}

pub async fn expire_objects(
    txn: &Txn<'_>,
    bucket: &str,
    objects: &[Expired],
    due_ms: i64,
) -> PgResult<u64> {
    let mut gone = 0;
    for o in objects {
        let Some(current) = head(txn, bucket, &o.key).await? else {
            continue;
        };
        if current.etag != o.etag
            || current.last_modified_ms != o.last_modified_ms
            || current.tags != o.tags
        {
            continue;
        }
        exec(
            txn,
            "DELETE FROM heads WHERE bucket = $1 AND key = $2",
            &[&bucket, &o.key.as_bytes()],
        )
        .await?;
        free_body(txn, &current.body, due_ms).await?;
        gone += 1;
    }
    Ok(gone)
}

// ---- multipart uploads ----

pub async fn create_upload(
    txn: &Txn<'_>,
    bucket: &str,
    key: &str,
    record: &UploadRecord,
    id: &str,
) -> PgResult<String> {
    check_bucket(txn, bucket).await?;
    if let Some(token) = &record.token {
        let rows = all(
            txn,
            "SELECT id, record FROM uploads WHERE bucket = $1 AND key = $2",
            &[&bucket, &key.as_bytes()],
        )
        .await?;
        for row in rows {
            let existing: UploadRecord = decode(row.get::<_, &[u8]>(1))?;
            if existing.token.as_deref() == Some(token) {
                return Ok(key_of(row.get(0))?);
            }
        }
    }
    exec(
        txn,
        "INSERT INTO uploads (id, bucket, key, record) VALUES ($1, $2, $3, $4)",
        &[&id.as_bytes(), &bucket, &key.as_bytes(), &encode(record)],
    )
    .await?;
    Ok(id.to_owned())
}

/// The upload's record, if it is an upload of `bucket/key`.
pub async fn upload(
    txn: &Txn<'_>,
    (bucket, key, id): (&str, &str, &str),
) -> PgResult<Option<UploadRecord>> {
    let row = opt(
        txn,
        "SELECT record FROM uploads WHERE id = $1 AND bucket = $2 AND key = $3",
        &[&id.as_bytes(), &bucket, &key.as_bytes()],
    )
    .await?;
    Ok(row
        .map(|r| decode::<UploadRecord>(r.get::<_, &[u8]>(0)))
        .transpose()?)
}

pub async fn parts_of(txn: &Txn<'_>, id: &[u8]) -> PgResult<BTreeMap<u32, PartRecord>> {
    let rows = all(
        txn,
        "SELECT number, record FROM parts WHERE upload_id = $1 ORDER BY number",
        &[&id],
    )
    .await?;
    let mut parts = BTreeMap::new();
    for row in rows {
        let number: i32 = row.get(0);
        parts.insert(number as u32, decode::<PartRecord>(row.get::<_, &[u8]>(1))?);
    }
    Ok(parts)
}

pub async fn put_part(
    txn: &Txn<'_>,
    upload: (&str, &str, &str),
    number: u32,
    part: &PartRecord,
    grace_ms: i64,
) -> PgResult<()> {
    let record = self::upload(txn, upload).await?.ok_or(Code::NoSuchUpload)?;
    let id = upload.2.as_bytes();
    if let Some(max) = record.max_size {
        let row = one(txn,
                "SELECT COALESCE(SUM(size), 0)::BIGINT FROM parts WHERE upload_id = $1 AND number <> $2",
                &[&id, &(number as i32)],
            )
            .await?;
        let total = row.get::<_, i64>(0) as u64 + part.size;
        if total > max {
            return Err(S3Error::with_message(
                Code::EntityTooLarge,
                format!("This part would bring the upload to {total} bytes; its upload grant allows at most {max}."),
            )
            .detail("MaxSizeAllowed", max.to_string())
            .into());
        }
    }
    let mut part = part.clone();
    part.last_modified_ms = now_ms();
    let old = opt(
        txn,
        "SELECT record FROM parts WHERE upload_id = $1 AND number = $2",
        &[&id, &(number as i32)],
    )
    .await?
    .map(|r| decode::<PartRecord>(r.get::<_, &[u8]>(0)))
    .transpose()?;
    exec(txn,
        "INSERT INTO parts (upload_id, number, size, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (upload_id, number) DO UPDATE SET size = excluded.size, record = excluded.record",
        &[&id, &(number as i32), &(part.size as i64), &encode(&part)],
    )
    .await?;
    new_blob(txn, part.blob).await?;
    if let Some(old) = old {
        decref_blob(txn, old.blob, part.last_modified_ms + grace_ms).await?;
    }
    Ok(())
}

/// What dropping an upload frees.
pub enum Dropped<'a> {
    /// Every part (an abort).
    All,
    /// A completion: only `freed` lose their reference; the parts held
    /// `bytes` in all.
    Completed { freed: &'a [BlobId], bytes: u64 },
}

/// Removes an upload and its parts, freeing what `dropped` says; returns
/// the bytes its parts held.
pub async fn drop_upload(
    txn: &Txn<'_>,
    id: &[u8],
    dropped: Dropped<'_>,
    due_ms: i64,
) -> PgResult<u64> {
    exec(txn, "DELETE FROM uploads WHERE id = $1", &[&id]).await?;
    let rows = all(
        txn,
        "DELETE FROM parts WHERE upload_id = $1 RETURNING record",
        &[&id],
    )
    .await?;
    match dropped {
        Dropped::All => {
            let mut bytes = 0;
            for row in rows {
                let part: PartRecord = decode(row.get::<_, &[u8]>(0))?;
                bytes += part.size;
                decref_blob(txn, part.blob, due_ms).await?;
            }
            Ok(bytes)
        }
        Dropped::Completed { freed, bytes } => {
            for blob in freed {
                decref_blob(txn, *blob, due_ms).await?;
            }
            Ok(bytes)
        }
    }
}

pub async fn complete_upload(
    txn: &Txn<'_>,
    upload: (&str, &str, &str),
    completion: &Completion,
    condition: &WriteCondition,
    grace_ms: i64,
) -> PgResult<ObjectHead> {
    let (bucket, key, id) = upload;
    check_bucket(txn, bucket).await?;
    let Some(record) = self::upload(txn, upload).await? else {
        // A retried Complete of an upload that became the object replays.
        return match head(txn, bucket, key).await? {
            Some(current) if current.upload_id.as_deref() == Some(id) => Ok(current),
            _ => Err(Code::NoSuchUpload.into()),
        };
    };
    let stored = parts_of(txn, id.as_bytes()).await?;
    let now = now_ms();
    let plan = complete::plan(record, id, &stored, completion, new_id(), now)?;
    let old = head(txn, bucket, key).await?;
    condition.check_at_commit(old.as_ref())?;
    let due = now + grace_ms;
    let dropped = Dropped::Completed {
        freed: &plan.freed,
        bytes: plan.upload_bytes,
    };
    drop_upload(txn, id.as_bytes(), dropped, due).await?;
    let Body::Parts { manifest, .. } = plan.head.body else {
        return Err(S3Error::internal("a completion makes a manifest").into());
    };
    exec(
        txn,
        "INSERT INTO manifests (id, refs) VALUES ($1, 1)",
        &[&&bid(manifest)[..]],
    )
    .await?;
    let mut start = 0u64;
    for (i, segment) in plan.segments.into_iter().enumerate() {
        let len = segment.len;
        let row = SegmentRow { start, segment };
        exec(
            txn,
            "INSERT INTO segments (manifest, idx, start_at, record) VALUES ($1, $2, $3, $4)",
            &[
                &&bid(manifest)[..],
                &(i as i32),
                &(start as i64),
                &encode(&row),
            ],
        )
        .await?;
        start += len;
    }
    replace_head(txn, (bucket, key), &plan.head, old.as_ref(), None, due).await?;
    Ok(plan.head)
}

pub async fn abort_upload(txn: &Txn<'_>, upload: (&str, &str, &str), due_ms: i64) -> PgResult<()> {
    check_bucket(txn, upload.0).await?;
    self::upload(txn, upload).await?.ok_or(Code::NoSuchUpload)?;
    drop_upload(txn, upload.2.as_bytes(), Dropped::All, due_ms).await?;
    Ok(())
}

pub async fn abort_uploads(txn: &Txn<'_>, uploads: &[UploadRef], due_ms: i64) -> PgResult<Swept> {
    let mut swept = Swept::default();
    for u in uploads {
        if upload(txn, (&u.bucket, &u.key, &u.id)).await?.is_some() {
            swept.freed_bytes += drop_upload(txn, u.id.as_bytes(), Dropped::All, due_ms).await?;
            swept.aborted += 1;
        }
    }
    Ok(swept)
}

// ---- background work ----

pub async fn due_garbage(txn: &Txn<'_>, now: i64, max: usize) -> PgResult<DueGarbage> {
    let rows = all(
        txn,
        "SELECT due, id, kind FROM garbage WHERE due <= $1 ORDER BY due, id LIMIT $2",
        &[&now, &(max as i64)],
    )
    .await?;
    let mut due = DueGarbage {
        blobs: Vec::new(),
        more: rows.len() == max,
    };
    let mut budget = max;
    for row in rows {
        let (due_ms, raw, kind): (i64, Vec<u8>, i16) = (row.get(0), row.get(1), row.get(2));
        let id = id_of(&raw)?;
        let lease: Option<i64> = opt(txn, "SELECT until_ms FROM leases WHERE id = $1", &[&raw])
            .await?
            .map(|r| r.get(0));
        match lease {
            // A reader still holds it: put it off until the lease ends.
            Some(until) if until > now => {
                exec(
                    txn,
                    "DELETE FROM garbage WHERE due = $1 AND id = $2",
                    &[&due_ms, &raw],
                )
                .await?;
                exec(txn, add_garbage_sql(), &[&until, &raw, &kind]).await?;
                continue;
            }
            Some(_) => {
                exec(txn, "DELETE FROM leases WHERE id = $1", &[&raw]).await?;
            }
            None => {}
        }
        if kind == i16::from(GARBAGE_MANIFEST) {
            exec(txn, "DELETE FROM manifests WHERE id = $1", &[&raw]).await?;
            budget = budget.saturating_sub(dismantle(txn, (due_ms, id), budget, &mut due).await?);
        } else {
            exec(txn, "DELETE FROM blobs WHERE id = $1", &[&raw]).await?;
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

/// Takes apart up to `max` segments of a freed manifest; forgets it when
/// none remain. Returns the segments handled (at least 1).
async fn dismantle(
    txn: &Txn<'_>,
    (due_ms, manifest): (i64, u128),
    max: usize,
    due: &mut DueGarbage,
) -> PgResult<usize> {
    let m = bid(manifest);
    let rows = all(
        txn,
        "SELECT idx, record FROM segments WHERE manifest = $1 ORDER BY idx LIMIT $2",
        &[&&m[..], &(max as i64 + 1)],
    )
    .await?;
    let left = rows.len() > max;
    let mut handled = 0;
    for row in rows.into_iter().take(max) {
        let idx: i32 = row.get(0);
        let seg: SegmentRow = decode(row.get::<_, &[u8]>(1))?;
        exec(
            txn,
            "DELETE FROM segments WHERE manifest = $1 AND idx = $2",
            &[&&m[..], &idx],
        )
        .await?;
        if decref_blob(txn, seg.segment.blob, due_ms).await? {
            exec(
                txn,
                "DELETE FROM blobs WHERE id = $1",
                &[&&bid(seg.segment.blob)[..]],
            )
            .await?;
            due.blobs.push(Garbage {
                due_ms,
                blob: seg.segment.blob,
            });
        }
        handled += 1;
    }
    if left {
        due.more = true;
    } else {
        exec(
            txn,
            "DELETE FROM garbage WHERE due = $1 AND id = $2",
            &[&due_ms, &&m[..]],
        )
        .await?;
    }
    Ok(handled.max(1))
}

pub async fn forget_garbage(txn: &Txn<'_>, done: &[Garbage]) -> PgResult<()> {
    for g in done {
        exec(
            txn,
            "DELETE FROM garbage WHERE due = $1 AND id = $2",
            &[&g.due_ms, &&bid(g.blob)[..]],
        )
        .await?;
    }
    Ok(())
}

pub async fn lease(txn: &Txn<'_>, body: u128, until_ms: i64) -> PgResult<bool> {
    let b = bid(body);
    let exists = opt(
        txn,
        "SELECT 1 FROM blobs WHERE id = $1 UNION ALL SELECT 1 FROM manifests WHERE id = $1 LIMIT 1",
        &[&&b[..]],
    )
    .await?;
    if exists.is_none() {
        return Ok(false);
    }
    exec(
        txn,
        "INSERT INTO leases (id, until_ms) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET until_ms = GREATEST(leases.until_ms, excluded.until_ms)",
        &[&&b[..], &until_ms],
    )
    .await?;
    Ok(true)
}
