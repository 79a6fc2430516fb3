//! Objects: conditional puts, heads and bodies, copies and their
//! conditions, tags and ACLs, deletes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stowage::error::Code;
use stowage::store::meta::MetaStore;
use stowage::store::model::*;
use stowage::time::now_ms;

use super::*;

/// What a condition that no longer holds at commit gets (another writer
/// won): S3's 409.
const LOST: Code = Code::ConditionalRequestConflict;

fn meta_with(content_type: &str) -> ObjectMeta {
    ObjectMeta {
        content_type: Some(content_type.into()),
        content_encoding: Some("gzip".into()),
        content_disposition: Some("attachment".into()),
        content_language: Some("fr".into()),
        cache_control: Some("no-cache".into()),
        expires: Some("Wed, 21 Oct 2037 07:28:00 GMT".into()),
        user: vec![("b-name".into(), "é".into()), ("a-name".into(), "2".into())],
    }
}

async fn put_if(
    meta: &Arc<dyn MetaStore>,
    key: &str,
    head: ObjectHead,
    condition: WriteCondition,
) -> stowage::error::S3Result<ObjectHead> {
    meta.put_object("b", key, head, None, condition).await
}

conformance!(put_with_each_condition, |meta| async move {
    new_bucket(&meta, "b").await;
    let m = &meta;
    // If-Match on a missing key.
    let h = blob_head(3);
    let stray = blob_of(&h);
    let r = put_if(m, "k", h, WriteCondition::IfMatch("*".into())).await;
    assert_eq!(code(r), LOST);
    assert_eq!(code(m.head_object("b", "k").await), Code::NoSuchKey);

    // If-None-Match: only while absent.
    let first = blob_head(3);
    let before = now_ms();
    let put = put_if(m, "k", first.clone(), WriteCondition::IfNoneMatch).await;
    let v1 = put.unwrap();
    assert!(
        (before..=now_ms()).contains(&v1.last_modified_ms),
        "the engine stamps the time"
    );
    assert_eq!(
        (v1.etag.as_str(), &v1.body),
        (first.etag.as_str(), &first.body)
    );
    let h = blob_head(4);
    let stray2 = blob_of(&h);
    assert_eq!(
        code(put_if(m, "k", h, WriteCondition::IfNoneMatch).await),
        LOST
    );
    assert_eq!(m.head_object("b", "k").await.unwrap(), v1);

    // If-Match: the current ETag (bare, quoted, in a list, or `*`).
    let h = blob_head(5);
    let stray3 = blob_of(&h);
    let stale = WriteCondition::IfMatch("0123456789abcdef0123456789abcdef".into());
    assert_eq!(code(put_if(m, "k", h, stale).await), LOST);
    let v2 = put_if(
        m,
        "k",
        blob_head(6),
        WriteCondition::IfMatch(v1.etag.clone()),
    )
    .await
    .unwrap();
    let quoted = WriteCondition::IfMatch(format!("\"{}\"", v2.etag));
    let v3 = put_if(m, "k", blob_head(7), quoted).await.unwrap();
    let list = WriteCondition::IfMatch(format!("\"nope\", \"{}\"", v3.etag));
    let v4 = put_if(m, "k", blob_head(8), list).await.unwrap();
    let old = WriteCondition::IfMatch(v3.etag.clone());
    assert_eq!(code(put_if(m, "k", blob_head(9), old).await), LOST);
    let any = WriteCondition::IfMatch("*".into());
    let v5 = put_if(m, "k", blob_head(10), any).await.unwrap();
    let v6 = m
        .put_object(
            "b",
            "k",
            inline_head(b"six"),
            Some(Bytes::from_static(b"six")),
            WriteCondition::None,
        )
        .await
        .unwrap();
    assert_eq!(m.read_object("b", "k").await.unwrap().1.unwrap(), "six");
    assert_eq!(m.head_object("b", "k").await.unwrap(), v6);

    // Refused blobs never became live; every replaced one was freed.
    let replaced = sorted([v1, v2, v3, v4, v5].iter().map(blob_of).collect());
    assert!(live(m, &[stray, stray2, stray3]).await.is_empty());
    assert_eq!(drain(m).await, replaced);
    assert!(live(m, &replaced).await.is_empty());
    assert_eq!(garbage_count(m).await, 0);
});

