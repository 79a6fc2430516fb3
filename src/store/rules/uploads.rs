//! Multipart uploads: create, store a part, complete, abort, and the
//! sweep's aborts of expired uploads.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::buckets::{existing, in_bucket};
use super::complete;
use super::refs::{Dropping, Drops, decref_blob, replace_head};
use crate::error::{Code, S3Error};
use crate::store::model::*;
use crate::store::txn::*;
use crate::time::now_ms;

/// Starts an upload; with an idempotency token, returns the upload of this
/// key that already carries it. An upload made under a grant replaces the
/// unfinished upload the same grant made at this key, if any: a grant
/// holds at most one per key.
pub struct CreateUpload {
    pub bucket: String,
    pub key: String,
    pub record: UploadRecord,
    pub grace_ms: i64,
}

pub enum Created {
    Existing(String),
    New {
        id: String,
        /// The same grant's earlier upload at this key, dropped.
        replacing: Vec<Dropping>,
    },
}

impl Change for CreateUpload {
    type Plan = Created;
    type Output = String;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Created> {
        existing(txn, &self.bucket).await?;
        let id = new_upload_id(self.record.initiated_ms);
        let (token, grant) = (&self.record.token, &self.record.granted);
        if token.is_none() && grant.is_none() {
            return Ok(Created::New {
                id,
                replacing: Vec::new(),
            });
        }
        let key = self.key.as_str();
        // Every upload of this key: keys below `key\0` that start at `key`.
        let below = format!("{key}\0");
        let scan = Scan {
            from: std::ops::Bound::Included((key, "")),
            below: Some(&below),
            max: usize::MAX,
        };
        let uploads = txn.uploads(&self.bucket, scan).await?;
        let now = self.record.initiated_ms;
        let live = |u: &UploadRecord| !u.expired(now);
        if let Some((_, id, _)) = uploads
            .iter()
            .find(|(_, _, u)| token.is_some() && u.token == *token && live(u))
        {
            return Ok(Created::Existing(id.clone()));
        }
        let mut replacing = Vec::new();
        if let Some(grant) = grant {
            for (_, old, u) in &uploads {
                if u.granted.as_ref().is_some_and(|g| g.grant == grant.grant) {
                    let upload = (self.bucket.as_str(), key, old.as_str());
                    replacing.extend(Dropping::read(txn, upload).await?);
                }
            }
        }
        Ok(Created::New { id, replacing })
    }

    async fn apply<W: Writes>(&self, created: Created, txn: &mut W) -> Done<String> {
        match created {
            Created::Existing(id) => Ok(id),
            Created::New { id, replacing } => {
                let due = now_ms() + self.grace_ms;
                for old in &replacing {
                    old.apply(txn, due).await?;
                }
                let at = (self.bucket.as_str(), self.key.as_str());
                txn.put_upload(at, &id, &self.record).await?;
                txn.tally(Tally::Uploads(1)).await?;
                Ok(id)
            }
        }
    }
}

/// What the upload's parts would hold with this part in place of `old`,
/// when a grant bounds it; refused past the bound. A grant's upload keeps
/// a running total; one made before it did sums its other parts.
async fn check_bound<R: Reads>(
    txn: &mut R,
    upload: &UploadRecord,
    (id, number): (&str, u32),
    size: u64,
    old: Option<&PartRecord>,
) -> Checked<Option<u64>> {
    let Some(max) = upload.max_size else {
        return Ok(None);
    };
    let others = match &upload.granted {
        // Saturating: a total can only be off if a record was, and a bound
        // check is no place to panic.
        Some(g) => g.held.saturating_sub(old.map_or(0, |p| p.size)),
        None => txn.part_bytes(id, number).await?,
    };
    let total = others + size;
    if total > max {
        return Err(S3Error::with_message(
            Code::EntityTooLarge,
            format!("This part would bring the upload to {total} bytes; its upload grant allows at most {max}."),
        )
        .detail("MaxSizeAllowed", max.to_string())
        .into());
    }
    Ok(Some(total))
}

/// Stores a part (its blob is new), replacing an earlier part of that
/// number. The upload is checked in the same change, so a part in flight
/// while the upload was aborted is refused.
pub struct PutPart {
    pub bucket: String,
    pub key: String,
    pub id: String,
    pub number: u32,
    pub part: PartRecord,
    pub grace_ms: i64,
}

