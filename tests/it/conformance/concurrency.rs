//! Races: conditional writes with one winner, completions of one upload,
//! and reference counts under concurrent copies, overwrites and deletes
//! (afterwards, exactly the unreferenced blobs are freed, each once).

use std::collections::BTreeSet;
use std::sync::Arc;

use stowage::error::{Code, S3Result};
use stowage::store::meta::MetaStore;
use stowage::store::model::*;
use tokio::task::JoinSet;

use super::*;

/// Concurrent writers per race: enough to interleave on two cores, few
/// enough for PostgreSQL's retries to settle every loser.
const RACERS: usize = 12;

async fn join_all<T: Send + 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.expect("a racer panicked"));
    }
    out
}

conformance!(if_none_match_racers_have_one_winner, |meta| async move {
    new_bucket(&meta, "b").await;
    for round in 0..3 {
        let key = format!("k{round}");
        let mut tasks = JoinSet::new();
        let mut blobs = Vec::new();
        for i in 0..RACERS {
            // Half inline bodies, half blobs.
            let (head, inline) = if i % 2 == 0 {
                let bytes = format!("racer {i}").into_bytes();
                (inline_head(&bytes), Some(bytes.into()))
            } else {
                let head = blob_head(100 + i as u64);
                blobs.push(blob_of(&head));
                (head, None)
            };
            let (meta, key) = (Arc::clone(&meta), key.clone());
            tasks.spawn(async move {
                let put = meta.put_object("b", &key, head, inline, WriteCondition::IfNoneMatch);
                put.await
            });
        }
        let results = join_all(tasks).await;
        let winners: Vec<&ObjectHead> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e.code, Code::ConditionalRequestConflict, "{e:?}");
            }
        }
        let winner = winners[0];
        assert_eq!(&meta.head_object("b", &key).await.unwrap(), winner);
        // Only the winner's blob (if it had one) is live; nothing freed.
        let want: Vec<BlobId> = match &winner.body {
            Body::Blob(s) => vec![s.blob],
            _ => Vec::new(),
        };
        assert_eq!(live(&meta, &blobs).await, want);
        assert_eq!(garbage_count(&meta).await, 0);
    }
});

conformance!(racing_completions_of_one_upload_agree, |meta| async move {
    new_bucket(&meta, "b").await;
    let id = meta.create_upload("b", "k", record()).await.unwrap();
    let parts = [part(10), part(10), part(3)];
    for (n, p) in (1..).zip(&parts) {
        meta.put_part("b", "k", &id, n, p.clone()).await.unwrap();
    }
    let numbered: Vec<(u32, &PartRecord)> = (1..).zip(&parts).collect();
    let c = completion(&numbered, 5);
    let mut tasks = JoinSet::new();
    for _ in 0..RACERS {
        let (meta, id, c) = (Arc::clone(&meta), id.clone(), c.clone());
        tasks.spawn(async move {
            meta.complete_upload("b", "k", &id, c, WriteCondition::None)
                .await
        });
    }
    let results = join_all(tasks).await;
    let heads: Vec<ObjectHead> = results.into_iter().map(|r| r.unwrap()).collect();
    // The losers replay the winner's success: one object, one manifest.
    for h in &heads {
        assert_eq!(h, &heads[0]);
    }
    assert_eq!(
        heads[0].etag,
        multipart_etag(&parts.iter().collect::<Vec<_>>())
    );
    assert_eq!(meta.head_object("b", "k").await.unwrap(), heads[0]);
    let blobs: Vec<BlobId> = sorted(parts.iter().map(|p| p.blob).collect());
    assert_eq!(sorted(body_blobs(&meta, &heads[0]).await), blobs);
    assert_eq!(meta.stats().await.unwrap().incomplete_uploads, 0);
    assert!(drain(&meta).await.is_empty());
    assert_eq!(live(&meta, &blobs).await, blobs);
    meta.delete_objects("b", vec!["k".into()]).await.unwrap();
    assert_eq!(drain(&meta).await, blobs, "each part freed exactly once");
});

