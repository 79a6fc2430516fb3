//! Authentication and authorisation as SDK users meet them: aws-sdk-s3
//! signs (header auth and presigned URLs); raw HTTP sends what an SDK
//! would not (anonymous requests, altered bodies, browser uploads).

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, CorsConfiguration, CorsRule};

use crate::harness::{RawResponse, Server, err_code, put, random_bytes, sign};

/// Three keys: an admin, a reader, and an uploader limited to `incoming`;
/// `www` is public-read.
const KEYS: &str = r#"
public_read_buckets = ["www"]

[[credentials]]
access_key_id = "root"
secret_access_key = "root-secret"
admin = true

[[credentials]]
access_key_id = "reader"
secret_access_key = "reader-secret"
admin = true
read_only = true

[[credentials]]
access_key_id = "uploader"
secret_access_key = "uploader-secret"
buckets = ["incoming"]

[[credentials]]
access_key_id = "alice"
secret_access_key = "alice-secret"
"#;

/// `request` (a presigned request's method, URI and headers) as raw HTTP
/// from a client that knows nothing of AWS, with extra headers and a body.
fn send_presigned(server: &Server, p: &PresignedRequest, extra: &str, body: &[u8]) -> RawResponse {
    let target = p.uri().split_once(&server.addr.to_string()).unwrap().1;
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}",
        p.method(),
        server.addr,
        body.len()
    );
    for (name, value) in p.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    server.raw_unsigned(&request)
}

#[tokio::test]
async fn wrong_secret_and_unknown_key_are_refused() {
    let server = Server::start();
    server
        .client()
        .create_bucket()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let wrong = server.client_as("stowage", "not-the-secret");
    let e = wrong
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "SignatureDoesNotMatch");
    let e = wrong
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "SignatureDoesNotMatch");
    let unknown = server.client_as("nobody", "x");
    let e = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(err_code(&e), "InvalidAccessKeyId");
    // Nothing was written, and the wrong secret reached no log line.
    let e = server
        .client()
        .head_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await;
    assert!(e.is_err());
    assert!(!server.log().contains("not-the-secret"));
}

