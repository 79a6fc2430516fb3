//! The multipart life cycle through aws-sdk-s3.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{Server, err_code, err_status, md5_hex, multipart_etag, put, random_bytes};

const MIB: usize = 1 << 20;

async fn setup() -> (Server, Client) {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    (server, s3)
}

async fn create(s3: &Client, key: &str) -> String {
    let out = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key(key)
        .send()
        .await
        .unwrap();
    out.upload_id().unwrap().to_owned()
}

async fn upload(s3: &Client, key: &str, id: &str, n: i32, data: &[u8]) -> String {
    let out = s3
        .upload_part()
        .bucket("bkt")
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap();
    out.e_tag().unwrap().to_owned()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

#[tokio::test]
async fn upload_in_parts_and_read_back_whole_and_by_part() {
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "big", b"old").await;
    let created = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("big")
        .content_type("video/mp4")
        .metadata("origin", "camera")
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap().to_owned();
    assert_eq!(created.key(), Some("big"));
    let p1 = random_bytes(5 * MIB, 10);
    let p2 = random_bytes(5 * MIB + 17, 11);
    let p3 = random_bytes(1234, 12);
    let e1 = upload(&s3, "big", &id, 1, &p1).await;
    let e2 = upload(&s3, "big", &id, 2, &p2).await;
    // Parts may arrive in any order and part numbers may have gaps.
    let e3 = upload(&s3, "big", &id, 7, &p3).await;
    assert_eq!(e1, format!("\"{}\"", md5_hex(&p1)));

    let done = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("big")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (7, &e3)]))
        .send()
        .await
        .unwrap();
    let etag = multipart_etag(&[&p1, &p2, &p3]);
    assert_eq!(done.e_tag(), Some(etag.as_str()));

    let whole = [p1.as_slice(), &p2, &p3].concat();
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("big")
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.content_type(), Some("video/mp4"));
    assert_eq!(
        got.metadata().unwrap().get("origin").map(String::as_str),
        Some("camera")
    );
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        whole.as_slice()
    );

    // A range across the part boundary.
    let start = 5 * MIB - 10;
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("big")
        .range(format!("bytes={start}-{}", start + 19))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &whole[start..start + 20]
    );

    let part2 = s3
        .get_object()
        .bucket("bkt")
        .key("big")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(part2.parts_count(), Some(3));
    assert_eq!(
        part2.content_range(),
        Some(
            format!(
                "bytes {}-{}/{}",
                p1.len(),
                p1.len() + p2.len() - 1,
                whole.len()
            )
            .as_str()
        )
    );
    assert_eq!(
        part2.body.collect().await.unwrap().into_bytes().as_ref(),
        p2.as_slice()
    );
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("big")
        .part_number(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 416);
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("big")
        .part_number(3)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(p3.len() as i64));

    // The upload is gone; a retried Complete replays its success.
    let again = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("big")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (7, &e3)]))
        .send()
        .await
        .unwrap();
    assert_eq!(again.e_tag(), Some(etag.as_str()));
    let e = s3
        .list_parts()
        .bucket("bkt")
        .key("big")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchUpload");
}

#[tokio::test]
async fn list_parts_paginates_and_reupload_replaces() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    for n in 1..=5 {
        upload(&s3, "k", &id, n, format!("part {n}").as_bytes()).await;
    }
    let replaced = upload(&s3, "k", &id, 3, b"part three, again").await;
    let page = s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .max_parts(2)
        .send()
        .await
        .unwrap();
    let numbers: Vec<_> = page
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let page = s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .part_number_marker("2")
        .send()
        .await
        .unwrap();
    let numbers: Vec<_> = page
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [3, 4, 5]);
    assert_eq!(page.is_truncated(), Some(false));
    assert_eq!(page.parts()[0].e_tag(), Some(replaced.as_str()));
    assert_eq!(page.parts()[0].size(), Some(17));
}

#[tokio::test]
async fn completion_errors_are_s3s() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let small = upload(&s3, "k", &id, 1, b"too small").await;
    let last = upload(&s3, "k", &id, 2, b"last").await;

    let complete = |parts: Vec<(i32, String)>| {
        let s3 = s3.clone();
        let id = id.clone();
        async move {
            let refs: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            s3.complete_multipart_upload()
                .bucket("bkt")
                .key("k")
                .upload_id(id)
                .multipart_upload(completed(&refs))
                .send()
                .await
        }
    };
    let e = complete(vec![(1, small.clone()), (2, last.clone())])
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "EntityTooSmall");
    let e = complete(vec![(2, last.clone()), (1, small.clone())])
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidPartOrder");
    let e = complete(vec![(1, "\"00000000000000000000000000000000\"".into())])
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidPart");
    let e = complete(vec![(3, last.clone())]).await.unwrap_err();
    assert_eq!(err_code(&e), "InvalidPart");
    // Failed completions change nothing: the upload is still whole.
    let parts = s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 2);
    // A single small part is a valid (last) part.
    complete(vec![(2, last.clone())]).await.unwrap();
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"last"
    );

    let e = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id("no-such-upload")
        .multipart_upload(completed(&[(1, &small)]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchUpload");
}

#[tokio::test]
async fn part_numbers_outside_1_to_10000_are_refused() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    for n in [0, 10001] {
        let e = s3
            .upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_code(&e), "InvalidArgument", "part {n}");
    }
    upload(&s3, "k", &id, 10000, b"x").await;
    let e = s3
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id("bogus")
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchUpload");
}

