//! Multipart checksum types: COMPOSITE (a checksum of the part checksums,
//! `-N`) and FULL_OBJECT (the CRC of the whole object, which Stowage
//! combines from the part CRCs). aws-sdk-s3 computes and sends every part
//! checksum; the expected object values are computed here from the bytes,
//! directly with the hash crates.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::Digest as _;

use crate::harness::{Server, err_code, random_bytes};

/// The raw digest of `data` under `algorithm`.
fn digest(algorithm: &ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    use crc_fast::CrcAlgorithm as C;
    let crc = |c, bytes: usize| {
        let v = crc_fast::checksum(c, data);
        v.to_be_bytes()[8 - bytes..].to_vec()
    };
    match algorithm {
        ChecksumAlgorithm::Crc32 => crc(C::Crc32IsoHdlc, 4),
        ChecksumAlgorithm::Crc32C => crc(C::Crc32Iscsi, 4),
        ChecksumAlgorithm::Crc64Nvme => crc(C::Crc64Nvme, 8),
        ChecksumAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
        ChecksumAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        other => panic!("{other:?}"),
    }
}

/// The object checksum S3 gives a multipart upload of `parts`.
fn expected(algorithm: &ChecksumAlgorithm, kind: &ChecksumType, parts: &[Vec<u8>]) -> String {
    match kind {
        ChecksumType::Composite => {
            let joined: Vec<u8> = parts.iter().flat_map(|p| digest(algorithm, p)).collect();
            format!("{}-{}", B64.encode(digest(algorithm, &joined)), parts.len())
        }
        _ => B64.encode(digest(algorithm, &parts.concat())),
    }
}

macro_rules! checksum_of {
    ($out:expr, $algorithm:expr) => {
        match $algorithm {
            ChecksumAlgorithm::Crc32 => $out.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => $out.checksum_crc32_c(),
            ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64_nvme(),
            ChecksumAlgorithm::Sha1 => $out.checksum_sha1(),
            ChecksumAlgorithm::Sha256 => $out.checksum_sha256(),
            _ => None,
        }
        .map(str::to_owned)
    };
}

fn completed(
    algorithm: &ChecksumAlgorithm,
    n: i32,
    etag: &str,
    value: Option<String>,
) -> CompletedPart {
    let b = CompletedPart::builder().part_number(n).e_tag(etag);
    match algorithm {
        ChecksumAlgorithm::Crc32 => b.set_checksum_crc32(value),
        ChecksumAlgorithm::Crc32C => b.set_checksum_crc32_c(value),
        ChecksumAlgorithm::Crc64Nvme => b.set_checksum_crc64_nvme(value),
        ChecksumAlgorithm::Sha1 => b.set_checksum_sha1(value),
        ChecksumAlgorithm::Sha256 => b.set_checksum_sha256(value),
        _ => b,
    }
    .build()
}

/// Uploads `parts` to a new upload of `key`; returns its id and the
/// completed-part list (with the part checksums the server echoed).
async fn upload_parts(
    s3: &Client,
    key: &str,
    algorithm: &ChecksumAlgorithm,
    kind: &ChecksumType,
    parts: &[Vec<u8>],
) -> (String, Vec<CompletedPart>) {
    let created = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key(key)
        .checksum_algorithm(algorithm.clone())
        .checksum_type(kind.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.checksum_algorithm(), Some(algorithm));
    assert_eq!(created.checksum_type(), Some(kind));
    let id = created.upload_id.unwrap();
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("bkt")
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let echoed = checksum_of!(out, algorithm).expect("part checksum echoed");
        assert_eq!(echoed, B64.encode(digest(algorithm, data)), "part {n}");
        done.push(completed(algorithm, n, out.e_tag().unwrap(), Some(echoed)));
    }
    (id, done)
}

async fn head_with_checksum(
    s3: &Client,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    s3.head_object()
        .bucket("bkt")
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap()
}

fn test_parts() -> Vec<Vec<u8>> {
    vec![
        random_bytes(3000, 1),
        random_bytes(2048, 2),
        random_bytes(777, 3),
    ]
}

