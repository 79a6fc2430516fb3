//! Bucket operations through aws-sdk-s3.

use crate::harness::{Server, err_code, err_status};

#[tokio::test]
async fn bucket_life_cycle() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("photos").send().await.unwrap();
    s3.create_bucket().bucket("archive").send().await.unwrap();

    let list = s3.list_buckets().send().await.unwrap();
    let names: Vec<_> = list.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["archive", "photos"]);
    assert!(list.buckets()[0].creation_date().is_some());
    assert_eq!(list.owner().and_then(|o| o.id()), Some("stowage"));

    let head = s3.head_bucket().bucket("photos").send().await.unwrap();
    assert_eq!(head.bucket_region(), Some("us-east-1"));

    // Owned already: 200 in us-east-1, and nothing changes.
    s3.create_bucket().bucket("photos").send().await.unwrap();
    assert_eq!(s3.list_buckets().send().await.unwrap().buckets().len(), 2);

    s3.delete_bucket().bucket("archive").send().await.unwrap();
    let gone = s3.head_bucket().bucket("archive").send().await.unwrap_err();
    assert_eq!(err_status(&gone), 404);
    let gone = s3
        .delete_bucket()
        .bucket("archive")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&gone), "NoSuchBucket");
}

#[tokio::test]
async fn bucket_names_follow_s3_rules() {
    let server = Server::start();
    let s3 = server.client();
    for bad in ["ab", "Upper", "under_score", "-dash", "192.168.0.1"] {
        let e = s3.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!(err_code(&e), "InvalidBucketName", "{bad}");
    }
    assert!(s3.list_buckets().send().await.unwrap().buckets().is_empty());
}

#[tokio::test]
async fn non_empty_bucket_is_not_deleted() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("full").send().await.unwrap();
    s3.put_object()
        .bucket("full")
        .key("k")
        .body("x".as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let e = s3.delete_bucket().bucket("full").send().await.unwrap_err();
    assert_eq!(err_code(&e), "BucketNotEmpty");
    let got = s3
        .get_object()
        .bucket("full")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"x"
    );
    s3.delete_object()
        .bucket("full")
        .key("k")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("full").send().await.unwrap();
}

#[tokio::test]
async fn location_versioning_and_acl_answer_like_an_unversioned_s3_bucket() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt1").send().await.unwrap();
    let loc = s3
        .get_bucket_location()
        .bucket("bkt1")
        .send()
        .await
        .unwrap();
    assert!(
        loc.location_constraint()
            .is_none_or(|c| c.as_str().is_empty())
    );
    let v = s3
        .get_bucket_versioning()
        .bucket("bkt1")
        .send()
        .await
        .unwrap();
    assert!(v.status().is_none());
    let acl = s3.get_bucket_acl().bucket("bkt1").send().await.unwrap();
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(
        acl.grants()[0].permission().map(|p| p.as_str()),
        Some("FULL_CONTROL")
    );
    s3.put_bucket_acl()
        .bucket("bkt1")
        .acl(aws_sdk_s3::types::BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let e = s3
        .get_bucket_location()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchBucket");
}

#[tokio::test]
async fn unsupported_operations_answer_not_implemented() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt1").send().await.unwrap();
    let e = s3
        .get_bucket_website()
        .bucket("bkt1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NotImplemented");
    assert_eq!(err_status(&e), 501);
    let e = s3
        .get_bucket_replication()
        .bucket("bkt1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 501);
}

/// The log says which configuration was loaded, never prints a configured
/// secret (the public development pair it does print, for a binary copied
/// without its README), and keeps ERROR for server faults: a documented 501
/// is a client's question, logged at INFO.
#[tokio::test]
async fn the_log_names_its_configuration_and_keeps_secrets_and_errors_apart() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let e = s3
        .get_bucket_website()
        .bucket("bkt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 501);
    let log = server.log_when("status=501");
    assert!(
        log.contains("configuration: ") && log.contains(".toml"),
        "{log}"
    );
    assert!(log.contains("access_key_id=\"stowage\""), "{log}");
    assert!(log.contains("stowage-dev-secret"), "{log}");
    let configured = Server::start_with_config(
        "[[credentials]]\naccess_key_id = \"ops\"\nsecret_access_key = \"ops-very-secret\"",
        "",
    );
    let configured_log = configured.log();
    assert!(configured_log.contains("listening on"), "{configured_log}");
    assert!(
        !configured_log.contains("ops-very-secret"),
        "{configured_log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("status=501"))
        .expect("the 501 is logged");
    assert!(line.contains(" INFO ") && !line.contains("ERROR"), "{line}");
}
