//! Object operations through aws-sdk-s3 (which, by default, sends its
//! uploads as aws-chunked bodies with a CRC32 trailer).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};

use crate::harness::{Server, err_code, err_status, md5_hex, put, random_bytes};

async fn setup() -> (Server, Client) {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    (server, s3)
}

async fn get_bytes(s3: &Client, key: &str) -> Vec<u8> {
    let out = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn put_and_get_round_trip_bytes_etag_and_metadata() {
    let (_server, s3) = setup().await;
    let data = random_bytes(3 << 20, 1);
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("dir/file.bin")
        .body(ByteStream::from(data.clone()))
        .content_type("video/mp4")
        .content_disposition("attachment; filename=\"f.bin\"")
        .cache_control("max-age=60")
        .content_encoding("identity")
        .content_language("en")
        .metadata("color", "blue")
        .metadata("Camera-Model", "X100")
        .send()
        .await
        .unwrap();
    let etag = format!("\"{}\"", md5_hex(&data));
    assert_eq!(put.e_tag(), Some(etag.as_str()));

    let got = s3
        .get_object()
        .bucket("bkt")
        .key("dir/file.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.content_length(), Some(data.len() as i64));
    assert_eq!(got.content_type(), Some("video/mp4"));
    assert_eq!(
        got.content_disposition(),
        Some("attachment; filename=\"f.bin\"")
    );
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(got.content_encoding(), Some("identity"));
    assert_eq!(got.content_language(), Some("en"));
    let meta = got.metadata().unwrap();
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("camera-model").map(String::as_str), Some("X100"));
    assert!(got.last_modified().is_some());
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &data[..]
    );

    let head = s3
        .head_object()
        .bucket("bkt")
        .key("dir/file.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.accept_ranges(), Some("bytes"));
}

#[tokio::test]
async fn empty_objects_and_overwrites() {
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "e", b"").await;
    assert!(get_bytes(&s3, "e").await.is_empty());
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("e")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some("\"d41d8cd98f00b204e9800998ecf8427e\""));
    put(&s3, "bkt", "e", b"second").await;
    assert_eq!(get_bytes(&s3, "e").await, b"second");
}

#[tokio::test]
async fn missing_keys_and_buckets() {
    let (_server, s3) = setup().await;
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchKey");
    assert_eq!(err_status(&e), 404);
    let e = s3
        .head_object()
        .bucket("bkt")
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 404);
    let e = s3
        .get_object()
        .bucket("nob")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchBucket");
    let e = s3
        .put_object()
        .bucket("nob")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchBucket");
}

#[tokio::test]
async fn ranges_and_unsatisfiable_ranges() {
    let (_server, s3) = setup().await;
    let data = random_bytes(1000, 2);
    put(&s3, "bkt", "r", data.clone()).await;
    for (range, want) in [
        ("bytes=0-9", &data[0..10]),
        ("bytes=990-", &data[990..]),
        ("bytes=-5", &data[995..]),
        ("bytes=500-5000", &data[500..]),
    ] {
        let got = s3
            .get_object()
            .bucket("bkt")
            .key("r")
            .range(range)
            .send()
            .await
            .unwrap();
        assert!(got.content_range().unwrap().ends_with("/1000"), "{range}");
        assert_eq!(got.content_length(), Some(want.len() as i64), "{range}");
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().as_ref(),
            want,
            "{range}"
        );
    }
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("r")
        .range("bytes=1000-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRange");
    assert_eq!(err_status(&e), 416);
}

#[tokio::test]
async fn conditional_reads() {
    let (_server, s3) = setup().await;
    let put = put(&s3, "bkt", "c", b"abc").await;
    let etag = put.e_tag().unwrap().to_owned();
    let ok = s3
        .get_object()
        .bucket("bkt")
        .key("c")
        .if_match(&etag)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.e_tag(), Some(etag.as_str()));
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("c")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 412);
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("c")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 304);
    let future = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    let past = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000_000);
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("c")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 304);
    s3.get_object()
        .bucket("bkt")
        .key("c")
        .if_modified_since(past)
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("c")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 412);
    s3.get_object()
        .bucket("bkt")
        .key("c")
        .if_unmodified_since(future)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn response_overrides() {
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "o", b"x").await;
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("o")
        .response_content_type("text/plain")
        .response_content_disposition("inline")
        .response_cache_control("no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.content_disposition(), Some("inline"));
    assert_eq!(got.cache_control(), Some("no-cache"));
}

#[tokio::test]
async fn conditional_writes() {
    let (_server, s3) = setup().await;
    let first = s3
        .put_object()
        .bucket("bkt")
        .key("w")
        .if_none_match("*")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("w")
        .if_none_match("*")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "PreconditionFailed");
    assert_eq!(get_bytes(&s3, "w").await, b"one");

    let e = s3
        .put_object()
        .bucket("bkt")
        .key("w")
        .if_match("\"ffffffffffffffffffffffffffffffff\"")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 412);
    s3.put_object()
        .bucket("bkt")
        .key("w")
        .if_match(first.e_tag().unwrap())
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "w").await, b"two");

    let e = s3
        .put_object()
        .bucket("bkt")
        .key("missing")
        .if_match("\"abc\"")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchKey");
}

