//! Listing order and pages over awkward keys, checked against a reference
//! model computed here: keys sorted by their UTF-8 bytes, rolled up into
//! common prefixes at the first delimiter after the prefix.

use std::collections::BTreeMap;
use std::sync::Arc;

use stowage::store::model::*;

use super::*;

const KEYS: &[&str] = &[
    "a",
    "a/b",
    "a/b/c",
    "a/b/",
    "a/c",
    "a//b",
    "a b",
    "a\tb",
    "a\nb",
    "a\u{1}",
    "a\u{1f}x",
    "a\u{7f}",
    "a/é",
    "a/É",
    "a/e",
    "é",
    "É",
    "e",
    "E",
    "e/é/x",
    "z",
    "~",
    " lead",
    "trail ",
    "日本/語",
    "日本語",
    "日/本",
    "日本/語/x",
    "🙂",
    "🙂/x",
    "x🙂y",
    "x🙂",
    "xy🙂z",
    "/",
    "//",
    "/x",
    "dir/",
    "dir/sub/",
    "dir/sub/file",
    "dir/file",
    "dir0",
    "dir.x",
    "\u{fb00}",
    "\u{e000}",
    "\u{d7ff}",
    "\u{10ffff}",
    "a\u{10ffff}/b",
    "q\u{10ffff}z",
    "p%2Fq",
    "p/q",
    "a.b-c_d",
];

/// One entry of a listing: an object's key or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Key(String),
    Prefix(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Key(k) | Entry::Prefix(k) => k,
        }
    }
}

fn rollup<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let i = key.get(prefix.len()..)?.find(d)?;
    Some(&key[..prefix.len() + i + d.len()])
}

/// What a listing from the start (or strictly after `after`, or past every
/// key of the common prefix `after` names) holds, in order. Keys are
/// (key, payload) pairs sorted by bytes.
fn model<'a, T>(
    sorted_keys: &'a [(String, T)],
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
) -> Vec<(Entry, &'a T)> {
    let skip_under =
        after.filter(|a| rollup(a, prefix, delimiter) == Some(*a) && a.starts_with(prefix));
    let mut out: Vec<(Entry, &T)> = Vec::new();
    for (key, payload) in sorted_keys {
        if !key.starts_with(prefix) || after.is_some_and(|a| key.as_str() <= a) {
            continue;
        }
        if skip_under.is_some_and(|cp| key.starts_with(cp)) {
            continue;
        }
        let entry = match rollup(key, prefix, delimiter) {
            Some(cp) => Entry::Prefix(cp.to_owned()),
            None => Entry::Key(key.clone()),
        };
        if matches!(&entry, Entry::Prefix(_)) && out.last().is_some_and(|(e, _)| *e == entry) {
            continue;
        }
        out.push((entry, payload));
    }
    out
}

fn page_entries(page: &ListPage) -> Vec<Entry> {
    let mut entries: Vec<Entry> = page
        .objects
        .iter()
        .map(|(k, _)| Entry::Key(k.clone()))
        .collect();
    entries.extend(
        page.common_prefixes
            .iter()
            .map(|p| Entry::Prefix(p.clone())),
    );
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    entries
}

const QUERIES: &[(&str, Option<&str>)] = &[
    ("", None),
    ("", Some("/")),
    ("a", Some("/")),
    ("a/", Some("/")),
    ("a/", None),
    ("dir/", Some("/")),
    ("dir", Some("/")),
    ("日", Some("/")),
    ("日本", Some("語")),
    ("", Some("é")),
    ("", Some("🙂")),
    ("x", Some("🙂")),
    ("", Some("//")),
    ("", Some(" ")),
    ("", Some("b")),
    ("a", None),
    ("zz", Some("/")),
    ("\u{10ffff}", Some("/")),
    ("a\u{10ffff}", Some("/")),
    ("", Some("\u{10ffff}")),
];

