//! The verifier against AWS's published examples: the four single-chunk
//! requests and the presigned URL of the S3 SigV4 pages, the chunked upload
//! of sigv4-streaming.html, the signed trailer of sigv4-streaming-trailers
//! (with its signed-header list corrected: the page's printed list cannot
//! produce its own seed signature), and the generic test suite's vectors.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::*;
use crate::chunked::{ChunkError, ChunkedDecoder};
use crate::config::Config;

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 20130524T000000Z, the instant of every S3 example.
const EXAMPLE_MS: i64 = 1_369_353_600_000;
const EMPTY: &str = sigv4::EMPTY_SHA256;

fn config() -> Config {
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

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::try_from(k.to_ascii_lowercase()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn auth_header(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={KEY}/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed_headers},Signature={signature}"
    )
}

fn run(method: &str, target: &str, h: &HeaderMap, now: i64) -> S3Result<Authenticated> {
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let query = Query::parse(raw_query).unwrap();
    let method: Method = method.parse().unwrap();
    let req = RequestParts {
        method: &method,
        path,
        raw_query,
        query: &query,
        headers: h,
    };
    authenticate(&config(), &req, now)
}

fn get_object_range() -> HeaderMap {
    headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY),
        ("x-amz-date", "20130524T000000Z"),
        (
            "authorization",
            &auth_header(
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ),
    ])
}

#[test]
fn s3_header_examples_verify() {
    let a = run("GET", "/test.txt", &get_object_range(), EXAMPLE_MS).unwrap();
    assert_eq!(a.principal.name(), KEY);
    assert!(matches!(a.payload, Payload::Sha256(d) if sigv4::hex(&d) == EMPTY));

    let put_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    let put = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", put_hash),
        (
            "authorization",
            &auth_header(
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ),
        ),
    ]);
    let a = run("PUT", "/test$file.text", &put, EXAMPLE_MS).unwrap();
    assert!(matches!(a.payload, Payload::Sha256(d) if sigv4::hex(&d) == put_hash));
    // The same path sent percent-encoded is the same request.
    run("PUT", "/test%24file.text", &put, EXAMPLE_MS).unwrap();

    for (target, signature) in [
        (
            "/?lifecycle",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
        (
            "/?max-keys=2&prefix=J",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ] {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY),
            (
                "authorization",
                &auth_header("host;x-amz-content-sha256;x-amz-date", signature),
            ),
        ]);
        run("GET", target, &h, EXAMPLE_MS).unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}

#[test]
fn a_wrong_signature_reports_what_was_signed() {
    let mut h = get_object_range();
    h.insert("range", HeaderValue::from_static("bytes=0-10"));
    let e = run("GET", "/test.txt", &h, EXAMPLE_MS).unwrap_err();
    assert_eq!(e.code, Code::SignatureDoesNotMatch);
    let detail = |name| {
        e.details
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .clone()
    };
    assert!(detail("CanonicalRequest").contains("\nrange:bytes=0-10\n"));
    assert!(detail("StringToSign").starts_with("AWS4-HMAC-SHA256\n20130524T000000Z\n"));
    assert_eq!(detail("AWSAccessKeyId"), KEY);
}

