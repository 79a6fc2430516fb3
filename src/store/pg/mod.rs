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
mod writes;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Pool, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use super::listing::{common_prefix, prefix_successor, start_bound};
use super::meta::MetaStore;
use super::model::*;
use super::redb::tables::{SegmentRow, decode};
use crate::cors::CorsRule;
use crate::error::{Code, S3Error, S3Result};
use crate::lifecycle::LifecycleRule;
use crate::time::now_ms;

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

/// Runs `$body` in a SERIALIZABLE transaction named `$txn`, committing it
/// and retrying the whole with backoff when the database reports a lost
/// race. The body is an expression of type `PgResult<T>` evaluated in an
/// async block, so `?` works on both S3 and database errors.
macro_rules! transact {
    ($pg:expr, |$txn:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut client = match $pg.pool.get().await {
                Ok(client) => client,
                Err(e) => break Err(unavailable(e)),
            };
            let result: PgResult<_> = async {
                let $txn = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::Serializable)
                    .start()
                    .await?;
                let outcome: PgResult<_> = async { $body }.await;
                match outcome {
                    Ok(value) => match $txn.commit().await {
                        Ok(()) => Ok(value),
                        // Refused at COMMIT: nothing landed; try again.
                        Err(e) if retryable(&e) => Err(PgFail::Db(e)),
                        Err(e) => Err(PgFail::CommitUnknown(e)),
                    },
                    // A refusal is decided on what the transaction read,
                    // which SERIALIZABLE vouches for only once it commits;
                    // refusals come before any write, so there is nothing
                    // to commit but the reads.
                    Err(PgFail::S3(e)) if e.code != Code::InternalError => {
                        $txn.commit().await?;
                        Err(PgFail::S3(e))
                    }
                    Err(other) => Err(other),
                }
            }
            .await;
            match result {
                Ok(value) => break Ok(value),
                Err(PgFail::S3(e)) => break Err(e),
                Err(PgFail::CommitUnknown(e)) => {
                    break Err(S3Error::internal(format!(
                        "metadata store: outcome of COMMIT unknown: {}",
                        describe(&e)
                    )));
                }
                Err(PgFail::Db(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    // The connection goes back to the pool while we wait.
                    drop(client);
                    $crate::store::pg::backoff(attempt).await;
                }
                Err(PgFail::Db(e)) if retryable(&e) => {
                    break Err(unavailable(format!(
                        "gave up after {attempt} attempts: {}",
                        describe(&e)
                    )));
                }
                Err(PgFail::Db(e)) => break Err(db_error(e)),
            }
        }
    }};
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

pub(crate) fn id_of(bytes: &[u8]) -> S3Result<u128> {
    let array: [u8; 16] = bytes
        .try_into()
        .map_err(|_| S3Error::internal("metadata store: an id is not 16 bytes"))?;
    Ok(u128::from_be_bytes(array))
}

fn key_of(bytes: Vec<u8>) -> S3Result<String> {
    String::from_utf8(bytes).map_err(|_| S3Error::internal("metadata store: a key is not UTF-8"))
}

#[derive(Debug)]
pub struct PgMeta {
    pool: Pool,
    grace_ms: i64,
    /// This node's name, for its readiness probe row.
    node: String,
}

impl PgMeta {
    /// Connects to `url` and brings the schema up to date.
    pub async fn connect(url: &str, grace_ms: i64, node: &str) -> Result<PgMeta, String> {
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
        let pg = PgMeta {
            pool,
            grace_ms,
            node: node.to_owned(),
        };
        pg.migrate().await?;
        Ok(pg)
    }

