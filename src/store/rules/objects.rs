//! Objects: writes under a condition, copies by reference, tags and ACLs,
//! deletes and lifecycle expiry, and the reads of a head and its body.

use bytes::Bytes;

use super::buckets::{existing, in_bucket};
use super::refs::{incref_body, remove_object, replace_head};
use crate::error::Code;
use crate::store::model::*;
use crate::store::txn::*;
use crate::time::now_ms;

/// Makes `head` the object at `key` if `condition` holds. A blob body is a
/// new blob, whose first reference this makes; an inline body brings its
/// bytes.
pub struct PutObject {
    pub bucket: String,
    pub key: String,
    pub head: ObjectHead,
    pub inline: Option<Bytes>,
    pub condition: WriteCondition,
    pub grace_ms: i64,
}

impl Change for PutObject {
    /// The new head and the one it replaces.
    type Plan = (ObjectHead, Option<ObjectHead>);
    type Output = ObjectHead;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Self::Plan> {
        let old = in_bucket(txn.head(&self.bucket, &self.key).await?)?;
        self.condition.check_at_commit(old.as_ref())?;
        let mut head = self.head.clone();
        head.last_modified_ms = now_ms();
        Ok((head, old))
    }

    async fn apply<W: Writes>(&self, (head, old): Self::Plan, txn: &mut W) -> Done<ObjectHead> {
        if let Body::Blob(seg) = &head.body {
            txn.new_refs(Counted::Blob, seg.blob).await?;
        }
        let due = head.last_modified_ms + self.grace_ms;
        let at = (self.bucket.as_str(), self.key.as_str());
        replace_head(txn, at, &head, old.as_ref(), self.inline.as_deref(), due).await?;
        Ok(head)
    }
}

/// Copies by reference: the new object shares the source's blobs or
/// manifest, and no byte is copied.
pub struct CopyObject {
    pub src: (String, String),
    pub dst: (String, String),
    pub changes: CopyChanges,
    pub conditions: SourceConditions,
    pub grace_ms: i64,
}

pub struct CopyPlan {
    copy: ObjectHead,
    inline: Option<Bytes>,
    old: Option<ObjectHead>,
}

impl Change for CopyObject {
    type Plan = CopyPlan;
    type Output = ObjectHead;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<CopyPlan> {
        let (src, dst) = (&self.src, &self.dst);
        let found = in_bucket(txn.object(&src.0, &src.1).await?)?;
        let old = in_bucket(txn.head(&dst.0, &dst.1).await?)?;
        let (mut copy, inline) = found.ok_or(Code::NoSuchKey)?;
        self.conditions.check(&copy)?;
        if copy.body == Body::Inline && inline.is_none() {
            return Err(Fault::new("inline body missing").into());
        }
        if let Some(meta) = &self.changes.meta {
            copy.meta = meta.clone();
        }
        if let Some(tags) = &self.changes.tags {
            copy.tags = tags.clone();
        }
        copy.acl = self.changes.acl;
        // A copy was not completed from any upload: a Complete retried
        // against the copy's key must not replay.
        copy.upload_id = None;
        copy.last_modified_ms = now_ms();
        Ok(CopyPlan { copy, inline, old })
    }

    async fn apply<W: Writes>(&self, plan: CopyPlan, txn: &mut W) -> Done<ObjectHead> {
        let CopyPlan { copy, inline, old } = plan;
        // Counted before the old head's references drop: a copy onto itself
        // keeps its body.
        incref_body(txn, &copy.body).await?;
        let due = copy.last_modified_ms + self.grace_ms;
        let dst = (self.dst.0.as_str(), self.dst.1.as_str());
        replace_head(txn, dst, &copy, old.as_ref(), inline.as_deref(), due).await?;
        Ok(copy)
    }
}

/// A change to an object's tags or ACL. Its Last-Modified stays: neither
/// is its content (as on S3).
#[derive(Debug, Clone)]
pub enum HeadChange {
    Tags(Tags),
    Acl(Acl),
}

pub struct UpdateHead {
    pub bucket: String,
    pub key: String,
    pub change: HeadChange,
}

impl Change for UpdateHead {
    type Plan = ObjectHead;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<ObjectHead> {
        let found = in_bucket(txn.head(&self.bucket, &self.key).await?)?;
        let mut head = found.ok_or(Code::NoSuchKey)?;
        match &self.change {
            HeadChange::Tags(tags) => head.tags = tags.clone(),
            HeadChange::Acl(acl) => head.acl = *acl,
        }
        Ok(head)
    }

