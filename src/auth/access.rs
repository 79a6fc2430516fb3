//! Authorisation: which buckets a principal reaches, and how.
//!
//! - An admin key reaches every bucket.
//! - A key with a `buckets` list reaches exactly those buckets (and may
//!   create them), whoever owns them.
//! - Any other key reaches the buckets it owns, and may create any name.
//! - A read-only key never writes.
//! - Anonymous clients may only read buckets listed in `public_read_buckets`.
//! - Reads the principal may not make on its own may be granted by a
//!   bucket's or object's ACL, or by the bucket's policy.
//!
//! Every front-end asks [`authorize`], naming what it is about to do as an
//! [`Action`].

use super::Principal;
use crate::config::Config;
use crate::error::{Code, S3Error, S3Result};
use crate::store::Store;
use crate::store::model::{Acl, BucketRecord};

/// What a request does, as authorisation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Any key may create a bucket name it does not reach yet.
    CreateBucket,
    /// GetObject, HeadObject: public buckets, the bucket's policy and the
    /// object's ACL grant it.
    ReadObject,
    /// HeadBucket, ListObjects(V2): public buckets and the bucket's ACL
    /// grant it.
    ListBucket,
    /// GetBucketLocation: public buckets grant it.
    LocateBucket,
    /// ListObjectVersions, ListMultipartUploads: the bucket's ACL grants it.
    ListMore,
    /// Everything else: what the key reaches decides alone.
    Other,
}

impl Action {
    /// Whether anonymous clients may do it on a `public_read_buckets` bucket.
    fn public_read(self) -> bool {
        matches!(
            self,
            Action::ReadObject | Action::ListBucket | Action::LocateBucket
        )
    }

    /// Whether an ACL or policy can grant it: `Some(true)` a read of one
    /// object, `Some(false)` a listing.
    fn grantable(self) -> Option<bool> {
        match self {
            Action::ReadObject => Some(true),
            Action::ListBucket | Action::ListMore => Some(false),
            _ => None,
        }
    }
}

/// The answer for one bucket, before its owner is known.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Allowed if the key owns the bucket (or the bucket does not exist,
    /// which the operation itself reports).
    IfOwner,
}

pub fn denied() -> S3Error {
    S3Error::new(Code::AccessDenied)
}

/// May `principal` do `action` on `bucket` (`None`: the service, i.e.
/// ListBuckets)? `write` is whether the request's method can change
/// anything (everything but GET and HEAD).
pub fn decide(
    config: &Config,
    principal: &Principal,
    action: Action,
    write: bool,
    bucket: Option<&str>,
) -> Decision {
    let key = match principal {
        Principal::Anonymous => {
            let public = bucket.is_some_and(|b| config.public_read_buckets.iter().any(|p| p == b));
            return if public && action.public_read() {
                Decision::Allow
            } else {
                Decision::Deny
            };
        }
        Principal::Key(key) => key,
    };
    if key.read_only && write {
        return Decision::Deny;
    }
    let Some(bucket) = bucket else {
        return Decision::Allow; // ListBuckets filters by reach itself
    };
    if key.admin {
        return Decision::Allow;
    }
    match (&key.buckets, action) {
        (Some(list), _) if list.iter().any(|b| b == bucket) => Decision::Allow,
        (Some(_), _) => Decision::Deny,
        (None, Action::CreateBucket) => Decision::Allow,
        (None, _) => Decision::IfOwner,
    }
}

/// Authorises `action` on `(bucket, key)` for `principal`, before any of
/// the request's body is read: what the key reaches, else what an ACL or
/// policy grants; `AccessDenied` otherwise.
pub async fn authorize(
    (config, store): (&Config, &Store),
    principal: &Principal,
    action: Action,
    write: bool,
    (bucket, key): (Option<&str>, Option<&str>),
) -> S3Result<()> {
    let allowed = match decide(config, principal, action, write, bucket) {
        Decision::Allow => true,
        Decision::Deny => false,
        Decision::IfOwner => match store.meta.bucket(bucket.unwrap_or_default()).await {
            Ok(record) => record.owner == principal.name(),
            Err(e) if e.code == Code::NoSuchBucket => true,
            Err(e) => return Err(e),
        },
    };
    let granted = || async {
        match bucket {
            Some(bucket) if !write => {
                read_granted((config, store), principal, action, bucket, key).await
            }
            _ => Ok(false),
        }
    };
    if allowed || granted().await? {
        Ok(())
    } else {
        Err(denied())
    }
}

