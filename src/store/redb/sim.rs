//! A storage backend for tests, under redb: the database file lives in
//! memory as two images, what was written and what was synced. It can fail
//! writes and syncs on demand (EIO), and a power cut keeps only the synced
//! image, so tests can lose exactly what a real power loss loses.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::StorageBackend;

#[derive(Debug, Default)]
struct Image {
    written: Vec<u8>,
    synced: Vec<u8>,
}

/// One simulated disk: shared by every backend opened on it, so a
/// reopened database sees what the last one left.
#[derive(Default)]
pub struct SimDisk {
    image: Mutex<Image>,
    /// How many of the next writes (and length changes), and of the next
    /// syncs, fail with EIO (`u64::MAX`: all).
    pub fail_writes: AtomicU64,
    pub fail_syncs: AtomicU64,
    /// Syncs so far.
    pub syncs: AtomicU64,
    /// Called before each sync takes effect, with its number: a test's
    /// crash point.
    #[allow(clippy::type_complexity)]
    pub before_sync: Mutex<Option<Box<dyn FnMut(u64) + Send>>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk")
            .field("syncs", &self.syncs)
            .finish_non_exhaustive()
    }
}

impl SimDisk {
    pub fn new() -> Arc<SimDisk> {
        Arc::new(SimDisk::default())
    }

    /// A disk holding only what this one has synced: the state after a
    /// power cut now.
    pub fn after_power_cut(&self) -> Arc<SimDisk> {
        let synced = self.image.lock().unwrap().synced.clone();
        Arc::new(SimDisk {
            image: Mutex::new(Image {
                written: synced.clone(),
                synced,
            }),
            ..SimDisk::default()
        })
    }

    /// The first bytes of the file, as [`super::never_created`] reads them.
    pub fn head(&self) -> Vec<u8> {
        let image = self.image.lock().unwrap();
        image.written[..image.written.len().min(16)].to_vec()
    }

    /// Empties the file, as [`super::RedbMeta::open`] does to one whose
    /// creation never completed.
    pub fn wipe(&self) {
        let mut image = self.image.lock().unwrap();
        image.written.clear();
        image.synced.clear();
    }

    pub fn backend(self: &Arc<Self>) -> SimBackend {
        SimBackend(Arc::clone(self))
    }
}

pub fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

/// Takes one from a failure budget: whether this call fails.
pub fn fails(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
            0 => None,
            u64::MAX => Some(u64::MAX),
            n => Some(n - 1),
        })
        .is_ok()
}

#[derive(Debug)]
pub struct SimBackend(Arc<SimDisk>);

impl StorageBackend for SimBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.0.image.lock().unwrap().written.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let image = self.0.image.lock().unwrap();
        let start = offset as usize;
        let end = start + out.len();
        if end > image.written.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&image.written[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if fails(&self.0.fail_writes) {
            return Err(eio());
        }
        self.0.image.lock().unwrap().written.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let n = self.0.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(hook) = self.0.before_sync.lock().unwrap().as_mut() {
            hook(n);
        }
        if fails(&self.0.fail_syncs) {
            return Err(eio());
        }
        let mut image = self.0.image.lock().unwrap();
        image.synced = image.written.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if fails(&self.0.fail_writes) {
            return Err(eio());
        }
        let mut image = self.0.image.lock().unwrap();
        let start = offset as usize;
        let end = start + data.len();
        if end > image.written.len() {
            image.written.resize(end, 0);
        }
        image.written[start..end].copy_from_slice(data);
        Ok(())
    }
}
