//! Configuration: `config.toml` (every key optional), then command-line flags,
//! then the credential environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The credential a server with no configured credentials starts with, so
/// that a developer can point an SDK at it with zero setup. A warning is
/// logged whenever it is in use.
pub const DEV_ACCESS_KEY_ID: &str = "stowage";
pub const DEV_SECRET_ACCESS_KEY: &str = "stowage-dev-secret";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on; a host name (`localhost:9000`) is
    /// resolved, its first address taken.
    #[serde(deserialize_with = "socket_address")]
    pub listen: SocketAddr,
    /// Directory holding `meta.redb`, `blobs/` and `tmp/`.
    pub data_dir: PathBuf,
    /// The region the server answers as (GetBucketLocation, signing scope).
    pub region: String,
    /// When set, `bucket.<domain>` in the Host header selects the bucket
    /// (virtual-hosted-style addressing). Path-style always works.
    pub domain: Option<String>,
    /// Default `tracing` filter; `RUST_LOG` overrides it.
    pub log_level: String,
    /// `text` (one readable line per event) or `json` (one JSON object per
    /// line, for log shippers).
    pub log_format: LogFormat,
    /// One line per request at INFO (health probes at DEBUG).
    pub access_log: bool,
    /// When set, Prometheus metrics are served on this address.
    #[serde(default, deserialize_with = "optional_socket_address")]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key: with both set, `listen`
    /// speaks HTTPS (reloaded on SIGHUP).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// `postgres://user:pass@host:port/db`: metadata in PostgreSQL (or an
    /// engine that speaks its protocol), for several nodes sharing
    /// `data_dir`. Unset: the embedded redb.
    pub metadata_url: Option<String>,
    /// This node's name among several (its temporary files live under
    /// `tmp/<node_id>/`); defaults to the host name.
    pub node_id: Option<String>,
    pub limits: Limits,
    pub credentials: Vec<Credential>,
    /// Buckets anonymous clients may read.
    pub public_read_buckets: Vec<String>,
    /// CORS rules for buckets without a configuration of their own.
    pub cors: Vec<crate::cors::CorsRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest single PutObject body and largest part, in bytes (S3: 5 GiB).
    pub max_object_size: u64,
    /// Smallest part other than the last (S3: 5 MiB).
    pub min_part_size: u64,
    /// Largest XML request body (CompleteMultipartUpload, DeleteObjects).
    pub max_xml_body: usize,
    /// Incomplete multipart uploads older than this many seconds are
    /// aborted by the background sweeper (S3's AbortIncompleteMultipartUpload).
    pub abandoned_upload_secs: u64,
    /// An upload made under an upload grant lives until the grant expires
    /// and this many seconds more (the window to resume it with a fresh
    /// grant), and no longer than `abandoned_upload_secs`.
    pub grant_resume_secs: u64,
    /// How often the sweeper applies lifecycle rules and aborts abandoned
    /// uploads, in seconds.
    pub sweep_interval_secs: u64,
    /// The length of a day in lifecycle rules, in seconds: 86400. Only
    /// tests shorten it, to watch rules act without waiting days.
    pub lifecycle_day_secs: u64,
    /// How long a request may take to finish once a shutdown signal arrives.
    pub shutdown_grace_secs: u64,
    /// Freed blobs are unlinked no sooner than this after they were freed,
    /// and never while a reader holds them open.
    pub gc_grace_secs: u64,
    /// How often the collector looks for freed blobs, in seconds.
    pub gc_interval_secs: u64,
    /// Free space, in bytes, that writes never take: kept for metadata
    /// commits and deletes. 0 disables the check.
    pub min_free_bytes: u64,
    /// Connections served at once, and from one client address; more are
    /// closed as they arrive.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// A request head (or, on a kept-alive connection, the next one) must
    /// arrive within this many seconds.
    pub header_timeout_secs: u64,
    /// After `body_rate_grace_secs`, a body must have averaged at least this
    /// many bytes a second since it began, or it is dropped (400
    /// `RequestTimeout`, as S3 answers) and nothing of it is kept. 0 turns
    /// it off.
    pub min_body_rate: u64,
    pub body_rate_grace_secs: u64,
    /// Bytes of signed aws-chunked chunks held, across all requests, while
    /// their signatures are checked; a chunk that would pass it is refused
    /// with 503 `SlowDown` (SDKs retry it).
    pub signed_chunk_budget: u64,
    /// The online scrub re-reads every object's blobs once per this many
    /// (lifecycle) days, at most `scrub_bytes_per_sec` per node; 0 days
    /// turns it off.
    pub scrub_interval_days: u64,
    pub scrub_bytes_per_sec: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Reaches every bucket, whoever owns it.
    #[serde(default)]
    pub admin: bool,
    /// Refuses every write.
    #[serde(default)]
    pub read_only: bool,
    /// When set, the key reaches exactly these buckets (and may create
    /// them); otherwise the buckets it owns.
    #[serde(default)]
    pub buckets: Option<Vec<String>>,
}

