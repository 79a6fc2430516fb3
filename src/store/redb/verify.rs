//! `stowage verify`: re-reads every blob the metadata refers to (objects and
//! the parts of incomplete uploads) and checks its length, its MD5 and every
//! checksum stored for exactly that blob (a single-part object's, a part's).
//! A blob shared by copies is read once and reported under every name that
//! uses it. It also counts the references to every blob and manifest and
//! compares them with the stored reference counts, and lists orphan blob
//! files (published, yet neither counted nor awaiting the collector).
//! Verify only reads: the database is opened read-only and no directory is
//! created. `--repair` ([`repair`]) sets wrong counts to the references
//! found and unlinks orphans, with the database opened for writing (so
//! never beside a running server).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use md5::{Digest, Md5};
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use super::tables::{
    BLOBS, COUNTERS, GARBAGE, GARBAGE_COUNT, HEADS, INLINE, MANIFESTS, PARTS, SEGMENTS,
};
use crate::checksum::{Checksum, Hasher};
use crate::error::S3Result;
use crate::store::blob::BlobStore;
use crate::store::codec::decode;
use crate::store::local::LocalBlobs;
use crate::store::model::{Body, ObjectHead, PartRecord, hex, id_hex};
use crate::store::txn::{Freed, SegmentRow};

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
    /// Whether a garbage row awaits it.
    pub in_garbage: bool,
}

