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
            // Two values under one name (names are case-insensitive) would
            // let a check see one and the object keep the other.
            if user
                .iter()
                .any(|(n, _): &(String, String)| n.eq_ignore_ascii_case(suffix))
            {
                return Err(S3Error::with_message(
                    Code::InvalidArgument,
                    format!("The metadata name {name} is given more than once."),
                )
                .detail("ArgumentName", name));
            }
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
    // aws-chunked is transfer framing, never part of the stored object; the
    // rest of the list is kept as sent (`aws-chunked, deflate, gzip` is
    // stored as `deflate, gzip`).
    let content_encoding = content_encoding.and_then(|v| {
        let kept: Vec<&str> = v
            .split(',')
            .filter(|e| !e.trim().is_empty() && e.trim() != "aws-chunked")
            .collect();
        let kept = kept.join(",");
        let kept = kept.trim();
        (!kept.is_empty()).then(|| kept.to_owned())
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
    goes_back_out(&meta)?;
    Ok(meta)
}

/// Refuses metadata that could not be sent back as the headers of a GET: a
/// system value that is not a valid header value (a control character or
/// DEL), or a user metadata name that is not a header name. Stored,
/// such a value would be served without its header (a Content-Type lost is
/// a page a browser sniffs). User metadata values always go back out: those
/// that are not printable ASCII are sent RFC 2047-encoded.
fn goes_back_out(meta: &ObjectMeta) -> S3Result<()> {
    let system = [
        ("Content-Type", &meta.content_type),
        ("Content-Encoding", &meta.content_encoding),
        ("Content-Disposition", &meta.content_disposition),
        ("Content-Language", &meta.content_language),
        ("Cache-Control", &meta.cache_control),
        ("Expires", &meta.expires),
    ];
    for (name, value) in system {
        if let Some(value) = value
            && http::HeaderValue::from_str(value).is_err()
        {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                format!("The {name} value is not a valid HTTP header value (control characters and DEL are refused)."),
            )
            .detail("ArgumentName", name));
        }
    }
    for (name, _) in &meta.user {
        let header = format!("x-amz-meta-{name}");
        if name.is_empty() || http::HeaderName::try_from(header.as_str()).is_err() {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                "A user metadata name is not a valid HTTP header name.",
            )
            .detail("ArgumentName", header));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&'static str, &str)]) -> S3Result<ObjectMeta> {
        object_meta_from(pairs.iter().map(|(n, v)| (*n, v.to_string())))
    }

    #[test]
    fn metadata_that_cannot_go_back_out_as_a_header_is_refused() {
        for bad in ["video/mp4\u{1}", "video/mp4\u{7f}", "text/html\r\nx: y"] {
            let e = meta(&[("content-type", bad)]).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{bad:?}");
        }
        for name in ["content-disposition", "cache-control", "content-encoding"] {
            assert!(meta(&[(name, "a\u{0}b")]).is_err(), "{name}");
        }
        assert!(meta(&[("x-amz-meta-bad name", "v")]).is_err());
        assert!(meta(&[("x-amz-meta-", "v")]).is_err());
        // One name twice, in any case: refused, never one checked and the
        // other kept.
        let twice = meta(&[("x-amz-meta-owner", "user7"), ("x-amz-meta-owner", "admin")]);
        assert_eq!(twice.unwrap_err().code, Code::InvalidArgument);
        assert!(meta(&[("x-amz-meta-OWNER", "a"), ("x-amz-meta-owner", "b")]).is_err());
        // What goes back out is kept: printable values, and user values of
        // any kind (sent back RFC 2047-encoded).
        let ok = meta(&[
            ("content-type", "video/mp4"),
            ("content-disposition", "attachment; filename=\"a b.mp4\""),
            ("x-amz-meta-note", "café\u{1}"),
        ])
        .unwrap();
        assert_eq!(ok.content_type.as_deref(), Some("video/mp4"));
        assert_eq!(ok.user, vec![("note".to_owned(), "café\u{1}".to_owned())]);
    }

    #[test]
    fn aws_chunked_leaves_the_rest_of_the_encodings_as_sent() {
        let encoding = |sent: &str| {
            meta(&[("content-encoding", sent)])
                .unwrap()
                .content_encoding
        };
        assert_eq!(
            encoding("aws-chunked, deflate, gzip").as_deref(),
            Some("deflate, gzip")
        );
        assert_eq!(encoding("gzip,aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(encoding("deflate,gzip").as_deref(), Some("deflate,gzip"));
        assert_eq!(encoding("aws-chunked"), None);
    }
}