#[tokio::test]
async fn composite_and_full_object_checksums_have_s3s_values() {
    let server = Server::start_with("min_part_size = 1024");
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let parts = test_parts();
    let cases = [
        (ChecksumAlgorithm::Sha256, ChecksumType::Composite),
        (ChecksumAlgorithm::Sha1, ChecksumType::Composite),
        (ChecksumAlgorithm::Crc32, ChecksumType::Composite),
        (ChecksumAlgorithm::Crc32C, ChecksumType::Composite),
        (ChecksumAlgorithm::Crc32, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc32C, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::FullObject),
    ];
    for (algorithm, kind) in cases {
        let key = format!("{}-{}", algorithm.as_str(), kind.as_str());
        let want = expected(&algorithm, &kind, &parts);
        let (id, done) = upload_parts(&s3, &key, &algorithm, &kind, &parts).await;
        let out = s3
            .complete_multipart_upload()
            .bucket("bkt")
            .key(&key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            checksum_of!(out, &algorithm).as_deref(),
            Some(want.as_str()),
            "{key}"
        );
        assert_eq!(out.checksum_type(), Some(&kind), "{key}");

        let head = s3
            .head_object()
            .bucket("bkt")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(
            checksum_of!(head, &algorithm).as_deref(),
            Some(want.as_str()),
            "{key}"
        );
        assert_eq!(head.checksum_type(), Some(&kind), "{key}");

        // One part read alone carries that part's checksum.
        let part = s3
            .get_object()
            .bucket("bkt")
            .key(&key)
            .part_number(2)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let part_value = B64.encode(digest(&algorithm, &parts[1]));
        assert_eq!(
            checksum_of!(part, &algorithm).as_deref(),
            Some(part_value.as_str())
        );
        let body = part.body.collect().await.unwrap().into_bytes();
        assert!(body.as_ref() == parts[1].as_slice());

        // GetObjectAttributes: no `-N`; parts listed for composite objects.
        let attrs = s3
            .get_object_attributes()
            .bucket("bkt")
            .key(&key)
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::Etag)
            .max_parts(2)
            .send()
            .await
            .unwrap();
        let c = attrs.checksum().unwrap();
        let bare = want.split('-').next().unwrap();
        assert_eq!(checksum_of!(c, &algorithm).as_deref(), Some(bare), "{key}");
        assert_eq!(c.checksum_type(), Some(&kind));
        assert_eq!(attrs.object_size(), Some(parts.concat().len() as i64));
        assert!(attrs.e_tag().unwrap().ends_with("-3"));
        let listed = attrs.object_parts().unwrap();
        assert_eq!(listed.total_parts_count(), Some(3));
        if kind == ChecksumType::Composite {
            assert_eq!(listed.parts().len(), 2, "max-parts pages");
            assert_eq!(listed.is_truncated(), Some(true));
            let p2 = &listed.parts()[1];
            assert_eq!((p2.part_number(), p2.size()), (Some(2), Some(2048)));
            assert_eq!(checksum_of!(p2, &algorithm), Some(part_value));
        } else {
            assert!(listed.parts().is_empty());
        }
    }
}

