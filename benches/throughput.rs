//! Throughput benchmark: PutObject (in each SigV4 payload mode), GetObject
//! and CompleteMultipartUpload against the release server, reported as
//! ratios to baselines measured in the same run on the same disk (a plain
//! file write with fsync, a plain file read, and the hashes over the same
//! bytes on one core).
//!
//! Run: `cargo bench --bench throughput` (size: `STOWAGE_BENCH_MIB`, default
//! 256). Each figure is the best of three runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{SIGNER, sign, signed};
use md5::{Digest, Md5};
use stowage::auth::sigv4;

mod common;

const CHUNK: usize = 1 << 20;
/// The chunk size of signed aws-chunked uploads (aws-sdk-rust's).
const SIGNED_CHUNK: usize = 64 << 10;
/// A PutObject of `size` bytes (whole `SIGNED_CHUNK`s of `piece`) as a
/// STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, each chunk signed as it is sent.
fn put_signed_chunks(addr: SocketAddr, piece: &[u8], size: usize) -> String {
    let chunks = size / SIGNED_CHUNK;
    let frame = |len: usize| format!("{len:x};chunk-signature=").len() + 64 + 4 + len;
    let encoded = chunks * frame(SIGNED_CHUNK) + frame(0);
    let (head, seed) = sign(
        &format!(
            "PUT /bench/obj HTTP/1.1\r\nHost: localhost\r\nContent-Length: {encoded}\r\n\
             Content-Encoding: aws-chunked\r\nx-amz-decoded-content-length: {size}\r\n\r\n"
        ),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    );
    let now = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amz-date: "))
        .unwrap()
        .to_owned();
    let piece_hash = sigv4::sha256_hex(piece);
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    let mut out = std::io::BufWriter::with_capacity(CHUNK, s.try_clone().unwrap());
    out.write_all(head.as_bytes()).unwrap();
    let mut previous = seed;
    for _ in 0..chunks {
        previous = SIGNER.chunk_signature(&now, &previous, &piece_hash);
        write!(out, "{SIGNED_CHUNK:x};chunk-signature={previous}\r\n").unwrap();
        out.write_all(piece).unwrap();
        out.write_all(b"\r\n").unwrap();
    }
    let last = SIGNER.chunk_signature(&now, &previous, sigv4::EMPTY_SHA256);
    write!(out, "0;chunk-signature={last}\r\n\r\n").unwrap();
    out.flush().unwrap();
    drop(out);
    let mut status = String::new();
    BufReader::new(s).read_line(&mut status).unwrap();
    status
}

/// Throughput of `update` over `mib` MiB of `chunk`, best of three.
fn hash_rate(mib: usize, chunk: &[u8], mut update: impl FnMut(&[u8])) -> Duration {
    best_of_3(|| {
        let t = Instant::now();
        for _ in 0..mib {
            update(chunk);
        }
        t.elapsed()
    })
}

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
    std::fs::remove_file(&path).ok();

    // Hashing on one core: what PutObject computes (MD5 for the ETag plus
    // the CRC64NVME it stores), and what a signed payload adds (SHA-256).
    let mut h = Md5::new();
    let md5 = hash_rate(mib, &chunk, |c| h.update(c));
    std::hint::black_box(h.finalize());
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let crc64 = hash_rate(mib, &chunk, |c| crc.update(c));
    std::hint::black_box(crc.finalize());
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
    let crc32 = hash_rate(mib, &chunk, |c| crc.update(c));
    std::hint::black_box(crc.finalize());
    let mut sha = sha2::Sha256::new();
    let sha256 = hash_rate(mib, &chunk, |c| sha.update(c));
    std::hint::black_box(sha.finalize());
    let (mut h, mut crc) = (
        Md5::new(),
        crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
    );
    let md5_crc = hash_rate(mib, &chunk, |c| {
        h.update(c);
        crc.update(c);
    });
    std::hint::black_box((h.finalize(), crc.finalize()));

    // The server.
    let (mut child, addr) = common::start_server(dir.path(), "");
    request(
        addr,
        &signed("PUT /bench HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"),
        &[],
        0,
    );

    let put_head =
        format!("PUT /bench/obj HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n");
    let put = best_of_3(|| {
        let t = Instant::now();
        let (status, _) = request(addr, &signed(&put_head), &chunk, size);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        t.elapsed()
    });
    // A signed hex payload hash, as boto3, the aws CLI and s5cmd send over
    // plain HTTP (the client's own hashing is done before the clock starts).
    let body_sha256 = {
        let mut h = sha2::Sha256::new();
        for _ in 0..mib {
            h.update(&chunk);
        }
        sigv4::hex(&h.finalize())
    };
    let put_sha256 = best_of_3(|| {
        let head = sign(&put_head, &body_sha256).0;
        let t = Instant::now();
        let (status, _) = request(addr, &head, &chunk, size);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        t.elapsed()
    });
    // Signed 64 KiB chunks, as aws-sdk-rust streams a file over plain HTTP.
    let put_chunks = best_of_3(|| {
        let t = Instant::now();
        let status = put_signed_chunks(addr, &chunk[..SIGNED_CHUNK], size);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        t.elapsed()
    });
    let get = best_of_3(|| {
        let t = Instant::now();
        let (status, n) = request(
            addr,
            &signed("GET /bench/obj HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            &[],
            0,
        );
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
            &(signed("PUT /bench/tiny HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n")
                + "x"),
            &[],
            0,
        );
        t.elapsed()
    });
    let complete = best_of_3(|| {
        let (body, _) = request(
            addr,
            &signed("POST /bench/mp?uploads HTTP/1.1\r\nHost: localhost\r\n\r\n"),
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
                "PUT /bench/mp?partNumber={n}&uploadId={id} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {part}\r\n\r\n"
            );
            let (status, _) = request(addr, &signed(&head), &chunk, part);
            let etag = status
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("etag"))
                .map(|l| l[5..].trim().to_owned())
                .unwrap_or_default();
            xml += &format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>");
        }
        xml += "</CompleteMultipartUpload>";
        let head = signed(&format!(
            "POST /bench/mp?uploadId={id} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            xml.len()
        )) + &xml;
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
    for (name, d) in [
        ("md5", md5),
        ("crc64nvme", crc64),
        ("crc32", crc32),
        ("sha256", sha256),
        ("md5+crc64nvme", md5_crc),
    ] {
        println!(
            "hash {name:<14} (1 core): {:8.1} MiB/s  ratio to file write {:.2}",
            mib_per_s(size, d),
            disk_write.as_secs_f64() / d.as_secs_f64()
        );
    }
    for (name, d) in [
        ("UNSIGNED-PAYLOAD", put),
        ("hex sha256", put_sha256),
        ("signed chunks", put_chunks),
    ] {
        println!(
            "PutObject {name:<16}: {:8.1} MiB/s  ratio to file write {:.2}, to md5+crc {:.2}",
            mib_per_s(size, d),
            disk_write.as_secs_f64() / d.as_secs_f64(),
            md5_crc.as_secs_f64() / d.as_secs_f64()
        );
    }
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
