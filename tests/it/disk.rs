//! A full disk: writes below the free-space floor are refused with 507 and
//! store nothing; reads, deletes and the collector keep working; writes work
//! again once space is freed, without a restart. Readiness says so.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{DEV_KEY, DEV_SECRET, RawResponse, Server, random_bytes, sign};

/// A PUT as the SDKs send large ones, with `Expect: 100-continue`: the body
/// goes only once the server says so, so a refusal before the body reaches
/// the client whole (a refused raw body would meet a closed socket).
fn put(server: &Server, key: &str, body: &[u8]) -> RawResponse {
    let head = format!(
        "PUT /disk/{key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let head = sign(head.as_bytes(), DEV_KEY, DEV_SECRET);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&head).unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).unwrap();
    let mut buf = first.to_vec();
    if first.starts_with(b"HTTP/1.1 100") {
        stream.write_all(body).unwrap();
    }
    let _ = stream.read_to_end(&mut buf);
    RawResponse::parse(&buf)
}

fn get(server: &Server, path: &str) -> RawResponse {
    server.raw(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// The floor set above the disk's free space: as a full disk looks to the
/// server, on any machine.
#[test]
fn below_the_floor_writes_are_refused_and_everything_else_works() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = Server::start_in(dir.path(), "");
        let r = server.raw(
            b"PUT /disk HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        assert_eq!(put(&server, "kept", b"kept bytes").status, 200);
        assert_eq!(put(&server, "doomed", b"to delete").status, 200);
        let created = server.raw(
            b"POST /disk/mp?uploads HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(created.status, 200);
        let xml = created.body_str();
        let id = xml
            .split("<UploadId>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        std::fs::write(dir.path().join("upload-id"), id).unwrap();
    }
    let server = Server::start_in(dir.path(), "min_free_bytes = 4611686018427387904");
    let r = put(&server, "new", &random_bytes(100_000, 1));
    assert_eq!((r.status, r.code().as_str()), (507, "InsufficientStorage"));
    assert!(
        r.body_str().contains("nothing was stored"),
        "{}",
        r.body_str()
    );
    assert_eq!(server.tmp_files(), 0);
    assert_eq!(get(&server, "/disk/new").status, 404);
    // A part copied from a stored object brings new bytes too: refused the
    // same way (it once streamed past the floor).
    let id = std::fs::read_to_string(dir.path().join("upload-id")).unwrap();
    let copy = format!(
        "PUT /disk/mp?partNumber=1&uploadId={id} HTTP/1.1\r\nHost: localhost\r\nx-amz-copy-source: /disk/kept\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let r = server.raw(copy.as_bytes());
    assert_eq!((r.status, r.code().as_str()), (507, "InsufficientStorage"));
    let parts = server.raw(
        format!(
            "GET /disk/mp?uploadId={id} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(parts.status, 200);
    assert!(!parts.body_str().contains("<Part>"), "{}", parts.body_str());
    assert_eq!(server.tmp_files(), 0);
    assert_eq!(get(&server, "/disk/kept").body, b"kept bytes");
    let r =
        server.raw(b"DELETE /disk/doomed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 204, "deletes work on a full disk");
    assert_eq!(get(&server, "/disk/doomed").status, 404);
    let ready = get(&server, "/_stowage/health/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.body_str().contains("disk"), "{}", ready.body_str());
    assert_eq!(get(&server, "/_stowage/health/live").status, 200);
}

#[test]
fn health_answers_without_credentials() {
    let server = Server::start();
    for path in ["/_stowage/health/live", "/_stowage/health/ready"] {
        let r = server.raw_unsigned(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body_str());
    }
}

/// A real small filesystem, filled by uploads: needs root to mount tmpfs
/// (CI runs as root).
#[test]
fn a_real_full_disk_refuses_then_recovers_without_a_restart() {
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "a_real_full_disk_refuses_then_recovers_without_a_restart: needs root to mount tmpfs; the floor itself is tested above"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    let server = Server::start_in(
        dir.path(),
        "min_free_bytes = 8388608\ngc_grace_secs = 0\ngc_interval_secs = 1",
    );
    let r = server.raw(
        b"PUT /disk HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let mut stored = Vec::new();
    let refused = loop {
        let body = random_bytes(4 << 20, stored.len() as u64);
        let key = format!("o{}", stored.len());
        let r = put(&server, &key, &body);
        match r.status {
            200 => stored.push((key, body)),
            _ => break r,
        }
        assert!(stored.len() < 20, "48 MiB should fill");
    };
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (507, "InsufficientStorage")
    );
    assert!(stored.len() >= 5, "{} objects fit", stored.len());
    for (key, body) in &stored {
        assert!(
            get(&server, &format!("/disk/{key}")).body == *body,
            "{key} intact"
        );
    }
    assert_eq!(server.tmp_files(), 0, "the refused body left nothing");
    // Free space by deleting; the collector unlinks; writes work again.
    for (key, _) in stored.drain(..3) {
        let r = server.raw(
            format!("DELETE /disk/{key} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 204);
    }
    let start = Instant::now();
    loop {
        let r = put(&server, "after", &random_bytes(4 << 20, 99));
        if r.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "space never came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&server, "/_stowage/health/ready").status, 200);
}
