//! Slow and hostile clients: thousands of idle connections, half-sent
//! request heads, bodies that trickle. Each attacker connects from its own
//! loopback address (127.0.0.x); through all of it a normal client from
//! 127.0.0.1 is served within a second, and afterwards nothing is left
//! behind: descriptors, temporary files, memory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{Server, signed};

pub(crate) async fn connect_from(
    source: [u8; 4],
    server: SocketAddr,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(source)), 0))?;
    socket.connect(server).await
}

fn open_fds(server: &Server) -> usize {
    let pid = server.pid();
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A signed GET of a small object from 127.0.0.1, timed.
async fn normal_get(server: &Server) -> (u16, Duration) {
    let start = Instant::now();
    let request = signed(b"GET /calm/k HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(&request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf)).await;
    let status = String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slowloris_and_trickling_clients_do_not_starve_a_normal_one() {
    stowage::app::raise_fd_limit();
    let server = Server::start_with(
        "header_timeout_secs = 2\nmin_body_rate = 1024\nbody_rate_grace_secs = 2\nmax_connections_per_ip = 300",
    );
    let r = server.raw(
        b"PUT /calm HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = server.raw(
        b"PUT /calm/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    assert_eq!(r.status, 200);
    let fds_before = open_fds(&server);
    let (_, peak_before) = server.memory_kib();

    // 2,000 idle connections from one address: 300 are admitted (and time
    // out), the rest are closed as they arrive.
    let mut idle = Vec::new();
    for _ in 0..2000 {
        if let Ok(c) = connect_from([127, 0, 0, 3], server.addr).await {
            idle.push(c);
        }
    }
    // 500 half-sent heads.
    let mut heads = Vec::new();
    for i in 0..500 {
        let source = [127, 0, 0, 4 + (i % 2) as u8];
        let mut c = connect_from(source, server.addr).await.unwrap();
        let _ = c
            .write_all(b"PUT /calm/slow HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await;
        heads.push(c);
    }
    // 50 signed PUTs that send a byte and then trickle nothing.
    let mut trickles = Vec::new();
    for i in 0..50 {
        let head = format!(
            "PUT /calm/trickle{i} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n"
        );
        let mut c = connect_from([127, 0, 0, 6], server.addr).await.unwrap();
        c.write_all(&signed(head.as_bytes())).await.unwrap();
        c.write_all(b"x").await.unwrap();
        trickles.push(c);
    }

    // A normal client is served promptly throughout.
    for _ in 0..5 {
        let (status, took) = normal_get(&server).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "served in {took:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The trickling bodies are dropped with S3's 400 RequestTimeout once
    // their grace is over.
    let mut timed_out = 0;
    for c in &mut trickles {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf)).await;
        let answer = String::from_utf8_lossy(&buf);
        if answer.starts_with("HTTP/1.1 400") && answer.contains("<Code>RequestTimeout</Code>") {
            timed_out += 1;
        }
    }
    assert_eq!(
        timed_out, 50,
        "every trickling body answered RequestTimeout"
    );
    // The idle connections and half-sent heads are closed by the server.
    // Closed: reads end (or fail). Open: nothing to read yet.
    let closed = |c: &TcpStream| {
        let mut byte = [0u8; 1];
        !matches!(c.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = idle
            .iter()
            .chain(heads.iter())
            .filter(|c| !closed(c))
            .count();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} attacker connections still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((idle, heads, trickles));

    // Nothing leaked. On PostgreSQL the connection pool (16 per node) grows
    // as requests overlap: those connections are kept, by design.
    let pool = if crate::pg::selected() { 16 } else { 0 };
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(&server) > fds_before + 5 + pool {
        assert!(
            Instant::now() < deadline,
            "descriptors: {} then {}",
            fds_before,
            open_fds(&server)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.tmp_files(), 0, "no temporary file left");
    let (_, peak_after) = server.memory_kib();
    assert!(
        peak_after < peak_before + 64 * 1024,
        "peak memory {peak_before} KiB -> {peak_after} KiB"
    );
    let (status, took) = normal_get(&server).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1));
    let log = server.log();
    let warnings = log.matches("connection limit reached").count();
    assert_eq!(
        warnings, 1,
        "the refusals are logged once, not per connection"
    );
}

/// Issue 18, item 8: a server on a loopback address answers only loopback
/// host names and its domain, so a page whose DNS name rebinds to
/// 127.0.0.1 reaches nothing; and the public development credential never
/// serves a non-loopback address.
#[test]
fn a_loopback_server_refuses_foreign_host_names() {
    let server = Server::start_with_config("domain = \"s3.test\"", "");
    let get = |host: &str| {
        server
            .raw(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
    };
    for host in [
        "attacker.example",
        "attacker.example:9000",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "s3.test.evil",
        "[::1]evil.example",
        "localhost:80x",
    ] {
        let r = get(host);
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "AccessDenied"),
            "{host}"
        );
    }
    // Malformed ways of naming a host fail closed: a Host that is not
    // text, a second Host, a request target naming another authority.
    for request in [
        &b"GET / HTTP/1.1\r\nHost: evil\xff.example\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
        b"GET http://attacker.example/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ] {
        let r = server.raw_unsigned(request);
        assert!(
            r.status == 403 || r.status == 400,
            "{}: {}",
            String::from_utf8_lossy(request),
            r.status
        );
    }
    let port = server.addr.port();
    for host in [
        "localhost".to_owned(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "127.0.0.2".to_owned(),
        format!("[::1]:{port}"),
        "app.localhost".to_owned(),
        "s3.test".to_owned(),
        "photos.s3.test:9000".to_owned(),
    ] {
        // Signed as the development key; `photos` is a bucket that does
        // not exist.
        let r = get(&host);
        let want = if host.starts_with("photos.") {
            404
        } else {
            200
        };
        assert_eq!(r.status, want, "{host}: {}", r.body_str());
    }
}

#[test]
fn the_development_credential_never_serves_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("STOWAGE_ACCESS_KEY_ID")
        .env_remove("STOWAGE_SECRET_ACCESS_KEY")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STOWAGE_ACCESS_KEY_ID"), "{err}");
    assert!(
        !dir.path().join("meta.redb").exists(),
        "refused before it made anything"
    );
}

/// `n` connections from four addresses (127.0.0.`first`..`first + 3`),
/// each sending `head` and nothing more; those the server took.
async fn flood(server: &Server, first: u8, n: usize, head: &[u8]) -> Vec<TcpStream> {
    let mut open = Vec::new();
    for i in 0..n {
        let source = [127, 0, 0, first + (i % 4) as u8];
        if let Ok(mut c) = connect_from(source, server.addr).await {
            let _ = c.write_all(head).await;
            open.push(c);
        }
    }
    open
}

/// Issue 18, item 9: with room for 40 connections, half-sent request heads
/// from a few addresses once took every place, and a client from another
/// address was reset. One address now gets at most a quarter of the
/// places, and at capacity the oldest connection that is not serving a
/// request is shed for the newcomer; a request in flight is never shed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_cannot_take_every_place() {
    let server = Server::start_with("max_connections = 40\nmin_body_rate = 0");
    let r = server.raw(
        b"PUT /calm HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = server.raw(
        b"PUT /calm/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    assert_eq!(r.status, 200);
    // A slow upload in flight: its head is in, its body comes later.
    let mut busy = connect_from([127, 0, 0, 20], server.addr).await.unwrap();
    let head = b"PUT /calm/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\n";
    busy.write_all(&signed(head)).await.unwrap();
    busy.write_all(b"ab").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 100 half-sent heads from four addresses.
    let heads = flood(
        &server,
        30,
        100,
        b"GET /calm/k HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One address holds at most a quarter of the 40 places.
    let held = |heads: &[TcpStream]| {
        heads
            .iter()
            .filter(|c| {
                let mut byte = [0u8; 1];
                matches!(c.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count()
    };
    assert!(held(&heads) <= 40, "{} heads held", held(&heads));
    for _ in 0..3 {
        let (status, took) = normal_get(&server).await;
        assert_eq!(status, 200, "a normal client gets in");
        assert!(took < Duration::from_secs(1), "served in {took:?}");
    }
    // Form POSTs whose heads are in but whose fields (and signature) never
    // come are not serving anyone yet: they are shed too.
    drop(heads);
    let mut forms = flood(&server, 40, 60, b"POST /calm HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000\r\n\r\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, took) = normal_get(&server).await;
    assert_eq!(status, 200, "a normal client gets past unsigned forms");
    assert!(took < Duration::from_secs(1), "served in {took:?}");
    // A client's kept-alive connection that has served a request outlives
    // connections that never did.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    let get = signed(b"GET /calm/k HTTP/1.1\r\nHost: localhost\r\n\r\n");
    kept.write_all(&get).await.unwrap();
    // One whole response: its head, then the 2-byte object.
    async fn response(c: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"\r\n\r\nok") {
            let read = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        got
    }
    assert!(response(&mut kept).await.starts_with(b"HTTP/1.1 200"));
    forms.extend(flood(&server, 50, 60, b"GET /calm/k HTTP/1.1\r\nX-Slow: ").await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    kept.write_all(&get).await.unwrap();
    let again = response(&mut kept).await;
    assert!(
        again.starts_with(b"HTTP/1.1 200"),
        "the kept-alive connection was shed: {:?}",
        String::from_utf8_lossy(&again)
    );
    drop(forms);

    // The upload in flight was not shed.
    busy.write_all(b"cd").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), busy.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// A form POST needs no preflight, so CORS alone cannot keep a page
/// elsewhere from storing through a development server, whose secret is
/// public: its POSTs from origins the CORS rules do not allow are refused.
#[test]
fn a_development_server_refuses_posts_from_foreign_pages() {
    let server = Server::start();
    let r = server.raw(
        b"PUT /site HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let boundary = "----page";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nindex.html\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n<script>1</script>\r\n\
         --{boundary}--\r\n"
    );
    let post = |origin: &str| {
        let request = format!(
            "POST /site HTTP/1.1\r\nHost: 127.0.0.1\r\n{origin}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        server.raw_unsigned(request.as_bytes())
    };
    for origin in ["https://evil.example", "null"] {
        let r = post(&format!("Origin: {origin}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "AccessDenied"),
            "{origin}"
        );
        assert!(
            r.body_str().contains("development server"),
            "{}",
            r.body_str()
        );
    }
    // A browser that sends no Origin still says where the page is.
    let r = post("Sec-Fetch-Site: cross-site");
    assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"));
    let r = server
        .raw(b"HEAD /site/index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 404, "nothing was stored");
    // A page on a loopback origin gets as far as the bucket's own rules
    // (anonymous writes are not among them).
    let r = post("Origin: http://localhost:5173");
    assert_eq!(r.status, 403);
    assert!(
        !r.body_str().contains("development server"),
        "{}",
        r.body_str()
    );
}
