//! Garbage: freed bodies wait out the grace period, readers' leases put
//! them off, a collected body cannot be leased, and a freed manifest is
//! taken apart a small batch at a time, each segment blob freed once.

use stowage::store::model::*;
use stowage::time::now_ms;

use super::*;

conformance!(
    a_freed_blob_waits_for_its_grace_and_its_leases,
    |meta| async move {
        new_bucket(&meta, "b").await;
        let a = blob_of(&put_blob(&meta, "b", "a", 10).await);
        let t0 = now_ms();
        meta.delete_objects("b", vec!["a".into()]).await.unwrap();
        let t1 = now_ms();
        assert_eq!(garbage_count(&meta).await, 1);
        // Not due before the grace period has passed.
        for now in [t1, t0 + GRACE_MS - 1] {
            let due = meta.due_garbage(now, 100).await.unwrap();
            assert!(due.blobs.is_empty() && !due.more, "at {now}: {due:?}");
        }
        assert_eq!(live(&meta, &[a]).await, vec![a], "freed but still there");

        // A reader's lease puts it off past the grace, and only until its
        // end; a shorter lease taken later does not shorten it.
        let until = t1 + GRACE_MS + 10_000;
        assert!(meta.lease(a, until).await.unwrap());
        assert!(meta.lease(a, t1 + GRACE_MS + 1).await.unwrap());
        for now in [t1 + GRACE_MS + 5_000, until - 1] {
            let due = meta.due_garbage(now, 100).await.unwrap();
            assert!(
                due.blobs.is_empty(),
                "at {now}: leased until {until}: {due:?}"
            );
            assert_eq!(garbage_count(&meta).await, 1, "put off, not dropped");
        }
        assert!(meta.lease(a, until).await.unwrap(), "still there to lease");
        let due = meta.due_garbage(until + 1, 100).await.unwrap();
        assert_eq!(due.blobs.iter().map(|g| g.blob).collect::<Vec<_>>(), [a]);
        // Claimed: no lease any more, even before it is forgotten.
        assert!(!meta.lease(a, far()).await.unwrap());
        assert!(live(&meta, &[a]).await.is_empty());
        meta.forget_garbage(due.blobs).await.unwrap();
        assert_eq!(garbage_count(&meta).await, 0);
        assert!(drain(&meta).await.is_empty(), "collected once");
        assert!(!meta.lease(a, far()).await.unwrap());
        assert!(!meta.lease(new_id(), far()).await.unwrap(), "never existed");

        // A lease taken while the blob was live holds after it is freed.
        let c = blob_of(&put_blob(&meta, "b", "c", 10).await);
        let d = blob_of(&put_blob(&meta, "b", "d", 10).await);
        let held = now_ms() + GRACE_MS + 20_000;
        assert!(meta.lease(c, held).await.unwrap());
        let t2 = now_ms();
        meta.delete_objects("b", vec!["c".into(), "d".into()])
            .await
            .unwrap();
        let t3 = now_ms();
        assert_eq!(garbage_count(&meta).await, 2);
        assert!(
            meta.due_garbage(t2 + GRACE_MS - 1, 100)
                .await
                .unwrap()
                .blobs
                .is_empty()
        );
        // Past the grace: the unleased one goes, the leased one waits.
        let now = t3 + GRACE_MS + 1;
        assert!(now < held);
        assert_eq!(drain_at(&meta, now, 100).await, vec![d]);
        assert_eq!(garbage_count(&meta).await, 1);
        assert_eq!(live(&meta, &[c, d]).await, vec![c]);
        assert!(drain_at(&meta, held - 1, 100).await.is_empty());
        assert_eq!(drain_at(&meta, held + 1, 100).await, vec![c]);
        assert_eq!(garbage_count(&meta).await, 0);
        // An expired lease on a live blob keeps nothing: freed, it goes at
        // the end of its grace.
        let e = blob_of(&put_blob(&meta, "b", "e", 10).await);
        assert!(meta.lease(e, now_ms() - 1).await.unwrap());
        meta.delete_objects("b", vec!["e".into()]).await.unwrap();
        assert_eq!(drain_at(&meta, now_ms() + GRACE_MS + 1, 100).await, vec![e]);
    }
);

