//! Lifecycle rules through the Rust SDK: the configuration round trip and
//! its errors, and the sweep acting on rules under a one-second "day"
//! (`lifecycle_day_secs = 1`), never real days.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter, Tag,
};

use crate::harness::{RawResponse, Server, err_code, err_status, put};

fn filter(prefix: &str) -> LifecycleRuleFilter {
    LifecycleRuleFilter::builder().prefix(prefix).build()
}

fn expire_after(id: &str, filter: LifecycleRuleFilter, days: i32) -> LifecycleRule {
    LifecycleRule::builder()
        .id(id)
        .filter(filter)
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .unwrap()
}

fn abort_after(id: &str, prefix: &str, days: i32) -> LifecycleRule {
    LifecycleRule::builder()
        .id(id)
        .filter(filter(prefix))
        .status(ExpirationStatus::Enabled)
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(days)
                .build(),
        )
        .build()
        .unwrap()
}

async fn set_rules(s3: &Client, bucket: &str, rules: Vec<LifecycleRule>) {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn exists(s3: &Client, bucket: &str, key: &str) -> bool {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(e) if err_status(&e) == 404 => false,
        Err(e) => panic!("HEAD {key}: {e:?}"),
    }
}

async fn wait_until_gone(s3: &Client, bucket: &str, key: &str) {
    let start = Instant::now();
    while exists(s3, bucket, key).await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{key} never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start_upload(s3: &Client, bucket: &str, key: &str, part: &'static [u8]) -> String {
    let id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    s3.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(part))
        .send()
        .await
        .unwrap();
    id
}

fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    RawResponse::parse(&buf).body_str()
}

#[tokio::test]
async fn configuration_round_trips_and_bad_ones_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchLifecycleConfiguration");
    assert_eq!(err_status(&e), 404);

    let tagged = LifecycleRuleFilter::builder()
        .and(
            LifecycleRuleAndOperator::builder()
                .prefix("tmp/")
                .tags(Tag::builder().key("kind").value("scratch").build().unwrap())
                .build(),
        )
        .build();
    set_rules(
        &s3,
        "bkt",
        vec![
            expire_after("logs", filter("logs/"), 30),
            expire_after("scratch", tagged, 1),
            abort_after("uploads", "", 3),
        ],
    )
    .await;
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let rules = got.rules();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].id(), Some("logs"));
    assert_eq!(rules[0].filter().unwrap().prefix(), Some("logs/"));
    assert_eq!(rules[0].expiration().unwrap().days(), Some(30));
    let and = rules[1].filter().unwrap().and().unwrap();
    assert_eq!(and.prefix(), Some("tmp/"));
    assert_eq!(and.tags()[0].key(), "kind");
    assert_eq!(
        rules[2]
            .abort_incomplete_multipart_upload()
            .unwrap()
            .days_after_initiation(),
        Some(3)
    );

    // Refused configurations leave the stored one as it was.
    let zero_days = s3
        .put_bucket_lifecycle_configuration()
        .bucket("bkt")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(expire_after("bad", filter(""), 0))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&zero_days), "InvalidArgument");
    let tagged_abort = LifecycleRule::builder()
        .id("bad")
        .filter(
            LifecycleRuleFilter::builder()
                .tag(Tag::builder().key("k").value("v").build().unwrap())
                .build(),
        )
        .status(ExpirationStatus::Enabled)
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()
        .unwrap();
    let e = s3
        .put_bucket_lifecycle_configuration()
        .bucket("bkt")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(tagged_abort)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest");
    let still = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    assert_eq!(still.rules().len(), 3);

    // Without a digest S3 refuses the body, and so do we.
    let r = server.raw(
        b"PUT /bkt?lifecycle HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.body_str());

    s3.delete_bucket_lifecycle()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchLifecycleConfiguration");
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchBucket");
}