conformance!(
    a_completion_racing_an_abort_is_all_or_nothing,
    |meta| async move {
        new_bucket(&meta, "b").await;
        for round in 0..6 {
            let key = format!("k{round}");
            let id = meta.create_upload("b", &key, record()).await.unwrap();
            let p = part(4);
            meta.put_part("b", &key, &id, 1, p.clone()).await.unwrap();
            let c = completion(&[(1, &p)], 0);
            let (m1, m2) = (Arc::clone(&meta), Arc::clone(&meta));
            let (k1, k2, i1, i2) = (key.clone(), key.clone(), id.clone(), id.clone());
            let complete = tokio::spawn(async move {
                m1.complete_upload("b", &k1, &i1, c, WriteCondition::None)
                    .await
            });
            let abort = tokio::spawn(async move { m2.abort_upload("b", &k2, &i2).await });
            let (completed, aborted) = (complete.await.unwrap(), abort.await.unwrap());
            match (&completed, &aborted) {
                (Ok(head), Err(e)) => {
                    assert_eq!(e.code, Code::NoSuchUpload);
                    assert_eq!(&meta.head_object("b", &key).await.unwrap(), head);
                    assert_eq!(live(&meta, &[p.blob]).await, vec![p.blob]);
                    assert!(drain(&meta).await.is_empty());
                }
                (Err(e), Ok(())) => {
                    assert_eq!(e.code, Code::NoSuchUpload);
                    assert_eq!(code(meta.head_object("b", &key).await), Code::NoSuchKey);
                    assert_eq!(drain(&meta).await, vec![p.blob]);
                }
                other => panic!("exactly one of them must win: {other:?}"),
            }
            assert_eq!(meta.stats().await.unwrap().incomplete_uploads, 0);
        }
    }
);

