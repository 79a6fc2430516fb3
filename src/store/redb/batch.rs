//! Group commit: every metadata change goes to one writer thread, which
//! applies as many waiting changes as it has (up to [`MAX_BATCH`]) in one
//! redb write transaction and commits them with one fsync. A caller's future
//! resolves only after the commit that holds its change, so an `Ok` still
//! means durable.
//!
//! A change that fails fails alone. Changes are written check-then-write: a
//! change that refuses (a lost condition, a missing upload) returns its S3
//! error before its first write, so its batch-mates commit without it. A
//! change that fails with an internal error (storage, a corrupt record) may
//! have written part of itself: the transaction is dropped, that change gets
//! its error, and the rest of the batch runs again in a fresh transaction.
//!
//! The writer is a plain thread, not a task: a commit backlog never holds
//! a thread of the pool that streams GET bodies. When a batch meets an I/O
//! error, its callers get it and the writer has the database reopened
//! ([`super::cell`]) before the next batch.

use std::sync::Arc;

use redb::{Database, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::cell::DbCell;
use crate::error::{Code, S3Error, S3Result};

/// Changes per transaction at most: bounds how long one commit keeps its
/// first caller waiting.
pub const MAX_BATCH: usize = 256;

/// One queued change and where its result goes.
trait Job: Send {
    /// Applies the change. `false` when it failed in a way that may have
    /// left part of it written: the batch must be rebuilt without it.
    fn apply(&mut self, txn: &WriteTransaction) -> bool;
    /// Sends the result, given how the commit went.
    fn reply(self: Box<Self>, commit: &S3Result<()>);
}

struct Change<F, R> {
    f: F,
    result: Option<S3Result<R>>,
    tx: oneshot::Sender<S3Result<R>>,
}

impl<F, R> Job for Change<F, R>
where
    F: FnMut(&WriteTransaction) -> S3Result<R> + Send,
    R: Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> bool {
        let result = (self.f)(txn);
        let clean = !matches!(&result, Err(e) if e.code == Code::InternalError);
        self.result = Some(result);
        clean
    }

    fn reply(self: Box<Self>, commit: &S3Result<()>) {
        let result = match (self.result, commit) {
            // A refusal made no writes: it stands whatever the commit did.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(e)) => Err(e.clone()),
            (None, Err(e)) => Err(e.clone()),
            (None, Ok(())) => Err(S3Error::internal("the change panicked")),
        };
        let _ = self.tx.send(result);
    }
}

/// The queue in front of the writer thread.
#[derive(Debug)]
pub struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread; it stops when the `Writer` is dropped.
    pub fn start(cell: Arc<DbCell>) -> std::io::Result<Writer> {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let thread = std::thread::Builder::new()
            .name("stowage-meta-writer".into())
            .spawn(move || run(&cell, rx))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Applies `f` in the next batch and waits for its commit. `f` may run
    /// more than once (when a batch-mate fails and the batch is rebuilt), so
    /// it must not consume what it captures.
    pub async fn write<R, F>(&self, f: F) -> S3Result<R>
    where
        F: FnMut(&WriteTransaction) -> S3Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(Change {
            f,
            result: None,
            tx,
        });
        let queue = self.queue.as_ref().expect("queue lives until drop");
        queue
            .send(job)
            .await
            .map_err(|_| S3Error::internal("metadata writer stopped"))?;
        rx.await
            .map_err(|_| S3Error::internal("metadata writer stopped"))?
    }
}

/// Drains the queue, then lets the thread drop its handle on the database,
/// so that the database closes cleanly before the process exits.
impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(cell: &DbCell, mut rx: mpsc::Receiver<Box<dyn Job>>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let db = match cell.get() {
            Ok(db) => db,
            Err(e) => {
                jobs.into_iter().for_each(|j| j.reply(&Err(e.clone())));
                continue;
            }
        };
        let io_failed = commit_batch(&db, jobs);
        drop(db);
        if io_failed {
            tracing::error!("metadata store: I/O error; reopening the database");
            cell.reopen();
        }
    }
}

