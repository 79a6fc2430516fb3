//! Range, conditional and other request headers.

#[allow(unused_imports)]
use super::*;
#[allow(unused_imports)]
use super::{chunked::*, forms::*, router::*, signatures::*, xml_bodies::*};

// ---- Range and conditional headers ----

/// One end of a generated range, with what it means.
#[derive(Debug, Clone)]
enum End {
    Empty,
    /// A number, written with `zeros` leading zeros and maybe padded.
    Number(u64, usize, bool),
    /// Digits past `u64::MAX`.
    Overflow,
    Junk(String),
}

impl End {
    fn render(&self) -> String {
        match self {
            End::Empty => String::new(),
            End::Number(n, zeros, pad) => {
                let n = format!("{}{n}", "0".repeat(*zeros));
                if *pad { format!(" {n} ") } else { n }
            }
            End::Overflow => "18446744073709551616".to_owned(),
            End::Junk(s) => s.clone(),
        }
    }
}

fn range_end() -> impl Strategy<Value = End> {
    prop_oneof![
        1 => Just(End::Empty),
        4 => (prop_oneof![0..100u64, any::<u64>(), Just(u64::MAX)], 0..3usize, any::<bool>())
            .prop_map(|(n, z, p)| End::Number(n, z, p)),
        1 => Just(End::Overflow),
        1 => "[a-z, =-]{1,4}".prop_map(End::Junk),
    ]
}

/// What `Range:` means, by the rules of S3's single-range support.
fn range_model(prefix_ok: bool, a: &End, b: &End, extra: Option<&str>) -> Option<ByteRange> {
    if !prefix_ok || extra.is_some() {
        return None;
    }
    match (a, b) {
        (End::Empty, End::Number(n, ..)) => Some(ByteRange::Suffix(*n)),
        (End::Number(start, ..), End::Empty) => Some(ByteRange::From(*start, None)),
        (End::Number(start, ..), End::Number(end, ..)) if end >= start => {
            Some(ByteRange::From(*start, Some(*end)))
        }
        _ => None,
    }
}

/// `[start, end)` of a range in an object of `size` bytes, computed wide.
fn resolve_model(r: ByteRange, size: u64) -> Option<(u64, u64)> {
    let (start, end) = match r {
        ByteRange::From(start, end) => {
            let end = end.map_or(u128::from(size), |e| {
                (u128::from(e) + 1).min(u128::from(size))
            });
            (u128::from(start), end)
        }
        ByteRange::Suffix(n) => (u128::from(size.saturating_sub(n)), u128::from(size)),
    };
    (start < end && start < u128::from(size)).then_some((start as u64, end as u64))
}

fn object(etag: String, last_modified_ms: i64) -> ObjectHead {
    ObjectHead {
        size: 1,
        etag,
        last_modified_ms,
        meta: ObjectMeta::default(),
        upload_id: None,
        checksum: None,
        checksum_type: ChecksumType::FullObject,
        body: Body::Inline,
        tags: Vec::new(),
        acl: Acl::Private,
    }
}

fn etag_text() -> BoxedStrategy<String> {
    prop_oneof!["[0-9a-f]{32}", "[0-9a-f]{32}-[0-9]{1,3}", text(),].boxed()
}

