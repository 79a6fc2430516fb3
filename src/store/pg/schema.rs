//! The PostgreSQL schema and its versioned migrations. Stowage creates and
//! migrates its own tables, in one transaction per migration, and refuses
//! a database whose schema is newer than it knows.
//!
//! Written for PostgreSQL and the engines that speak its protocol
//! (CockroachDB, YugabyteDB): plain tables and B-tree indexes, `BYTEA` keys
//! (so range scans run in S3's byte order whatever the database's
//! collation), no advisory locks, no LISTEN/NOTIFY, no sequences, no
//! triggers, no stored procedures.
//!
//! Records (bucket, object head, upload, part, segment) are stored as the
//! same versioned encoding the embedded engine uses
//! ([`crate::store::redb::tables::Record`]); what queries select on has
//! columns of its own.

/// Each migration, in order; the schema's version is how many have run.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE buckets (
        name TEXT PRIMARY KEY,
        record BYTEA NOT NULL,
        cors BYTEA,
        tags BYTEA,
        lifecycle BYTEA
    );
    CREATE TABLE heads (
        bucket TEXT NOT NULL,
        key BYTEA NOT NULL,
        record BYTEA NOT NULL,
        inline_body BYTEA,
        PRIMARY KEY (bucket, key)
    );
    CREATE TABLE manifests (
        id BYTEA PRIMARY KEY,
        refs INT NOT NULL
    );
    CREATE TABLE segments (
        manifest BYTEA NOT NULL,
        idx INT NOT NULL,
        start_at BIGINT NOT NULL,
        record BYTEA NOT NULL,
        PRIMARY KEY (manifest, idx)
    );
    CREATE INDEX segments_by_offset ON segments (manifest, start_at);
    CREATE TABLE uploads (
        id BYTEA PRIMARY KEY,
        bucket TEXT NOT NULL,
        key BYTEA NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE INDEX uploads_by_key ON uploads (bucket, key, id);
    CREATE TABLE parts (
        upload_id BYTEA NOT NULL,
        number INT NOT NULL,
        size BIGINT NOT NULL,
        record BYTEA NOT NULL,
        PRIMARY KEY (upload_id, number)
    );
    CREATE TABLE blobs (
        id BYTEA PRIMARY KEY,
        refs INT NOT NULL
    );
    CREATE TABLE garbage (
        due BIGINT NOT NULL,
        id BYTEA NOT NULL,
        kind SMALLINT NOT NULL,
        PRIMARY KEY (due, id)
    );
    CREATE TABLE leases (
        id BYTEA PRIMARY KEY,
        until_ms BIGINT NOT NULL
    );
    CREATE TABLE probe (
        node TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL
    );
    "#,
    // 2: objects and bytes per bucket, as rows of changes that only ever
    // insert (no two writers contend for a total); the collector folds
    // them into one row per bucket. The migration counts what is there.
    r#"
    CREATE TABLE usage (
        id BYTEA PRIMARY KEY,
        bucket TEXT NOT NULL,
        objects BIGINT NOT NULL,
        bytes BIGINT NOT NULL
    );
    "#,
    // 3: settings the server keeps for itself (the scrub's cursor).
    r#"
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    "#,
];

/// The version after which [`MIGRATIONS`]' usage table exists and must be
/// filled from the heads already stored.
pub const USAGE_VERSION: i32 = 2;

/// Folds the usage rows into one per bucket (dropping buckets at zero),
/// in one statement: under READ COMMITTED a concurrent fold skips the rows
/// this one deleted, and rows inserted meanwhile stay for the next.
pub const FOLD_USAGE: &str = "WITH gone AS (DELETE FROM usage RETURNING bucket, objects, bytes) \
     INSERT INTO usage (id, bucket, objects, bytes) \
     SELECT decode(md5(random()::text || bucket), 'hex'), bucket, SUM(objects)::BIGINT, SUM(bytes)::BIGINT \
     FROM gone GROUP BY bucket HAVING SUM(objects) <> 0 OR SUM(bytes) <> 0";

/// The version table, created before anything else.
pub const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS stowage_schema (id INT PRIMARY KEY, version INT NOT NULL)";
