//! SigV4 in headers and in presigned query strings.

#[allow(unused_imports)]
use super::*;
#[allow(unused_imports)]
use super::{chunked::*, forms::*, headers::*, router::*, xml_bodies::*};

// ---- SigV4 ----

pub(super) fn auth_config() -> Config {
    Config {
        credentials: vec![Credential {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
            admin: false,
            read_only: false,
            buckets: None,
        }],
        ..Config::default()
    }
}

/// A request as the server sees it before authentication.
#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: String,
    raw_query: Option<String>,
    headers: HeaderMap,
}

/// Authenticates `req` at `now`; a query the router refuses never gets
/// here, so neither does it in the fuzzer.
fn auth(config: Config, req: Request, now: i64) -> Option<S3Result<Authenticated>> {
    bounded(move || {
        let query = Query::parse(req.raw_query.as_deref()).ok()?;
        let parts = RequestParts {
            method: &req.method,
            path: &req.path,
            raw_query: req.raw_query.as_deref(),
            query: &query,
            headers: &req.headers,
        };
        Some(authenticate(&config, &parts, now))
    })
}

fn signer() -> Signer<'static> {
    Signer {
        access_key: KEY,
        secret: SECRET,
        region: REGION,
    }
}

const PAYLOADS: &[&str] = &[
    sigv4::EMPTY_SHA256,
    "UNSIGNED-PAYLOAD",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
];

/// A request signed as an SDK signs it, and its signature.
fn signed_request() -> impl Strategy<Value = (Request, String)> {
    (
        method(),
        prop::collection::vec("\\PC{1,8}", 0..3),
        prop::collection::vec(("[a-z-]{1,8}", "\\PC{0,8}"), 0..3),
        select(PAYLOADS),
        prop::collection::vec(
            (
                select(
                    &[
                        "x-amz-meta-a",
                        "x-amz-storage-class",
                        "content-type",
                        "range",
                    ][..],
                ),
                "[ -~]{0,16}",
            ),
            0..3,
        ),
    )
        .prop_map(|(method, segments, params, payload, extra)| {
            let path = format!(
                "/bucket/{}",
                segments
                    .iter()
                    .map(|s| encode(s, false))
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false)))
                .collect();
            let raw_query = (!query.is_empty()).then(|| query.join("&"));
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("bucket.s3.local:9000"));
            headers.insert("x-amz-date", HeaderValue::from_static(TIMESTAMP));
            headers.insert("x-amz-content-sha256", HeaderValue::from_static(payload));
            for (name, value) in extra {
                headers.append(
                    name,
                    HeaderValue::from_str(&value).expect("printable ASCII"),
                );
            }
            let (authorization, signature) =
                signer().authorization(method.as_str(), &path, raw_query.as_deref(), &headers);
            headers.insert(
                "authorization",
                HeaderValue::from_str(&authorization).expect("ASCII"),
            );
            let req = Request {
                method,
                path,
                raw_query,
                headers,
            };
            (req, signature)
        })
}

