//! Buckets: creation and its refusals, configuration, deletion, and
//! `NoSuchBucket` from every call scoped to a bucket that does not exist.

use bytes::Bytes;
use stowage::cors::CorsRule;
use stowage::error::Code;
use stowage::lifecycle::{Expiration, Filter, LifecycleRule};
use stowage::store::model::*;
use stowage::time::now_ms;

use super::*;

fn cors_rules() -> Vec<CorsRule> {
    vec![CorsRule {
        id: Some("r1".into()),
        allowed_origins: vec!["https://example.com".into()],
        allowed_methods: vec!["GET".into(), "PUT".into()],
        allowed_headers: vec!["*".into()],
        expose_headers: vec!["ETag".into()],
        max_age_secs: Some(600),
    }]
}

fn lifecycle_rules(prefix: &str) -> Vec<LifecycleRule> {
    vec![LifecycleRule {
        id: format!("expire {prefix}"),
        enabled: true,
        filter: Filter {
            prefix: prefix.into(),
            tags: vec![("class".into(), "tmp".into())],
            size_greater_than: Some(1),
            size_less_than: None,
            legacy: false,
        },
        expiration: Some(Expiration::Days(3)),
        abort_after_days: Some(2),
        noncurrent_days: None,
    }]
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

conformance!(
    create_refusals_listing_acl_policy_and_delete,
    |meta| async move {
        let before = now_ms();
        meta.create_bucket("b", "alice", Acl::PublicRead)
            .await
            .unwrap();
        let after = now_ms();
        let record = meta.bucket("b").await.unwrap();
        assert_eq!(record.owner, "alice");
        assert_eq!(record.acl, Acl::PublicRead);
        assert!(!record.public_objects);
        assert!((before..=after).contains(&record.created_ms), "{record:?}");

        let again = meta.create_bucket("b", "alice", Acl::Private).await;
        assert_eq!(code(again), Code::BucketAlreadyOwnedByYou);
        let taken = meta.create_bucket("b", "bob", Acl::Private).await;
        assert_eq!(code(taken), Code::BucketAlreadyExists);
        // A refused create changes nothing.
        let record = meta.bucket("b").await.unwrap();
        assert_eq!(
            (record.owner.as_str(), record.acl),
            ("alice", Acl::PublicRead)
        );

        for name in ["c", "a", "b-2", "a.b"] {
            meta.create_bucket(name, "bob", Acl::Private).await.unwrap();
        }
        let names: Vec<String> = meta
            .list_buckets()
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a", "a.b", "b", "b-2", "c"], "by name, bytewise");
        let listed = meta.list_buckets().await.unwrap();
        assert_eq!(listed[2].1.owner, "alice");
        assert_eq!(listed[0].1.owner, "bob");

        meta.set_bucket_acl("b", Acl::AuthenticatedRead)
            .await
            .unwrap();
        assert_eq!(meta.bucket("b").await.unwrap().acl, Acl::AuthenticatedRead);
        meta.set_bucket_policy("b", true).await.unwrap();
        let record = meta.bucket("b").await.unwrap();
        assert!(record.public_objects);
        assert_eq!(
            record.acl,
            Acl::AuthenticatedRead,
            "the policy keeps the ACL"
        );
        meta.set_bucket_acl("b", Acl::Private).await.unwrap();
        assert!(
            meta.bucket("b").await.unwrap().public_objects,
            "the ACL keeps the policy"
        );
        meta.set_bucket_policy("b", false).await.unwrap();
        assert!(!meta.bucket("b").await.unwrap().public_objects);
        assert_eq!(meta.bucket("a").await.unwrap().acl, Acl::Private);

        meta.delete_bucket("b").await.unwrap();
        assert_eq!(code(meta.bucket("b").await), Code::NoSuchBucket);
        assert_eq!(code(meta.delete_bucket("b").await), Code::NoSuchBucket);
        assert_eq!(meta.list_buckets().await.unwrap().len(), 4);
        // The name is free again, for anyone.
        meta.create_bucket("b", "bob", Acl::Private).await.unwrap();
        assert_eq!(meta.bucket("b").await.unwrap().owner, "bob");
        assert!(!meta.bucket("b").await.unwrap().public_objects);
        meta.probe().await.unwrap();
    }
);

conformance!(
    cors_tags_and_lifecycle_are_set_read_and_cleared,
    |meta| async move {
        new_bucket(&meta, "b").await;
        new_bucket(&meta, "other").await;
        assert_eq!(meta.bucket_cors("b").await.unwrap(), None);
        assert_eq!(meta.bucket_tags("b").await.unwrap(), None);
        assert_eq!(meta.bucket_lifecycle("b").await.unwrap(), None);
        assert!(meta.lifecycles().await.unwrap().is_empty());

        meta.set_bucket_cors("b", Some(cors_rules())).await.unwrap();
        meta.set_bucket_tags("b", Some(tags(&[("team", "blue"), ("é", "日本")])))
            .await
            .unwrap();
        meta.set_bucket_lifecycle("b", Some(lifecycle_rules("logs/")))
            .await
            .unwrap();
        meta.set_bucket_lifecycle("other", Some(lifecycle_rules("tmp/")))
            .await
            .unwrap();
        assert_eq!(meta.bucket_cors("b").await.unwrap(), Some(cors_rules()));
        assert_eq!(
            meta.bucket_tags("b").await.unwrap(),
            Some(tags(&[("team", "blue"), ("é", "日本")])),
            "tags keep their order"
        );
        assert_eq!(
            meta.bucket_lifecycle("b").await.unwrap(),
            Some(lifecycle_rules("logs/"))
        );
        // One bucket's configuration is its own.
        assert_eq!(meta.bucket_cors("other").await.unwrap(), None);
        assert_eq!(meta.bucket_tags("other").await.unwrap(), None);
        let mut all = meta.lifecycles().await.unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            all,
            vec![
                ("b".to_owned(), lifecycle_rules("logs/")),
                ("other".to_owned(), lifecycle_rules("tmp/")),
            ]
        );
        // Setting replaces; configurations are independent of each other
        // and of the bucket's record.
        meta.set_bucket_tags("b", Some(tags(&[("a", "1")])))
            .await
            .unwrap();
        meta.set_bucket_acl("b", Acl::PublicRead).await.unwrap();
        assert_eq!(
            meta.bucket_tags("b").await.unwrap(),
            Some(tags(&[("a", "1")]))
        );
        assert_eq!(meta.bucket_cors("b").await.unwrap(), Some(cors_rules()));

        meta.set_bucket_cors("b", None).await.unwrap();
        assert_eq!(meta.bucket_cors("b").await.unwrap(), None);
        assert_eq!(
            meta.bucket_tags("b").await.unwrap(),
            Some(tags(&[("a", "1")]))
        );
        meta.set_bucket_tags("b", None).await.unwrap();
        assert_eq!(meta.bucket_tags("b").await.unwrap(), None);
        meta.set_bucket_lifecycle("b", None).await.unwrap();
        assert_eq!(meta.bucket_lifecycle("b").await.unwrap(), None);
        let all = meta.lifecycles().await.unwrap();
        assert_eq!(all, vec![("other".to_owned(), lifecycle_rules("tmp/"))]);
        // Clearing what is not set is no error.
        meta.set_bucket_cors("b", None).await.unwrap();

        // A deleted bucket takes its configuration with it: created again,
        // it has none.
        meta.set_bucket_cors("other", Some(cors_rules()))
            .await
            .unwrap();
        meta.set_bucket_tags("other", Some(tags(&[("x", "y")])))
            .await
            .unwrap();
        meta.delete_bucket("other").await.unwrap();
        assert!(meta.lifecycles().await.unwrap().is_empty());
        new_bucket(&meta, "other").await;
        assert_eq!(meta.bucket_cors("other").await.unwrap(), None);
        assert_eq!(meta.bucket_tags("other").await.unwrap(), None);
        assert_eq!(meta.bucket_lifecycle("other").await.unwrap(), None);
        assert!(meta.lifecycles().await.unwrap().is_empty());
    }
);

