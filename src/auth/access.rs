//! Authorisation: which buckets a principal reaches, and how.
//!
//! - An admin key reaches every bucket.
//! - A key with a `buckets` list reaches exactly those buckets (and may
//!   create them), whoever owns them.
//! - Any other key reaches the buckets it owns, and may create any name.
//! - A read-only key never writes.
//! - Anonymous clients may only read buckets listed in `public_read_buckets`.

use super::Principal;
use crate::config::Config;
use crate::error::{Code, S3Error};
use crate::s3::router::Operation;

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

/// May `principal` perform `op` on `bucket` (`None`: the service, i.e.
/// ListBuckets)? `write` is whether the request's method can change
/// anything (everything but GET and HEAD).
pub fn decide(
    config: &Config,
    principal: &Principal,
    op: Operation,
    write: bool,
    bucket: Option<&str>,
) -> Decision {
    let key = match principal {
        Principal::Anonymous => {
            let public = bucket.is_some_and(|b| config.public_read_buckets.iter().any(|p| p == b));
            return if public && op.is_public_read() {
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
    match (&key.buckets, op) {
        (Some(list), _) if list.iter().any(|b| b == bucket) => Decision::Allow,
        (Some(_), _) => Decision::Deny,
        (None, Operation::CreateBucket) => Decision::Allow,
        (None, _) => Decision::IfOwner,
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
    use Operation::*;

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
        // Whether each operation's method writes: GET/HEAD read.
        let write = |op| !matches!(op, GetObject | ListBuckets);
        let d = |p: &Principal, op: Operation, b| decide(&config, p, op, write(op), b);
        let anon = Principal::Anonymous;
        assert_eq!(d(&anon, GetObject, Some("www")), Decision::Allow);
        assert_eq!(d(&anon, PutObject, Some("www")), Decision::Deny);
        assert_eq!(d(&anon, GetObject, Some("private")), Decision::Deny);
        assert_eq!(d(&anon, ListBuckets, None), Decision::Deny);

        let admin = key(true, false, None);
        assert_eq!(d(&admin, DeleteObject, Some("any")), Decision::Allow);

        let reader = key(true, true, None);
        assert_eq!(d(&reader, GetObject, Some("any")), Decision::Allow);
        assert_eq!(d(&reader, PutObject, Some("any")), Decision::Deny);
        assert_eq!(d(&reader, CreateBucket, Some("any")), Decision::Deny);
        // Unimplemented writes are refused before they are found unimplemented.
        let put_tagging = decide(&config, &reader, NotImplemented, true, Some("any"));
        assert_eq!(put_tagging, Decision::Deny);

        let uploader = key(false, false, Some(&["incoming"]));
        assert_eq!(d(&uploader, PutObject, Some("incoming")), Decision::Allow);
        assert_eq!(d(&uploader, CreateBucket, Some("other")), Decision::Deny);
        assert_eq!(d(&uploader, GetObject, Some("other")), Decision::Deny);

        let plain = key(false, false, None);
        assert_eq!(d(&plain, CreateBucket, Some("new")), Decision::Allow);
        assert_eq!(d(&plain, GetObject, Some("b")), Decision::IfOwner);
        assert_eq!(d(&plain, ListBuckets, None), Decision::Allow);
        assert!(lists(&plain, "b", "k") && !lists(&plain, "b", "other"));
    }
}
