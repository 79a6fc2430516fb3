//! Decoding `aws-chunked` request bodies, the framing AWS SDKs use for
//! streaming uploads:
//!
//! ```text
//! <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//! [<trailer-name>:<value>\r\n ...]\r\n
//! ```
//!
//! Data slices are passed through without copying where the input allows.
//! In a signed stream each chunk is held until its signature, chained from
//! the previous one, verifies; only then is its data released. Trailers are
//! kept for the caller (the checksum); a signed trailer is verified here.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::auth::ChunkSigner;

/// Longest chunk header or trailer line we accept.
const MAX_LINE: usize = 4096;
/// Most trailer lines we accept (the SDKs send one or two).
const MAX_TRAILERS: usize = 16;
/// Largest chunk of a signed stream: it is held in memory until its
/// signature verifies. SDKs send 8 KiB to 1 MiB.
const MAX_SIGNED_CHUNK: u64 = 16 << 20;
/// The trailer line carrying the trailer's signature.
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// The framing is broken.
    Malformed(&'static str),
    /// A chunk or trailer signature is missing or wrong.
    Signature,
    /// Holding this signed chunk would pass the server's budget for
    /// chunks awaiting verification.
    Busy,
}

/// Memory for signed chunks held until their signatures verify, shared by
/// every request: a chunk is admitted only if its declared size fits, so
/// many clients declaring large chunks cannot take the server's memory.
#[derive(Debug)]
pub struct ChunkBudget {
    available: AtomicU64,
}

impl ChunkBudget {
    pub fn new(bytes: u64) -> Arc<ChunkBudget> {
        Arc::new(ChunkBudget {
            available: AtomicU64::new(bytes),
        })
    }

    fn take(&self, n: u64) -> bool {
        self.available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| a.checked_sub(n))
            .is_ok()
    }

    fn give(&self, n: u64) {
        self.available.fetch_add(n, Ordering::AcqRel);
    }

    pub fn available(&self) -> u64 {
        self.available.load(Ordering::Acquire)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk header line.
    Header,
    /// Inside a chunk's data.
    Data(u64),
    /// Expecting the CRLF that ends a chunk's data.
    DataEnd,
    /// After the final zero-length chunk: trailer lines until an empty one.
    Trailer,
    Done,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    pending: BytesMut,
    /// Set for a signed stream.
    signer: Option<ChunkSigner>,
    /// The signature of the chunk being read, and its data so far.
    signature: String,
    held: Vec<Bytes>,
    hasher: Sha256,
    /// Number of chunk headers read, the final empty chunk included.
    pub chunks: u64,
    /// Trailer headers, names lower-cased.
    pub trailers: Vec<(String, String)>,
    budget: Option<Arc<ChunkBudget>>,
    /// What the chunk being held has taken from the budget.
    reserved: u64,
}

impl ChunkedDecoder {
    /// A decoder; with a signer, every chunk (and the trailer, if the
    /// signer expects one) must carry a valid chained signature.
    pub fn new(signer: Option<ChunkSigner>) -> Self {
        ChunkedDecoder {
            state: State::Header,
            pending: BytesMut::new(),
            signer,
            signature: String::new(),
            held: Vec::new(),
            hasher: Sha256::new(),
            chunks: 0,
            trailers: Vec::new(),
            budget: None,
            reserved: 0,
        }
    }

