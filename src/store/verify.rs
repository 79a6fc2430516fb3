//! `stowage verify`: re-reads every blob the metadata refers to (objects and
//! the parts of incomplete uploads) and checks its length, its MD5 and every
//! checksum stored for exactly that blob (a single-part object's, a part's).
//! A blob shared by copies is read once and reported under every name that
//! uses it. It also counts the references to every blob and manifest and
//! compares them with the stored reference counts, and lists orphan blob
//! files (published, yet neither counted nor awaiting the collector).
//! Written over the metadata interface, so it runs on every engine. Verify
//! only reads, in one snapshot. `--repair` ([`repair`]) sets wrong counts
//! to the references found and unlinks orphans; each repair holds only if
//! the count is still as verify read it, and an orphan is one only if it is
//! still unreferenced after the blob files were listed, so a repair never
//! undoes a change made meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read};
use std::ops::Bound;
use std::sync::Arc;

use md5::{Digest, Md5};

use super::blob::BlobStore;
use super::local::LocalBlobs;
use super::model::{Body, PartRecord, hex, id_hex};
use super::txn::*;
use crate::checksum::{Checksum, Hasher};
use crate::error::{S3Error, S3Result};

/// What the metadata says one blob must be.
struct Expected {
    len: u64,
    md5: [u8; 16],
    /// Distinct stored checksums (copies may record the same one twice).
    checksums: Vec<Checksum>,
    /// Who refers to it: `bucket/key`, `bucket/key (part 3)`, `upload <id> part 2`.
    users: Vec<String>,
    /// Two records disagree on its length or MD5.
    inconsistent: bool,
}

/// One blob (or record) that failed.
#[derive(Debug)]
pub struct Damage {
    pub blob: String,
    pub problem: String,
    pub users: Vec<String>,
}

/// A stored reference count that disagrees with the references found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountProblem {
    pub id: u128,
    pub manifest: bool,
    /// The stored count; `None` when there is no row.
    pub stored: Option<u32>,
    pub references: u32,
    /// When the garbage row that awaits it is due, if one does.
    pub garbage_due: Option<i64>,
}

impl CountProblem {
    pub fn describe(&self) -> String {
        let what = if self.manifest { "manifest" } else { "blob" };
        let stored = self
            .stored
            .map_or_else(|| "no count".to_owned(), |n| format!("count {n}"));
        let garbage = if self.garbage_due.is_some() {
            ", awaiting the collector"
        } else {
            ""
        };
        format!(
            "{what} {}: {stored}{garbage}, {} references",
            id_hex(self.id),
            self.references
        )
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub objects: u64,
    pub upload_parts: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub damaged: Vec<Damage>,
    pub counts: Vec<CountProblem>,
    /// Published blob files nothing counts or collects, with their sizes.
    pub orphans: Vec<(u128, u64)>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.damaged.is_empty() && self.counts.is_empty() && self.orphans.is_empty()
    }
}

/// Rows a scan reads at a time.
const PAGE: usize = 1000;

/// Everything verify learns from the metadata, read in one snapshot.
#[derive(Default)]
struct Census {
    objects: u64,
    upload_parts: u64,
    expected: BTreeMap<u128, Expected>,
    /// Inline bodies that do not match their ETag.
    damaged: Vec<Damage>,
    /// References found: blob → part rows, single-blob heads and segment
    /// rows naming it; manifest → heads naming it.
    blob_refs: BTreeMap<u128, u32>,
    manifest_refs: BTreeMap<u128, u32>,
    /// Stored counts.
    blob_counts: BTreeMap<u128, u32>,
    manifest_counts: BTreeMap<u128, u32>,
    /// (id, is a manifest) → due time of its garbage row.
    garbage: BTreeMap<(u128, bool), i64>,
}

impl Census {
    fn expect(
        &mut self,
        id: u128,
        len: u64,
        md5: [u8; 16],
        checksums: &[Option<Checksum>],
        user: String,
    ) {
        let e = self.expected.entry(id).or_insert(Expected {
            len,
            md5,
            checksums: Vec::new(),
            users: Vec::new(),
            inconsistent: false,
        });
        e.inconsistent |= e.len != len || e.md5 != md5;
        for c in checksums.iter().flatten() {
            if !e.checksums.contains(c) {
                e.checksums.push(c.clone());
            }
        }
        e.users.push(user);
    }
}

/// The whole metadata, scanned.
struct ScanAll;

