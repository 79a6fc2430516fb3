//! Blob files: immutable byte files named by a random 128-bit id.
//!
//! A write streams into `tmp/<id>` on a blocking thread that hashes as it
//! writes, then fsyncs the file and the `tmp/` directory. The metadata commit
//! makes the blob live; only after it is the file renamed to
//! `blobs/<ab>/<id>`. A crash between commit and rename leaves a referenced
//! file in `tmp/`, which start-up recovery moves into place; so readers look
//! in `blobs/` first and `tmp/` second. Nothing in `tmp/` that metadata does
//! not reference survives a restart, and start-up never scans `blobs/`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use crate::checksum::{Algorithm, Checksum, Hasher};
use crate::error::{S3Error, S3Result};
use crate::store::tables::Segment;

const READ_CHUNK: usize = 256 * 1024;

/// The blob directories of one data directory, and the pins of blobs that
/// readers hold open.
#[derive(Debug)]
pub struct BlobDir {
    blobs: PathBuf,
    tmp: PathBuf,
    pins: Mutex<HashMap<u128, usize>>,
}

pub fn new_id() -> u128 {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    u128::from_le_bytes(b)
}

pub fn id_hex(id: u128) -> String {
    format!("{id:032x}")
}

impl BlobDir {
    pub fn open(data_dir: &Path) -> io::Result<BlobDir> {
        let dir = BlobDir {
            blobs: data_dir.join("blobs"),
            tmp: data_dir.join("tmp"),
            pins: Mutex::new(HashMap::new()),
        };
        fs::create_dir_all(&dir.blobs)?;
        fs::create_dir_all(&dir.tmp)?;
        Ok(dir)
    }

    pub fn tmp_path(&self, id: u128) -> PathBuf {
        self.tmp.join(id_hex(id))
    }

    pub fn final_path(&self, id: u128) -> PathBuf {
        let hex = id_hex(id);
        self.blobs.join(&hex[..2]).join(hex)
    }

    /// Moves a committed blob from `tmp/` to its place under `blobs/`.
    pub fn publish(&self, id: u128) -> io::Result<()> {
        let dest = self.final_path(id);
        let parent = dest.parent().expect("blob paths have a parent");
        if !parent.exists() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(self.tmp_path(id), dest)
    }

    /// Opens a live blob wherever it is (see the module comment).
    pub fn open_blob(&self, id: u128) -> io::Result<File> {
        match File::open(self.final_path(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match File::open(self.tmp_path(id)) {
                // Published between our two attempts.
                Err(e) if e.kind() == io::ErrorKind::NotFound => File::open(self.final_path(id)),
                other => other,
            },
            other => other,
        }
    }

    /// Unlinks a freed blob from wherever it is; a missing file is fine.
    pub fn remove(&self, id: u128) -> io::Result<()> {
        for path in [self.final_path(id), self.tmp_path(id)] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Ids of the files in `tmp/` (start-up recovery); other names are
    /// returned as paths to remove.
    pub fn tmp_entries(&self) -> io::Result<(Vec<u128>, Vec<PathBuf>)> {
        let mut ids = Vec::new();
        let mut strays = Vec::new();
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let name = entry.file_name();
            match name
                .to_str()
                .filter(|n| n.len() == 32)
                .and_then(|n| u128::from_str_radix(n, 16).ok())
            {
                Some(id) => ids.push(id),
                None => strays.push(entry.path()),
            }
        }
        Ok((ids, strays))
    }

    pub fn is_pinned(&self, id: u128) -> bool {
        self.pins.lock().expect("pin lock").contains_key(&id)
    }

    /// Keeps the collector away from `ids` until the guard drops.
    pub fn pin(self: &Arc<Self>, ids: impl IntoIterator<Item = u128>) -> PinGuard {
        let ids: Vec<u128> = ids.into_iter().collect();
        let mut pins = self.pins.lock().expect("pin lock");
        for id in &ids {
            *pins.entry(*id).or_default() += 1;
        }
        PinGuard {
            dir: Arc::clone(self),
            ids,
        }
    }

    fn fsync_tmp_dir(&self) -> io::Result<()> {
        File::open(&self.tmp)?.sync_all()
    }
}

pub struct PinGuard {
    dir: Arc<BlobDir>,
    ids: Vec<u128>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut pins = self.dir.pins.lock().expect("pin lock");
        for id in &self.ids {
            if let Some(n) = pins.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(id);
                }
            }
        }
    }
}

enum Msg {
    Data(Bytes),
    Finish,
}

/// What a finished write knows about its bytes.
#[derive(Debug, Clone)]
pub struct Written {
    pub len: u64,
    pub md5: [u8; 16],
    pub checksum: Checksum,
}

/// Streams bytes into a new blob in `tmp/`. Writing and hashing run on two
/// blocking threads side by side, so a PUT goes as fast as the slower of the
/// two rather than their sum.
pub struct BlobWriter {
    id: u128,
    to_file: Option<mpsc::Sender<Msg>>,
    to_hasher: Option<mpsc::Sender<Msg>>,
    written: tokio::task::JoinHandle<io::Result<u64>>,
    hashed: tokio::task::JoinHandle<Option<([u8; 16], Checksum)>>,
}

