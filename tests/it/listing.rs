//! Listings through aws-sdk-s3: V2, V1, versions; prefix, delimiter,
//! pagination, start-after, encoding.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncodingType;

use crate::harness::{Server, put};

const KEYS: &[&str] = &[
    "a.txt",
    "dir/1",
    "dir/2",
    "dir/sub/3",
    "dir/sub/4",
    "e.txt",
    "photos/2024/x.jpg",
    "photos/2025/y.jpg",
    "z",
];

async fn setup() -> (Server, Client) {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    for k in KEYS {
        put(&s3, "bkt", *k, b"x").await;
    }
    (server, s3)
}

#[tokio::test]
async fn v2_lists_all_keys_in_order_across_pages() {
    let (_server, s3) = setup().await;
    let mut token = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("bkt")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        seen.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        assert!(out.key_count().unwrap() <= 2);
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_owned);
            assert!(token.is_some(), "truncated pages carry a token");
        } else {
            break;
        }
    }
    assert_eq!(seen, KEYS);
    assert_eq!(pages, 5);
}

#[tokio::test]
async fn v2_delimiter_rolls_up_common_prefixes_across_pages() {
    let (_server, s3) = setup().await;
    let mut token = None;
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("bkt")
            .delimiter("/")
            .max_keys(1)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        keys.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token().map(str::to_owned);
    }
    assert_eq!(keys, ["a.txt", "e.txt", "z"]);
    assert_eq!(prefixes, ["dir/", "photos/"]);

    let out = s3
        .list_objects_v2()
        .bucket("bkt")
        .prefix("dir/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["dir/1", "dir/2"]);
    assert_eq!(prefixes, ["dir/sub/"]);
    assert_eq!(out.key_count(), Some(3));
    assert_eq!(out.contents()[0].size(), Some(1));
    assert_eq!(
        out.contents()[0].e_tag(),
        Some("\"9dd4e461268c8034f5c8564e155c67a6\"")
    );
}

#[tokio::test]
async fn v2_start_after_need_not_exist() {
    let (_server, s3) = setup().await;
    let out = s3
        .list_objects_v2()
        .bucket("bkt")
        .start_after("dir/19")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys[0], "dir/2");
    assert_eq!(out.start_after(), Some("dir/19"));
    let out = s3
        .list_objects_v2()
        .bucket("bkt")
        .prefix("photos/")
        .start_after("a")
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_count(), Some(2));
    let out = s3
        .list_objects_v2()
        .bucket("bkt")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_count(), Some(0));
    assert_eq!(out.is_truncated(), Some(false));
}

#[tokio::test]
async fn v1_marker_pagination() {
    let (_server, s3) = setup().await;
    let mut marker: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let out = s3
            .list_objects()
            .bucket("bkt")
            .max_keys(4)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        let keys: Vec<String> = out
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_owned())
            .collect();
        seen.extend(keys.iter().cloned());
        if out.is_truncated() != Some(true) {
            break;
        }
        marker = out
            .next_marker()
            .map(str::to_owned)
            .or(keys.last().cloned());
    }
    assert_eq!(seen, KEYS);
    let out = s3
        .list_objects()
        .bucket("bkt")
        .delimiter("/")
        .prefix("photos/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["photos/2024/", "photos/2025/"]);
}

#[tokio::test]
async fn url_encoding_of_keys() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    put(&s3, "bkt", "a b&c", b"x").await;
    // aws-sdk-rust hands the encoded key back as it came.
    let out = s3
        .list_objects_v2()
        .bucket("bkt")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    assert_eq!(out.contents()[0].key(), Some("a%20b%26c"));
    assert_eq!(out.encoding_type(), Some(&EncodingType::Url));
    let raw = server.raw(
        b"GET /bkt?list-type=2&encoding-type=url HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        raw.body_str().contains("<Key>a%20b%26c</Key>"),
        "{}",
        raw.body_str()
    );
}

#[tokio::test]
async fn object_versions_of_an_unversioned_bucket_are_null() {
    let (_server, s3) = setup().await;
    let out = s3
        .list_object_versions()
        .bucket("bkt")
        .prefix("dir/")
        .send()
        .await
        .unwrap();
    assert_eq!(out.versions().len(), 4);
    for v in out.versions() {
        assert_eq!(v.version_id(), Some("null"));
        assert_eq!(v.is_latest(), Some(true));
    }
}

#[tokio::test]
async fn listing_a_missing_bucket_fails() {
    let server = Server::start();
    let e = server
        .client()
        .list_objects_v2()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::harness::err_code(&e), "NoSuchBucket");
}