/// How a client may write an ETag into an `If-Match` list.
fn etag_list(etag: &str, form: u8, others: &[String]) -> String {
    let mine = match form % 4 {
        0 => format!("\"{etag}\""),
        1 => format!("W/\"{etag}\""),
        2 => etag.to_owned(),
        _ => "*".to_owned(),
    };
    let mut all: Vec<String> = others.iter().map(|o| format!("\"{o}\"")).collect();
    all.insert(others.len() / 2, mine);
    all.join(" , ")
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn range_header_matches_the_model(
        prefix in prop_oneof![
            4 => Just("bytes="),
            1 => Just("Bytes="),
            1 => Just("bytes ="),
            1 => Just("items="),
        ],
        outer in select(&["", " ", "\t"][..]),
        a in range_end(),
        b in range_end(),
        extra in prop::option::weighted(0.1, select(&[",0-1", ",", ", -5"][..])),
        size in prop_oneof![0..64u64, any::<u64>(), Just(u64::MAX)],
    ) {
        let (a_text, b_text, more) = (a.render(), b.render(), extra.unwrap_or(""));
        let header = format!("{outer}{prefix}{a_text}-{b_text}{more}{outer}");
        let h = header.clone();
        let parsed = bounded(move || ByteRange::parse(&h));
        let model = match (&a, &b) {
            (End::Junk(_), _) | (_, End::Junk(_)) => parsed,
            _ => range_model(prefix == "bytes=", &a, &b, extra),
        };
        prop_assert_eq!(parsed, model, "{:?}", header);
        if let Some(r) = parsed {
            let resolved = r.resolve(size);
            match (&resolved, resolve_model(r, size)) {
                (Ok(got), Some(want)) => prop_assert_eq!(*got, want),
                (Err(e), None) => prop_assert_eq!(e.code, Code::InvalidRange),
                (got, want) => prop_assert!(false, "{r:?} in {size}: {got:?}, model {want:?}"),
            }
            if let Ok((s, e)) = resolved {
                prop_assert!(s < e && e <= size);
            }
        }
    }

    /// Any header text: parse and resolve never panic.
    #[test]
    fn range_and_copy_range_take_any_text(
        header in prop_oneof![url_text(), ".{0,24}", "bytes=[0-9 ,-]{0,24}"],
        size in any::<u64>(),
        m in prop::option::of(mutations()),
    ) {
        let header = match &m { Some(m) => mutate_str(&header, m), None => header };
        let (r, copy, part) = bounded(move || {
            let r = ByteRange::parse(&header).map(|r| r.resolve(size));
            (r, parse_copy_range(&header, size), parse_part_number(&header))
        });
        if let Some(r) = &r {
            check_result(r)?;
        }
        check_result(&copy)?;
        if let Ok((first, end)) = copy {
            prop_assert!(first < end && end <= size);
        }
        check_result(&part)?;
        if let Ok(n) = part {
            prop_assert!((1..=10_000).contains(&n));
        }
    }

    /// If-Match lists: the object's ETag, quoted or weak or bare, found
    /// among others; `*` always.
    #[test]
    fn etag_lists_match_by_the_rules(
        etag in "[0-9a-f]{32}(-[0-9]{1,3})?",
        others in prop::collection::vec("[0-9a-f]{32}", 0..4),
        form in any::<u8>(),
        junk in text(),
    ) {
        let list = etag_list(&etag, form, &others);
        prop_assert!(etag_matches(&list, &etag), "{list}");
        let without: Vec<String> = others
            .iter()
            .filter(|o| **o != etag)
            .map(|o| format!("\"{o}\""))
            .collect();
        prop_assert!(!etag_matches(&without.join(","), &etag));
        let _ = etag_matches(&junk, &etag);
        let _ = etag_matches(&etag, &junk);
    }

    /// `x-amz-copy-source-if-*` and write conditions: the answer is 200 or
    /// 412 (or 404 for If-Match on a missing key) by RFC 7232's order.
    #[test]
    fn conditions_follow_rfc_7232(
        etag in etag_text(),
        modified in 10_000i64..253_402_300_790_000,
        if_match in prop::option::of(prop_oneof![etag_text(), Just("*".to_owned())]),
        if_none_match in prop::option::of(prop_oneof![etag_text(), Just("*".to_owned())]),
        use_own_etag in any::<(bool, bool)>(),
        dates in any::<(bool, bool)>(),
        delta in (-3i64..=3, -3i64..=3),
        raw_date in text(),
    ) {
        let obj = object(etag.clone(), modified);
        let if_match = if use_own_etag.0 { Some(format!("\"{etag}\"")) } else { if_match };
        let if_none_match = if use_own_etag.1 { Some(etag.clone()) } else { if_none_match };
        let secs = modified / 1000;
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, v: &str| {
            if let Ok(v) = HeaderValue::from_str(v) {
                headers.insert(name, v);
            }
        };
        if let Some(v) = &if_match { put("x-amz-copy-source-if-match", v) }
        if let Some(v) = &if_none_match { put("x-amz-copy-source-if-none-match", v) }
        if dates.0 {
            let date = time::http_date((secs + delta.0) * 1000);
            put("x-amz-copy-source-if-unmodified-since", &date);
        }
        if dates.1 {
            put("x-amz-copy-source-if-modified-since", &time::http_date((secs + delta.1) * 1000));
        } else {
            put("x-amz-copy-source-if-modified-since", &raw_date);
        }
        let c = source_conditions(&headers);
        let im = c.if_match.clone();
        let inm = c.if_none_match.clone();
        let failed = im.as_deref().is_some_and(|l| !etag_matches(l, &etag))
            || inm.as_deref().is_some_and(|l| etag_matches(l, &etag))
            || (im.is_none() && c.if_unmodified_since.is_some_and(|t| secs > t))
            || (inm.is_none() && c.if_modified_since.is_some_and(|t| secs <= t));
        if dates.0 {
            prop_assert_eq!(c.if_unmodified_since, Some(secs + delta.0));
        }
        let o = obj.clone();
        let got = bounded(move || c.check(&o));
        let want = if failed { Err(Code::PreconditionFailed) } else { Ok(()) };
        prop_assert_eq!(got.map_err(|e| e.code), want);
        let write = match if_match {
            Some(l) => WriteCondition::IfMatch(l),
            None => WriteCondition::IfNoneMatch,
        };
        for current in [None, Some(&obj)] {
            check_result(&write.check(current))?;
        }
        let _ = SourceConditions::default().check(&obj);
    }

    /// Dates in headers, XML and signatures: any text parses or not without
    /// a panic; every instant the server writes parses back.
    #[test]
    fn dates_parse_back_and_take_any_text(
        ms in 0i64..253_402_300_799_999,
        junk in prop_oneof![text(), "[0-9TZ:.-]{0,24}"],
        m in mutations(),
    ) {
        prop_assert_eq!(time::parse_http_date(&time::http_date(ms)), Some(ms / 1000 * 1000));
        prop_assert_eq!(time::parse_amz_date(&time::amz_date(ms)), Some(ms / 1000 * 1000));
        prop_assert_eq!(time::parse_iso8601(&time::iso8601(ms)), Some(ms));
        let samples = [
            junk,
            mutate_str(&time::http_date(ms), &m),
            mutate_str(&time::amz_date(ms), &m),
            mutate_str(&time::iso8601(ms), &m),
        ];
        let parsed = bounded(move || {
            samples.map(|s| {
                let amz = time::parse_amz_date(&s);
                (time::parse_http_date(&s), amz, time::parse_iso8601(&s), s)
            })
        });
        for (_, amz, _, s) in parsed {
            // A SigV4 timestamp that parses is one the server would write,
            // but for a leap second.
            if let Some(t) = amz.filter(|t| *t >= 0)
                && &s[13..15] != "60"
            {
                prop_assert_eq!(time::amz_date(t), s);
            }
        }
    }
}

