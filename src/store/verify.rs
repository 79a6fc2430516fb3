//! `stowage verify`: re-reads every blob the metadata refers to (objects and
//! the parts of incomplete uploads) and checks its length, its MD5 and, where
//! one was stored for exactly that blob (a single-part object's, a part's),
//! its checksum. A blob shared by
//! copies is read once and reported under every name that uses it.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use md5::{Digest, Md5};
use redb::{Database, ReadableDatabase, ReadableTable};

use super::blobs::{BlobDir, id_hex};
use super::tables::{OBJECTS, ObjectRecord, PARTS, PartRecord, decode};
use crate::checksum::{Checksum, Hasher};
use crate::error::S3Result;

/// What the metadata says one blob must be.
struct Expected {
    len: u64,
    md5: [u8; 16],
    checksum: Option<Checksum>,
    /// Who refers to it: `bucket/key`, `bucket/key (part 3)`, `upload <id> part 2`.
    users: Vec<String>,
}

/// One blob that failed.
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

/// Opens a data directory's metadata without writing to it. Fails when a
/// server has the database open: stop it first.
pub fn open(data_dir: &Path) -> Result<(Database, Arc<BlobDir>), String> {
    let db_path = data_dir.join("meta.redb");
    if !db_path.exists() {
        return Err(format!("{} does not exist", db_path.display()));
    }
    let db = Database::open(&db_path).map_err(|e| {
        format!(
            "cannot open {} ({e}); is a server still running on it?",
            db_path.display()
        )
    })?;
    let blobs = BlobDir::open(data_dir).map_err(|e| format!("blob directories: {e}"))?;
    Ok((db, Arc::new(blobs)))
}

/// Checks every referenced blob; `progress(done, total, finished)` is
/// called with byte counts as the work advances, and once at the end.
pub fn verify(
    db: &Database,
    blobs: &BlobDir,
    mut progress: impl FnMut(u64, u64, bool),
) -> S3Result<Report> {
    let mut report = Report::default();
    let mut expected: BTreeMap<u128, Expected> = BTreeMap::new();
    let mut expect =
        |id: u128, len: u64, md5: [u8; 16], checksum: Option<Checksum>, user: String| {
            let e = expected.entry(id).or_insert(Expected {
                len,
                md5,
                checksum: None,
                users: Vec::new(),
            });
            if e.checksum.is_none() {
                e.checksum = checksum;
            }
            e.users.push(user);
        };
    let txn = db.begin_read()?;
    for row in txn.open_table(OBJECTS)?.iter()? {
        let (k, v) = row?;
        let (bucket, key) = k.value();
        let record: ObjectRecord = decode(v.value())?;
        report.objects += 1;
        let single = record.segments.len() == 1 && !record.is_multipart();
        for (i, s) in record.segments.iter().enumerate() {
            let (user, checksum) = if single {
                (format!("{bucket}/{key}"), record.checksum.clone())
            } else {
                (
                    format!("{bucket}/{key} (part {})", i + 1),
                    s.checksum.clone(),
                )
            };
            expect(s.blob, s.len, s.md5, checksum, user);
        }
    }
    for row in txn.open_table(PARTS)?.iter()? {
        let (k, v) = row?;
        let (upload, number) = k.value();
        let part: PartRecord = decode(v.value())?;
        report.upload_parts += 1;
        let user = format!("upload {upload} part {number}");
        expect(part.blob, part.size, part.md5, part.checksum, user);
    }
    drop(txn);

    let total: u64 = expected.values().map(|e| e.len).sum();
    progress(0, total, false);
    let mut buf = vec![0u8; 1 << 20];
    for (id, e) in expected {
        report.blobs += 1;
        let outcome = check_blob(blobs, id, &e, &mut buf, |n| {
            report.bytes += n;
            progress(report.bytes, total, false);
        });
        if let Err(problem) = outcome {
            report.damaged.push(Damage {
                blob: id_hex(id),
                problem,
                users: e.users,
            });
        }
    }
    progress(report.bytes, total, true);
    Ok(report)
}

fn check_blob(
    blobs: &BlobDir,
    id: u128,
    e: &Expected,
    buf: &mut [u8],
    mut advanced: impl FnMut(u64),
) -> Result<(), String> {
    let mut file = match blobs.open_blob(id) {
        Ok(f) => f,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err("missing".into()),
        Err(err) => return Err(format!("unreadable: {err}")),
    };
    let mut md5 = Md5::new();
    let mut hasher = e.checksum.as_ref().map(|c| Hasher::new(c.algorithm));
    let mut len = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("read error after {len} bytes: {err}")),
        };
        md5.update(&buf[..n]);
        if let Some(h) = &mut hasher {
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
            super::hex(&md5),
            super::hex(&e.md5)
        ));
    }
    if let (Some(h), Some(stored)) = (hasher, &e.checksum) {
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