#[tokio::test]
async fn delete_object_and_delete_objects() {
    let (_server, s3) = setup().await;
    for k in ["a", "b", "c", "d"] {
        put(&s3, "bkt", k, b"x").await;
    }
    s3.delete_object()
        .bucket("bkt")
        .key("a")
        .send()
        .await
        .unwrap();
    // Deleting a missing key succeeds, as on S3.
    s3.delete_object()
        .bucket("bkt")
        .key("a")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("bkt")
        .key("b")
        .version_id("null")
        .send()
        .await
        .unwrap();

    let ids = |keys: &[&str]| {
        keys.iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
            .collect::<Vec<_>>()
    };
    let out = s3
        .delete_objects()
        .bucket("bkt")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["c", "zz"])))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["c", "zz"]);
    let quiet = s3
        .delete_objects()
        .bucket("bkt")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["d"])))
                .quiet(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(quiet.deleted().is_empty());
    let left = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    assert_eq!(left.key_count(), Some(0));
}

#[tokio::test]
async fn copy_object_copies_or_replaces_metadata_and_survives_source_delete() {
    let (_server, s3) = setup().await;
    let data = random_bytes(100_000, 3);
    s3.put_object()
        .bucket("bkt")
        .key("src")
        .content_type("image/png")
        .metadata("k", "v")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let copy = s3
        .copy_object()
        .bucket("bkt")
        .key("dst")
        .copy_source("bkt/src")
        .send()
        .await
        .unwrap();
    let etag = format!("\"{}\"", md5_hex(&data));
    assert_eq!(
        copy.copy_object_result().and_then(|r| r.e_tag()),
        Some(etag.as_str())
    );
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("dst")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(
        head.metadata().unwrap().get("k").map(String::as_str),
        Some("v")
    );

    s3.copy_object()
        .bucket("bkt")
        .key("dst2")
        .copy_source("/bkt/src")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("other", "1")
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("dst2")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.metadata().unwrap().get("k"), None);
    assert_eq!(
        head.metadata().unwrap().get("other").map(String::as_str),
        Some("1")
    );

    let e = s3
        .copy_object()
        .bucket("bkt")
        .key("src")
        .copy_source("bkt/src")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest");
    let e = s3
        .copy_object()
        .bucket("bkt")
        .key("x")
        .copy_source("bkt/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchKey");
    let e = s3
        .copy_object()
        .bucket("bkt")
        .key("x")
        .copy_source("bkt/src")
        .copy_source_if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 412);

    // The copies share the source's blob; deleting the source keeps them.
    s3.delete_object()
        .bucket("bkt")
        .key("src")
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "dst").await, data);
    assert_eq!(get_bytes(&s3, "dst2").await, data);
}

#[tokio::test]
async fn unusual_keys_round_trip() {
    let (_server, s3) = setup().await;
    let keys = [
        "a b+c",
        "../../etc/passwd",
        "ünïcödé/日本語.txt",
        "percent%2Fencoded",
        "trailing/",
        "q?x=1&y=2#frag",
        &"k".repeat(1024),
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = format!("body {i}");
        s3.put_object()
            .bucket("bkt")
            .key(*key)
            .body(ByteStream::from(body.clone().into_bytes()))
            .send()
            .await
            .unwrap();
        assert_eq!(get_bytes(&s3, key).await, body.as_bytes(), "{key}");
    }
    let listed = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();
    let got: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, want);
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("k".repeat(1025))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "KeyTooLongError");
}

#[tokio::test]
async fn object_acl_and_unversioned_version_ids() {
    let (_server, s3) = setup().await;
    s3.put_object()
        .bucket("bkt")
        .key("k")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::BucketOwnerFullControl)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let acl = s3
        .get_object_acl()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.grants().len(), 1);
    s3.get_object()
        .bucket("bkt")
        .key("k")
        .version_id("null")
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .version_id("v123")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 400);
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("pub")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicReadWrite)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 501, "anonymous writes are not supported");
}

/// Stored system headers are capped like S3's 8 KiB of request headers, so
/// an object's head stays small; nothing is stored by a refused PUT.
#[tokio::test]
async fn oversized_system_headers_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let e = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .content_disposition("x".repeat(9000))
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "MetadataTooLarge");
    let head = s3.head_object().bucket("bkt").key("k").send().await;
    assert!(head.is_err(), "nothing stored");
    s3.put_object()
        .bucket("bkt")
        .key("k")
        .content_disposition("x".repeat(4000))
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .unwrap();
}
