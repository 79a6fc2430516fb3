//! Multipart uploads: records, parts and their pages, completion and its
//! refusals, segments, aborts, bounds, idempotency tokens, and replays of a
//! completion.

use std::sync::Arc;

use stowage::error::Code;
use stowage::store::model::*;
use stowage::time::now_ms;

use super::*;

fn numbers(parts: &[(u32, PartRecord)]) -> Vec<u32> {
    parts.iter().map(|(n, _)| *n).collect()
}

conformance!(upload_parts_pages_and_abort, |meta| async move {
    new_bucket(&meta, "b").await;
    let mut rec = record();
    rec.meta.content_type = Some("video/mp4".into());
    rec.tags = vec![("t".into(), "v".into())];
    rec.acl = Acl::PublicRead;
    rec.max_size = Some(1 << 40);
    rec.token = Some("tok".into());
    let id = meta.create_upload("b", "k", rec.clone()).await.unwrap();
    let got = meta.upload("b", "k", &id).await.unwrap();
    assert_eq!(
        (got.initiated_ms, &got.owner, &got.meta, &got.tags),
        (rec.initiated_ms, &rec.owner, &rec.meta, &rec.tags)
    );
    assert_eq!((got.acl, got.max_size), (rec.acl, rec.max_size));
    assert_eq!((got.token, got.checksum), (rec.token, rec.checksum));
    // An upload belongs to its key.
    assert_eq!(code(meta.upload("b", "k2", &id).await), Code::NoSuchUpload);
    assert_eq!(
        code(meta.upload("b", "k", "0000bogus").await),
        Code::NoSuchUpload
    );
    let id2 = meta.create_upload("b", "k", record()).await.unwrap();
    assert_ne!(id, id2, "each create makes an upload");

    let before = now_ms();
    let (p1, p2, p3) = (part(10), part(10), part(4));
    meta.put_part("b", "k", &id, 3, p3.clone()).await.unwrap();
    meta.put_part("b", "k", &id, 1, p1.clone()).await.unwrap();
    meta.put_part("b", "k", &id, 2, p2.clone()).await.unwrap();
    meta.put_part("b", "k", &id2, 1, part(1)).await.unwrap();
    let (parts, more) = meta.parts(&id, 0, 10).await.unwrap();
    assert!(!more);
    assert_eq!(numbers(&parts), [1, 2, 3]);
    for ((_, got), want) in parts.iter().zip([&p1, &p2, &p3]) {
        assert_eq!(
            (got.blob, got.size, got.md5),
            (want.blob, want.size, want.md5)
        );
        assert!(got.last_modified_ms >= before, "the engine stamps the time");
    }

    // Uploading a part number again replaces the part.
    let p2b = part(8);
    meta.put_part("b", "k", &id, 2, p2b.clone()).await.unwrap();
    let (parts, _) = meta.parts(&id, 0, 10).await.unwrap();
    assert_eq!((parts[1].1.blob, parts[1].1.size), (p2b.blob, 8));
    let stats = meta.stats().await.unwrap();
    assert_eq!(stats.incomplete_uploads, 2);
    assert_eq!(stats.incomplete_upload_bytes, 10 + 8 + 4 + 1);
    assert_eq!(
        drain(&meta).await,
        vec![p2.blob],
        "the replaced part is freed"
    );

    // Pages.
    let (page, more) = meta.parts(&id, 0, 2).await.unwrap();
    assert_eq!((numbers(&page), more), (vec![1, 2], true));
    let (page, more) = meta.parts(&id, 2, 2).await.unwrap();
    assert_eq!((numbers(&page), more), (vec![3], false));
    let (page, more) = meta.parts(&id, 3, 2).await.unwrap();
    assert_eq!((numbers(&page), more), (vec![], false));
    let (page, more) = meta.parts(&id, 0, 3).await.unwrap();
    assert_eq!((numbers(&page), more), (vec![1, 2, 3], false));
    let (page, more) = meta.parts(&id, 1, 1).await.unwrap();
    assert_eq!((numbers(&page), more), (vec![2], true));
    let (page, _) = meta.parts(&id2, 0, 10).await.unwrap();
    assert_eq!(numbers(&page), [1], "parts are the upload's own");
    let (page, more) = meta.parts("0000bogus", 0, 10).await.unwrap();
    assert!(page.is_empty() && !more);

    // Abort: the upload and its parts go, and nothing more is taken.
    meta.abort_upload("b", "k", &id).await.unwrap();
    assert_eq!(code(meta.upload("b", "k", &id).await), Code::NoSuchUpload);
    assert_eq!(
        code(meta.abort_upload("b", "k", &id).await),
        Code::NoSuchUpload
    );
    assert_eq!(
        code(meta.abort_upload("b", "k2", &id2).await),
        Code::NoSuchUpload
    );
    let late = part(3);
    let late_blob = late.blob;
    let r = meta.put_part("b", "k", &id, 4, late).await;
    assert_eq!(code(r), Code::NoSuchUpload, "a part after the abort");
    assert!(meta.parts(&id, 0, 10).await.unwrap().0.is_empty());
    let done = completion(&[(1, &p1)], 0);
    let r = meta.complete_upload("b", "k", &id, done, WriteCondition::None);
    assert_eq!(code(r.await), Code::NoSuchUpload);
    assert_eq!(code(meta.head_object("b", "k").await), Code::NoSuchKey);
    let stats = meta.stats().await.unwrap();
    assert_eq!(
        (stats.incomplete_uploads, stats.incomplete_upload_bytes),
        (1, 1)
    );
    let freed = sorted(vec![p1.blob, p2b.blob, p3.blob]);
    assert_eq!(drain(&meta).await, freed);
    assert!(live(&meta, &[late_blob]).await.is_empty());
    assert!(meta.upload("b", "k", &id2).await.is_ok());
});

