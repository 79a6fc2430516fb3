//! The `stowage` binary: configuration, logging, the store, the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use stowage::config::{Config, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY};
use stowage::s3::AppState;
use stowage::store::Store;
use tracing_subscriber::EnvFilter;

/// Puts a `log_level` filter in force while the server runs; `false` when
/// `RUST_LOG` decides the level instead.
type SetLevel = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// An S3-compatible object server.
#[derive(Debug, Clone, Parser)]
#[command(name = "stowage", version)]
struct Cli {
    /// Configuration file [default: config.toml in the working directory if
    /// present, else built-in defaults].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address and port to listen on (overrides `listen`); a host name is
    /// resolved.
    #[arg(long, value_name = "ADDR:PORT", value_parser = stowage::config::resolve_address)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Metadata in PostgreSQL: `postgres://user:pass@host:port/db`
    /// (overrides `metadata_url`).
    #[arg(long, value_name = "URL", global = true)]
    metadata_url: Option<String>,
    /// This node's name among several sharing a data directory (overrides
    /// `node_id`; default: the host name).
    #[arg(long, value_name = "NAME")]
    node_id: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Re-reads every stored blob and checks it against the MD5 and
    /// checksum recorded when it was written, cross-checks reference
    /// counts, and lists orphan blob files. Run it with the server stopped.
    /// Exit status: 0 all intact, 1 problems found, 2 could not run.
    Verify {
        /// Sets wrong reference counts to the references found and unlinks
        /// orphan blob files. Damaged blobs are only reported.
        #[arg(long)]
        repair: bool,
    },
}

