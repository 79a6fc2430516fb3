//! Blob files: immutable byte files named by a random 128-bit id.
//!
//! A write streams into `tmp/<id>`, hashing as it goes, then fsyncs the file
//! and the `tmp/` directory. The metadata commit makes the blob live; only
//! after it is the file renamed to `blobs/<ab>/<id>`. A crash between commit
//! and rename leaves a referenced file in `tmp/`, which start-up recovery
//! moves into place; so readers look in `blobs/` first and `tmp/` second.
//! Nothing in `tmp/` that metadata does not reference survives a restart,
//! and start-up never scans `blobs/`.
//!
//! File I/O and hashing run in short `spawn_blocking` calls, one batch of
//! bytes at a time: no thread ever waits on a slow client, so slow or stalled
//! connections cannot use up the blocking pool that metadata work needs.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::sync::mpsc;
use tokio::task::spawn_blocking;

use crate::checksum::{Algorithm, Checksum, Hasher};
use crate::error::{S3Error, S3Result};
use crate::store::tables::Segment;

/// Bytes read from a blob per blocking call.
const READ_CHUNK: usize = 512 * 1024;
/// Bytes gathered from the socket before one blocking write-and-hash.
const WRITE_BATCH: usize = 1 << 20;
/// Pieces smaller than this are copied together rather than kept apart.
const SMALL_PIECE: usize = 64 * 1024;
/// How long a GET may wait for its client to take the next chunk.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The blob directories of one data directory, and the pins of blobs that
/// readers hold open.
#[derive(Debug)]
pub struct BlobDir {
    blobs: PathBuf,
    tmp: PathBuf,
    pins: Mutex<HashMap<u128, usize>>,
    gate: RwLock<()>,
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
        let dir = BlobDir::at(data_dir);
        fs::create_dir_all(&dir.blobs)?;
        fs::create_dir_all(&dir.tmp)?;
        Ok(dir)
    }

    /// The blob directories of `data_dir`, creating nothing (for readers
    /// such as `stowage verify`).
    pub fn at(data_dir: &Path) -> BlobDir {
        BlobDir {
            blobs: data_dir.join("blobs"),
            tmp: data_dir.join("tmp"),
            pins: Mutex::new(HashMap::new()),
            gate: RwLock::new(()),
        }
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
    /// `tmp/` goes first: a rename is atomic, so if the file is not in
    /// `tmp/` it is already under `blobs/`, where it is looked for next.
    pub fn remove(&self, id: u128) -> io::Result<()> {
        for path in [self.tmp_path(id), self.final_path(id)] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes the unlinking of `ids` durable: without it a crash could bring
    /// a file back under `blobs/` after its garbage row is gone, and nothing
    /// would ever reclaim it.
    pub fn sync_removals(&self, ids: &[u128]) -> io::Result<()> {
        let mut dirs: Vec<PathBuf> = ids
            .iter()
            .filter_map(|id| self.final_path(*id).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs.push(self.tmp.clone());
        for dir in dirs {
            match File::open(&dir) {
                Ok(d) => d.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
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

    /// Held (shared) by a reader from before it reads an object's record
    /// until it has pinned the record's blobs.
    pub fn read_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops from `ids` every blob that a reader holds or may be about to
    /// pin. The ids are blobs freed by transactions that committed before
    /// the caller read them: a reader that could still see such a blob began
    /// its read before that commit, so once the exclusive gate is ours it
    /// has pinned what it read.
    pub fn unpinned(&self, ids: &mut Vec<u128>) {
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let pins = self.pins.lock().expect("pin lock");
        ids.retain(|id| !pins.contains_key(id));
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

    /// Removes an uncommitted file from `tmp/`, off the async workers when
    /// called from one (a multi-GiB unlink takes a while).
    fn discard(self: &Arc<Self>, id: u128) {
        let dir = Arc::clone(self);
        let unlink = move || {
            let _ = fs::remove_file(dir.tmp_path(id));
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(unlink)),
            Err(_) => unlink(),
        }
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

/// What a finished write knows about its bytes.
#[derive(Debug, Clone)]
pub struct Written {
    pub len: u64,
    pub md5: [u8; 16],
    /// In the algorithm the writer was created with.
    pub checksum: Checksum,
    /// Always computed (it costs a few percent of the MD5), so that any
    /// multipart object can get a full-object CRC64NVME, as S3 gives it.
    pub crc64nvme: Checksum,
}

struct Hashes {
    md5: Md5,
    checksum: Hasher,
    /// Unless `checksum` already is one.
    crc64nvme: Option<Hasher>,
}

/// Streams bytes into a new blob in `tmp/`. Each batch is written and hashed
/// by two blocking calls side by side while the next batch is received, so
/// a PUT goes as fast as the slowest of socket, disk and hash rather than
/// their sum. Dropping the writer (a failed or cancelled request) deletes
/// the file.
pub struct BlobWriter {
    id: u128,
    dir: Arc<BlobDir>,
    /// The file and hashes when no batch is in flight.
    idle: Option<(File, Hashes)>,
    in_flight: Option<InFlight>,
    len: u64,
    batch: Vec<Bytes>,
    /// Small pieces not yet sealed into `batch`.
    small: BytesMut,
    batch_len: usize,
    armed: bool,
}

type InFlight = (
    tokio::task::JoinHandle<io::Result<File>>,
    tokio::task::JoinHandle<Hashes>,
);

impl BlobWriter {
    /// Creates `tmp/<id>` for a blob whose MD5 and `algorithm` checksum
    /// are computed as it is written.
    pub async fn create(dir: &Arc<BlobDir>, algorithm: Algorithm) -> S3Result<BlobWriter> {
        let id = new_id();
        let path = dir.tmp_path(id);
        let file = spawn_blocking(move || File::create_new(path))
            .await
            .map_err(S3Error::internal)?
            .map_err(|e| S3Error::internal(format!("creating blob: {e}")))?;
        let hashes = Hashes {
            md5: Md5::new(),
            checksum: Hasher::new(algorithm),
            crc64nvme: (algorithm != Algorithm::Crc64Nvme)
                .then(|| Hasher::new(Algorithm::Crc64Nvme)),
        };
        Ok(BlobWriter {
            id,
            dir: Arc::clone(dir),
            idle: Some((file, hashes)),
            in_flight: None,
            len: 0,
            batch: Vec::new(),
            small: BytesMut::new(),
            batch_len: 0,
            armed: true,
        })
    }

    pub async fn write(&mut self, data: Bytes) -> S3Result<()> {
        self.batch_len += data.len();
        if data.len() < SMALL_PIECE {
            // Tiny pieces (a body of 1-byte aws-chunked chunks, say) are
            // gathered into one buffer, so a batch holds a few large
            // pieces and costs a few system calls.
            self.small.extend_from_slice(&data);
        } else {
            self.seal_small();
            self.batch.push(data);
        }
        if self.batch_len >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    fn seal_small(&mut self) {
        if !self.small.is_empty() {
            self.batch.push(self.small.split().freeze());
        }
    }

    /// Waits for the batch in flight, if any, and takes back the file and
    /// hashes.
    async fn settle(&mut self) -> S3Result<(File, Hashes)> {
        match self.in_flight.take() {
            Some((write, hash)) => {
                let (written, hashed) = tokio::join!(write, hash);
                let file = written
                    .map_err(S3Error::internal)?
                    .map_err(|e| S3Error::internal(format!("writing blob: {e}")))?;
                Ok((file, hashed.map_err(S3Error::internal)?))
            }
            None => self
                .idle
                .take()
                .ok_or_else(|| S3Error::internal("blob writer failed earlier")),
        }
    }

    async fn flush(&mut self) -> S3Result<()> {
        self.seal_small();
        if self.batch.is_empty() {
            return Ok(());
        }
        let (mut file, mut hashes) = self.settle().await?;
        let batch = std::mem::take(&mut self.batch);
        let to_hash = batch.clone();
        self.len += self.batch_len as u64;
        self.batch_len = 0;
        let write = spawn_blocking(move || -> io::Result<File> {
            for data in &batch {
                file.write_all(data)?;
            }
            Ok(file)
        });
        let hash = spawn_blocking(move || {
            for data in &to_hash {
                hashes.md5.update(data);
                hashes.checksum.update(data);
                if let Some(crc) = &mut hashes.crc64nvme {
                    crc.update(data);
                }
            }
            hashes
        });
        self.in_flight = Some((write, hash));
        Ok(())
    }

    /// Flushes and fsyncs; the blob is then durable in `tmp/` and waits for
    /// its metadata commit.
    pub async fn finish(mut self) -> S3Result<PendingBlob> {
        self.flush().await?;
        let (file, hashes) = self.settle().await?;
        let dir = Arc::clone(&self.dir);
        spawn_blocking(move || {
            file.sync_all()?;
            dir.fsync_tmp_dir()
        })
        .await
        .map_err(S3Error::internal)?
        .map_err(|e| S3Error::internal(format!("syncing blob: {e}")))?;
        self.armed = false;
        let checksum = hashes.checksum.finish();
        let crc64nvme = match hashes.crc64nvme {
            Some(crc) => crc.finish(),
            None => checksum.clone(),
        };
        Ok(PendingBlob {
            id: self.id,
            written: Written {
                len: self.len,
                md5: hashes.md5.finalize().into(),
                checksum,
                crc64nvme,
            },
            dir: Some(Arc::clone(&self.dir)),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.armed {
            self.dir.discard(self.id);
        }
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

    /// Called when a commit failed in a way that leaves its outcome unknown
    /// (it may be durable): the file stays for start-up recovery, which
    /// keeps it exactly if the metadata refers to it.
    pub fn outcome_unknown(mut self) {
        self.dir = None;
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            dir.discard(self.id);
        }
    }
}

/// Streams the bytes `[start, end)` of an object made of `segments` into a
/// channel, reading one chunk per blocking call. The pin keeps the collector
/// away until the last byte is sent or the client goes away.
pub fn spawn_reader(
    dir: Arc<BlobDir>,
    segments: Vec<Segment>,
    start: u64,
    end: u64,
    pin: PinGuard,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let _pin = pin;
        let mut seg_start = 0u64;
        for seg in &segments {
            let seg_end = seg_start + seg.len;
            if seg_end > start && seg_start < end && seg.len > 0 {
                let from = start.saturating_sub(seg_start);
                let to = end.min(seg_end) - seg_start;
                if let Err(e) = send_range(&dir, seg.blob, from, to, &tx).await {
                    // The body then ends in an error, which cuts the
                    // connection: a client never sees a short object as
                    // complete. (If the channel is full the client is not
                    // reading; dropping the sender has the same effect.)
                    let _ = tx.try_send(Err(e));
                    return;
                }
                if tx.is_closed() {
                    return;
                }
            }
            seg_start = seg_end;
        }
    });
    rx
}

async fn send_range(
    dir: &Arc<BlobDir>,
    blob: u128,
    from: u64,
    to: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let d = Arc::clone(dir);
    let mut file = spawn_blocking(move || -> io::Result<File> {
        let mut file = d.open_blob(blob)?;
        file.seek(SeekFrom::Start(from))?;
        Ok(file)
    })
    .await
    .map_err(io::Error::other)??;
    let mut left = to - from;
    while left > 0 {
        let n = left.min(READ_CHUNK as u64) as usize;
        let (f, buf) = spawn_blocking(move || -> io::Result<(File, BytesMut)> {
            let mut buf = BytesMut::zeroed(n);
            file.read_exact(&mut buf)?;
            Ok((file, buf))
        })
        .await
        .map_err(io::Error::other)??;
        file = f;
        left -= n as u64;
        match tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(buf.freeze()))).await {
            Ok(Ok(())) => {}
            // The client went away, or stopped reading: give up the pins
            // and buffers rather than hold them for a dead connection.
            Ok(Err(_)) => return Ok(()),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client stopped reading",
                ));
            }
        }
    }
    Ok(())
}