conformance!(complete_refusals_then_success, |meta| async move {
    new_bucket(&meta, "b").await;
    let id = meta.create_upload("b", "k", record()).await.unwrap();
    let (p1, p2, p3) = (part(10), part(3), part(10));
    for (n, p) in [(1, &p1), (2, &p2), (3, &p3)] {
        meta.put_part("b", "k", &id, n, p.clone()).await.unwrap();
    }
    let stats = meta.stats().await.unwrap();
    let complete = |c: Completion| {
        let (meta, id) = (Arc::clone(&meta), id.clone());
        async move {
            meta.complete_upload("b", "k", &id, c, WriteCondition::None)
                .await
        }
    };
    let wrong_etag = CompletedPart {
        etag: hex(&p2.md5),
        ..listed(1, &p1)
    };
    let unknown = listed(4, &p3);
    let cases = [
        (Vec::new(), Code::MalformedXML),
        (vec![listed(2, &p2), listed(1, &p1)], Code::InvalidPartOrder),
        (vec![listed(1, &p1), listed(1, &p1)], Code::InvalidPartOrder),
        (vec![wrong_etag], Code::InvalidPart),
        (vec![listed(1, &p1), unknown], Code::InvalidPart),
        (
            vec![listed(1, &p1), listed(2, &p2), listed(3, &p3)],
            Code::EntityTooSmall,
        ),
    ];
    for (parts, want) in cases {
        let c = Completion {
            parts: parts.clone(),
            min_part_size: 5,
            ..Completion::default()
        };
        assert_eq!(code(complete(c).await), want, "{parts:?}");
        // A refusal leaves everything as it was.
        assert!(meta.upload("b", "k", &id).await.is_ok());
        assert_eq!(meta.parts(&id, 0, 10).await.unwrap().0.len(), 3);
        assert_eq!(code(meta.head_object("b", "k").await), Code::NoSuchKey);
        assert_eq!(meta.stats().await.unwrap(), stats);
    }

    // A small part is fine last; ETags may come quoted; parts may be
    // left out.
    let mut quoted = listed(3, &p3);
    quoted.etag = format!("\"{}\"", quoted.etag);
    let c = Completion {
        parts: vec![listed(1, &p1), quoted],
        min_part_size: 5,
        ..Completion::default()
    };
    let head = complete(c).await.unwrap();
    assert_eq!(head.etag, multipart_etag(&[&p1, &p3]));
    assert_eq!((head.size, head.parts()), (20, 2));
    assert!(head.is_multipart());
    assert_eq!(head.upload_id.as_deref(), Some(id.as_str()));
    assert_eq!(meta.head_object("b", "k").await.unwrap(), head);
    assert_eq!(code(meta.upload("b", "k", &id).await), Code::NoSuchUpload);
    assert!(meta.parts(&id, 0, 10).await.unwrap().0.is_empty());
    assert_eq!(body_blobs(&meta, &head).await, vec![p1.blob, p3.blob]);
    let stats = meta.stats().await.unwrap();
    assert_eq!(
        (stats.incomplete_uploads, stats.incomplete_upload_bytes),
        (0, 0)
    );
    assert!(stats.upload_bytes_by_bucket.is_empty());
    // The part left out is freed; the others now belong to the object.
    assert_eq!(drain(&meta).await, vec![p2.blob]);
    let kept = sorted(vec![p1.blob, p3.blob]);
    assert_eq!(live(&meta, &kept).await, kept);

    // A completion's condition is on the object it replaces.
    let id2 = meta.create_upload("b", "k", record()).await.unwrap();
    let q = part(1);
    meta.put_part("b", "k", &id2, 1, q.clone()).await.unwrap();
    let c = || completion(&[(1, &q)], 5);
    let absent = meta.complete_upload("b", "k", &id2, c(), WriteCondition::IfNoneMatch);
    assert_eq!(code(absent.await), Code::ConditionalRequestConflict);
    let stale = WriteCondition::IfMatch(multipart_etag(&[&q]));
    let r = meta.complete_upload("b", "k", &id2, c(), stale).await;
    assert_eq!(code(r), Code::ConditionalRequestConflict);
    assert!(meta.upload("b", "k", &id2).await.is_ok(), "still there");
    let current = WriteCondition::IfMatch(head.etag.clone());
    let second = meta.complete_upload("b", "k", &id2, c(), current);
    let second = second.await.unwrap();
    assert_eq!(second.etag, multipart_etag(&[&q]));
    assert_eq!(drain(&meta).await, kept, "the replaced object is freed");
    let id3 = meta.create_upload("b", "new", record()).await.unwrap();
    let r3 = part(2);
    meta.put_part("b", "new", &id3, 1, r3.clone())
        .await
        .unwrap();
    let c = completion(&[(1, &r3)], 5);
    let third = meta.complete_upload("b", "new", &id3, c, WriteCondition::IfNoneMatch);
    assert_eq!(third.await.unwrap().size, 2);
});