#[test]
fn header_auth_errors() {
    let code = |h: &HeaderMap, now| run("GET", "/test.txt", h, now).unwrap_err().code;
    // Fifteen minutes of skew is tolerated, a second more is not.
    run(
        "GET",
        "/test.txt",
        &get_object_range(),
        EXAMPLE_MS + 900_000,
    )
    .unwrap();
    assert_eq!(
        code(&get_object_range(), EXAMPLE_MS + 901_000),
        Code::RequestTimeTooSkewed
    );

    let with_auth = |value: String| {
        let mut h = get_object_range();
        h.insert("authorization", HeaderValue::from_str(&value).unwrap());
        h
    };
    let original = get_object_range()["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    let unknown = with_auth(original.replace(KEY, "AKIDUNKNOWN"));
    assert_eq!(code(&unknown, EXAMPLE_MS), Code::InvalidAccessKeyId);
    let region = with_auth(original.replace("us-east-1", "eu-west-1"));
    assert_eq!(
        code(&region, EXAMPLE_MS),
        Code::AuthorizationHeaderMalformed
    );
    let garbled = with_auth(original.replace("SignedHeaders=", "Signed="));
    assert_eq!(
        code(&garbled, EXAMPLE_MS),
        Code::AuthorizationHeaderMalformed
    );
    let v2 = with_auth(format!("AWS {KEY}:c2lnbmF0dXJl"));
    assert_eq!(code(&v2, EXAMPLE_MS), Code::InvalidRequest);

    let mut unsigned_meta = get_object_range();
    unsigned_meta.insert("x-amz-meta-added", HeaderValue::from_static("later"));
    assert_eq!(code(&unsigned_meta, EXAMPLE_MS), Code::AccessDenied);
    let mut no_date = get_object_range();
    no_date.remove("x-amz-date");
    assert_eq!(code(&no_date, EXAMPLE_MS), Code::AccessDenied);
    let mut no_hash = get_object_range();
    no_hash.remove("x-amz-content-sha256");
    assert_eq!(code(&no_hash, EXAMPLE_MS), Code::MissingSecurityHeader);
}

const PRESIGNED: &str = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn presigned_example_verifies_until_it_expires() {
    let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    let a = run("GET", PRESIGNED, &h, EXAMPLE_MS + 3_600_000).unwrap();
    assert!(a.is_presigned() && matches!(a.payload, Payload::Unsigned));

    let e = run("GET", PRESIGNED, &h, EXAMPLE_MS + 86_401_000).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (Code::AccessDenied, "Request has expired")
    );

    let altered = PRESIGNED.replace("/test.txt", "/test2.txt");
    let e = run("GET", &altered, &h, EXAMPLE_MS).unwrap_err();
    assert_eq!(e.code, Code::SignatureDoesNotMatch);
    let extra = format!("{PRESIGNED}&versionId=null");
    assert_eq!(
        run("GET", &extra, &h, EXAMPLE_MS).unwrap_err().code,
        Code::SignatureDoesNotMatch
    );
    for expires in ["604801", "0", "-1", "soon"] {
        let bad = PRESIGNED.replace("X-Amz-Expires=86400", &format!("X-Amz-Expires={expires}"));
        assert_eq!(
            run("GET", &bad, &h, EXAMPLE_MS).unwrap_err().code,
            Code::AuthorizationQueryParametersError,
            "{expires}"
        );
    }
    let both = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=x"),
    ]);
    assert_eq!(
        run("GET", PRESIGNED, &both, EXAMPLE_MS).unwrap_err().code,
        Code::InvalidArgument
    );
}

/// The chunked body of the streaming examples: 64 KiB and 1 KiB of `a`,
/// then the final chunk, with the given signatures and tail.
fn chunked_body(signatures: [&str; 3], tail: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (len, sig) in [(65536usize, signatures[0]), (1024, signatures[1])] {
        body.extend_from_slice(format!("{len:x};chunk-signature={sig}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'a', len));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0;chunk-signature={}\r\n{tail}", signatures[2]).as_bytes());
    body
}

fn decode(signer: ChunkSigner, body: &[u8], piece: usize) -> Result<Vec<u8>, ChunkError> {
    let mut d = ChunkedDecoder::new(Some(signer));
    let mut out = Vec::new();
    for p in body.chunks(piece) {
        d.feed(Bytes::copy_from_slice(p), &mut out)?;
    }
    d.finish()?;
    Ok(out.concat())
}

fn seed_signer(
    payload: &str,
    signed_headers: &str,
    seed: &str,
    extra: &[(&str, &str)],
) -> ChunkSigner {
    let mut pairs = vec![
        ("host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", payload),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
    ];
    pairs.extend_from_slice(extra);
    let auth = auth_header(signed_headers, seed);
    pairs.push(("authorization", &auth));
    let a = run(
        "PUT",
        "/examplebucket/chunkObject.txt",
        &headers(&pairs),
        EXAMPLE_MS,
    )
    .unwrap();
    match a.payload {
        Payload::SignedChunks(signer) => signer,
        other => panic!("expected a signed stream, got {other:?}"),
    }
}

#[test]
fn streaming_example_verifies_chunk_by_chunk() {
    let signer = || {
        seed_signer(
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            &[("content-length", "66824")],
        )
    };
    let sigs = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ];
    let body = chunked_body(sigs, "\r\n");
    assert_eq!(body.len(), 66824, "the documented Content-Length");
    for piece in [1 << 20, 8192, 1000] {
        assert_eq!(decode(signer(), &body, piece).unwrap(), vec![b'a'; 66560]);
    }
    // One flipped data byte, or the chunks' signatures swapped, break the chain.
    let mut flipped = body.clone();
    flipped[66_000] = b'b';
    assert_eq!(decode(signer(), &flipped, 8192), Err(ChunkError::Signature));
    let swapped = chunked_body([sigs[1], sigs[0], sigs[2]], "\r\n");
    assert_eq!(decode(signer(), &swapped, 8192), Err(ChunkError::Signature));
    // A stream signed without a trailer cannot grow an (unsigned) one.
    let smuggled = chunked_body(sigs, "x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    assert_eq!(
        decode(signer(), &smuggled, 8192),
        Err(ChunkError::Signature)
    );
}

