//! HTTPS: the configured certificate is what clients see, SIGHUP swaps it
//! for new connections without dropping open ones, and a reload that fails
//! keeps the old certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::harness::{DEV_KEY, DEV_SECRET, Server, sign};

/// A new self-signed certificate for 127.0.0.1, written where the server
/// reads it.
fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    made.cert.der().clone()
}

/// A TLS connection that trusts only `root`.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
}

/// Sends a signed request on `conn` and returns the response's status.
async fn status(conn: &mut TlsStream<TcpStream>, request: &str) -> u16 {
    conn.write_all(&sign(request.as_bytes(), DEV_KEY, DEV_SECRET))
        .await
        .unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.unwrap();
    status
}

fn peer(conn: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    conn.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

async fn wait_for_log(server: &Server, what: &str) {
    let start = Instant::now();
    while !server.log().contains(what) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {what:?} in the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn https_serves_the_configured_certificate_and_reloads_it_on_sighup() {
    let certs = tempfile::tempdir().unwrap();
    let first = write_cert(certs.path());
    let top = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
        certs.path().join("cert.pem"),
        certs.path().join("key.pem")
    );
    let server = Server::start_with_config(&top, "");
    assert!(server.log().contains("listening on https://"));

    let mut old = connect(server.addr, &first).await.unwrap();
    assert!(peer(&old) == first);
    let create = "PUT /tls HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(status(&mut old, create).await, 200);

    let second = write_cert(certs.path());
    server.hangup();
    wait_for_log(&server, "TLS pair reloaded").await;
    let mut new = connect(server.addr, &second).await.unwrap();
    assert!(peer(&new) == second);
    let list = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_eq!(status(&mut new, list).await, 200);
    assert!(
        connect(server.addr, &first).await.is_err(),
        "new connections no longer get the old certificate"
    );
    // The connection opened before the reload is still served.
    assert_eq!(status(&mut old, list).await, 200);

    // A reload that fails keeps the certificate that works.
    std::fs::write(certs.path().join("cert.pem"), "not a certificate").unwrap();
    server.hangup();
    wait_for_log(&server, "reload refused").await;
    let mut after = connect(server.addr, &second).await.unwrap();
    assert_eq!(status(&mut after, list).await, 200);

    // Plain HTTP on the HTTPS port gets a readable answer, even with a
    // body it never reads.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    let put = "PUT /tls/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 65536\r\n\r\n";
    plain.write_all(put.as_bytes()).await.unwrap();
    let _ = plain.write_all(&[b'x'; 65536]).await;
    let mut answer = String::new();
    plain.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("This port speaks HTTPS"), "{answer}");
}

/// Issue 19: connections that never finish (or never begin) a TLS
/// handshake count against the caps, and are shed for newcomers like
/// any other connection that has served nothing; a client with a real
/// request still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_on_the_https_port_are_held_to_the_cap() {
    let certs = tempfile::tempdir().unwrap();
    let cert = write_cert(certs.path());
    let top = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\nmetrics_listen = \"127.0.0.1:0\"\n",
        certs.path().join("cert.pem"),
        certs.path().join("key.pem")
    );
    let server = Server::start_with_config(&top, "max_connections = 16");
    let mut silent = Vec::new();
    for i in 0..60u8 {
        let source = [127, 0, 0, 2 + i / 4];
        if let Ok(c) = crate::hostile::connect_from(source, server.addr).await {
            silent.push(c);
        }
    }
    let mut conn = connect(server.addr, &cert).await.unwrap();
    assert_eq!(
        status(&mut conn, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await,
        200
    );
    let text = crate::harness::scrape(&server);
    let open = text
        .lines()
        .find_map(|l| l.strip_prefix("stowage_connections_open "));
    let open: u64 = open.unwrap().parse().unwrap();
    assert!(open <= 16, "{open} connections open, cap 16");
    assert!(text.contains("stowage_connections_shed_total"), "{text}");
    drop(silent);
}

/// aws-sdk-s3 over HTTPS, trusting only the test's certificate: over TLS it
/// streams file bodies as `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with a CRC32
/// trailer, which Stowage checks; single and multipart uploads read back
/// byte for byte.
#[tokio::test]
async fn the_rust_sdk_uploads_over_https_with_unsigned_trailers() {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

    let certs = tempfile::tempdir().unwrap();
    write_cert(certs.path());
    let top = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
        certs.path().join("cert.pem"),
        certs.path().join("key.pem")
    );
    let server = Server::start_with_config(&top, "");
    let pem = std::fs::read(certs.path().join("cert.pem")).unwrap();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
                .build()
                .unwrap(),
        )
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("https://{}", server.addr))
        .force_path_style(true)
        .credentials_provider(Credentials::new(DEV_KEY, DEV_SECRET, None, None, "test"))
        .http_client(http)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);

    s3.create_bucket().bucket("secure").send().await.unwrap();
    let small = crate::harness::random_bytes(300_000, 1);
    s3.put_object()
        .bucket("secure")
        .key("small")
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .unwrap();
    let parts = [
        crate::harness::random_bytes(5 << 20, 2),
        crate::harness::random_bytes(1 << 20, 3),
    ];
    // Bodies streamed from files go as aws-chunked with a trailer; bytes
    // in memory are signed whole.
    let files: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let path = certs.path().join(format!("part{i}"));
            std::fs::write(&path, data).unwrap();
            path
        })
        .collect();
    let upload = s3
        .create_multipart_upload()
        .bucket("secure")
        .key("big")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut done = CompletedMultipartUpload::builder();
    for (i, file) in files.iter().enumerate() {
        let n = i as i32 + 1;
        let part = s3
            .upload_part()
            .bucket("secure")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from_path(file).await.unwrap())
            .send()
            .await
            .unwrap();
        done = done.parts(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().unwrap())
                .set_checksum_crc32(part.checksum_crc32().map(str::to_owned))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("secure")
        .key("big")
        .upload_id(id)
        .multipart_upload(done.build())
        .send()
        .await
        .unwrap();
    for (key, want) in [("small", small), ("big", parts.concat())] {
        let got = s3
            .get_object()
            .bucket("secure")
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes == want, "{key} reads back");
    }
    let log = server.log();
    let modes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("op=PutObject") || l.contains("op=UploadPart"))
        .map(|l| l.split("auth=").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    let want = [
        "\"sigv4-sha256\"",
        "\"sigv4-unsigned-trailer\"",
        "\"sigv4-unsigned-trailer\"",
    ];
    assert_eq!(modes, want, "{log}");
}