#[test]
fn anonymous_requests_are_denied_except_public_reads() {
    let server = Server::start_with_config(KEYS, "");
    let root = |req: &str| server.raw_unsigned(&sign(req.as_bytes(), "root", "root-secret"));
    for b in ["www", "private"] {
        let r = root(&format!(
            "PUT /{b} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(r.status, 200);
        let r = root(&format!(
            "PUT /{b}/page HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        ));
        assert_eq!(r.status, 200);
    }
    let anon = |req: &str| server.raw_unsigned(req.as_bytes());
    let r = anon("GET /www/page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
    let r = anon("GET /www?list-type=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    for req in [
        "PUT /www/page HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
        "DELETE /www/page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "GET /private/page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ] {
        let r = anon(req);
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "AccessDenied"),
            "{req}"
        );
    }
    let r = anon(
        "GET /www/page?response-content-type=text/html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidRequest"));
    let r = anon("GET /www/page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.body, b"hi", "the refused writes changed nothing");
}

#[tokio::test]
async fn each_key_reaches_only_what_it_may() {
    let server = Server::start_with_config(KEYS, "");
    let root = server.client_as("root", "root-secret");
    let reader = server.client_as("reader", "reader-secret");
    let uploader = server.client_as("uploader", "uploader-secret");
    let alice = server.client_as("alice", "alice-secret");
    for b in ["incoming", "archive"] {
        root.create_bucket().bucket(b).send().await.unwrap();
    }
    put(&root, "archive", "old", b"secret".to_vec()).await;

    // The uploader writes its one bucket and nothing else.
    put(&uploader, "incoming", "new", b"data".to_vec()).await;
    let e = uploader
        .get_object()
        .bucket("archive")
        .key("old")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");
    let e = uploader
        .create_bucket()
        .bucket("mine")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");
    let e = uploader
        .copy_object()
        .bucket("incoming")
        .key("stolen")
        .copy_source("archive/old")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied", "a copy source is read access");
    // However the source is spelled, it is the bucket the copy reads.
    for source in [
        "//archive/old",
        "archive/old?%FF",
        "%61rchive/old",
        "/archive%2Fold",
    ] {
        let request = format!(
            "PUT /incoming/stolen HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\
             x-amz-copy-source: {source}\r\nConnection: close\r\n\r\n"
        );
        let r = server.raw_unsigned(&sign(request.as_bytes(), "uploader", "uploader-secret"));
        assert_eq!(r.status, 403, "{source}: {}", r.body_str());
    }
    let e = uploader
        .create_multipart_upload()
        .bucket("incoming")
        .key("big")
        .send()
        .await;
    let id = e.unwrap().upload_id.unwrap();
    let e = uploader
        .upload_part_copy()
        .bucket("incoming")
        .key("big")
        .upload_id(&id)
        .part_number(1)
        .copy_source("archive/old")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");

    // The reader reads everything and writes nothing.
    let got = reader
        .get_object()
        .bucket("archive")
        .key("old")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"secret"
    );
    let e = reader
        .put_object()
        .bucket("archive")
        .key("old")
        .body(ByteStream::from_static(b"overwritten"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");
    let e = reader
        .put_bucket_versioning()
        .bucket("archive")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied", "even an unimplemented write");
    let e = reader
        .delete_object()
        .bucket("archive")
        .key("old")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");

    // A plain key owns what it creates, and only that.
    alice.create_bucket().bucket("alices").send().await.unwrap();
    // Again: hers already, 200 in us-east-1.
    alice.create_bucket().bucket("alices").send().await.unwrap();
    let e = alice
        .create_bucket()
        .bucket("archive")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "BucketAlreadyExists");
    let e = alice
        .list_objects_v2()
        .bucket("archive")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");
    let names = |out: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| {
        let mut v: Vec<String> = out
            .buckets()
            .iter()
            .filter_map(|b| b.name.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(alice.list_buckets().send().await.unwrap()),
        ["alices"]
    );
    assert_eq!(
        names(uploader.list_buckets().send().await.unwrap()),
        ["incoming"]
    );
    assert_eq!(
        names(root.list_buckets().send().await.unwrap()),
        ["alices", "archive", "incoming"]
    );
    // Configured secrets never reach the log.
    for secret in [
        "root-secret",
        "reader-secret",
        "uploader-secret",
        "alice-secret",
    ] {
        assert!(!server.log().contains(secret), "{secret} logged");
    }
    // Configured secrets never reach the log.
    for secret in [
        "root-secret",
        "reader-secret",
        "uploader-secret",
        "alice-secret",
    ] {
        assert!(!server.log().contains(secret), "{secret} logged");
    }
    // The admin reaches alice's bucket; the refused writes changed nothing.
    root.head_bucket().bucket("alices").send().await.unwrap();
    let got = root
        .get_object()
        .bucket("archive")
        .key("old")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"secret"
    );
}

#[tokio::test]
async fn presigned_urls_work_from_a_plain_client_until_altered_or_expired() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let hour = PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap();
    let data = random_bytes(100_000, 7);

    let put_url = s3
        .put_object()
        .bucket("bkt")
        .key("dir/a b+c")
        .presigned(hour.clone())
        .await
        .unwrap();
    let r = send_presigned(&server, &put_url, "", &data);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let get_url = s3
        .get_object()
        .bucket("bkt")
        .key("dir/a b+c")
        .presigned(hour.clone())
        .await
        .unwrap();
    let r = send_presigned(&server, &get_url, "", b"");
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    assert!(r.body == data);

    // Altered path, added parameter, altered signature.
    let altered = |from: &str, to: &str| {
        let target = get_url.uri().replace(from, to);
        let target = target
            .split_once(&server.addr.to_string())
            .unwrap()
            .1
            .to_owned();
        server.raw_unsigned(
            format!(
                "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            )
            .as_bytes(),
        )
    };
    for (from, to) in [
        ("dir/", "dir2/"),
        ("X-Amz-Date", "versionId=null&X-Amz-Date"),
        ("X-Amz-Signature=", "X-Amz-Signature=0"),
    ] {
        let r = altered(from, to);
        assert_eq!(r.status, 403, "{from}");
        assert_eq!(r.code(), "SignatureDoesNotMatch", "{from}");
        let body = r.body_str();
        assert!(body.contains("<CanonicalRequest>") && body.contains("<StringToSign>"));
    }

    // A URL that baked in the checksum of an empty body (as a signed
    // header here; other SDKs put it in the query) refuses any other body.
    let empty_crc = s3
        .put_object()
        .bucket("bkt")
        .key("guarded")
        .checksum_crc32("AAAAAA==")
        .presigned(hour.clone())
        .await
        .unwrap();
    let r = send_presigned(&server, &empty_crc, "", b"not empty");
    assert_eq!((r.status, r.code().as_str()), (400, "BadDigest"));
    let e = s3.head_object().bucket("bkt").key("guarded").send().await;
    assert!(e.is_err(), "nothing stored");

    // Signed a day ago for an hour: expired.
    let stale = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(86_400))
        .expires_in(Duration::from_secs(3600))
        .build()
        .unwrap();
    let url = s3
        .get_object()
        .bucket("bkt")
        .key("dir/a b+c")
        .presigned(stale)
        .await
        .unwrap();
    let r = send_presigned(&server, &url, "", b"");
    assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"));
    assert!(
        r.body_str().contains("Request has expired"),
        "{}",
        r.body_str()
    );
}

#[test]
fn a_body_altered_under_its_signed_hash_is_refused() {
    let server = Server::start();
    server.raw(
        b"PUT /bkt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let hash = stowage::auth::sigv4::sha256_hex(b"hello");
    let head = format!(
        "PUT /bkt/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\nx-amz-content-sha256: {hash}\r\n\r\n"
    );
    let mut request = sign(head.as_bytes(), "stowage", "stowage-dev-secret");
    request.extend_from_slice(b"jello");
    let r = server.raw_unsigned(&request);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "XAmzContentSHA256Mismatch")
    );
    let r = server.raw(b"GET /bkt/k HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.code(), "NoSuchKey");
    // The body it signed goes through.
    let mut request = sign(head.as_bytes(), "stowage", "stowage-dev-secret");
    request.extend_from_slice(b"hello");
    assert_eq!(server.raw_unsigned(&request).status, 200);
}

#[tokio::test]
async fn browser_style_presigned_multipart_upload_with_cors() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let origin = "https://app.example";
    // No CORS configured: the development default lets in only pages on
    // loopback origins; the bucket's own rules, once set, replace it.
    let preflight = |server: &Server| {
        server.raw_unsigned(
            format!(
                "OPTIONS /bkt/big?partNumber=1&uploadId=x HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\n\
                 Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    assert_eq!(preflight(&server).status, 403);
    s3.put_bucket_cors()
        .bucket("bkt")
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(
                    CorsRule::builder()
                        .allowed_origins(origin)
                        .allowed_methods("PUT")
                        .allowed_methods("GET")
                        .allowed_headers("*")
                        .expose_headers("ETag")
                        .max_age_seconds(600)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_cors().bucket("bkt").send().await.unwrap();
    assert_eq!(got.cors_rules()[0].expose_headers(), ["ETag"]);

    let r = preflight(&server);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("PUT")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));

    // The page's server creates the upload and presigns one URL per part.
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("big")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let parts = [random_bytes(5 << 20, 1), random_bytes(1000, 2)];
    let hour = PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap();
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let url = s3
            .upload_part()
            .bucket("bkt")
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .presigned(hour.clone())
            .await
            .unwrap();
        let r = send_presigned(&server, &url, &format!("Origin: {origin}\r\n"), data);
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));
        let etag = r.header("etag").unwrap().to_owned();
        completed.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("big")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("big")
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert!(body.as_ref() == [parts[0].as_slice(), parts[1].as_slice()].concat());

    // A CORS error is readable by the page too; other origins get nothing.
    let r = server.raw_unsigned(
        format!(
            "GET /bkt/missing HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    let r = server.raw_unsigned(
        b"OPTIONS /bkt/big HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n\
          Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.code().as_str()), (403, "AccessForbidden"));

    s3.delete_bucket_cors().bucket("bkt").send().await.unwrap();
    let e = s3.get_bucket_cors().bucket("bkt").send().await.unwrap_err();
    assert_eq!(err_code(&e), "NoSuchCORSConfiguration");
}

/// aws-sdk-s3 over plain HTTP streams a file body as aws-chunked with every
/// chunk signed and a signed checksum trailer: an independent signer for
/// the whole chain, seed to trailer.
#[tokio::test]
async fn sdk_file_uploads_arrive_as_signed_chunks_with_a_signed_trailer() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = random_bytes(3_000_000, 9);
    std::fs::write(&path, &data).unwrap();
    s3.put_object()
        .bucket("bkt")
        .key("file")
        .body(ByteStream::from_path(&path).await.unwrap())
        .send()
        .await
        .unwrap();
    // The log is read from the server's stdout by another thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| l.contains("op=PutObject")) {
            break line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no PutObject log line"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        line.contains("auth=\"sigv4-signed-chunks-trailer\""),
        "{line}"
    );
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("file")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());
}