conformance!(
    objects_list_in_byte_order_with_prefixes_and_pages,
    |meta| async move {
        new_bucket(&meta, "b").await;
        new_bucket(&meta, "b-neighbour").await;
        let mut heads = BTreeMap::new();
        for key in KEYS {
            let head = put_inline(&meta, "b", key, key.as_bytes()).await;
            heads.insert(key.to_string(), head);
        }
        // Keys of another bucket never show.
        for key in ["a", "a/z", "zzz"] {
            put_inline(&meta, "b-neighbour", key, b"other").await;
        }
        // String order is byte order for UTF-8.
        let keys: Vec<(String, ObjectHead)> = heads.into_iter().collect();

        for &(prefix, delimiter) in QUERIES {
            let full = model(&keys, prefix, delimiter, None);
            // Whole, in one page.
            let q = ListQuery {
                prefix: prefix.into(),
                delimiter: delimiter.map(str::to_owned),
                after: None,
                max: 1000,
            };
            let page = meta.list_objects("b", q.clone()).await.unwrap();
            let want: Vec<Entry> = full.iter().map(|(e, _)| e.clone()).collect();
            let what = format!("prefix {prefix:?} delimiter {delimiter:?}");
            assert_eq!(page_entries(&page), want, "{what}");
            assert!(!page.truncated, "{what}");
            assert_eq!(page.last.as_deref(), want.last().map(Entry::name), "{what}");
            for (key, head) in &page.objects {
                let expected = &keys.iter().find(|(k, _)| k == key).unwrap().1;
                assert_eq!(head, expected, "{key:?}");
            }
            // Objects and prefixes each come in order.
            let names: Vec<&str> = page.objects.iter().map(|(k, _)| k.as_str()).collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{what}: {names:?}");
            assert!(
                page.common_prefixes.windows(2).all(|w| w[0] < w[1]),
                "{what}"
            );

            // In pages of `max`, each resuming after the previous page's last.
            for max in [1, 2, 3, 7] {
                let mut after: Option<String> = None;
                let mut got = Vec::new();
                for _ in 0..=want.len() {
                    let q = ListQuery {
                        after: after.clone(),
                        max,
                        ..q.clone()
                    };
                    let page = meta.list_objects("b", q).await.unwrap();
                    let expected = model(&keys, prefix, delimiter, after.as_deref());
                    let entries = page_entries(&page);
                    let first: Vec<Entry> =
                        expected.iter().take(max).map(|(e, _)| e.clone()).collect();
                    assert_eq!(entries, first, "{what} max {max} after {after:?}");
                    assert_eq!(page.truncated, expected.len() > max, "{what} max {max}");
                    assert_eq!(page.last.as_deref(), first.last().map(Entry::name));
                    got.extend(entries);
                    if !page.truncated {
                        break;
                    }
                    after = page.last;
                }
                assert_eq!(got, want, "{what} in pages of {max}");
            }
        }

        // Starting after arbitrary strings, on and between keys.
        let starts = [
            "",
            "a",
            "a/",
            "a/b",
            "a/b/",
            "a0",
            "b",
            "dir/",
            "dir/s",
            "e/",
            "é",
            "日本/",
            "🙂",
            "\u{1}",
            "\u{10ffff}",
            "a\u{10ffff}/",
            "zzz",
        ];
        for &(prefix, delimiter) in QUERIES {
            for start in starts {
                let q = ListQuery {
                    prefix: prefix.into(),
                    delimiter: delimiter.map(str::to_owned),
                    after: Some(start.into()),
                    max: 5,
                };
                let page = meta.list_objects("b", q).await.unwrap();
                let expected = model(&keys, prefix, delimiter, Some(start));
                let first: Vec<Entry> = expected.iter().take(5).map(|(e, _)| e.clone()).collect();
                let what = format!("prefix {prefix:?} delimiter {delimiter:?} after {start:?}");
                assert_eq!(page_entries(&page), first, "{what}");
                assert_eq!(page.truncated, expected.len() > 5, "{what}");
            }
        }
    }
);

/// (prefix, delimiter, key marker, upload id marker)
type UploadQuery<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// Upload pages, continued as ListMultipartUploads does: after the last
/// entry, with its upload id when it was an upload.
fn upload_entries(page: &UploadListPage) -> Vec<(Entry, Option<String>)> {
    let mut entries: Vec<(Entry, Option<String>)> = page
        .uploads
        .iter()
        .map(|(k, id, _)| (Entry::Key(k.clone()), Some(id.clone())))
        .collect();
    entries.extend(
        page.common_prefixes
            .iter()
            .map(|p| (Entry::Prefix(p.clone()), None)),
    );
    entries.sort_by(|a, b| (a.0.name(), &a.1).cmp(&(b.0.name(), &b.1)));
    entries
}

/// The model of an upload listing: by key, then upload id (initiation
/// time). A key marker with an upload id marker resumes after that upload;
/// a key marker alone, after every upload of that key (or past the common
/// prefix it names); an id marker alone is ignored.
fn upload_model(
    uploads: &[(String, String)],
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    id_marker: Option<&str>,
) -> Vec<(Entry, Option<String>)> {
    let resume = match (key_marker, id_marker) {
        (Some(k), Some(id)) if !id.is_empty() && k >= prefix => Some((k, id)),
        _ => None,
    };
    let start = if resume.is_some() { None } else { key_marker };
    let mut out: Vec<(Entry, Option<String>)> = Vec::new();
    let skip_under =
        start.filter(|a| rollup(a, prefix, delimiter) == Some(*a) && a.starts_with(prefix));
    for (key, id) in uploads {
        if !key.starts_with(prefix) {
            continue;
        }
        let skipped = match (resume, start) {
            (Some((k, i)), _) => (key.as_str(), id.as_str()) <= (k, i),
            (None, Some(a)) => {
                key.as_str() <= a || skip_under.is_some_and(|cp| key.starts_with(cp))
            }
            (None, None) => false,
        };
        if skipped {
            continue;
        }
        let entry = match rollup(key, prefix, delimiter) {
            Some(cp) => (Entry::Prefix(cp.to_owned()), None),
            None => (Entry::Key(key.clone()), Some(id.clone())),
        };
        if entry.1.is_none() && out.last().is_some_and(|e| *e == entry) {
            continue;
        }
        out.push(entry);
    }
    out
}