impl Credential {
    /// An unrestricted key: the development credential and the one from
    /// the environment.
    pub fn admin(access_key_id: &str, secret_access_key: &str) -> Credential {
        Credential {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            admin: true,
            read_only: false,
            buckets: None,
        }
    }
}

/// Secrets stay out of every `Debug` rendering, and so out of logs.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("admin", &self.admin)
            .field("read_only", &self.read_only)
            .field("buckets", &self.buckets)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9000".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            region: "us-east-1".to_owned(),
            domain: None,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            access_log: true,
            metrics_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            metadata_url: None,
            node_id: None,
            limits: Limits::default(),
            credentials: Vec::new(),
            public_read_buckets: Vec::new(),
            cors: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_object_size: 5 << 30,
            min_part_size: 5 << 20,
            max_xml_body: 2 << 20,
            abandoned_upload_secs: 7 * 24 * 3600,
            grant_resume_secs: 24 * 3600,
            sweep_interval_secs: 3600,
            lifecycle_day_secs: 86_400,
            shutdown_grace_secs: 30,
            gc_grace_secs: 60,
            gc_interval_secs: 10,
            min_free_bytes: 256 << 20,
            max_connections: 8192,
            max_connections_per_ip: 1024,
            header_timeout_secs: 10,
            min_body_rate: 1024,
            body_rate_grace_secs: 20,
            signed_chunk_budget: 256 << 20,
            scrub_interval_days: 30,
            scrub_bytes_per_sec: 8 << 20,
        }
    }
}

/// `ADDR:PORT`, or `HOST:PORT` with the host resolved (its first address).
pub fn resolve_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut found = text.to_socket_addrs().map_err(|e| {
        format!(
            "{text:?} is not an address and port (127.0.0.1:9000, [::]:9000, localhost:9000): {e}"
        )
    })?;
    found
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// A serde message without the value it quotes ("invalid type: string
/// \"...\", expected a boolean"): the value may be a secret in the wrong
/// place.
fn without_values(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(lead)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let kind = found.split([' ', '`', '"']).next().unwrap_or("value");
            return format!("{lead}{kind}, expected {expected}");
        }
    }
    message.to_owned()
}

/// The key a TOML error calls unknown when it is a top-level setting
/// written under a table (appended after `[limits]`, say).
fn misplaced_top_level_key(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("unknown field `")?;
    let (name, _) = rest.split_once('`')?;
    // Known at the top when, alone there, it is not unknown.
    let known = match toml::from_str::<Config>(&format!("{name} = 0")) {
        Ok(_) => true,
        Err(e) => !e.to_string().contains("unknown field"),
    };
    known.then_some(name)
}

fn socket_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    resolve_address(&text).map_err(serde::de::Error::custom)
}