conformance!(a_leased_manifest_keeps_its_segments, |meta| async move {
    new_bucket(&meta, "b").await;
    let (head, parts) = put_multipart(&meta, "b", "m", &[5, 5, 5]).await;
    let manifest = manifest_of(&head);
    assert!(
        meta.lease(manifest, now_ms() - 5).await.unwrap(),
        "a live manifest"
    );
    meta.delete_objects("b", vec!["m".into()]).await.unwrap();
    assert_eq!(garbage_count(&meta).await, 1, "one row for the manifest");
    let until = now_ms() + GRACE_MS + 30_000;
    assert!(meta.lease(manifest, until).await.unwrap());
    assert!(drain_at(&meta, until - 1, 100).await.is_empty());
    let sorted_parts = sorted(parts.clone());
    assert_eq!(live(&meta, &parts).await, sorted_parts);
    // A reader of the manifest reads its segments meanwhile.
    let segments = meta.segments(manifest, 0, 10).await.unwrap();
    assert_eq!(
        segments.iter().map(|(_, s)| s.blob).collect::<Vec<_>>(),
        parts
    );
    assert_eq!(drain_at(&meta, until + 1, 100).await, sorted_parts);
    assert!(!meta.lease(manifest, far()).await.unwrap());
    assert!(live(&meta, &parts).await.is_empty());
    assert_eq!(garbage_count(&meta).await, 0);
});

conformance!(
    a_freed_manifest_is_dismantled_in_small_batches,
    |meta| async move {
        new_bucket(&meta, "b").await;
        let sizes = [6, 6, 6, 6, 6, 1];
        let (head, parts) = put_multipart(&meta, "b", "m", &sizes).await;
        let manifest = manifest_of(&head);
        let other = blob_of(&put_blob(&meta, "b", "other", 3).await);
        meta.copy_object(
            ("b", "m"),
            ("b", "copy"),
            CopyChanges::default(),
            SourceConditions::default(),
        )
        .await
        .unwrap();
        // The copy still holds the manifest: nothing is freed.
        meta.delete_objects("b", vec!["m".into()]).await.unwrap();
        assert_eq!(garbage_count(&meta).await, 0);
        assert!(drain(&meta).await.is_empty());
        meta.delete_objects("b", vec!["copy".into(), "other".into()])
            .await
            .unwrap();
        assert_eq!(garbage_count(&meta).await, 2);

        let now = far();
        let mut freed = Vec::new();
        let mut batches = 0;
        loop {
            let due = meta.due_garbage(now, 1).await.unwrap();
            batches += 1;
            assert!(due.blobs.len() <= 1, "a batch of 1: {due:?}");
            freed.extend(due.blobs.iter().map(|g| g.blob));
            meta.forget_garbage(due.blobs).await.unwrap();
            if !due.more {
                break;
            }
            assert!(batches < 100, "the manifest never ran out");
        }
        assert!(
            batches > parts.len(),
            "{batches} batches for {} segments",
            parts.len()
        );
        let mut want = parts.clone();
        want.push(other);
        let freed_sorted = sorted(freed.clone());
        assert_eq!(
            freed.len(),
            want.len(),
            "each freed exactly once: {freed:?}"
        );
        assert_eq!(freed_sorted, sorted(want.clone()));
        assert!(!meta.lease(manifest, far()).await.unwrap(), "collected");
        assert!(live(&meta, &want).await.is_empty());
        assert_eq!(garbage_count(&meta).await, 0);
        assert!(drain(&meta).await.is_empty());
    }
);

