//! XML bodies: Complete, DeleteObjects, CORS, lifecycle, tagging.

#[allow(unused_imports)]
use super::*;
#[allow(unused_imports)]
use super::{chunked::*, forms::*, headers::*, router::*, signatures::*};

// ---- XML bodies ----

/// An XML request body: parsed by `parse`, it answers a value or a 4xx.
fn xml_target<T: Send + 'static>(
    body: Vec<u8>,
    parse: fn(&[u8]) -> S3Result<T>,
) -> Result<S3Result<T>, TestCaseError> {
    let r = bounded(move || parse(&body));
    check_result(&r)?;
    Ok(r)
}

fn complete_checked(body: &[u8]) -> S3Result<Vec<(u32, bool)>> {
    let r: CompleteRequest = stowage::xml::parse(body)?;
    r.parts
        .iter()
        .map(|p| Ok((p.part_number, p.checksum()?.is_some())))
        .collect()
}

/// A DeleteObjects body: the quiet flag, and each key with its version id.
type DeleteKeys = (bool, Vec<(String, Option<String>)>);

fn delete_keys(body: &[u8]) -> S3Result<DeleteKeys> {
    let r: DeleteRequest = stowage::xml::parse(body)?;
    Ok((
        r.quiet,
        r.object
            .into_iter()
            .map(|o| (o.key, o.version_id))
            .collect(),
    ))
}

/// Lifecycle refuses transitions with 501 NotImplemented on purpose (one
/// storage class); every other error is a 4xx.
fn lifecycle_target(body: Vec<u8>) -> Result<S3Result<Vec<LifecycleRule>>, TestCaseError> {
    let r = bounded(move || lifecycle::parse_xml(&body));
    match &r {
        Err(e) if e.code == Code::NotImplemented => {}
        _ => check_result(&r)?,
    }
    Ok(r)
}

const ALGORITHMS: [(Algorithm, &str, usize); 5] = [
    (Algorithm::Crc32, "ChecksumCRC32", 4),
    (Algorithm::Crc32c, "ChecksumCRC32C", 4),
    (Algorithm::Crc64Nvme, "ChecksumCRC64NVME", 8),
    (Algorithm::Sha1, "ChecksumSHA1", 20),
    (Algorithm::Sha256, "ChecksumSHA256", 32),
];

/// A part's checksum as listed in a Complete: base64 of the right length,
/// of a wrong length, or not base64 at all.
fn listed_checksum() -> impl Strategy<Value = Option<(usize, String)>> {
    prop::option::of((0..5usize, any::<u8>(), 0..4u8, xml_value()).prop_map(
        |(a, byte, form, junk)| {
            let len = ALGORITHMS[a].2;
            match form {
                0 | 1 => (a, BASE64.encode(vec![byte; len])),
                2 => (a, BASE64.encode(vec![byte; len + 1])),
                _ => (a, junk),
            }
        },
    ))
}

/// Whether a listed checksum is one S3 accepts: base64 of its algorithm's
/// digest length.
fn checksum_model(a: usize, value: &str) -> bool {
    BASE64
        .decode(value.trim())
        .is_ok_and(|raw| raw.len() == ALGORITHMS[a].2)
}

fn cors_rule() -> impl Strategy<Value = CorsRule> {
    let pattern = || {
        prop_oneof![
            Just("*".to_owned()),
            "[a-z:/.-]{1,10}",
            "[a-z:/.-]{0,6}\\*[a-z.-]{0,6}",
        ]
    };
    (
        prop::option::of(non_empty_value()),
        prop::collection::vec(pattern(), 1..3),
        prop::collection::vec(select(&["GET", "PUT", "HEAD", "POST", "DELETE"][..]), 1..4),
        prop::collection::vec(pattern(), 0..3),
        prop::collection::vec(xml_value(), 0..3),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |(id, origins, methods, headers, expose, max_age)| CorsRule {
                id,
                allowed_origins: origins,
                allowed_methods: methods.into_iter().map(str::to_owned).collect(),
                allowed_headers: headers,
                expose_headers: expose,
                max_age_secs: max_age,
            },
        )
}

/// The first and last day, from 1970-01-01, of an expiration date that
/// can be put: dates before 1970 are refused
/// (`regression_lifecycle_date_before_1970`).
const FIRST_DAY: i64 = 0;
const LAST_DAY: i64 = 2_932_896;

