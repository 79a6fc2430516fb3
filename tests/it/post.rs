//! POST Object over raw HTTP, for what browsers and hostile clients send and
//! SDKs never build: fields after the file, oversized fields, a file that
//! outgrows its policy mid-stream, a form that never ends. The policy is
//! signed here with the server's own SigV4 key derivation; the compat suite
//! signs with boto3 and minio-py instead.

use base64::Engine as _;
use stowage::auth::sigv4::SigningKey;

use crate::harness::{DEV_KEY, DEV_SECRET, RawResponse, Server};

const BOUNDARY: &str = "----stowage-test-boundary";

/// The fields of a form signed for `conditions` (JSON, a list), with an
/// expiry `expires_in` seconds from now.
fn signed_fields(conditions: &str, expires_in: i64) -> Vec<(String, String)> {
    let now = stowage::time::now_ms();
    let date = stowage::time::amz_date(now);
    let credential = format!("{DEV_KEY}/{}/us-east-1/s3/aws4_request", &date[..8]);
    let expiration = stowage::time::iso8601(now + expires_in * 1000);
    let mut conditions: Vec<serde_json::Value> = serde_json::from_str(conditions).unwrap();
    conditions.push(serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}));
    conditions.push(serde_json::json!({"x-amz-credential": credential}));
    conditions.push(serde_json::json!({"x-amz-date": date}));
    let policy = serde_json::json!({"expiration": expiration, "conditions": conditions});
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signature = SigningKey::derive(DEV_SECRET, &date[..8], "us-east-1", "s3").sign(&policy);
    [
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential", credential),
        ("x-amz-date", date),
        ("policy", policy),
        ("x-amz-signature", signature),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect()
}

