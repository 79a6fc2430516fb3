//! Fuzz targets, outside the crate, for every parser that reads what a client sends: the router,
//! the XML bodies (Complete, DeleteObjects, CORS, lifecycle, tagging), the
//! aws-chunked decoder, Range and conditional headers, SigV4 in headers and
//! query strings, and the POST policy. Stable toolchain only: proptest with
//! structured generators (near-valid documents built from the real element
//! and field names) and mutated real requests (byte flips, insertions,
//! deletions, truncations of a valid example).
//!
//! Every target asserts that its parser never panics, never hangs (each case
//! runs on its own thread under a deadline), and answers either a value or
//! an `S3Error` whose status is 4xx; where a round trip or a reference model
//! exists, it is asserted too. Two 5xx answers are by design and allowed:
//! lifecycle transitions are 501 NotImplemented (one storage class), and a
//! signed aws-chunked stream past the server's chunk budget is `Busy`
//! (503 SlowDown); an unsigned stream fails only on its framing.
//!
//! `cargo test` runs 256 cases a target. To run longer:
//! `STOWAGE_FUZZ_CASES=20000 cargo test --test fuzz`.
//!
//! Convention: proptest's failure files are off. A failure found here
//! becomes a plain `#[test] fn regression_<what>()` in `regressions.rs`,
//! holding the exact (shrunk) input.

use std::ops::Range;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value, json};

use stowage::auth::post_policy::{self, PostPolicy};
use stowage::auth::sigv4::{self, Signer, SigningKey};
use stowage::auth::{Authenticated, ChunkSigner, RequestParts, authenticate};
use stowage::checksum::{Algorithm, ChecksumType};
use stowage::chunked::{ChunkBudget, ChunkError, ChunkedDecoder};
use stowage::config::{Config, Credential};
use stowage::cors::{self, CorsRule};
use stowage::error::{Code, S3Error, S3Result};
use stowage::lifecycle::{self, Expiration, Filter, LifecycleRule};
use stowage::s3::multipart::{CompleteRequest, parse_copy_range, parse_part_number};
use stowage::s3::objects::{ByteRange, DeleteRequest, copy_source, source_conditions};
use stowage::s3::router::{Operation, Query, route, split_target};
use stowage::s3::tagging::parse_object_tags;
use stowage::store::model::{
    Acl, Body, ObjectHead, ObjectMeta, SourceConditions, WriteCondition, etag_matches,
};
use stowage::time;
use stowage::xml::XmlWriter;

mod chunked;
mod forms;
mod headers;
mod regressions;
mod router;
mod signatures;
mod xml_bodies;

const DAY_MS: i64 = 86_400_000;
/// The last millisecond of 9999-12-31, the latest instant a clock or a
/// header date here can name.
const MAX_MS: i64 = 253_402_300_799_999;
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH"];

// ---- the harness ----

/// Cases per target: `STOWAGE_FUZZ_CASES`, 256 by default.
fn fuzz_cases() -> u32 {
    std::env::var("STOWAGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn fuzz_config() -> ProptestConfig {
    ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: None,
        max_shrink_iters: 1024,
        ..ProptestConfig::default()
    }
}

/// Longer than any parser needs for a 4 KiB input in a debug build on a
/// loaded machine; a case still running then is a hang.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs one parse on its own thread: a panic is re-raised here (so that
/// proptest shrinks it), a case past [`DEADLINE`] fails as a hang.
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no answer after {DEADLINE:?}: a hang"),
    }
}

/// An error a client's bytes may cause: a 4xx, never a 5xx.
fn client_error(e: &S3Error) -> Result<(), TestCaseError> {
    prop_assert!(
        e.status().is_client_error(),
        "{:?} answers {}: {e}",
        e.code,
        e.status()
    );
    Ok(())
}

fn check_result<T>(r: &S3Result<T>) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => client_error(e),
    }
}

// ---- mutations of real requests ----

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    /// Repeats a run of bytes in place.
    Repeat(Index, usize),
}

