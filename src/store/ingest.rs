//! The one ingest path: a body streamed into a new blob (or kept inline)
//! under its size bounds and the free-space floor, with its digests checked
//! before anything is synced. Every front-end that takes a body (PutObject,
//! UploadPart, POST Object, and the protocols to come) calls
//! [`Store::ingest`].

use std::future::Future;

use bytes::Bytes;

use super::Store;
use super::write::Received;
use crate::checksum::{self, Algorithm, Requested};
use crate::error::{Code, S3Error, S3Result};

/// How often (in bytes) the free-space floor is checked again while a body
/// streams.
pub const SPACE_CHECK_EVERY: usize = 8 << 20;

/// Where a body's bytes come from. The source enforces its own framing,
/// signatures, rate floor and length limit as it reads.
pub trait Source: Send {
    /// The next piece of the body; `None` at its end.
    fn next_piece(&mut self) -> impl Future<Output = S3Result<Option<Bytes>>> + Send;
    /// Checksum trailers that followed the body, once it has ended.
    fn trailers(&self) -> &[(String, String)] {
        &[]
    }
}

/// What a body must be.
#[derive(Debug, Clone)]
pub struct Expect {
    /// `Content-MD5`, if sent.
    pub md5: Option<[u8; 16]>,
    /// The checksum the client asked for (or sent).
    pub checksum: Option<Requested>,
    /// The algorithm computed when no checksum is asked for.
    pub fallback: Algorithm,
    /// The length the client declared, checked against the floor first.
    pub declared: Option<u64>,
    /// Bounds on the whole body: `EntityTooSmall` / `EntityTooLarge`.
    pub min: u64,
    pub max: u64,
    /// Whether a small body may stay inline in the metadata.
    pub inline: bool,
}

impl Expect {
    pub fn new(md5: Option<[u8; 16]>, checksum: Option<Requested>, fallback: Algorithm) -> Expect {
        Expect {
            md5,
            checksum,
            fallback,
            declared: None,
            min: 0,
            max: u64::MAX,
            inline: false,
        }
    }
}

fn too_large(max: u64) -> S3Error {
    S3Error::with_message(
        Code::EntityTooLarge,
        "Your proposed upload exceeds the maximum allowed size",
    )
    .detail("MaxSizeAllowed", max.to_string())
}

fn too_small(len: u64, min: u64) -> S3Error {
    S3Error::with_message(
        Code::EntityTooSmall,
        "Your proposed upload is smaller than the minimum allowed size",
    )
    .detail("ProposedSize", len.to_string())
    .detail("MinSizeAllowed", min.to_string())
}

impl Store {
    /// Streams `source` into a new body, refusing (and storing nothing)
    /// when it breaks a bound, the disk reaches its floor, or a digest does
    /// not match.
    pub async fn ingest(&self, source: &mut impl Source, expect: &Expect) -> S3Result<Received> {
        if expect.declared.is_some_and(|n| n > expect.max) {
            return Err(too_large(expect.max));
        }
        let algorithm = expect
            .checksum
            .as_ref()
            .map_or(expect.fallback, |r| r.algorithm);
        self.check_space(expect.declared.unwrap_or(0))?;
        let mut writer = self.writer(algorithm, expect.inline);
        let (mut len, mut unchecked) = (0u64, 0usize);
        while let Some(piece) = source.next_piece().await? {
            len += piece.len() as u64;
            if len > expect.max {
                return Err(too_large(expect.max));
            }
            unchecked += piece.len();
            if unchecked >= SPACE_CHECK_EVERY {
                self.check_space(0)?;
                unchecked = 0;
            }
            writer.write(piece).await?;
        }
        if len < expect.min {
            return Err(too_small(len, expect.min));
        }
        writer
            .finish(|written| {
                checksum::check_md5(expect.md5, written.md5)?;
                checksum::verify(
                    expect.checksum.as_ref(),
                    &written.checksum,
                    source.trailers(),
                )
            })
            .await
    }
}