/// A bucket's access as it is in force: its stored ACL and policy, unless
/// `public_read_buckets` makes it public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketAccess {
    pub acl: Acl,
    pub public_objects: bool,
    /// Named in `public_read_buckets`: public whatever is stored.
    pub by_config: bool,
}

impl BucketAccess {
    pub fn of(config: &Config, name: &str, record: &BucketRecord) -> Self {
        if config.public_read_buckets.iter().any(|b| b == name) {
            return BucketAccess {
                acl: Acl::PublicRead,
                public_objects: true,
                by_config: true,
            };
        }
        BucketAccess {
            acl: record.acl,
            public_objects: record.public_objects,
            by_config: false,
        }
    }
}

/// Whether the bucket's or object's ACL, or the bucket's policy, lets
/// `principal` (not the owner, not otherwise allowed) do the read
/// `action`. A missing object is reported to whoever may list the bucket.
async fn read_granted(
    (config, store): (&Config, &Store),
    principal: &Principal,
    action: Action,
    bucket: &str,
    key: Option<&str>,
) -> S3Result<bool> {
    let Some(object) = action.grantable() else {
        return Ok(false);
    };
    let record = match store.meta.bucket(bucket).await {
        Ok(record) => record,
        Err(e) if e.code == Code::NoSuchBucket => return Ok(false),
        Err(e) => return Err(e),
    };
    let access = BucketAccess::of(config, bucket, &record);
    let signed = matches!(principal, Principal::Key(_));
    let may_list = access.acl.grants_read(signed);
    let Some(key) = key.filter(|_| object) else {
        return Ok(may_list && !object);
    };
    match store.meta.head_object(bucket, key).await {
        Ok(head) => Ok(access.public_objects || head.acl.grants_read(signed)),
        Err(e) if e.code == Code::NoSuchKey => Ok(may_list),
        Err(e) => Err(e),
    }
}

/// Whether a key sees `bucket`, owned by `owner`, in ListBuckets.
pub fn lists(principal: &Principal, bucket: &str, owner: &str) -> bool {
    match principal {
        Principal::Anonymous => false,
        Principal::Key(key) if key.admin => true,
        Principal::Key(key) => match &key.buckets {
            Some(list) => list.iter().any(|b| b == bucket),
            None => owner == key.access_key_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credential;
    use Action::*;

    fn key(admin: bool, read_only: bool, buckets: Option<&[&str]>) -> Principal {
        Principal::Key(Credential {
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            admin,
            read_only,
            buckets: buckets.map(|l| l.iter().map(|b| b.to_string()).collect()),
        })
    }

    #[test]
    fn each_kind_of_principal_reaches_what_it_should() {
        let config = Config {
            public_read_buckets: vec!["www".into()],
            ..Config::default()
        };
        // A GetObject reads; a PutObject (`Other`, written) writes.
        let get = |p: &Principal, b| decide(&config, p, ReadObject, false, b);
        let put = |p: &Principal, b| decide(&config, p, Other, true, b);
        let list_buckets = |p: &Principal| decide(&config, p, Other, false, None);
        let create = |p: &Principal, b| decide(&config, p, CreateBucket, true, b);
        let anon = Principal::Anonymous;
        assert_eq!(get(&anon, Some("www")), Decision::Allow);
        assert_eq!(put(&anon, Some("www")), Decision::Deny);
        assert_eq!(get(&anon, Some("private")), Decision::Deny);
        assert_eq!(list_buckets(&anon), Decision::Deny);

        let admin = key(true, false, None);
        assert_eq!(put(&admin, Some("any")), Decision::Allow);

        let reader = key(true, true, None);
        assert_eq!(get(&reader, Some("any")), Decision::Allow);
        assert_eq!(put(&reader, Some("any")), Decision::Deny);
        assert_eq!(create(&reader, Some("any")), Decision::Deny);

        let uploader = key(false, false, Some(&["incoming"]));
        assert_eq!(put(&uploader, Some("incoming")), Decision::Allow);
        assert_eq!(create(&uploader, Some("other")), Decision::Deny);
        assert_eq!(get(&uploader, Some("other")), Decision::Deny);

        let plain = key(false, false, None);
        assert_eq!(create(&plain, Some("new")), Decision::Allow);
        assert_eq!(get(&plain, Some("b")), Decision::IfOwner);
        assert_eq!(list_buckets(&plain), Decision::Allow);
        assert!(lists(&plain, "b", "k") && !lists(&plain, "b", "other"));
    }
}