/// Bytes that matter to some parser here, and any byte.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        select(b"\r\n\t\0 <>/&;=%-,:\"'*$?.+09afAFTZ\x7f\x80\xc3\xff".to_vec()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (
            any::<Index>(),
            prop::collection::vec(interesting_byte(), 1..8)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn mutate(mut v: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if let Mutation::Insert(i, bytes) = m {
            let at = i.index(v.len() + 1);
            v.splice(at..at, bytes.iter().copied());
            continue;
        }
        if v.is_empty() {
            continue;
        }
        match m {
            Mutation::Flip(i, mask) => {
                let at = i.index(v.len());
                v[at] ^= mask;
            }
            Mutation::Set(i, b) => {
                let at = i.index(v.len());
                v[at] = *b;
            }
            Mutation::Delete(i, n) => {
                let at = i.index(v.len());
                let end = (at + n).min(v.len());
                v.drain(at..end);
            }
            Mutation::Truncate(i) => v.truncate(i.index(v.len())),
            Mutation::Repeat(i, n) => {
                let at = i.index(v.len());
                let end = (at + n).min(v.len());
                let run = v[at..end].to_vec();
                v.splice(end..end, run);
            }
            Mutation::Insert(..) => unreachable!(),
        }
    }
    v
}

fn mutate_str(s: &str, mutations: &[Mutation]) -> String {
    String::from_utf8_lossy(&mutate(s.as_bytes().to_vec(), mutations)).into_owned()
}

// ---- text ----

/// Values that sit on some parser's edge: numbers past every integer width,
/// signs, entities, markup, dates around the epoch, base64 of odd lengths.
const SPECIAL: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "5",
    "10000",
    "10001",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    " 7 ",
    "+3",
    "0x1f",
    "1e3",
    "NaN",
    "true",
    "false",
    "Enabled",
    "Disabled",
    "GET",
    "PUT",
    "PATCH",
    "*",
    "a*b*",
    "&amp;",
    "&lt;",
    "&#x0;",
    "&#1114112;",
    "&#xD800;",
    "&bogus;",
    "&",
    "<",
    "]]>",
    "<![CDATA[x<y]]>",
    "<!-- c -->",
    "<?pi x?>",
    "<!DOCTYPE x [<!ENTITY e \"eee\">]>",
    "2027-01-01T00:00:00Z",
    "2027-01-01T10:00:00Z",
    "1969-12-31T00:00:00Z",
    "0000-01-01T00:00:00.000Z",
    "9999-12-31T00:00:00Z",
    "\"etag\"",
    "AAAAAA==",
    "AAAAAAAAAAA=",
    "=",
    "\u{0}",
    "\r\n",
    "\u{feff}",
];

/// Short text of every kind: plain, special, any Unicode, control characters.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ._/*-]{0,12}",
        3 => select(SPECIAL).prop_map(str::to_owned),
        1 => ".{0,12}",
        1 => "[\\x00-\\x1f\\x7f]{1,4}",
    ]
    .boxed()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// ---- near-valid XML documents ----

/// What a leaf holds: the generator mostly writes a value of its kind, so
/// that documents get past the XML into each parser's own checks.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Number,
    Bool,
    Date,
    Status,
    Method,
    Checksum,
}

/// How often a child appears: exactly once, maybe, a list, or hardly ever.
#[derive(Clone, Copy, Debug)]
enum Count {
    One,
    Opt,
    Many,
    Rare,
}