/// What is changed in a signed request.
#[derive(Debug, Clone)]
enum AuthFault {
    Authorization(Vec<Mutation>),
    Path(Vec<Mutation>),
    Query(Vec<Mutation>),
    Header(&'static str, Vec<Mutation>),
    /// The clock, in seconds from the request's timestamp.
    Clock(i64),
    WrongSecret,
}

fn auth_fault() -> impl Strategy<Value = AuthFault> {
    prop_oneof![
        3 => mutations().prop_map(AuthFault::Authorization),
        1 => mutations().prop_map(AuthFault::Path),
        1 => mutations().prop_map(AuthFault::Query),
        2 => (
            select(&["x-amz-date", "host", "x-amz-content-sha256", "x-amz-meta-a"][..]),
            mutations(),
        )
            .prop_map(|(h, m)| AuthFault::Header(h, m)),
        1 => (-1800i64..1800).prop_map(AuthFault::Clock),
        1 => Just(AuthFault::WrongSecret),
    ]
}

/// Words a fuzzed Authorization header is made of.
fn authorization_header() -> impl Strategy<Value = String> {
    let credential = (
        select(&[KEY, "", "OTHER"][..]),
        select(&["20130524", "2013052", "20130525", ""][..]),
        select(&[REGION, "eu-west-1", ""][..]),
        select(&["s3", "ec2", ""][..]),
        select(&["aws4_request", "aws4", ""][..]),
        0..6usize,
    )
        .prop_map(|(k, d, r, s, t, n)| [k, d, r, s, t][..n.min(5)].join("/"));
    let field = prop_oneof![
        credential.prop_map(|c| format!("Credential={c}")),
        "[a-z0-9;-]{0,30}".prop_map(|h| format!("SignedHeaders={h}")),
        prop_oneof!["[0-9a-f]{64}", "[0-9a-fA-F]{0,70}", text()]
            .prop_map(|s| format!("Signature={s}")),
        text(),
        Just("Unknown=1".to_owned()),
    ];
    (
        select(
            &[
                "AWS4-HMAC-SHA256 ",
                "AWS4-HMAC-SHA256",
                "AWS ",
                "aws4-hmac-sha256 ",
                "",
            ][..],
        ),
        prop::collection::vec(field, 0..5),
        select(&[",", ", ", " ,"][..]),
    )
        .prop_map(|(algorithm, fields, sep)| format!("{algorithm}{}", fields.join(sep)))
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// A signed request verifies; changed in any way, it answers a 4xx, or
    /// verifies only when what was signed is unchanged.
    #[test]
    fn sigv4_header_refuses_every_change(
        (req, signature) in signed_request(),
        fault in auth_fault(),
    ) {
        let ok = auth(auth_config(), req.clone(), EXAMPLE_MS).expect("a valid query");
        prop_assert!(ok.is_ok(), "{:?}", ok.err());
        let mut changed = req.clone();
        let mut config = auth_config();
        let mut now = EXAMPLE_MS;
        match &fault {
            AuthFault::Authorization(m) => {
                let v = mutate(req.headers["authorization"].as_bytes().to_vec(), m);
                let Ok(v) = HeaderValue::from_bytes(&v) else { return Ok(()) };
                changed.headers.insert("authorization", v);
            }
            AuthFault::Path(m) => changed.path = mutate_str(&req.path, m),
            AuthFault::Query(m) => {
                changed.raw_query = Some(mutate_str(req.raw_query.as_deref().unwrap_or(""), m));
            }
            AuthFault::Header(name, m) => {
                let old = req.headers.get(*name).map_or(&b""[..], |v| v.as_bytes());
                let Ok(v) = HeaderValue::from_bytes(&mutate(old.to_vec(), m)) else {
                    return Ok(());
                };
                changed.headers.insert(*name, v);
            }
            AuthFault::Clock(secs) => now += secs * 1000,
            AuthFault::WrongSecret => config.credentials[0].secret_access_key.push('x'),
        }
        let Some(r) = auth(config, changed.clone(), now) else { return Ok(()) };
        check_result(&r)?;
        match &fault {
            AuthFault::Clock(secs) => prop_assert_eq!(r.is_ok(), secs.abs() <= 15 * 60),
            AuthFault::WrongSecret => prop_assert_eq!(
                r.as_ref().map(drop).map_err(|e| e.code),
                Err(Code::SignatureDoesNotMatch)
            ),
            _ => {}
        }
        if r.is_err() {
            return Ok(());
        }
        match &fault {
            AuthFault::Authorization(_) => {
                let v = changed.headers["authorization"].to_str().unwrap().to_ascii_lowercase();
                prop_assert!(v.contains(&signature), "{v}");
            }
            AuthFault::Path(_) => {
                let want = sigv4::canonical_uri(&req.path);
                prop_assert!(
                    sigv4::canonical_uri(&changed.path) == want || changed.path == want,
                    "{:?} verified as {:?}", changed.path, req.path
                );
            }
            AuthFault::Query(_) => prop_assert_eq!(
                sigv4::canonical_query(changed.raw_query.as_deref(), None),
                sigv4::canonical_query(req.raw_query.as_deref(), None)
            ),
            AuthFault::Header(name, _) => {
                let words = |h: &HeaderMap| {
                    h.get(*name).map(|v| {
                        String::from_utf8_lossy(v.as_bytes())
                            .split_ascii_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                };
                prop_assert_eq!(words(&changed.headers), words(&req.headers));
            }
            AuthFault::Clock(_) | AuthFault::WrongSecret => {}
        }
    }

    /// Authorization headers assembled from SigV4's own words.
    #[test]
    fn sigv4_header_takes_any_authorization(
        value in authorization_header(),
        date in prop::option::of(prop_oneof![Just(TIMESTAMP.to_owned()), "[0-9TZ]{0,18}", text()]),
        http_date in prop::option::of(prop_oneof![
            Just("Fri, 24 May 2013 00:00:00 GMT".to_owned()),
            text(),
        ]),
        payload in prop::option::of(prop_oneof![select(PAYLOADS).prop_map(str::to_owned), text()]),
        raw in prop::option::weighted(0.1, prop::collection::vec(any::<u8>(), 0..40)),
        now in prop_oneof![Just(EXAMPLE_MS), 0..MAX_MS],
    ) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("bucket.s3.local"));
        let sent = [("x-amz-date", date), ("date", http_date), ("x-amz-content-sha256", payload)];
        for (name, v) in sent {
            if let Some(v) = v.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, v);
            }
        }
        let value = match raw {
            Some(bytes) => HeaderValue::from_bytes(&bytes).ok(),
            None => HeaderValue::from_str(&value).ok(),
        };
        let Some(value) = value else { return Ok(()) };
        headers.insert("authorization", value);
        let req = Request {
            method: Method::GET,
            path: "/bucket/key".into(),
            raw_query: None,
            headers,
        };
        if let Some(r) = auth(auth_config(), req, now) {
            check_result(&r)?;
        }
    }

    /// A presigned URL verifies within its lifetime; changed in any way, it
    /// answers a 4xx, or verifies only when what was signed is unchanged.
    #[test]
    fn sigv4_presigned_refuses_every_change(
        key in "\\PC{1,12}",
        params in prop::collection::vec(("[a-z-]{1,8}", "\\PC{0,8}"), 0..3),
        expires in 1u64..=604_800,
        m in mutations(),
        clock in prop_oneof![Just(0i64), -1_000_000i64..1_000_000],
    ) {
        let path = format!("/bucket/{}", encode(&key, true));
        let params: Vec<(&str, &str)> =
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let url = signer().presign("GET", ("bucket.s3.local", &path), &params, TIMESTAMP, expires);
        let (_, query) = url.split_once('?').expect("a query");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("bucket.s3.local"));
        let req = Request {
            method: Method::GET,
            path: path.clone(),
            raw_query: Some(query.to_owned()),
            headers,
        };
        let ok = auth(auth_config(), req.clone(), EXAMPLE_MS).expect("a valid query");
        prop_assert!(ok.is_ok(), "{:?}", ok.err());
        // The clock moves.
        let now = EXAMPLE_MS + clock * 1000;
        let r = auth(auth_config(), req.clone(), now).expect("a valid query");
        check_result(&r)?;
        prop_assert_eq!(r.is_ok(), (-15 * 60..=expires as i64).contains(&clock), "clock {}", clock);
        // The URL changes.
        let changed = Request { raw_query: Some(mutate_str(query, &m)), ..req };
        let Some(r) = auth(auth_config(), changed.clone(), EXAMPLE_MS) else { return Ok(()) };
        check_result(&r)?;
        // Without its signing parameters the URL is an anonymous request.
        if r.is_ok_and(|a| a.is_presigned()) {
            let skip = Some("X-Amz-Signature");
            prop_assert_eq!(
                sigv4::canonical_query(changed.raw_query.as_deref(), skip),
                sigv4::canonical_query(Some(query), skip)
            );
        }
    }

    /// Canonical URIs and queries are total, use only unreserved characters
    /// and `%XX`, decode to what they encode, and are idempotent.
    #[test]
    fn sigv4_canonical_forms_are_total(
        path in url_text(),
        query in url_text(),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let uri = sigv4::canonical_uri(&path);
        prop_assert!(uri.starts_with('/'));
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(&uri).collect();
        let mut want: Vec<u8> = percent_encoding::percent_decode_str(&path).collect();
        if !want.starts_with(b"/") {
            want.insert(0, b'/');
        }
        prop_assert_eq!(decoded, want);
        prop_assert_eq!(sigv4::canonical_uri(&uri), uri.clone());
        let mut encoded = String::new();
        sigv4::uri_encode(&bytes, false, &mut encoded);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        let back: Vec<u8> = percent_encoding::percent_decode_str(&encoded).collect();
        prop_assert_eq!(back, bytes);
        let q = sigv4::canonical_query(Some(&query), None);
        prop_assert_eq!(sigv4::canonical_query(Some(&q), None), q.clone());
        let pairs: Vec<(&str, &str)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').expect("name=value"))
            .collect();
        prop_assert!(pairs.windows(2).all(|w| w[0] <= w[1]), "{q}");
    }
}
