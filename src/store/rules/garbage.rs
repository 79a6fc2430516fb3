//! The collector's side of the metadata: claiming due garbage in bounded
//! batches (leased bodies put off, freed manifests taken apart), forgetting
//! what was unlinked, readers' leases, and start-up recovery's question.

use super::refs::decref_blob;
use crate::store::model::*;
use crate::store::txn::*;

/// Freed blobs due at `now_ms` and not under a reader's lease, claimed (no
/// lease can be taken on them any more); about `max` rows of work.
pub struct ClaimGarbage {
    pub now_ms: i64,
    pub max: usize,
}

/// One garbage row's fate, decided by the check.
pub enum Step {
    /// A reader still holds it: put it off until the lease ends.
    PutOff {
        due_ms: i64,
        id: u128,
        freed: Freed,
        until: i64,
    },
    /// A freed blob, claimed.
    Blob {
        due_ms: i64,
        id: u128,
        lapsed_lease: bool,
    },
    /// A freed manifest: these segments are taken apart now, and the
    /// manifest is forgotten when none are left.
    Manifest {
        due_ms: i64,
        id: u128,
        lapsed_lease: bool,
        segments: Vec<(u32, BlobId)>,
        left: bool,
    },
}

pub struct Claim {
    steps: Vec<Step>,
    more: bool,
}

impl Change for ClaimGarbage {
    type Plan = Claim;
    type Output = DueGarbage;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Claim> {
        let rows = txn.garbage(self.now_ms, self.max).await?;
        let mut claim = Claim {
            steps: Vec::new(),
            more: rows.len() == self.max,
        };
        let mut budget = self.max;
        for (due_ms, id, freed) in rows {
            let lease = txn.lease(id).await?;
            if let Some(until) = lease.filter(|until| *until > self.now_ms) {
                claim.steps.push(Step::PutOff {
                    due_ms,
                    id,
                    freed,
                    until,
                });
                continue;
            }
            let lapsed_lease = lease.is_some();
            match freed {
                Freed::Blob => {
                    claim.steps.push(Step::Blob {
                        due_ms,
                        id,
                        lapsed_lease,
                    });
                    budget = budget.saturating_sub(1);
                }
                Freed::Manifest => {
                    let mut rows = txn.segments(id, 0, budget.saturating_add(1)).await?;
                    let left = rows.len() > budget;
                    rows.truncate(budget);
                    // A pass always advances, even on a manifest with no
                    // segments left.
                    budget = budget.saturating_sub(rows.len().max(1));
                    let segments = rows.into_iter().map(|(i, r)| (i, r.segment.blob));
                    claim.steps.push(Step::Manifest {
                        due_ms,
                        id,
                        lapsed_lease,
                        segments: segments.collect(),
                        left,
                    });
                    claim.more |= left;
                }
            }
            if budget == 0 {
                claim.more = true;
                break;
            }
        }
        Ok(claim)
    }

    async fn apply<W: Writes>(&self, claim: Claim, txn: &mut W) -> Done<DueGarbage> {
        let mut due = DueGarbage {
            blobs: Vec::new(),
            more: claim.more,
        };
        for step in claim.steps {
            match step {
                Step::PutOff {
                    due_ms,
                    id,
                    freed,
                    until,
                } => {
                    txn.remove_garbage(due_ms, id).await?;
                    txn.add_garbage(until, id, freed).await?;
                }
                Step::Blob {
                    due_ms,
                    id,
                    lapsed_lease,
                } => {
                    if lapsed_lease {
                        txn.remove_lease(id).await?;
                    }
                    txn.remove_refs(Counted::Blob, id).await?;
                    due.blobs.push(Garbage { due_ms, blob: id });
                }
                Step::Manifest {
                    due_ms,
                    id,
                    lapsed_lease,
                    segments,
                    left,
                } => {
                    if lapsed_lease {
                        txn.remove_lease(id).await?;
                    }
                    // Claimed: no new lease can be taken on it from now on.
                    txn.remove_refs(Counted::Manifest, id).await?;
                    dismantle(txn, (due_ms, id), &segments, &mut due).await?;
                    if !left {
                        txn.remove_garbage(due_ms, id).await?;
                        txn.tally(Tally::Garbage(-1)).await?;
                    }
                }
            }
        }
        Ok(due)
    }
}

/// Removes these segments of a freed manifest. A segment blob freed here
/// is due with its manifest (whose grace covered it) and claimed at once,
/// so it goes out in this same batch.
async fn dismantle<W: Writes>(
    txn: &mut W,
    (due_ms, manifest): (i64, u128),
    segments: &[(u32, BlobId)],
    due: &mut DueGarbage,
) -> Done<()> {
    for (index, _) in segments {
        txn.remove_segment(manifest, *index).await?;
    }
    for (_, blob) in segments {
        if decref_blob(txn, *blob, due_ms).await? {
            txn.remove_refs(Counted::Blob, *blob).await?;
            due.blobs.push(Garbage {
                due_ms,
                blob: *blob,
            });
        }
    }
    Ok(())
}

/// Forgets garbage whose blobs are unlinked.
pub struct ForgetGarbage(pub Vec<Garbage>);

impl Change for ForgetGarbage {
    type Plan = ();
    type Output = ();

    async fn check<R: Reads>(&self, _txn: &mut R) -> Checked<()> {
        Ok(())
    }

    async fn apply<W: Writes>(&self, (): (), txn: &mut W) -> Done<()> {
        let mut forgotten = 0;
        for g in &self.0 {
            if txn.remove_garbage(g.due_ms, g.blob).await? {
                forgotten += 1;
            }
        }
        txn.tally(Tally::Garbage(-forgotten)).await
    }
}

/// A reader's lease on a body (a blob id or a manifest id) until
/// `until_ms`; `false` when the body is already claimed.
pub struct Lease {
    pub body: u128,
    pub until_ms: i64,
}

impl Change for Lease {
    type Plan = bool;
    type Output = bool;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<bool> {
        Ok(txn.refs(Counted::Blob, self.body).await?.is_some()
            || txn.refs(Counted::Manifest, self.body).await?.is_some())
    }

    async fn apply<W: Writes>(&self, exists: bool, txn: &mut W) -> Done<bool> {
        if exists {
            txn.extend_lease(self.body, self.until_ms).await?;
        }
        Ok(exists)
    }
}

/// A small durable write, to prove the engine takes writes (readiness).
pub struct Probe;

impl Change for Probe {
    type Plan = ();
    type Output = ();

    async fn check<R: Reads>(&self, _txn: &mut R) -> Checked<()> {
        Ok(())
    }

    async fn apply<W: Writes>(&self, (): (), txn: &mut W) -> Done<()> {
        txn.probe().await
    }
}

pub struct GetStats;

impl Query for GetStats {
    type Output = Stats;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Stats> {
        Ok(txn.stats().await?)
    }
}

/// Which of `ids` any record refers to (start-up recovery of blobs that a
/// crash left unpublished).
pub struct LiveBlobs(pub Vec<BlobId>);

impl Query for LiveBlobs {
    type Output = Vec<BlobId>;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Vec<BlobId>> {
        let mut live = Vec::new();
        for id in &self.0 {
            if txn.refs(Counted::Blob, *id).await?.is_some() {
                live.push(*id);
            }
        }
        Ok(live)
    }
}
