//! Store benchmark: small-object rates and latencies, multipart completion,
//! a listing page from a large bucket, start-up time and the server's peak
//! memory, each beside a baseline from the same run.
//!
//! Run: `cargo bench --bench store`. `STOWAGE_BENCH_KEYS` sets the size of
//! the large bucket (default 1,000,000); `STOWAGE_BENCH_PARTS` the large
//! completion (default 10,000).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{signed, start_server, start_server_logged};
use stowage::checksum::{Algorithm, Checksum, ChecksumType};
use stowage::store::meta::MetaStore;
use stowage::store::model::{Acl, Body, ObjectHead, ObjectMeta, WriteCondition};

mod common;

/// One keep-alive connection speaking signed HTTP/1.1.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).ok();
        Conn {
            reader: BufReader::new(s),
        }
    }

    /// Sends a request (head unsigned; it is signed here) and returns the
    /// status and body.
    fn send(&mut self, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let s = self.reader.get_mut();
        s.write_all(signed(head).as_bytes()).expect("head");
        s.write_all(body).expect("body");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status");
        let status: u16 = line.split(' ').nth(1).expect("status").parse().unwrap();
        let mut len = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).expect("body");
        (status, body)
    }
}

struct Rate {
    ops_per_s: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `ops` requests on `threads` connections; `request(conn, i)` makes
/// request `i`.
fn concurrent(
    addr: SocketAddr,
    threads: usize,
    ops: usize,
    request: impl Fn(&mut Conn, usize) + Sync,
) -> Rate {
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let request = &request;
                s.spawn(move || {
                    let mut conn = Conn::open(addr);
                    let mut own = Vec::new();
                    for i in (t..ops).step_by(threads) {
                        let at = Instant::now();
                        request(&mut conn, i);
                        own.push(at.elapsed());
                    }
                    own
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    latencies.sort();
    Rate {
        ops_per_s: ops as f64 / elapsed.as_secs_f64(),
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
    }
}

fn peak_rss_mib(child: &Child) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Uploads `parts` one-byte parts and times the CompleteMultipartUpload.
fn complete(addr: SocketAddr, key: &str, parts: usize) -> Duration {
    let mut conn = Conn::open(addr);
    let (_, body) = conn.send(
        &format!("POST /bench/{key}?uploads HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        &[],
    );
    let body = String::from_utf8(body).unwrap();
    let id = body
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let etags: Vec<std::sync::Mutex<String>> = (0..parts).map(|_| Default::default()).collect();
    concurrent(addr, 8, parts, |conn, i| {
        let head = format!(
            "PUT /bench/{key}?partNumber={}&uploadId={id} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n",
            i + 1
        );
        let (status, _) = conn.send(&head, b"x");
        assert_eq!(status, 200);
        *etags[i].lock().unwrap() = "\"9dd4e461268c8034f5c8564e155c67a6\"".into();
    });
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (n, etag) in etags.iter().enumerate() {
        let etag = etag.lock().unwrap();
        xml += &format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
            n + 1
        );
    }
    xml += "</CompleteMultipartUpload>";
    let head = format!(
        "POST /bench/{key}?uploadId={id} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        xml.len()
    );
    let t = Instant::now();
    let (status, body) = conn.send(&head, xml.as_bytes());
    let elapsed = t.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    elapsed
}

/// Fills bucket `many` with `keys` empty objects through the engine itself
/// (HTTP would take minutes), many changes in flight so that they batch.
fn fill(data_dir: &std::path::Path, keys: usize) -> Duration {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        std::fs::create_dir_all(data_dir).unwrap();
        let meta = Arc::new(stowage::store::redb::RedbMeta::open(data_dir, 60_000).unwrap());
        meta.create_bucket("many", "stowage", Acl::Private)
            .await
            .unwrap();
        let head = ObjectHead {
            size: 0,
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
            last_modified_ms: 0,
            meta: ObjectMeta::default(),
            upload_id: None,
            checksum: Some(Checksum {
                algorithm: Algorithm::Crc64Nvme,
                value: "AAAAAAAAAAA=".into(),
            }),
            checksum_type: ChecksumType::FullObject,
            body: Body::Inline,
            tags: Vec::new(),
            acl: Acl::Private,
        };
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..keys {
            let (meta, head) = (Arc::clone(&meta), head.clone());
            tasks.spawn(async move {
                let key = format!("dir-{:03}/key-{i:07}", i % 1000);
                let bytes = Some(bytes::Bytes::new());
                meta.put_object("many", &key, head, bytes, WriteCondition::None)
                    .await
                    .unwrap();
            });
            if tasks.len() >= 1024 {
                tasks.join_next().await;
            }
        }
        tasks.join_all().await;
        t.elapsed()
    })
}

fn main() {
    let keys = env_or("STOWAGE_BENCH_KEYS", 1_000_000);
    let big_parts = env_or("STOWAGE_BENCH_PARTS", 10_000);
    let dir = tempfile::tempdir().expect("temp dir");

    // Baseline: what one fsynced 4 KiB file costs, one after another.
    let page = vec![7u8; 4096];
    let n = 300;
    let t = Instant::now();
    for i in 0..n {
        let mut f = File::create(dir.path().join(format!("baseline-{i}"))).unwrap();
        f.write_all(&page).unwrap();
        f.sync_all().unwrap();
    }
    let fsync_rate = n as f64 / t.elapsed().as_secs_f64();

    let (mut server, addr, completions) = start_server_logged(
        dir.path(),
        "min_part_size = 1",
        "op=CompleteMultipartUpload",
    );
    Conn::open(addr).send(
        "PUT /bench HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        &[],
    );
    let mut puts = Vec::new();
    for (size, ops) in [(4096usize, 8000usize), (16 << 10, 4000), (32 << 10, 2000)] {
        let body = vec![b'x'; size];
        let rate = concurrent(addr, 8, ops, |conn, i| {
            let head = format!(
                "PUT /bench/s{size}/{i} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n"
            );
            assert_eq!(conn.send(&head, &body).0, 200);
        });
        puts.push((size, rate));
    }
    let get = concurrent(addr, 8, 40_000, |conn, i| {
        let head = format!(
            "GET /bench/s4096/{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
            i % 8000
        );
        let (status, body) = conn.send(&head, &[]);
        assert!(status == 200 && body.len() == 4096);
    });
    let complete_100 = (0..3)
        .map(|i| complete(addr, &format!("c100-{i}"), 100))
        .min()
        .unwrap();
    let complete_big = complete(addr, "cbig", big_parts);
    let peak_small = peak_rss_mib(&server);
    // What the access log says the server spent on each completion.
    let server_ms: Vec<f64> = completions
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| {
            l.split(" ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let _ = server.kill();
    let _ = server.wait();

    // A large bucket: its fill, a clean open, a listing page, an open after
    // kill -9.
    let big = tempfile::tempdir().expect("temp dir");
    let filled = fill(&big.path().join("data"), keys);
    let t = Instant::now();
    let (mut server, addr) = start_server(big.path(), "");
    let open_clean = t.elapsed();
    let mut conn = Conn::open(addr);
    let list = |conn: &mut Conn, after: &str| {
        let t = Instant::now();
        let head = format!(
            "GET /many?list-type=2&max-keys=1000&start-after={after} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        let (status, body) = conn.send(&head, &[]);
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8_lossy(&body).matches("<Contents>").count(),
            1000
        );
        t.elapsed()
    };
    // From the middle of the bucket.
    let list_page = (0..5).map(|_| list(&mut conn, "dir-500/")).min().unwrap();
    let peak_big = peak_rss_mib(&server);
    // A write in flight when the process dies.
    conn.send(
        "PUT /many/last HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n",
        b"x",
    );
    let _ = server.kill();
    let _ = server.wait();
    let t = Instant::now();
    let (mut server, addr) = start_server(big.path(), "");
    let open_crashed = t.elapsed();
    let _ = list(&mut Conn::open(addr), "dir-500/");
    let _ = server.kill();
    let _ = server.wait();

    println!("baseline: serial 4 KiB write+fsync: {fsync_rate:.0}/s");
    for (size, r) in &puts {
        println!(
            "PutObject {:>2} KiB, 8 connections: {:7.0}/s ({:5.1}x baseline)  p50 {:.2} ms  p99 {:.2} ms",
            size / 1024,
            r.ops_per_s,
            r.ops_per_s / fsync_rate,
            ms(r.p50),
            ms(r.p99)
        );
    }
    println!(
        "GetObject  4 KiB, 8 connections: {:7.0}/s ({:5.1}x baseline)  p50 {:.2} ms  p99 {:.2} ms",
        get.ops_per_s,
        get.ops_per_s / fsync_rate,
        ms(get.p50),
        ms(get.p99)
    );
    println!(
        "CompleteMultipartUpload: 100 parts {:.1} ms, {big_parts} parts {:.1} ms (client-side)",
        ms(complete_100),
        ms(complete_big)
    );
    if let [a, b, c, big] = server_ms[..] {
        println!(
            "CompleteMultipartUpload, server-side (access log): 100 parts {:.1} ms, {big_parts} parts {big:.1} ms",
            a.min(b).min(c)
        );
    }
    println!(
        "{keys} keys: filled in {:.1} s through the engine; ListObjectsV2 page of 1000: {:.1} ms",
        filled.as_secs_f64(),
        ms(list_page)
    );
    println!(
        "open at {keys} keys: {:.0} ms after a clean stop, {:.0} ms after kill -9",
        ms(open_clean),
        ms(open_crashed)
    );
    println!(
        "server peak RSS: {peak_small:.1} MiB (small objects, completions), {peak_big:.1} MiB ({keys}-key bucket)"
    );
}
