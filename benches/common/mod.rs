//! What the benchmarks share: SigV4 signing of raw request heads and
//! starting the release server on a data directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use stowage::auth::sigv4::Signer;

pub const SIGNER: Signer = Signer {
    access_key: stowage::config::DEV_ACCESS_KEY_ID,
    secret: stowage::config::DEV_SECRET_ACCESS_KEY,
    region: "us-east-1",
};

/// Adds SigV4 header auth to a request head (`...\r\n\r\n`) whose body
/// hashes to `payload` (or `UNSIGNED-PAYLOAD`, or a streaming mode).
/// Returns the signed head and its signature.
pub fn sign(head: &str, payload: &str) -> (String, String) {
    let head = head.strip_suffix("\r\n\r\n").expect("a request head");
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        headers.insert(
            http::HeaderName::try_from(k.trim().to_ascii_lowercase()).unwrap(),
            http::HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    let now = stowage::time::amz_date(stowage::time::now_ms());
    headers.insert("x-amz-date", now.parse().unwrap());
    headers.insert("x-amz-content-sha256", payload.parse().unwrap());
    let (authorization, signature) = SIGNER.authorization(method, path, query, &headers);
    headers.insert("authorization", authorization.parse().unwrap());
    let mut out = format!("{request_line}\r\n");
    for (k, v) in &headers {
        out += &format!("{k}: {}\r\n", v.to_str().unwrap());
    }
    (out + "\r\n", signature)
}

/// Signs a head with an unsigned payload.
pub fn signed(head: &str) -> String {
    sign(head, "UNSIGNED-PAYLOAD").0
}

/// Starts the server (the bench's release build) on `dir/data` with extra
/// `[limits]` lines; returns it and its address.
pub fn start_server(dir: &Path, limits: &str) -> (Child, SocketAddr) {
    let (child, addr, _) = start_server_logged(dir, limits, "\0");
    (child, addr)
}

/// [`start_server`], also keeping the log lines that contain `keep`.
pub fn start_server_logged(
    dir: &Path,
    limits: &str,
    keep: &str,
) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    start_configured(dir, "config.toml", "", limits, keep)
}

/// One node of several sharing `dir/data`: `top` holds its top-level
/// settings (the metadata URL and node id), `name` its config file's name.
#[allow(dead_code)]
pub fn start_node(dir: &Path, name: &str, top: &str, limits: &str) -> (Child, SocketAddr) {
    let (child, addr, _) = start_configured(dir, name, top, limits, "\0");
    (child, addr)
}

fn start_configured(
    dir: &Path,
    name: &str,
    top: &str,
    limits: &str,
    keep: &str,
) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let config = dir.join(name);
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn,stowage=info\"\n{top}\n[limits]\n{limits}\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start stowage");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(i) = line.find("listening on http://") {
            let rest = &line[i + 20..];
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (keep, into) = (keep.to_owned(), Arc::clone(&kept));
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains(&keep) {
                into.lock().unwrap().push(line);
            }
        }
    });
    (child, addr, kept)
}
