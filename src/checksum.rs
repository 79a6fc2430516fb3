//! Flexible checksums (`x-amz-checksum-*`): the five algorithms, hashing
//! while a body streams, and the request rules for which checksum a client
//! asked to be verified.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

use crate::error::{Code, S3Error, S3Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// The name S3 uses in `x-amz-sdk-checksum-algorithm` and XML.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header (and trailer) carrying a value of this algorithm.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn is_crc(self) -> bool {
        matches!(
            self,
            Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme
        )
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }
}

/// A checksum as stored and sent: algorithm and base64 value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub value: String,
}

/// How a multipart object's checksum covers it: a checksum of the whole
/// object's bytes, or a checksum of its parts' checksums (`value-N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    FullObject,
    Composite,
}

impl ChecksumType {
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }

    pub fn parse(name: &str) -> Option<ChecksumType> {
        [ChecksumType::FullObject, ChecksumType::Composite]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// S3's rules: CRCs combine into a full-object checksum, hashes do not;
    /// CRC64NVME has no composite form.
    pub fn allowed(self, algorithm: Algorithm) -> bool {
        match self {
            ChecksumType::FullObject => algorithm.is_crc(),
            ChecksumType::Composite => algorithm != Algorithm::Crc64Nvme,
        }
    }

    /// The type of an upload created with only an algorithm.
    pub fn default_for(algorithm: Algorithm) -> ChecksumType {
        if algorithm == Algorithm::Crc64Nvme {
            ChecksumType::FullObject
        } else {
            ChecksumType::Composite
        }
    }
}

impl Checksum {
    /// The raw digest bytes; `None` if the stored value is not valid base64
    /// of the algorithm's length.
    pub fn raw(&self) -> Option<Vec<u8>> {
        BASE64
            .decode(&self.value)
            .ok()
            .filter(|r| r.len() == self.algorithm.digest_len())
    }
}

fn crc_algorithm(algorithm: Algorithm) -> Option<crc_fast::CrcAlgorithm> {
    use crc_fast::CrcAlgorithm as C;
    match algorithm {
        Algorithm::Crc32 => Some(C::Crc32IsoHdlc),
        Algorithm::Crc32c => Some(C::Crc32Iscsi),
        Algorithm::Crc64Nvme => Some(C::Crc64Nvme),
        Algorithm::Sha1 | Algorithm::Sha256 => None,
    }
}

/// The checksum of a composite multipart object: the algorithm over the
/// concatenated raw part checksums (the `-N` suffix is added on output).
/// `None` if a part's checksum is of another algorithm or unreadable.
pub fn composite(algorithm: Algorithm, parts: &[&Checksum]) -> Option<Checksum> {
    let mut hasher = Hasher::new(algorithm);
    for part in parts {
        if part.algorithm != algorithm {
            return None;
        }
        hasher.update(&part.raw()?);
    }
    Some(hasher.finish())
}

/// The full-object CRC of a multipart object, combined from its parts' CRCs
/// and lengths without reading a byte. `None` for a hash algorithm, or if a
/// part's checksum is of another algorithm or unreadable.
pub fn combine(algorithm: Algorithm, parts: &[(&Checksum, u64)]) -> Option<Checksum> {
    let crc = crc_algorithm(algorithm)?;
    let mut combined: Option<u64> = None;
    for (part, len) in parts {
        if part.algorithm != algorithm {
            return None;
        }
        let raw = part.raw()?;
        let value = raw.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        combined = Some(match combined {
            None => value,
            Some(acc) => crc_fast::checksum_combine(crc, acc, value, *len),
        });
    }
    let value = combined?;
    let raw = match algorithm {
        Algorithm::Crc64Nvme => value.to_be_bytes().to_vec(),
        _ => (value as u32).to_be_bytes().to_vec(),
    };
    Some(Checksum {
        algorithm,
        value: BASE64.encode(raw),
    })
}

