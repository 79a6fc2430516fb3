//! Decoding `aws-chunked` request bodies, the framing AWS SDKs use for
//! streaming uploads:
//!
//! ```text
//! <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//! [<trailer-name>:<value>\r\n ...]\r\n
//! ```
//!
//! Data slices are passed through without copying where the input allows.
//! Chunk signatures and trailers are kept for the caller to verify.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk header or trailer line we accept.
const MAX_LINE: usize = 4096;
/// Most trailer lines we accept (the SDKs send one or two).
const MAX_TRAILERS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

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
    /// The signature of the latest chunk header (signed streams only).
    /// Only the latest is kept: a verifier checks each chunk as it ends.
    pub signature: Option<String>,
    /// Number of chunk headers read, the final empty chunk included.
    pub chunks: u64,
    /// Trailer headers, names lower-cased.
    pub trailers: Vec<(String, String)>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Header,
            pending: BytesMut::new(),
            signature: None,
            chunks: 0,
            trailers: Vec::new(),
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
                    out.push(if src_is_pending {
                        self.pending.split_to(n).freeze()
                    } else {
                        input.split_to(n)
                    });
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::Done => {
                    if input
                        .iter()
                        .chain(self.pending.iter())
                        .any(|b| !b.is_ascii_whitespace())
                    {
                        return Err(ChunkError("data after the final chunk"));
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
                            return Err(ChunkError("chunk header line too long"));
                        }
                        return Ok(());
                    };
                    if pos > MAX_LINE {
                        return Err(ChunkError("chunk header line too long"));
                    }
                    let line = self.pending.split_to(pos);
                    self.pending.advance(2);
                    self.line(&line)?;
                }
            }
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), ChunkError> {
        let line = std::str::from_utf8(line).map_err(|_| ChunkError("chunk line is not UTF-8"))?;
        match self.state {
            State::Header => {
                let (size, ext) = match line.split_once(';') {
                    Some((size, ext)) => (size, Some(ext)),
                    None => (line, None),
                };
                let size = u64::from_str_radix(size.trim(), 16)
                    .map_err(|_| ChunkError("chunk size is not hexadecimal"))?;
                self.chunks += 1;
                if let Some(ext) = ext {
                    let sig = ext
                        .trim()
                        .strip_prefix("chunk-signature=")
                        .ok_or(ChunkError("unknown chunk extension"))?;
                    self.signature = Some(sig.to_owned());
                }
                self.state = if size == 0 {
                    State::Trailer
                } else {
                    State::Data(size)
                };
            }
            State::DataEnd => {
                if !line.is_empty() {
                    return Err(ChunkError("chunk data longer than its declared size"));
                }
                self.state = State::Header;
            }
            State::Trailer => {
                if line.is_empty() {
                    self.state = State::Done;
                } else {
                    if self.trailers.len() == MAX_TRAILERS {
                        return Err(ChunkError("too many trailers"));
                    }
                    let (name, value) = line
                        .split_once(':')
                        .ok_or(ChunkError("malformed trailer line"))?;
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
    pub fn finish(&self) -> Result<(), ChunkError> {
        match self.state {
            State::Done => Ok(()),
            State::Trailer if self.pending.is_empty() => Ok(()),
            _ => Err(ChunkError("body ended before the final chunk")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(
        body: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, ChunkedDecoder), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for p in body.chunks(piece.max(1)) {
            d.feed(Bytes::copy_from_slice(p), &mut out)?;
        }
        d.finish()?;
        Ok((out.concat(), d))
    }

    #[test]
    fn signed_chunks_decode_at_every_split() {
        let body = b"5;chunk-signature=aaaa\r\nhello\r\n6;chunk-signature=bbbb\r\n world\r\n0;chunk-signature=cccc\r\n\r\n";
        for piece in 1..body.len() {
            let (data, d) = decode_in_pieces(body, piece).unwrap();
            assert_eq!(data, b"hello world", "piece size {piece}");
            assert_eq!(d.signature.as_deref(), Some("cccc"));
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