conformance!(
    every_bucket_scoped_call_of_a_missing_bucket_is_refused,
    |meta| async move {
        new_bucket(&meta, "real").await;
        put_inline(&meta, "real", "k", b"x").await;
        let id = meta.create_upload("real", "k", record()).await.unwrap();
        let nb = Code::NoSuchBucket;
        let m = &meta;

        assert_eq!(code(m.bucket("nope").await), nb);
        assert_eq!(code(m.delete_bucket("nope").await), nb);
        assert_eq!(code(m.bucket_cors("nope").await), nb);
        assert_eq!(
            code(m.set_bucket_cors("nope", Some(cors_rules())).await),
            nb
        );
        assert_eq!(code(m.set_bucket_cors("nope", None).await), nb);
        assert_eq!(code(m.set_bucket_acl("nope", Acl::PublicRead).await), nb);
        assert_eq!(code(m.set_bucket_policy("nope", true).await), nb);
        assert_eq!(code(m.bucket_tags("nope").await), nb);
        assert_eq!(
            code(m.set_bucket_tags("nope", Some(tags(&[("a", "b")]))).await),
            nb
        );
        assert_eq!(code(m.set_bucket_tags("nope", None).await), nb);
        assert_eq!(code(m.bucket_lifecycle("nope").await), nb);
        let rules = Some(lifecycle_rules(""));
        assert_eq!(code(m.set_bucket_lifecycle("nope", rules).await), nb);
        assert_eq!(code(m.set_bucket_lifecycle("nope", None).await), nb);

        assert_eq!(code(m.head_object("nope", "k").await), nb);
        assert_eq!(code(m.read_object("nope", "k").await), nb);
        let inline = Some(Bytes::from_static(b"x"));
        let put = m.put_object("nope", "k", inline_head(b"x"), inline, WriteCondition::None);
        assert_eq!(code(put.await), nb);
        let head = blob_head(10);
        let blob = blob_of(&head);
        let put = m.put_object("nope", "k", head, None, WriteCondition::IfNoneMatch);
        assert_eq!(code(put.await), nb);
        assert!(
            live(m, &[blob]).await.is_empty(),
            "a refused blob is not live"
        );
        let copy = m.copy_object(
            ("nope", "k"),
            ("real", "k2"),
            CopyChanges::default(),
            SourceConditions::default(),
        );
        assert_eq!(code(copy.await), nb);
        let copy = m.copy_object(
            ("real", "k"),
            ("nope", "k2"),
            CopyChanges::default(),
            SourceConditions::default(),
        );
        assert_eq!(code(copy.await), nb);
        assert_eq!(
            code(m.set_object_tags("nope", "k", tags(&[("a", "b")])).await),
            nb
        );
        assert_eq!(
            code(m.set_object_acl("nope", "k", Acl::PublicRead).await),
            nb
        );
        assert_eq!(code(m.delete_objects("nope", vec!["k".into()]).await), nb);
        assert_eq!(code(m.delete_objects("nope", Vec::new()).await), nb);
        let q = ListQuery {
            max: 10,
            ..ListQuery::default()
        };
        assert_eq!(code(m.list_objects("nope", q.clone()).await), nb);

        assert_eq!(code(m.create_upload("nope", "k", record()).await), nb);
        assert_eq!(code(m.upload("nope", "k", &id).await), nb);
        // No upload lives in a missing bucket, so a part for one is refused
        // either way.
        let p = part(5);
        let stray = p.blob;
        let put_part = code(m.put_part("nope", "k", &id, 1, p).await);
        assert!(
            [Code::NoSuchBucket, Code::NoSuchUpload].contains(&put_part),
            "{put_part:?}"
        );
        assert!(
            live(m, &[stray]).await.is_empty(),
            "a refused part is not live"
        );
        let complete = m.complete_upload(
            "nope",
            "k",
            &id,
            Completion::default(),
            WriteCondition::None,
        );
        assert_eq!(code(complete.await), nb);
        assert_eq!(code(m.abort_upload("nope", "k", &id).await), nb);
        assert_eq!(code(m.list_uploads("nope", q.clone(), None).await), nb);

        // The real bucket was never touched.
        assert_eq!(m.head_object("real", "k").await.unwrap().size, 1);
        assert!(m.upload("real", "k", &id).await.is_ok());
        assert_eq!(code(m.head_object("real", "k2").await), Code::NoSuchKey);
        assert_eq!(m.stats().await.unwrap().incomplete_uploads, 1);
    }
);

