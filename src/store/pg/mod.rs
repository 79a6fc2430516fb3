//! The PostgreSQL metadata engine, for several Stowage nodes on one
//! database (`metadata_url = "postgres://..."`).
//!
//! Client: tokio-postgres with a deadpool pool. It is the plain async
//! driver for the protocol (no query macros, no compile-time database),
//! small to build, and the pool recycles connections that a database
//! restart broke.
//!
//! Every change is one SERIALIZABLE transaction, retried with backoff when
//! the database reports a serialisation failure or a deadlock (SQLSTATE
//! 40001, 40P01), which is how PostgreSQL, CockroachDB and YugabyteDB all
//! report a lost race. A transaction that keeps losing, or a database that
//! cannot be reached, gets 503 `SlowDown`, which SDKs retry.
//!
//! Hot rows: a part or a PutObject makes a new blob row, so concurrent
//! writers never meet there; two writers of one part number meet on that
//! part's row and one retries; copies of one popular object meet on its
//! blob's (or manifest's) count row, each in a short transaction, and the
//! loser retries: no lost update, and since each change locks one counted
//! row, no lock-order deadlock. There are no counter rows: statistics are
//! aggregate queries.

mod schema;
mod view;

use std::time::Duration;

use deadpool_postgres::{Pool, Runtime, Transaction};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::model::{ObjectHead, new_id};
use super::rules::Meta;
use super::txn::{Change, Done, Engine, Fault, Query, Stop};
use crate::error::{Code, S3Error, S3Result};
use view::View;

/// Attempts at a transaction that loses races before giving up (503).
const MAX_ATTEMPTS: u32 = 12;
/// Connections per node.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection or a new one takes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Session settings unless `metadata_url` sets its own `options`: no
/// statement runs longer than 15 s, no lock is waited for longer than 5 s,
/// and a transaction left idle (its node gone) is ended after 60 s.
const SESSION_OPTIONS: &str =
    "-c statement_timeout=15000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=60000";

/// Why a transaction failed: an S3 answer, or the database.
#[derive(Debug)]
pub enum PgFail {
    S3(S3Error),
    Db(tokio_postgres::Error),
    /// COMMIT was sent and no answer came back: the change may have
    /// landed. Reported as an internal error, whose blob (if any) start-up
    /// recovery keeps exactly if the change committed.
    CommitUnknown(tokio_postgres::Error),
}

impl From<S3Error> for PgFail {
    fn from(e: S3Error) -> Self {
        PgFail::S3(e)
    }
}

impl From<Code> for PgFail {
    fn from(c: Code) -> Self {
        PgFail::S3(c.into())
    }
}

impl From<tokio_postgres::Error> for PgFail {
    fn from(e: tokio_postgres::Error) -> Self {
        PgFail::Db(e)
    }
}

pub type PgResult<T> = Result<T, PgFail>;

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The database cannot be reached (or a transaction keeps losing): 503,
/// which clients retry, with the cause kept for the log.
fn unavailable(cause: impl std::fmt::Display) -> S3Error {
    let mut e = S3Error::new(Code::SlowDown);
    e.cause = Some(format!("metadata store: {cause}"));
    e
}

/// What a database error says, for the log: its SQLSTATE and message when
/// the server sent one, else the client's own error and its cause.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Whether the database is unreachable or refusing work for now (503),
/// rather than failing this request (500): a broken connection, a server
/// shutting down or starting, out of resources, or a replica that became
/// read-only in a failover.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|c| c.is::<std::io::Error>())
        }
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        }
    }
}

fn db_error(e: tokio_postgres::Error) -> S3Error {
    if unreachable(&e) {
        unavailable(describe(&e))
    } else {
        S3Error::internal(format!("metadata store: {}", describe(&e)))
    }
}

impl From<Fault> for PgFail {
    /// A fault that carries the database's own error is that error (which
    /// may be retried); any other is internal.
    fn from(f: Fault) -> Self {
        match f.source.map(|s| s.downcast::<tokio_postgres::Error>()) {
            Some(Ok(e)) => PgFail::Db(*e),
            _ => PgFail::S3(S3Error::internal(f.message)),
        }
    }
}