    async fn migrate(&self) -> Result<(), String> {
        let latest = schema::MIGRATIONS.len() as i32;
        loop {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| format!("metadata store: {e}"))?;
            let exists = read_opt(
                &client,
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
            let version: i32 = match read_opt(
                &client,
                "SELECT version FROM stowage_schema WHERE id = 1",
                &[],
            )
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
            let migration = schema::MIGRATIONS[version as usize];
            let step = transact!(self, |txn| async {
                let current: Option<i32> = txn
                    .query_opt(
                        "SELECT version FROM stowage_schema WHERE id = 1 FOR UPDATE",
                        &[],
                    )
                    .await?
                    .map(|r| r.get(0));
                if current.unwrap_or(0) != version {
                    return Ok(false); // another node moved it on
                }
                txn.batch_execute(migration).await?;
                txn.execute(
                    "INSERT INTO stowage_schema (id, version) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                    &[&(version + 1)],
                )
                .await?;
                PgResult::Ok(true)
            }
            .await);
            match step {
                Ok(true) => tracing::info!(version = version + 1, "migrated the metadata schema"),
                Ok(false) => {}
                Err(e) => return Err(format!("metadata store: {}", e.cause.unwrap_or(e.message))),
            }
        }
    }

    async fn client(&self) -> S3Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(unavailable)
    }
}

type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