conformance!(head_and_read_inline_and_blob_bodies, |meta| async move {
    new_bucket(&meta, "b").await;
    let mut head = inline_head(b"hello");
    head.meta = meta_with("text/plain");
    head.tags = vec![("z".into(), "1".into()), ("a".into(), "2".into())];
    head.acl = Acl::PublicRead;
    let put = meta
        .put_object(
            "b",
            "inline",
            head.clone(),
            Some(Bytes::from_static(b"hello")),
            WriteCondition::None,
        )
        .await
        .unwrap();
    assert_eq!(
        ObjectHead {
            last_modified_ms: 0,
            ..put.clone()
        },
        head
    );
    assert_eq!(meta.head_object("b", "inline").await.unwrap(), put);
    let (read, bytes) = meta.read_object("b", "inline").await.unwrap();
    assert_eq!((read, bytes.as_deref()), (put.clone(), Some(&b"hello"[..])));

    let empty = put_inline(&meta, "b", "empty", b"").await;
    let (read, bytes) = meta.read_object("b", "empty").await.unwrap();
    assert_eq!((read.size, bytes.as_deref()), (0, Some(&b""[..])));
    assert_eq!(read, empty);

    let blob = put_blob(&meta, "b", "blob", 1 << 20).await;
    let (read, bytes) = meta.read_object("b", "blob").await.unwrap();
    assert_eq!((read, bytes), (blob.clone(), None));
    assert!(matches!(&blob.body, Body::Blob(s) if s.len == 1 << 20));

    // Bodies change kind on overwrite, and the old one goes.
    let inline_now = put_inline(&meta, "b", "blob", b"now inline").await;
    let (read, bytes) = meta.read_object("b", "blob").await.unwrap();
    assert_eq!(
        (read, bytes.as_deref()),
        (inline_now, Some(&b"now inline"[..]))
    );
    let blob2 = put_blob(&meta, "b", "inline", 20).await;
    let (read, bytes) = meta.read_object("b", "inline").await.unwrap();
    assert_eq!((read, bytes), (blob2.clone(), None));
    assert_eq!(drain(&meta).await, vec![blob_of(&blob)]);
    assert_eq!(live(&meta, &[blob_of(&blob2)]).await, vec![blob_of(&blob2)]);

    assert_eq!(
        code(meta.head_object("b", "missing").await),
        Code::NoSuchKey
    );
    assert_eq!(
        code(meta.read_object("b", "missing").await),
        Code::NoSuchKey
    );
    // Keys are exact: no prefix, case or normalisation match.
    assert_eq!(code(meta.head_object("b", "Blob").await), Code::NoSuchKey);
    assert_eq!(code(meta.head_object("b", "blo").await), Code::NoSuchKey);
    put_inline(&meta, "b", "caf\u{e9}", b"nfc").await;
    assert_eq!(
        code(meta.head_object("b", "cafe\u{301}").await),
        Code::NoSuchKey
    );
});