/// One attempt at a transaction's work, run again when it loses a race.
trait Attempt: Sync {
    type Output: Send;
    fn run(&self, txn: &Transaction<'_>) -> impl Future<Output = PgResult<Self::Output>> + Send;
}

/// A change of the store: its check, then (unless it refused) its writes.
struct ChangeAttempt<'a, C> {
    change: &'a C,
    node: &'a str,
}

impl<C: Change> Attempt for ChangeAttempt<'_, C> {
    type Output = C::Output;

    async fn run(&self, txn: &Transaction<'_>) -> PgResult<C::Output> {
        let mut view = View {
            client: txn,
            node: self.node,
        };
        let plan = match self.change.check(&mut view).await {
            Ok(plan) => plan,
            Err(Stop::Refused(e)) => return Err(PgFail::S3(e)),
            Err(Stop::Fault(f)) => return Err(f.into()),
        };
        Ok(self.change.apply(plan, &mut view).await?)
    }
}

/// One schema migration, run by whichever node gets to it first.
struct Migration {
    version: i32,
    sql: &'static str,
}

impl Attempt for Migration {
    type Output = bool;

    async fn run(&self, txn: &Transaction<'_>) -> PgResult<bool> {
        let current: Option<i32> = txn
            .query_opt(
                "SELECT version FROM stowage_schema WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?
            .map(|r| r.get(0));
        if current.unwrap_or(0) != self.version {
            return Ok(false); // another node moved it on
        }
        txn.batch_execute(self.sql).await?;
        if self.version + 1 == schema::USAGE_VERSION {
            count_usage(txn).await?;
        }
        txn.execute(
            "INSERT INTO stowage_schema (id, version) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            &[&(self.version + 1)],
        )
        .await?;
        Ok(true)
    }
}

/// Fills the new usage table from the heads already stored.
async fn count_usage(txn: &Transaction<'_>) -> PgResult<()> {
    let mut by_bucket = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for row in txn.query("SELECT bucket, record FROM heads", &[]).await? {
        let head: ObjectHead =
            crate::store::codec::decode(row.get::<_, &[u8]>(1)).map_err(PgFail::from)?;
        let totals = by_bucket.entry(row.get(0)).or_default();
        totals.0 += 1;
        totals.1 += head.size as i64;
    }
    for (bucket, (objects, bytes)) in by_bucket {
        txn.execute(
            "INSERT INTO usage (id, bucket, objects, bytes) VALUES ($1, $2, $3, $4)",
            &[&bid(new_id()).as_slice(), &bucket, &objects, &bytes],
        )
        .await?;
    }
    Ok(())
}

/// Exponential backoff with jitter: 2 ms, 4 ms, ... up to about 0.5 s.
pub(crate) async fn backoff(attempt: u32) {
    let base = 1u64 << attempt.min(8);
    let jitter = (new_id() as u64) % (base + 1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

pub(crate) fn bid(id: u128) -> [u8; 16] {
    id.to_be_bytes()
}

pub(crate) fn id_of(bytes: &[u8]) -> Done<u128> {
    let array: [u8; 16] = bytes
        .try_into()
        .map_err(|_| Fault::new("metadata store: an id is not 16 bytes"))?;
    Ok(u128::from_be_bytes(array))
}

fn key_of(bytes: Vec<u8>) -> Done<String> {
    String::from_utf8(bytes).map_err(|_| Fault::new("metadata store: a key is not UTF-8"))
}
/// The store's metadata on PostgreSQL.
pub type PgMeta = Meta<Pg>;

/// The PostgreSQL engine: a pool of connections to one database.
#[derive(Debug)]
pub struct Pg {
    pool: Pool,
    /// This node's name, for its readiness probe row.
    node: String,
}

impl Meta<Pg> {
    /// Connects to `url` and brings the schema up to date.
    pub async fn connect(url: &str, grace_ms: i64, node: &str) -> Result<PgMeta, String> {
        let engine = Pg::new(url, node)?;
        engine.migrate().await?;
        Ok(Meta { engine, grace_ms })
    }

    /// Connects to `url` without creating or migrating anything (for
    /// `stowage verify`): the schema must be this binary's.
    pub async fn connect_existing(url: &str, node: &str) -> Result<PgMeta, String> {
        let engine = Pg::new(url, node)?;
        let client = engine
            .pool
            .get()
            .await
            .map_err(|e| format!("metadata store: {e}"))?;
        let latest = schema::MIGRATIONS.len() as i32;
        let version = client
            .query_opt("SELECT version FROM stowage_schema WHERE id = 1", &[])
            .await
            .map_err(|e| format!("metadata store: {}", describe(&e)))?
            .map_or(0, |r| r.get::<_, i32>(0));
        if version != latest {
            return Err(format!(
                "the metadata database has schema version {version}, this binary's is {latest}; start this version's server on it once"
            ));
        }
        drop(client);
        Ok(Meta {
            engine,
            grace_ms: 0,
        })
    }
}

impl Pg {
    /// A pool of connections to `url`; nothing is connected yet.
    fn new(url: &str, node: &str) -> Result<Pg, String> {
        let mut pg_config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("metadata_url: {e}"))?;
        // A database that stops answering (a partition, a stuck lock) fails
        // requests with 503 in seconds instead of holding them.
        if pg_config.get_options().is_none() {
            pg_config.options(SESSION_OPTIONS);
        }
        pg_config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .connect_timeout(CONNECT_TIMEOUT);
        let manager = deadpool_postgres::Manager::from_config(
            pg_config,
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| format!("metadata store: {e}"))?;
        Ok(Pg {
            pool,
            node: node.to_owned(),
        })
    }

    /// Runs `attempt` in a SERIALIZABLE transaction, committing it, and
    /// runs it again with backoff when the database reports a lost race.
    async fn transact<A: Attempt>(&self, attempt: &A) -> S3Result<A::Output> {
        let mut n = 0u32;
        loop {
            n += 1;
            let mut client = self.pool.get().await.map_err(unavailable)?;
            let result = once(&mut client, attempt).await;
            match result {
                Ok(value) => return Ok(value),
                Err(PgFail::S3(e)) => return Err(e),
                Err(PgFail::CommitUnknown(e)) => {
                    return Err(S3Error::internal(format!(
                        "metadata store: outcome of COMMIT unknown: {}",
                        describe(&e)
                    )));
                }
                Err(PgFail::Db(e)) if retryable(&e) && n < MAX_ATTEMPTS => {
                    // The connection goes back to the pool while we wait.
                    drop(client);
                    backoff(n).await;
                }
                Err(PgFail::Db(e)) if retryable(&e) => {
                    return Err(unavailable(format!(
                        "gave up after {n} attempts: {}",
                        describe(&e)
                    )));
                }
                Err(PgFail::Db(e)) => return Err(db_error(e)),
            }
        }
    }

    async fn migrate(&self) -> Result<(), String> {
        let latest = schema::MIGRATIONS.len() as i32;
        loop {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| format!("metadata store: {e}"))?;
            let exists = client
                .query_opt(
                    "SELECT 1 FROM information_schema.tables \
                     WHERE table_name = 'stowage_schema' AND table_schema = current_schema()",
                    &[],
                )
                .await
                .map_err(|e| format!("metadata store: {}", describe(&e)))?
                .is_some();
            // Nodes starting together race to create it (a loser may see a
            // unique violation on the catalog), and to add its one row,
            // which the migrations lock so that one node runs each.
            if !exists && let Err(e) = client.batch_execute(schema::VERSION_TABLE).await {
                let lost_race = retryable(&e)
                    || [
                        SqlState::UNIQUE_VIOLATION,
                        SqlState::DUPLICATE_OBJECT,
                        SqlState::DUPLICATE_TABLE,
                    ]
                    .iter()
                    .any(|c| e.code() == Some(c));
                if !lost_race {
                    return Err(format!("metadata store: {}", describe(&e)));
                }
                // Another node created it: look again.
                backoff(1).await;
                continue;
            }
            if let Err(e) = client
                .execute(
                    "INSERT INTO stowage_schema (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING",
                    &[],
                )
                .await
                && !retryable(&e)
            {
                return Err(format!("metadata store: {}", describe(&e)));
            }
            let version: i32 = match client
                .query_opt("SELECT version FROM stowage_schema WHERE id = 1", &[])
                .await
            {
                Ok(row) => row.map_or(0, |r| r.get(0)),
                Err(e) => return Err(format!("metadata store: {}", describe(&e))),
            };
            if version > latest {
                return Err(format!(
                    "the metadata database has schema version {version}, newer than this binary's {latest}; run a newer stowage"
                ));
            }
            if version == latest {
                return Ok(());
            }
            let step = Migration {
                version,
                sql: schema::MIGRATIONS[version as usize],
            };
            let step = self.transact(&step).await;
            match step {
                Ok(true) => tracing::info!(version = version + 1, "migrated the metadata schema"),
                Ok(false) => {}
                Err(e) => return Err(format!("metadata store: {}", e.cause.unwrap_or(e.message))),
            }
        }
    }
}

/// One attempt: begin, run, commit.
async fn once<A: Attempt>(
    client: &mut deadpool_postgres::Object,
    attempt: &A,
) -> PgResult<A::Output> {
    let txn = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::Serializable)
        .start()
        .await?;
    match attempt.run(&txn).await {
        Ok(value) => match timed_commit(txn).await {
            Ok(()) => Ok(value),
            // Refused at COMMIT: nothing landed; try again.
            Err(e) if retryable(&e) => Err(PgFail::Db(e)),
            Err(e) => Err(PgFail::CommitUnknown(e)),
        },
        // A refusal is decided on what the transaction read, which
        // SERIALIZABLE vouches for only once it commits; refusals come
        // before any write, so there is nothing to commit but the reads.
        Err(PgFail::S3(e)) if e.code != Code::InternalError => {
            txn.commit().await?;
            Err(PgFail::S3(e))
        }
        Err(other) => Err(other),
    }
}

