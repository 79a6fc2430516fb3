//! Request and response bodies. Request bodies are read frame by frame, with
//! `aws-chunked` framing removed, their length checked against what the
//! client declared, and an idle timeout; only XML documents are collected,
//! under a cap. Response bodies are either a small buffer or a channel fed by
//! a blob reader.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;

use sha2::{Digest, Sha256};

use crate::auth::Payload;
use crate::chunked::{ChunkError, ChunkedDecoder};
use crate::error::{Code, S3Error, S3Result};

pub type ResponseBody = BoxBody<Bytes, io::Error>;

pub fn full(data: impl Into<Bytes>) -> ResponseBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> ResponseBody {
    full(Bytes::new())
}

/// A response body fed by a blob reader thread.
pub struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl ChannelBody {
    pub fn boxed(rx: mpsc::Receiver<io::Result<Bytes>>, len: u64) -> ResponseBody {
        ChannelBody { rx, remaining: len }.boxed()
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => {
                self.remaining = self.remaining.saturating_sub(data.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The reader stopped before the declared length: the connection
            // must be cut rather than the response end short but "complete".
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob ended early",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// How long a request body may stay silent before the request fails.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A request body being read: decoded, counted and bounded.
pub struct RequestBody {
    incoming: Incoming,
    chunked: Option<ChunkedDecoder>,
    ready: std::collections::VecDeque<Bytes>,
    /// The decoded length the client declared, if it did.
    declared: Option<u64>,
    received: u64,
    limit: u64,
    finished: bool,
    /// The SHA-256 the body must hash to (a hex `x-amz-content-sha256`).
    sha256: Option<([u8; 32], Sha256)>,
    /// Bytes read off the connection, framing included.
    raw: u64,
    started: Instant,
    /// (bytes per second, grace): see [`RequestBody::with_min_rate`].
    min_rate: Option<(u64, Duration)>,
}

fn chunk_error(e: ChunkError) -> S3Error {
    match e {
        ChunkError::Malformed(why) => S3Error::with_message(Code::IncompleteBody, why),
        ChunkError::Signature => S3Error::new(Code::SignatureDoesNotMatch),
        ChunkError::Busy => S3Error::with_message(
            Code::SlowDown,
            "The server holds as many signed chunks awaiting verification as its memory budget allows (limits.signed_chunk_budget); retry shortly.",
        ),
    }
}

impl RequestBody {
    /// Wraps `incoming`. aws-chunked framing is detected from the
    /// `STREAMING-*` content hash, `Content-Encoding: aws-chunked`, or
    /// `x-amz-decoded-content-length`, since clients differ in which they send.
    /// `payload` is what authentication requires the body to prove.
    pub fn new(
        incoming: Incoming,
        headers: &HeaderMap,
        limit: u64,
        payload: Payload,
    ) -> S3Result<RequestBody> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let content_length = header("content-length")
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| {
                S3Error::invalid_argument("Invalid Content-Length", "Content-Length", "")
            })?;
        let decoded_length = header("x-amz-decoded-content-length")
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| {
                S3Error::invalid_argument(
                    "Invalid x-amz-decoded-content-length",
                    "x-amz-decoded-content-length",
                    "",
                )
            })?;
        let chunked = decoded_length.is_some()
            || header("x-amz-content-sha256").is_some_and(|v| v.starts_with("STREAMING-"))
            || header("content-encoding")
                .is_some_and(|v| v.split(',').any(|e| e.trim() == "aws-chunked"));
        let declared = if chunked {
            decoded_length
        } else {
            content_length
        };
        // A body without a length (`Transfer-Encoding: chunked`, as curl
        // `-T -` sends) streams like any other: the limit holds as its
        // bytes arrive, as on MinIO (S3 itself answers 411).
        if declared.is_some_and(|n| n > limit) {
            return Err(S3Error::new(Code::EntityTooLarge)
                .detail("ProposedSize", declared.unwrap_or(0).to_string())
                .detail("MaxSizeAllowed", limit.to_string()));
        }
        let (signer, sha256) = match payload {
            Payload::Unsigned => (None, None),
            Payload::Sha256(digest) => (None, Some((digest, Sha256::new()))),
            Payload::SignedChunks(signer) => (Some(signer), None),
        };
        if signer.is_some() && !chunked {
            return Err(S3Error::with_message(
                Code::InvalidRequest,
                "A streaming x-amz-content-sha256 needs an aws-chunked body.",
            ));
        }
        Ok(RequestBody {
            incoming,
            chunked: chunked.then(|| ChunkedDecoder::new(signer)),
            sha256,
            ready: Default::default(),
            declared,
            received: 0,
            limit,
            finished: false,
            raw: 0,
            started: Instant::now(),
            min_rate: None,
        })
    }

    /// Drops a trickling body: once `grace` has passed, the body must have
    /// averaged `rate` bytes a second since it began (so a fast start buys
    /// time for a later stall, and a client that trickles a byte a minute
    /// is cut off). 0 turns it off.
    pub fn with_min_rate(mut self, rate: u64, grace: Duration) -> RequestBody {
        self.min_rate = (rate > 0).then_some((rate, grace));
        self
    }

    /// Holds signed chunks under the server's shared `budget`.
    pub fn with_chunk_budget(
        mut self,
        budget: &std::sync::Arc<crate::chunked::ChunkBudget>,
    ) -> RequestBody {
        self.chunked = self
            .chunked
            .take()
            .map(|d| d.with_budget(std::sync::Arc::clone(budget)));
        self
    }

    /// How long to wait for the next frame: the idle timeout, or less when
    /// the rate floor would be crossed sooner.
    fn frame_wait(&self) -> Duration {
        let Some((rate, grace)) = self.min_rate else {
            return BODY_IDLE_TIMEOUT;
        };
        let earned = grace + Duration::from_secs_f64(self.raw as f64 / rate as f64);
        earned
            .saturating_sub(self.started.elapsed())
            .min(BODY_IDLE_TIMEOUT)
    }

    /// The decoded length the client declared, if it did.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared
    }

    /// Trailer headers of an aws-chunked body, once it has been read.
    pub fn trailers(&self) -> &[(String, String)] {
        self.chunked.as_ref().map_or(&[], |c| &c.trailers)
    }

    /// The next piece of decoded body, or `None` at its (checked) end.
    pub async fn next(&mut self) -> S3Result<Option<Bytes>> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                self.count(&data)?;
                return Ok(Some(data));
            }
            if self.finished {
                return Ok(None);
            }
            let frame = tokio::time::timeout(self.frame_wait(), self.incoming.frame())
                .await
                .map_err(|_| S3Error::new(Code::RequestTimeout))?;
            match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // HTTP trailers: nothing S3 reads there
                    };
                    self.raw += data.len() as u64;
                    match &mut self.chunked {
                        Some(decoder) => {
                            let mut out = Vec::new();
                            decoder.feed(data, &mut out).map_err(chunk_error)?;
                            self.ready.extend(out);
                        }
                        None => self.ready.push_back(data),
                    }
                }
                Some(Err(e)) => {
                    let mut err = S3Error::new(Code::IncompleteBody);
                    err.cause = Some(e.to_string());
                    return Err(err);
                }
                None => {
                    self.finished = true;
                    if let Some(decoder) = &mut self.chunked {
                        decoder.finish().map_err(chunk_error)?;
                    }
                    if self.declared.is_some_and(|n| n != self.received) {
                        return Err(Code::IncompleteBody.into());
                    }
                    if let Some((expected, hasher)) = self.sha256.take() {
                        let computed = hasher.finalize();
                        if computed.as_slice() != expected {
                            use crate::auth::sigv4::hex;
                            return Err(S3Error::new(Code::XAmzContentSHA256Mismatch)
                                .detail("ClientComputedContentSHA256", hex(&expected))
                                .detail("S3ComputedContentSHA256", hex(&computed)));
                        }
                    }
                }
            }
        }
    }

    fn count(&mut self, data: &[u8]) -> S3Result<()> {
        if let Some((_, hasher)) = &mut self.sha256 {
            hasher.update(data);
        }
        self.received += data.len() as u64;
        if self.declared.is_some_and(|d| self.received > d) {
            return Err(S3Error::with_message(
                Code::IncompleteBody,
                "The request body is longer than its declared length.",
            ));
        }
        if self.received > self.limit {
            return Err(Code::EntityTooLarge.into());
        }
        Ok(())
    }

    /// Collects a small (XML) body whole.
    pub async fn collect(mut self) -> S3Result<Bytes> {
        let mut buf = BytesMut::new();
        while let Some(data) = self.next().await? {
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    }
}

/// An empty response with `status`.
pub fn status_response(status: StatusCode) -> Response<ResponseBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

/// Sets a header on a response; one that is not a valid header is left
/// out and logged.
pub fn set_header(r: &mut Response<ResponseBody>, name: &str, value: &str) {
    match (HeaderName::try_from(name), HeaderValue::from_str(value)) {
        (Ok(name), Ok(value)) => {
            r.headers_mut().insert(name, value);
        }
        // Stored values are checked on the way in; one that still cannot
        // go out (written before that check) is said, never dropped quietly.
        _ => tracing::warn!(
            header = name,
            "a response header is not a valid header value and was left out"
        ),
    }
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

impl crate::store::ingest::Source for RequestBody {
    async fn next_piece(&mut self) -> S3Result<Option<Bytes>> {
        self.next().await
    }

    fn trailers(&self) -> &[(String, String)] {
        RequestBody::trailers(self)
    }
}