#[tokio::test]
async fn abort_discards_the_upload() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let e1 = upload(&s3, "k", &id, 1, b"data").await;
    s3.abort_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let e = s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchUpload");
    let e = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1)]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchUpload");
    let e = s3
        .abort_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_status(&e), 404);
    let e = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "NoSuchKey");
}

#[tokio::test]
async fn list_multipart_uploads_orders_and_paginates() {
    let (_server, s3) = setup().await;
    let a1 = create(&s3, "a").await;
    let a2 = create(&s3, "a").await;
    let _d = create(&s3, "dir/x").await;
    let _e = create(&s3, "dir/y").await;
    let z = create(&s3, "z").await;
    let all = s3
        .list_multipart_uploads()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let got: Vec<_> = all
        .uploads()
        .iter()
        .map(|u| (u.key().unwrap(), u.upload_id().unwrap()))
        .collect();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], ("a", a1.as_str()));
    assert_eq!(got[1], ("a", a2.as_str()));
    assert_eq!(got[4], ("z", z.as_str()));

    let rolled = s3
        .list_multipart_uploads()
        .bucket("bkt")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.uploads().len(), 3);
    let prefixes: Vec<_> = rolled
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir/"]);

    let page = s3
        .list_multipart_uploads()
        .bucket("bkt")
        .max_uploads(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_key_marker(), Some("a"));
    assert_eq!(page.next_upload_id_marker(), Some(a1.as_str()));
    let next = s3
        .list_multipart_uploads()
        .bucket("bkt")
        .key_marker("a")
        .upload_id_marker(&a1)
        .max_uploads(1)
        .send()
        .await
        .unwrap();
    assert_eq!(next.uploads()[0].upload_id(), Some(a2.as_str()));
    // A key marker alone skips every upload of that key.
    let next = s3
        .list_multipart_uploads()
        .bucket("bkt")
        .key_marker("a")
        .send()
        .await
        .unwrap();
    assert_eq!(next.uploads()[0].key(), Some("dir/x"));
    let prefixed = s3
        .list_multipart_uploads()
        .bucket("bkt")
        .prefix("dir/")
        .send()
        .await
        .unwrap();
    assert_eq!(prefixed.uploads().len(), 2);
}

#[tokio::test]
async fn upload_part_copy_with_ranges() {
    let (_server, s3) = setup().await;
    let src = random_bytes(6 * MIB, 20);
    put(&s3, "bkt", "src", src.clone()).await;
    let id = create(&s3, "dst").await;
    let c1 = s3
        .upload_part_copy()
        .bucket("bkt")
        .key("dst")
        .upload_id(&id)
        .part_number(1)
        .copy_source("bkt/src")
        .send()
        .await
        .unwrap();
    let e1 = c1.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    assert_eq!(e1, format!("\"{}\"", md5_hex(&src)));
    let c2 = s3
        .upload_part_copy()
        .bucket("bkt")
        .key("dst")
        .upload_id(&id)
        .part_number(2)
        .copy_source("bkt/src")
        .copy_source_range("bytes=100-199")
        .send()
        .await
        .unwrap();
    let e2 = c2.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    let e = s3
        .upload_part_copy()
        .bucket("bkt")
        .key("dst")
        .upload_id(&id)
        .part_number(3)
        .copy_source("bkt/src")
        .copy_source_range(format!("bytes=0-{}", src.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRange");
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("dst")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("dst")
        .send()
        .await
        .unwrap();
    let want = [src.as_slice(), &src[100..200]].concat();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        want.as_slice()
    );
}

#[tokio::test]
async fn conditional_completion() {
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "k", b"first").await;
    let id = create(&s3, "k").await;
    let e1 = upload(&s3, "k", &id, 1, b"second").await;
    let e = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .if_none_match("*")
        .multipart_upload(completed(&[(1, &e1)]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "PreconditionFailed");
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"first"
    );
    // The upload survives a failed condition and can still complete.
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1)]))
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"second"
    );
}