/// COMMIT, measured for the metrics (one change per commit).
async fn timed_commit(txn: Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    let started = std::time::Instant::now();
    let committed = txn.commit().await;
    crate::telemetry::COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
    crate::telemetry::COMMIT_CHANGES.observe(1.0);
    committed
}

/// Runs a query on a connection or in a transaction.
async fn query_on<Q: Query, C: deadpool_postgres::GenericClient>(
    q: &Q,
    client: &C,
    node: &str,
) -> S3Result<Q::Output> {
    match q.run(&mut View { client, node }).await {
        Ok(out) => Ok(out),
        Err(Stop::Refused(e)) => Err(e),
        Err(Stop::Fault(f)) => match PgFail::from(f) {
            PgFail::S3(e) => Err(e),
            PgFail::Db(e) | PgFail::CommitUnknown(e) => Err(db_error(e)),
        },
    }
}

impl Engine for Pg {
    async fn query<Q: Query>(&self, q: Q) -> S3Result<Q::Output> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let node = &self.node;
        if !Q::SNAPSHOT {
            return query_on(&q, &client, node).await;
        }
        // One snapshot for every statement of a long read.
        let txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_error)?;
        let out = query_on(&q, &txn, node).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(out)
    }

    async fn change<C: Change>(&self, change: C) -> S3Result<C::Output> {
        let node = &self.node;
        self.transact(&ChangeAttempt {
            change: &change,
            node,
        })
        .await
    }

    async fn tidy(&self) -> S3Result<()> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let fold = client.execute(schema::FOLD_USAGE, &[]).await;
        fold.map(drop).map_err(db_error)
    }
}