fn lifecycle_rule() -> impl Strategy<Value = LifecycleRule> {
    let filter = prop_oneof![
        xml_value().prop_map(|prefix| Filter {
            prefix,
            legacy: true,
            ..Filter::default()
        }),
        (
            xml_value(),
            prop::collection::vec((non_empty_value(), xml_value()), 0..3),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
        )
            .prop_map(|(prefix, tags, gt, lt)| Filter {
                prefix,
                tags,
                size_greater_than: gt,
                size_less_than: lt,
                legacy: false,
            }),
    ];
    let expiration = prop::option::of(prop_oneof![
        (1..=u32::MAX).prop_map(Expiration::Days),
        (FIRST_DAY..=LAST_DAY).prop_map(|d| Expiration::Date(d * DAY_MS)),
        any::<bool>().prop_map(Expiration::DeleteMarker),
    ]);
    (
        non_empty_value(),
        any::<bool>(),
        filter,
        expiration,
        prop::option::of(1..=u32::MAX),
        prop::option::of(1..=u32::MAX),
    )
        .prop_map(|(id, enabled, filter, expiration, abort, noncurrent)| {
            let mut r = LifecycleRule {
                id,
                enabled,
                abort_after_days: abort.filter(|_| {
                    filter.tags.is_empty()
                        && filter.size_greater_than.is_none()
                        && filter.size_less_than.is_none()
                }),
                expiration: expiration.filter(|e| {
                    !matches!(e, Expiration::DeleteMarker(_)) || filter.tags.is_empty()
                }),
                filter,
                noncurrent_days: noncurrent,
            };
            if r.expiration.is_none() && r.abort_after_days.is_none() {
                r.noncurrent_days.get_or_insert(1);
            }
            r
        })
}

