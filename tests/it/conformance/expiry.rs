//! Background work and counters: expired uploads found and aborted,
//! expired objects deleted only while unchanged, and `stats()` after a
//! known sequence of operations.

use std::sync::Arc;
use std::time::Duration;

use stowage::error::Code;
use stowage::store::model::*;
use stowage::time::now_ms;

use super::*;

conformance!(
    expired_uploads_are_found_oldest_first_and_aborted_once,
    |meta| async move {
        new_bucket(&meta, "b1").await;
        new_bucket(&meta, "b2").await;
        let now = now_ms();
        let mut blobs = Vec::new();
        let mut upload = |bucket: &'static str, key: &'static str, age_days: i64, sizes: &[u64]| {
            let meta = Arc::clone(&meta);
            let parts: Vec<PartRecord> = sizes.iter().map(|s| part(*s)).collect();
            blobs.push(parts.iter().map(|p| p.blob).collect::<Vec<_>>());
            async move {
                let at = now - age_days * DAY_MS;
                let id = meta
                    .create_upload(bucket, key, record_at(at))
                    .await
                    .unwrap();
                for (n, p) in (1..).zip(&parts) {
                    meta.put_part(bucket, key, &id, n, p.clone()).await.unwrap();
                }
                (
                    UploadRef {
                        bucket: bucket.into(),
                        key: key.into(),
                        id,
                        initiated_ms: at,
                        expires_ms: None,
                    },
                    parts,
                )
            }
        };
        // Created out of age order.
        let (old2, _) = upload("b2", "k2", 9, &[7]).await;
        let (old1, old1_parts) = upload("b1", "k1", 10, &[10, 5]).await;
        let (young, _) = upload("b1", "k4", 0, &[3]).await;
        let (old3, _) = upload("b1", "k3", 8, &[4]).await;
        let cutoff = now - DAY_MS;

        let all = meta.uploads_before(cutoff, None, 10).await.unwrap();
        assert_eq!(
            all,
            vec![old1.clone(), old2.clone(), old3.clone()],
            "oldest first"
        );
        let page = meta.uploads_before(cutoff, None, 2).await.unwrap();
        assert_eq!(page, vec![old1.clone(), old2.clone()]);
        let page = meta
            .uploads_before(cutoff, Some(old2.id.clone()), 2)
            .await
            .unwrap();
        assert_eq!(page, vec![old3.clone()]);
        assert!(
            meta.uploads_before(cutoff, Some(old3.id.clone()), 2)
                .await
                .unwrap()
                .is_empty()
        );
        let everything = meta.uploads_before(now + 1, None, 10).await.unwrap();
        assert_eq!(everything.len(), 4);
        assert_eq!(everything[3], young);
        assert!(
            meta.uploads_before(now - 11 * DAY_MS, None, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // One of them completes before the sweep acts: it is spared.
        let numbered: Vec<(u32, &PartRecord)> = (1..).zip(&old1_parts).collect();
        let c = completion(&numbered, 0);
        let head = meta.complete_upload("b1", "k1", &old1.id, c, WriteCondition::None);
        let head = head.await.unwrap();
        let swept = meta.abort_uploads(all.clone()).await.unwrap();
        assert_eq!((swept.aborted, swept.freed_bytes), (2, 7 + 4));
        assert_eq!(meta.head_object("b1", "k1").await.unwrap(), head);
        assert_eq!(
            code(meta.upload("b2", "k2", &old2.id).await),
            Code::NoSuchUpload
        );
        assert_eq!(
            code(meta.upload("b1", "k3", &old3.id).await),
            Code::NoSuchUpload
        );
        assert!(meta.upload("b1", "k4", &young.id).await.is_ok());
        assert!(
            meta.uploads_before(cutoff, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let stats = meta.stats().await.unwrap();
        assert_eq!(
            (stats.incomplete_uploads, stats.incomplete_upload_bytes),
            (1, 3)
        );
        assert_eq!(stats.upload_bytes_by_bucket, vec![("b1".to_owned(), 3)]);

        // Again: nothing left to abort.
        let swept = meta.abort_uploads(all).await.unwrap();
        assert_eq!((swept.aborted, swept.freed_bytes), (0, 0));
        let swept = meta.abort_uploads(Vec::new()).await.unwrap();
        assert_eq!((swept.aborted, swept.freed_bytes), (0, 0));
        // Exactly the aborted parts are freed.
        let freed = sorted([blobs[0].clone(), blobs[3].clone()].concat());
        assert_eq!(drain(&meta).await, freed);
        let kept = sorted(blobs[1].clone());
        assert_eq!(live(&meta, &kept).await, kept);
    }
);

fn judged(key: &str, head: &ObjectHead) -> Expired {
    Expired {
        key: key.into(),
        etag: head.etag.clone(),
        last_modified_ms: head.last_modified_ms,
        tags: head.tags.clone(),
    }
}

conformance!(
    expiry_deletes_only_objects_unchanged_since_judged,
    |meta| async move {
        new_bucket(&meta, "b").await;
        new_bucket(&meta, "b2").await;
        let old = put_inline(&meta, "b", "old", b"old").await;
        let blob = put_blob(&meta, "b", "blob", 10).await;
        let (multi, parts) = put_multipart(&meta, "b", "multi", &[3, 3]).await;
        let new = put_inline(&meta, "b", "new", b"v1").await;
        let same = put_inline(&meta, "b", "same", b"same bytes").await;
        let tagged = put_inline(&meta, "b", "tagged", b"t").await;
        let acl = put_inline(&meta, "b", "acl", b"a").await;
        let gone = put_inline(&meta, "b", "gone", b"g").await;
        let elsewhere = put_inline(&meta, "b2", "old", b"old").await;
        tokio::time::sleep(Duration::from_millis(3)).await;
        // What happens after the sweep judged them.
        put_inline(&meta, "b", "new", b"v2").await;
        put_inline(&meta, "b", "same", b"same bytes").await;
        meta.set_object_tags("b", "tagged", vec![("keep".into(), "me".into())])
            .await
            .unwrap();
        meta.set_object_acl("b", "acl", Acl::PublicRead)
            .await
            .unwrap();
        meta.delete_objects("b", vec!["gone".into()]).await.unwrap();
        assert_eq!(drain(&meta).await, Vec::<BlobId>::new());

        let expired = vec![
            judged("old", &old),
            judged("blob", &blob),
            judged("multi", &multi),
            judged("new", &new),
            judged("same", &same),
            judged("tagged", &tagged),
            judged("acl", &acl),
            judged("gone", &gone),
            judged("never", &old),
        ];
        assert_eq!(meta.expire_objects("b", expired.clone()).await.unwrap(), 4);
        for key in ["old", "blob", "multi", "acl"] {
            assert_eq!(
                code(meta.head_object("b", key).await),
                Code::NoSuchKey,
                "{key}"
            );
        }
        assert_eq!(meta.read_object("b", "new").await.unwrap().1.unwrap(), "v2");
        assert!(
            meta.head_object("b", "same")
                .await
                .unwrap()
                .last_modified_ms
                > same.last_modified_ms
        );
        assert_eq!(meta.head_object("b", "tagged").await.unwrap().tags.len(), 1);
        assert_eq!(
            meta.head_object("b2", "old").await.unwrap(),
            elsewhere,
            "another bucket"
        );
        let mut freed = parts;
        freed.push(blob_of(&blob));
        assert_eq!(drain(&meta).await, sorted(freed));
        // Judged again, nothing is left to expire.
        assert_eq!(meta.expire_objects("b", expired).await.unwrap(), 0);
        assert_eq!(meta.expire_objects("b", Vec::new()).await.unwrap(), 0);
        // Judged as it now is, it goes.
        let now_tagged = meta.head_object("b", "tagged").await.unwrap();
        let e = vec![judged("tagged", &now_tagged)];
        assert_eq!(meta.expire_objects("b", e).await.unwrap(), 1);
    }
);

conformance!(stats_follow_a_known_sequence, |meta| async move {
    assert_eq!(meta.stats().await.unwrap(), Stats::default());
    new_bucket(&meta, "a").await;
    new_bucket(&meta, "b").await;
    // Objects stored, per bucket: (bucket, objects, bytes).
    let mut stored: Vec<(&str, u64, u64)> = Vec::new();
    let stats = |uploads, bytes, by: &[(&str, u64)], garbage, stored: &[(&str, u64, u64)]| Stats {
        incomplete_uploads: uploads,
        incomplete_upload_bytes: bytes,
        upload_bytes_by_bucket: by.iter().map(|(b, n)| (b.to_string(), *n)).collect(),
        garbage_blobs: garbage,
        objects_by_bucket: stored
            .iter()
            .map(|(b, n, s)| (b.to_string(), *n, *s))
            .collect(),
    };
    let ua = meta.create_upload("a", "k", record()).await.unwrap();
    let ub = meta.create_upload("b", "k", record()).await.unwrap();
    let uc = meta.create_upload("a", "empty", record()).await.unwrap();
    assert_eq!(meta.stats().await.unwrap(), stats(3, 0, &[], 0, &stored));
    let (a1, a2, b1) = (part(10), part(20), part(5));
    meta.put_part("a", "k", &ua, 1, a1.clone()).await.unwrap();
    meta.put_part("a", "k", &ua, 2, a2.clone()).await.unwrap();
    meta.put_part("b", "k", &ub, 1, b1.clone()).await.unwrap();
    assert_eq!(
        meta.stats().await.unwrap(),
        stats(3, 35, &[("a", 30), ("b", 5)], 0, &stored)
    );
    // Replacing a part: the new size counts, the old blob is garbage.
    let a2b = part(25);
    meta.put_part("a", "k", &ua, 2, a2b.clone()).await.unwrap();
    assert_eq!(
        meta.stats().await.unwrap(),
        stats(3, 40, &[("a", 35), ("b", 5)], 1, &stored)
    );
    // A refused part counts nothing.
    let r = meta.put_part("a", "k", "0000bogus", 1, part(1000)).await;
    assert_eq!(code(r), Code::NoSuchUpload);
    assert_eq!(
        meta.stats().await.unwrap(),
        stats(3, 40, &[("a", 35), ("b", 5)], 1, &stored)
    );

    let c = completion(&[(1, &a1), (2, &a2b)], 5);
    let head = meta.complete_upload("a", "k", &ua, c, WriteCondition::None);
    let head = head.await.unwrap();
    assert_eq!(head.size, 35);
    stored.push(("a", 1, 35));
    assert_eq!(
        meta.stats().await.unwrap(),
        stats(2, 5, &[("b", 5)], 1, &stored)
    );
    let object = put_blob(&meta, "b", "o", 100).await;
    stored.push(("b", 1, 100));
    assert_eq!(
        meta.stats().await.unwrap(),
        stats(2, 5, &[("b", 5)], 1, &stored),
        "objects count in their bucket, not as uploads"
    );
    // Replaced, an object counts once with its new size.
    let replaced = put_blob(&meta, "b", "o", 60).await;
    stored[1] = ("b", 1, 60);
    let s = meta.stats().await.unwrap();
    assert_eq!(s, stats(2, 5, &[("b", 5)], 2, &stored));
    // The engine's housekeeping (folding PostgreSQL's usage rows) keeps
    // every total.
    meta.tidy().await.unwrap();
    meta.tidy().await.unwrap();
    assert_eq!(meta.stats().await.unwrap(), s);
    meta.delete_objects("b", vec!["o".into(), "never".into()])
        .await
        .unwrap();
    stored.pop();
    assert_eq!(
        meta.stats().await.unwrap(),
        stats(2, 5, &[("b", 5)], 3, &stored)
    );
    meta.abort_upload("b", "k", &ub).await.unwrap();
    assert_eq!(meta.stats().await.unwrap(), stats(1, 0, &[], 4, &stored));
    // A multipart object's manifest is one row of garbage.
    meta.delete_objects("a", vec!["k".into()]).await.unwrap();
    stored.clear();
    assert_eq!(meta.stats().await.unwrap(), stats(1, 0, &[], 5, &stored));
    let freed = drain(&meta).await;
    let want = sorted(vec![
        a2.blob,
        blob_of(&object),
        blob_of(&replaced),
        b1.blob,
        a1.blob,
        a2b.blob,
    ]);
    assert_eq!(freed, want);
    assert_eq!(meta.stats().await.unwrap(), stats(1, 0, &[], 0, &stored));
    meta.delete_bucket("a").await.unwrap();
    assert_eq!(
        code(meta.upload("a", "empty", &uc).await),
        Code::NoSuchBucket
    );
    assert_eq!(meta.stats().await.unwrap(), Stats::default());
});
