//! The transactional interface ([`Reads`], [`Writes`]) in SQL, one
//! statement per call. Reads run inside a change's SERIALIZABLE transaction
//! or, for a query, on a pooled connection; every statement is prepared
//! once per connection (the pool keeps the cache), so a call costs one
//! round trip.
//!
//! The engine does better than the generic path where SQL can: an upload's
//! part bytes are a `SUM`, a reference count changes in one `UPDATE ...
//! RETURNING`, a lease is extended with `GREATEST`, and the totals of
//! [`Stats`] are aggregates (so [`Writes::tally`] has nothing to do).

use std::ops::Bound;

use bytes::Bytes;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{bid, id_of, key_of};
use crate::store::codec::{decode, encode};
use crate::store::model::*;
use crate::store::txn::*;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection or a transaction seen through the interface.
pub struct View<'a, C> {
    pub client: &'a C,
    /// This node's name, for its readiness probe row.
    pub node: &'a str,
}

fn config_column(of: Config) -> &'static str {
    match of {
        Config::Cors => "cors",
        Config::Tags => "tags",
        Config::Lifecycle => "lifecycle",
    }
}

fn counts_table(of: Counted) -> &'static str {
    match of {
        Counted::Blob => "blobs",
        Counted::Manifest => "manifests",
    }
}

/// `>=`, `>` or nothing-excluded for a lower bound.
fn lower_op<T>(b: &Bound<T>) -> &'static str {
    match b {
        Bound::Excluded(_) => ">",
        _ => ">=",
    }
}

fn limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

fn record<T: crate::store::codec::Record>(row: &Row, i: usize) -> Done<T> {
    decode(row.get::<_, &[u8]>(i))
}

impl<C: GenericClient> View<'_, C> {
    async fn opt(&self, sql: &str, params: Params<'_>) -> Done<Option<Row>> {
        let statement = self
            .client
            .prepare_cached(sql)
            .await
            .map_err(Fault::engine)?;
        let row = self.client.query_opt(&statement, params).await;
        row.map_err(Fault::engine)
    }

    async fn all(&self, sql: &str, params: Params<'_>) -> Done<Vec<Row>> {
        let statement = self
            .client
            .prepare_cached(sql)
            .await
            .map_err(Fault::engine)?;
        let rows = self.client.query(&statement, params).await;
        rows.map_err(Fault::engine)
    }

    async fn exec(&self, sql: &str, params: Params<'_>) -> Done<u64> {
        let statement = self
            .client
            .prepare_cached(sql)
            .await
            .map_err(Fault::engine)?;
        let n = self.client.execute(&statement, params).await;
        n.map_err(Fault::engine)
    }
}