/// A part as checked: the part, the one it replaces, and the upload's
/// record when its running total changes.
pub struct PartPlan {
    part: PartRecord,
    old: Option<PartRecord>,
    upload: Option<UploadRecord>,
}

impl Change for PutPart {
    type Plan = PartPlan;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<PartPlan> {
        let upload = txn.upload(&self.bucket, &self.key, &self.id).await?;
        let mut upload = upload
            .filter(|u| !u.expired(now_ms()))
            .ok_or(Code::NoSuchUpload)?;
        let old = txn.part(&self.id, self.number).await?;
        let at = (self.id.as_str(), self.number);
        let total = check_bound(txn, &upload, at, self.part.size, old.as_ref()).await?;
        let upload = match (&mut upload.granted, total) {
            (Some(granted), Some(total)) => {
                granted.held = total;
                Some(upload)
            }
            _ => None,
        };
        let mut part = self.part.clone();
        part.last_modified_ms = now_ms();
        Ok(PartPlan { part, old, upload })
    }

    async fn apply<W: Writes>(&self, plan: PartPlan, txn: &mut W) -> Done<()> {
        let PartPlan { part, old, upload } = plan;
        txn.put_part(&self.id, self.number, &part).await?;
        txn.new_refs(Counted::Blob, part.blob).await?;
        if let Some(upload) = &upload {
            let at = (self.bucket.as_str(), self.key.as_str());
            txn.put_upload(at, &self.id, upload).await?;
        }
        let mut grown = part.size as i64;
        if let Some(old) = old {
            decref_blob(txn, old.blob, part.last_modified_ms + self.grace_ms).await?;
            grown -= old.size as i64;
        }
        let bucket = &self.bucket;
        txn.tally(Tally::UploadBytes {
            bucket,
            delta: grown,
        })
        .await
    }
}

/// CompleteMultipartUpload. A Complete for an upload that no longer exists
/// succeeds again if that upload became the current object (a client
/// retrying after a lost response); otherwise the upload is unknown.
pub struct CompleteUpload {
    pub bucket: String,
    pub key: String,
    pub id: String,
    pub completion: Completion,
    pub condition: WriteCondition,
    pub grace_ms: i64,
}

pub enum Completing {
    Replay(Box<ObjectHead>),
    Complete(Box<CompletePlan>),
}

/// A completion as checked: the plan, the object it replaces, and the
/// upload it drops.
pub struct CompletePlan {
    plan: complete::Plan,
    old: Option<ObjectHead>,
    dropping: Dropping,
}

impl Change for CompleteUpload {
    type Plan = Completing;
    type Output = ObjectHead;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Completing> {
        let (bucket, key, id) = (self.bucket.as_str(), self.key.as_str(), self.id.as_str());
        let old = in_bucket(txn.head(bucket, key).await?)?;
        let now = now_ms();
        let upload = txn.upload(bucket, key, id).await?;
        let Some(upload) = upload.filter(|u| !u.expired(now)) else {
            return match old {
                Some(current) if current.upload_id.as_deref() == Some(id) => {
                    Ok(Completing::Replay(Box::new(current)))
                }
                _ => Err(Code::NoSuchUpload.into()),
            };
        };
        let stored: BTreeMap<u32, PartRecord> =
            txn.parts(id, 0, usize::MAX).await?.into_iter().collect();
        let plan = complete::plan(upload, id, &stored, &self.completion, new_id(), now)?;
        self.condition.check_at_commit(old.as_ref())?;
        let dropping = Dropping {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            id: id.to_owned(),
            drops: Drops::Completed {
                freed: plan.freed.clone(),
                bytes: plan.upload_bytes,
            },
        };
        Ok(Completing::Complete(Box::new(CompletePlan {
            plan,
            old,
            dropping,
        })))
    }

