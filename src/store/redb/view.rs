//! The transactional interface ([`Reads`], [`Writes`]) on redb's tables.
//! Reads run on a read transaction or inside the writer's batch; every call
//! is synchronous, so a whole change completes in one poll.

use std::ops::Bound;

use bytes::Bytes;
use redb::{Key, ReadTransaction, ReadableTable, TableDefinition, Value, WriteTransaction};

use super::tables::*;
use crate::store::codec::{decode, encode};
use crate::store::model::*;
use crate::store::txn::*;

/// Maps any redb failure to a fault.
pub fn fault(e: impl std::fmt::Display) -> Fault {
    Fault::new(format!("metadata store: {e}"))
}

/// A transaction that opens tables for reading: redb's read and write
/// transactions alike.
pub trait Tables: Sync {
    type Table<'t, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>
    where
        Self: 't;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Done<Self::Table<'_, K, V>>;
}

impl Tables for ReadTransaction {
    type Table<'t, K: Key + 'static, V: Value + 'static> = redb::ReadOnlyTable<K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Done<redb::ReadOnlyTable<K, V>> {
        self.open_table(def).map_err(fault)
    }
}

impl Tables for WriteTransaction {
    type Table<'t, K: Key + 'static, V: Value + 'static> = redb::Table<'t, K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Done<redb::Table<'_, K, V>> {
        self.open_table(def).map_err(fault)
    }
}

/// One transaction seen through the interface.
pub struct View<'a, T>(pub &'a T);

fn config_table(of: Config) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match of {
        Config::Cors => BUCKET_CORS,
        Config::Tags => BUCKET_TAGS,
        Config::Lifecycle => BUCKET_LIFECYCLE,
    }
}

fn counts_table(of: Counted) -> TableDefinition<'static, u128, u32> {
    match of {
        Counted::Blob => BLOBS,
        Counted::Manifest => MANIFESTS,
    }
}

impl<T: Tables> View<'_, T> {
    fn has_bucket(&self, name: &str) -> Done<bool> {
        Ok(self.0.table(BUCKETS)?.get(name).map_err(fault)?.is_some())
    }

    fn head_now(&self, bucket: &str, key: &str) -> Done<Option<ObjectHead>> {
        let heads = self.0.table(HEADS)?;
        let raw = heads.get((bucket, key)).map_err(fault)?;
        raw.map(|raw| decode(raw.value())).transpose()
    }

    fn segment_start(&self, manifest: u128, index: u32) -> Done<u64> {
        let table = self.0.table(SEGMENTS)?;
        let raw = table.get((manifest, index)).map_err(fault)?;
        let raw = raw.ok_or_else(|| Fault::new("manifest segment missing"))?;
        Ok(decode::<SegmentRow>(raw.value())?.start)
    }

    fn counter(&self, name: &str) -> Done<u64> {
        let counters = self.0.table(COUNTERS)?;
        Ok(counters.get(name).map_err(fault)?.map_or(0, |v| v.value()))
    }
}