    async fn apply<W: Writes>(&self, head: ObjectHead, txn: &mut W) -> Done<()> {
        txn.put_head((&self.bucket, &self.key), &head, None).await
    }
}

/// Deletes keys; missing keys are skipped.
pub struct DeleteObjects {
    pub bucket: String,
    pub keys: Vec<String>,
    pub grace_ms: i64,
}

/// The objects a delete removes, each once, as read.
pub type Removing = Vec<(String, ObjectHead)>;

impl Change for DeleteObjects {
    type Plan = Removing;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Removing> {
        existing(txn, &self.bucket).await?;
        let mut keys: Vec<&String> = self.keys.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut removing = Vec::new();
        for key in keys {
            if let Some(Some(head)) = txn.head(&self.bucket, key).await? {
                removing.push((key.clone(), head));
            }
        }
        Ok(removing)
    }

    async fn apply<W: Writes>(&self, removing: Removing, txn: &mut W) -> Done<()> {
        remove_all(txn, &self.bucket, &removing, now_ms() + self.grace_ms).await
    }
}

async fn remove_all<W: Writes>(
    txn: &mut W,
    bucket: &str,
    removing: &Removing,
    due_ms: i64,
) -> Done<()> {
    for (key, head) in removing {
        remove_object(txn, (bucket, key), head, due_ms).await?;
    }
    Ok(())
}

/// Whether the object is still as a lifecycle sweep judged it: the same
/// content (ETag and Last-Modified) and the same tags, which change without
/// changing Last-Modified and which rules filter by.
pub fn unchanged_since_judged(current: &ObjectHead, judged: &Expired) -> bool {
    current.etag == judged.etag
        && current.last_modified_ms == judged.last_modified_ms
        && current.tags == judged.tags
}

/// Deletes each object still as the sweep saw it; returns how many went.
pub struct ExpireObjects {
    pub bucket: String,
    pub objects: Vec<Expired>,
    pub grace_ms: i64,
}

impl Change for ExpireObjects {
    type Plan = Removing;
    type Output = u64;

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Removing> {
        let mut removing: Removing = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for judged in &self.objects {
            if !seen.insert(judged.key.as_str()) {
                continue;
            }
            if let Some(Some(head)) = txn.head(&self.bucket, &judged.key).await?
                && unchanged_since_judged(&head, judged)
            {
                removing.push((judged.key.clone(), head));
            }
        }
        Ok(removing)
    }

    async fn apply<W: Writes>(&self, removing: Removing, txn: &mut W) -> Done<u64> {
        remove_all(txn, &self.bucket, &removing, now_ms() + self.grace_ms).await?;
        Ok(removing.len() as u64)
    }
}

/// An object's head; `NoSuchBucket` or `NoSuchKey`.
pub struct HeadObject {
    pub bucket: String,
    pub key: String,
}

impl Query for HeadObject {
    type Output = ObjectHead;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<ObjectHead> {
        let found = in_bucket(txn.head(&self.bucket, &self.key).await?)?;
        Ok(found.ok_or(Code::NoSuchKey)?)
    }
}

/// An object's head and, for an inline object, its bytes.
pub struct ReadObject {
    pub bucket: String,
    pub key: String,
}

impl Query for ReadObject {
    type Output = (ObjectHead, Option<Bytes>);

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Self::Output> {
        let found = in_bucket(txn.object(&self.bucket, &self.key).await?)?;
        let (head, inline) = found.ok_or(Code::NoSuchKey)?;
        if head.body == Body::Inline && inline.is_none() {
            return Err(Fault::new("inline body missing").into());
        }
        Ok((head, inline))
    }
}

/// Up to `max` segments of a manifest from index `first`, each with the
/// object offset it starts at.
pub struct Segments {
    pub manifest: u128,
    pub first: u32,
    pub max: u32,
}

impl Query for Segments {
    type Output = Vec<(u64, Segment)>;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Self::Output> {
        let rows = txn
            .segments(self.manifest, self.first, self.max as usize)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(_, r)| (r.start, r.segment))
            .collect())
    }
}

/// The index of the segment holding byte `offset`.
pub struct SegmentAt {
    pub manifest: u128,
    pub count: u32,
    pub offset: u64,
}

impl Query for SegmentAt {
    type Output = u32;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<u32> {
        Ok(txn
            .segment_at(self.manifest, self.count, self.offset)
            .await?)
    }
}