pub(super) fn tags_xml(tags: &[(String, String)]) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.root("Tagging");
    w.open("TagSet");
    for (key, value) in tags {
        w.open("Tag");
        w.elem("Key", key);
        w.elem("Value", value);
        w.close("Tag");
    }
    w.close("TagSet");
    w.close("Tagging");
    w.finish().into_bytes()
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn complete_body(body in document(COMPLETE)) {
        let _ = xml_target(body.to_vec(), complete_checked)?;
    }

    /// A Complete as an SDK writes it parses back; each listed checksum is
    /// accepted exactly when it is base64 of its algorithm's length.
    #[test]
    fn complete_body_round_trips(
        parts in prop::collection::vec((any::<u32>(), xml_value(), listed_checksum()), 0..6),
    ) {
        let mut w = XmlWriter::new();
        w.root("CompleteMultipartUpload");
        for (n, etag, checksum) in &parts {
            w.open("Part");
            w.elem_display("PartNumber", n);
            w.elem("ETag", etag);
            if let Some((a, value)) = checksum {
                w.elem(ALGORITHMS[*a].1, value);
            }
            w.close("Part");
        }
        w.close("CompleteMultipartUpload");
        let body = w.finish().into_bytes();
        let r: CompleteRequest = bounded(move || stowage::xml::parse(&body)).unwrap();
        prop_assert_eq!(r.parts.len(), parts.len());
        for (got, (n, etag, checksum)) in r.parts.iter().zip(&parts) {
            prop_assert_eq!(got.part_number, *n);
            prop_assert_eq!(&got.etag, etag);
            let want = checksum.as_ref().map(|(a, v)| (*a, checksum_model(*a, v)));
            match (got.checksum(), want) {
                (Ok(None), None) => {}
                (Ok(Some(c)), Some((a, true))) => prop_assert_eq!(c.algorithm, ALGORITHMS[a].0),
                (Err(e), Some((_, false))) => prop_assert_eq!(e.code, Code::InvalidArgument),
                (got, _) => prop_assert!(false, "checksum {checksum:?} gave {got:?}"),
            }
        }
    }

    #[test]
    fn delete_objects_body(body in document(DELETE)) {
        let _ = xml_target(body.to_vec(), delete_keys)?;
    }

    #[test]
    fn delete_objects_body_round_trips(
        quiet in any::<bool>(),
        objects in prop::collection::vec((xml_value(), prop::option::of(xml_value())), 0..6),
    ) {
        let mut w = XmlWriter::new();
        w.root("Delete");
        w.elem_display("Quiet", quiet);
        for (key, version) in &objects {
            w.open("Object");
            w.elem("Key", key);
            w.elem_opt("VersionId", version.as_deref());
            w.close("Object");
        }
        w.close("Delete");
        let body = w.finish().into_bytes();
        let got = bounded(move || delete_keys(&body)).unwrap();
        prop_assert_eq!(got, (quiet, objects));
    }

    #[test]
    fn cors_body(body in document(CORS)) {
        let r = xml_target(body.to_vec(), cors::parse_xml)?;
        if let Ok(rules) = r {
            prop_assert!(!rules.is_empty());
            prop_assert_eq!(cors::validate(&rules).map_err(|e| e.code), Ok(()));
            // What was accepted is written out and read back the same.
            let back = xml_target(cors::to_xml(&rules).into_bytes(), cors::parse_xml)?;
            prop_assert_eq!(back.map_err(|e| e.to_string()), Ok(rules));
        }
    }

    #[test]
    fn cors_round_trips(rules in prop::collection::vec(cors_rule(), 1..4)) {
        let xml = cors::to_xml(&rules);
        let back = bounded(move || cors::parse_xml(xml.as_bytes()));
        prop_assert_eq!(back.map_err(|e| e.to_string()), Ok(rules));
    }

    /// A preflight's origin, method and headers against any rules: no
    /// panic, and a rule open to every origin and header answers.
    #[test]
    fn cors_rules_match_any_preflight(
        rules in prop::collection::vec(cors_rule(), 0..4),
        origin in prop_oneof![text(), "https?://[a-z.é]{0,12}"],
        method in select(METHODS),
        headers in prop::collection::vec(prop_oneof![text(), "[a-zA-Z-]{1,12}"], 0..3),
    ) {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let found = cors::find(&rules, &origin, method, &headers);
        let open = rules.iter().position(|r| {
            r.allowed_origins.iter().any(|o| o == "*")
                && r.allowed_methods.iter().any(|m| m == method)
                && (headers.is_empty() || r.allowed_headers.iter().any(|h| h == "*"))
        });
        if let Some(i) = open {
            let at = found.and_then(|f| rules.iter().position(|r| std::ptr::eq(r, f)));
            prop_assert!(at.is_some_and(|at| at <= i), "rule {i} is open to all, found {at:?}");
        }
    }

    #[test]
    fn lifecycle_body(body in document(LIFECYCLE)) {
        if let Ok(rules) = lifecycle_target(body.to_vec())? {
            // What was accepted is written out and read back the same.
            let xml = lifecycle::to_xml(&rules);
            let back = lifecycle_target(xml.into_bytes())?;
            prop_assert_eq!(back.map_err(|e| e.to_string()), Ok(rules));
        }
    }

    #[test]
    fn lifecycle_round_trips(rules in prop::collection::vec(lifecycle_rule(), 1..4)) {
        let rules: Vec<LifecycleRule> = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| LifecycleRule { id: format!("{i}{}", r.id), ..r })
            .collect();
        let xml = lifecycle::to_xml(&rules);
        let back = lifecycle_target(xml.into_bytes())?;
        prop_assert_eq!(back.map_err(|e| e.to_string()), Ok(rules));
    }

    #[test]
    fn tagging_body(body in document(TAGGING)) {
        if let Ok(tags) = xml_target(body.to_vec(), parse_object_tags)? {
            prop_assert!(tags.len() <= 10);
            prop_assert!(tags.iter().all(|(k, _)| !k.is_empty()));
            let back = xml_target(tags_xml(&tags), parse_object_tags)?;
            prop_assert_eq!(back.map_err(|e| e.to_string()), Ok(tags));
        }
    }

    /// Tags written as GetObjectTagging writes them parse back when S3's
    /// limits allow them, and answer `InvalidTag` when not.
    #[test]
    fn tagging_round_trips(
        tags in prop::collection::vec(
            (prop_oneof![4 => non_empty_value(), 1 => Just(String::new()), 1 => "k{120,130}"],
             prop_oneof![4 => xml_value(), 1 => "v{250,260}"]),
            0..12,
        ),
    ) {
        let valid = tags.len() <= 10
            && tags.iter().enumerate().all(|(i, (k, v))| {
                !k.is_empty()
                    && k.chars().count() <= 128
                    && v.chars().count() <= 256
                    && !tags[..i].iter().any(|(other, _)| other == k)
            });
        let body = tags_xml(&tags);
        let got = bounded(move || parse_object_tags(&body));
        if valid {
            prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(tags));
        } else {
            prop_assert_eq!(got.map_err(|e| e.code), Err(Code::InvalidTag));
        }
    }
}
