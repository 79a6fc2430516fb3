//! Measurements taken where they happen (the metadata engines' commits,
//! reads that found rot) and rendered by [`crate::server::metrics`]:
//! fixed-bucket histograms and counters that need no lock to record.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bounds, in seconds, for request and commit latencies.
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bounds for how many changes one commit carries.
pub const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

const MAX_BUCKETS: usize = 16;

/// A Prometheus histogram: a count per upper bound (not cumulative until
/// rendered), the sum and the count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: [AtomicU64; MAX_BUCKETS],
    /// The sum, in millionths of the unit (micro-seconds for latencies).
    sum_micros: AtomicU64,
}

impl Histogram {
    pub const fn new(bounds: &'static [f64]) -> Histogram {
        assert!(bounds.len() < MAX_BUCKETS);
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; MAX_BUCKETS],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = (value * 1e6).max(0.0) as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The series of one histogram: `labels` is empty or `a="b",c="d"`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        // The count is the buckets' own total, so a scrape racing an
        // observation stays consistent.
        let count = cumulative + self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// How long the metadata engine's commits take (redb: one per batch;
/// PostgreSQL: the COMMIT of each change).
pub static COMMIT_SECONDS: Histogram = Histogram::new(SECONDS);

/// How many changes each metadata commit carries.
pub static COMMIT_CHANGES: Histogram = Histogram::new(BATCH);

/// Reads that found a blob's bytes differ from what was recorded when it
/// was written (cut before their last byte).
pub static CORRUPT_READS: AtomicU64 = AtomicU64::new(0);

/// What this node's scrub has read, and the passes it finished.
pub static SCRUB_OBJECTS: AtomicU64 = AtomicU64::new(0);
pub static SCRUB_BYTES: AtomicU64 = AtomicU64::new(0);
pub static SCRUB_PASSES: AtomicU64 = AtomicU64::new(0);

/// An object found damaged, by a read or the scrub.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damage {
    pub bucket: String,
    pub key: String,
    pub blob: String,
    pub problem: String,
    pub found_ms: i64,
}

/// The damage this process found most recently, newest last.
static DAMAGE: std::sync::Mutex<std::collections::VecDeque<Damage>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
const DAMAGE_KEPT: usize = 100;

pub fn record_damage(bucket: &str, key: &str, blob: &str, problem: &str) {
    let mut found = DAMAGE.lock().unwrap_or_else(|e| e.into_inner());
    // One entry per object: the latest finding.
    found.retain(|d| (d.bucket.as_str(), d.key.as_str()) != (bucket, key));
    if found.len() == DAMAGE_KEPT {
        found.pop_front();
    }
    found.push_back(Damage {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        blob: blob.to_owned(),
        problem: problem.to_owned(),
        found_ms: crate::time::now_ms(),
    });
}

/// The damage found so far (at most the last hundred objects).
pub fn damage() -> Vec<Damage> {
    let found = DAMAGE.lock().unwrap_or_else(|e| e.into_inner());
    found.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "op=\"a\"");
        assert_eq!(
            out,
            "x_bucket{op=\"a\",le=\"1\"} 2\nx_bucket{op=\"a\",le=\"2\"} 3\nx_bucket{op=\"a\",le=\"+Inf\"} 4\nx_sum{op=\"a\"} 6\nx_count{op=\"a\"} 4\n"
        );
    }
}