conformance!(segments_and_offsets, |meta| async move {
    new_bucket(&meta, "b").await;
    let id = meta.create_upload("b", "k", record()).await.unwrap();
    let parts = [part(5), part(3), part(7), part(1)];
    for (n, p) in (1..).zip(&parts) {
        meta.put_part("b", "k", &id, n, p.clone()).await.unwrap();
    }
    // Numbers 1, 2, 4: segment indexes are 0, 1, 2 whatever the numbers.
    let c = completion(&[(1, &parts[0]), (2, &parts[1]), (4, &parts[3])], 0);
    let head = meta.complete_upload("b", "k", &id, c, WriteCondition::None);
    let head = head.await.unwrap();
    let manifest = manifest_of(&head);
    assert_eq!(head.size, 9);
    let seg = |p: &PartRecord| Segment {
        blob: p.blob,
        len: p.size,
        md5: p.md5,
        checksum: None,
    };
    let all = meta.segments(manifest, 0, 10).await.unwrap();
    let want = vec![
        (0, seg(&parts[0])),
        (5, seg(&parts[1])),
        (8, seg(&parts[3])),
    ];
    assert_eq!(all, want);
    assert_eq!(meta.segments(manifest, 1, 1).await.unwrap(), want[1..2]);
    assert_eq!(meta.segments(manifest, 1, 10).await.unwrap(), want[1..]);
    assert!(meta.segments(manifest, 3, 10).await.unwrap().is_empty());
    for (offset, index) in [(0, 0), (4, 0), (5, 1), (7, 1), (8, 2)] {
        let at = meta.segment_at(manifest, 3, offset).await.unwrap();
        assert_eq!(at, index, "offset {offset}");
    }
    assert_eq!(drain(&meta).await, vec![parts[2].blob]);

    // Copies share the manifest.
    let copy = meta
        .copy_object(
            ("b", "k"),
            ("b", "copy"),
            CopyChanges::default(),
            SourceConditions::default(),
        )
        .await
        .unwrap();
    assert_eq!(copy.body, head.body);
    assert_eq!((copy.etag, copy.size), (head.etag, head.size));
});