conformance!(
    delete_bucket_refuses_objects_and_aborts_uploads,
    |meta| async move {
        new_bucket(&meta, "b").await;
        new_bucket(&meta, "b2").await;
        let object = put_blob(&meta, "b", "k", 10).await;
        let id = meta.create_upload("b", "up", record()).await.unwrap();
        let (p1, p2) = (part(7), part(8));
        let blobs = sorted(vec![blob_of(&object), p1.blob, p2.blob]);
        meta.put_part("b", "up", &id, 1, p1).await.unwrap();
        meta.put_part("b", "up", &id, 2, p2).await.unwrap();
        // A neighbour's upload whose key sorts right after.
        let other = meta.create_upload("b2", "up", record()).await.unwrap();
        meta.put_part("b2", "up", &other, 1, part(3)).await.unwrap();

        assert_eq!(code(meta.delete_bucket("b").await), Code::BucketNotEmpty);
        assert!(meta.upload("b", "up", &id).await.is_ok(), "nothing aborted");
        assert_eq!(meta.stats().await.unwrap().incomplete_uploads, 2);
        assert_eq!(garbage_count(&meta).await, 0);

        meta.delete_objects("b", vec!["k".into()]).await.unwrap();
        meta.delete_bucket("b").await.unwrap();
        let stats = meta.stats().await.unwrap();
        assert_eq!(stats.incomplete_uploads, 1);
        assert_eq!(stats.incomplete_upload_bytes, 3);
        assert_eq!(stats.upload_bytes_by_bucket, vec![("b2".to_owned(), 3)]);
        assert_eq!(stats.garbage_blobs, 3, "the object's blob and two parts");
        assert_eq!(drain(&meta).await, blobs);
        assert!(live(&meta, &blobs).await.is_empty());
        assert_eq!(garbage_count(&meta).await, 0);

        // Created again, the bucket has no trace of its uploads.
        new_bucket(&meta, "b").await;
        assert_eq!(code(meta.upload("b", "up", &id).await), Code::NoSuchUpload);
        let q = ListQuery {
            max: 10,
            ..ListQuery::default()
        };
        assert!(
            meta.list_uploads("b", q, None)
                .await
                .unwrap()
                .uploads
                .is_empty()
        );
        assert!(meta.parts(&id, 0, 10).await.unwrap().0.is_empty());
        assert!(meta.upload("b2", "up", &other).await.is_ok());
        // An empty bucket with only an upload goes too.
        meta.delete_bucket("b2").await.unwrap();
        let stats = meta.stats().await.unwrap();
        assert_eq!(
            (stats.incomplete_uploads, stats.incomplete_upload_bytes),
            (0, 0)
        );
        assert!(stats.upload_bytes_by_bucket.is_empty());
    }
);
