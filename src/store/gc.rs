//! Reclaiming freed blobs. A blob enters `GARBAGE` in the transaction that
//! drops its last reference; the collector unlinks it once it is older than
//! the grace period and no reader holds it, then removes the row. A crash
//! between unlink and row removal only means a second (harmless) unlink.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::Store;
use super::tables::GARBAGE;
use crate::error::S3Result;
use crate::time::now_ms;

/// Rows handled per collector pass, so one pass never holds the write lock
/// for long; a tick runs passes until one finds less than a full batch.
pub const BATCH: usize = 1000;

impl Store {
    /// Unlinks up to one batch of collectable blobs; returns how many.
    pub fn collect_garbage(&self, grace_ms: i64) -> S3Result<usize> {
        let cutoff = now_ms() - grace_ms;
        let due: Vec<u128> = {
            let txn = self.db.begin_read()?;
            let garbage = txn.open_table(GARBAGE)?;
            let mut due = Vec::new();
            for row in garbage.iter()? {
                let (id, freed) = row?;
                let id = id.value();
                if freed.value() <= cutoff {
                    due.push(id);
                    if due.len() == BATCH {
                        break;
                    }
                }
            }
            due
        };
        let mut due = due;
        self.blobs.unpinned(&mut due);
        if due.is_empty() {
            return Ok(0);
        }
        let mut done = Vec::with_capacity(due.len());
        for id in due {
            match self.blobs.remove(id) {
                Ok(()) => done.push(id),
                Err(e) => {
                    tracing::warn!(blob = %super::blobs::id_hex(id), error = %e, "unlinking freed blob")
                }
            }
        }
        self.blobs.sync_removals(&done)?;
        let txn = self.write_txn()?;
        {
            let mut garbage = txn.open_table(GARBAGE)?;
            for id in &done {
                garbage.remove(*id)?;
            }
        }
        txn.commit()?;
        Ok(done.len())
    }

    /// Number of freed blobs not yet unlinked.
    pub fn garbage_len(&self) -> S3Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(GARBAGE)?.len()?)
    }
}