conformance!(
    a_manifest_being_dismantled_cannot_be_leased,
    |meta| async move {
        new_bucket(&meta, "b").await;
        let (head, parts) = put_multipart(&meta, "b", "m", &[4, 4, 4, 4]).await;
        let manifest = manifest_of(&head);
        meta.delete_objects("b", vec!["m".into()]).await.unwrap();
        let now = far();
        let first = meta.due_garbage(now, 1).await.unwrap();
        assert!(first.more, "more of the manifest remains: {first:?}");
        assert!(first.blobs.len() <= 1);
        // Claimed by the collector: a reader arriving now is told it is
        // gone, and cannot hold back the rest.
        assert!(!meta.lease(manifest, now + DAY_MS).await.unwrap());
        let mut freed: Vec<BlobId> = first.blobs.iter().map(|g| g.blob).collect();
        meta.forget_garbage(first.blobs).await.unwrap();
        freed.extend(drain_at(&meta, now, 1).await);
        assert_eq!(sorted(freed), sorted(parts));
        assert_eq!(garbage_count(&meta).await, 0);
    }
);

conformance!(a_lease_and_a_claim_never_both_win, |meta| async move {
    new_bucket(&meta, "b").await;
    let mut blobs = Vec::new();
    let mut keys = Vec::new();
    for i in 0..24 {
        let key = format!("k{i}");
        blobs.push(blob_of(&put_blob(&meta, "b", &key, 1).await));
        keys.push(key);
    }
    meta.delete_objects("b", keys).await.unwrap();
    let now = now_ms() + GRACE_MS + 1_000;
    let until = now + DAY_MS;
    // A collector claims in small batches while readers take leases.
    let collector = {
        let meta = Arc::clone(&meta);
        tokio::spawn(async move { drain_at(&meta, now, 3).await })
    };
    let mut readers = tokio::task::JoinSet::new();
    for blob in blobs.clone() {
        let meta = Arc::clone(&meta);
        readers.spawn(async move { (blob, meta.lease(blob, until).await.unwrap()) });
    }
    let mut leased = Vec::new();
    while let Some(r) = readers.join_next().await {
        let (blob, granted) = r.unwrap();
        if granted {
            leased.push(blob);
        }
    }
    let collected = collector.await.unwrap();
    // Each blob went one way: unlinked now, or kept for its reader.
    let leased = sorted(leased);
    for blob in &leased {
        assert!(!collected.contains(blob), "{blob:x} leased and collected");
    }
    assert_eq!(
        sorted([collected.clone(), leased.clone()].concat()),
        sorted(blobs)
    );
    assert_eq!(live(&meta, &leased).await, leased);
    assert!(drain_at(&meta, until - 1, 100).await.is_empty());
    assert_eq!(drain_at(&meta, until + 1, 100).await, leased);
    assert_eq!(garbage_count(&meta).await, 0);
});

conformance!(concurrent_collectors_free_everything, |meta| async move {
    new_bucket(&meta, "b").await;
    let mut expected = Vec::new();
    let mut keys = Vec::new();
    for i in 0..6 {
        let key = format!("m{i}");
        expected.extend(put_multipart(&meta, "b", &key, &[2, 2, 2, 2]).await.1);
        keys.push(key);
        let key = format!("s{i}");
        expected.push(blob_of(&put_blob(&meta, "b", &key, 2).await));
        keys.push(key);
    }
    meta.delete_objects("b", keys).await.unwrap();
    let now = far();
    let mut collectors = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let meta = Arc::clone(&meta);
        collectors.spawn(async move {
            let mut freed = Vec::new();
            for _ in 0..1_000 {
                let due = meta.due_garbage(now, 3).await.unwrap();
                freed.extend(due.blobs.iter().map(|g| g.blob));
                meta.forget_garbage(due.blobs).await.unwrap();
                if !due.more {
                    return freed;
                }
            }
            panic!("the garbage never ran out");
        });
    }
    let mut freed = std::collections::BTreeSet::new();
    while let Some(r) = collectors.join_next().await {
        // Two collectors may both unlink a blob claimed but not yet
        // forgotten (unlinking is idempotent); none may be missed.
        freed.extend(r.unwrap());
    }
    assert_eq!(
        freed.into_iter().collect::<Vec<_>>(),
        sorted(expected.clone())
    );
    assert_eq!(garbage_count(&meta).await, 0);
    assert!(live(&meta, &expected).await.is_empty());
    assert!(drain(&meta).await.is_empty());
});