impl<C: GenericClient> Reads for View<'_, C> {
    async fn bucket(&mut self, name: &str) -> Done<Option<BucketRecord>> {
        let row = self
            .opt("SELECT record FROM buckets WHERE name = $1", &[&name])
            .await?;
        row.map(|r| record(&r, 0)).transpose()
    }

    async fn buckets(&mut self) -> Done<Vec<(String, BucketRecord)>> {
        let rows = self.all("SELECT name, record FROM buckets", &[]).await?;
        let mut all = rows
            .iter()
            .map(|r| Ok((r.get::<_, String>(0), record(r, 1)?)))
            .collect::<Done<Vec<_>>>()?;
        // In byte order, whatever the database's collation.
        all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(all)
    }

    async fn config(&mut self, name: &str, of: Config) -> Done<Option<Option<Vec<u8>>>> {
        let sql = format!("SELECT {} FROM buckets WHERE name = $1", config_column(of));
        let row = self.opt(&sql, &[&name]).await?;
        Ok(row.map(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }

    async fn configs(&mut self, of: Config) -> Done<Vec<(String, Vec<u8>)>> {
        let column = config_column(of);
        let sql = format!("SELECT name, {column} FROM buckets WHERE {column} IS NOT NULL");
        let rows = self.all(&sql, &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn head(&mut self, bucket: &str, key: &str) -> Done<Option<Option<ObjectHead>>> {
        let row = self
            .opt(
                "SELECT h.record FROM buckets b \
                 LEFT JOIN heads h ON h.bucket = b.name AND h.key = $2 WHERE b.name = $1",
                &[&bucket, &key.as_bytes()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let raw: Option<&[u8]> = row.get(0);
        Ok(Some(raw.map(decode).transpose()?))
    }

    async fn object(
        &mut self,
        bucket: &str,
        key: &str,
    ) -> Done<Option<Option<(ObjectHead, Option<Bytes>)>>> {
        let row = self
            .opt(
                "SELECT h.record, h.inline_body FROM buckets b \
                 LEFT JOIN heads h ON h.bucket = b.name AND h.key = $2 WHERE b.name = $1",
                &[&bucket, &key.as_bytes()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let Some(raw) = row.get::<_, Option<&[u8]>>(0) else {
            return Ok(Some(None));
        };
        let inline: Option<Vec<u8>> = row.get(1);
        Ok(Some(Some((decode(raw)?, inline.map(Bytes::from)))))
    }

    async fn heads(&mut self, bucket: &str, scan: Scan<'_, &str>) -> Done<Heads> {
        let Scan { from, below, max } = scan;
        let op = lower_op(&from);
        let lower = match from {
            Bound::Included(k) | Bound::Excluded(k) => k,
            Bound::Unbounded => "",
        };
        // Two statements, so that the upper bound is an index condition.
        let rows = match below {
            Some(below) => {
                let sql = format!(
                    "SELECT key, record FROM heads WHERE bucket = $1 AND key {op} $2 \
                     AND key < $3 ORDER BY key LIMIT $4"
                );
                let params: Params = &[&bucket, &lower.as_bytes(), &below.as_bytes(), &limit(max)];
                self.all(&sql, params).await?
            }
            None => {
                let sql = format!(
                    "SELECT key, record FROM heads WHERE bucket = $1 AND key {op} $2 \
                     ORDER BY key LIMIT $3"
                );
                self.all(&sql, &[&bucket, &lower.as_bytes(), &limit(max)])
                    .await?
            }
        };
        rows.into_iter()
            .map(|r| Ok((key_of(r.get(0))?, record(&r, 1)?)))
            .collect()
    }

    async fn upload(&mut self, bucket: &str, key: &str, id: &str) -> Done<Option<UploadRecord>> {
        let row = self
            .opt(
                "SELECT record FROM uploads WHERE id = $1 AND bucket = $2 AND key = $3",
                &[&id.as_bytes(), &bucket, &key.as_bytes()],
            )
            .await?;
        row.map(|r| record(&r, 0)).transpose()
    }

    async fn uploads(&mut self, bucket: &str, scan: Scan<'_, (&str, &str)>) -> Done<Uploads> {
        let Scan { from, below, max } = scan;
        let op = lower_op(&from);
        let (key, id) = match from {
            Bound::Included(at) | Bound::Excluded(at) => at,
            Bound::Unbounded => ("", ""),
        };
        let (key, id) = (key.as_bytes(), id.as_bytes());
        let rows = match below {
            Some(below) => {
                let sql = format!(
                    "SELECT key, id, record FROM uploads WHERE bucket = $1 AND (key, id) {op} ($2, $3) \
                     AND key < $4 ORDER BY key, id LIMIT $5"
                );
                let params: Params = &[&bucket, &key, &id, &below.as_bytes(), &limit(max)];
                self.all(&sql, params).await?
            }
            None => {
                let sql = format!(
                    "SELECT key, id, record FROM uploads WHERE bucket = $1 AND (key, id) {op} ($2, $3) \
                     ORDER BY key, id LIMIT $4"
                );
                self.all(&sql, &[&bucket, &key, &id, &limit(max)]).await?
            }
        };
        rows.into_iter()
            .map(|r| Ok((key_of(r.get(0))?, key_of(r.get(1))?, record(&r, 2)?)))
            .collect()
    }

    async fn uploads_by_id(&mut self, scan: Scan<'_, &str>) -> Done<UploadIds> {
        let op = lower_op(&scan.from);
        let from = match scan.from {
            Bound::Included(id) | Bound::Excluded(id) => id,
            Bound::Unbounded => "",
        };
        // Ids are hex: `~` sorts after every one of them.
        let below = scan.below.unwrap_or("~");
        let sql = format!(
            "SELECT id, bucket, key FROM uploads WHERE id {op} $1 AND id < $2 ORDER BY id LIMIT $3"
        );
        let params: Params = &[&from.as_bytes(), &below.as_bytes(), &limit(scan.max)];
        let rows = self.all(&sql, params).await?;
        rows.into_iter()
            .map(|r| Ok((key_of(r.get(0))?, r.get(1), key_of(r.get(2))?)))
            .collect()
    }

    async fn part(&mut self, upload_id: &str, number: u32) -> Done<Option<PartRecord>> {
        let row = self
            .opt(
                "SELECT record FROM parts WHERE upload_id = $1 AND number = $2",
                &[&upload_id.as_bytes(), &number_of(number)],
            )
            .await?;
        row.map(|r| record(&r, 0)).transpose()
    }

    async fn parts(&mut self, id: &str, after: u32, max: usize) -> Done<PartList> {
        let rows = self
            .all(
                "SELECT number, record FROM parts WHERE upload_id = $1 AND number > $2 \
                 ORDER BY number LIMIT $3",
                &[&id.as_bytes(), &number_of(after), &limit(max)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i32>(0) as u32, record(r, 1)?)))
            .collect()
    }

    async fn part_bytes(&mut self, upload_id: &str, except: u32) -> Done<u64> {
        let row = self
            .opt(
                "SELECT COALESCE(SUM(size), 0)::BIGINT FROM parts WHERE upload_id = $1 AND number <> $2",
                &[&upload_id.as_bytes(), &number_of(except)],
            )
            .await?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn segments(&mut self, m: u128, first: u32, max: usize) -> Done<SegmentList> {
        let rows = self
            .all(
                "SELECT idx, record FROM segments WHERE manifest = $1 AND idx >= $2 \
                 ORDER BY idx LIMIT $3",
                &[&&bid(m)[..], &number_of(first), &limit(max)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i32>(0) as u32, record(r, 1)?)))
            .collect()
    }

    async fn segment_at(&mut self, manifest: u128, _count: u32, offset: u64) -> Done<u32> {
        let row = self
            .opt(
                "SELECT idx FROM segments WHERE manifest = $1 AND start_at <= $2 \
                 ORDER BY start_at DESC LIMIT 1",
                &[&&bid(manifest)[..], &(offset as i64)],
            )
            .await?;
        Ok(row.map_or(0, |r| r.get::<_, i32>(0) as u32))
    }

    async fn refs(&mut self, of: Counted, id: u128) -> Done<Option<u32>> {
        let sql = format!("SELECT refs FROM {} WHERE id = $1", counts_table(of));
        let row = self.opt(&sql, &[&&bid(id)[..]]).await?;
        Ok(row.map(|r| r.get::<_, i32>(0) as u32))
    }

    async fn counts(&mut self, of: Counted, after: Option<u128>, max: usize) -> Done<Counts> {
        let sql = format!(
            "SELECT id, refs FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
            counts_table(of)
        );
        let after = after.map(bid);
        let after: &[u8] = after.as_ref().map_or(&[], |id| &id[..]);
        let rows = self.all(&sql, &[&after, &limit(max)]).await?;
        rows.iter()
            .map(|r| Ok((id_of(r.get(0))?, r.get::<_, i32>(1) as u32)))
            .collect()
    }

    async fn garbage(&mut self, now_ms: i64, max: usize) -> Done<Vec<(i64, u128, Freed)>> {
        let rows = self
            .all(
                "SELECT due, id, kind FROM garbage WHERE due <= $1 ORDER BY due, id LIMIT $2",
                &[&now_ms, &limit(max)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let kind = Freed::from_code(r.get::<_, i16>(2) as u8);
                Ok((r.get(0), id_of(r.get(1))?, kind))
            })
            .collect()
    }

    async fn setting(&mut self, name: &str) -> Done<Option<Vec<u8>>> {
        let row = (self.opt("SELECT value FROM settings WHERE name = $1", &[&name])).await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn lease(&mut self, body: u128) -> Done<Option<i64>> {
        let row = self
            .opt(
                "SELECT until_ms FROM leases WHERE id = $1",
                &[&&bid(body)[..]],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn stats(&mut self) -> Done<Stats> {
        let totals = self
            .opt(
                "SELECT (SELECT count(*) FROM uploads)::BIGINT, \
                        (SELECT COALESCE(SUM(size), 0) FROM parts)::BIGINT, \
                        (SELECT count(*) FROM garbage)::BIGINT",
                &[],
            )
            .await?
            .ok_or_else(|| Fault::new("metadata store: no totals"))?;
        let by_bucket = self
            .all(
                "SELECT u.bucket, SUM(p.size)::BIGINT FROM parts p JOIN uploads u ON u.id = p.upload_id \
                 GROUP BY u.bucket",
                &[],
            )
            .await?;
        let mut upload_bytes_by_bucket: Vec<(String, u64)> = by_bucket
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .filter(|(_, n)| *n > 0)
            .collect();
        upload_bytes_by_bucket.sort();
        let usage = self
            .all(
                "SELECT bucket, SUM(objects)::BIGINT, SUM(bytes)::BIGINT FROM usage \
                 GROUP BY bucket HAVING SUM(objects) > 0 ORDER BY bucket",
                &[],
            )
            .await?;
        let objects_by_bucket = (usage.iter())
            .map(|r| {
                let n = |i| r.get::<_, i64>(i).max(0) as u64;
                (r.get::<_, String>(0), n(1), n(2))
            })
            .collect();
        Ok(Stats {
            objects_by_bucket,
            incomplete_uploads: totals.get::<_, i64>(0) as u64,
            incomplete_upload_bytes: totals.get::<_, i64>(1) as u64,
            upload_bytes_by_bucket,
            garbage_blobs: totals.get::<_, i64>(2) as u64,
        })
    }
}

/// A part number or index as its INT column (numbers past `i32::MAX` sort
/// past every stored one).
fn number_of(n: u32) -> i32 {
    n.min(i32::MAX as u32) as i32
}

impl<C: GenericClient> Writes for View<'_, C> {
    async fn put_bucket(&mut self, name: &str, record: &BucketRecord) -> Done<()> {
        self.exec(
            "INSERT INTO buckets (name, record) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET record = excluded.record",
            &[&name, &encode(record)],
        )
        .await
        .map(drop)
    }

    async fn remove_bucket(&mut self, name: &str) -> Done<()> {
        self.exec("DELETE FROM buckets WHERE name = $1", &[&name])
            .await?;
        self.exec("DELETE FROM usage WHERE bucket = $1", &[&name])
            .await
            .map(drop)
    }

    async fn set_config(&mut self, name: &str, of: Config, value: Option<&[u8]>) -> Done<()> {
        let sql = format!(
            "UPDATE buckets SET {} = $2 WHERE name = $1",
            config_column(of)
        );
        self.exec(&sql, &[&name, &value]).await.map(drop)
    }

    async fn put_head(&mut self, at: At<'_>, head: &ObjectHead, inline: Inline<'_>) -> Done<()> {
        let (bucket, key) = (at.0, at.1.as_bytes());
        let record = encode(head);
        match inline {
            Some(bytes) => {
                self.exec(
                    "INSERT INTO heads (bucket, key, record, inline_body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (bucket, key) DO UPDATE \
                     SET record = excluded.record, inline_body = excluded.inline_body",
                    &[&bucket, &key, &record, &bytes],
                )
                .await?
            }
            None => {
                self.exec(
                    "INSERT INTO heads (bucket, key, record) VALUES ($1, $2, $3) \
                     ON CONFLICT (bucket, key) DO UPDATE SET record = excluded.record",
                    &[&bucket, &key, &record],
                )
                .await?
            }
        };
        Ok(())
    }

    async fn remove_inline(&mut self, bucket: &str, key: &str) -> Done<()> {
        self.exec(
            "UPDATE heads SET inline_body = NULL WHERE bucket = $1 AND key = $2",
            &[&bucket, &key.as_bytes()],
        )
        .await
        .map(drop)
    }

    async fn remove_head(&mut self, (bucket, key): At<'_>, _inline: bool) -> Done<()> {
        self.exec(
            "DELETE FROM heads WHERE bucket = $1 AND key = $2",
            &[&bucket, &key.as_bytes()],
        )
        .await
        .map(drop)
    }

    async fn put_upload(&mut self, at: At<'_>, id: &str, record: &UploadRecord) -> Done<()> {
        let (bucket, key) = at;
        self.exec(
            "INSERT INTO uploads (id, bucket, key, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET record = excluded.record",
            &[&id.as_bytes(), &bucket, &key.as_bytes(), &encode(record)],
        )
        .await
        .map(drop)
    }

    async fn remove_upload(&mut self, _bucket: &str, _key: &str, id: &str) -> Done<()> {
        self.exec("DELETE FROM uploads WHERE id = $1", &[&id.as_bytes()])
            .await
            .map(drop)
    }

    async fn put_part(&mut self, upload_id: &str, number: u32, part: &PartRecord) -> Done<()> {
        self.exec(
            "INSERT INTO parts (upload_id, number, size, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (upload_id, number) DO UPDATE SET size = excluded.size, record = excluded.record",
            &[
                &upload_id.as_bytes(),
                &number_of(number),
                &(part.size as i64),
                &encode(part),
            ],
        )
        .await
        .map(drop)
    }

    async fn remove_parts(&mut self, upload_id: &str) -> Done<()> {
        self.exec(
            "DELETE FROM parts WHERE upload_id = $1",
            &[&upload_id.as_bytes()],
        )
        .await
        .map(drop)
    }

    async fn put_segments(&mut self, manifest: u128, rows: &[SegmentRow]) -> Done<()> {
        let indexes: Vec<i32> = (0..rows.len() as i32).collect();
        let starts: Vec<i64> = rows.iter().map(|r| r.start as i64).collect();
        let records: Vec<Vec<u8>> = rows.iter().map(encode).collect();
        self.exec(
            "INSERT INTO segments (manifest, idx, start_at, record) \
             SELECT $1, * FROM UNNEST($2::INT[], $3::BIGINT[], $4::BYTEA[])",
            &[&&bid(manifest)[..], &indexes, &starts, &records],
        )
        .await
        .map(drop)
    }

    async fn remove_segment(&mut self, manifest: u128, index: u32) -> Done<()> {
        self.exec(
            "DELETE FROM segments WHERE manifest = $1 AND idx = $2",
            &[&&bid(manifest)[..], &number_of(index)],
        )
        .await
        .map(drop)
    }

    async fn new_refs(&mut self, of: Counted, id: u128) -> Done<()> {
        let sql = format!("INSERT INTO {} (id, refs) VALUES ($1, 1)", counts_table(of));
        self.exec(&sql, &[&&bid(id)[..]]).await.map(drop)
    }

    async fn add_refs(&mut self, of: Counted, id: u128, delta: i32) -> Done<Option<u32>> {
        let sql = format!(
            "UPDATE {} SET refs = refs + $2 WHERE id = $1 AND refs > 0 RETURNING refs",
            counts_table(of)
        );
        let row = self.opt(&sql, &[&&bid(id)[..], &delta]).await?;
        Ok(row.map(|r| r.get::<_, i32>(0) as u32))
    }

    async fn remove_refs(&mut self, of: Counted, id: u128) -> Done<()> {
        let sql = format!("DELETE FROM {} WHERE id = $1", counts_table(of));
        self.exec(&sql, &[&&bid(id)[..]]).await.map(drop)
    }

    async fn set_refs(&mut self, of: Counted, id: u128, n: u32) -> Done<()> {
        let sql = format!(
            "INSERT INTO {} (id, refs) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET refs = excluded.refs",
            counts_table(of)
        );
        let n = i32::try_from(n).map_err(|_| Fault::new("reference count out of range"))?;
        self.exec(&sql, &[&&bid(id)[..], &n]).await.map(drop)
    }

    async fn add_garbage(&mut self, due_ms: i64, id: u128, freed: Freed) -> Done<()> {
        self.exec(
            "INSERT INTO garbage (due, id, kind) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&due_ms, &&bid(id)[..], &i16::from(freed.code())],
        )
        .await
        .map(drop)
    }

    async fn remove_garbage(&mut self, due_ms: i64, id: u128) -> Done<bool> {
        let n = self
            .exec(
                "DELETE FROM garbage WHERE due = $1 AND id = $2",
                &[&due_ms, &&bid(id)[..]],
            )
            .await?;
        Ok(n > 0)
    }

    async fn extend_lease(&mut self, body: u128, until_ms: i64) -> Done<()> {
        self.exec(
            "INSERT INTO leases (id, until_ms) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET until_ms = GREATEST(leases.until_ms, excluded.until_ms)",
            &[&&bid(body)[..], &until_ms],
        )
        .await
        .map(drop)
    }

    async fn remove_lease(&mut self, body: u128) -> Done<()> {
        self.exec("DELETE FROM leases WHERE id = $1", &[&&bid(body)[..]])
            .await
            .map(drop)
    }

    async fn tally(&mut self, tally: Tally<'_>) -> Done<()> {
        // The other totals are aggregates of the tables themselves; an
        // object's size is inside its encoded record.
        let Tally::Objects {
            bucket,
            objects,
            bytes,
        } = tally
        else {
            return Ok(());
        };
        self.exec(
            "INSERT INTO usage (id, bucket, objects, bytes) VALUES ($1, $2, $3, $4)",
            &[&bid(new_id()).as_slice(), &bucket, &objects, &bytes],
        )
        .await
        .map(drop)
    }

    async fn put_setting(&mut self, name: &str, value: &[u8]) -> Done<()> {
        self.exec(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )
        .await
        .map(drop)
    }

    async fn probe(&mut self) -> Done<()> {
        self.exec(
            "INSERT INTO probe (node, at_ms) VALUES ($1, $2) \
             ON CONFLICT (node) DO UPDATE SET at_ms = excluded.at_ms",
            &[&self.node, &crate::time::now_ms()],
        )
        .await
        .map(drop)
    }
}