impl Query for ScanAll {
    type Output = Census;
    const SNAPSHOT: bool = true;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Census> {
        let mut c = Census::default();
        // Each manifest's segments, read once.
        let mut manifests: BTreeMap<u128, Vec<SegmentRow>> = BTreeMap::new();
        for (bucket, _) in txn.buckets().await? {
            scan_objects(txn, &bucket, &mut c, &mut manifests).await?;
            scan_uploads(txn, &bucket, &mut c).await?;
        }
        for (of, counts) in [
            (Counted::Blob, &mut c.blob_counts),
            (Counted::Manifest, &mut c.manifest_counts),
        ] {
            let mut after = None;
            loop {
                let page = txn.counts(of, after, PAGE).await?;
                after = page.last().map(|(id, _)| *id);
                let n = page.len();
                counts.extend(page);
                if n < PAGE {
                    break;
                }
            }
        }
        for (due, id, freed) in txn.garbage(i64::MAX, usize::MAX).await? {
            c.garbage.insert((id, freed == Freed::Manifest), due);
        }
        // Every segment row counts, a freed manifest's too: its blobs keep
        // that reference until the collector takes the manifest apart.
        let mut all: BTreeSet<u128> = c.manifest_counts.keys().copied().collect();
        all.extend(c.garbage.keys().filter(|(_, m)| *m).map(|(id, _)| *id));
        all.extend(manifests.keys().copied());
        for manifest in all {
            let rows = match manifests.remove(&manifest) {
                Some(rows) => rows,
                None => segments_of(txn, manifest).await?,
            };
            for row in rows {
                *c.blob_refs.entry(row.segment.blob).or_default() += 1;
            }
        }
        Ok(c)
    }
}