conformance!(
    a_bounded_upload_refuses_parts_past_its_bound,
    |meta| async move {
        new_bucket(&meta, "b").await;
        let mut rec = record();
        rec.max_size = Some(100);
        let id = meta.create_upload("b", "k", rec).await.unwrap();
        meta.put_part("b", "k", &id, 1, part(60)).await.unwrap();
        let big = part(41);
        let big_blob = big.blob;
        let r = meta.put_part("b", "k", &id, 2, big).await;
        assert_eq!(code(r), Code::EntityTooLarge);
        assert!(live(&meta, &[big_blob]).await.is_empty());
        meta.put_part("b", "k", &id, 2, part(40)).await.unwrap();
        // A replaced part counts once.
        meta.put_part("b", "k", &id, 1, part(60)).await.unwrap();
        meta.put_part("b", "k", &id, 2, part(40)).await.unwrap();
        assert_eq!(
            code(meta.put_part("b", "k", &id, 1, part(61)).await),
            Code::EntityTooLarge
        );
        assert_eq!(
            code(meta.put_part("b", "k", &id, 3, part(1)).await),
            Code::EntityTooLarge
        );
        meta.put_part("b", "k", &id, 1, part(10)).await.unwrap();
        meta.put_part("b", "k", &id, 3, part(50)).await.unwrap();
        let stats = meta.stats().await.unwrap();
        assert_eq!(stats.incomplete_upload_bytes, 100);
        let (parts, _) = meta.parts(&id, 0, 10).await.unwrap();
        let sizes: Vec<u64> = parts.iter().map(|(_, p)| p.size).collect();
        assert_eq!(sizes, [10, 40, 50]);
        // Unbounded uploads take anything.
        let free = meta.create_upload("b", "k", record()).await.unwrap();
        meta.put_part("b", "k", &free, 1, part(1 << 40))
            .await
            .unwrap();
    }
);

conformance!(
    a_create_with_a_known_token_returns_the_same_upload,
    |meta| async move {
        new_bucket(&meta, "b").await;
        new_bucket(&meta, "b2").await;
        let with = |token: &str| {
            let mut rec = record();
            rec.token = Some(token.into());
            rec
        };
        let first = meta.create_upload("b", "k", with("t1")).await.unwrap();
        let again = meta.create_upload("b", "k", with("t1")).await.unwrap();
        let other = meta.create_upload("b", "k", with("t2")).await.unwrap();
        let elsewhere = meta.create_upload("b", "k2", with("t1")).await.unwrap();
        let other_bucket = meta.create_upload("b2", "k", with("t1")).await.unwrap();
        let untokened = meta.create_upload("b", "k", record()).await.unwrap();
        assert_eq!(first, again);
        let ids = [&first, &other, &elsewhere, &other_bucket, &untokened];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(meta.stats().await.unwrap().incomplete_uploads, 5);
        // Once the upload is gone, the token makes a new one.
        meta.abort_upload("b", "k", &first).await.unwrap();
        let after = meta.create_upload("b", "k", with("t1")).await.unwrap();
        assert_ne!(after, first);
        assert_eq!(
            meta.create_upload("b", "k", with("t1")).await.unwrap(),
            after
        );
    }
);