conformance!(
    uploads_list_by_key_then_initiation_with_markers,
    |meta| async move {
        new_bucket(&meta, "b").await;
        new_bucket(&meta, "b2").await;
        let keys = [
            "a",
            "a/b",
            "a b",
            "a/c",
            "é",
            "日本/語",
            "🙂",
            "🙂/x",
            "z",
            "a\u{7f}",
        ];
        let base = stowage::time::now_ms() - 1_000_000;
        let mut uploads = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            // 1 to 3 uploads per key, the later-created initiated earlier
            // for some, so that order is by initiation, not creation.
            for j in 0..(1 + i % 3) {
                let at = base + ((i * 7 + (3 - j) * 1000) as i64);
                let id = meta.create_upload("b", key, record_at(at)).await.unwrap();
                uploads.push((key.to_string(), id));
            }
        }
        meta.create_upload("b2", "a", record()).await.unwrap();
        uploads.sort();
        let ids_of = |key: &str| -> Vec<String> {
            uploads
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, id)| id.clone())
                .collect()
        };
        // Ids of one key sort by initiation time.
        let three = ids_of("a b");
        assert_eq!(three.len(), 3);
        assert!(three[0] < three[1] && three[1] < three[2]);

        let list =
            |prefix: &str, delimiter: Option<&str>, km: Option<&str>, im: Option<&str>, max| {
                let meta = Arc::clone(&meta);
                let q = ListQuery {
                    prefix: prefix.into(),
                    delimiter: delimiter.map(str::to_owned),
                    after: km.map(str::to_owned),
                    max,
                };
                let im = im.map(str::to_owned);
                async move { meta.list_uploads("b", q, im).await.unwrap() }
            };

        let full = list("", None, None, None, 1000).await;
        let got: Vec<(String, String)> = full
            .uploads
            .iter()
            .map(|(k, id, _)| (k.clone(), id.clone()))
            .collect();
        assert_eq!(got, uploads, "by key, then initiation");
        assert!(!full.truncated);
        for (key, id, rec) in &full.uploads {
            assert_eq!(
                &meta.upload("b", key, id).await.unwrap().initiated_ms,
                &rec.initiated_ms
            );
        }

        let ab = ids_of("a b");
        let queries: Vec<UploadQuery> = vec![
            ("", None, None, None),
            ("", Some("/"), None, None),
            ("a", Some("/"), None, None),
            ("", None, Some("a b"), None),
            ("", None, Some("a b"), Some(&ab[0])),
            ("", None, Some("a b"), Some(&ab[2])),
            ("", None, Some("a b"), Some("")),
            // An id marker without a key marker is ignored.
            ("", None, None, Some(&ab[1])),
            ("", Some("/"), Some("a/"), None),
            ("", Some("/"), Some("a/b"), Some("0")),
            ("a", None, Some("a b"), Some(&ab[1])),
            ("é", None, Some("a"), Some(&ab[1])),
            ("🙂", Some("/"), None, None),
        ];
        for (prefix, delimiter, km, im) in queries {
            let want = upload_model(&uploads, prefix, delimiter, km, im);
            let what = format!("prefix {prefix:?} delimiter {delimiter:?} markers {km:?} {im:?}");
            let page = list(prefix, delimiter, km, im, 1000).await;
            assert_eq!(upload_entries(&page), want, "{what}");
            assert!(!page.truncated);
            // In pages, each resuming after the last entry.
            for max in [1, 2, 4] {
                let (mut km, mut im) = (km.map(str::to_owned), im.map(str::to_owned));
                let mut got = Vec::new();
                for _ in 0..=want.len() {
                    let page = list(prefix, delimiter, km.as_deref(), im.as_deref(), max).await;
                    let entries = upload_entries(&page);
                    let expected =
                        upload_model(&uploads, prefix, delimiter, km.as_deref(), im.as_deref());
                    assert_eq!(
                        entries[..],
                        expected[..expected.len().min(max)],
                        "{what} max {max}"
                    );
                    assert_eq!(page.truncated, expected.len() > max, "{what} max {max}");
                    if !page.truncated {
                        got.extend(entries);
                        break;
                    }
                    let (last, id) = entries.last().cloned().unwrap();
                    km = Some(last.name().to_owned());
                    im = id;
                    got.extend(entries);
                }
                assert_eq!(got, want, "{what} in pages of {max}");
            }
        }
    }
);
