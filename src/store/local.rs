//! Blob files in a local (or shared) directory: the default [`BlobStore`].
//!
//! ```text
//! <data_dir>/blobs/ab/<id>   published blobs, 256 fan-out directories
//! <data_dir>/tmp/<id>        blobs being written or awaiting publish
//! ```
//!
//! The syncs, and what each protects:
//! - **the blob file**, before its metadata commits: without it a crash
//!   after the commit could leave a referenced blob short or empty.
//! - **`tmp/`**, after the file's sync and before the commit: the file's
//!   name must survive a crash as well as its bytes, or a committed record
//!   would name a file that is gone. Concurrent writers share one directory
//!   sync ([`SyncGate`]): a sync that starts after a file is finished covers
//!   it, so eight PUTs finishing together cost one directory sync, not
//!   eight.
//! - **`blobs/` once, at creation of the 256 fan-out directories**: they
//!   exist before any blob moves in, so no rename ever depends on a
//!   directory entry that a crash could lose.
//! - **no sync after the publish rename.** A rename is atomic across a
//!   crash on the filesystems we run on (the file is under exactly one of
//!   its two names), and start-up recovery publishes any live blob found in
//!   `tmp/`, so a rename lost to a crash only means the file is found in
//!   `tmp/` and moved again. Readers look in `blobs/` first and `tmp/`
//!   second.
//! - **both directories after unlinking freed blobs**, before their
//!   garbage rows are forgotten: otherwise a crash could bring back a file
//!   that nothing would reclaim.
//!
//! Nothing is synced for a body that fails its digest check: the writer
//! checks digests before it calls [`BlobSink::finish`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use super::blob::{BlobSink, BlobSource, BlobStore};
use super::model::{BlobId, id_hex};

#[derive(Debug)]
pub struct LocalBlobs {
    blobs: PathBuf,
    tmp: PathBuf,
    tmp_sync: Arc<SyncGate>,
}