fn optional_socket_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| resolve_address(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Checks a `log_level` filter: comma-separated directives, each a level
/// (`error`, `warn`, `info`, `debug`, `trace`, `off`) or `target=level`.
/// A bare word that is no level (`warning`) would be taken as a target
/// and silence everything else, so it is refused.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !is_level(level) {
            return Err(format!(
                "log_level {filter:?}: {directive:?} names no level; use one of error, warn, info, debug, trace, off, or target=level (stowage=debug)"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|e| format!("log_level {filter:?}: {e}"))
}

impl Limits {
    /// Refuses values no server could run with: a duration past ten years
    /// (an interval, a timeout), a cap of zero.
    fn check(&self) -> Result<(), String> {
        const TEN_YEARS: u64 = 10 * 366 * 86_400;
        let durations = [
            ("abandoned_upload_secs", self.abandoned_upload_secs),
            ("grant_resume_secs", self.grant_resume_secs),
            ("sweep_interval_secs", self.sweep_interval_secs),
            ("lifecycle_day_secs", self.lifecycle_day_secs),
            ("shutdown_grace_secs", self.shutdown_grace_secs),
            ("gc_grace_secs", self.gc_grace_secs),
            ("gc_interval_secs", self.gc_interval_secs),
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_rate_grace_secs", self.body_rate_grace_secs),
        ];
        for (name, secs) in durations {
            if secs > TEN_YEARS {
                return Err(format!(
                    "limits.{name} = {secs}: more than ten years ({TEN_YEARS} seconds)"
                ));
            }
        }
        if self.scrub_interval_days > 3660 {
            return Err("limits.scrub_interval_days: more than ten years".into());
        }
        let caps = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("header_timeout_secs", self.header_timeout_secs),
            ("max_object_size", self.max_object_size),
            ("scrub_bytes_per_sec", self.scrub_bytes_per_sec),
        ];
        for (name, value) in caps {
            if value == 0 {
                return Err(format!("limits.{name} = 0: nothing could be served"));
            }
        }
        Ok(())
    }

    pub fn abandoned_upload_age(&self) -> Duration {
        Duration::from_secs(self.abandoned_upload_secs)
    }

    pub fn sweep_policy(&self) -> crate::store::sweep::SweepPolicy {
        // Saturating: a huge age meant as "never" must not wrap negative.
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        crate::store::sweep::SweepPolicy {
            default_upload_age_ms: ms(self.abandoned_upload_secs),
            grant_resume_ms: ms(self.grant_resume_secs),
            day_ms: ms(self.lifecycle_day_secs.max(1)),
        }
    }

    pub fn gc_interval(&self) -> Duration {
        Duration::from_secs(self.gc_interval_secs.max(1))
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs.max(1))
    }

    /// The scrub's pace; `None` when it is off.
    pub fn scrub_policy(&self) -> Option<crate::store::scrub::ScrubPolicy> {
        let day_ms = self.lifecycle_day_secs.max(1).saturating_mul(1000);
        let interval = self.scrub_interval_days.saturating_mul(day_ms);
        (self.scrub_interval_days > 0).then(|| crate::store::scrub::ScrubPolicy {
            bytes_per_sec: self.scrub_bytes_per_sec.max(1),
            interval_ms: i64::try_from(interval).unwrap_or(i64::MAX),
        })
    }
}

impl Config {
    /// This node's name: `node_id`, else the host name.
    pub fn node_name(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".to_owned())
        })
    }

    /// Reads `path`; a missing explicit path is an error, an empty file is
    /// the defaults.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        use std::io::Read;
        const MAX: u64 = 1 << 20;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX + 1).read_to_string(&mut text))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if text.len() as u64 > MAX {
            return Err(format!("{}: larger than 1 MiB", path.display()));
        }
        Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            // Where, and what: never the line itself, which may hold a
            // secret (an unterminated secret_access_key, a misspelt key).
            let message = without_values(e.message().trim_end());
            let message = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: {message}")
                }
                None => message,
            };
            match misplaced_top_level_key(&message) {
                Some(name) => format!(
                    "{message}\n`{name}` is a top-level setting: in TOML, a key belongs to the [table] above it, so put `{name}` above the first [table] of the file"
                ),
                None => message,
            }
        })
    }

    /// Applies `STOWAGE_ACCESS_KEY_ID` / `STOWAGE_SECRET_ACCESS_KEY`: they
    /// replace the first (root) credential, or add it when there is none,
    /// as an admin key.
    pub fn apply_env(&mut self, key: Option<String>, secret: Option<String>) {
        if let (Some(access_key_id), Some(secret_access_key)) = (key, secret) {
            let root = Credential::admin(&access_key_id, &secret_access_key);
            match self.credentials.first_mut() {
                Some(first) => *first = root,
                None => self.credentials.push(root),
            }
        }
    }

    /// A development server (no credentials) without `[[cors]]` lets pages
    /// on loopback origins in: see [`crate::cors::CorsRule::development`].
    pub fn apply_dev_defaults(&mut self) {
        if self.uses_dev_credential() && self.cors.is_empty() {
            self.cors = vec![crate::cors::CorsRule::development()];
        }
    }

    /// Whether the built-in development credential is in use.
    pub fn uses_dev_credential(&self) -> bool {
        self.credentials.is_empty()
    }

    pub fn listens_on_loopback(&self) -> bool {
        self.listen.ip().to_canonical().is_loopback()
    }

    /// Whether a request naming `host` (its Host header) may be answered.
    /// A server listening on a loopback address answers only loopback
    /// names and its own `domain` (and subdomains): a page elsewhere that
    /// rebinds its DNS name to 127.0.0.1 then still cannot reach it.
    pub fn answers_host(&self, host: &str) -> bool {
        !self.listens_on_loopback() || names_loopback(host, self.domain.as_deref())
    }
}