impl<T: Tables> Reads for View<'_, T> {
    async fn bucket(&mut self, name: &str) -> Done<Option<BucketRecord>> {
        let buckets = self.0.table(BUCKETS)?;
        let raw = buckets.get(name).map_err(fault)?;
        raw.map(|v| decode(v.value())).transpose()
    }

    async fn buckets(&mut self) -> Done<Vec<(String, BucketRecord)>> {
        let mut out = Vec::new();
        for row in self.0.table(BUCKETS)?.iter().map_err(fault)? {
            let (name, record) = row.map_err(fault)?;
            out.push((name.value().to_owned(), decode(record.value())?));
        }
        Ok(out)
    }

    async fn config(&mut self, name: &str, of: Config) -> Done<Option<Option<Vec<u8>>>> {
        if !self.has_bucket(name)? {
            return Ok(None);
        }
        let table = self.0.table(config_table(of))?;
        let raw = table.get(name).map_err(fault)?;
        Ok(Some(raw.map(|v| v.value().to_vec())))
    }

    async fn configs(&mut self, of: Config) -> Done<Vec<(String, Vec<u8>)>> {
        let mut all = Vec::new();
        for row in self.0.table(config_table(of))?.iter().map_err(fault)? {
            let (name, value) = row.map_err(fault)?;
            all.push((name.value().to_owned(), value.value().to_vec()));
        }
        Ok(all)
    }

    async fn head(&mut self, bucket: &str, key: &str) -> Done<Option<Option<ObjectHead>>> {
        if !self.has_bucket(bucket)? {
            return Ok(None);
        }
        self.head_now(bucket, key).map(Some)
    }

    async fn object(
        &mut self,
        bucket: &str,
        key: &str,
    ) -> Done<Option<Option<(ObjectHead, Option<Bytes>)>>> {
        if !self.has_bucket(bucket)? {
            return Ok(None);
        }
        let Some(head) = self.head_now(bucket, key)? else {
            return Ok(Some(None));
        };
        let inline = match head.body {
            Body::Inline => {
                let table = self.0.table(INLINE)?;
                let raw = table.get((bucket, key)).map_err(fault)?;
                raw.map(|v| Bytes::copy_from_slice(v.value()))
            }
            _ => None,
        };
        Ok(Some(Some((head, inline))))
    }

    async fn heads(&mut self, bucket: &str, scan: Scan<'_, &str>) -> Done<Heads> {
        let Scan { from, below, max } = scan;
        let lower = match from {
            Bound::Included(k) => Bound::Included((bucket, k)),
            Bound::Excluded(k) => Bound::Excluded((bucket, k)),
            Bound::Unbounded => Bound::Included((bucket, "")),
        };
        let table = self.0.table(HEADS)?;
        let mut out = Vec::new();
        let rows = table
            .range::<(&str, &str)>((lower, Bound::Unbounded))
            .map_err(fault)?;
        for row in rows.take(max) {
            let (k, v) = row.map_err(fault)?;
            let (b, key) = k.value();
            if b != bucket || below.is_some_and(|below| key >= below) {
                break;
            }
            let head = decode(v.value()).map_err(|e| Fault::new(format!("{bucket}/{key}: {e}")))?;
            out.push((key.to_owned(), head));
        }
        Ok(out)
    }

    async fn upload(&mut self, bucket: &str, key: &str, id: &str) -> Done<Option<UploadRecord>> {
        let table = self.0.table(UPLOADS)?;
        let raw = table.get((bucket, key, id)).map_err(fault)?;
        raw.map(|v| decode(v.value())).transpose()
    }

    async fn uploads(&mut self, bucket: &str, scan: Scan<'_, (&str, &str)>) -> Done<Uploads> {
        let Scan { from, below, max } = scan;
        let lower = match from {
            Bound::Included((k, id)) => Bound::Included((bucket, k, id)),
            Bound::Excluded((k, id)) => Bound::Excluded((bucket, k, id)),
            Bound::Unbounded => Bound::Included((bucket, "", "")),
        };
        let table = self.0.table(UPLOADS)?;
        let rows = table
            .range::<(&str, &str, &str)>((lower, Bound::Unbounded))
            .map_err(fault)?;
        let mut out = Vec::new();
        for row in rows.take(max) {
            let (k, v) = row.map_err(fault)?;
            let (b, key, id) = k.value();
            if b != bucket || below.is_some_and(|below| key >= below) {
                break;
            }
            out.push((key.to_owned(), id.to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    async fn uploads_by_id(&mut self, scan: Scan<'_, &str>) -> Done<UploadIds> {
        let ids = self.0.table(UPLOAD_IDS)?;
        let upper = scan.below.map_or(Bound::Unbounded, Bound::Excluded);
        let rows = ids.range::<&str>((scan.from, upper)).map_err(fault)?;
        let max = scan.max;
        let mut found = Vec::new();
        for row in rows.take(max) {
            let (id, at) = row.map_err(fault)?;
            let (bucket, key) = at.value();
            found.push((id.value().to_owned(), bucket.to_owned(), key.to_owned()));
        }
        Ok(found)
    }

    async fn part(&mut self, upload_id: &str, number: u32) -> Done<Option<PartRecord>> {
        let table = self.0.table(PARTS)?;
        let raw = table.get((upload_id, number)).map_err(fault)?;
        raw.map(|v| decode(v.value())).transpose()
    }

    async fn parts(&mut self, id: &str, after: u32, max: usize) -> Done<PartList> {
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let table = self.0.table(PARTS)?;
        let rows = table.range((id, from)..=(id, u32::MAX)).map_err(fault)?;
        let mut out = Vec::new();
        for row in rows.take(max) {
            let (k, v) = row.map_err(fault)?;
            out.push((k.value().1, decode(v.value())?));
        }
        Ok(out)
    }

    async fn part_bytes(&mut self, upload_id: &str, except: u32) -> Done<u64> {
        let table = self.0.table(PARTS)?;
        let rows = table
            .range((upload_id, 0)..=(upload_id, u32::MAX))
            .map_err(fault)?;
        let mut total = 0;
        for row in rows {
            let (k, v) = row.map_err(fault)?;
            if k.value().1 != except {
                total += decode::<PartRecord>(v.value())?.size;
            }
        }
        Ok(total)
    }

    async fn segments(&mut self, m: u128, first: u32, max: usize) -> Done<SegmentList> {
        let table = self.0.table(SEGMENTS)?;
        let rows = table.range((m, first)..=(m, u32::MAX)).map_err(fault)?;
        let mut out = Vec::new();
        for row in rows.take(max) {
            let (k, v) = row.map_err(fault)?;
            out.push((k.value().1, decode(v.value())?));
        }
        Ok(out)
    }

    async fn segment_at(&mut self, manifest: u128, count: u32, offset: u64) -> Done<u32> {
        // Binary search over the segments' starts.
        let (mut lo, mut hi) = (0u32, count.saturating_sub(1));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.segment_start(manifest, mid)? <= offset {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
    }

    async fn refs(&mut self, of: Counted, id: u128) -> Done<Option<u32>> {
        let table = self.0.table(counts_table(of))?;
        Ok(table.get(id).map_err(fault)?.map(|v| v.value()))
    }

    async fn counts(&mut self, of: Counted, after: Option<u128>, max: usize) -> Done<Counts> {
        let table = self.0.table(counts_table(of))?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let rows = table
            .range::<u128>((lower, Bound::Unbounded))
            .map_err(fault)?;
        let mut out = Vec::new();
        for row in rows.take(max) {
            let (id, n) = row.map_err(fault)?;
            out.push((id.value(), n.value()));
        }
        Ok(out)
    }

    async fn garbage(&mut self, now_ms: i64, max: usize) -> Done<Vec<(i64, u128, Freed)>> {
        let garbage = self.0.table(GARBAGE)?;
        let mut rows = Vec::new();
        for row in garbage
            .range(..=(now_ms, u128::MAX))
            .map_err(fault)?
            .take(max)
        {
            let (k, kind) = row.map_err(fault)?;
            let (due, id) = k.value();
            rows.push((due, id, Freed::from_code(kind.value())));
        }
        Ok(rows)
    }

    async fn lease(&mut self, body: u128) -> Done<Option<i64>> {
        let leases = self.0.table(LEASES)?;
        Ok(leases.get(body).map_err(fault)?.map(|v| v.value()))
    }

    async fn setting(&mut self, name: &str) -> Done<Option<Vec<u8>>> {
        let settings = self.0.table(SETTINGS)?;
        Ok(settings
            .get(name)
            .map_err(fault)?
            .map(|v| v.value().to_vec()))
    }

    async fn stats(&mut self) -> Done<Stats> {
        let mut upload_bytes_by_bucket = Vec::new();
        for row in self.0.table(BUCKET_UPLOAD_BYTES)?.iter().map_err(fault)? {
            let (bucket, bytes) = row.map_err(fault)?;
            upload_bytes_by_bucket.push((bucket.value().to_owned(), bytes.value()));
        }
        let mut objects_by_bucket = Vec::new();
        for row in self.0.table(BUCKET_OBJECTS)?.iter().map_err(fault)? {
            let (bucket, totals) = row.map_err(fault)?;
            let (objects, bytes) = totals.value();
            objects_by_bucket.push((bucket.value().to_owned(), objects, bytes));
        }
        Ok(Stats {
            objects_by_bucket,
            incomplete_uploads: self.counter(UPLOADS_COUNT)?,
            incomplete_upload_bytes: self.counter(UPLOAD_BYTES)?,
            upload_bytes_by_bucket,
            garbage_blobs: self.counter(GARBAGE_COUNT)?,
        })
    }
}

impl View<'_, WriteTransaction> {
    fn add_counter(&self, name: &str, delta: i64) -> Done<()> {
        if delta == 0 {
            return Ok(());
        }
        let mut counters = self.0.table(COUNTERS)?;
        let current = counters.get(name).map_err(fault)?.map_or(0, |v| v.value());
        let new = current.saturating_add_signed(delta);
        counters.insert(name, new).map_err(fault)?;
        Ok(())
    }
}

impl Writes for View<'_, WriteTransaction> {
    async fn put_bucket(&mut self, name: &str, record: &BucketRecord) -> Done<()> {
        let mut buckets = self.0.table(BUCKETS)?;
        buckets
            .insert(name, encode(record).as_slice())
            .map_err(fault)?;
        Ok(())
    }

    async fn remove_bucket(&mut self, name: &str) -> Done<()> {
        self.0.table(BUCKETS)?.remove(name).map_err(fault)?;
        for of in [Config::Cors, Config::Tags, Config::Lifecycle] {
            self.0
                .table(config_table(of))?
                .remove(name)
                .map_err(fault)?;
        }
        self.0
            .table(BUCKET_UPLOAD_BYTES)?
            .remove(name)
            .map_err(fault)?;
        self.0.table(BUCKET_OBJECTS)?.remove(name).map_err(fault)?;
        Ok(())
    }

    async fn set_config(&mut self, name: &str, of: Config, value: Option<&[u8]>) -> Done<()> {
        let mut table = self.0.table(config_table(of))?;
        match value {
            Some(v) => table.insert(name, v).map_err(fault)?,
            None => table.remove(name).map_err(fault)?,
        };
        Ok(())
    }

    async fn put_head(&mut self, at: At<'_>, head: &ObjectHead, inline: Inline<'_>) -> Done<()> {
        if let Some(bytes) = inline {
            let mut table = self.0.table(INLINE)?;
            table.insert(at, bytes).map_err(fault)?;
        }
        let mut heads = self.0.table(HEADS)?;
        heads.insert(at, encode(head).as_slice()).map_err(fault)?;
        Ok(())
    }

    async fn remove_inline(&mut self, bucket: &str, key: &str) -> Done<()> {
        self.0.table(INLINE)?.remove((bucket, key)).map_err(fault)?;
        Ok(())
    }

    async fn remove_head(&mut self, at: At<'_>, inline: bool) -> Done<()> {
        self.0.table(HEADS)?.remove(at).map_err(fault)?;
        if inline {
            self.0.table(INLINE)?.remove(at).map_err(fault)?;
        }
        Ok(())
    }

    async fn put_upload(&mut self, at: At<'_>, id: &str, record: &UploadRecord) -> Done<()> {
        let (bucket, key) = at;
        let mut uploads = self.0.table(UPLOADS)?;
        uploads
            .insert((bucket, key, id), encode(record).as_slice())
            .map_err(fault)?;
        drop(uploads);
        let mut ids = self.0.table(UPLOAD_IDS)?;
        ids.insert(id, (bucket, key)).map_err(fault)?;
        Ok(())
    }

    async fn remove_upload(&mut self, bucket: &str, key: &str, id: &str) -> Done<()> {
        let mut uploads = self.0.table(UPLOADS)?;
        uploads.remove((bucket, key, id)).map_err(fault)?;
        drop(uploads);
        self.0.table(UPLOAD_IDS)?.remove(id).map_err(fault)?;
        Ok(())
    }

    async fn put_part(&mut self, upload_id: &str, number: u32, part: &PartRecord) -> Done<()> {
        let mut parts = self.0.table(PARTS)?;
        parts
            .insert((upload_id, number), encode(part).as_slice())
            .map_err(fault)?;
        Ok(())
    }

    async fn remove_parts(&mut self, upload_id: &str) -> Done<()> {
        let mut parts = self.0.table(PARTS)?;
        parts
            .retain_in((upload_id, 0)..=(upload_id, u32::MAX), |_, _| false)
            .map_err(fault)?;
        Ok(())
    }

    async fn put_segments(&mut self, manifest: u128, rows: &[SegmentRow]) -> Done<()> {
        let mut segments = self.0.table(SEGMENTS)?;
        for (index, row) in (0u32..).zip(rows) {
            segments
                .insert((manifest, index), encode(row).as_slice())
                .map_err(fault)?;
        }
        Ok(())
    }

    async fn remove_segment(&mut self, manifest: u128, index: u32) -> Done<()> {
        let mut segments = self.0.table(SEGMENTS)?;
        segments.remove((manifest, index)).map_err(fault)?;
        Ok(())
    }

    async fn new_refs(&mut self, of: Counted, id: u128) -> Done<()> {
        self.0
            .table(counts_table(of))?
            .insert(id, 1)
            .map_err(fault)?;
        Ok(())
    }

    async fn add_refs(&mut self, of: Counted, id: u128, delta: i32) -> Done<Option<u32>> {
        let mut counts = self.0.table(counts_table(of))?;
        let current = counts.get(id).map_err(fault)?.map(|v| v.value());
        let Some(n) = current.filter(|n| *n > 0) else {
            return Ok(None);
        };
        let new = n
            .checked_add_signed(delta)
            .ok_or_else(|| Fault::new("reference count out of range"))?;
        counts.insert(id, new).map_err(fault)?;
        Ok(Some(new))
    }

    async fn remove_refs(&mut self, of: Counted, id: u128) -> Done<()> {
        self.0.table(counts_table(of))?.remove(id).map_err(fault)?;
        Ok(())
    }

    async fn set_refs(&mut self, of: Counted, id: u128, n: u32) -> Done<()> {
        self.0
            .table(counts_table(of))?
            .insert(id, n)
            .map_err(fault)?;
        Ok(())
    }

    async fn add_garbage(&mut self, due_ms: i64, id: u128, freed: Freed) -> Done<()> {
        let mut garbage = self.0.table(GARBAGE)?;
        garbage.insert((due_ms, id), freed.code()).map_err(fault)?;
        Ok(())
    }

    async fn remove_garbage(&mut self, due_ms: i64, id: u128) -> Done<bool> {
        let mut garbage = self.0.table(GARBAGE)?;
        Ok(garbage.remove((due_ms, id)).map_err(fault)?.is_some())
    }

    async fn extend_lease(&mut self, body: u128, until_ms: i64) -> Done<()> {
        let mut leases = self.0.table(LEASES)?;
        let current = leases.get(body).map_err(fault)?.map_or(0, |v| v.value());
        leases.insert(body, current.max(until_ms)).map_err(fault)?;
        Ok(())
    }

    async fn remove_lease(&mut self, body: u128) -> Done<()> {
        self.0.table(LEASES)?.remove(body).map_err(fault)?;
        Ok(())
    }

    async fn tally(&mut self, tally: Tally<'_>) -> Done<()> {
        match tally {
            Tally::Uploads(delta) => self.add_counter(UPLOADS_COUNT, delta),
            Tally::Garbage(delta) => self.add_counter(GARBAGE_COUNT, delta),
            Tally::UploadBytes { bucket, delta } => {
                if delta == 0 {
                    return Ok(());
                }
                self.add_counter(UPLOAD_BYTES, delta)?;
                let mut table = self.0.table(BUCKET_UPLOAD_BYTES)?;
                let current = table.get(bucket).map_err(fault)?.map_or(0, |v| v.value());
                match current.saturating_add_signed(delta) {
                    0 => table.remove(bucket).map_err(fault)?,
                    n => table.insert(bucket, n).map_err(fault)?,
                };
                Ok(())
            }
            Tally::Objects {
                bucket,
                objects,
                bytes,
            } => {
                let mut table = self.0.table(BUCKET_OBJECTS)?;
                let (n, b) = table
                    .get(bucket)
                    .map_err(fault)?
                    .map_or((0, 0), |v| v.value());
                match (
                    n.saturating_add_signed(objects),
                    b.saturating_add_signed(bytes),
                ) {
                    (0, _) => table.remove(bucket).map_err(fault)?,
                    now => table.insert(bucket, now).map_err(fault)?,
                };
                Ok(())
            }
        }
    }

    async fn put_setting(&mut self, name: &str, value: &[u8]) -> Done<()> {
        self.0.table(SETTINGS)?.insert(name, value).map_err(fault)?;
        Ok(())
    }

    async fn probe(&mut self) -> Done<()> {
        let now = crate::time::now_ms().max(0) as u64;
        self.0.table(COUNTERS)?.insert(PROBE, now).map_err(fault)?;
        Ok(())
    }
}
