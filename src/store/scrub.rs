//! The online scrub: a background task that re-reads every object's blobs
//! while the server runs, at a gentle rate, and checks them as a GET does
//! ([`super::read`]: the recorded CRC, else the MD5). Passes repeat at an
//! interval. Nodes sharing a store claim batches of objects through one
//! cursor in the metadata ([`super::rules::scrub`]), so a pass reads each
//! object once whichever node reads it. Damage goes to the log, the
//! metrics and the readiness probe's details.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Store;
use super::model::{Body, ListQuery};
use super::rules::scrub::ScrubCursor;
use crate::error::{Code, S3Result};
use crate::telemetry;

/// Objects claimed at a time.
const BATCH: usize = 100;

#[derive(Debug, Clone, Copy)]
pub struct ScrubPolicy {
    /// Bytes read a second, at most, by this node's scrub.
    pub bytes_per_sec: u64,
    /// A pass starts this long after the previous one started.
    pub interval_ms: i64,
}

/// What one batch did on this node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub objects: u64,
    pub bytes: u64,
    pub damaged: u64,
}

/// Claims the next batch of the pass under way (starting a pass when one
/// is due) and re-reads it. `None` when no pass is due: wait a while.
pub async fn run_batch(
    store: &Arc<Store>,
    policy: ScrubPolicy,
    now_ms: i64,
) -> S3Result<Option<Batch>> {
    let seen = store.meta.scrub_cursor().await?;
    let (pass_started_ms, after) = match &seen {
        Some(c) if c.finished_ms.is_none() => (c.pass_started_ms, c.at.clone()),
        Some(c) if now_ms < c.pass_started_ms.saturating_add(policy.interval_ms) => {
            return Ok(None);
        }
        _ => (now_ms, None),
    };
    let claimed = next_objects(store, after.as_ref(), BATCH).await?;
    let next = ScrubCursor {
        pass_started_ms,
        at: claimed.last().cloned().or(after),
        finished_ms: claimed.is_empty().then_some(now_ms),
    };
    let starting = seen
        .as_ref()
        .is_none_or(|c| c.pass_started_ms != pass_started_ms);
    if !store.meta.move_scrub_cursor(seen, next).await? {
        // Another node claimed first: the next call reads where it left.
        return Ok(Some(Batch::default()));
    }
    if starting {
        tracing::info!("scrub: a pass begins");
    }
    if claimed.is_empty() {
        let secs = (now_ms - pass_started_ms).max(0) / 1000;
        telemetry::SCRUB_PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Batches other nodes claimed may still be reading.
        tracing::info!(
            took_secs = secs,
            "scrub: every object of the pass is claimed"
        );
        return Ok(Some(Batch::default()));
    }
    let mut batch = Batch::default();
    let started = Instant::now();
    for (bucket, key) in claimed {
        scrub_object(store, (&bucket, &key), policy, started, &mut batch).await?;
    }
    Ok(Some(batch))
}

/// Up to `max` objects after `after`, across buckets in name order.
async fn next_objects(
    store: &Store,
    after: Option<&(String, String)>,
    max: usize,
) -> S3Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let buckets = store.meta.list_buckets().await?;
    let later = |name: &String| after.is_none_or(|(b, _)| name >= b);
    for (bucket, _) in buckets.into_iter().filter(|(name, _)| later(name)) {
        let mut from = after.filter(|(b, _)| *b == bucket).map(|(_, k)| k.clone());
        while out.len() < max {
            let q = ListQuery {
                after: from.clone(),
                max: max - out.len(),
                ..Default::default()
            };
            let page = match store.meta.list_objects(&bucket, q).await {
                Ok(page) => page,
                Err(e) if e.code == Code::NoSuchBucket => break,
                Err(e) => return Err(e),
            };
            out.extend(page.objects.into_iter().map(|(k, _)| (bucket.clone(), k)));
            if !page.truncated {
                break;
            }
            from = page.last;
        }
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Re-reads one object's blobs, paced to the policy's rate since `started`.
async fn scrub_object(
    store: &Arc<Store>,
    (bucket, key): (&str, &str),
    policy: ScrubPolicy,
    started: Instant,
    batch: &mut Batch,
) -> S3Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let head = match store.meta.head_object(bucket, key).await {
        Ok(head) => head,
        // Gone since it was claimed.
        Err(e) if matches!(e.code, Code::NoSuchKey | Code::NoSuchBucket) => return Ok(()),
        Err(e) => return Err(e),
    };
    if head.body == Body::Inline || head.size == 0 {
        return Ok(());
    }
    batch.objects += 1;
    telemetry::SCRUB_OBJECTS.fetch_add(1, Relaxed);
    let mut rx = store.stream((bucket, key, &head), None, (0, head.size), Instant::now());
    while let Some(piece) = rx.recv().await {
        match piece {
            Ok(bytes) => {
                let n = bytes.len() as u64;
                batch.bytes += n;
                telemetry::SCRUB_BYTES.fetch_add(n, Relaxed);
                let rate = policy.bytes_per_sec.max(1) as f64;
                let due = started + Duration::from_secs_f64(batch.bytes as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            // Logged, counted and listed by the read itself.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                batch.damaged += 1;
                return Ok(());
            }
            Err(e) => {
                // Unreadable: damage, unless the object changed meanwhile
                // (its old body freed).
                let now = store.meta.head_object(bucket, key).await;
                if now.is_ok_and(|now| now.body == head.body) {
                    batch.damaged += 1;
                    telemetry::record_damage(bucket, key, "-", &format!("unreadable: {e}"));
                    tracing::error!(bucket, key, error = %e, "scrub: an object's bytes cannot be read");
                }
                return Ok(());
            }
        }
    }
    Ok(())
}