/// One element of a request document's schema, for the structured
/// generator: a leaf holds text, a node holds elements.
#[derive(Clone, Copy)]
enum Shape {
    Leaf(&'static str, Kind),
    Node(&'static str, &'static [(Shape, Count)]),
}

use Count::{Many, One, Opt, Rare};
use Kind::*;
use Shape::{Leaf, Node};

const COMPLETE: Shape = Node(
    "CompleteMultipartUpload",
    &[(
        Node(
            "Part",
            &[
                (Leaf("PartNumber", Number), One),
                (Leaf("ETag", Text), One),
                (Leaf("ChecksumCRC32", Checksum), Opt),
                (Leaf("ChecksumCRC32C", Checksum), Rare),
                (Leaf("ChecksumCRC64NVME", Checksum), Rare),
                (Leaf("ChecksumSHA1", Checksum), Rare),
                (Leaf("ChecksumSHA256", Checksum), Rare),
            ],
        ),
        Many,
    )],
);

const DELETE: Shape = Node(
    "Delete",
    &[
        (Leaf("Quiet", Bool), Opt),
        (
            Node(
                "Object",
                &[(Leaf("Key", Text), One), (Leaf("VersionId", Text), Opt)],
            ),
            Many,
        ),
    ],
);

const CORS: Shape = Node(
    "CORSConfiguration",
    &[(
        Node(
            "CORSRule",
            &[
                (Leaf("ID", Text), Opt),
                (Leaf("AllowedOrigin", Text), Many),
                (Leaf("AllowedMethod", Method), Many),
                (Leaf("AllowedHeader", Text), Many),
                (Leaf("ExposeHeader", Text), Many),
                (Leaf("MaxAgeSeconds", Number), Opt),
            ],
        ),
        Many,
    )],
);

const TAG: Shape = Node(
    "Tag",
    &[(Leaf("Key", Text), One), (Leaf("Value", Text), One)],
);

const TAGGING: Shape = Node("Tagging", &[(Node("TagSet", &[(TAG, Many)]), One)]);

const SIZES: [(Shape, Count); 2] = [
    (Leaf("ObjectSizeGreaterThan", Number), Rare),
    (Leaf("ObjectSizeLessThan", Number), Rare),
];

const LIFECYCLE: Shape = Node(
    "LifecycleConfiguration",
    &[(
        Node(
            "Rule",
            &[
                (Leaf("ID", Text), Opt),
                (Leaf("Prefix", Text), Rare),
                (
                    Node(
                        "Filter",
                        &[
                            (Leaf("Prefix", Text), Opt),
                            (TAG, Rare),
                            SIZES[0],
                            SIZES[1],
                            (
                                Node(
                                    "And",
                                    &[(Leaf("Prefix", Text), Opt), (TAG, Many), SIZES[0], SIZES[1]],
                                ),
                                Rare,
                            ),
                        ],
                    ),
                    Opt,
                ),
                (Leaf("Status", Status), One),
                (
                    Node(
                        "Expiration",
                        &[
                            (Leaf("Days", Number), Opt),
                            (Leaf("Date", Date), Opt),
                            (Leaf("ExpiredObjectDeleteMarker", Bool), Rare),
                        ],
                    ),
                    Opt,
                ),
                (
                    Node(
                        "AbortIncompleteMultipartUpload",
                        &[(Leaf("DaysAfterInitiation", Number), One)],
                    ),
                    Opt,
                ),
                (
                    Node(
                        "NoncurrentVersionExpiration",
                        &[(Leaf("NoncurrentDays", Number), One)],
                    ),
                    Rare,
                ),
                (
                    Node(
                        "Transition",
                        &[
                            (Leaf("Days", Number), One),
                            (Leaf("StorageClass", Text), One),
                        ],
                    ),
                    Rare,
                ),
            ],
        ),
        Many,
    )],
);

/// How many times a child is written: mostly as its count says.
fn count(c: Count) -> BoxedStrategy<usize> {
    let w = match c {
        One => [1, 60, 1, 0],
        Opt => [30, 30, 1, 0],
        Many => [2, 20, 10, 4],
        Rare => [60, 12, 1, 0],
    };
    prop_oneof![
        w[0] => Just(0usize),
        w[1] => Just(1usize),
        w[2] => Just(2usize),
        w[3] => Just(3usize),
    ]
    .boxed()
}

/// A value of `kind`, or now and then any text at all.
fn value_of(kind: Kind) -> BoxedStrategy<String> {
    let typed = match kind {
        Text => "[a-zA-Z0-9 ._/*-]{0,12}".boxed(),
        Number => prop_oneof![
            4 => (1..10_000u64).prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
        ]
        .boxed(),
        Bool => select(&["true", "false"][..])
            .prop_map(str::to_owned)
            .boxed(),
        Date => prop_oneof![
            // Midnights from 1900 to 2100, and a few instants that are not.
            (-25_567i64..47_482).prop_map(|d| time_of_day(d * DAY_MS)),
            (0..MAX_MS).prop_map(time_of_day),
        ]
        .boxed(),
        Status => select(&["Enabled", "Disabled"][..])
            .prop_map(str::to_owned)
            .boxed(),
        Method => select(&["GET", "PUT", "HEAD", "POST", "DELETE"][..])
            .prop_map(str::to_owned)
            .boxed(),
        Checksum => (0..40usize, any::<u8>())
            .prop_map(|(n, b)| BASE64.encode(vec![b; n]))
            .boxed(),
    };
    prop_oneof![12 => typed, 1 => text()].boxed()
}

/// An ISO 8601 instant, also before 1970 (which `time::iso8601` cannot
/// write).
fn time_of_day(ms: i64) -> String {
    if ms >= 0 {
        return time::iso8601(ms);
    }
    let day = ms.div_euclid(DAY_MS);
    // 1900-01-01 is day -25567; walk the calendar from there.
    let (mut y, mut d) = (1900i64, day + 25_567);
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    while d >= if leap(y) { 366 } else { 365 } {
        d -= if leap(y) { 366 } else { 365 };
        y += 1;
    }
    let months = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut m = 0;
    while d >= months[m] {
        d -= months[m];
        m += 1;
    }
    format!("{y:04}-{:02}-{:02}T00:00:00Z", m + 1, d + 1)
}

/// The element's real name mostly; sometimes prefixed, re-cased or foreign.
fn element_name(name: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        100 => Just(name.to_owned()),
        1 => Just(format!("s3:{name}")),
        1 => Just(name.to_ascii_lowercase()),
        1 => "[A-Za-z][A-Za-z0-9]{0,8}",
    ]
    .boxed()
}