async fn read_opt(
    client: &deadpool_postgres::Object,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

async fn read_one(
    client: &deadpool_postgres::Object,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_one(&statement, params).await
}

async fn read_all(
    client: &deadpool_postgres::Object,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

fn config_of<T: super::redb::tables::Record>(row: &Row, i: usize) -> S3Result<Option<T>> {
    row.get::<_, Option<&[u8]>>(i).map(decode).transpose()
}

impl PgMeta {
    /// A bucket's optional configuration column; `NoSuchBucket` if absent.
    async fn bucket_config<T: super::redb::tables::Record>(
        &self,
        name: &str,
        column: &'static str,
    ) -> S3Result<Option<T>> {
        let client = self.client().await?;
        let sql = format!("SELECT {column} FROM buckets WHERE name = $1");
        let row = read_opt(&client, &sql, &[&name])
            .await
            .map_err(db_error)?
            .ok_or(Code::NoSuchBucket)?;
        config_of(&row, 0)
    }

    async fn set_config<T: super::redb::tables::Record + Sync>(
        &self,
        name: &str,
        column: &'static str,
        value: Option<T>,
    ) -> S3Result<()> {
        transact!(self, |txn| writes::set_bucket_config(
            &txn,
            name,
            column,
            value.as_ref()
        )
        .await)
    }

    /// The head (and inline bytes) at `bucket/key`: `NoSuchBucket` or
    /// `NoSuchKey`.
    async fn head_and_inline(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<(ObjectHead, Option<Vec<u8>>)> {
        let client = self.client().await?;
        let row = read_opt(
            &client,
            "SELECT h.record, h.inline_body FROM buckets b \
                 LEFT JOIN heads h ON h.bucket = b.name AND h.key = $2 WHERE b.name = $1",
            &[&bucket, &key.as_bytes()],
        )
        .await
        .map_err(db_error)?
        .ok_or(Code::NoSuchBucket)?;
        let record: Option<&[u8]> = row.get(0);
        let head = decode(record.ok_or(Code::NoSuchKey)?)?;
        Ok((head, row.get(1)))
    }

    async fn check_bucket(&self, client: &deadpool_postgres::Object, bucket: &str) -> S3Result<()> {
        read_opt(client, "SELECT 1 FROM buckets WHERE name = $1", &[&bucket])
            .await
            .map_err(db_error)?
            .ok_or(Code::NoSuchBucket)?;
        Ok(())
    }
}

#[async_trait]
impl MetaStore for PgMeta {
    async fn create_bucket(&self, name: &str, owner: &str, acl: Acl) -> S3Result<()> {
        transact!(self, |txn| writes::create_bucket(&txn, name, owner, acl)
            .await)
    }

    async fn bucket(&self, name: &str) -> S3Result<BucketRecord> {
        let client = self.client().await?;
        let row = read_opt(
            &client,
            "SELECT record FROM buckets WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(db_error)?
        .ok_or(Code::NoSuchBucket)?;
        decode(row.get::<_, &[u8]>(0))
    }

    async fn list_buckets(&self) -> S3Result<Vec<(String, BucketRecord)>> {
        let client = self.client().await?;
        let rows = read_all(&client, "SELECT name, record FROM buckets", &[])
            .await
            .map_err(db_error)?;
        let mut all = rows
            .iter()
            .map(|r| Ok((r.get::<_, String>(0), decode(r.get::<_, &[u8]>(1))?)))
            .collect::<S3Result<Vec<_>>>()?;
        // In byte order, whatever the database's collation.
        all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(all)
    }

    async fn delete_bucket(&self, name: &str) -> S3Result<()> {
        let grace = self.grace_ms;
        transact!(self, |txn| writes::delete_bucket(
            &txn,
            name,
            now_ms() + grace
        )
        .await)
    }

    async fn bucket_cors(&self, name: &str) -> S3Result<Option<Vec<CorsRule>>> {
        self.bucket_config(name, "cors").await
    }

    async fn set_bucket_cors(&self, name: &str, rules: Option<Vec<CorsRule>>) -> S3Result<()> {
        self.set_config(name, "cors", rules).await
    }

    async fn set_bucket_acl(&self, name: &str, acl: Acl) -> S3Result<()> {
        transact!(self, |txn| writes::update_bucket(&txn, name, |r| r.acl =
            acl)
        .await)
    }

    async fn set_bucket_policy(&self, name: &str, public_objects: bool) -> S3Result<()> {
        transact!(self, |txn| {
            writes::update_bucket(&txn, name, |r| r.public_objects = public_objects).await
        })
    }

    async fn bucket_tags(&self, name: &str) -> S3Result<Option<Tags>> {
        self.bucket_config(name, "tags").await
    }

    async fn set_bucket_tags(&self, name: &str, tags: Option<Tags>) -> S3Result<()> {
        self.set_config(name, "tags", tags).await
    }

    async fn bucket_lifecycle(&self, name: &str) -> S3Result<Option<Vec<LifecycleRule>>> {
        self.bucket_config(name, "lifecycle").await
    }

    async fn set_bucket_lifecycle(
        &self,
        name: &str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> S3Result<()> {
        self.set_config(name, "lifecycle", rules).await
    }

    async fn lifecycles(&self) -> S3Result<Vec<(String, Vec<LifecycleRule>)>> {
        let client = self.client().await?;
        let rows = read_all(
            &client,
            "SELECT name, lifecycle FROM buckets WHERE lifecycle IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| Ok((r.get::<_, String>(0), decode(r.get::<_, &[u8]>(1))?)))
            .collect()
    }

    async fn head_object(&self, bucket: &str, key: &str) -> S3Result<ObjectHead> {
        Ok(self.head_and_inline(bucket, key).await?.0)
    }

    async fn read_object(&self, bucket: &str, key: &str) -> S3Result<(ObjectHead, Option<Bytes>)> {
        let (head, inline) = self.head_and_inline(bucket, key).await?;
        let inline = match head.body {
            Body::Inline => Some(Bytes::from(
                inline.ok_or_else(|| S3Error::internal("inline body missing"))?,
            )),
            _ => None,
        };
        Ok((head, inline))
    }

    async fn segments(
        &self,
        manifest: u128,
        first: u32,
        max: u32,
    ) -> S3Result<Vec<(u64, Segment)>> {
        let client = self.client().await?;
        let rows = read_all(
            &client,
            "SELECT record FROM segments WHERE manifest = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
            &[&&bid(manifest)[..], &(first as i32), &i64::from(max)],
        )
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let row: SegmentRow = decode(r.get::<_, &[u8]>(0))?;
                Ok((row.start, row.segment))
            })
            .collect()
    }

    async fn segment_at(&self, manifest: u128, _count: u32, offset: u64) -> S3Result<u32> {
        let client = self.client().await?;
        let row = read_opt(
            &client,
            "SELECT idx FROM segments WHERE manifest = $1 AND start_at <= $2 \
                 ORDER BY start_at DESC LIMIT 1",
            &[&&bid(manifest)[..], &(offset as i64)],
        )
        .await
        .map_err(db_error)?;
        Ok(row.map_or(0, |r| r.get::<_, i32>(0) as u32))
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        head: ObjectHead,
        inline: Option<Bytes>,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead> {
        let grace = self.grace_ms;
        transact!(self, |txn| async {
            let mut head = head.clone();
            head.last_modified_ms = now_ms();
            let due = head.last_modified_ms + grace;
            writes::put_object(
                &txn,
                (bucket, key),
                &head,
                inline.as_deref(),
                &condition,
                due,
            )
            .await?;
            PgResult::Ok(head)
        }
        .await)
    }

    async fn copy_object(
        &self,
        src: (&str, &str),
        dst: (&str, &str),
        changes: CopyChanges,
        source: SourceConditions,
    ) -> S3Result<ObjectHead> {
        let grace = self.grace_ms;
        transact!(self, |txn| {
            writes::copy_object(&txn, src, dst, &changes, &source, grace).await
        })
    }

    async fn set_object_tags(&self, bucket: &str, key: &str, tags: Tags) -> S3Result<()> {
        transact!(self, |txn| {
            writes::update_head(&txn, (bucket, key), |h| h.tags = tags.clone()).await
        })
    }

    async fn set_object_acl(&self, bucket: &str, key: &str, acl: Acl) -> S3Result<()> {
        transact!(self, |txn| writes::update_head(&txn, (bucket, key), |h| {
            h.acl = acl
        })
        .await)
    }

    async fn delete_objects(&self, bucket: &str, keys: Vec<String>) -> S3Result<()> {
        let grace = self.grace_ms;
        transact!(self, |txn| {
            writes::delete_objects(&txn, bucket, &keys, now_ms() + grace).await
        })
    }

    async fn list_objects(&self, bucket: &str, q: ListQuery) -> S3Result<ListPage> {
        let client = self.client().await?;
        self.check_bucket(&client, bucket).await?;
        let mut page = ListPage::default();
        let mut from = start_bound(&q);
        let mut count = 0;
        // Each query reads at most what the page still needs (plus one, to
        // know whether more follow); a common prefix ends the query and the
        // next starts past it.
        'seek: loop {
            let (op, lower) = match &from {
                std::ops::Bound::Included(k) => (">=", k.clone()),
                std::ops::Bound::Excluded(k) => (">", k.clone()),
                std::ops::Bound::Unbounded => (">=", String::new()),
            };
            let sql = format!(
                "SELECT key, record FROM heads WHERE bucket = $1 AND key {op} $2 ORDER BY key LIMIT $3"
            );
            let want = (q.max - count + 1) as i64;
            let rows = read_all(&client, &sql, &[&bucket, &lower.as_bytes(), &want])
                .await
                .map_err(db_error)?;
            let fetched = rows.len() as i64;
            for row in rows {
                let key = key_of(row.get(0))?;
                if !key.starts_with(q.prefix.as_str()) {
                    break 'seek;
                }
                if count == q.max {
                    page.truncated = true;
                    break 'seek;
                }
                count += 1;
                if let Some(cp) = common_prefix(&key, &q.prefix, q.delimiter.as_deref()) {
                    page.common_prefixes.push(cp.to_owned());
                    page.last = Some(cp.to_owned());
                    match prefix_successor(cp) {
                        Some(next) => {
                            from = std::ops::Bound::Included(next);
                            continue 'seek;
                        }
                        None => break 'seek,
                    }
                }
                page.objects
                    .push((key.clone(), decode(row.get::<_, &[u8]>(1))?));
                page.last = Some(key.clone());
                from = std::ops::Bound::Excluded(key);
            }
            if fetched < want {
                break;
            }
        }
        Ok(page)
    }

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        record: UploadRecord,
    ) -> S3Result<String> {
        let id = new_upload_id(record.initiated_ms);
        transact!(self, |txn| writes::create_upload(
            &txn, bucket, key, &record, &id
        )
        .await)
    }

    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord> {
        let client = self.client().await?;
        self.check_bucket(&client, bucket).await?;
        let row = read_opt(
            &client,
            "SELECT record FROM uploads WHERE id = $1 AND bucket = $2 AND key = $3",
            &[&upload_id.as_bytes(), &bucket, &key.as_bytes()],
        )
        .await
        .map_err(db_error)?
        .ok_or(Code::NoSuchUpload)?;
        decode(row.get::<_, &[u8]>(0))
    }

    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        part: PartRecord,
    ) -> S3Result<()> {
        let grace = self.grace_ms;
        transact!(self, |txn| {
            writes::put_part(&txn, (bucket, key, upload_id), part_number, &part, grace).await
        })
    }

    async fn parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> S3Result<(Vec<(u32, PartRecord)>, bool)> {
        let client = self.client().await?;
        let rows = read_all(
            &client,
            "SELECT number, record FROM parts WHERE upload_id = $1 AND number > $2 \
                 ORDER BY number LIMIT $3",
            &[
                &upload_id.as_bytes(),
                &(after.min(i32::MAX as u32) as i32),
                &(max as i64 + 1),
            ],
        )
        .await
        .map_err(db_error)?;
        let truncated = rows.len() > max;
        let parts = rows
            .iter()
            .take(max)
            .map(|r| Ok((r.get::<_, i32>(0) as u32, decode(r.get::<_, &[u8]>(1))?)))
            .collect::<S3Result<Vec<_>>>()?;
        Ok((parts, truncated))
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completion: Completion,
        condition: WriteCondition,
    ) -> S3Result<ObjectHead> {
        let grace = self.grace_ms;
        transact!(self, |txn| {
            writes::complete_upload(
                &txn,
                (bucket, key, upload_id),
                &completion,
                &condition,
                grace,
            )
            .await
        })
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let grace = self.grace_ms;
        transact!(self, |txn| {
            writes::abort_upload(&txn, (bucket, key, upload_id), now_ms() + grace).await
        })
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        q: ListQuery,
        upload_id_marker: Option<String>,
    ) -> S3Result<UploadListPage> {
        let client = self.client().await?;
        self.check_bucket(&client, bucket).await?;
        let mut page = UploadListPage::default();
        // (key, id) to start from, and whether that pair is included.
        let mut from: (String, String, bool) = match (&q.after, upload_id_marker.as_deref()) {
            (Some(key), Some(id)) if !id.is_empty() && key.as_str() >= q.prefix.as_str() => {
                (key.clone(), id.to_owned(), false)
            }
            _ => match start_bound(&q) {
                std::ops::Bound::Included(k) => (k, String::new(), true),
                // Past every upload of the marker key.
                std::ops::Bound::Excluded(k) => (format!("{k}\0"), String::new(), true),
                std::ops::Bound::Unbounded => (String::new(), String::new(), true),
            },
        };
        let mut count = 0;
        'seek: loop {
            let cmp = if from.2 { ">=" } else { ">" };
            let sql = format!(
                "SELECT key, id, record FROM uploads WHERE bucket = $1 AND (key, id) {cmp} ($2, $3) \
                 ORDER BY key, id LIMIT $4"
            );
            let want = (q.max - count + 1) as i64;
            let rows = read_all(
                &client,
                &sql,
                &[&bucket, &from.0.as_bytes(), &from.1.as_bytes(), &want],
            )
            .await
            .map_err(db_error)?;
            let fetched = rows.len() as i64;
            for row in rows {
                let key = key_of(row.get(0))?;
                let id = key_of(row.get(1))?;
                if !key.starts_with(q.prefix.as_str()) {
                    break 'seek;
                }
                if count == q.max {
                    page.truncated = true;
                    break 'seek;
                }
                count += 1;
                if let Some(cp) = common_prefix(&key, &q.prefix, q.delimiter.as_deref()) {
                    page.common_prefixes.push(cp.to_owned());
                    match prefix_successor(cp) {
                        Some(next) => {
                            from = (next, String::new(), true);
                            continue 'seek;
                        }
                        None => break 'seek,
                    }
                }
                page.uploads
                    .push((key.clone(), id.clone(), decode(row.get::<_, &[u8]>(2))?));
                from = (key, id, false);
            }
            if fetched < want {
                break;
            }
        }
        Ok(page)
    }

    async fn uploads_before(
        &self,
        cutoff_ms: i64,
        after: Option<String>,
        max: usize,
    ) -> S3Result<Vec<UploadRef>> {
        let client = self.client().await?;
        let cutoff = format!("{:012x}", cutoff_ms.max(0) as u64);
        let after = after.unwrap_or_default();
        let rows = read_all(
            &client,
            "SELECT id, bucket, key FROM uploads WHERE id < $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&cutoff.as_bytes(), &after.as_bytes(), &(max as i64)],
        )
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                let id = key_of(r.get(0))?;
                let initiated_ms = id
                    .get(..12)
                    .and_then(|t| i64::from_str_radix(t, 16).ok())
                    .unwrap_or(0);
                Ok(UploadRef {
                    bucket: r.get(1),
                    key: key_of(r.get(2))?,
                    id,
                    initiated_ms,
                })
            })
            .collect()
    }

    async fn abort_uploads(&self, uploads: Vec<UploadRef>) -> S3Result<Swept> {
        let grace = self.grace_ms;
        transact!(self, |txn| writes::abort_uploads(
            &txn,
            &uploads,
            now_ms() + grace
        )
        .await)
    }

    async fn expire_objects(&self, bucket: &str, objects: Vec<Expired>) -> S3Result<u64> {
        let grace = self.grace_ms;
        transact!(self, |txn| {
            writes::expire_objects(&txn, bucket, &objects, now_ms() + grace).await
        })
    }

    async fn due_garbage(&self, now_ms: i64, max: usize) -> S3Result<DueGarbage> {
        transact!(self, |txn| writes::due_garbage(&txn, now_ms, max).await)
    }

    async fn forget_garbage(&self, done: Vec<Garbage>) -> S3Result<()> {
        transact!(self, |txn| writes::forget_garbage(&txn, &done).await)
    }

    async fn lease(&self, body: u128, until_ms: i64) -> S3Result<bool> {
        transact!(self, |txn| writes::lease(&txn, body, until_ms).await)
    }

    async fn stats(&self) -> S3Result<Stats> {
        let client = self.client().await?;
        let totals = read_one(
            &client,
            "SELECT (SELECT count(*) FROM uploads)::BIGINT, \
                        (SELECT COALESCE(SUM(size), 0) FROM parts)::BIGINT, \
                        (SELECT count(*) FROM garbage)::BIGINT",
            &[],
        )
        .await
        .map_err(db_error)?;
        let by_bucket = read_all(&client,
                "SELECT u.bucket, SUM(p.size)::BIGINT FROM parts p JOIN uploads u ON u.id = p.upload_id \
                 GROUP BY u.bucket",
                &[],
            )
            .await
            .map_err(db_error)?;
        let mut upload_bytes_by_bucket: Vec<(String, u64)> = by_bucket
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .filter(|(_, n)| *n > 0)
            .collect();
        upload_bytes_by_bucket.sort();
        Ok(Stats {
            incomplete_uploads: totals.get::<_, i64>(0) as u64,
            incomplete_upload_bytes: totals.get::<_, i64>(1) as u64,
            upload_bytes_by_bucket,
            garbage_blobs: totals.get::<_, i64>(2) as u64,
        })
    }

    async fn probe(&self) -> S3Result<()> {
        transact!(self, |txn| async {
            txn.execute(
                "INSERT INTO probe (node, at_ms) VALUES ($1, $2) \
                 ON CONFLICT (node) DO UPDATE SET at_ms = excluded.at_ms",
                &[&self.node, &now_ms()],
            )
            .await?;
            PgResult::Ok(())
        }
        .await)
    }

    async fn live_blobs(&self, ids: Vec<BlobId>) -> S3Result<Vec<BlobId>> {
        let client = self.client().await?;
        let raw: Vec<Vec<u8>> = ids.iter().map(|id| bid(*id).to_vec()).collect();
        let rows = read_all(&client, "SELECT id FROM blobs WHERE id = ANY($1)", &[&raw])
            .await
            .map_err(db_error)?;
        rows.iter().map(|r| id_of(r.get::<_, &[u8]>(0))).collect()
    }
}