#[test]
fn streaming_trailer_example_verifies_its_trailer_signature() {
    let signer = || {
        seed_signer(
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
            "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
            &[("x-amz-trailer", "x-amz-checksum-crc32c")],
        )
    };
    let sigs = [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ];
    let trailer = |value: &str| {
        format!(
            "x-amz-checksum-crc32c:{value}\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
        )
    };
    let body = chunked_body(sigs, &trailer("sOO8/Q=="));
    let mut d = ChunkedDecoder::new(Some(signer()));
    let mut out = Vec::new();
    d.feed(Bytes::from(body), &mut out).unwrap();
    d.finish().unwrap();
    assert_eq!(out.concat(), vec![b'a'; 66560]);
    // The signature line is consumed; the checksum is left for the caller.
    assert_eq!(
        d.trailers,
        [("x-amz-checksum-crc32c".to_owned(), "sOO8/Q==".to_owned())]
    );
    let forged = chunked_body(sigs, &trailer("AAAAAA=="));
    assert_eq!(decode(signer(), &forged, 4096), Err(ChunkError::Signature));
    let unsigned = chunked_body(sigs, "x-amz-checksum-crc32c:sOO8/Q==\r\n\r\n");
    assert_eq!(
        decode(signer(), &unsigned, 4096),
        Err(ChunkError::Signature)
    );
}

#[test]
fn generic_suite_vectors() {
    // get-vanilla and get-vanilla-query-order-key-case from AWS's SigV4
    // test suite (service "service", so checked through the building blocks).
    let key = SigningKey::derive(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "20150830",
        "us-east-1",
        "service",
    );
    let scope = sigv4::scope("20150830", "us-east-1", "service");
    let h = headers(&[
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
    ]);
    for (query, signature) in [
        (
            None,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            Some("Param2=value2&Param1=value1"),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ] {
        let creq = sigv4::canonical_request(
            "GET",
            &sigv4::canonical_uri("/"),
            &sigv4::canonical_query(query, None),
            &h,
            "host;x-amz-date",
            EMPTY,
        );
        let sts = sigv4::string_to_sign("20150830T123600Z", &scope, &creq);
        assert_eq!(key.sign(&sts), signature);
        assert!(key.verify(&sts, signature));
        assert!(!key.verify(&sts, &signature.replace('5', "6")));
    }
}

#[test]
fn signed_chunks_are_held_within_a_shared_budget() {
    use crate::chunked::ChunkBudget;
    let signer = || {
        seed_signer(
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            &[("content-length", "66824")],
        )
    };
    let body = chunked_body(
        [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ],
        "\r\n",
    );
    let budget = ChunkBudget::new(70_000);
    let mut out = Vec::new();
    // A holds half of its 64 KiB chunk.
    let mut a = ChunkedDecoder::new(Some(signer())).with_budget(budget.clone());
    a.feed(Bytes::copy_from_slice(&body[..40_000]), &mut out)
        .unwrap();
    assert_eq!(budget.available(), 70_000 - 65_536);
    // B's first chunk does not fit beside it.
    let mut b = ChunkedDecoder::new(Some(signer())).with_budget(budget.clone());
    assert_eq!(
        b.feed(Bytes::copy_from_slice(&body[..1000]), &mut out),
        Err(ChunkError::Busy)
    );
    drop(b);
    // Once A's chunk verifies, its share returns; a whole stream then fits.
    a.feed(Bytes::copy_from_slice(&body[40_000..]), &mut out)
        .unwrap();
    a.finish().unwrap();
    assert_eq!(budget.available(), 70_000);
    let mut c = ChunkedDecoder::new(Some(signer())).with_budget(budget.clone());
    let mut whole = Vec::new();
    c.feed(Bytes::copy_from_slice(&body), &mut whole).unwrap();
    c.finish().unwrap();
    assert_eq!(whole.concat(), vec![b'a'; 66_560]);
    // A stream dropped mid-chunk (a client gone) gives its share back.
    let mut d = ChunkedDecoder::new(Some(signer())).with_budget(budget.clone());
    d.feed(Bytes::copy_from_slice(&body[..10_000]), &mut out)
        .unwrap();
    assert!(budget.available() < 70_000);
    drop(d);
    assert_eq!(budget.available(), 70_000);
}