// ---- other request headers ----

const HEADER_NAMES: &[&str] = &[
    "content-md5",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-trailer",
    "x-amz-sdk-checksum-algorithm",
    "x-amz-meta-a",
    "x-amz-meta-b",
    "content-type",
    "cache-control",
    "expires",
    "x-amz-copy-source",
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-modified-since",
];

/// Header values: text, base64 of any length, the headers' own words,
/// RFC 2047 encoded-words, raw bytes.
fn header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => text().prop_map(String::into_bytes),
        2 => (0..24usize, any::<u8>()).prop_map(|(n, b)| BASE64.encode(vec![b; n]).into_bytes()),
        1 => select(&[
            "CRC32",
            "sha256",
            "x-amz-checksum-crc32",
            "x-amz-checksum-md5, x-amz-checksum-crc32c",
            "/b/k?versionId=null",
            "b/k?versionId=1",
            "%2Fb%2Fk",
            "b/%FF",
        ][..])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => "=\\?(UTF-8|utf-8|ISO-8859-1|x)\\?[BbQq]\\?[A-Za-z0-9+/=_]{0,12}\\?="
            .prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// Checksum, metadata and copy-source headers: any values answer a
    /// value or a 4xx.
    #[test]
    fn request_headers_parse_or_answer_4xx(
        pairs in prop::collection::vec((select(HEADER_NAMES), header_value()), 0..6),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                headers.append(name, v);
            }
        }
        let (md5, requested, meta, source) = bounded(move || {
            let _ = source_conditions(&headers);
            (
                stowage::checksum::content_md5(&headers).map(drop),
                stowage::checksum::requested(&headers).map(drop),
                stowage::s3::object_meta(&headers).map(drop),
                copy_source(&headers),
            )
        });
        check_result(&md5)?;
        check_result(&requested)?;
        check_result(&meta)?;
        check_result(&source)?;
        if let Ok((bucket, key)) = source {
            prop_assert!(!bucket.is_empty() && !key.is_empty());
        }
    }

    /// `x-amz-copy-source` as SDKs write it names the bucket and key.
    #[test]
    fn copy_source_decodes_what_sdks_encode(
        bucket in "[a-z0-9][a-z0-9.-]{0,20}",
        key in "\\PC{1,20}",
        slash in any::<bool>(),
        version in any::<bool>(),
    ) {
        let mut raw = format!("{}{bucket}/{}", if slash { "/" } else { "" }, encode(&key, true));
        if version {
            raw.push_str("?versionId=null");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-copy-source", HeaderValue::from_str(&raw).expect("encoded"));
        prop_assert_eq!(copy_source(&headers).map_err(|e| e.code), Ok((bucket, key)));
    }

    /// Metadata that is not printable ASCII goes out as an encoded-word and
    /// comes back as it was; any header bytes decode to something that does.
    #[test]
    fn rfc2047_values_round_trip(
        value in prop_oneof!["\\PC{0,16}", ".{0,16}", "[\\x00-\\xff]{0,16}"],
        raw in header_value(),
    ) {
        let encoded = stowage::rfc2047::encode(&value);
        if encoded != value {
            prop_assert_eq!(stowage::rfc2047::decode(encoded.as_bytes()), value);
        }
        let stored = bounded(move || stowage::rfc2047::decode(&raw));
        let sent = stowage::rfc2047::encode(&stored);
        if sent != stored {
            prop_assert_eq!(stowage::rfc2047::decode(sent.as_bytes()), stored);
        }
    }
}