conformance!(
    a_completion_replays_only_while_its_object_is_current,
    |meta| async move {
        new_bucket(&meta, "b").await;
        let upload = |key: &'static str| {
            let meta = Arc::clone(&meta);
            async move {
                let id = meta.create_upload("b", key, record()).await.unwrap();
                let p = part(7);
                meta.put_part("b", key, &id, 1, p.clone()).await.unwrap();
                (id, completion(&[(1, &p)], 0))
            }
        };
        let replay = |key: &'static str, id: String, c: Completion| {
            let meta = Arc::clone(&meta);
            async move {
                meta.complete_upload("b", key, &id, c, WriteCondition::None)
                    .await
            }
        };

        let (id, c) = upload("k").await;
        let head = replay("k", id.clone(), c.clone()).await.unwrap();
        let garbage = garbage_count(&meta).await;
        let again = replay("k", id.clone(), c.clone()).await.unwrap();
        assert_eq!(again, head, "the same head: same ETag, same manifest");
        // Even a condition that would now fail replays the success.
        let r = meta.complete_upload("b", "k", &id, c.clone(), WriteCondition::IfNoneMatch);
        assert_eq!(r.await.unwrap().etag, head.etag);
        // Tags do not make it another object.
        meta.set_object_tags("b", "k", vec![("a".into(), "b".into())])
            .await
            .unwrap();
        assert_eq!(
            replay("k", id.clone(), c.clone()).await.unwrap().etag,
            head.etag
        );
        assert_eq!(
            garbage_count(&meta).await,
            garbage,
            "a replay changes nothing"
        );
        assert_eq!(meta.stats().await.unwrap().incomplete_uploads, 0);

        // A copy of the completed object is no completion of it.
        let copy = meta.copy_object(
            ("b", "k"),
            ("b", "copy"),
            CopyChanges::default(),
            SourceConditions::default(),
        );
        assert_eq!(copy.await.unwrap().upload_id, None);
        let r = replay("copy", id.clone(), c.clone()).await;
        assert_eq!(code(r), Code::NoSuchUpload);
        // Another key never replays it either.
        assert_eq!(
            code(replay("other", id.clone(), c.clone()).await),
            Code::NoSuchUpload
        );
        assert_eq!(
            replay("k", id.clone(), c.clone()).await.unwrap().etag,
            head.etag
        );

        // Overwritten by a PutObject: gone.
        put_inline(&meta, "b", "k", b"new").await;
        assert_eq!(
            code(replay("k", id.clone(), c.clone()).await),
            Code::NoSuchUpload
        );

        // Overwritten by a copy of another object: gone.
        let (id2, c2) = upload("k2").await;
        replay("k2", id2.clone(), c2.clone()).await.unwrap();
        meta.copy_object(
            ("b", "copy"),
            ("b", "k2"),
            CopyChanges::default(),
            SourceConditions::default(),
        )
        .await
        .unwrap();
        assert_eq!(code(replay("k2", id2, c2).await), Code::NoSuchUpload);

        // Copied onto itself: a new object, no replay.
        let (id3, c3) = upload("k3").await;
        replay("k3", id3.clone(), c3.clone()).await.unwrap();
        meta.copy_object(
            ("b", "k3"),
            ("b", "k3"),
            CopyChanges::default(),
            SourceConditions::default(),
        )
        .await
        .unwrap();
        assert_eq!(code(replay("k3", id3, c3).await), Code::NoSuchUpload);

        // Deleted: gone.
        let (id4, c4) = upload("k4").await;
        replay("k4", id4.clone(), c4.clone()).await.unwrap();
        meta.delete_objects("b", vec!["k4".into()]).await.unwrap();
        assert_eq!(code(replay("k4", id4, c4).await), Code::NoSuchUpload);
        assert_eq!(code(meta.head_object("b", "k4").await), Code::NoSuchKey);
    }
);

/// An upload made under a grant of `grant`, gone at `expires_ms`.
fn granted(grant: &str, min_size: u64, expires_ms: i64) -> UploadRecord {
    let mut rec = record();
    rec.granted = Some(Granted {
        grant: grant.into(),
        min_size,
        expires_ms,
        held: 0,
    });
    rec
}