impl LocalBlobs {
    /// Opens (creating) the blob directories of `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<LocalBlobs> {
        LocalBlobs::create(LocalBlobs::at(data_dir))
    }

    /// The blob directories of `data_dir` as one node of several sees
    /// them: its temporary files under `tmp/<node>/`.
    pub fn open_node(data_dir: &Path, node: &str) -> io::Result<LocalBlobs> {
        let mut store = LocalBlobs::at(data_dir);
        store.tmp = store.tmp.join(node);
        LocalBlobs::create(store)
    }

    fn create(store: LocalBlobs) -> io::Result<LocalBlobs> {
        if !store.tmp.is_dir() {
            fs::create_dir_all(&store.tmp)?;
            // The directory's own entry must survive a crash with the
            // blobs synced into it.
            if let Some(parent) = store.tmp.parent() {
                Self::sync_dir(parent)?;
            }
        }
        let mut created = false;
        for i in 0..=255u8 {
            let dir = store.blobs.join(format!("{i:02x}"));
            if !dir.is_dir() {
                fs::create_dir_all(&dir)?;
                created = true;
            }
        }
        if created {
            File::open(&store.blobs)?.sync_all()?;
            if let Some(parent) = store.blobs.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(store)
    }

    /// The blob directories of `data_dir`, creating nothing (for readers
    /// such as `stowage verify`).
    pub fn at(data_dir: &Path) -> LocalBlobs {
        LocalBlobs {
            blobs: data_dir.join("blobs"),
            tmp: data_dir.join("tmp"),
            tmp_sync: Arc::default(),
        }
    }

    /// Every published blob file, with its size (for `stowage verify`).
    /// Names that are not blob ids are skipped.
    pub fn published(&self) -> io::Result<Vec<(BlobId, u64)>> {
        let mut found = Vec::new();
        for dir in fs::read_dir(&self.blobs)? {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(dir.path())? {
                let entry = entry?;
                let id = entry
                    .file_name()
                    .to_str()
                    .filter(|n| n.len() == 32)
                    .and_then(|n| u128::from_str_radix(n, 16).ok());
                if let Some(id) = id {
                    found.push((id, entry.metadata()?.len()));
                }
            }
        }
        Ok(found)
    }

    /// Unlinks a published blob file (`stowage verify --repair`).
    pub fn remove_published(&self, id: BlobId) -> io::Result<()> {
        fs::remove_file(self.final_path(id))
    }

    fn tmp_path(&self, id: BlobId) -> PathBuf {
        self.tmp.join(id_hex(id))
    }

    fn final_path(&self, id: BlobId) -> PathBuf {
        let hex = id_hex(id);
        self.blobs.join(&hex[..2]).join(hex)
    }

    fn sync_dir(dir: &Path) -> io::Result<()> {
        match File::open(dir) {
            Ok(d) => d.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl BlobStore for LocalBlobs {
    fn free_bytes(&self) -> io::Result<u64> {
        let st = rustix::fs::statvfs(&self.blobs)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    fn create(&self, id: BlobId) -> io::Result<Box<dyn BlobSink>> {
        let file = File::create_new(self.tmp_path(id))?;
        Ok(Box::new(LocalSink {
            file,
            tmp: self.tmp.clone(),
            gate: Arc::clone(&self.tmp_sync),
        }))
    }

    fn discard(&self, id: BlobId) {
        let _ = fs::remove_file(self.tmp_path(id));
    }

    fn publish(&self, id: BlobId) -> io::Result<()> {
        fs::rename(self.tmp_path(id), self.final_path(id))
    }

    fn open(&self, id: BlobId) -> io::Result<Box<dyn BlobSource>> {
        let file = match File::open(self.final_path(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match File::open(self.tmp_path(id)) {
                // Published between our two attempts.
                Err(e) if e.kind() == io::ErrorKind::NotFound => File::open(self.final_path(id)),
                other => other,
            },
            other => other,
        }?;
        Ok(Box::new(file))
    }

    /// `tmp/` goes first: a rename is atomic, so a file not in `tmp/` is
    /// already under `blobs/`, where it is looked for next.
    fn remove(&self, ids: &[BlobId]) -> io::Result<Vec<BlobId>> {
        let mut done = Vec::with_capacity(ids.len());
        for &id in ids {
            let mut result = Ok(());
            for path in [self.tmp_path(id), self.final_path(id)] {
                match fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => result = Err(e),
                    _ => {}
                }
            }
            match result {
                Ok(()) => done.push(id),
                Err(e) => tracing::warn!(blob = %id_hex(id), error = %e, "unlinking freed blob"),
            }
        }
        let mut dirs: Vec<PathBuf> = done
            .iter()
            .filter_map(|id| self.final_path(*id).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs.push(self.tmp.clone());
        for dir in dirs {
            Self::sync_dir(&dir)?;
        }
        Ok(done)
    }

    /// Other names in `tmp/` (not ours: a stray file, a `lost+found`) are
    /// left alone and logged.
    fn unpublished(&self) -> io::Result<Vec<BlobId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let name = entry.file_name();
            match name
                .to_str()
                .filter(|n| n.len() == 32)
                .and_then(|n| u128::from_str_radix(n, 16).ok())
            {
                Some(id) => ids.push(id),
                None => {
                    tracing::warn!(path = %entry.path().display(), "ignoring a foreign entry in tmp/")
                }
            }
        }
        Ok(ids)
    }
}

struct LocalSink {
    file: File,
    tmp: PathBuf,
    gate: Arc<SyncGate>,
}

impl BlobSink for LocalSink {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.file.sync_all()?;
        self.gate.sync(&self.tmp)
    }
}

/// One directory sync shared by every writer waiting for one: a caller
/// returns once a sync that *started* after it arrived has succeeded.
#[derive(Debug, Default)]
struct SyncGate {
    state: Mutex<GateState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// Number of syncs started.
    started: u64,
    /// The latest sync that succeeded.
    succeeded: u64,
    running: bool,
}

impl SyncGate {
    fn sync(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let needed = s.started + 1;
        loop {
            if s.succeeded >= needed {
                return Ok(());
            }
            if s.running {
                s = self.done.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.running = true;
            s.started += 1;
            let generation = s.started;
            drop(s);
            let result = File::open(dir).and_then(|d| d.sync_all());
            s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.running = false;
            if result.is_ok() {
                s.succeeded = generation;
            }
            self.done.notify_all();
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_blob_is_readable_before_and_after_publish_and_gone_after_remove() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::open(dir.path()).unwrap();
        let mut sink = blobs.create(7).unwrap();
        sink.write_all(b"hello").unwrap();
        sink.finish().unwrap();
        let read = |id| {
            let mut s = String::new();
            blobs.open(id).unwrap().read_to_string(&mut s).unwrap();
            s
        };
        assert_eq!(read(7), "hello");
        assert_eq!(blobs.unpublished().unwrap(), vec![7]);
        blobs.publish(7).unwrap();
        assert_eq!(read(7), "hello");
        assert!(blobs.unpublished().unwrap().is_empty());
        assert_eq!(blobs.remove(&[7, 8]).unwrap(), vec![7, 8]);
        assert!(blobs.open(7).is_err());
    }

    #[test]
    fn foreign_entries_in_tmp_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::open(dir.path()).unwrap();
        fs::create_dir(dir.path().join("tmp/lost+found")).unwrap();
        fs::write(dir.path().join("tmp/notes.txt"), b"x").unwrap();
        assert!(blobs.unpublished().unwrap().is_empty());
        assert!(dir.path().join("tmp/lost+found").is_dir());
    }

    #[test]
    fn concurrent_directory_syncs_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let gate = SyncGate::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let gate = &gate;
                let path = dir.path();
                s.spawn(move || gate.sync(path).unwrap());
            }
        });
        let state = gate.state.lock().unwrap();
        assert!(state.started >= 1 && state.started <= 8);
        assert_eq!(state.succeeded, state.started);
    }
}