/// The configuration, and the file it came from (`None`: built-in
/// defaults).
fn load_config(cli: &Cli) -> Result<(Config, Option<PathBuf>), String> {
    let default = PathBuf::from("config.toml");
    let source = match &cli.config {
        Some(path) => Some(path.clone()),
        None => default.exists().then_some(default),
    };
    let mut config = match &source {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &cli.metadata_url {
        config.metadata_url = Some(url.clone());
    }
    if let Some(node) = &cli.node_id {
        config.node_id = Some(node.clone());
    }
    config.apply_env(
        std::env::var("STOWAGE_ACCESS_KEY_ID").ok(),
        std::env::var("STOWAGE_SECRET_ACCESS_KEY").ok(),
    );
    config.apply_dev_defaults();
    config.validate()?;
    Ok((config, source))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (config, source) = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stowage: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(Command::Verify { repair }) = cli.command {
        return verify(&config, repair);
    }
    let set_level = init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stowage: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match &source {
        Some(path) => tracing::info!("configuration: {}", path.display()),
        None => tracing::info!("configuration: none found, built-in defaults"),
    }
    match runtime.block_on(run(config, (cli, source), set_level)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stdout as text or JSON lines, at the configured level unless
/// `RUST_LOG` says otherwise; returns what changes the level later.
fn init_logging(config: &Config) -> SetLevel {
    use stowage::config::LogFormat;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, reload};
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(&config.log_level));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (text, json) = match config.log_format {
        LogFormat::Text => (Some(fmt::layer().with_ansi(ansi)), None),
        LogFormat::Json => (None, Some(fmt::layer().json().flatten_event(true))),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .init();
    Box::new(move |level| !fixed && handle.reload(EnvFilter::new(level)).is_ok())
}

async fn run(
    config: Config,
    (cli, source): (Cli, Option<PathBuf>),
    set_level: SetLevel,
) -> Result<(), String> {
    // The ports first: a port in use is reported before anything is
    // created on disk.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?,
        ),
        None => None,
    };
    if config.uses_dev_credential() {
        // The development pair is public (the README gives it); a copied
        // binary has no README beside it.
        tracing::warn!(
            access_key_id = DEV_ACCESS_KEY_ID,
            secret_access_key = DEV_SECRET_ACCESS_KEY,
            "no credentials configured: using the public development credential, on a loopback address only; CORS lets in pages on loopback origins unless [[cors]] is set; configure [[credentials]] (or STOWAGE_ACCESS_KEY_ID and STOWAGE_SECRET_ACCESS_KEY) to serve other addresses"
        );
    }
    let grace_ms = (config.limits.gc_grace_secs * 1000) as i64;
    let store = match &config.metadata_url {
        None => Store::open_embedded(&config.data_dir, grace_ms).await?,
        Some(url) => {
            let node = config.node_name();
            tracing::info!(node = %node, "metadata in PostgreSQL");
            Store::open_shared(&config.data_dir, url, &node, grace_ms).await?
        }
    };
    let store = Arc::new(store);
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(stowage::server::tls::Tls::load(cert, key)?)),
        _ => None,
    };
    let state = Arc::new(AppState::new(config, store));
    let config = state.config();
    let metrics = Arc::clone(&state.metrics);
    let mut metrics_url = String::new();
    if let Some(listener) = metrics_listener {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        metrics_url = format!("http://{addr}/metrics");
        tracing::info!("metrics on {metrics_url}");
        tokio::spawn(stowage::server::metrics::serve(
            listener,
            Arc::clone(&metrics),
            Arc::clone(&state.store),
        ));
    }
    // The signal handlers are in place before the port is announced: a
    // supervisor's SIGTERM right after start still shuts down gracefully,
    // and a SIGHUP (logrotate, `systemctl reload`) never stops the server.
    let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
    let reloader = Reloader {
        cli,
        source,
        state: Arc::clone(&state),
        tls: tls.clone(),
        set_level,
    };
    hangup(reloader).map_err(|e| format!("cannot handle signals: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
    let engine = match &config.metadata_url {
        None => "redb (embedded)",
        Some(_) => "postgresql",
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %data_dir.display(),
        metadata = engine,
        region = %config.region,
        metrics = %metrics_url,
        "stowage listening on {scheme}://{addr}"
    );
    stowage::app::serve(listener, state, tls, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// What SIGHUP reloads the settings with: the same flags and environment
/// the server started with, over the configuration file as it is now.
struct Reloader {
    cli: Cli,
    /// The configuration file the server started with.
    source: Option<PathBuf>,
    state: Arc<AppState>,
    tls: Option<Arc<stowage::server::tls::Tls>>,
    set_level: SetLevel,
}

impl Reloader {
    /// Reads and checks the settings, and puts in force what can change
    /// while the server runs: credentials, CORS rules, public buckets,
    /// limits, the log level and access log, the TLS pair. Anything wrong
    /// leaves every setting as it was.
    fn reload(&self) -> Result<(), String> {
        if let Some(path) = &self.source
            && std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
        {
            return Err(format!(
                "{} is empty (a tool rewriting it?): a reload never falls back to every default",
                path.display()
            ));
        }
        let (mut config, source) = load_config(&self.cli)?;
        if source != self.source {
            return Err(match &self.source {
                Some(path) => format!(
                    "{} is gone: a reload reads the file the server started with",
                    path.display()
                ),
                None => "the server started with built-in defaults: restart it to use a configuration file".into(),
            });
        }
        let running = self.state.config();
        let kept = config.keep_fixed(&running);
        // Checked again with what stays: the running addresses.
        config.validate()?;
        if config.uses_dev_credential() && !running.uses_dev_credential() {
            return Err("the file names no [[credentials]]: a reload never turns on the public development credential (restart to use it)".into());
        }
        // Everything that can fail is done before anything changes.
        let pair = match (&self.tls, &config.tls_cert_file, &config.tls_key_file) {
            (Some(_), Some(cert), Some(key)) => {
                Some((stowage::server::tls::Tls::prepare(cert, key)?, cert.clone()))
            }
            _ => None,
        };
        if let (Some(tls), Some((pair, cert))) = (&self.tls, pair) {
            tls.install(pair);
            tracing::info!(cert = %cert.display(), "TLS pair reloaded");
        }
        if config.log_level != running.log_level && !(self.set_level)(&config.log_level) {
            tracing::warn!(
                "RUST_LOG is set and decides the log level: log_level takes effect once it is unset"
            );
        }
        for setting in kept {
            tracing::warn!(
                setting,
                "changed in the configuration: takes effect at the next start"
            );
        }
        let changes = config.changes(&running);
        self.state.replace_config(config);
        if changes.is_empty() {
            tracing::info!("SIGHUP: settings reloaded, nothing changed");
        }
        for change in changes {
            tracing::info!("SIGHUP: {change}");
        }
        Ok(())
    }
}

/// SIGHUP, handled for as long as the server runs: it reloads the
/// settings, and never stops the server (the default action would).
#[cfg(unix)]
fn hangup(reloader: Reloader) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    let reloader = Arc::new(reloader);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // Reading files and resolving names block: off the workers
            // that serve requests (a FIFO named as the file froze them).
            let reloader = Arc::clone(&reloader);
            let reloaded = tokio::task::spawn_blocking(move || reloader.reload()).await;
            match reloaded {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("SIGHUP: reload refused, every setting stays as it was: {e}")
                }
                Err(e) => tracing::error!("SIGHUP: the reload failed: {e}"),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn hangup(_reloader: Reloader) -> std::io::Result<()> {
    Ok(())
}

/// `stowage verify [--repair]`: progress on stderr, the summary and each
/// problem on stdout.
fn verify(config: &Config, repair: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    match run_verify(config, repair) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("stowage verify: {e}");
            ExitCode::from(2)
        }
    }
}

/// Whether the store is (after `--repair`, was made) sound, on the engine
/// the configuration names.
fn run_verify(config: &Config, repair: bool) -> Result<bool, String> {
    use stowage::store::pg::PgMeta;
    use stowage::store::redb::{RedbMeta, RedbReadOnly};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let data_dir = config.data_dir.as_path();
    runtime.block_on(async {
        match &config.metadata_url {
            Some(url) => {
                let node = config.node_name();
                let meta = PgMeta::connect_existing(url, &node).await?;
                verify_on(&meta.engine, data_dir, repair).await
            }
            None if repair => {
                let meta = RedbMeta::open_for_repair(data_dir)?;
                verify_on(&meta.engine, data_dir, repair).await
            }
            None => verify_on(&RedbReadOnly::open(data_dir)?, data_dir, repair).await,
        }
    })
}

async fn verify_on<E: stowage::store::txn::Engine>(
    engine: &E,
    data_dir: &std::path::Path,
    repair: bool,
) -> Result<bool, String> {
    use stowage::store::verify as v;
    let started = std::time::Instant::now();
    let blobs = Arc::new(v::blobs_at(data_dir)?);
    let report = v::verify(engine, Arc::clone(&blobs), progress_printer())
        .await
        .map_err(|e| e.cause.unwrap_or(e.message))?;
    print_report(&report, started);
    if !repair {
        return Ok(report.clean());
    }
    let r = v::repair(engine, blobs, &report)
        .await
        .map_err(|e| e.cause.unwrap_or(e.message))?;
    println!(
        "repaired: {} reference counts set, {} orphan blobs ({} bytes) unlinked",
        r.counts, r.orphans, r.orphan_bytes
    );
    // Damaged bytes are reported, never repaired.
    Ok(report.damaged.is_empty())
}

/// Progress on stderr: a rewritten line on a terminal, a line a second
/// otherwise.
fn progress_printer() -> impl FnMut(u64, u64, bool) + Send + 'static {
    use std::io::{IsTerminal, Write};
    use std::time::{Duration, Instant};
    let terminal = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    move |done: u64, total: u64, finished: bool| {
        if last.elapsed() < Duration::from_secs(1) && !finished {
            return;
        }
        last = Instant::now();
        let pct = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        let line = format!("verified {} of {} ({pct:.0}%)", human(done), human(total));
        if terminal {
            eprint!("\r{line}");
            if finished {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{n} bytes"),
    }
}

fn print_report(report: &stowage::store::verify::Report, started: std::time::Instant) {
    for d in &report.damaged {
        println!(
            "DAMAGED blob {}: {}; used by {}",
            d.blob,
            d.problem,
            d.users.join(", ")
        );
    }
    for c in &report.counts {
        println!("REFCOUNT {}", c.describe());
    }
    for (id, len) in &report.orphans {
        println!(
            "ORPHAN blob {}: {len} bytes, nothing refers to it",
            stowage::store::model::id_hex(*id)
        );
    }
    println!(
        "{} objects and {} parts of incomplete uploads: {} blobs, {} bytes read in {:.1} s; {} damaged, {} wrong reference counts, {} orphan blobs",
        report.objects,
        report.upload_parts,
        report.blobs,
        report.bytes,
        started.elapsed().as_secs_f64(),
        report.damaged.len(),
        report.counts.len(),
        report.orphans.len()
    );
}

/// SIGINT or SIGTERM, registered now (so that a signal arriving before
/// the server is polled is not lost to the default action).
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        // A second signal while the stop drains means "now": what was cut
        // is recovered at the next start, as after a crash.
        stowage::server::health::drain();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::warn!("a second stop signal: stopping now, without the grace period");
            std::process::exit(1);
        });
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
