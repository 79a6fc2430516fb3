//! Starts the real `stowage` binary on a free port with a temporary data
//! directory, and talks to it with aws-sdk-s3 or raw HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The configuration file it started with (rewrite it, then SIGHUP).
    pub config: PathBuf,
    log: Arc<Mutex<String>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with the default configuration in a fresh data directory.
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// A server with extra `[limits]` settings (TOML lines).
    pub fn start_with(limits: &str) -> Server {
        Server::start_with_config("", limits)
    }

    /// A server with extra top-level and `[limits]` settings (TOML lines).
    pub fn start_with_config(top: &str, limits: &str) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut s = Server::launch(tmp.path(), top, limits);
        s._tmp = Some(tmp);
        s
    }

    /// A server on an existing data directory (for restart tests).
    pub fn start_in(dir: &Path, limits: &str) -> Server {
        Server::launch(dir, "", limits)
    }

    /// One node of several sharing `dir` (its data directory and the
    /// database `top` names).
    pub fn start_node(dir: &Path, top: &str, limits: &str) -> Server {
        Server::launch(dir, top, limits)
    }

    fn launch(dir: &Path, top: &str, limits: &str) -> Server {
        static CONFIGS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let data_dir = dir.join("data");
        let n = CONFIGS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let config = dir.join(format!("config-{n}.toml"));
        // Under STOWAGE_TEST_METADATA=postgres, each data directory gets a
        // database of its own, kept across restarts.
        let top = if crate::pg::selected() && !top.contains("metadata_url") {
            let url_file = dir.join("metadata_url");
            let url = std::fs::read_to_string(&url_file).unwrap_or_else(|_| {
                let url = crate::pg::Postgres::get().new_database();
                std::fs::write(&url_file, &url).expect("write metadata_url");
                url
            });
            format!("metadata_url = {url:?}\n{top}")
        } else {
            top.to_owned()
        };
        std::fs::write(&config, config_text(&data_dir, &top, limits)).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("STOWAGE_ACCESS_KEY_ID")
            .env_remove("STOWAGE_SECRET_ACCESS_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start stowage");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                {
                    let mut log = log2.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(i) = line.find("listening on ")
                    && let Some((_, rest)) = line[i..].split_once("://")
                    && let Some(tx) = tx.take()
                {
                    // Text or JSON lines: the address is what follows.
                    let in_address = |c: char| c.is_ascii_alphanumeric() || ".:[]".contains(c);
                    let addr = rest
                        .split(|c| !in_address(c))
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().expect("address"),
            Err(_) => panic!(
                "server did not report its address; its log:\n{}",
                log.lock().unwrap()
            ),
        };
        Server {
            child: Some(child),
            addr,
            data_dir,
            config,
            log,
            _tmp: None,
        }
    }

    /// Rewrites the configuration file with other settings (as
    /// [`Server::start_with_config`] takes them), for a SIGHUP to reload;
    /// the address and data directory stay.
    pub fn rewrite_config(&self, top: &str, limits: &str) {
        let url_file = self.data_dir.parent().expect("dir").join("metadata_url");
        let top = match std::fs::read_to_string(url_file) {
            Ok(url) if !top.contains("metadata_url") => format!("metadata_url = {url:?}\n{top}"),
            _ => top.to_owned(),
        };
        let text = config_text(&self.data_dir, &top, limits).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{}\"", self.addr.port()),
        );
        std::fs::write(&self.config, text).expect("rewrite config");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends the server a SIGHUP.
    pub fn hangup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-s", "HUP", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The server's (resident, peak resident) memory in KiB, from /proc.
    pub fn memory_kib(&self) -> (u64, u64) {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).expect(name);
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Files under `tmp/` (bodies being written, or left by a crash),
    /// whichever node directory they are in.
    pub fn tmp_files(&self) -> usize {
        count_files(&self.data_dir.join("tmp"))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it contains `what` (a request's access-log line is
    /// written as its response finishes, so a client may see the response
    /// first); fails after 10 s.
    pub fn log_when(&self, what: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let log = self.log();
            if log.contains(what) {
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no {what:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server abruptly, as a crash or power loss would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    /// Sends SIGTERM and returns at once.
    pub fn signal_term(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        assert!(status.expect("kill").success());
    }

    /// Waits for the process to exit, for at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        let child = self.child.as_mut().expect("running");
        while start.elapsed() < limit {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().expect("wait")
    }

    pub fn client(&self) -> Client {
        self.client_as(DEV_KEY, DEV_SECRET)
    }

    /// A client signing with another credential.
    pub fn client_as(&self, key: &str, secret: &str) -> Client {
        let http = aws_smithy_http_client::Builder::new().build_http();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .http_client(http)
            .build();
        Client::from_conf(config)
    }

    /// Signs `request` with the development credential (unsigned payload)
    /// and sends it on a new connection; reads the response until the
    /// server closes it.
    pub fn raw(&self, request: &[u8]) -> RawResponse {
        self.raw_unsigned(&sign(request, DEV_KEY, DEV_SECRET))
    }

    /// Sends `request` verbatim.
    pub fn raw_unsigned(&self, request: &[u8]) -> RawResponse {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // A server may answer before the whole request is sent, and close.
        let _ = stream.write_all(request);
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        if buf.is_empty() {
            // The connection was reset before any answer arrived.
            return RawResponse {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        RawResponse::parse(&buf)
    }
}

/// Files under `dir`, at any depth.
/// The server's metrics (its `metrics_listen` must be set).
pub fn scrape(server: &Server) -> String {
    scrape_as(server, "localhost").body_str()
}

/// A scrape naming `host` in its Host header.
pub fn scrape_as(server: &Server, host: &str) -> RawResponse {
    metrics_port_get(server, "/metrics", host)
}

/// A GET of `path` on the metrics port, naming `host`.
pub fn metrics_port_get(server: &Server, path: &str, host: &str) -> RawResponse {
    let log = server.log();
    let addr = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("metrics address in the log");
    let mut s = TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    RawResponse::parse(&buf)
}

fn config_text(data_dir: &Path, top: &str, limits: &str) -> String {
    let level = if top.contains("log_level") {
        ""
    } else {
        "log_level = \"info\"\n"
    };
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{level}{top}\n[limits]\n{limits}\n",
        data_dir.display().to_string()
    )
}

pub fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

pub const DEV_KEY: &str = "stowage";
pub const DEV_SECRET: &str = "stowage-dev-secret";

/// The parts of a raw request, for signing.
struct RawHead<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: http::HeaderMap,
    body: &'a [u8],
}

fn parse_head(request: &[u8]) -> RawHead<'_> {
    let end = find(request, b"\r\n\r\n").expect("request head");
    let head = std::str::from_utf8(&request[..end]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap();
    let target = first.next().unwrap();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').expect("header line");
        headers.append(
            http::HeaderName::try_from(k.trim().to_ascii_lowercase()).unwrap(),
            http::HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    RawHead {
        method,
        path,
        query,
        headers,
        body: &request[end + 4..],
    }
}

fn render(head: &RawHead) -> Vec<u8> {
    let target = match head.query {
        Some(q) => format!("{}?{q}", head.path),
        None => head.path.to_owned(),
    };
    let mut out = format!("{} {target} HTTP/1.1\r\n", head.method).into_bytes();
    for (k, v) in &head.headers {
        // Byte for byte: a raw test may send non-ASCII values.
        out.extend_from_slice(format!("{k}: ").as_bytes());
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(head.body);
    out
}

/// Adds SigV4 header auth over every header of `request` (the payload
/// stays unsigned unless it declares an `x-amz-content-sha256`). Returns
/// the signed request and its signature (the seed of a signed stream).
pub fn sign_with_seed(request: &[u8], key: &str, secret: &str) -> (Vec<u8>, String) {
    let mut head = parse_head(request);
    let now = stowage::time::amz_date(stowage::time::now_ms());
    head.headers
        .insert("x-amz-date", http::HeaderValue::from_str(&now).unwrap());
    if !head.headers.contains_key("x-amz-content-sha256") {
        head.headers.insert(
            "x-amz-content-sha256",
            http::HeaderValue::from_static("UNSIGNED-PAYLOAD"),
        );
    }
    let signer = stowage::auth::sigv4::Signer {
        access_key: key,
        secret,
        region: "us-east-1",
    };
    let (authorization, signature) =
        signer.authorization(head.method, head.path, head.query, &head.headers);
    head.headers.insert(
        "authorization",
        http::HeaderValue::from_str(&authorization).unwrap(),
    );
    (render(&head), signature)
}

pub fn sign(request: &[u8], key: &str, secret: &str) -> Vec<u8> {
    sign_with_seed(request, key, secret).0
}

/// `request` signed with the development credential.
pub fn signed(request: &[u8]) -> Vec<u8> {
    sign(request, DEV_KEY, DEV_SECRET)
}

/// A PUT of `chunks` as a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, every
/// chunk signed in the chain. `tamper` may alter the encoded body after
/// signing.
pub fn signed_stream_put(path: &str, chunks: &[&[u8]], tamper: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    use stowage::auth::sigv4;
    let decoded: usize = chunks.iter().map(|c| c.len()).sum();
    let mut framed_len = 0;
    for c in chunks.iter().map(|c| c.len()).chain([0]) {
        framed_len += format!("{c:x}").len() + ";chunk-signature=".len() + 64 + 2 + c + 2;
    }
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {framed_len}\r\n\
         Content-Encoding: aws-chunked\r\nx-amz-decoded-content-length: {decoded}\r\n\
         x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n\r\n"
    );
    let (mut request, seed) = sign_with_seed(head.as_bytes(), DEV_KEY, DEV_SECRET);
    let signed = parse_head(&request);
    let now = signed.headers["x-amz-date"].to_str().unwrap().to_owned();
    let signer = sigv4::Signer {
        access_key: DEV_KEY,
        secret: DEV_SECRET,
        region: "us-east-1",
    };
    let mut previous = seed;
    let mut body = Vec::new();
    for chunk in chunks.iter().copied().chain([&b""[..]]) {
        previous = signer.chunk_signature(&now, &previous, &sigv4::sha256_hex(chunk));
        body.extend_from_slice(
            format!("{:x};chunk-signature={previous}\r\n", chunk.len()).as_bytes(),
        );
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    assert_eq!(body.len(), framed_len, "framing arithmetic");
    tamper(&mut body);
    request.extend_from_slice(&body);
    request
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn parse(buf: &[u8]) -> RawResponse {
        let mut buf = buf;
        // Skip interim 1xx responses.
        loop {
            let end = find(buf, b"\r\n\r\n").expect("response head");
            let head = std::str::from_utf8(&buf[..end]).expect("ascii head");
            let mut lines = head.split("\r\n");
            let status: u16 = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .expect("status line");
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let rest = &buf[end + 4..];
            if (100..200).contains(&status) {
                buf = rest;
                continue;
            }
            return RawResponse {
                status,
                headers,
                body: rest.to_vec(),
            };
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 error body.
    pub fn code(&self) -> String {
        let body = self.body_str();
        body.split("<Code>")
            .nth(1)
            .and_then(|s| s.split("</Code>").next())
            .unwrap_or("")
            .to_owned()
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The multipart ETag, computed independently of the server.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    use md5::{Digest, Md5};
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&Md5::digest(p));
    }
    format!("\"{}-{}\"", hex(&Md5::digest(&all)), parts.len())
}

/// The S3 error code of an SDK error.
pub fn err_code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => se.code().unwrap_or("").to_owned(),
        None => format!("not a service error: {e:?}"),
    }
}

/// The HTTP status of an SDK error.
pub fn err_status<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> u16 {
    e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// PutObject of `body` at `bucket/key` through the SDK, which must succeed.
pub async fn put(
    s3: &Client,
    bucket: &str,
    key: impl Into<String>,
    body: impl AsRef<[u8]>,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_ref().to_vec().into())
        .send()
        .await
        .unwrap()
}
