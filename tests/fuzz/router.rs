//! The router: request lines, encoded targets, mutated real lines.

#[allow(unused_imports)]
use super::*;
#[allow(unused_imports)]
use super::{chunked::*, forms::*, headers::*, signatures::*, xml_bodies::*};

// ---- the router ----

/// Pieces of paths and query strings: sub-resource names, escapes (valid,
/// truncated, non-UTF-8), separators.
const URL_TOKENS: &[&str] = &[
    "/",
    "//",
    "a",
    "photos",
    "k.txt",
    "?",
    "&",
    "=",
    "+",
    "%",
    "%2",
    "%41",
    "%2F",
    "%2B",
    "%20",
    "%C3%A9",
    "%C3",
    "%FF",
    "%00",
    "..",
    "uploads",
    "uploadId",
    "partNumber",
    "tagging",
    "lifecycle",
    "cors",
    "policy",
    "acl",
    "delete",
    "versions",
    "list-type",
    "2",
    "attributes",
    "location",
    "versioning",
    "select",
    "restore",
    "x-id",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "é",
    " ",
];

pub(super) fn url_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::collection::vec(select(URL_TOKENS), 0..12).prop_map(|v| v.concat()),
        1 => ".{0,24}",
    ]
    .boxed()
}

pub(super) fn method() -> BoxedStrategy<Method> {
    prop_oneof![
        4 => select(METHODS),
        1 => Just("BREW"),
    ]
    .prop_map(|m| Method::from_bytes(m.as_bytes()).expect("a token"))
    .boxed()
}

pub(super) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    sigv4::uri_encode(s.as_bytes(), keep_slash, &mut out);
    out
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// Any path, host and query: split, parse and route answer without a
    /// 5xx, and what they return keeps the router's own invariants.
    #[test]
    fn router_takes_any_request_line(
        method in method(),
        path in url_text(),
        query in prop::option::of(url_text()),
        host in prop::option::of(prop_oneof![
            Just("photos.s3.local:9000".to_owned()),
            Just("s3.local".to_owned()),
            url_text(),
        ]),
        domain in prop::option::of(prop_oneof![
            Just("s3.local".to_owned()),
            Just(String::new()),
            url_text(),
        ]),
        copy in any::<bool>(),
    ) {
        let (p, q, h, d) = (path.clone(), query.clone(), host.clone(), domain.clone());
        let (target, parsed) = bounded(move || {
            (split_target(&p, h.as_deref(), d.as_deref()), Query::parse(q.as_deref()))
        });
        check_result(&target)?;
        check_result(&parsed)?;
        if let Ok(q) = &parsed {
            let raw = query.as_deref().unwrap_or("");
            let segments = raw.split('&').filter(|p| !p.is_empty()).count();
            prop_assert_eq!(q.0.len(), segments);
        }
        let (Ok((bucket, key)), Ok(q)) = (target, parsed) else { return Ok(()) };
        prop_assert!(bucket.as_ref().is_none_or(|b| !b.is_empty()));
        prop_assert!(key.as_ref().is_none_or(|k| !k.is_empty()));
        let (m, b, k) = (method.clone(), bucket.clone(), key.clone());
        let op = bounded(move || route(&m, b.as_deref(), k.as_deref(), &q, copy));
        use Operation::*;
        if method == Method::OPTIONS {
            prop_assert_eq!(op, CorsPreflight);
        } else if bucket.is_none() {
            prop_assert!(matches!(op, ListBuckets | NotImplemented), "{op:?}");
        } else if key.is_some() {
            // A request naming a key never acts on the whole bucket.
            let bucket_wide = [CreateBucket, DeleteBucket, HeadBucket, ListObjects, DeleteObjects];
            prop_assert!(!bucket_wide.contains(&op), "{op:?} for a key");
        }
    }

    /// A bucket and key encoded as an SDK encodes them come back exactly.
    #[test]
    fn router_decodes_what_sdks_encode(
        bucket in "[a-z0-9][a-z0-9.-]{0,20}",
        key in prop::option::of("\\PC{1,20}"),
        pairs in prop::collection::vec(("\\PC{1,8}", "\\PC{0,8}"), 0..5),
    ) {
        let path = format!("/{bucket}/{}", encode(key.as_deref().unwrap_or(""), true));
        let raw: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false)))
            .collect();
        let raw = raw.join("&");
        let (b, k) = split_target(&path, None, None).unwrap();
        prop_assert_eq!(b.as_deref(), Some(bucket.as_str()));
        prop_assert_eq!(k, key);
        let q = Query::parse(Some(&raw)).unwrap();
        prop_assert_eq!(q.0, pairs);
    }

    /// The request lines of the router's own tests, mutated.
    #[test]
    fn router_takes_mutated_request_lines(
        line in select(&[
            "GET /photos?list-type=2&prefix=a",
            "PUT /photos/a.mp4?partNumber=1&uploadId=x",
            "POST /photos/a.mp4?uploadId=x",
            "DELETE /photos/a.mp4?versionId=null",
            "GET /photos/a%20b+c/%2E%2E/x?tagging",
            "OPTIONS /photos/a.mp4?uploadId=x",
        ][..]),
        m in mutations(),
    ) {
        let line = mutate_str(line, &m);
        let r = bounded(move || {
            let (method, target) = line.split_once(' ').unwrap_or(("GET", &line));
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            let (b, k) = split_target(path, Some("photos.s3.local"), Some("s3.local"))?;
            let q = Query::parse(query)?;
            Ok::<_, S3Error>(route(&method, b.as_deref(), k.as_deref(), &q, false))
        });
        check_result(&r)?;
    }
}