/// A development server (no credentials, no `[[cors]]`) lets pages on
/// loopback origins in with what uploads need, and no page elsewhere (the
/// development secret is public); a configured server refuses origins it
/// was not told about. Every bucket response varies by Origin.
#[test]
fn cors_defaults_and_vary() {
    let dev = Server::start();
    let r = dev.raw(
        b"PUT /web HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let preflight_from = |origin: &str| {
        format!(
            "OPTIONS /web/video.mp4?uploads HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\n\
            Access-Control-Request-Method: DELETE\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n"
        )
    };
    for origin in [
        "http://localhost:5173",
        "http://127.0.0.1:8080",
        "http://[::1]:3000",
        "https://localhost",
    ] {
        let r = dev.raw_unsigned(preflight_from(origin).as_bytes());
        assert_eq!(r.status, 200, "{origin}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }
    for origin in ["https://any.example", "http://localhost.evil.example"] {
        let r = dev.raw_unsigned(preflight_from(origin).as_bytes());
        assert_eq!(r.status, 403, "{origin} is no loopback origin");
    }
    let r = dev.raw_unsigned(preflight_from("http://localhost:5173").as_bytes());
    let methods = r.header("access-control-allow-methods").unwrap();
    for m in ["GET", "PUT", "POST", "DELETE", "HEAD"] {
        assert!(methods.contains(m), "{methods}");
    }
    let exposed = r.header("access-control-expose-headers").unwrap();
    for h in [
        "ETag",
        "Location",
        "x-amz-version-id",
        "Upload-Offset",
        "Tus-Resumable",
    ] {
        assert!(exposed.contains(h), "{exposed}");
    }
    let r =
        dev.raw(b"GET /web?list-type=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(
        r.header("vary"),
        Some("Origin"),
        "no Origin sent, still varies"
    );
    let r = dev.raw(
        b"GET /web?list-type=2 HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:5173\r\nConnection: close\r\n\r\n",
    );
    assert!(r.header("vary").unwrap().contains("Origin"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let r = dev.raw(
        b"GET /web?list-type=2 HTTP/1.1\r\nHost: localhost\r\nOrigin: https://any.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);

    let preflight = preflight_from("https://any.example");
    let preflight = preflight.as_bytes();
    let configured = Server::start_with_config(KEYS, "");
    let r = configured.raw_unsigned(preflight);
    assert_eq!(r.status, 403, "no rule for this origin");
}