/// Applies and commits `jobs`; `true` when storage failed under them (the
/// database must be reopened).
fn commit_batch(db: &Database, mut jobs: Vec<Box<dyn Job>>) -> bool {
    while !jobs.is_empty() {
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                let io = super::cell::begin_failed(&e);
                let e = Err(super::db_error(e));
                jobs.into_iter().for_each(|j| j.reply(&e));
                return io;
            }
        };
        // A change that panics is a change that failed, not a writer that
        // stops: it is dropped like one that failed with an internal error.
        let failed = jobs.iter_mut().position(|job| {
            let applied =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.apply(&txn)));
            !applied.unwrap_or(false)
        });
        if let Some(i) = failed {
            drop(txn);
            jobs.remove(i).reply(&Ok(()));
            continue;
        }
        let started = std::time::Instant::now();
        let commit = txn.commit();
        crate::telemetry::COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
        crate::telemetry::COMMIT_CHANGES.observe(jobs.len() as f64);
        let io = matches!(&commit, Err(e) if super::cell::commit_failed(e));
        let commit = commit.map_err(super::db_error);
        jobs.into_iter().for_each(|j| j.reply(&commit));
        return io;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    fn job<R: Send + 'static>(
        f: impl FnMut(&WriteTransaction) -> S3Result<R> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<S3Result<R>>) {
        let (tx, rx) = oneshot::channel();
        let job = Change {
            f,
            result: None,
            tx,
        };
        (Box::new(job), rx)
    }

    fn insert(name: &'static str) -> impl FnMut(&WriteTransaction) -> S3Result<()> + Send {
        move |txn| {
            txn.open_table(T)?.insert(name, 1)?;
            Ok(())
        }
    }

    fn stored(db: &Database) -> Vec<String> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        let rows = table.iter().unwrap();
        rows.map(|r| r.unwrap().0.value().to_owned()).collect()
    }

    #[test]
    fn a_failing_change_leaves_its_batch_mates_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let (a, ra) = job(insert("a"));
        // A refusal: checks fail before any write.
        let (b, rb) =
            job(|_txn: &WriteTransaction| -> S3Result<()> { Err(Code::PreconditionFailed.into()) });
        // An internal failure after a write: the batch is rebuilt without it.
        let (c, rc) = job(|txn: &WriteTransaction| -> S3Result<()> {
            txn.open_table(T)?.insert("c", 1)?;
            Err(S3Error::internal("disk on fire"))
        });
        let (d, rd) = job(insert("d"));
        let (p, rp) = job(|txn: &WriteTransaction| -> S3Result<()> {
            txn.open_table(T)?.insert("p", 1)?;
            panic!("a bug in one change");
        });
        commit_batch(&db, vec![a, b, c, p, d]);
        let e = rp.blocking_recv().unwrap().unwrap_err();
        assert_eq!(e.code, Code::InternalError);
        assert!(ra.blocking_recv().unwrap().is_ok());
        let e = rb.blocking_recv().unwrap().unwrap_err();
        assert_eq!(e.code, Code::PreconditionFailed);
        let e = rc.blocking_recv().unwrap().unwrap_err();
        assert_eq!(e.code, Code::InternalError);
        assert!(rd.blocking_recv().unwrap().is_ok());
        assert_eq!(stored(&db), ["a", "d"], "c's and p's writes went with them");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_changes_share_commits_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Database::create(&path).unwrap();
        let cell = Arc::new(DbCell::new(
            db,
            Box::new(move || Database::create(&path).map_err(|e| e.to_string())),
            Box::new(|m| panic!("{m}")),
        ));
        let writer = Arc::new(Writer::start(Arc::clone(&cell)).unwrap());
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let writer = Arc::clone(&writer);
            tasks.push(tokio::spawn(async move {
                writer
                    .write(move |txn| {
                        if i % 3 == 0 {
                            return Err(Code::NoSuchUpload.into());
                        }
                        txn.open_table(T)?.insert(format!("k{i:03}").as_str(), i)?;
                        Ok(i)
                    })
                    .await
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(v) => assert_eq!(v, i as u64),
                Err(e) => {
                    assert_eq!(i % 3, 0);
                    assert_eq!(e.code, Code::NoSuchUpload);
                }
            }
        }
        drop(writer);
        let keys = stored(&cell.get().unwrap());
        assert_eq!(keys.len(), 200 - 67);
        assert!(keys.iter().all(|k| k[1..].parse::<u64>().unwrap() % 3 != 0));
    }
}
