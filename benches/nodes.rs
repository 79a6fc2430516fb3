//! Several nodes: 4 KiB PutObject rates and 1 GiB multipart throughput with
//! one node on redb (the baseline), one node on PostgreSQL, and three nodes
//! on one PostgreSQL and one shared directory, in one run on one machine.
//! Two cores limit what three nodes can show; the point is that nothing
//! falls off a cliff, and the figures say what a PostgreSQL round trip
//! costs.
//!
//! Run: `cargo bench --bench nodes` (`STOWAGE_BENCH_MIB` sets the multipart
//! size, default 1024; `STOWAGE_BENCH_PUTS` the small PUTs, default 4000).

use std::net::SocketAddr;
use std::process::Child;
use std::time::Instant;

use common::{signed, start_node};

#[allow(dead_code)]
mod common;
#[path = "../tests/it/pg.rs"]
#[allow(dead_code)]
mod pg;

const PART: usize = 16 << 20;
const THREADS: usize = 16;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends one signed request on a new connection; returns status and body.
fn send(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    s.write_all(signed(head).as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    (status, out[at..].to_vec())
}

/// 4 KiB PUTs from `THREADS` clients, spread over `nodes`.
fn small_puts(nodes: &[SocketAddr], n: usize) -> f64 {
    let body = vec![b'x'; 4096];
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let body = &body;
            s.spawn(move || {
                for i in (t..n).step_by(THREADS) {
                    let addr = nodes[i % nodes.len()];
                    let head = format!(
                        "PUT /bench/small/{i} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n"
                    );
                    let (status, _) = send(addr, &head, body);
                    assert_eq!(status, 200);
                }
            });
        }
    });
    n as f64 / started.elapsed().as_secs_f64()
}

/// One multipart upload of `mib` MiB in 16 MiB parts, four at a time,
/// spread over `nodes`; MiB/s.
fn multipart(nodes: &[SocketAddr], mib: usize) -> f64 {
    let (status, body) = send(
        nodes[0],
        "POST /bench/big?uploads HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let id = text
        .split("<UploadId>")
        .nth(1)
        .and_then(|r| r.split("</UploadId>").next())
        .unwrap()
        .to_owned();
    let parts = (mib << 20) / PART;
    let data = vec![7u8; PART];
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (data, id) = (&data, &id);
                s.spawn(move || {
                    for p in (t..parts).step_by(4) {
                        let head = format!(
                            "PUT /bench/big?partNumber={}&uploadId={id} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {PART}\r\nConnection: close\r\n\r\n",
                            p + 1
                        );
                        let (status, _) = send(nodes[p % nodes.len()], &head, data);
                        assert_eq!(status, 200);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    // Every part holds the same bytes, so has the same ETag.
    let etag = {
        use md5::Digest;
        format!(
            "\"{}\"",
            stowage::store::model::hex(&md5::Md5::digest(&data))
        )
    };
    let mut xml = String::from("<CompleteMultipartUpload>");
    for n in 1..=parts {
        xml += &format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>");
    }
    xml += "</CompleteMultipartUpload>";
    let head = format!(
        "POST /bench/big?uploadId={id} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        xml.len()
    );
    let (status, body) = send(nodes[nodes.len() - 1], &head, xml.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    mib as f64 / started.elapsed().as_secs_f64()
}

struct Setup {
    _dir: tempfile::TempDir,
    nodes: Vec<(Child, SocketAddr)>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn setup(url: Option<&str>, n: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<(Child, SocketAddr)> = (0..n)
        .map(|i| {
            let top = match url {
                Some(url) => format!("metadata_url = {url:?}\nnode_id = \"node{i}\""),
                None => String::new(),
            };
            start_node(dir.path(), &format!("config-{i}.toml"), &top, "")
        })
        .collect();
    let (status, _) = send(
        nodes[0].1,
        "PUT /bench HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert_eq!(status, 200);
    Setup { _dir: dir, nodes }
}

fn main() {
    let puts = env_or("STOWAGE_BENCH_PUTS", 4000);
    let mib = env_or("STOWAGE_BENCH_MIB", 1024);
    let postgres = pg::Postgres::get();
    println!(
        "{puts} PUTs of 4 KiB from {THREADS} clients; one {mib} MiB multipart upload in 16 MiB parts, 4 at a time"
    );
    let mut baseline = None;
    for (name, url, n) in [
        ("1 node, redb", None, 1),
        ("1 node, PostgreSQL", Some(postgres.new_database()), 1),
        ("3 nodes, PostgreSQL", Some(postgres.new_database()), 3),
    ] {
        let s = setup(url.as_deref(), n);
        let addrs: Vec<SocketAddr> = s.nodes.iter().map(|(_, a)| *a).collect();
        let ops = small_puts(&addrs, puts);
        let mibs = multipart(&addrs, mib);
        let (b_ops, b_mibs) = *baseline.get_or_insert((ops, mibs));
        println!(
            "{name:<22} 4 KiB PUT {ops:>8.0}/s ({:.2}x)   multipart {mibs:>7.1} MiB/s ({:.2}x)",
            ops / b_ops,
            mibs / b_mibs
        );
    }
}