conformance!(
    copy_applies_changes_and_source_conditions,
    |meta| async move {
        new_bucket(&meta, "b").await;
        new_bucket(&meta, "b2").await;
        let mut head = inline_head(b"source");
        head.meta = meta_with("text/plain");
        head.tags = vec![("t".into(), "1".into())];
        head.acl = Acl::PublicRead;
        let src = meta
            .put_object(
                "b",
                "src",
                head,
                Some(Bytes::from_static(b"source")),
                WriteCondition::None,
            )
            .await
            .unwrap();
        let copy = |dst: &'static str, changes: CopyChanges, cond: SourceConditions| {
            let meta = Arc::clone(&meta);
            async move {
                meta.copy_object(("b", "src"), ("b2", dst), changes, cond)
                    .await
            }
        };
        let none = SourceConditions::default;

        // As is: the bytes, metadata and tags; never the ACL; no upload.
        let plain = copy("plain", CopyChanges::default(), none()).await.unwrap();
        assert_eq!(
            (plain.etag.as_str(), plain.size, &plain.meta, &plain.tags),
            (src.etag.as_str(), src.size, &src.meta, &src.tags)
        );
        assert_eq!((plain.acl, plain.upload_id.as_ref()), (Acl::Private, None));
        assert!(plain.last_modified_ms >= src.last_modified_ms);
        let (read, bytes) = meta.read_object("b2", "plain").await.unwrap();
        assert_eq!((read, bytes.as_deref()), (plain, Some(&b"source"[..])));

        let changes = CopyChanges {
            meta: Some(meta_with("image/png")),
            tags: Some(vec![("new".into(), "tag".into())]),
            acl: Acl::AuthenticatedRead,
        };
        let changed = copy("changed", changes, none()).await.unwrap();
        assert_eq!(changed.meta, meta_with("image/png"));
        assert_eq!(changed.tags, vec![("new".to_owned(), "tag".to_owned())]);
        assert_eq!(changed.acl, Acl::AuthenticatedRead);
        assert_eq!(meta.head_object("b2", "changed").await.unwrap(), changed);
        let empty_tags = CopyChanges {
            tags: Some(Vec::new()),
            ..CopyChanges::default()
        };
        let untagged = copy("untagged", empty_tags, none()).await.unwrap();
        assert!(untagged.tags.is_empty());

        // Source conditions, checked against the source copied.
        let secs = src.last_modified_ms / 1000;
        let refused = [
            SourceConditions {
                if_match: Some("\"other\"".into()),
                ..none()
            },
            SourceConditions {
                if_none_match: Some(format!("\"{}\"", src.etag)),
                ..none()
            },
            SourceConditions {
                if_none_match: Some("*".into()),
                ..none()
            },
            SourceConditions {
                if_unmodified_since: Some(secs - 1),
                ..none()
            },
            SourceConditions {
                if_modified_since: Some(secs),
                ..none()
            },
        ];
        for cond in refused {
            let r = copy("refused", CopyChanges::default(), cond.clone()).await;
            assert_eq!(code(r), Code::PreconditionFailed, "{cond:?}");
        }
        assert_eq!(
            code(meta.head_object("b2", "refused").await),
            Code::NoSuchKey
        );
        let accepted = [
            SourceConditions {
                if_match: Some(format!("\"x\", \"{}\"", src.etag)),
                ..none()
            },
            SourceConditions {
                if_none_match: Some("\"other\"".into()),
                ..none()
            },
            SourceConditions {
                if_unmodified_since: Some(secs),
                if_modified_since: Some(secs - 1),
                ..none()
            },
            // If-Match true wins over If-Unmodified-Since false, and
            // If-None-Match false over If-Modified-Since true (RFC 7232).
            SourceConditions {
                if_match: Some(src.etag.clone()),
                if_unmodified_since: Some(secs - 10),
                ..none()
            },
            SourceConditions {
                if_none_match: Some("\"other\"".into()),
                if_modified_since: Some(secs + 10),
                ..none()
            },
        ];
        for cond in accepted {
            let r = copy("accepted", CopyChanges::default(), cond.clone()).await;
            assert!(r.is_ok(), "{cond:?}: {r:?}");
        }

        let missing = meta.copy_object(
            ("b", "missing"),
            ("b2", "x"),
            CopyChanges::default(),
            none(),
        );
        assert_eq!(code(missing.await), Code::NoSuchKey);
        assert_eq!(code(meta.head_object("b2", "x").await), Code::NoSuchKey);

        // A blob is shared, not copied: it lives while any copy does.
        let blob = put_blob(&meta, "b", "blob", 100).await;
        let shared = meta
            .copy_object(
                ("b", "blob"),
                ("b2", "blob"),
                CopyChanges::default(),
                none(),
            )
            .await
            .unwrap();
        assert_eq!(shared.body, blob.body);
        meta.delete_objects("b", vec!["blob".into()]).await.unwrap();
        assert!(drain(&meta).await.is_empty());
        assert_eq!(live(&meta, &[blob_of(&blob)]).await, vec![blob_of(&blob)]);
        meta.delete_objects("b2", vec!["blob".into()])
            .await
            .unwrap();
        assert_eq!(drain(&meta).await, vec![blob_of(&blob)]);
    }
);

conformance!(copy_onto_itself_keeps_the_body, |meta| async move {
    new_bucket(&meta, "b").await;
    let inline = put_inline(&meta, "b", "inline", b"inline bytes").await;
    let blob = put_blob(&meta, "b", "blob", 1000).await;
    let (multi, parts) = put_multipart(&meta, "b", "multi", &[10, 20, 30]).await;
    let mut all_blobs = parts.clone();
    all_blobs.push(blob_of(&blob));
    let all_blobs = sorted(all_blobs);
    tokio::time::sleep(Duration::from_millis(3)).await;

    for (key, before) in [("inline", &inline), ("blob", &blob), ("multi", &multi)] {
        let changes = CopyChanges {
            tags: Some(vec![("copied".into(), "yes".into())]),
            meta: Some(meta_with("application/x-self")),
            ..CopyChanges::default()
        };
        let after = meta
            .copy_object(("b", key), ("b", key), changes, SourceConditions::default())
            .await
            .unwrap();
        assert_eq!(after.body, before.body, "{key}");
        assert_eq!(
            (after.etag.as_str(), after.size),
            (before.etag.as_str(), before.size)
        );
        assert_eq!(after.tags, vec![("copied".to_owned(), "yes".to_owned())]);
        assert_eq!(after.meta, meta_with("application/x-self"));
        assert!(after.last_modified_ms > before.last_modified_ms, "{key}");
        assert_eq!(meta.head_object("b", key).await.unwrap(), after);
    }
    let (_, bytes) = meta.read_object("b", "inline").await.unwrap();
    assert_eq!(bytes.as_deref(), Some(&b"inline bytes"[..]));
    let head = meta.head_object("b", "multi").await.unwrap();
    assert_eq!(body_blobs(&meta, &head).await, parts);
    // Nothing was freed, everything is live.
    assert_eq!(garbage_count(&meta).await, 0);
    assert!(drain(&meta).await.is_empty());
    assert_eq!(live(&meta, &all_blobs).await, all_blobs);
    // And it is all freed exactly once when the objects go.
    let keys = vec!["inline".into(), "blob".into(), "multi".into()];
    meta.delete_objects("b", keys).await.unwrap();
    assert_eq!(drain(&meta).await, all_blobs);
});

