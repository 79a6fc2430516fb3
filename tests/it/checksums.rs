//! Flexible checksums on single uploads: the SDK computes them (an
//! independent implementation), Stowage verifies, stores and returns them,
//! and the SDK validates the returned value against the bytes it reads.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};

use crate::harness::{Server, random_bytes};

#[tokio::test]
async fn every_algorithm_round_trips_on_put_and_get() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = random_bytes(300_000, 7);
    for algorithm in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("obj-{}", algorithm.as_str());
        let put = s3
            .put_object()
            .bucket("bkt")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let sent = [
            put.checksum_crc32(),
            put.checksum_crc32_c(),
            put.checksum_crc64_nvme(),
            put.checksum_sha1(),
            put.checksum_sha256(),
        ];
        let echoed: Vec<&str> = sent.into_iter().flatten().collect();
        assert_eq!(echoed.len(), 1, "{algorithm:?}: one checksum echoed");

        let got = s3
            .get_object()
            .bucket("bkt")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let returned = [
            got.checksum_crc32(),
            got.checksum_crc32_c(),
            got.checksum_crc64_nvme(),
            got.checksum_sha1(),
            got.checksum_sha256(),
        ];
        assert_eq!(returned.into_iter().flatten().collect::<Vec<_>>(), echoed);
        // Reading the body makes the SDK check it against the checksum.
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.as_ref(), data.as_slice());
    }
}

#[tokio::test]
async fn a_default_crc64nvme_is_stored_when_none_is_sent() {
    let server = Server::start();
    let r = server.raw(
        b"PUT /bkt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = server.raw(b"PUT /bkt/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\nConnection: close\r\n\r\n123456789");
    // The CRC-64/NVME check value of "123456789" is 0xAE8B14860A799888.
    assert_eq!(r.header("x-amz-checksum-crc64nvme"), Some("rosUhgp5mIg="));
    let got = server
        .client()
        .head_object()
        .bucket("bkt")
        .key("k")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.checksum_crc64_nvme(), Some("rosUhgp5mIg="));
}

#[tokio::test]
async fn wrong_checksums_are_refused_and_store_nothing() {
    let server = Server::start();
    let put = |key: &str, headers: &str, body: &[u8]| {
        let mut req = format!(
            "PUT /bkt/{key} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n"
        )
        .into_bytes();
        req.extend_from_slice(body);
        server.raw(&req)
    };
    assert_eq!(
        server
            .raw(b"PUT /bkt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .status,
        200
    );
    // CRC32 of "123456789" is 0xCBF43926 (y/Q5Jg==).
    let ok = put(
        "good",
        "Content-Length: 9\r\nx-amz-checksum-crc32: y/Q5Jg==\r\n",
        b"123456789",
    );
    assert_eq!(ok.status, 200);
    let bad = put(
        "bad",
        "Content-Length: 9\r\nx-amz-checksum-crc32: AAAAAA==\r\n",
        b"123456789",
    );
    assert_eq!((bad.status, bad.code().as_str()), (400, "BadDigest"));
    let malformed = put(
        "bad",
        "Content-Length: 9\r\nx-amz-checksum-crc32: zz\r\n",
        b"123456789",
    );
    assert_eq!(
        (malformed.status, malformed.code().as_str()),
        (400, "InvalidRequest")
    );
    let body = b"9\r\n123456789\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
    let trailer = put(
        "bad",
        &format!(
            "Content-Length: {}\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
             x-amz-trailer: x-amz-checksum-crc32\r\nx-amz-decoded-content-length: 9\r\n",
            body.len()
        ),
        body,
    );
    assert_eq!(
        (trailer.status, trailer.code().as_str()),
        (400, "BadDigest")
    );
    let get = server.raw(b"GET /bkt/bad HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(get.status, 404);
    assert_eq!(server.tmp_files(), 0);
}