    /// Holds each signed chunk under `budget`.
    pub fn with_budget(mut self, budget: Arc<ChunkBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    fn reserve(&mut self, size: u64) -> Result<(), ChunkError> {
        self.release();
        if let Some(budget) = &self.budget {
            if !budget.take(size) {
                return Err(ChunkError::Busy);
            }
            self.reserved = size;
        }
        Ok(())
    }

    fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give(std::mem::take(&mut self.reserved));
        }
    }

    /// Feeds raw body bytes; decoded data is appended to `out`.
    pub fn feed(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), ChunkError> {
        loop {
            match self.state {
                State::Data(remaining) => {
                    let src_is_pending = !self.pending.is_empty();
                    let available = if src_is_pending {
                        self.pending.len()
                    } else {
                        input.len()
                    };
                    if available == 0 {
                        return Ok(());
                    }
                    let n = remaining.min(available as u64) as usize;
                    let data = if src_is_pending {
                        self.pending.split_to(n).freeze()
                    } else {
                        input.split_to(n)
                    };
                    if self.signer.is_some() {
                        self.hasher.update(&data);
                        self.held.push(data);
                    } else {
                        out.push(data);
                    }
                    let left = remaining - n as u64;
                    if left == 0 {
                        self.end_of_chunk_data(out)?;
                        self.state = State::DataEnd;
                    } else {
                        self.state = State::Data(left);
                    }
                }
                State::Done => {
                    if input
                        .iter()
                        .chain(self.pending.iter())
                        .any(|b| !b.is_ascii_whitespace())
                    {
                        return Err(ChunkError::Malformed("data after the final chunk"));
                    }
                    self.pending.clear();
                    return Ok(());
                }
                _ => {
                    if !input.is_empty() {
                        self.pending.extend_from_slice(&input);
                        input.clear();
                    }
                    let Some(pos) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                        if self.pending.len() > MAX_LINE {
                            return Err(ChunkError::Malformed("chunk header line too long"));
                        }
                        return Ok(());
                    };
                    if pos > MAX_LINE {
                        return Err(ChunkError::Malformed("chunk header line too long"));
                    }
                    let line = self.pending.split_to(pos);
                    self.pending.advance(2);
                    self.line(&line)?;
                }
            }
        }
    }

    /// A chunk's data is complete: in a signed stream, verify and release it.
    fn end_of_chunk_data(&mut self, out: &mut Vec<Bytes>) -> Result<(), ChunkError> {
        if let Some(signer) = &mut self.signer {
            let digest = std::mem::take(&mut self.hasher).finalize();
            if !signer.verify_chunk(&crate::auth::sigv4::hex(&digest), &self.signature) {
                return Err(ChunkError::Signature);
            }
            out.append(&mut self.held);
            self.release();
        }
        Ok(())
    }

    /// The trailer section is complete: check its signature, if signed.
    fn end_of_trailers(&mut self) -> Result<(), ChunkError> {
        let Some(signer) = self.signer.as_mut().filter(|s| s.trailer) else {
            return Ok(());
        };
        let at = self
            .trailers
            .iter()
            .position(|(name, _)| name == TRAILER_SIGNATURE)
            .ok_or(ChunkError::Signature)?;
        let (_, signature) = self.trailers.remove(at);
        if signer.verify_trailer(&self.trailers, &signature) {
            Ok(())
        } else {
            Err(ChunkError::Signature)
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), ChunkError> {
        let malformed = ChunkError::Malformed;
        let line = std::str::from_utf8(line).map_err(|_| malformed("chunk line is not UTF-8"))?;
        match self.state {
            State::Header => {
                let (size, ext) = match line.split_once(';') {
                    Some((size, ext)) => (size, Some(ext)),
                    None => (line, None),
                };
                let size = u64::from_str_radix(size.trim(), 16)
                    .map_err(|_| malformed("chunk size is not hexadecimal"))?;
                self.chunks += 1;
                let signature = match ext {
                    Some(ext) => Some(
                        ext.trim()
                            .strip_prefix("chunk-signature=")
                            .ok_or(malformed("unknown chunk extension"))?,
                    ),
                    None => None,
                };
                if self.signer.is_some() {
                    signature
                        .ok_or(ChunkError::Signature)?
                        .clone_into(&mut self.signature);
                    if size > MAX_SIGNED_CHUNK {
                        return Err(malformed("a signed chunk is larger than 16 MiB"));
                    }
                    self.reserve(size)?;
                }
                if size == 0 {
                    // The final chunk signs the empty string.
                    self.end_of_chunk_data(&mut Vec::new())?;
                    self.state = State::Trailer;
                } else {
                    self.state = State::Data(size);
                }
            }
            State::DataEnd => {
                if !line.is_empty() {
                    return Err(malformed("chunk data longer than its declared size"));
                }
                self.state = State::Header;
            }
            State::Trailer => {
                if line.is_empty() {
                    self.end_of_trailers()?;
                    self.state = State::Done;
                } else {
                    if self.signer.as_ref().is_some_and(|s| !s.trailer) {
                        // A stream signed without a trailer has none: an
                        // unsigned one could smuggle in a checksum.
                        return Err(ChunkError::Signature);
                    }
                    if self.trailers.len() == MAX_TRAILERS {
                        return Err(malformed("too many trailers"));
                    }
                    let (name, value) = line
                        .split_once(':')
                        .ok_or(malformed("malformed trailer line"))?;
                    self.trailers
                        .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            State::Data(_) | State::Done => unreachable!("lines are read only between chunks"),
        }
        Ok(())
    }

    /// Called at the end of the body: the stream must have reached its final
    /// chunk. Clients differ on the CRLF that closes the trailer section, so
    /// its absence is tolerated.
    pub fn finish(&mut self) -> Result<(), ChunkError> {
        match self.state {
            State::Done => Ok(()),
            State::Trailer if self.pending.is_empty() => {
                self.end_of_trailers()?;
                self.state = State::Done;
                Ok(())
            }
            _ => Err(ChunkError::Malformed("body ended before the final chunk")),
        }
    }
}

impl Drop for ChunkedDecoder {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(
        body: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, ChunkedDecoder), ChunkError> {
        let mut d = ChunkedDecoder::new(None);
        let mut out = Vec::new();
        for p in body.chunks(piece.max(1)) {
            d.feed(Bytes::copy_from_slice(p), &mut out)?;
        }
        d.finish()?;
        Ok((out.concat(), d))
    }

    #[test]
    fn chunk_signatures_are_ignored_in_an_unsigned_stream() {
        let body = b"5;chunk-signature=aaaa\r\nhello\r\n6;chunk-signature=bbbb\r\n world\r\n0;chunk-signature=cccc\r\n\r\n";
        for piece in 1..body.len() {
            let (data, d) = decode_in_pieces(body, piece).unwrap();
            assert_eq!(data, b"hello world", "piece size {piece}");
            assert_eq!(d.chunks, 3);
        }
    }

    #[test]
    fn unsigned_chunks_with_a_trailer() {
        let body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n";
        for piece in 1..body.len() {
            let (data, d) = decode_in_pieces(body, piece).unwrap();
            assert_eq!(data, b"abc");
            assert_eq!(
                d.trailers,
                [("x-amz-checksum-crc32".to_owned(), "NSRBwg==".to_owned())]
            );
        }
    }

    #[test]
    fn missing_final_crlf_after_trailers_is_tolerated() {
        let (data, _) =
            decode_in_pieces(b"1\r\nz\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n", 64).unwrap();
        assert_eq!(data, b"z");
    }

    #[test]
    fn malformed_framing_is_refused() {
        assert!(decode_in_pieces(b"zz\r\nabc\r\n0\r\n\r\n", 64).is_err());
        assert!(decode_in_pieces(b"2\r\nabc\r\n0\r\n\r\n", 64).is_err());
        assert!(decode_in_pieces(b"3\r\nabc\r\n", 64).is_err());
        assert!(decode_in_pieces(b"3;foo=bar\r\nabc\r\n0\r\n\r\n", 64).is_err());
        assert!(decode_in_pieces(&[b'1'; 5000], 64).is_err());
        assert!(decode_in_pieces(b"0\r\n\r\nextra", 64).is_err());
        let many_trailers = format!("0\r\n{}\r\n", "a:b\r\n".repeat(17));
        assert!(decode_in_pieces(many_trailers.as_bytes(), 64).is_err());
    }
}