/// A listing reads one small head per key: objects of a thousand parts
/// (and a hundred copies of one, which share its manifest) cost a listing
/// no more memory than single-part objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_memory_stays_bounded_whatever_the_part_counts() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

    let server = Server::start_with("min_part_size = 1");
    let s3 = server.client();
    s3.create_bucket().bucket("big").send().await.unwrap();
    let id = s3
        .create_multipart_upload()
        .bucket("big")
        .key("parts")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    const PARTS: i32 = 1000;
    let mut uploads = tokio::task::JoinSet::new();
    for n in 1..=PARTS {
        let (s3, id) = (s3.clone(), id.clone());
        uploads.spawn(async move {
            let out = s3
                .upload_part()
                .bucket("big")
                .key("parts")
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(vec![n as u8; 3]))
                .send()
                .await
                .unwrap();
            (n, out.e_tag.unwrap())
        });
        if uploads.len() >= 16 {
            uploads.join_next().await;
        }
    }
    uploads.join_all().await;
    let listed = s3
        .list_parts()
        .bucket("big")
        .key("parts")
        .upload_id(&id)
        .max_parts(1000)
        .send()
        .await
        .unwrap();
    let parts = listed
        .parts()
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.part_number.unwrap())
                .e_tag(p.e_tag.clone().unwrap())
                .build()
        })
        .collect::<Vec<_>>();
    assert_eq!(parts.len(), PARTS as usize);
    let done = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    s3.complete_multipart_upload()
        .bucket("big")
        .key("parts")
        .upload_id(&id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    for i in 0..100 {
        s3.copy_object()
            .bucket("big")
            .key(format!("copy-{i:03}"))
            .copy_source("big/parts")
            .send()
            .await
            .unwrap();
    }

    let (_, peak_before) = server.memory_kib();
    let mut listings = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s3 = s3.clone();
        listings.spawn(async move {
            for _ in 0..5 {
                let page = s3.list_objects_v2().bucket("big").send().await.unwrap();
                assert_eq!(page.key_count(), Some(101));
                let sizes: Vec<i64> = page.contents().iter().map(|o| o.size.unwrap()).collect();
                assert!(sizes.iter().all(|s| *s == 3 * PARTS as i64), "{sizes:?}");
            }
        });
    }
    listings.join_all().await;
    let (_, peak_after) = server.memory_kib();
    // Heads of segments-and-all would cost each listing 101 x 1000
    // segments, tens of MiB across eight concurrent listings.
    assert!(
        peak_after - peak_before < 8 * 1024,
        "peak RSS grew {} KiB while listing",
        peak_after - peak_before
    );

    // A range read finds its part without reading the others.
    let got = s3
        .get_object()
        .bucket("big")
        .key("copy-042")
        .range("bytes=2997-2999")
        .send()
        .await
        .unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), [232, 232, 232], "part 1000's bytes, as u8");
}

/// S3 lists in UTF-8 byte order, whatever the metadata engine's own
/// collation: control characters first, then ASCII (upper case before
/// lower), then the rest by code point. Under
/// `STOWAGE_TEST_METADATA=postgres` this proves PostgreSQL's order.
#[tokio::test]
async fn keys_list_in_byte_order_with_non_ascii_and_control_characters() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let keys = [
        "é/x",
        "a",
        "\u{1}ctl",
        "Z",
        "日本/語",
        "a/b",
        "\u{7f}del",
        "~",
        "𝄞",
        "a b",
        "\tt",
        "É",
        "a/\u{e9}",
        "a/e",
    ];
    for k in keys {
        put(&s3, "bkt", k, b"x").await;
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut token = None;
    let mut seen = Vec::new();
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("bkt")
            .max_keys(3)
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(out.contents().iter().map(|o| {
            percent_encoding::percent_decode_str(o.key().unwrap())
                .decode_utf8()
                .unwrap()
                .replace('+', " ")
        }));
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    // Rolled up by "/", the common prefixes keep that order too.
    let out = s3
        .list_objects_v2()
        .bucket("bkt")
        .delimiter("/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let prefixes: Vec<String> = out
        .common_prefixes()
        .iter()
        .map(|p| {
            percent_encoding::percent_decode_str(p.prefix().unwrap())
                .decode_utf8()
                .unwrap()
                .into_owned()
        })
        .collect();
    assert_eq!(prefixes, ["a/", "é/", "日本/"]);
}