/// One change of the reference-count workload.
enum Op {
    Copy(&'static str, String),
    Put(String, Box<ObjectHead>),
    Delete(String),
}

async fn apply(meta: Arc<dyn MetaStore>, op: Op) -> S3Result<()> {
    match op {
        Op::Copy(src, dst) => {
            let copy = meta.copy_object(
                ("b", src),
                ("b", &dst),
                CopyChanges::default(),
                SourceConditions::default(),
            );
            copy.await.map(drop)
        }
        Op::Put(key, head) => meta
            .put_object("b", &key, *head, None, WriteCondition::None)
            .await
            .map(drop),
        Op::Delete(key) => meta.delete_objects("b", vec![key]).await,
    }
}

/// Runs `ops` all at once; a copy whose source a racing delete removed may
/// find it gone, nothing else may fail.
async fn race(meta: &Arc<dyn MetaStore>, ops: Vec<Op>) {
    let mut tasks = JoinSet::new();
    for op in ops {
        let copy = matches!(op, Op::Copy(..));
        let meta = Arc::clone(meta);
        tasks.spawn(async move { (copy, apply(meta, op).await) });
    }
    for (copy, result) in join_all(tasks).await {
        match result {
            Ok(()) => {}
            Err(e) if copy && e.code == Code::NoSuchKey => {}
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Checks that exactly the blobs no object refers to are freed (each
/// once), that every object's blobs are live, and returns the live ones.
async fn check_references(
    meta: &Arc<dyn MetaStore>,
    created: &[BlobId],
    freed_before: &mut BTreeSet<BlobId>,
) -> BTreeSet<BlobId> {
    let mut referenced = BTreeSet::new();
    for (_, head) in all_objects(meta, "b").await {
        referenced.extend(body_blobs(meta, &head).await);
    }
    for blob in drain(meta).await {
        assert!(freed_before.insert(blob), "blob {blob:x} freed twice");
    }
    assert_eq!(garbage_count(meta).await, 0);
    let created: BTreeSet<BlobId> = created.iter().copied().collect();
    let unreferenced: BTreeSet<BlobId> = created.difference(&referenced).copied().collect();
    assert_eq!(
        *freed_before, unreferenced,
        "freed must be exactly the unreferenced"
    );
    let live: BTreeSet<BlobId> = meta
        .live_blobs(created.iter().copied().collect())
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(live, referenced, "live must be exactly the referenced");
    live
}

conformance!(
    reference_counts_survive_concurrent_copies_overwrites_and_deletes,
    |meta| async move {
        new_bucket(&meta, "b").await;
        let mut created = Vec::new();
        let single = put_blob(&meta, "b", "single", 1000).await;
        created.push(blob_of(&single));
        let (multi, parts) = put_multipart(&meta, "b", "multi", &[10, 10, 10, 2]).await;
        created.extend(&parts);
        let mut freed = BTreeSet::new();

        // Round 1: many copies of both sources, onto their own keys, onto
        // each other's, and onto the sources themselves; overwrites and
        // deletes of the copies' keys at the same time.
        let mut ops = Vec::new();
        for i in 0..RACERS {
            ops.push(Op::Copy("single", format!("s{i}")));
            ops.push(Op::Copy("multi", format!("m{i}")));
            // Two sources race for one key.
            ops.push(Op::Copy(
                if i % 2 == 0 { "single" } else { "multi" },
                format!("x{}", i / 2),
            ));
        }
        ops.push(Op::Copy("single", "single".into()));
        ops.push(Op::Copy("multi", "multi".into()));
        for i in 0..4 {
            let head = blob_head(50);
            created.push(blob_of(&head));
            ops.push(Op::Put(format!("s{i}"), Box::new(head)));
            ops.push(Op::Delete(format!("m{i}")));
        }
        race(&meta, ops).await;
        let objects = all_objects(&meta, "b").await;
        for (key, head) in &objects {
            // Every copy shares its source's body; the overwrites are theirs.
            if key.starts_with('m') || key == "multi" {
                assert_eq!(head.body, multi.body, "{key}");
            } else if key.starts_with('x') {
                assert!(head.body == multi.body || head.body == single.body, "{key}");
            }
        }
        // A put that lost its key to a later copy is freed; nothing else.
        check_references(&meta, &created, &mut freed).await;
        assert!(freed.len() <= 4, "only overwritten puts: {freed:?}");

        // Round 2: the sources and half the copies go while more copies
        // are taken and others are overwritten.
        let mut ops = vec![Op::Delete("single".into()), Op::Delete("multi".into())];
        for i in 0..RACERS {
            ops.push(Op::Copy("single", format!("late-s{i}")));
            ops.push(Op::Copy("multi", format!("late-m{i}")));
            if i % 2 == 0 {
                ops.push(Op::Delete(format!("s{i}")));
                ops.push(Op::Delete(format!("m{i}")));
                ops.push(Op::Delete(format!("x{}", i / 2)));
            } else {
                let head = blob_head(60);
                created.push(blob_of(&head));
                ops.push(Op::Put(format!("m{i}"), Box::new(head)));
            }
        }
        race(&meta, ops).await;
        check_references(&meta, &created, &mut freed).await;

        // Round 3: everything goes; every blob ever made is freed once.
        let keys: Vec<String> = all_objects(&meta, "b")
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut ops: Vec<Op> = keys.iter().map(|k| Op::Delete(k.clone())).collect();
        ops.push(Op::Delete(keys[0].clone()));
        race(&meta, ops).await;
        let live = check_references(&meta, &created, &mut freed).await;
        assert!(live.is_empty());
        assert_eq!(freed, created.iter().copied().collect::<BTreeSet<_>>());
    }
);

conformance!(racing_parts_of_one_number_leave_one, |meta| async move {
    new_bucket(&meta, "b").await;
    let id = meta.create_upload("b", "k", record()).await.unwrap();
    meta.put_part("b", "k", &id, 2, part(1)).await.unwrap();
    let racers: Vec<PartRecord> = (0..RACERS as u64).map(|i| part(10 + i)).collect();
    let mut tasks = JoinSet::new();
    for p in racers.clone() {
        let (meta, id) = (Arc::clone(&meta), id.clone());
        tasks.spawn(async move { meta.put_part("b", "k", &id, 1, p).await });
    }
    for r in join_all(tasks).await {
        r.unwrap();
    }
    let (parts, _) = meta.parts(&id, 0, 10).await.unwrap();
    assert_eq!(parts.len(), 2, "one part 1, whoever won");
    let kept = parts[0].1.clone();
    let winner = racers
        .iter()
        .find(|p| p.blob == kept.blob)
        .expect("a racer's part");
    assert_eq!((kept.size, kept.md5), (winner.size, winner.md5));
    let stats = meta.stats().await.unwrap();
    assert_eq!(stats.incomplete_upload_bytes, winner.size + 1);
    assert_eq!(
        stats.upload_bytes_by_bucket,
        vec![("b".to_owned(), winner.size + 1)]
    );
    // Every loser's blob is freed once; the winner's lives.
    let all: Vec<BlobId> = racers.iter().map(|p| p.blob).collect();
    let losers: Vec<BlobId> = sorted(all.iter().copied().filter(|b| *b != kept.blob).collect());
    assert_eq!(drain(&meta).await, losers);
    assert_eq!(live(&meta, &all).await, vec![kept.blob]);
});

conformance!(racing_parts_respect_the_upload_bound, |meta| async move {
    new_bucket(&meta, "b").await;
    let mut rec = record();
    rec.max_size = Some(100);
    let id = meta.create_upload("b", "k", rec).await.unwrap();
    let mut tasks = JoinSet::new();
    let mut blobs = Vec::new();
    for n in 1..=RACERS as u32 {
        let p = part(40);
        blobs.push(p.blob);
        let (meta, id) = (Arc::clone(&meta), id.clone());
        tasks.spawn(async move { meta.put_part("b", "k", &id, n, p).await });
    }
    let mut accepted = 0;
    for r in join_all(tasks).await {
        match r {
            Ok(()) => accepted += 1,
            Err(e) => assert_eq!(e.code, Code::EntityTooLarge, "{e:?}"),
        }
    }
    assert_eq!(accepted, 2, "40 + 40 fit in 100; a third would not");
    let (parts, _) = meta.parts(&id, 0, 100).await.unwrap();
    let stored: u64 = parts.iter().map(|(_, p)| p.size).sum();
    assert_eq!(stored, 80);
    assert_eq!(meta.stats().await.unwrap().incomplete_upload_bytes, 80);
    assert_eq!(
        live(&meta, &blobs).await.len(),
        2,
        "refused parts are not live"
    );
    assert_eq!(garbage_count(&meta).await, 0);
});
