//! The sweep: aborts incomplete uploads and deletes objects whose time has
//! come, under each bucket's lifecycle rules and the server's default age
//! for uploads no rule covers. It decides here, over the metadata
//! interface, so every engine sweeps alike; each change is a bounded batch,
//! and an object is deleted only if it is still the one the sweep judged
//! (an overwrite in between wins). Freed bodies take the normal garbage
//! path.

use std::collections::HashMap;

use super::Store;
use super::model::{Expired, ListQuery, UploadRef};
use crate::error::{Code, S3Result};
use crate::lifecycle::{self, LifecycleRule};

/// Rows read, and changes made, per metadata call.
const BATCH: usize = 500;

#[derive(Debug, Clone, Copy)]
pub struct SweepPolicy {
    /// Age at which an upload no rule covers is aborted.
    pub default_upload_age_ms: i64,
    /// The least time an upload made under a grant lives: it expires at
    /// its grant's expiry (after its creation) plus this window.
    pub grant_resume_ms: i64,
    /// A lifecycle day: 86,400,000 ms but in tests.
    pub day_ms: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub aborted_uploads: u64,
    pub freed_upload_bytes: u64,
    pub expired_objects: u64,
}

impl Store {
    /// One sweep at `now_ms`.
    pub async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> S3Result<SweepReport> {
        let rules: HashMap<String, Vec<LifecycleRule>> =
            self.meta.lifecycles().await?.into_iter().collect();
        let mut report = SweepReport::default();
        self.sweep_uploads(now_ms, policy, &rules, &mut report)
            .await?;
        for (bucket, rules) in &rules {
            for prefix in lifecycle::expiring_prefixes(rules) {
                match self
                    .expire_objects(bucket, &prefix, rules, now_ms, policy.day_ms)
                    .await
                {
                    Ok(n) => report.expired_objects += n,
                    // Deleted since the rules were read.
                    Err(e) if e.code == Code::NoSuchBucket => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }

    async fn sweep_uploads(
        &self,
        now_ms: i64,
        policy: SweepPolicy,
        rules: &HashMap<String, Vec<LifecycleRule>>,
        report: &mut SweepReport,
    ) -> S3Result<()> {
        // No upload younger than the shortest age anything gives it is due.
        let shortest = rules
            .values()
            .filter_map(|r| lifecycle::shortest_abort_age(r, policy.day_ms))
            .fold(policy.default_upload_age_ms, i64::min)
            .min(policy.grant_resume_ms);
        let cutoff = now_ms.saturating_sub(shortest);
        let mut after = None;
        loop {
            let page = self.meta.uploads_before(cutoff, after, BATCH).await?;
            let full = page.len() == BATCH;
            after = page.last().map(|u| u.id.clone());
            let due: Vec<UploadRef> = page
                .into_iter()
                .filter(|u| {
                    let by_rule = rules.get(&u.bucket).and_then(|r| {
                        lifecycle::upload_expiry(r, &u.key, u.initiated_ms, policy.day_ms)
                    });
                    let at = by_rule.map_or(
                        u.initiated_ms.saturating_add(policy.default_upload_age_ms),
                        |(at, _)| at,
                    );
                    at.min(u.expires_ms.unwrap_or(i64::MAX)) <= now_ms
                })
                .collect();
            if !due.is_empty() {
                let swept = self.meta.abort_uploads(due).await?;
                report.aborted_uploads += swept.aborted;
                report.freed_upload_bytes += swept.freed_bytes;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Deletes the objects under `prefix` that `rules` have expired.
    async fn expire_objects(
        &self,
        bucket: &str,
        prefix: &str,
        rules: &[LifecycleRule],
        now_ms: i64,
        day_ms: i64,
    ) -> S3Result<u64> {
        let mut gone = 0;
        let mut after = None;
        loop {
            let query = ListQuery {
                prefix: prefix.to_owned(),
                delimiter: None,
                after,
                max: BATCH,
            };
            let page = self.meta.list_objects(bucket, query).await?;
            let due: Vec<Expired> = page
                .objects
                .iter()
                .filter(|(key, head)| {
                    lifecycle::object_expiry(
                        rules,
                        (key, &head.tags, head.size),
                        head.last_modified_ms,
                        day_ms,
                    )
                    .is_some_and(|(at, _)| at <= now_ms)
                })
                .map(|(key, head)| Expired {
                    key: key.clone(),
                    etag: head.etag.clone(),
                    last_modified_ms: head.last_modified_ms,
                    tags: head.tags.clone(),
                })
                .collect();
            if !due.is_empty() {
                gone += self.meta.expire_objects(bucket, due).await?;
            }
            if !page.truncated {
                return Ok(gone);
            }
            after = page
                .last
                .or_else(|| page.objects.last().map(|(k, _)| k.clone()));
        }
    }
}