async fn segments_of<R: Reads>(txn: &mut R, manifest: u128) -> Done<Vec<SegmentRow>> {
    let rows = txn.segments(manifest, 0, usize::MAX).await?;
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

async fn scan_objects<R: Reads>(
    txn: &mut R,
    bucket: &str,
    c: &mut Census,
    manifests: &mut BTreeMap<u128, Vec<SegmentRow>>,
) -> Done<()> {
    let mut after: Option<String> = None;
    loop {
        let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let scan = Scan {
            from,
            below: None,
            max: PAGE,
        };
        let page = txn.heads(bucket, scan).await?;
        let n = page.len();
        for (key, head) in page {
            c.objects += 1;
            let user = format!("{bucket}/{key}");
            match &head.body {
                Body::Blob(s) => {
                    *c.blob_refs.entry(s.blob).or_default() += 1;
                    let checksum = std::slice::from_ref(&head.checksum);
                    c.expect(s.blob, s.len, s.md5, checksum, user);
                }
                Body::Parts { manifest, .. } => {
                    *c.manifest_refs.entry(*manifest).or_default() += 1;
                    if !manifests.contains_key(manifest) {
                        let rows = segments_of(txn, *manifest).await?;
                        manifests.insert(*manifest, rows);
                    }
                    for (i, row) in manifests[manifest].iter().enumerate() {
                        let s = &row.segment;
                        let user = format!("{user} (part {})", i + 1);
                        c.expect(
                            s.blob,
                            s.len,
                            s.md5,
                            std::slice::from_ref(&s.checksum),
                            user,
                        );
                    }
                }
                Body::Inline => {
                    let object = txn.object(bucket, &key).await?.flatten();
                    let bytes = object.and_then(|(_, inline)| inline);
                    let md5 = bytes.map(|b| hex(&Md5::digest(&b)));
                    if md5.as_deref() != Some(head.etag.as_str()) {
                        c.damaged.push(Damage {
                            blob: "-".into(),
                            problem: "inline bytes missing or not matching the ETag".into(),
                            users: vec![user],
                        });
                    }
                }
            }
            after = Some(key);
        }
        if n < PAGE {
            return Ok(());
        }
    }
}

async fn scan_uploads<R: Reads>(txn: &mut R, bucket: &str, c: &mut Census) -> Done<()> {
    let mut after: Option<(String, String)> = None;
    loop {
        let from = match &after {
            Some((key, id)) => Bound::Excluded((key.as_str(), id.as_str())),
            None => Bound::Unbounded,
        };
        let scan = Scan {
            from,
            below: None,
            max: PAGE,
        };
        let page = txn.uploads(bucket, scan).await?;
        let n = page.len();
        for (key, id, _) in page {
            for (number, part) in txn.parts(&id, 0, usize::MAX).await? {
                c.upload_parts += 1;
                let PartRecord {
                    blob, size, md5, ..
                } = part;
                *c.blob_refs.entry(blob).or_default() += 1;
                let user = format!("upload {id} part {number}");
                c.expect(blob, size, md5, &[part.checksum, part.crc64nvme], user);
            }
            after = Some((key, id));
        }
        if n < PAGE {
            return Ok(());
        }
    }
}

/// Stored counts that disagree with the references found. A count at zero
/// is right only while a garbage row awaits it.
fn count_problems(c: &Census) -> Vec<CountProblem> {
    let mut problems = Vec::new();
    for (manifest, stored, refs) in [
        (false, &c.blob_counts, &c.blob_refs),
        (true, &c.manifest_counts, &c.manifest_refs),
    ] {
        let ids: BTreeSet<u128> = stored.keys().chain(refs.keys()).copied().collect();
        for id in ids {
            let count = stored.get(&id).copied();
            let references = refs.get(&id).copied().unwrap_or(0);
            let garbage_due = c.garbage.get(&(id, manifest)).copied();
            let right = match count {
                Some(0) => references == 0 && garbage_due.is_some(),
                Some(n) => n == references && garbage_due.is_none(),
                None => references == 0,
            };
            if !right {
                problems.push(CountProblem {
                    id,
                    manifest,
                    stored: count,
                    references,
                    garbage_due,
                });
            }
        }
    }
    problems
}

/// Which of the candidate orphans are still unreferenced: a blob published
/// after the scan had its record committed before, so it shows here.
struct Unreferenced(Vec<(u128, u64)>);

impl Query for Unreferenced {
    type Output = Vec<(u128, u64)>;
    const SNAPSHOT: bool = true;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Self::Output> {
        let freed: HashSet<u128> = txn
            .garbage(i64::MAX, usize::MAX)
            .await?
            .into_iter()
            .map(|(_, id, _)| id)
            .collect();
        let mut orphans = Vec::new();
        for (id, len) in &self.0 {
            if !freed.contains(id) && txn.refs(Counted::Blob, *id).await?.is_none() {
                orphans.push((*id, *len));
            }
        }
        Ok(orphans)
    }
}

/// The blob directory of a data directory. A missing `blobs/` is an error:
/// an unmounted volume must not read as a store whose every blob is lost.
pub fn blobs_at(data_dir: &std::path::Path) -> Result<LocalBlobs, String> {
    if !data_dir.join("blobs").is_dir() {
        return Err(format!("{} is missing", data_dir.join("blobs").display()));
    }
    Ok(LocalBlobs::at(data_dir))
}

fn blocking_error(e: tokio::task::JoinError) -> S3Error {
    S3Error::internal(e)
}

/// Checks every referenced blob. `progress(done, total, finished)` counts
/// bytes of blobs checked against the bytes the metadata expects, and is
/// called once more at the end.
pub async fn verify<E: Engine>(
    engine: &E,
    blobs: Arc<LocalBlobs>,
    mut progress: impl FnMut(u64, u64, bool) + Send + 'static,
) -> S3Result<Report> {
    let census = engine.query(ScanAll).await?;
    let mut report = Report {
        objects: census.objects,
        upload_parts: census.upload_parts,
        counts: count_problems(&census),
        ..Report::default()
    };
    let listed = Arc::clone(&blobs);
    let published = tokio::task::spawn_blocking(move || listed.published())
        .await
        .map_err(blocking_error)?
        .map_err(|e| S3Error::internal(format!("listing blobs/: {e}")))?;
    let candidates: Vec<(u128, u64)> = published
        .into_iter()
        .filter(|(id, _)| {
            !census.blob_counts.contains_key(id) && !census.garbage.contains_key(&(*id, false))
        })
        .collect();
    if !candidates.is_empty() {
        report.orphans = engine.query(Unreferenced(candidates)).await?;
    }
    let Census {
        expected, damaged, ..
    } = census;
    report.damaged = damaged;
    let checked = tokio::task::spawn_blocking(move || {
        let mut report = Report::default();
        let total: u64 = expected.values().map(|e| e.len).sum();
        let mut done = 0;
        progress(0, total, false);
        let mut buf = vec![0u8; 1 << 20];
        for (id, e) in expected {
            report.blobs += 1;
            let outcome = if e.inconsistent {
                Err("metadata records disagree on its length or MD5".to_owned())
            } else {
                let mut read = 0;
                check_blob(&blobs, id, &e, &mut buf, |n| {
                    report.bytes += n;
                    read += n;
                    progress(done + read.min(e.len), total, false);
                })
            };
            done += e.len;
            progress(done, total, false);
            if let Err(problem) = outcome {
                report.damaged.push(Damage {
                    blob: id_hex(id),
                    problem,
                    users: e.users,
                });
            }
        }
        progress(done, total, true);
        report
    })
    .await
    .map_err(blocking_error)?;
    report.blobs = checked.blobs;
    report.bytes = checked.bytes;
    report.damaged.extend(checked.damaged);
    Ok(report)
}

/// Sets each wrong count to the references found, where the count is
/// still as verify read it (a blob or manifest with none is handed to the
/// collector, due at once; one with references is taken out of the
/// garbage, so the collector can never unlink it).
struct Repair(Vec<CountProblem>);

impl Change for Repair {
    type Plan = Vec<usize>;
    type Output = usize;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Vec<usize>> {
        let mut unchanged = Vec::new();
        for (i, p) in self.0.iter().enumerate() {
            let of = if p.manifest {
                Counted::Manifest
            } else {
                Counted::Blob
            };
            if txn.refs(of, p.id).await? == p.stored {
                unchanged.push(i);
            }
        }
        Ok(unchanged)
    }

    async fn apply<W: Writes>(&self, unchanged: Vec<usize>, txn: &mut W) -> Done<usize> {
        let now = crate::time::now_ms();
        for &i in &unchanged {
            let p = &self.0[i];
            let (of, freed) = match p.manifest {
                true => (Counted::Manifest, Freed::Manifest),
                false => (Counted::Blob, Freed::Blob),
            };
            txn.set_refs(of, p.id, p.references).await?;
            let tally = match p.garbage_due {
                None if p.references == 0 => {
                    txn.add_garbage(now, p.id, freed).await?;
                    1
                }
                Some(due) if p.references > 0 && txn.remove_garbage(due, p.id).await? => -1,
                _ => 0,
            };
            txn.tally(Tally::Garbage(tally)).await?;
        }
        Ok(unchanged.len())
    }
}

/// What `--repair` changed.
#[derive(Debug, Default)]
pub struct Repaired {
    pub counts: usize,
    pub orphans: usize,
    pub orphan_bytes: u64,
}

/// Repairs the counts `report` found wrong, then unlinks its orphan files.
/// Blobs that are referenced but damaged are only reported: their bytes
/// are the client's, not ours to drop.
pub async fn repair<E: Engine>(
    engine: &E,
    blobs: Arc<LocalBlobs>,
    report: &Report,
) -> S3Result<Repaired> {
    let counts = engine.change(Repair(report.counts.clone())).await?;
    let orphans = report.orphans.clone();
    tokio::task::spawn_blocking(move || {
        let mut repaired = Repaired {
            counts,
            ..Repaired::default()
        };
        for (id, len) in orphans {
            match blobs.remove_published(id) {
                Ok(()) => {
                    repaired.orphans += 1;
                    repaired.orphan_bytes += len;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(S3Error::internal(format!(
                        "unlinking orphan {}: {e}",
                        id_hex(id)
                    )));
                }
            }
        }
        Ok(repaired)
    })
    .await
    .map_err(blocking_error)?
}

/// Reads one blob, hashing it with MD5 and every stored checksum's
/// algorithm in one pass. `advanced` gets each read's byte count.
fn check_blob(
    blobs: &LocalBlobs,
    id: u128,
    e: &Expected,
    buf: &mut [u8],
    mut advanced: impl FnMut(u64),
) -> Result<(), String> {
    let mut file = match blobs.open(id) {
        Ok(f) => f,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err("missing".into()),
        Err(err) => return Err(format!("unreadable: {err}")),
    };
    let mut md5 = Md5::new();
    let mut hashers: Vec<Hasher> = e
        .checksums
        .iter()
        .map(|c| Hasher::new(c.algorithm))
        .collect();
    let mut len = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("read error after {len} bytes: {err}")),
        };
        md5.update(&buf[..n]);
        for h in &mut hashers {
            h.update(&buf[..n]);
        }
        len += n as u64;
        advanced(n as u64);
    }
    if len != e.len {
        return Err(format!("{len} bytes, expected {}", e.len));
    }
    let md5: [u8; 16] = md5.finalize().into();
    if md5 != e.md5 {
        return Err(format!(
            "MD5 {} does not match the stored {}",
            hex(&md5),
            hex(&e.md5)
        ));
    }
    for (h, stored) in hashers.into_iter().zip(&e.checksums) {
        let computed = h.finish();
        if computed != *stored {
            return Err(format!(
                "{} {} does not match the stored {}",
                stored.algorithm.name(),
                computed.value,
                stored.value
            ));
        }
    }
    Ok(())
}
