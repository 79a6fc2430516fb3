//! Streaming an object's bytes: inline bytes as they are, a blob or a
//! manifest's segments one chunk per blocking call, into a channel that
//! the response body drains.
//!
//! Safety against the collector, across processes: a body freed at `t` is
//! not reclaimed before `t + grace`. A reader that read the object's head at
//! `r` may touch what the head names until `r + grace/2` on the head's word
//! alone (the body was freed at `t >= r`, if at all). Past that, before
//! each metadata read or blob read it holds a lease on the body in the
//! metadata engine, renewed while it reads. A lease on a body that is gone
//! (the client stalled past the grace period) fails, and the response is
//! cut rather than served from bytes that may no longer exist.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::spawn_blocking;

use md5::Digest as _;

use super::Store;
use super::blob::BlobSource;
use super::model::{BlobId, Body, Segment, id_hex};
use crate::checksum::{self, Checksum};

/// Bytes read from a blob per blocking call.
const READ_CHUNK: usize = 512 * 1024;
/// How long a GET may wait for its client to take the next chunk.
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// Manifest segments read per metadata call.
const SEGMENT_PAGE: u32 = 256;

/// What a read is of: the object's name (for the log), and its
/// full-object CRC when it has one (a single blob's bytes hash to it).
pub struct Named {
    pub bucket: String,
    pub key: String,
    pub crc: Option<Checksum>,
}

/// Streams `[start, end)` of `body`, named by a head read at `read_at` or
/// later. Each blob segment read whole is checked against what was
/// recorded when it was written, and the read is cut before its last
/// byte when they differ.
pub fn spawn(
    store: Arc<Store>,
    (body, named): (Body, Named),
    inline: Option<Bytes>,
    (start, end): (u64, u64),
    read_at: Instant,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut reader = Reader {
            lease: Lease::new(&store, &body, read_at),
            store,
            tx,
            named,
        };
        if let Err(e) = reader.send(body, inline, start, end).await {
            // The body then ends in an error, which cuts the connection: a
            // client never sees a short object as complete. (If the channel
            // is full the client is not reading; dropping the sender has
            // the same effect.)
            let _ = reader.tx.try_send(Err(e));
        }
    });
    rx
}

struct Reader {
    store: Arc<Store>,
    lease: Lease,
    tx: mpsc::Sender<io::Result<Bytes>>,
    named: Named,
}

/// A whole segment's bytes, hashed as they are read, against what was
/// recorded when they were written: a CRC when one was (cheap at any
/// rate), else the MD5.
enum Check {
    Crc(Box<checksum::Hasher>, Checksum),
    Md5(md5::Md5, [u8; 16]),
}

impl Check {
    fn of(seg: &Segment, object_crc: Option<&Checksum>) -> Check {
        let crc = object_crc.or(seg.checksum.as_ref());
        match crc.filter(|c| c.algorithm.is_crc()) {
            Some(c) => Check::Crc(Box::new(checksum::Hasher::new(c.algorithm)), c.clone()),
            None => Check::Md5(md5::Md5::new(), seg.md5),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Check::Crc(h, _) => h.update(data),
            Check::Md5(h, _) => h.update(data),
        }
    }

    /// `Err` with what differs.
    fn verdict(self) -> Result<(), String> {
        match self {
            Check::Crc(h, want) => {
                let got = (*h).finish();
                (got.value == want.value).then_some(()).ok_or_else(|| {
                    let name = want.algorithm.name();
                    format!("{name} recorded {}, read {}", want.value, got.value)
                })
            }
            Check::Md5(h, want) => {
                let got: [u8; 16] = h.finalize().into();
                (got == want).then_some(()).ok_or_else(|| {
                    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
                    format!("MD5 recorded {}, read {}", hex(&want), hex(&got))
                })
            }
        }
    }
}

