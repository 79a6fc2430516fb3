//! Canned ACLs and the anonymous-read bucket policy: aws-sdk-s3 sets and
//! reads them; raw unsigned HTTP is the anonymous reader they let in, and
//! a second key is the "authenticated user".

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, CompletedMultipartUpload, CompletedPart, Grant, Grantee,
    ObjectCannedAcl, Owner, Permission, Type,
};

use crate::harness::{Server, err_code};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

const KEYS: &str = r#"
public_read_buckets = ["www"]

[[credentials]]
access_key_id = "alice"
secret_access_key = "alice-secret"

[[credentials]]
access_key_id = "bob"
secret_access_key = "bob-secret"
"#;

/// An unsigned GET of `path`: its status.
fn anonymous_get(server: &Server, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    server.raw_unsigned(request.as_bytes()).status
}

/// The group read grant of an ACL answer, if any.
fn group_read(grants: &[Grant]) -> Option<String> {
    grants
        .iter()
        .filter(|g| g.permission() == Some(&Permission::Read))
        .find_map(|g| g.grantee().and_then(|e| e.uri()).map(str::to_owned))
}

#[tokio::test]
async fn canned_acls_decide_who_lists_and_reads() {
    let server = Server::start_with_config(KEYS, "");
    let alice = server.client_as("alice", "alice-secret");
    let bob = server.client_as("bob", "bob-secret");
    alice
        .create_bucket()
        .bucket("pub")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let acl = alice.get_bucket_acl().bucket("pub").send().await.unwrap();
    assert_eq!(group_read(acl.grants()).as_deref(), Some(ALL_USERS));
    assert_eq!(acl.owner().and_then(|o| o.id()), Some("alice"));

    for (key, canned) in [
        ("private", None),
        ("public", Some(ObjectCannedAcl::PublicRead)),
        ("members", Some(ObjectCannedAcl::AuthenticatedRead)),
    ] {
        alice
            .put_object()
            .bucket("pub")
            .key(key)
            .set_acl(canned)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    }
    // A public-read bucket lists for anyone, but its objects keep their
    // own ACLs, as on S3.
    assert_eq!(anonymous_get(&server, "/pub?list-type=2"), 200);
    assert_eq!(anonymous_get(&server, "/pub/public"), 200);
    assert_eq!(anonymous_get(&server, "/pub/private"), 403);
    assert_eq!(anonymous_get(&server, "/pub/members"), 403);
    assert_eq!(anonymous_get(&server, "/pub/missing"), 404, "it may list");
    let got = bob
        .get_object()
        .bucket("pub")
        .key("members")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes(), "data");
    let e = bob
        .get_object()
        .bucket("pub")
        .key("private")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");
    // Reading is all an ACL grants.
    let e = bob
        .put_object()
        .bucket("pub")
        .key("public")
        .body(ByteStream::from_static(b"mine"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");
    let e = bob
        .get_object_acl()
        .bucket("pub")
        .key("public")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");

    // PutObjectAcl and PutBucketAcl change them; a private bucket is not
    // listed, a missing key in it is not revealed.
    alice
        .put_object_acl()
        .bucket("pub")
        .key("public")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&server, "/pub/public"), 403);
    alice
        .put_bucket_acl()
        .bucket("pub")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&server, "/pub?list-type=2"), 403);
    assert_eq!(anonymous_get(&server, "/pub/missing"), 403);
    let acl = alice.get_bucket_acl().bucket("pub").send().await.unwrap();
    assert_eq!(group_read(acl.grants()), None);
    assert_eq!(acl.grants().len(), 1, "the owner's full control");
}

#[tokio::test]
async fn acl_bodies_round_trip_and_other_grants_are_refused() {
    let server = Server::start_with_config(KEYS, "");
    let alice = server.client_as("alice", "alice-secret");
    alice.create_bucket().bucket("bkt").send().await.unwrap();
    alice
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .unwrap();
    // What s3cmd does after every copy: send back what GetObjectAcl says.
    let got = alice
        .get_object_acl()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    let policy = AccessControlPolicy::builder()
        .set_owner(got.owner().cloned())
        .set_grants(Some(got.grants().to_vec()))
        .build();
    alice
        .put_object_acl()
        .bucket("bkt")
        .key("k")
        .access_control_policy(policy)
        .send()
        .await
        .unwrap();
    // The owner plus AllUsers READ is public-read.
    let owner_grant = got.grants()[0].clone();
    let everyone = Grant::builder()
        .grantee(
            Grantee::builder()
                .r#type(Type::Group)
                .uri(ALL_USERS)
                .build()
                .unwrap(),
        )
        .permission(Permission::Read)
        .build();
    let policy = |grants: Vec<Grant>| {
        AccessControlPolicy::builder()
            .owner(Owner::builder().id("alice").build())
            .set_grants(Some(grants))
            .build()
    };
    alice
        .put_object_acl()
        .bucket("bkt")
        .key("k")
        .access_control_policy(policy(vec![owner_grant.clone(), everyone]))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&server, "/bkt/k"), 200);
    let acl = alice
        .get_object_acl()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(group_read(acl.grants()).as_deref(), Some(ALL_USERS));

    // Anonymous writes and grants to other accounts are refused, saying
    // so, and change nothing.
    let public_write = Grant::builder()
        .grantee(
            Grantee::builder()
                .r#type(Type::Group)
                .uri(ALL_USERS)
                .build()
                .unwrap(),
        )
        .permission(Permission::Write)
        .build();
    let to_bob = Grant::builder()
        .grantee(
            Grantee::builder()
                .r#type(Type::CanonicalUser)
                .id("bob")
                .build()
                .unwrap(),
        )
        .permission(Permission::Read)
        .build();
    for grant in [public_write, to_bob] {
        let e = alice
            .put_object_acl()
            .bucket("bkt")
            .key("k")
            .access_control_policy(policy(vec![owner_grant.clone(), grant]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_code(&e), "NotImplemented");
        let message = e.into_service_error().meta().message().unwrap().to_owned();
        assert!(message.contains("not supported"), "{message}");
    }
    let e = alice
        .put_bucket_acl()
        .bucket("bkt")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NotImplemented");
    let e = alice
        .put_object_acl()
        .bucket("bkt")
        .key("k")
        .grant_read("id=\"bob\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NotImplemented");
    assert_eq!(anonymous_get(&server, "/bkt/k"), 200, "unchanged");
    // Grant headers that a canned ACL expresses are accepted.
    alice
        .put_object_acl()
        .bucket("bkt")
        .key("k")
        .grant_read(format!("uri=\"{AUTHENTICATED_USERS}\""))
        .grant_full_control("id=\"alice\"")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&server, "/bkt/k"), 403);
}