/// What may stand beside the expected children: nothing mostly, else an
/// unknown element, a comment, stray text or an unclosed tag.
fn junk() -> BoxedStrategy<String> {
    prop_oneof![
        100 => Just(String::new()),
        1 => text().prop_map(|t| format!("<Unknown>{}</Unknown>", escape(&t))),
        1 => Just("<!-- note -->".to_owned()),
        1 => text(),
        1 => Just("<Open>".to_owned()),
    ]
    .boxed()
}

fn attributes() -> BoxedStrategy<String> {
    prop_oneof![
        80 => Just(String::new()),
        16 => Just(format!(" xmlns=\"{}\"", stowage::xml::S3_NS)),
        1 => Just(" xmlns:s3=\"urn:x\" a='1'".to_owned()),
        1 => Just(" a=\"".to_owned()),
    ]
    .boxed()
}

/// Each child appears as its count says (now and then not), in schema
/// order or shuffled.
fn element(shape: Shape) -> BoxedStrategy<String> {
    match shape {
        Leaf(name, kind) => (element_name(name), value_of(kind), 0..20u8)
            .prop_map(|(n, t, form)| match form {
                0 => format!("<{n}/>"),
                1 => format!("<{n}>{t}</{n}>"),
                _ => format!("<{n}>{}</{n}>", escape(&t)),
            })
            .boxed(),
        Node(name, children) => {
            let kids: Vec<BoxedStrategy<String>> = children
                .iter()
                .map(|(c, n)| {
                    let child = element(*c);
                    count(*n)
                        .prop_flat_map(move |n| prop::collection::vec(child.clone(), n))
                        .prop_map(|v| v.concat())
                        .boxed()
                })
                .collect();
            let kids = prop_oneof![
                6 => kids.clone().boxed(),
                1 => kids.prop_shuffle().boxed(),
            ];
            (element_name(name), attributes(), kids, junk())
                .prop_map(|(n, attrs, kids, junk)| {
                    format!("<{n}{attrs}>{}{junk}</{n}>", kids.concat())
                })
                .boxed()
        }
    }
}

/// A whole document: the root, maybe a declaration, maybe mutated. As
/// `Bytes`, whose `Debug` shows a failing case as a byte string.
fn document(root: Shape) -> BoxedStrategy<Bytes> {
    (
        any::<bool>(),
        element(root),
        prop::option::weighted(0.2, mutations()),
    )
        .prop_map(|(decl, body, m)| {
            let mut doc = String::new();
            if decl {
                doc.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            }
            doc.push_str(&body);
            let doc = doc.into_bytes();
            Bytes::from(match m {
                Some(m) => mutate(doc, &m),
                None => doc,
            })
        })
        .boxed()
}

// ---- values that survive XML ----

/// Text an `XmlWriter` writes and the parser reads back unchanged: markup
/// characters and control characters included, but not U+0000, which XML
/// cannot carry at all and the parser refuses
/// (`regression_xml_nul_round_trips`).
fn xml_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ._/*-]{0,12}",
        2 => "[a-z&<>\"' ]{0,8}",
        1 => "\\PC{0,10}",
        1 => "[a\\x01-\\x1f\\x7f]{1,4}",
    ]
    .boxed()
}

fn non_empty_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-zA-Z0-9._/-][a-zA-Z0-9 ._/-]{0,11}",
        1 => "\\PC{1,10}",
    ]
    .boxed()
}