    async fn apply<W: Writes>(&self, completing: Completing, txn: &mut W) -> Done<ObjectHead> {
        let CompletePlan {
            plan,
            old,
            dropping,
        } = match completing {
            Completing::Replay(head) => return Ok(*head),
            Completing::Complete(completion) => *completion,
        };
        let due = plan.head.last_modified_ms + self.grace_ms;
        dropping.apply(txn, due).await?;
        let Body::Parts { manifest, .. } = plan.head.body else {
            return Err(Fault::new("a completion makes a manifest"));
        };
        txn.new_refs(Counted::Manifest, manifest).await?;
        let mut start = 0;
        let rows: Vec<SegmentRow> = (plan.segments.into_iter())
            .map(|segment| {
                let row = SegmentRow { start, segment };
                start += row.segment.len;
                row
            })
            .collect();
        txn.put_segments(manifest, &rows).await?;
        let at = (self.bucket.as_str(), self.key.as_str());
        replace_head(txn, at, &plan.head, old.as_ref(), None, due).await?;
        Ok(plan.head)
    }
}

pub struct AbortUpload {
    pub bucket: String,
    pub key: String,
    pub id: String,
    pub grace_ms: i64,
}

impl Change for AbortUpload {
    type Plan = Dropping;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Dropping> {
        existing(txn, &self.bucket).await?;
        let upload = (self.bucket.as_str(), self.key.as_str(), self.id.as_str());
        Ok(Dropping::read(txn, upload)
            .await?
            .ok_or(Code::NoSuchUpload)?)
    }

    async fn apply<W: Writes>(&self, dropping: Dropping, txn: &mut W) -> Done<()> {
        dropping
            .apply(txn, now_ms() + self.grace_ms)
            .await
            .map(drop)
    }
}

/// Aborts the sweep's expired uploads that are still incomplete.
pub struct AbortUploads {
    pub uploads: Vec<UploadRef>,
    pub grace_ms: i64,
}

impl Change for AbortUploads {
    type Plan = Vec<Dropping>;
    type Output = Swept;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Vec<Dropping>> {
        let mut dropping: Vec<Dropping> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for u in &self.uploads {
            if !seen.insert(u.id.as_str()) {
                continue;
            }
            let upload = (u.bucket.as_str(), u.key.as_str(), u.id.as_str());
            dropping.extend(Dropping::read(txn, upload).await?);
        }
        Ok(dropping)
    }

    async fn apply<W: Writes>(&self, dropping: Vec<Dropping>, txn: &mut W) -> Done<Swept> {
        let due = now_ms() + self.grace_ms;
        let mut swept = Swept::default();
        for upload in &dropping {
            swept.freed_bytes += upload.apply(txn, due).await?;
            swept.aborted += 1;
        }
        Ok(swept)
    }
}

/// An upload's record; `NoSuchBucket` or `NoSuchUpload`.
pub struct GetUpload {
    pub bucket: String,
    pub key: String,
    pub id: String,
}

impl Query for GetUpload {
    type Output = UploadRecord;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<UploadRecord> {
        existing(txn, &self.bucket).await?;
        let upload = txn.upload(&self.bucket, &self.key, &self.id).await?;
        Ok(upload.ok_or(Code::NoSuchUpload)?)
    }
}

/// Parts numbered above `after`, at most `max`, and whether more follow.
pub struct Parts {
    pub id: String,
    pub after: u32,
    pub max: usize,
}

impl Query for Parts {
    type Output = (Vec<(u32, PartRecord)>, bool);

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Self::Output> {
        let mut parts = txn
            .parts(&self.id, self.after, self.max.saturating_add(1))
            .await?;
        let truncated = parts.len() > self.max;
        parts.truncate(self.max);
        Ok((parts, truncated))
    }
}

/// Up to `max` incomplete uploads initiated before `cutoff_ms`, oldest
/// first, from after upload id `after`.
pub struct UploadsBefore {
    pub cutoff_ms: i64,
    pub after: Option<String>,
    pub max: usize,
}

impl Query for UploadsBefore {
    type Output = Vec<UploadRef>;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Vec<UploadRef>> {
        let before = upload_id_floor(self.cutoff_ms);
        let rows = txn
            .uploads_by_id(Scan {
                from: self
                    .after
                    .as_deref()
                    .map_or(Bound::Unbounded, Bound::Excluded),
                below: Some(&before),
                max: self.max,
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, bucket, key) in rows {
            // A grant's upload may expire before the sweep's age for it.
            let record = txn.upload(&bucket, &key, &id).await?;
            out.push(UploadRef {
                initiated_ms: upload_initiated_ms(&id),
                expires_ms: record.and_then(|u| u.granted).map(|g| g.expires_ms),
                bucket,
                key,
                id,
            });
        }
        Ok(out)
    }
}