/// Computes one algorithm over a stream of bytes.
pub enum Hasher {
    Crc(crc_fast::Digest, Algorithm),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match (crc_algorithm(algorithm), algorithm) {
            (Some(c), _) => Hasher::Crc(crc_fast::Digest::new(c), algorithm),
            (None, Algorithm::Sha1) => Hasher::Sha1(sha1::Sha1::new()),
            (None, _) => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(d, _) => d.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Checksum {
        let (algorithm, raw) = match self {
            Hasher::Crc(d, algorithm) => {
                let v = d.finalize();
                let raw = match algorithm {
                    Algorithm::Crc64Nvme => v.to_be_bytes().to_vec(),
                    _ => (v as u32).to_be_bytes().to_vec(),
                };
                (algorithm, raw)
            }
            Hasher::Sha1(h) => (Algorithm::Sha1, h.finalize().to_vec()),
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
        };
        Checksum {
            algorithm,
            value: BASE64.encode(raw),
        }
    }
}

/// Where the value a client wants verified comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `x-amz-checksum-*` request header with this value.
    Header(String),
    /// An aws-chunked trailer, read after the body.
    Trailer,
    /// Only `x-amz-sdk-checksum-algorithm`: compute and store, nothing to check.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub algorithm: Algorithm,
    pub source: Source,
}

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(Code::InvalidRequest, message)
}

/// `Content-MD5`, decoded; a value that is not base64 of 16 bytes is
/// `InvalidDigest`.
pub fn content_md5(headers: &HeaderMap) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = headers.get("content-md5") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|v| BASE64.decode(v.trim()).ok())
        .and_then(|d| <[u8; 16]>::try_from(d).ok())
        .map(Some)
        .ok_or_else(|| S3Error::new(Code::InvalidDigest))
}

/// Checks a `Content-MD5` against the MD5 of what was received.
pub fn check_md5(expected: Option<[u8; 16]>, computed: [u8; 16]) -> S3Result<()> {
    match expected {
        Some(e) if e != computed => Err(S3Error::new(Code::BadDigest)
            .detail("ExpectedDigest", BASE64.encode(e))
            .detail("CalculatedDigest", BASE64.encode(computed))),
        _ => Ok(()),
    }
}

/// Reads which checksum, if any, a write asks for (S3's rules: one
/// algorithm at most, as a header or as a trailer, not both).
pub fn requested(headers: &HeaderMap) -> S3Result<Option<Requested>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut sent = Vec::new();
    for a in Algorithm::ALL {
        if let Some(v) = headers.get(a.header()) {
            let v = v
                .to_str()
                .map_err(|_| invalid(format!("Value for {} header is invalid.", a.header())))?;
            sent.push((a, v.trim().to_owned()));
        }
    }
    let mut sent = sent.into_iter();
    let from_header = sent.next();
    if sent.next().is_some() {
        return Err(invalid(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ));
    }
    let trailer = match header("x-amz-trailer") {
        Some(names) => names
            .split(',')
            .map(str::trim)
            .filter(|n| n.starts_with("x-amz-checksum-"))
            .map(|n| {
                Algorithm::ALL
                    .into_iter()
                    .find(|a| a.header().eq_ignore_ascii_case(n))
                    .ok_or_else(|| invalid(format!("The trailer {n} is not supported.")))
            })
            .next()
            .transpose()?,
        None => None,
    };
    let sdk = match header("x-amz-sdk-checksum-algorithm") {
        Some(name) => Some(Algorithm::parse(name).ok_or_else(|| {
            invalid(format!(
                "Value for x-amz-sdk-checksum-algorithm header is invalid: {name}"
            ))
        })?),
        None => None,
    };
    let requested = match (from_header, trailer) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            ));
        }
        (Some((algorithm, value)), None) => {
            check_value(algorithm, &value)?;
            Some(Requested {
                algorithm,
                source: Source::Header(value),
            })
        }
        (None, Some(algorithm)) => Some(Requested {
            algorithm,
            source: Source::Trailer,
        }),
        (None, None) => sdk.map(|algorithm| Requested {
            algorithm,
            source: Source::None,
        }),
    };
    if let (Some(r), Some(sdk)) = (&requested, sdk)
        && r.algorithm != sdk
    {
        return Err(invalid(format!(
            "Value for x-amz-sdk-checksum-algorithm header is invalid: it names {} but {} was sent.",
            sdk.name(),
            r.algorithm.name()
        )));
    }
    Ok(requested)
}

fn check_value(algorithm: Algorithm, value: &str) -> S3Result<()> {
    match BASE64.decode(value) {
        Ok(raw) if raw.len() == algorithm.digest_len() => Ok(()),
        _ => Err(invalid(format!(
            "Value for {} header is invalid.",
            algorithm.header()
        ))),
    }
}

