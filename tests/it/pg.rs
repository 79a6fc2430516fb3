//! A real PostgreSQL for the tests: `initdb` into a temporary directory
//! (as the `postgres` user when the tests run as root, since PostgreSQL
//! refuses root), `postgres` on a free port of 127.0.0.1, one database per
//! test server. It stops by itself when the test process exits: a small
//! shell watches the process and stops the server.
//!
//! `STOWAGE_TEST_METADATA=postgres` runs every test server on it;
//! [`Postgres::get`] starts it for the tests that need it either way.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

static PG: OnceLock<Postgres> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// Whether test servers keep their metadata in PostgreSQL.
pub fn selected() -> bool {
    std::env::var("STOWAGE_TEST_METADATA").is_ok_and(|v| v == "postgres")
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL is not installed (.ci/run installs it with apt-get)")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Postgres {
    /// The test process's PostgreSQL, started on first use.
    pub fn get() -> &'static Postgres {
        PG.get_or_init(Postgres::start)
    }

    /// A command run as the database's owner.
    fn command(&self, program: &str) -> Command {
        command(&self.bin, self.as_postgres, program)
    }

    /// A server of its own, for a test that stops and starts it; stopped
    /// when dropped.
    pub fn private() -> Postgres {
        Postgres::start()
    }

    fn start() -> Postgres {
        let bin = bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::tempdir().expect("temp dir");
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(ok.success());
        }
        let data = dir.path().join("data");
        let out = command(&bin, as_postgres, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pg = Postgres {
            port,
            bin,
            as_postgres,
            _dir: dir,
        };
        pg.pg_ctl_start();
        // Stops the server once this process is gone, however it ends.
        let stop = pg.command_line("pg_ctl", &format!("-D {} -m fast stop", data.display()));
        let watchdog = format!(
            "while [ -d /proc/{parent} ]; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            parent = std::process::id(),
            dir = pg._dir.path().display(),
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watchdog");
        std::thread::spawn(move || watchdog.wait());
        let start = Instant::now();
        while !pg.psql("SELECT 1").status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(pg._dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    pub fn psql(&self, sql: &str) -> std::process::Output {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> std::process::Output {
        self.command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-c", sql])
            .output()
            .expect("psql")
    }

    /// A new, empty database, as a `metadata_url`.
    pub fn new_database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::SeqCst);
        let name = format!("stowage_{}_{n}", std::process::id());
        let out = self.psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "create database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server at once (as a crash would), runs `during`, and
    /// starts it again on the same data, waiting until it answers.
    pub fn restart_for(&self, down_for: Duration, during: impl FnOnce()) {
        let data = self._dir.path().join("data");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let started = Instant::now();
        during();
        std::thread::sleep(down_for.saturating_sub(started.elapsed()));
        self.pg_ctl_start();
    }

    fn pg_ctl_start(&self) {
        let data = self._dir.path().join("data");
        let log = self._dir.path().join("log");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args([
                "-o",
                &format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400",
                    self.port,
                    self._dir.path().display()
                ),
                "-w",
                "start",
            ])
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self._dir.path().join("data"))
            .args(["-m", "fast", "stop"])
            .output();
    }
}

impl Postgres {
    /// `program args` as a shell command line, run as the database's owner.
    fn command_line(&self, program: &str, args: &str) -> String {
        let program = self.bin.join(program);
        if self.as_postgres {
            format!("runuser -u postgres -- {} {args}", program.display())
        } else {
            format!("{} {args}", program.display())
        }
    }
}

fn command(bin: &Path, as_postgres: bool, program: &str) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}