conformance!(
    a_grant_holds_one_upload_per_key_its_minimum_and_its_expiry,
    |meta| async move {
        new_bucket(&meta, "b").await;
        let (far, now) = (far(), now_ms());
        let a = meta
            .create_upload("b", "k", granted("g1", 10, far))
            .await
            .unwrap();
        meta.put_part("b", "k", &a, 1, part(4)).await.unwrap();
        assert_eq!(meta.stats().await.unwrap().incomplete_upload_bytes, 4);
        // The same grant at the same key: the new upload replaces the old,
        // whose part stops counting.
        let b = meta
            .create_upload("b", "k", granted("g1", 10, far))
            .await
            .unwrap();
        assert_eq!(code(meta.upload("b", "k", &a).await), Code::NoSuchUpload);
        assert_eq!(
            code(meta.put_part("b", "k", &a, 2, part(1)).await),
            Code::NoSuchUpload
        );
        let stats = meta.stats().await.unwrap();
        assert_eq!(
            (stats.incomplete_uploads, stats.incomplete_upload_bytes),
            (1, 0)
        );
        // Another grant, another key, or no grant: left alone.
        let c = meta
            .create_upload("b", "k", granted("g2", 0, far))
            .await
            .unwrap();
        let d = meta
            .create_upload("b", "k2", granted("g1", 0, far))
            .await
            .unwrap();
        let e = meta.create_upload("b", "k", record()).await.unwrap();
        for id in [&b, &c, &e] {
            meta.upload("b", "k", id).await.unwrap();
        }
        meta.upload("b", "k2", &d).await.unwrap();

        // The grant's bound holds on a running total: replacing a part
        // counts its new size only.
        let mut bounded = granted("g5", 0, far);
        bounded.max_size = Some(10);
        let z = meta.create_upload("b", "z", bounded).await.unwrap();
        meta.put_part("b", "z", &z, 1, part(6)).await.unwrap();
        meta.put_part("b", "z", &z, 1, part(7)).await.unwrap();
        meta.put_part("b", "z", &z, 2, part(3)).await.unwrap();
        assert_eq!(
            code(meta.put_part("b", "z", &z, 3, part(1)).await),
            Code::EntityTooLarge
        );
        assert_eq!(
            meta.upload("b", "z", &z)
                .await
                .unwrap()
                .granted
                .unwrap()
                .held,
            10
        );
        meta.put_part("b", "z", &z, 1, part(4)).await.unwrap();
        meta.put_part("b", "z", &z, 3, part(3)).await.unwrap();
        assert_eq!(
            meta.upload("b", "z", &z)
                .await
                .unwrap()
                .granted
                .unwrap()
                .held,
            10
        );

        // The grant's minimum holds at Complete; the upload stays.
        let small = part(4);
        meta.put_part("b", "k", &b, 1, small.clone()).await.unwrap();
        let refused = meta
            .complete_upload(
                "b",
                "k",
                &b,
                completion(&[(1, &small)], 0),
                WriteCondition::None,
            )
            .await;
        assert_eq!(code(refused), Code::EntityTooSmall);
        let enough = part(10);
        meta.put_part("b", "k", &b, 1, enough.clone())
            .await
            .unwrap();
        let head = meta
            .complete_upload(
                "b",
                "k",
                &b,
                completion(&[(1, &enough)], 0),
                WriteCondition::None,
            )
            .await
            .unwrap();
        assert_eq!(head.size, 10);

        // Past its expiry an upload is gone for parts and Complete, and the
        // sweep's listing says when it expired.
        let old = meta
            .create_upload("b", "x", granted("g3", 0, now - 1))
            .await
            .unwrap();
        assert_eq!(
            code(meta.put_part("b", "x", &old, 1, part(1)).await),
            Code::NoSuchUpload
        );
        let refused = meta
            .complete_upload("b", "x", &old, completion(&[], 0), WriteCondition::None)
            .await;
        assert_eq!(code(refused), Code::NoSuchUpload);
        let listed = meta.uploads_before(far, None, 100).await.unwrap();
        let expiry = |id: &str| listed.iter().find(|u| u.id == id).map(|u| u.expires_ms);
        assert_eq!(expiry(&old), Some(Some(now - 1)));
        assert_eq!(expiry(&e), Some(None));

        // An idempotent create replays a live upload, never an expired one.
        let mut replay = granted("g4", 0, now - 1);
        replay.token = Some("t".into());
        let first = meta.create_upload("b", "y", replay.clone()).await.unwrap();
        replay.granted.as_mut().unwrap().expires_ms = far;
        let second = meta.create_upload("b", "y", replay.clone()).await.unwrap();
        assert_ne!(first, second, "an expired upload is not replayed");
        assert_eq!(
            code(meta.upload("b", "y", &first).await),
            Code::NoSuchUpload
        );
        let third = meta.create_upload("b", "y", replay).await.unwrap();
        assert_eq!(second, third);
    }
);
