//! What an object may be named and carry, for every front-end: the key's
//! length, the metadata's bounds, and the canned ACLs Stowage keeps.

use crate::error::{Code, S3Error, S3Result};
use crate::store::model::{Acl, ObjectMeta};

/// Object keys: at most 1024 bytes (S3's limit).
pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > 1024 {
        return Err(S3Error::new(Code::KeyTooLongError)
            .detail("Size", key.len().to_string())
            .detail("MaxSizeAllowed", "1024"));
    }
    Ok(())
}

/// The metadata that (lower-case name, value) pairs carry: request
/// headers, or the fields of a POST form. The first of repeated names wins.
pub fn object_meta_from<'a>(
    fields: impl Iterator<Item = (&'a str, String)>,
) -> S3Result<ObjectMeta> {
    let mut system: [(&str, Option<String>); 6] = [
        ("content-type", None),
        ("content-encoding", None),
        ("content-disposition", None),
        ("content-language", None),
        ("cache-control", None),
        ("expires", None),
    ];
    let mut user = Vec::new();
    let mut user_size = 0;
    for (name, value) in fields {
        if let Some(suffix) = name.strip_prefix("x-amz-meta-") {
            user_size += suffix.len() + value.len();
            user.push((suffix.to_owned(), value));
        } else if let Some((_, slot)) = system.iter_mut().find(|(n, _)| *n == name) {
            slot.get_or_insert(value);
        }
    }
    let [
        (_, content_type),
        (_, content_encoding),
        (_, content_disposition),
        (_, content_language),
        (_, cache_control),
        (_, expires),
    ] = system;
    if user_size > 2048 {
        return Err(Code::MetadataTooLarge.into());
    }
    user.sort();
    // aws-chunked is transfer framing, never part of the stored object.
    let content_encoding = content_encoding.and_then(|v| {
        let kept: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && *e != "aws-chunked")
            .collect();
        (!kept.is_empty()).then(|| kept.join(","))
    });
    let meta = ObjectMeta {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires,
        user,
    };
    let system = [
        &meta.content_type,
        &meta.content_encoding,
        &meta.content_disposition,
        &meta.content_language,
        &meta.cache_control,
        &meta.expires,
    ];
    let system_size: usize = system
        .iter()
        .filter_map(|v| v.as_ref())
        .map(String::len)
        .sum();
    if system_size > 8192 {
        return Err(S3Error::with_message(
            Code::MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size.",
        )
        .detail("Size", system_size.to_string())
        .detail("MaxSizeAllowed", "8192"));
    }
    Ok(meta)
}

pub fn canned_acl(value: &str) -> S3Result<Acl> {
    match value {
        "private" | "bucket-owner-full-control" | "bucket-owner-read" => Ok(Acl::Private),
        "public-read" => Ok(Acl::PublicRead),
        "authenticated-read" => Ok(Acl::AuthenticatedRead),
        "public-read-write" | "aws-exec-read" | "log-delivery-write" => {
            Err(not_supported(format!("The canned ACL {value}")))
        }
        _ => Err(S3Error::invalid_argument(
            "The canned ACL is not valid.",
            "x-amz-acl",
            value,
        )),
    }
}

pub fn not_supported(what: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(
        Code::NotImplemented,
        format!(
            "{what} is not supported: Stowage keeps only the canned ACLs private, public-read and authenticated-read (grants of READ to AllUsers or AuthenticatedUsers), never anonymous writes or grants to other accounts."
        ),
    )
}