/// Whether a Host header (`name[:port]`, `[v6][:port]`) names a loopback
/// host (`localhost` and its subdomains, a loopback address) or is under
/// `domain`. Anything that is no host name is not.
pub fn names_loopback(host: &str, domain: Option<&str>) -> bool {
    {
        let port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        // Without the port: `name[:port]`, `[v6][:port]`; anything else is
        // no host name.
        let name = match host.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((name, "")) => name,
                Some((name, after)) if after.strip_prefix(':').is_some_and(port) => name,
                _ => return false,
            },
            None => match host.rsplit_once(':') {
                Some((name, p)) if port(p) => name,
                Some(_) => return false,
                None => host,
            },
        };
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let under = |domain: &str| {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            name == domain || name.ends_with(&format!(".{domain}"))
        };
        under("localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || domain.is_some_and(under)
    }
}

impl Config {
    /// The credential with this access key id: a configured one, or the
    /// development credential when none is configured.
    pub fn credential(&self, access_key_id: &str) -> Option<Credential> {
        if self.uses_dev_credential() {
            return (access_key_id == DEV_ACCESS_KEY_ID)
                .then(|| Credential::admin(DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY));
        }
        self.credentials
            .iter()
            .find(|c| c.access_key_id == access_key_id)
            .cloned()
    }