impl CountProblem {
    pub fn describe(&self) -> String {
        let what = if self.manifest { "manifest" } else { "blob" };
        let stored = self
            .stored
            .map_or_else(|| "no count".to_owned(), |n| format!("count {n}"));
        let garbage = if self.in_garbage {
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

/// Opens a data directory without writing to it. Fails when a server has
/// the database open (stop it first), when the database needs the repair a
/// server start performs after a crash, or when `blobs/` is missing (an
/// unmounted volume must not read as a store whose every blob is lost).
pub fn open(data_dir: &Path) -> Result<(ReadOnlyDatabase, LocalBlobs), String> {
    let db_path = data_dir.join("meta.redb");
    if !db_path.exists() {
        return Err(format!("{} does not exist", db_path.display()));
    }
    let db = ReadOnlyDatabase::open(&db_path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => format!(
            "{} is open in another process; stop the server first",
            db_path.display()
        ),
        redb::DatabaseError::RepairAborted => format!(
            "{} was not closed cleanly; start and stop the server once to repair it",
            db_path.display()
        ),
        e => format!("cannot open {}: {e}", db_path.display()),
    })?;
    if !data_dir.join("blobs").is_dir() {
        return Err(format!("{} is missing", data_dir.join("blobs").display()));
    }
    Ok((db, LocalBlobs::at(data_dir)))
}

/// Checks every referenced blob. `progress(done, total, finished)` counts
/// bytes of blobs checked against the bytes the metadata expects, and is
/// called once more at the end.
pub fn verify(
    db: &impl ReadableDatabase,
    blobs: &LocalBlobs,
    mut progress: impl FnMut(u64, u64, bool),
) -> S3Result<Report> {
    let mut report = Report::default();
    let mut expected: BTreeMap<u128, Expected> = BTreeMap::new();
    let mut expect =
        |id: u128, len: u64, md5: [u8; 16], checksums: &[Option<Checksum>], user: String| {
            let e = expected.entry(id).or_insert(Expected {
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
        };
    // A record that does not decode is damage too; the rest still gets
    // checked.
    let mut unreadable = Vec::new();
    // References found: blob → part rows, single-blob heads and segment
    // rows naming it; manifest → heads naming it.
    let mut blob_refs: BTreeMap<u128, u32> = BTreeMap::new();
    let mut manifest_refs: BTreeMap<u128, u32> = BTreeMap::new();
    let txn = db.begin_read()?;
    let segments = txn.open_table(SEGMENTS)?;
    let inline = txn.open_table(INLINE)?;
    for row in txn.open_table(HEADS)?.iter()? {
        let (k, v) = row?;
        let (bucket, key) = k.value();
        report.objects += 1;
        let head: ObjectHead = match decode(v.value()) {
            Ok(r) => r,
            Err(e) => {
                unreadable.push((format!("{bucket}/{key}"), e.to_string()));
                continue;
            }
        };
        match &head.body {
            Body::Blob(s) => *blob_refs.entry(s.blob).or_default() += 1,
            Body::Parts { manifest, .. } => *manifest_refs.entry(*manifest).or_default() += 1,
            Body::Inline => {}
        }
        match &head.body {
            Body::Blob(s) => expect(
                s.blob,
                s.len,
                s.md5,
                std::slice::from_ref(&head.checksum),
                format!("{bucket}/{key}"),
            ),
            Body::Parts { manifest, .. } => {
                let range = (*manifest, 0)..=(*manifest, u32::MAX);
                for (i, row) in segments.range(range)?.enumerate() {
                    let user = format!("{bucket}/{key} (part {})", i + 1);
                    match decode::<SegmentRow>(row?.1.value()) {
                        Ok(SegmentRow { segment: s, .. }) => {
                            expect(s.blob, s.len, s.md5, &[s.checksum], user)
                        }
                        Err(e) => unreadable.push((user, e.to_string())),
                    }
                }
            }
            Body::Inline => {
                let bytes = inline.get((bucket, key))?;
                let md5 = bytes.map(|b| hex(&Md5::digest(b.value())));
                if md5.as_deref() != Some(head.etag.as_str()) {
                    report.damaged.push(Damage {
                        blob: "-".into(),
                        problem: "inline bytes missing or not matching the ETag".into(),
                        users: vec![format!("{bucket}/{key}")],
                    });
                }
            }
        }
    }
    drop((segments, inline));
    for row in txn.open_table(PARTS)?.iter()? {
        let (k, v) = row?;
        let (upload, number) = k.value();
        report.upload_parts += 1;
        let user = format!("upload {upload} part {number}");
        match decode::<PartRecord>(v.value()) {
            Ok(part) => {
                *blob_refs.entry(part.blob).or_default() += 1;
                expect(
                    part.blob,
                    part.size,
                    part.md5,
                    &[part.checksum, part.crc64nvme],
                    user,
                )
            }
            Err(e) => unreadable.push((user, e.to_string())),
        }
    }
    // Every segment row counts, a freed manifest's too: its blobs keep
    // that reference until the collector takes the manifest apart.
    for row in txn.open_table(SEGMENTS)?.iter()? {
        let (k, v) = row?;
        match decode::<SegmentRow>(v.value()) {
            Ok(row) => *blob_refs.entry(row.segment.blob).or_default() += 1,
            Err(e) => unreadable.push((format!("manifest {}", id_hex(k.value().0)), e.to_string())),
        }
    }
    let mut garbage: BTreeMap<(u128, bool), i64> = BTreeMap::new();
    for row in txn.open_table(GARBAGE)?.iter()? {
        let (k, kind) = row?;
        let (due, id) = k.value();
        garbage.insert((id, kind.value() == Freed::Manifest.code()), due);
    }
    report.counts = count_problems(&txn, &blob_refs, &manifest_refs, &garbage)?;
    let counted: std::collections::HashSet<u128> = {
        let mut ids = std::collections::HashSet::new();
        for row in txn.open_table(BLOBS)?.iter()? {
            ids.insert(row?.0.value());
        }
        ids
    };
    drop(txn);
    let published = blobs
        .published()
        .map_err(|e| crate::error::S3Error::internal(format!("listing blobs/: {e}")))?;
    report.orphans = published
        .into_iter()
        .filter(|(id, _)| !counted.contains(id) && !garbage.contains_key(&(*id, false)))
        .collect();
    for (user, error) in unreadable {
        report.damaged.push(Damage {
            blob: "-".into(),
            problem: format!("undecodable metadata record ({error})"),
            users: vec![user],
        });
    }

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
            check_blob(blobs, id, &e, &mut buf, |n| {
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
    Ok(report)
}

/// Stored counts that disagree with `blob_refs` / `manifest_refs`. A count
/// at zero is right only while a garbage row awaits it.
fn count_problems(
    txn: &redb::ReadTransaction,
    blob_refs: &BTreeMap<u128, u32>,
    manifest_refs: &BTreeMap<u128, u32>,
    garbage: &BTreeMap<(u128, bool), i64>,
) -> S3Result<Vec<CountProblem>> {
    let mut problems = Vec::new();
    for (manifest, table, refs) in [
        (false, txn.open_table(BLOBS)?, blob_refs),
        (true, txn.open_table(MANIFESTS)?, manifest_refs),
    ] {
        let mut stored: BTreeMap<u128, u32> = BTreeMap::new();
        for row in table.iter()? {
            let (id, n) = row?;
            stored.insert(id.value(), n.value());
        }
        let ids: std::collections::BTreeSet<u128> =
            stored.keys().chain(refs.keys()).copied().collect();
        for id in ids {
            let (count, references) = (
                stored.get(&id).copied(),
                refs.get(&id).copied().unwrap_or(0),
            );
            let in_garbage = garbage.contains_key(&(id, manifest));
            let right = match count {
                Some(0) => references == 0 && in_garbage,
                Some(n) => n == references && !in_garbage,
                None => references == 0,
            };
            if !right {
                problems.push(CountProblem {
                    id,
                    manifest,
                    stored: count,
                    references,
                    in_garbage,
                });
            }
        }
    }
    Ok(problems)
}

/// Opens a data directory for `verify --repair`: for writing, which redb
/// refuses while a server has it open.
pub fn open_for_repair(data_dir: &Path) -> Result<(Database, LocalBlobs), String> {
    let db_path = data_dir.join("meta.redb");
    if !db_path.exists() {
        return Err(format!("{} does not exist", db_path.display()));
    }
    if !data_dir.join("blobs").is_dir() {
        return Err(format!("{} is missing", data_dir.join("blobs").display()));
    }
    let db = Database::builder().open(&db_path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => format!(
            "{} is open in another process; stop the server first",
            db_path.display()
        ),
        e => format!("cannot open {}: {e}", db_path.display()),
    })?;
    Ok((db, LocalBlobs::at(data_dir)))
}

/// What `--repair` changed.
#[derive(Debug, Default)]
pub struct Repaired {
    pub counts: usize,
    pub orphans: usize,
    pub orphan_bytes: u64,
}

/// Sets each wrong count to the references found (a blob or manifest with
/// none is handed to the collector, due at once; one with references is
/// taken out of the garbage, so the collector can never unlink it), then
/// unlinks the orphan files. Blobs that are referenced but damaged are
/// only reported: their bytes are the client's, not ours to drop.
pub fn repair(db: &Database, blobs: &LocalBlobs, report: &Report) -> S3Result<Repaired> {
    let now = crate::time::now_ms();
    let txn = db.begin_write()?;
    {
        let mut blob_counts = txn.open_table(BLOBS)?;
        let mut manifest_counts = txn.open_table(MANIFESTS)?;
        let mut garbage = txn.open_table(GARBAGE)?;
        let mut counters = txn.open_table(COUNTERS)?;
        let mut garbage_count = counters.get(GARBAGE_COUNT)?.map_or(0, |v| v.value());
        for p in &report.counts {
            let counts = if p.manifest {
                &mut manifest_counts
            } else {
                &mut blob_counts
            };
            counts.insert(p.id, p.references)?;
            let kind = if p.manifest {
                Freed::Manifest.code()
            } else {
                Freed::Blob.code()
            };
            if p.references == 0 && !p.in_garbage {
                garbage.insert((now, p.id), kind)?;
                garbage_count += 1;
            }
            if p.references > 0 && p.in_garbage {
                let rows: Vec<(i64, u128)> = garbage
                    .iter()?
                    .filter_map(|r| r.ok())
                    .map(|(k, v)| (k.value(), v.value()))
                    .filter(|((_, id), v)| *id == p.id && *v == kind)
                    .map(|(k, _)| k)
                    .collect();
                for key in rows {
                    garbage.remove(key)?;
                    garbage_count = garbage_count.saturating_sub(1);
                }
            }
        }
        counters.insert(GARBAGE_COUNT, garbage_count)?;
    }
    txn.commit()?;
    let mut repaired = Repaired {
        counts: report.counts.len(),
        ..Repaired::default()
    };
    for (id, len) in &report.orphans {
        match blobs.remove_published(*id) {
            Ok(()) => {
                repaired.orphans += 1;
                repaired.orphan_bytes += len;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(crate::error::S3Error::internal(format!(
                    "unlinking orphan {}: {e}",
                    id_hex(*id)
                )));
            }
        }
    }
    Ok(repaired)
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