#[tokio::test]
async fn uploads_and_copies_take_the_acl_they_are_given() {
    let server = Server::start_with_config(KEYS, "");
    let alice = server.client_as("alice", "alice-secret");
    alice.create_bucket().bucket("bkt").send().await.unwrap();
    let upload = alice
        .create_multipart_upload()
        .bucket("bkt")
        .key("mpu")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = alice
        .upload_part()
        .bucket("bkt")
        .key("mpu")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap();
    // Until it completes, there is nothing to read.
    assert_eq!(anonymous_get(&server, "/bkt/mpu"), 403);
    alice
        .complete_multipart_upload()
        .bucket("bkt")
        .key("mpu")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&server, "/bkt/mpu"), 200);
    // A copy does not inherit its source's ACL, as on S3.
    for (key, acl) in [
        ("copy", None),
        ("public-copy", Some(ObjectCannedAcl::PublicRead)),
    ] {
        alice
            .copy_object()
            .bucket("bkt")
            .key(key)
            .copy_source("bkt/mpu")
            .set_acl(acl)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(anonymous_get(&server, "/bkt/copy"), 403);
    assert_eq!(anonymous_get(&server, "/bkt/public-copy"), 200);
    // Another key may copy what it may read.
    let bob = server.client_as("bob", "bob-secret");
    bob.create_bucket().bucket("bobs").send().await.unwrap();
    bob.copy_object()
        .bucket("bobs")
        .key("k")
        .copy_source("bkt/public-copy")
        .send()
        .await
        .unwrap();
    let e = bob
        .copy_object()
        .bucket("bobs")
        .key("k2")
        .copy_source("bkt/copy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDenied");
}

#[tokio::test]
async fn the_anonymous_read_policy_opens_every_object() {
    let server = Server::start_with_config(KEYS, "");
    let alice = server.client_as("alice", "alice-secret");
    alice.create_bucket().bucket("site").send().await.unwrap();
    alice
        .put_object()
        .bucket("site")
        .key("index.html")
        .body(ByteStream::from_static(b"<h1>hi</h1>"))
        .send()
        .await
        .unwrap();
    let e = alice
        .get_bucket_policy()
        .bucket("site")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchBucketPolicy");
    assert_eq!(anonymous_get(&server, "/site/index.html"), 403);

    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicReadGetObject","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::site/*"]}]}"#;
    alice
        .put_bucket_policy()
        .bucket("site")
        .policy(policy)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&server, "/site/index.html"), 200);
    assert_eq!(
        anonymous_get(&server, "/site?list-type=2"),
        403,
        "not listing"
    );
    // Without listing, a missing key is not revealed (403, as on S3).
    assert_eq!(anonymous_get(&server, "/site/missing.html"), 403);
    let got = alice
        .get_bucket_policy()
        .bucket("site")
        .send()
        .await
        .unwrap();
    let doc = got.policy().unwrap();
    assert!(
        doc.contains("arn:aws:s3:::site/*") && doc.contains("s3:GetObject"),
        "{doc}"
    );

    let write = policy.replace("s3:GetObject", "s3:PutObject");
    let e = alice
        .put_bucket_policy()
        .bucket("site")
        .policy(write)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NotImplemented");
    let other = policy.replace("site/*", "elsewhere/*");
    let e = alice
        .put_bucket_policy()
        .bucket("site")
        .policy(other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "MalformedPolicy");
    assert_eq!(anonymous_get(&server, "/site/index.html"), 200, "unchanged");

    alice
        .delete_bucket_policy()
        .bucket("site")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&server, "/site/index.html"), 403);
}

#[tokio::test]
async fn public_read_buckets_in_the_config_show_as_acl_and_policy() {
    let server = Server::start_with_config(KEYS, "");
    let alice = server.client_as("alice", "alice-secret");
    alice.create_bucket().bucket("www").send().await.unwrap();
    let acl = alice.get_bucket_acl().bucket("www").send().await.unwrap();
    assert_eq!(group_read(acl.grants()).as_deref(), Some(ALL_USERS));
    let got = alice
        .get_bucket_policy()
        .bucket("www")
        .send()
        .await
        .unwrap();
    assert!(got.policy().unwrap().contains("arn:aws:s3:::www/*"));
    // The configuration wins; changing it here would not take effect.
    let e = alice
        .put_bucket_acl()
        .bucket("www")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest");
    let e = alice
        .delete_bucket_policy()
        .bucket("www")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest");
}