impl Reader {
    async fn send(
        &mut self,
        body: Body,
        inline: Option<Bytes>,
        start: u64,
        end: u64,
    ) -> io::Result<()> {
        match body {
            Body::Inline => {
                let data = inline.unwrap_or_default();
                let (s, e) = (start as usize, (end as usize).min(data.len()));
                self.deliver(data.slice(s.min(e)..e)).await?;
            }
            Body::Blob(seg) => {
                let whole = start == 0 && end >= seg.len;
                let crc = self.named.crc.clone();
                let check = whole.then(|| Check::of(&seg, crc.as_ref()));
                self.send_range(seg.blob, start, end.min(seg.len), check)
                    .await?
            }
            Body::Parts { manifest, count } => {
                self.lease.hold(&self.store).await?;
                let first = match start {
                    0 => 0,
                    _ => self
                        .store
                        .meta
                        .segment_at(manifest, count, start)
                        .await
                        .map_err(io::Error::other)?,
                };
                let mut next = first;
                while next < count {
                    self.lease.hold(&self.store).await?;
                    let page = self
                        .store
                        .meta
                        .segments(manifest, next, SEGMENT_PAGE)
                        .await
                        .map_err(io::Error::other)?;
                    if page.is_empty() {
                        return Err(io::Error::other("manifest ended early"));
                    }
                    next += page.len() as u32;
                    for (seg_start, seg) in page {
                        if seg_start >= end {
                            return Ok(());
                        }
                        self.send_segment(seg_start, &seg, start, end).await?;
                        if self.tx.is_closed() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn send_segment(
        &mut self,
        seg_start: u64,
        seg: &Segment,
        start: u64,
        end: u64,
    ) -> io::Result<()> {
        let seg_end = seg_start + seg.len;
        if seg_end <= start || seg.len == 0 {
            return Ok(());
        }
        let from = start.saturating_sub(seg_start);
        let to = end.min(seg_end) - seg_start;
        let check = (from == 0 && to == seg.len).then(|| Check::of(seg, None));
        self.send_range(seg.blob, from, to, check).await
    }

    /// Sends `[from, to)` of a blob; with a check, the blob's whole bytes,
    /// the last chunk held back until they hash to what was recorded.
    async fn send_range(
        &mut self,
        blob: BlobId,
        from: u64,
        to: u64,
        mut check: Option<Check>,
    ) -> io::Result<()> {
        self.lease.hold(&self.store).await?;
        let blobs = Arc::clone(&self.store.blobs);
        let mut source = spawn_blocking(move || -> io::Result<Box<dyn BlobSource>> {
            let mut source = blobs.open(blob)?;
            source.seek(SeekFrom::Start(from))?;
            Ok(source)
        })
        .await
        .map_err(io::Error::other)??;
        let mut left = to - from;
        while left > 0 {
            self.lease.hold(&self.store).await?;
            let n = left.min(READ_CHUNK as u64) as usize;
            let (s, buf, c) = spawn_blocking(move || -> io::Result<_> {
                let mut buf = BytesMut::zeroed(n);
                source.read_exact(&mut buf)?;
                if let Some(check) = &mut check {
                    check.update(&buf);
                }
                Ok((source, buf, check))
            })
            .await
            .map_err(io::Error::other)??;
            (source, check) = (s, c);
            left -= n as u64;
            if left == 0
                && let Some(Err(why)) = check.take().map(Check::verdict)
            {
                return Err(self.damaged(blob, &why));
            }
            if !self.deliver(buf.freeze()).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reports a blob whose bytes are not those written: logged with the
    /// object it serves, counted, and the read cut before its last byte.
    fn damaged(&self, blob: BlobId, why: &str) -> io::Error {
        crate::telemetry::CORRUPT_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Named { bucket, key, .. } = &self.named;
        crate::telemetry::record_damage(bucket, key, &id_hex(blob), why);
        tracing::error!(
            blob = %id_hex(blob), bucket, key,
            "damaged blob: its bytes differ from those written ({why}); the read was cut before its last byte. Restore the object from a copy; `stowage verify` lists every damaged blob"
        );
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("damaged blob {}", id_hex(blob)),
        )
    }

    /// `false` when the client went away. While the client is slow to take
    /// the data, the lease is kept up, so a pause shorter than
    /// [`SEND_TIMEOUT`] never costs the read its bytes.
    async fn deliver(&mut self, data: Bytes) -> io::Result<bool> {
        let deadline = tokio::time::Instant::now() + SEND_TIMEOUT;
        let send = self.tx.send(Ok(data));
        tokio::pin!(send);
        loop {
            let renew = match self.lease.body {
                Some(_) => tokio::time::Instant::from_std(self.lease.safe_until).min(deadline),
                None => deadline,
            };
            tokio::select! {
                sent = &mut send => return Ok(sent.is_ok()),
                () = tokio::time::sleep_until(renew) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "client stopped reading",
                        ));
                    }
                    self.lease.hold(&self.store).await?;
                }
            }
        }
    }
}

/// A reader's claim on the body it reads (see the module comment).
struct Lease {
    body: Option<u128>,
    /// Until when the claim is good without asking the engine again.
    safe_until: Instant,
    grace: Duration,
}

impl Lease {
    /// For a body named by a head read at `read_at` (or later).
    fn new(store: &Store, body: &Body, read_at: Instant) -> Lease {
        let grace = Duration::from_millis(store.grace_ms.max(0) as u64);
        Lease {
            body: match body {
                Body::Inline => None,
                Body::Blob(seg) => Some(seg.blob),
                Body::Parts { manifest, .. } => Some(*manifest),
            },
            safe_until: read_at + grace / 2,
            grace,
        }
    }

    /// Makes sure the body cannot be reclaimed for at least a little while.
    async fn hold(&mut self, store: &Store) -> io::Result<()> {
        let Some(body) = self.body else {
            return Ok(());
        };
        if Instant::now() < self.safe_until {
            return Ok(());
        }
        // The lease runs from before it is asked for: however long the
        // request waits, the reader never counts on more than it holds.
        let asked = Instant::now();
        let until = crate::time::now_ms() + self.grace.as_millis() as i64;
        let held = store
            .meta
            .lease(body, until)
            .await
            .map_err(io::Error::other)?;
        if !held {
            return Err(io::Error::other(
                "the object was deleted and reclaimed while it was being read",
            ));
        }
        self.safe_until = asked + self.grace / 2;
        Ok(())
    }
}