/// Compares what was computed with what the client sent: a header, or a
/// checksum trailer once the body has been read. A checksum trailer of an
/// algorithm other than the one computed, or more than one, cannot be
/// verified and is refused rather than ignored.
pub fn verify(
    requested: Option<&Requested>,
    computed: &Checksum,
    trailers: &[(String, String)],
) -> S3Result<()> {
    let mut sent = trailers
        .iter()
        .filter(|(name, _)| name.starts_with("x-amz-checksum-"));
    let trailer = sent.next();
    if sent.next().is_some() {
        return Err(invalid("Expecting a single checksum trailer."));
    }
    if let Some((name, value)) = trailer {
        if name != computed.algorithm.header()
            || requested.is_some_and(|r| r.source != Source::Trailer)
        {
            return Err(invalid(format!(
                "The trailer {name} does not match the checksum declared for this request."
            )));
        }
        check_value(computed.algorithm, value)?;
        return compare(computed, value);
    }
    match requested.map(|r| &r.source) {
        Some(Source::Header(value)) => compare(computed, value),
        // A declared trailer that never came: some SDKs do this, and there
        // is nothing to compare against.
        Some(Source::Trailer) | Some(Source::None) | None => Ok(()),
    }
}

fn compare(computed: &Checksum, expected: &str) -> S3Result<()> {
    if expected != computed.value {
        return Err(S3Error::with_message(
            Code::BadDigest,
            format!(
                "The {} you specified did not match the calculated checksum.",
                computed.algorithm.name()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    fn checksum_of(algorithm: Algorithm, data: &[u8]) -> Checksum {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    #[test]
    fn combined_part_crcs_equal_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cuts = [0, 5, 65_536, 100_001, 300_000];
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let parts: Vec<(Checksum, u64)> = cuts
                .windows(2)
                .map(|w| {
                    (
                        checksum_of(algorithm, &data[w[0]..w[1]]),
                        (w[1] - w[0]) as u64,
                    )
                })
                .collect();
            let refs: Vec<(&Checksum, u64)> = parts.iter().map(|(c, l)| (c, *l)).collect();
            assert_eq!(
                combine(algorithm, &refs).unwrap(),
                checksum_of(algorithm, &data),
                "{algorithm:?}"
            );
        }
        let sha = checksum_of(Algorithm::Sha256, b"x");
        assert!(combine(Algorithm::Sha256, &[(&sha, 1)]).is_none());
        let crc = checksum_of(Algorithm::Crc32, b"x");
        assert!(
            combine(Algorithm::Crc32c, &[(&crc, 1)]).is_none(),
            "mixed algorithms"
        );
    }

    #[test]
    fn composite_is_the_checksum_of_the_raw_part_checksums() {
        let a = checksum_of(Algorithm::Sha256, b"part one");
        let b = checksum_of(Algorithm::Sha256, b"part two");
        let mut raw = a.raw().unwrap();
        raw.extend(b.raw().unwrap());
        assert_eq!(
            composite(Algorithm::Sha256, &[&a, &b]).unwrap(),
            checksum_of(Algorithm::Sha256, &raw)
        );
    }

    #[test]
    fn checksum_types_follow_s3s_table() {
        use ChecksumType::*;
        assert!(
            FullObject.allowed(Algorithm::Crc64Nvme) && !Composite.allowed(Algorithm::Crc64Nvme)
        );
        assert!(Composite.allowed(Algorithm::Sha1) && !FullObject.allowed(Algorithm::Sha256));
        assert!(FullObject.allowed(Algorithm::Crc32) && Composite.allowed(Algorithm::Crc32c));
        assert_eq!(ChecksumType::default_for(Algorithm::Crc64Nvme), FullObject);
        assert_eq!(ChecksumType::default_for(Algorithm::Crc32), Composite);
        assert_eq!(ChecksumType::parse("full_object"), Some(FullObject));
    }

    use super::*;

    fn sum(algorithm: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish().value
    }

    #[test]
    fn known_values_of_each_algorithm() {
        // Check values for "123456789" from the CRC catalogue, and the
        // published SHA digests of "abc".
        let b64 = |raw: &[u8]| BASE64.encode(raw);
        assert_eq!(
            sum(Algorithm::Crc32, b"123456789"),
            b64(&0xCBF4_3926u32.to_be_bytes())
        );
        assert_eq!(
            sum(Algorithm::Crc32c, b"123456789"),
            b64(&0xE306_9283u32.to_be_bytes())
        );
        assert_eq!(
            sum(Algorithm::Crc64Nvme, b"123456789"),
            b64(&0xAE8B_1486_0A79_9888u64.to_be_bytes())
        );
        assert_eq!(sum(Algorithm::Sha1, b"abc"), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(
            sum(Algorithm::Sha256, b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn one_checksum_as_header_or_trailer() {
        let r = requested(&headers(&[("x-amz-checksum-crc32", "AAAAAA==")]))
            .unwrap()
            .unwrap();
        assert_eq!(r.source, Source::Header("AAAAAA==".into()));
        let r = requested(&headers(&[("x-amz-trailer", "x-amz-checksum-crc64nvme")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.algorithm, r.source),
            (Algorithm::Crc64Nvme, Source::Trailer)
        );
        let r = requested(&headers(&[("x-amz-sdk-checksum-algorithm", "sha256")]))
            .unwrap()
            .unwrap();
        assert_eq!((r.algorithm, r.source), (Algorithm::Sha256, Source::None));
        assert!(requested(&HeaderMap::new()).unwrap().is_none());
        for bad in [
            headers(&[
                ("x-amz-checksum-crc32", "AAAAAA=="),
                ("x-amz-checksum-sha1", "x"),
            ]),
            headers(&[
                ("x-amz-checksum-crc32", "AAAAAA=="),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
            ]),
            headers(&[("x-amz-checksum-crc32", "not base64!")]),
            headers(&[("x-amz-checksum-crc32", "AAAAAAAA")]),
            headers(&[("x-amz-sdk-checksum-algorithm", "md4")]),
            headers(&[
                ("x-amz-sdk-checksum-algorithm", "CRC32C"),
                ("x-amz-checksum-crc32", "AAAAAA=="),
            ]),
        ] {
            assert_eq!(
                requested(&bad).unwrap_err().code,
                Code::InvalidRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn verification_compares_header_or_trailer() {
        let computed = Checksum {
            algorithm: Algorithm::Crc32,
            value: "AAAAAA==".into(),
        };
        let header = |v: &str| Requested {
            algorithm: Algorithm::Crc32,
            source: Source::Header(v.into()),
        };
        assert!(verify(Some(&header("AAAAAA==")), &computed, &[]).is_ok());
        let e = verify(Some(&header("AAAAAQ==")), &computed, &[]).unwrap_err();
        assert_eq!(e.code, Code::BadDigest);
        let trailer = Requested {
            algorithm: Algorithm::Crc32,
            source: Source::Trailer,
        };
        let sent = |name: &str, v: &str| vec![(name.to_owned(), v.to_owned())];
        let crc32 = "x-amz-checksum-crc32";
        assert!(verify(Some(&trailer), &computed, &sent(crc32, "AAAAAA==")).is_ok());
        let e = verify(Some(&trailer), &computed, &sent(crc32, "AAAAAQ==")).unwrap_err();
        assert_eq!(e.code, Code::BadDigest);
        let e = verify(Some(&trailer), &computed, &sent(crc32, "zz")).unwrap_err();
        assert_eq!(e.code, Code::InvalidRequest);
        assert!(verify(Some(&trailer), &computed, &[]).is_ok());
        // A trailer of another algorithm, or beside a header, is refused.
        let other = sent("x-amz-checksum-crc32c", "AAAAAA==");
        let e = verify(Some(&trailer), &computed, &other).unwrap_err();
        assert_eq!(e.code, Code::InvalidRequest);
        let e = verify(
            Some(&header("AAAAAA==")),
            &computed,
            &sent(crc32, "AAAAAA=="),
        )
        .unwrap_err();
        assert_eq!(e.code, Code::InvalidRequest);
        // An undeclared trailer of the computed algorithm is still checked.
        let e = verify(None, &computed, &sent(crc32, "AAAAAQ==")).unwrap_err();
        assert_eq!(e.code, Code::BadDigest);
        let mut two = sent(crc32, "AAAAAA==");
        two.extend(sent(crc32, "AAAAAA=="));
        assert_eq!(
            verify(None, &computed, &two).unwrap_err().code,
            Code::InvalidRequest
        );
    }
}