/// A multipart/form-data body: `before` fields, the file, `after` fields.
fn form(before: &[(String, String)], file: &[u8], after: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |name: &str, value: &[u8], filename: Option<&str>| {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    for (n, v) in before {
        field(n, v.as_bytes(), None);
    }
    field("file", file, Some("C:\\Users\\tech\\site log.txt"));
    for (n, v) in after {
        field(n, v.as_bytes(), None);
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn send(server: &Server, bucket: &str, body: &[u8]) -> RawResponse {
    let mut request = format!(
        "POST /{bucket} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    server.raw_unsigned(&request)
}

fn with(mut fields: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    fields
}

#[test]
fn a_signed_form_stores_its_file_under_the_expanded_key() {
    let server = Server::start();
    assert_eq!(
        server
            .raw(
                b"PUT /forms HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .status,
        200
    );
    let fields = signed_fields(
        r#"[{"bucket": "forms"}, ["starts-with", "$key", "logs/"], ["starts-with", "$Content-Type", "text/"]]"#,
        600,
    );
    let fields = with(
        fields,
        &[("key", "logs/${filename}"), ("Content-Type", "text/plain")],
    );
    // A field after the file is ignored, even one the policy would refuse.
    let body = form(
        &fields,
        b"line one\nline two\n",
        &[("x-amz-meta-late", "1")],
    );
    let r = send(&server, "forms", &body);
    assert_eq!(r.status, 204, "{}", r.body_str());
    let location = r.header("location").unwrap();
    assert!(
        location.ends_with("/forms/logs%2Fsite%20log.txt"),
        "{location}"
    );
    let got = server.raw(
        b"GET /forms/logs/site%20log.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(got.body, b"line one\nline two\n");
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.header("x-amz-meta-late"), None);
    assert_eq!(got.header("etag"), r.header("etag"));
    server.log_when(
        "op=PostObject method=POST bucket=\"forms\" key=\"logs/site log.txt\" access_key=\"stowage\" auth=\"post-policy\"",
    );
}

#[test]
fn a_file_past_its_range_is_refused_mid_stream_and_stores_nothing() {
    let server = Server::start();
    server.raw(
        b"PUT /forms HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let fields = signed_fields(
        r#"[{"bucket": "forms"}, {"key": "big"}, ["content-length-range", 0, 1048576]]"#,
        600,
    );
    let fields = with(fields, &[("key", "big")]);
    let r = send(&server, "forms", &form(&fields, &vec![7u8; 3 << 20], &[]));
    assert_eq!((r.status, r.code().as_str()), (400, "EntityTooLarge"));
    assert!(
        r.body_str()
            .contains("<MaxSizeAllowed>1048576</MaxSizeAllowed>")
    );
    let head =
        server.raw(b"HEAD /forms/big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 404);
    assert_eq!(
        server.tmp_files(),
        0,
        "the refused file left nothing in tmp/"
    );
}

#[test]
fn malformed_and_oversized_forms_get_s3_errors() {
    let server = Server::start();
    server.raw(
        b"PUT /forms HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let fields = signed_fields(r#"[{"bucket": "forms"}, ["starts-with", "$key", ""]]"#, 600);

    // 20 KiB of fields before the file is all S3 reads.
    let huge = with(
        fields.clone(),
        &[("key", "k"), ("x-ignore-pad", &"p".repeat(21_000))],
    );
    let r = send(&server, "forms", &form(&huge, b"x", &[]));
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MaxPostPreDataLengthExceeded")
    );

    // No file field at all.
    let mut body = form(&with(fields.clone(), &[("key", "k")]), b"", &[]);
    let file_at = String::from_utf8_lossy(&body)
        .find("name=\"file\"")
        .unwrap();
    body[file_at + 6..file_at + 10].copy_from_slice(b"nope");
    let r = send(&server, "forms", &body);
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    assert!(
        r.body_str().contains("exactly one file"),
        "{}",
        r.body_str()
    );

    // No key.
    let r = send(&server, "forms", &form(&fields, b"x", &[]));
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    assert!(
        r.body_str().contains("field named &apos;key&apos;"),
        "{}",
        r.body_str()
    );

    // Garbage where the form should be, and a form that stops mid-field.
    let r = send(&server, "forms", b"this is not a multipart body");
    assert_eq!((r.status, r.code().as_str()), (400, "MalformedPOSTRequest"));
    let full = form(&with(fields.clone(), &[("key", "k")]), b"data", &[]);
    let r = send(&server, "forms", &full[..full.len() - 30]);
    assert_eq!(r.status, 400, "{}", r.body_str());

    // An expired policy, and a signature by another secret.
    let expired = with(
        signed_fields(r#"[{"bucket": "forms"}, {"key": "k"}]"#, -5),
        &[("key", "k")],
    );
    let r = send(&server, "forms", &form(&expired, b"x", &[]));
    assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"));
    assert!(r.body_str().contains("Policy expired."));
    let mut forged = with(fields, &[("key", "k")]);
    forged[4].1 = "0".repeat(64);
    let r = send(&server, "forms", &form(&forged, b"x", &[]));
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "SignatureDoesNotMatch")
    );

    // A field given twice: one value could meet a condition, the other be
    // stored.
    let twice = with(
        signed_fields(
            r#"[{"bucket": "forms"}, {"key": "k"}, {"x-amz-meta-role": "user"}]"#,
            600,
        ),
        &[
            ("key", "k"),
            ("x-amz-meta-role", "user"),
            ("X-Amz-Meta-Role", "admin"),
        ],
    );
    let r = send(&server, "forms", &form(&twice, b"x", &[]));
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));

    // A part head that never ends: refused once the pre-file allowance is
    // spent, not buffered (this sends 4 MiB before any authentication). The
    // server stops reading there, so the client may see its connection
    // reset before the answer.
    let mut endless =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\nX-Pad: ")
            .into_bytes();
    endless.extend(std::iter::repeat_n(b'a', 64 << 20));
    let (_, peak_before) = server.memory_kib();
    let r = send(&server, "forms", &endless);
    if r.status != 0 {
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MaxPostPreDataLengthExceeded")
        );
    }
    let (_, peak_after) = server.memory_kib();
    assert!(
        peak_after < peak_before + 16 * 1024,
        "64 MiB of head was buffered: peak {peak_before} KiB -> {peak_after} KiB"
    );

    let head =
        server.raw(b"HEAD /forms/k HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 404, "no refused form stored anything");
    assert_eq!(server.tmp_files(), 0);
}

/// Issue 18, item 7: forms that stall before their file once made the
/// server hold about 1.1 MiB each before any authentication. Now no more
/// than S3's 20 KB of fields and their framing reach the form reader: 40
/// connections that each send 1 MiB of a part head that never ends, then
/// stall, are refused and cost the server little.
#[test]
fn stalled_forms_hold_little_memory_before_authentication() {
    use std::io::{Read, Write};
    let server = Server::start();
    server.raw(
        b"PUT /forms HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let (_, peak_before) = server.memory_kib();
    let mut head =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\nX-Pad: ")
            .into_bytes();
    head.extend(std::iter::repeat_n(b'a', 1 << 20));
    let request = format!(
        "POST /forms HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        16 << 20
    );
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut c = std::net::TcpStream::connect(server.addr).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        // The server stops reading once the allowance is spent; what it
        // does not read stays in the socket buffers.
        c.set_write_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let _ = c.write_all(&head);
        stalled.push(c);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (_, peak_after) = server.memory_kib();
    assert!(
        peak_after < peak_before + 40 * 192,
        "40 stalled forms took {} KiB",
        peak_after - peak_before
    );
    for mut c in stalled {
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut answer = [0u8; 512];
        let n = c.read(&mut answer).unwrap_or(0);
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            n == 0
                || answer.contains("MaxPostPreDataLengthExceeded")
                || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
    }
}
