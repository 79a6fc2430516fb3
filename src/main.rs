//! The `stowage` binary: configuration, logging, the store, the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use stowage::config::{Config, DEV_ACCESS_KEY_ID};
use stowage::ops::AppState;
use stowage::store::Store;
use tracing_subscriber::EnvFilter;

/// An S3-compatible object server.
#[derive(Debug, Parser)]
#[command(name = "stowage", version)]
struct Cli {
    /// Configuration file [default: config.toml in the working directory if
    /// present, else built-in defaults].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address and port to listen on (overrides `listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-reads every stored blob and checks it against the MD5 and
    /// checksum recorded when it was written. Run it with the server
    /// stopped. Exit status: 0 all intact, 1 damage found, 2 could not run.
    Verify,
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
    if let Some(Command::Verify) = cli.command {
        return verify(&config.data_dir);
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
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
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    if config.uses_dev_credential() {
        // The key id only: secrets never reach a log, not even this
        // public one (the README gives it).
        tracing::warn!(
            access_key_id = DEV_ACCESS_KEY_ID,
            "no credentials configured: using the local-development credential (its secret is in the README), and CORS lets any origin in unless [[cors]] is set; configure [[credentials]] before exposing this server"
        );
    }
    let grace_ms = (config.limits.gc_grace_secs * 1000) as i64;
    let mut store = Store::open_embedded(&config.data_dir, grace_ms).await?;
    store.floor = config.limits.min_free_bytes;
    let store = Arc::new(store);
    let metrics = Arc::new(stowage::metrics::Metrics::default());
    if let Some(metrics_addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| format!("cannot listen on {metrics_addr} for metrics: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!("metrics on http://{addr}/metrics");
        tokio::spawn(stowage::metrics::serve(
            listener,
            Arc::clone(&metrics),
            Arc::clone(&store),
        ));
    }
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => {
            let tls = Arc::new(stowage::tls::Tls::load(cert, key)?);
            tls.reload_on_sighup();
            Some(tls)
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        data_dir = %config.data_dir.display(),
        region = %config.region,
        "stowage listening on {scheme}://{addr}"
    );
    let state = Arc::new(AppState {
        config,
        store,
        metrics,
    });
    stowage::server::serve(listener, state, tls, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// `stowage verify`: progress on stderr, the summary and each damaged blob
/// on stdout.
fn verify(data_dir: &std::path::Path) -> std::process::ExitCode {
    use std::io::{IsTerminal, Write};
    use std::time::{Duration, Instant};
    let (db, blobs) = match stowage::store::redb::verify::open(data_dir) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("stowage verify: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = Instant::now();
    let human = |n: u64| match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{n} bytes"),
    };
    let progress = |done: u64, total: u64, finished: bool| {
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
    };
    let report = match stowage::store::redb::verify::verify(&db, &blobs, progress) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stowage verify: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    for d in &report.damaged {
        println!(
            "DAMAGED blob {}: {}; used by {}",
            d.blob,
            d.problem,
            d.users.join(", ")
        );
    }
    println!(
        "{} objects and {} parts of incomplete uploads: {} blobs, {} bytes read in {:.1} s; {} damaged",
        report.objects,
        report.upload_parts,
        report.blobs,
        report.bytes,
        started.elapsed().as_secs_f64(),
        report.damaged.len()
    );
    if report.damaged.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