#[tokio::test]
async fn an_upload_without_an_algorithm_gets_a_full_object_crc64nvme() {
    let server = Server::start_with("min_part_size = 1024");
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let parts = test_parts();
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("plain")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        // Bodies with no checksum at all (the SDK would add its default
        // CRC32): the server computes a CRC64NVME for each part.
        let n = i + 1;
        let mut request = format!(
            "PUT /bkt/plain?partNumber={n}&uploadId={id} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        )
        .into_bytes();
        request.extend_from_slice(data);
        let r = server.raw(&request);
        assert_eq!(r.status, 200, "{}", r.body_str());
        let part_crc = B64.encode(digest(&ChecksumAlgorithm::Crc64Nvme, data));
        assert_eq!(
            r.header("x-amz-checksum-crc64nvme"),
            Some(part_crc.as_str())
        );
        done.push(
            CompletedPart::builder()
                .part_number(n as i32)
                .e_tag(r.header("etag").unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("plain")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let head = head_with_checksum(&s3, "plain").await;
    let crc = ChecksumAlgorithm::Crc64Nvme;
    let want = expected(&crc, &ChecksumType::FullObject, &parts);
    assert_eq!(head.checksum_crc64_nvme(), Some(want.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
}

#[tokio::test]
async fn checksum_rules_are_enforced_and_a_failed_complete_changes_nothing() {
    let server = Server::start_with("min_part_size = 1024");
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();

    // Combinations S3 refuses.
    for (algorithm, kind) in [
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::Composite),
        (ChecksumAlgorithm::Sha256, ChecksumType::FullObject),
        (ChecksumAlgorithm::Sha1, ChecksumType::FullObject),
    ] {
        let e = s3
            .create_multipart_upload()
            .bucket("bkt")
            .key("k")
            .checksum_algorithm(algorithm)
            .checksum_type(kind)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_code(&e), "InvalidRequest");
    }
    let e = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest", "a type needs an algorithm");

    let parts = test_parts();
    let sha = ChecksumAlgorithm::Sha256;
    let (id, done) = upload_parts(&s3, "k", &sha, &ChecksumType::Composite, &parts).await;
    // A part of another algorithm is refused.
    let e = s3
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .part_number(4)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest");

    let complete = |parts: Vec<CompletedPart>| {
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
    };
    // A composite completion must list every part's checksum...
    let mut missing = done.clone();
    missing[1] = CompletedPart::builder()
        .part_number(2)
        .e_tag(done[1].e_tag().unwrap())
        .build();
    let e = complete(missing).send().await.unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest");
    // ...and each must be the one uploaded.
    let mut wrong = done.clone();
    wrong[0] = completed(
        &sha,
        1,
        done[0].e_tag().unwrap(),
        Some(B64.encode([0u8; 32])),
    );
    let e = complete(wrong).send().await.unwrap_err();
    assert_eq!(err_code(&e), "InvalidPart");
    // An expected object checksum that does not match is BadDigest.
    let e = complete(done.clone())
        .checksum_sha256(format!("{}-3", B64.encode([1u8; 32])))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "BadDigest");
    // One expected checksum at most.
    let e = complete(done.clone())
        .checksum_sha256(format!("{}-3", B64.encode([1u8; 32])))
        .checksum_crc32("AAAAAA==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequest");
    // None of that touched the upload: the right request completes it.
    let want = expected(&sha, &ChecksumType::Composite, &parts);
    let out = complete(done).checksum_sha256(&want).send().await.unwrap();
    assert_eq!(out.checksum_sha256(), Some(want.as_str()));
}

#[tokio::test]
async fn get_object_attributes_of_a_single_part_object_and_bad_requests() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = random_bytes(5000, 4);
    crate::harness::put(&s3, "bkt", "one", data.clone()).await;
    let attrs = s3
        .get_object_attributes()
        .bucket("bkt")
        .key("one")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::StorageClass)
        .object_attributes(ObjectAttributes::Checksum)
        .send()
        .await
        .unwrap();
    assert_eq!(attrs.e_tag(), Some(crate::harness::md5_hex(&data).as_str()));
    assert!(
        attrs.object_parts().is_none(),
        "a single-part object has no parts"
    );
    assert_eq!(attrs.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    assert!(attrs.checksum().is_some(), "the stored checksum");
    assert!(attrs.last_modified().is_some());

    let get = |attributes: &str| {
        server.raw(
            format!(
                "GET /bkt/one?attributes HTTP/1.1\r\nHost: localhost\r\n{attributes}Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let r = get("");
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidRequest"));
    let r = get("x-amz-object-attributes: ETag,Etags\r\n");
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    let r = get("x-amz-object-attributes: ObjectSize\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body_str().contains("<ObjectSize>5000</ObjectSize>"));
    assert!(!r.body_str().contains("<ETag>"), "only what was asked");
    let e = s3
        .get_object_attributes()
        .bucket("bkt")
        .key("missing")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchKey");
}

#[tokio::test]
async fn sdk_crc32_parts_of_an_upload_without_an_algorithm_still_give_a_full_object_crc64nvme() {
    let server = Server::start_with("min_part_size = 1024");
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let parts = test_parts();
    let crc = ChecksumAlgorithm::Crc32;
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let out = s3
            .upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .checksum_algorithm(crc.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        done.push(completed(&crc, i as i32 + 1, out.e_tag().unwrap(), None));
    }
    // An expected checksum of another algorithm is ignored for an upload
    // that named none, as S3 does.
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .checksum_sha256(B64.encode([7u8; 32]))
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let head = head_with_checksum(&s3, "k").await;
    // As S3 does: the server's own CRC64NVME of every part, combined.
    let want = expected(
        &ChecksumAlgorithm::Crc64Nvme,
        &ChecksumType::FullObject,
        &parts,
    );
    assert_eq!(head.checksum_crc64_nvme(), Some(want.as_str()));
    assert!(head.checksum_crc32().is_none());
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
    // The copy keeps it, and says so.
    let copy = s3
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/k")
        .send()
        .await
        .unwrap();
    let result = copy.copy_object_result().unwrap();
    assert_eq!(result.checksum_crc64_nvme(), Some(want.as_str()));
}