impl BlobWriter {
    /// A writer that computes the MD5 and the `algorithm` checksum.
    pub fn create(dir: &Arc<BlobDir>, algorithm: Algorithm) -> BlobWriter {
        let id = new_id();
        let (to_file, mut file_rx) = mpsc::channel::<Msg>(8);
        let (to_hasher, mut hash_rx) = mpsc::channel::<Msg>(8);
        let dir2 = Arc::clone(dir);
        let written = tokio::task::spawn_blocking(move || {
            let path = dir2.tmp_path(id);
            let result = (|| {
                let mut file = File::create_new(&path)?;
                let mut len = 0u64;
                loop {
                    match file_rx.blocking_recv() {
                        Some(Msg::Data(data)) => {
                            file.write_all(&data)?;
                            len += data.len() as u64;
                        }
                        Some(Msg::Finish) => break,
                        None => {
                            return Err(io::Error::new(
                                io::ErrorKind::Interrupted,
                                "upload abandoned",
                            ));
                        }
                    }
                }
                file.sync_all()?;
                dir2.fsync_tmp_dir()?;
                Ok(len)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&path);
            }
            result
        });
        let hashed = tokio::task::spawn_blocking(move || {
            let mut md5 = Md5::new();
            let mut checksum = Hasher::new(algorithm);
            loop {
                match hash_rx.blocking_recv()? {
                    Msg::Data(data) => {
                        md5.update(&data);
                        checksum.update(&data);
                    }
                    Msg::Finish => return Some((md5.finalize().into(), checksum.finish())),
                }
            }
        });
        BlobWriter {
            id,
            to_file: Some(to_file),
            to_hasher: Some(to_hasher),
            written,
            hashed,
        }
    }

    pub async fn write(&mut self, data: Bytes) -> S3Result<()> {
        let (Some(to_file), Some(to_hasher)) = (&self.to_file, &self.to_hasher) else {
            return Err(S3Error::internal("blob writer already stopped"));
        };
        let sent = to_hasher.send(Msg::Data(data.clone())).await.is_ok()
            && to_file.send(Msg::Data(data)).await.is_ok();
        if !sent {
            // A thread stopped early: report the file writer's error.
            self.to_file = None;
            self.to_hasher = None;
            return Err(match (&mut self.written).await {
                Ok(Err(e)) => S3Error::internal(format!("writing blob: {e}")),
                _ => S3Error::internal("blob writer stopped"),
            });
        }
        Ok(())
    }

    /// Flushes and fsyncs; the blob is then durable in `tmp/` and waits for
    /// its metadata commit.
    pub async fn finish(mut self, dir: &Arc<BlobDir>) -> S3Result<PendingBlob> {
        let (Some(to_file), Some(to_hasher)) = (self.to_file.take(), self.to_hasher.take()) else {
            return Err(S3Error::internal("blob writer already stopped"));
        };
        let _ = to_hasher.send(Msg::Finish).await;
        let _ = to_file.send(Msg::Finish).await;
        drop((to_file, to_hasher));
        let len = (&mut self.written)
            .await
            .map_err(S3Error::internal)?
            .map_err(|e| S3Error::internal(format!("writing blob: {e}")))?;
        let (md5, checksum) = (&mut self.hashed)
            .await
            .map_err(S3Error::internal)?
            .ok_or_else(|| S3Error::internal("hasher stopped"))?;
        Ok(PendingBlob {
            id: self.id,
            written: Written { len, md5, checksum },
            dir: Some(Arc::clone(dir)),
        })
    }
}

/// A durable blob in `tmp/` that no metadata refers to yet. Dropping it
/// without [`PendingBlob::committed`] deletes the file.
pub struct PendingBlob {
    pub id: u128,
    pub written: Written,
    dir: Option<Arc<BlobDir>>,
}

impl PendingBlob {
    /// Called once the metadata referring to the blob has committed.
    pub fn committed(mut self) {
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.publish(self.id)
        {
            // The blob is live and stays readable in tmp/; start-up
            // recovery retries the move.
            tracing::warn!(blob = %id_hex(self.id), error = %e, "moving committed blob");
        }
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_file(dir.tmp_path(self.id));
        }
    }
}

/// Streams the bytes `[start, end)` of an object made of `segments` into a
/// channel, reading on a blocking thread. The pin keeps the collector away
/// until the last byte is sent or the client goes away.
pub fn spawn_reader(
    dir: Arc<BlobDir>,
    segments: Vec<Segment>,
    start: u64,
    end: u64,
    pin: PinGuard,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _pin = pin;
        let mut seg_start = 0u64;
        for seg in &segments {
            let seg_end = seg_start + seg.len;
            if seg_end <= start || seg.len == 0 {
                seg_start = seg_end;
                continue;
            }
            if seg_start >= end {
                break;
            }
            let from = start.saturating_sub(seg_start);
            let to = end.min(seg_end) - seg_start;
            if let Err(e) = send_range(&dir, seg.blob, from, to, &tx) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            seg_start = seg_end;
        }
    });
    rx
}

fn send_range(
    dir: &BlobDir,
    blob: u128,
    from: u64,
    to: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut file = dir.open_blob(blob)?;
    file.seek(SeekFrom::Start(from))?;
    let mut left = to - from;
    while left > 0 {
        let n = left.min(READ_CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(n);
        file.read_exact(&mut buf)?;
        left -= n as u64;
        if tx.blocking_send(Ok(buf.freeze())).is_err() {
            // The client went away.
            return Ok(());
        }
    }
    Ok(())
}
