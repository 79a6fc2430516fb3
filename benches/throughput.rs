//! Throughput benchmark: PutObject, GetObject and CompleteMultipartUpload
//! against the release server, reported as ratios to baselines measured in
//! the same run on the same disk (a plain file write with fsync, a plain
//! file read, and MD5 over the same bytes).
//!
//! Run: `cargo bench --bench throughput` (size: `STOWAGE_BENCH_MIB`, default
//! 256). Each figure is the best of three runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

const CHUNK: usize = 1 << 20;

fn best_of_3(mut f: impl FnMut() -> Duration) -> Duration {
    (0..3).map(|_| f()).min().expect("three runs")
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn request(addr: SocketAddr, head: &str, body: &[u8], total: usize) -> (String, usize) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    s.write_all(head.as_bytes()).expect("head");
    let mut sent = 0;
    while sent < total {
        let n = CHUNK.min(total - sent);
        s.write_all(&body[..n]).expect("body");
        sent += n;
    }
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status");
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        status.push_str(&line);
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0u8; CHUNK];
    let mut read = 0;
    let mut last = Vec::new();
    while read < len {
        let n = reader.read(&mut buf).expect("body");
        if n == 0 {
            break;
        }
        if len < 4096 {
            last.extend_from_slice(&buf[..n]);
        }
        read += n;
    }
    (status + &String::from_utf8_lossy(&last), read)
}

fn main() {
    let mib: usize = std::env::var("STOWAGE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let size = mib << 20;
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let dir = tempfile::tempdir().expect("temp dir");

    // Baselines on the same disk.
    let path = dir.path().join("baseline");
    let disk_write = best_of_3(|| {
        let t = Instant::now();
        let mut f = File::create(&path).unwrap();
        for _ in 0..mib {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
        t.elapsed()
    });
    let disk_read = best_of_3(|| {
        let t = Instant::now();
        let mut f = File::open(&path).unwrap();
        let mut buf = vec![0u8; CHUNK];
        while f.read(&mut buf).unwrap() > 0 {}
        t.elapsed()
    });
    let md5 = best_of_3(|| {
        let t = Instant::now();
        let mut h = Md5::new();
        for _ in 0..mib {
            h.update(&chunk);
        }
        std::hint::black_box(h.finalize());
        t.elapsed()
    });
    std::fs::remove_file(&path).ok();

    // The server.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn,stowage=info\"\n",
            dir.path().join("data").display().to_string()
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
    std::thread::spawn(move || for _ in lines {});
    request(
        addr,
        "PUT /bench HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        &[],
        0,
    );

    let put = best_of_3(|| {
        let t = Instant::now();
        let head = format!("PUT /bench/obj HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        let (status, _) = request(addr, &head, &chunk, size);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        t.elapsed()
    });
    let get = best_of_3(|| {
        let t = Instant::now();
        let (status, n) = request(addr, "GET /bench/obj HTTP/1.1\r\nHost: x\r\n\r\n", &[], 0);
        assert!(
            status.starts_with("HTTP/1.1 200") && n == size,
            "{status} {n}"
        );
        t.elapsed()
    });

    // Multipart: four parts of size/4 each; completion copies no bytes, so
    // it should cost about what a tiny PutObject costs.
    let part = size / 4;
    let small_put = best_of_3(|| {
        let t = Instant::now();
        request(
            addr,
            "PUT /bench/tiny HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
            &[],
            0,
        );
        t.elapsed()
    });
    let complete = best_of_3(|| {
        let (body, _) = request(
            addr,
            "POST /bench/mp?uploads HTTP/1.1\r\nHost: x\r\n\r\n",
            &[],
            0,
        );
        let id = body
            .split("<UploadId>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned();
        let mut xml = String::from("<CompleteMultipartUpload>");
        for n in 1..=4 {
            let head = format!(
                "PUT /bench/mp?partNumber={n}&uploadId={id} HTTP/1.1\r\nHost: x\r\nContent-Length: {part}\r\n\r\n"
            );
            let (status, _) = request(addr, &head, &chunk, part);
            let etag = status
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("etag"))
                .map(|l| l[5..].trim().to_owned())
                .unwrap_or_default();
            xml += &format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>");
        }
        xml += "</CompleteMultipartUpload>";
        let head = format!(
            "POST /bench/mp?uploadId={id} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{xml}",
            xml.len()
        );
        let t = Instant::now();
        let (status, _) = request(addr, &head, &[], 0);
        let elapsed = t.elapsed();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        elapsed
    });
    let _ = child.kill();
    let _ = child.wait();

    println!("object size: {mib} MiB (best of 3)");
    println!(
        "baseline file write+fsync: {:8.1} MiB/s",
        mib_per_s(size, disk_write)
    );
    println!(
        "baseline file read:        {:8.1} MiB/s",
        mib_per_s(size, disk_read)
    );
    println!(
        "baseline md5:              {:8.1} MiB/s",
        mib_per_s(size, md5)
    );
    println!(
        "PutObject:                 {:8.1} MiB/s  ratio to file write {:.2}, to md5 {:.2}",
        mib_per_s(size, put),
        disk_write.as_secs_f64() / put.as_secs_f64(),
        md5.as_secs_f64() / put.as_secs_f64()
    );
    println!(
        "GetObject:                 {:8.1} MiB/s  ratio to file read  {:.2}",
        mib_per_s(size, get),
        disk_read.as_secs_f64() / get.as_secs_f64()
    );
    println!(
        "CompleteMultipartUpload of {mib} MiB: {:.2} ms; 1-byte PutObject: {:.2} ms; ratio {:.2}",
        complete.as_secs_f64() * 1e3,
        small_put.as_secs_f64() * 1e3,
        complete.as_secs_f64() / small_put.as_secs_f64()
    );
}
