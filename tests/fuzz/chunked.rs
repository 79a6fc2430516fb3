//! The aws-chunked decoder, unsigned and signed.

#[allow(unused_imports)]
use super::*;
#[allow(unused_imports)]
use super::{forms::*, headers::*, router::*, signatures::*, xml_bodies::*};

// ---- aws-chunked ----

/// A correctly framed aws-chunked body and where its parts lie.
#[derive(Debug, Clone)]
struct Framed {
    body: Vec<u8>,
    data: Vec<u8>,
    /// Each chunk's data, as a range of `body`.
    data_ranges: Vec<Range<usize>>,
    /// The end of the final `0` chunk's header line.
    final_header_end: usize,
    /// The trailers as the decoder reports them.
    trailers: Vec<(String, String)>,
    chunks: u64,
}

/// How a chunk-size is written: any case, leading zeros, padding.
fn size_line(size: usize, style: u8) -> String {
    match style % 4 {
        0 => format!("{size:x}"),
        1 => format!("{size:X}"),
        2 => format!("{size:08x}"),
        _ => format!(" {size:x} "),
    }
}

/// Frames `data` cut at `cuts`, with `signatures` as chunk extensions (an
/// unsigned stream ignores them) and `trailers`.
fn frame(
    data: Vec<u8>,
    cuts: &[Index],
    style: u8,
    signatures: bool,
    trailers: &[(String, String)],
    closing_crlf: bool,
) -> Framed {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
    ends.push(data.len());
    ends.sort_unstable();
    ends.dedup();
    let mut body = Vec::new();
    let mut data_ranges = Vec::new();
    let mut start = 0;
    let header = |body: &mut Vec<u8>, size: usize| {
        body.extend_from_slice(size_line(size, style).as_bytes());
        if signatures {
            body.extend_from_slice(b";chunk-signature=");
            body.extend_from_slice(sigv4::sha256_hex(&size.to_le_bytes()).as_bytes());
        }
        body.extend_from_slice(b"\r\n");
    };
    for end in ends.into_iter().filter(|e| *e > 0) {
        header(&mut body, end - start);
        data_ranges.push(body.len()..body.len() + end - start);
        body.extend_from_slice(&data[start..end]);
        body.extend_from_slice(b"\r\n");
        start = end;
    }
    header(&mut body, 0);
    let final_header_end = body.len();
    for (name, value) in trailers {
        body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    if closing_crlf {
        body.extend_from_slice(b"\r\n");
    }
    Framed {
        body,
        chunks: data_ranges.len() as u64 + 1,
        data,
        data_ranges,
        final_header_end,
        trailers: trailers
            .iter()
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
    }
}

fn framed() -> impl Strategy<Value = Framed> {
    (
        prop::collection::vec(any::<u8>(), 0..1024),
        prop::collection::vec(any::<Index>(), 0..6),
        any::<u8>(),
        any::<bool>(),
        prop::collection::vec(("[A-Za-z0-9 -]{1,20}", "[ -9;-~]{0,20}"), 0..3),
        any::<bool>(),
    )
        .prop_map(|(data, cuts, style, sigs, trailers, crlf)| {
            // A trailer line is never empty: that one ends the section.
            let trailers: Vec<_> = trailers
                .into_iter()
                .filter(|(n, _)| !n.trim().is_empty())
                .collect();
            frame(data, &cuts, style, sigs, &trailers, crlf)
        })
}

/// What one decode of a body fed in pieces gives: the data released (even
/// before an error), the outcome, the trailers.
#[derive(Debug)]
struct Decoded {
    out: Vec<u8>,
    result: Result<(), ChunkError>,
    trailers: Vec<(String, String)>,
    chunks: u64,
}

fn decode(mut decoder: ChunkedDecoder, body: Vec<u8>, cuts: Vec<Index>) -> Decoded {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    ends.push(body.len());
    ends.sort_unstable();
    let body = Bytes::from(body);
    let mut out = Vec::new();
    let mut start = 0;
    let mut result = Ok(());
    for end in ends {
        result = decoder.feed(body.slice(start..end), &mut out);
        start = end;
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = decoder.finish();
    }
    Decoded {
        out: out.concat(),
        result,
        trailers: decoder.trailers.clone(),
        chunks: decoder.chunks,
    }
}

/// Decodes an unsigned stream, which fails only on its framing: never on
/// a signature or the budget of signed chunks.
fn decode_unsigned(body: Vec<u8>, cuts: Vec<Index>) -> Decoded {
    let d = bounded(move || decode(ChunkedDecoder::new(None), body, cuts));
    assert!(
        matches!(d.result, Ok(()) | Err(ChunkError::Malformed(_))),
        "{d:?}"
    );
    d
}

pub(super) const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub(super) const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub(super) const REGION: &str = "us-east-1";
pub(super) const TIMESTAMP: &str = "20130524T000000Z";
/// `TIMESTAMP` in ms.
pub(super) const EXAMPLE_MS: i64 = 1_369_353_600_000;
pub(super) const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

pub(super) fn signing_key() -> SigningKey {
    SigningKey::derive(SECRET, "20130524", REGION, "s3")
}

fn chunk_signer(trailer: bool) -> ChunkSigner {
    ChunkSigner::new(signing_key(), TIMESTAMP, SCOPE, SEED, trailer)
}

/// A signed stream of `data` cut at `cuts`, chained from [`SEED`]; with a
/// signed checksum trailer when `trailer`.
fn signed_stream(data: &[u8], cuts: &[Index], trailer: bool) -> Vec<u8> {
    let signer = Signer {
        access_key: KEY,
        secret: SECRET,
        region: REGION,
    };
    let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
    ends.push(data.len());
    ends.sort_unstable();
    ends.dedup();
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for end in ends.into_iter().filter(|e| *e > 0) {
        chunks.push(&data[start..end]);
        start = end;
    }
    chunks.push(&[]);
    let mut previous = SEED.to_owned();
    let mut body = Vec::new();
    for chunk in chunks {
        let signature = signer.chunk_signature(TIMESTAMP, &previous, &sigv4::sha256_hex(chunk));
        body.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        if !chunk.is_empty() {
            body.extend_from_slice(chunk);
            body.extend_from_slice(b"\r\n");
        }
        previous = signature;
    }
    if trailer {
        let trailers = [("x-amz-checksum-crc32".to_owned(), "NSRBwg==".to_owned())];
        let signature = signing_key().sign(&sigv4::trailer_string_to_sign(
            TIMESTAMP, SCOPE, &previous, &trailers,
        ));
        body.extend_from_slice(
            format!("x-amz-checksum-crc32:NSRBwg==\r\nx-amz-trailer-signature:{signature}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(b"\r\n");
    body
}

/// Where a correctly framed body's bytes are fuzzed: anywhere, or inside a
/// chunk's data.
#[derive(Debug, Clone)]
enum ChunkFault {
    Anywhere(Vec<Mutation>),
    FlipData(Index, u8),
    InsertInData(Index, u8),
    DeleteInData(Index),
    Truncate(Index),
}

fn chunk_fault() -> impl Strategy<Value = ChunkFault> {
    prop_oneof![
        3 => mutations().prop_map(ChunkFault::Anywhere),
        1 => (any::<Index>(), 1u8..).prop_map(|(i, m)| ChunkFault::FlipData(i, m)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ChunkFault::InsertInData(i, b)),
        1 => any::<Index>().prop_map(ChunkFault::DeleteInData),
        1 => any::<Index>().prop_map(ChunkFault::Truncate),
    ]
}

/// Position `i` of the data, as an offset into the body.
fn data_offset(f: &Framed, i: &Index) -> Option<usize> {
    let mut n = i.index(f.data.len().max(1));
    if f.data.is_empty() {
        return None;
    }
    for r in &f.data_ranges {
        if n < r.len() {
            return Some(r.start + n);
        }
        n -= r.len();
    }
    unreachable!("n is below the data's length")
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// A correctly framed body, fed in pieces cut anywhere, decodes to
    /// exactly its data and trailers.
    #[test]
    fn chunked_round_trips(f in framed(), cuts in prop::collection::vec(any::<Index>(), 0..8)) {
        let d = decode_unsigned(f.body.clone(), cuts);
        prop_assert_eq!(d.result, Ok(()));
        prop_assert_eq!(d.out, f.data);
        prop_assert_eq!(d.trailers, f.trailers);
        prop_assert_eq!(d.chunks, f.chunks);
    }

    /// A framed body with one fault: never a panic; data released is always
    /// a prefix of the data unless a data byte itself was changed; a flipped
    /// data byte comes out flipped; a byte inserted or deleted inside data
    /// breaks the framing; a body cut before its final chunk is refused.
    #[test]
    fn chunked_refuses_or_survives_faults(
        f in framed(),
        fault in chunk_fault(),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let mut body = f.body.clone();
        match &fault {
            ChunkFault::Anywhere(m) => {
                let d = decode_unsigned(mutate(body, m), cuts);
                // Only ever data or nothing: no error path panics.
                drop(d);
            }
            ChunkFault::FlipData(i, mask) => {
                let Some(at) = data_offset(&f, i) else { return Ok(()) };
                body[at] ^= mask;
                let d = decode_unsigned(body, cuts);
                prop_assert_eq!(d.result, Ok(()));
                let mut want = f.data.clone();
                want[i.index(f.data.len())] ^= mask;
                prop_assert_eq!(d.out, want);
            }
            ChunkFault::InsertInData(i, b) => {
                let Some(at) = data_offset(&f, i) else { return Ok(()) };
                body.insert(at, *b);
                let d = decode_unsigned(body, cuts);
                prop_assert!(d.result.is_err() || d.out != f.data, "{d:?}");
            }
            ChunkFault::DeleteInData(i) => {
                let Some(at) = data_offset(&f, i) else { return Ok(()) };
                body.remove(at);
                let d = decode_unsigned(body, cuts);
                prop_assert!(d.result.is_err() || d.out != f.data, "{d:?}");
            }
            ChunkFault::Truncate(i) => {
                let at = i.index(body.len());
                body.truncate(at);
                let d = decode_unsigned(body, cuts);
                prop_assert!(f.data.starts_with(&d.out), "{d:?}");
                if at < f.final_header_end {
                    prop_assert!(d.result.is_err(), "cut at {at} of {}: {d:?}", f.body.len());
                }
            }
        }
    }

    /// Lines built from the framing's own tokens.
    #[test]
    fn chunked_takes_token_soup(
        tokens in prop::collection::vec(select(&[
            "0", "1", "5", "a", "F", "ffffffffffffffff", "10000000000000000", "-1", "+1", " ",
            ";", ";chunk-signature=", "chunk-signature=ab", "\r\n", "\r", "\n", "hello",
            "x-amz-checksum-crc32:", "NSRBwg==", ":", "\u{0}", "é",
        ][..]), 0..40),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let d = decode_unsigned(tokens.concat().into_bytes(), cuts);
        if d.result.is_ok() {
            prop_assert!(d.chunks >= 1);
        }
    }

    /// A signed stream: whatever is done to it, it decodes to exactly its
    /// data or fails, never releases an unverified byte, and gives back all
    /// of its memory budget.
    #[test]
    fn chunked_signed_stream_is_all_or_nothing(
        data in prop::collection::vec(any::<u8>(), 0..512),
        chunk_cuts in prop::collection::vec(any::<Index>(), 0..4),
        trailer in any::<bool>(),
        fault in prop::option::weighted(0.8, mutations()),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let body = signed_stream(&data, &chunk_cuts, trailer);
        let body = match &fault {
            Some(m) => mutate(body, m),
            None => body,
        };
        let budget = ChunkBudget::new(4096);
        let held = budget.clone();
        let d = bounded(move || {
            decode(ChunkedDecoder::new(Some(chunk_signer(trailer))).with_budget(held), body, cuts)
        });
        prop_assert_eq!(budget.available(), 4096, "the budget is returned");
        prop_assert!(data.starts_with(&d.out), "released unverified bytes: {d:?}");
        if fault.is_none() {
            prop_assert_eq!(&d.result, &Ok(()));
        }
        if d.result.is_ok() {
            prop_assert_eq!(&d.out, &data);
            if trailer {
                let want = [("x-amz-checksum-crc32".to_owned(), "NSRBwg==".to_owned())];
                prop_assert_eq!(d.trailers, want);
            } else {
                prop_assert!(d.trailers.is_empty());
            }
        }
    }
}