conformance!(tags_and_acl_keep_last_modified, |meta| async move {
    new_bucket(&meta, "b").await;
    let put = put_blob(&meta, "b", "k", 10).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let tags = vec![
        ("k1".to_owned(), "v1".to_owned()),
        ("é".to_owned(), "".to_owned()),
    ];
    meta.set_object_tags("b", "k", tags.clone()).await.unwrap();
    let head = meta.head_object("b", "k").await.unwrap();
    assert_eq!(head.tags, tags);
    assert_eq!(
        ObjectHead {
            tags: Vec::new(),
            ..head
        },
        put,
        "only the tags changed"
    );

    meta.set_object_acl("b", "k", Acl::PublicRead)
        .await
        .unwrap();
    let head = meta.head_object("b", "k").await.unwrap();
    assert_eq!((head.acl, &head.tags), (Acl::PublicRead, &tags));
    assert_eq!(head.last_modified_ms, put.last_modified_ms);
    assert_eq!(head.etag, put.etag);

    meta.set_object_tags("b", "k", Vec::new()).await.unwrap();
    let head = meta.head_object("b", "k").await.unwrap();
    assert!(head.tags.is_empty());
    assert_eq!(
        (head.acl, head.last_modified_ms),
        (Acl::PublicRead, put.last_modified_ms)
    );
    assert_eq!(head.body, put.body);

    let r = meta.set_object_tags("b", "missing", tags.clone()).await;
    assert_eq!(code(r), Code::NoSuchKey);
    let r = meta.set_object_acl("b", "missing", Acl::PublicRead).await;
    assert_eq!(code(r), Code::NoSuchKey);
    assert_eq!(
        code(meta.head_object("b", "missing").await),
        Code::NoSuchKey
    );
    // Neither frees nor retains anything.
    assert_eq!(garbage_count(&meta).await, 0);
});

conformance!(delete_objects_skips_missing_keys, |meta| async move {
    new_bucket(&meta, "b").await;
    new_bucket(&meta, "b2").await;
    put_inline(&meta, "b", "a", b"a").await;
    let b = put_blob(&meta, "b", "b", 5).await;
    put_inline(&meta, "b", "c", b"c").await;
    put_inline(&meta, "b2", "a", b"other bucket").await;
    let (multi, parts) = put_multipart(&meta, "b", "m", &[4, 4]).await;

    let keys = ["a", "missing", "b", "b", "m"].map(String::from).to_vec();
    meta.delete_objects("b", keys).await.unwrap();
    for gone in ["a", "b", "m"] {
        assert_eq!(code(meta.head_object("b", gone).await), Code::NoSuchKey);
    }
    assert_eq!(meta.read_object("b", "c").await.unwrap().1.unwrap(), "c");
    assert_eq!(
        meta.read_object("b2", "a").await.unwrap().1.unwrap(),
        "other bucket"
    );
    meta.delete_objects("b", Vec::new()).await.unwrap();
    meta.delete_objects("b", vec!["a".into()]).await.unwrap();
    // A deleted inline key written again has only its new bytes.
    put_inline(&meta, "b", "a", b"again").await;
    assert_eq!(
        meta.read_object("b", "a").await.unwrap().1.unwrap(),
        "again"
    );

    assert_eq!(garbage_count(&meta).await, 2, "a blob and a manifest");
    let mut freed = parts;
    freed.push(blob_of(&b));
    assert_eq!(drain(&meta).await, sorted(freed));
    let leased = meta.lease(manifest_of(&multi), far()).await.unwrap();
    assert!(!leased, "a collected manifest cannot be leased");
});
