//! `stowage verify`: re-reads every blob the metadata refers to (objects and
//! the parts of incomplete uploads) and checks its length, its MD5 and every
//! checksum stored for exactly that blob (a single-part object's, a part's).
//! A blob shared by copies is read once and reported under every name that
//! uses it. Verify only reads: the database is opened read-only and no
//! directory is created.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use md5::{Digest, Md5};
use redb::{ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use super::tables::{HEADS, INLINE, PARTS, SEGMENTS, SegmentRow, decode};
use crate::checksum::{Checksum, Hasher};
use crate::error::S3Result;
use crate::store::blob::BlobStore;
use crate::store::local::LocalBlobs;
use crate::store::model::{Body, ObjectHead, PartRecord, hex, id_hex};

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

#[derive(Debug, Default)]
pub struct Report {
    pub objects: u64,
    pub upload_parts: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub damaged: Vec<Damage>,
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
    db: &ReadOnlyDatabase,
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
            Ok(part) => expect(
                part.blob,
                part.size,
                part.md5,
                &[part.checksum, part.crc64nvme],
                user,
            ),
            Err(e) => unreadable.push((user, e.to_string())),
        }
    }
    drop(txn);
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
