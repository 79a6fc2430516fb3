//! Buckets and their configurations.

use super::refs::Dropping;
use crate::error::Code;
use crate::store::model::*;
use crate::store::txn::*;
use crate::time::now_ms;

/// Reads a bucket, refusing when it does not exist.
pub async fn existing<R: Reads>(txn: &mut R, name: &str) -> Checked<BucketRecord> {
    Ok(txn.bucket(name).await?.ok_or(Code::NoSuchBucket)?)
}

/// A lookup under a bucket: `None` (no bucket) becomes `NoSuchBucket`.
pub fn in_bucket<T>(found: Option<Option<T>>) -> Checked<Option<T>> {
    Ok(found.ok_or(Code::NoSuchBucket)?)
}

pub struct CreateBucket {
    pub name: String,
    pub owner: String,
    pub acl: Acl,
}

impl Change for CreateBucket {
    type Plan = BucketRecord;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<BucketRecord> {
        if let Some(existing) = txn.bucket(&self.name).await? {
            return Err(if existing.owner == self.owner {
                Code::BucketAlreadyOwnedByYou.into()
            } else {
                Code::BucketAlreadyExists.into()
            });
        }
        Ok(BucketRecord {
            created_ms: now_ms(),
            owner: self.owner.clone(),
            acl: self.acl,
            public_objects: false,
        })
    }

    async fn apply<W: Writes>(&self, record: BucketRecord, txn: &mut W) -> Done<()> {
        txn.put_bucket(&self.name, &record).await
    }
}

/// A change to a bucket's own record.
#[derive(Debug, Clone, Copy)]
pub enum BucketChange {
    Acl(Acl),
    Policy { public_objects: bool },
}

pub struct UpdateBucket {
    pub name: String,
    pub change: BucketChange,
}

impl Change for UpdateBucket {
    type Plan = BucketRecord;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<BucketRecord> {
        let mut record = existing(txn, &self.name).await?;
        match self.change {
            BucketChange::Acl(acl) => record.acl = acl,
            BucketChange::Policy { public_objects } => record.public_objects = public_objects,
        }
        Ok(record)
    }

    async fn apply<W: Writes>(&self, record: BucketRecord, txn: &mut W) -> Done<()> {
        txn.put_bucket(&self.name, &record).await
    }
}

/// Deletes an empty bucket. Incomplete multipart uploads do not keep a
/// bucket alive: they are aborted with it and their parts freed.
pub struct DeleteBucket {
    pub name: String,
    pub grace_ms: i64,
}

impl Change for DeleteBucket {
    type Plan = Vec<Dropping>;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Vec<Dropping>> {
        let name = self.name.as_str();
        existing(txn, name).await?;
        if !txn.heads(name, Scan::first(1)).await?.is_empty() {
            return Err(Code::BucketNotEmpty.into());
        }
        let uploads = txn.uploads(name, Scan::first(usize::MAX)).await?;
        let mut dropping = Vec::with_capacity(uploads.len());
        for (key, id, _) in uploads {
            dropping.extend(Dropping::read(txn, (name, &key, &id)).await?);
        }
        Ok(dropping)
    }

    async fn apply<W: Writes>(&self, dropping: Vec<Dropping>, txn: &mut W) -> Done<()> {
        let due = now_ms() + self.grace_ms;
        for upload in &dropping {
            upload.apply(txn, due).await?;
        }
        txn.remove_bucket(&self.name).await
    }
}

/// Sets (`Some`) or deletes (`None`) one of a bucket's configurations,
/// encoded.
pub struct SetConfig {
    pub name: String,
    pub of: Config,
    pub value: Option<Vec<u8>>,
}

impl Change for SetConfig {
    type Plan = ();
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<()> {
        existing(txn, &self.name).await.map(drop)
    }

    async fn apply<W: Writes>(&self, (): (), txn: &mut W) -> Done<()> {
        txn.set_config(&self.name, self.of, self.value.as_deref())
            .await
    }
}

pub struct GetBucket(pub String);

impl Query for GetBucket {
    type Output = BucketRecord;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<BucketRecord> {
        existing(txn, &self.0).await
    }
}

pub struct ListBuckets;

impl Query for ListBuckets {
    type Output = Vec<(String, BucketRecord)>;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Self::Output> {
        Ok(txn.buckets().await?)
    }
}

/// One configuration of a bucket, encoded; `NoSuchBucket` if absent.
pub struct GetConfig {
    pub name: String,
    pub of: Config,
}

impl Query for GetConfig {
    type Output = Option<Vec<u8>>;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Self::Output> {
        in_bucket(txn.config(&self.name, self.of).await?)
    }
}

/// Every bucket's configuration of one kind.
pub struct AllConfigs(pub Config);

impl Query for AllConfigs {
    type Output = Vec<(String, Vec<u8>)>;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Self::Output> {
        Ok(txn.configs(self.0).await?)
    }
}