#[tokio::test]
async fn rules_expire_objects_and_abort_uploads_on_a_fast_clock() {
    let server = Server::start_with_config(
        "metrics_listen = \"127.0.0.1:0\"",
        // A day lasts a second; the default upload age is far away, so
        // only rules abort uploads here.
        "lifecycle_day_secs = 1\nsweep_interval_secs = 1\ngc_grace_secs = 0\ngc_interval_secs = 1\nabandoned_upload_secs = 86400\n",
    );
    let metrics = server
        .log()
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("metrics address in the log")
        .to_owned();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.create_bucket().bucket("other").send().await.unwrap();
    for key in ["logs/a", "logs/b", "keep/c", "tmp/plain"] {
        put(&s3, "bkt", key, b"bytes").await;
    }
    // A large object, so the expiry goes through a blob and the collector.
    let big = crate::harness::random_bytes(100_000, 7);
    s3.put_object()
        .bucket("bkt")
        .key("logs/big")
        .body(ByteStream::from(big))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("bkt")
        .key("tmp/tagged")
        .tagging("kind=scratch")
        .body(ByteStream::from_static(b"scratch"))
        .send()
        .await
        .unwrap();
    put(&s3, "other", "logs/a", b"another bucket").await;
    let doomed = start_upload(&s3, "bkt", "up/x", b"doomed part").await;
    let kept = start_upload(&s3, "bkt", "keep/y", b"kept part").await;
    let text = scrape(&metrics);
    assert!(
        text.contains("stowage_bucket_incomplete_upload_bytes{bucket=\"bkt\"} 20\n"),
        "{text}"
    );

    let tagged = LifecycleRuleFilter::builder()
        .tag(Tag::builder().key("kind").value("scratch").build().unwrap())
        .build();
    set_rules(
        &s3,
        "bkt",
        vec![
            expire_after("logs", filter("logs/"), 2),
            expire_after("scratch", tagged, 1),
            abort_after("uploads", "up/", 1),
        ],
    )
    .await;
    wait_until_gone(&s3, "bkt", "logs/a").await;
    wait_until_gone(&s3, "bkt", "logs/big").await;
    wait_until_gone(&s3, "bkt", "tmp/tagged").await;
    let e = s3
        .list_parts()
        .bucket("bkt")
        .key("up/x")
        .upload_id(&doomed)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchUpload");
    assert!(!exists(&s3, "bkt", "logs/b").await);
    // What no rule covers stays: other keys, other buckets, other uploads.
    assert!(exists(&s3, "bkt", "keep/c").await);
    assert!(exists(&s3, "bkt", "tmp/plain").await);
    assert!(exists(&s3, "other", "logs/a").await);
    let parts = s3
        .list_parts()
        .bucket("bkt")
        .key("keep/y")
        .upload_id(&kept)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 1);
    let text = scrape(&metrics);
    assert!(
        text.contains("stowage_bucket_incomplete_upload_bytes{bucket=\"bkt\"} 9\n"),
        "{text}"
    );
    assert!(server.log().contains("lifecycle sweep"));

    // A date in the past expires everything it covers at the next sweep,
    // and a later write under it goes too.
    let past = LifecycleRule::builder()
        .id("all")
        .filter(filter(""))
        .status(ExpirationStatus::Enabled)
        .expiration(
            LifecycleExpiration::builder()
                .date(aws_sdk_s3::primitives::DateTime::from_secs(86_400 * 365))
                .build(),
        )
        .build()
        .unwrap();
    set_rules(&s3, "bkt", vec![past]).await;
    wait_until_gone(&s3, "bkt", "keep/c").await;
    wait_until_gone(&s3, "bkt", "tmp/plain").await;
    // The upload is not an object: an Expiration rule leaves it.
    assert!(
        s3.list_parts()
            .bucket("bkt")
            .key("keep/y")
            .upload_id(&kept)
            .send()
            .await
            .is_ok()
    );
    // Every expired blob reaches the collector.
    let blobs = server.data_dir.join("blobs");
    let start = Instant::now();
    loop {
        let files = count_blob_files(&blobs);
        // Only the kept upload's part remains.
        if files == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{files} blob files left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn count_blob_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            n += count_blob_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}
