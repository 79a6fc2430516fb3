//! The open database, and its reopening after an I/O error. redb latches
//! an I/O failure: once a write or sync has failed, every later transaction
//! fails with "Previous I/O error" until the database is closed and opened
//! again. The writer thread asks for that reopening as soon as it sees
//! such an error; readers wait while it happens. If the database cannot be
//! opened again, the process exits with a message for its supervisor
//! rather than answer 500 forever.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{CommitError, Database, StorageError, TransactionError};

use crate::error::{S3Error, S3Result};

/// Opens the database (again): the file, or in tests a fault-injecting
/// backend.
pub type Opener = Box<dyn Fn() -> Result<Database, String> + Send + Sync>;

/// Called when the database cannot be reopened: by default, logs and exits.
pub type OnFatal = Box<dyn Fn(&str) + Send + Sync>;

/// Exit status for a metadata engine that cannot be reopened (EX_IOERR).
pub const EXIT_IO: i32 = 74;

/// How long a reopening waits for readers to let go of the old handle.
const DRAIN: Duration = Duration::from_secs(10);

pub struct DbCell {
    current: RwLock<Option<Arc<Database>>>,
    open: Opener,
    on_fatal: OnFatal,
    /// Serialises reopenings.
    reopening: Mutex<()>,
}

impl std::fmt::Debug for DbCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCell").finish_non_exhaustive()
    }
}

pub fn exit_on_fatal() -> OnFatal {
    Box::new(|message| {
        tracing::error!("{message}; exiting so that a supervisor can restart the server");
        eprintln!("stowage: {message}; exiting");
        std::process::exit(EXIT_IO);
    })
}

impl DbCell {
    pub fn new(db: Database, open: Opener, on_fatal: OnFatal) -> DbCell {
        DbCell {
            current: RwLock::new(Some(Arc::new(db))),
            open,
            on_fatal,
            reopening: Mutex::new(()),
        }
    }

    /// The open database.
    pub fn get(&self) -> S3Result<Arc<Database>> {
        self.current
            .read()
            .expect("database lock")
            .clone()
            .ok_or_else(|| S3Error::internal("metadata store: closed after an I/O error"))
    }

    /// Closes the database and opens it again. Readers block meanwhile;
    /// the old handle is dropped once the readers holding it are done (it
    /// must be: the file stays locked while any handle is open).
    pub fn reopen(&self) {
        let _one = self.reopening.lock().expect("reopen lock");
        let mut slot = self.current.write().expect("database lock");
        if let Some(old) = slot.take() {
            let started = Instant::now();
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if started.elapsed() < DRAIN => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => {
                        (self.on_fatal)(
                            "metadata store: readers held the database through an I/O error; cannot reopen it",
                        );
                        return;
                    }
                }
            }
        }
        match (self.open)() {
            Ok(db) => {
                tracing::warn!("metadata store reopened after an I/O error");
                *slot = Some(Arc::new(db));
            }
            Err(e) => (self.on_fatal)(&format!(
                "metadata store: cannot reopen after an I/O error: {e}"
            )),
        }
    }
}

/// Whether a failure means redb has latched an I/O error.
pub fn storage_failed(e: &StorageError) -> bool {
    matches!(e, StorageError::Io(_) | StorageError::PreviousIo)
}

pub fn begin_failed(e: &TransactionError) -> bool {
    matches!(e, TransactionError::Storage(s) if storage_failed(s))
}

pub fn commit_failed(e: &CommitError) -> bool {
    matches!(e, CommitError::Storage(s) if storage_failed(s))
}