    /// Takes from `running` what only a restart changes (addresses, the
    /// data directory, the metadata engine, whether TLS is on, the chunk
    /// budget, the collector's grace, the log format), and names each that
    /// differed.
    pub fn keep_fixed(&mut self, running: &Config) -> Vec<&'static str> {
        let mut kept = Vec::new();
        macro_rules! fixed {
            ($($field:ident).+) => {
                if self.$($field).+ != running.$($field).+ {
                    self.$($field).+ = running.$($field).+.clone();
                    kept.push(stringify!($($field).+));
                }
            };
        }
        fixed!(listen);
        fixed!(data_dir);
        fixed!(metadata_url);
        fixed!(node_id);
        fixed!(metrics_listen);
        fixed!(log_format);
        fixed!(limits.signed_chunk_budget);
        fixed!(limits.gc_grace_secs);
        if self.tls_cert_file.is_some() != running.tls_cert_file.is_some() {
            self.tls_cert_file = running.tls_cert_file.clone();
            self.tls_key_file = running.tls_key_file.clone();
            kept.push("tls (on or off)");
        }
        kept
    }

    /// What differs from `old`, one entry per setting, for the log: values
    /// for plain settings, access key ids (never secrets) for credentials.
    pub fn changes(&self, old: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        let mut plain = |name: &str, old: String, new: String| {
            if old != new {
                changed.push(format!("{name}: {old} -> {new}"));
            }
        };
        plain("region", old.region.clone(), self.region.clone());
        plain(
            "domain",
            format!("{:?}", old.domain),
            format!("{:?}", self.domain),
        );
        plain("log_level", old.log_level.clone(), self.log_level.clone());
        plain(
            "access_log",
            old.access_log.to_string(),
            self.access_log.to_string(),
        );
        plain(
            "tls_cert_file",
            format!("{:?}", old.tls_cert_file),
            format!("{:?}", self.tls_cert_file),
        );
        plain(
            "tls_key_file",
            format!("{:?}", old.tls_key_file),
            format!("{:?}", self.tls_key_file),
        );
        plain(
            "public_read_buckets",
            format!("{:?}", old.public_read_buckets),
            format!("{:?}", self.public_read_buckets),
        );
        let table = |l: &Limits| toml::Table::try_from(l).unwrap_or_default();
        let (before, after) = (table(&old.limits), table(&self.limits));
        for (name, value) in &after {
            if let Some(was) = before.get(name).filter(|was| *was != value) {
                changed.push(format!("limits.{name}: {was} -> {value}"));
            }
        }
        if format!("{:?}", old.cors) != format!("{:?}", self.cors) {
            changed.push(format!(
                "cors: {} rules -> {}",
                old.cors.len(),
                self.cors.len()
            ));
        }
        let find =
            |list: &[Credential], id: &str| list.iter().find(|c| c.access_key_id == id).cloned();
        for c in &self.credentials {
            match find(&old.credentials, &c.access_key_id) {
                None => changed.push(format!("credentials: added {}", c.access_key_id)),
                Some(o) if o.secret_access_key != c.secret_access_key => {
                    changed.push(format!("credentials: rotated {}", c.access_key_id))
                }
                Some(o)
                    if (o.admin, o.read_only, &o.buckets) != (c.admin, c.read_only, &c.buckets) =>
                {
                    changed.push(format!("credentials: changed {}", c.access_key_id))
                }
                Some(_) => {}
            }
        }
        for c in &old.credentials {
            if find(&self.credentials, &c.access_key_id).is_none() {
                changed.push(format!("credentials: removed {}", c.access_key_id));
            }
        }
        changed
    }

    /// Checks what serde cannot: unique access keys, valid CORS rules.
    pub fn validate(&self) -> Result<(), String> {
        for (i, c) in self.credentials.iter().enumerate() {
            if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
                return Err(format!("credentials[{i}]: empty access key id or secret"));
            }
            if self.credentials[..i]
                .iter()
                .any(|o| o.access_key_id == c.access_key_id)
            {
                return Err(format!(
                    "credentials[{i}]: access key id {:?} appears twice",
                    c.access_key_id
                ));
            }
        }
        check_log_level(&self.log_level)?;
        if self.limits.min_part_size > self.limits.max_object_size {
            return Err(format!(
                "limits.min_part_size ({}) is above limits.max_object_size ({}): no multipart upload could complete",
                self.limits.min_part_size, self.limits.max_object_size
            ));
        }
        self.limits.check()?;
        if self.uses_dev_credential() && !self.listens_on_loopback() {
            return Err(format!(
                "listen = {}: the development credential ({DEV_ACCESS_KEY_ID} / {DEV_SECRET_ACCESS_KEY}) is public, so a server without a configured key listens only on a loopback address. To listen on {}, configure a key: set STOWAGE_ACCESS_KEY_ID and STOWAGE_SECRET_ACCESS_KEY, or add a [[credentials]] table to the configuration (README, Credentials).",
                self.listen,
                self.listen.ip()
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("tls_cert_file and tls_key_file go together: set both or neither".into());
        }
        crate::cors::validate(&self.cors).map_err(|e| format!("cors: {}", e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistakes_are_refused_and_host_names_resolve() {
        let load = |text: &str| Config::from_toml(text).and_then(|c| c.validate().map(|()| c));
        for bad in [
            "log_level = \"warning\"",
            "log_level = \"info,stowage=loud\"",
            "[limits]\nmin_part_size = 10\nmax_object_size = 5",
            "listen = \"localhost\"",
            "listen = \"no-such-host.invalid:9000\"",
            // Durations no clock can add, caps nothing gets through.
            "[limits]\ngc_interval_secs = 9223372036854775807",
            "[limits]\nheader_timeout_secs = 18446744073709551615",
            "[limits]\nmax_connections_per_ip = 0",
            "[limits]\nheader_timeout_secs = 0",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
        for good in ["info", "warn", "stowage=debug,warn", "OFF"] {
            load(&format!("log_level = {good:?}")).unwrap();
        }
        let c = load("listen = \"localhost:9000\"").unwrap();
        assert!(c.listen.ip().is_loopback() && c.listen.port() == 9000);
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.limits.min_part_size, 5 << 20);
        assert!(c.uses_dev_credential());
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../config.toml");
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = Config::from_toml("lisen = \"x\"").unwrap_err();
        assert!(!e.contains("top-level"), "{e}");
        // The README's old HTTPS recipe appended to the shipped file,
        // after its [limits] table.
        let shipped = include_str!("../config.toml");
        let e = Config::from_toml(&format!("{shipped}\ntls_cert_file = \"c.pem\"\n")).unwrap_err();
        assert!(e.contains("`tls_cert_file` is a top-level setting"), "{e}");
        let e = Config::from_toml("[limits]\nlisen = 1\n").unwrap_err();
        assert!(!e.contains("top-level"), "{e}");
        // A secret in the wrong place is not repeated.
        for leaky in [
            "[[credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\nadmin = \"S3CR3T\"",
            "[[credentials]]\naccess_key_id = \"a\"\nsecret_access_key = 98765432109876543",
        ] {
            let e = Config::from_toml(leaky).unwrap_err();
            assert!(
                !e.contains("S3CR3T") && !e.contains("98765432109876543"),
                "{e}"
            );
            assert!(e.contains("line "), "{e}");
        }
    }

    #[test]
    fn env_credential_replaces_the_root_one() {
        let mut c = Config::from_toml(
            "[[credentials]]\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
        )
        .unwrap();
        c.apply_env(Some("k".into()), Some("s".into()));
        assert_eq!(c.credentials.len(), 1);
        assert_eq!(c.credentials[0].access_key_id, "k");
        c.apply_env(Some("k2".into()), None);
        assert_eq!(c.credentials[0].access_key_id, "k");
    }
}
