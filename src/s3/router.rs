//! Routing is data: method, bucket, key and the names of query parameters
//! become one [`Operation`], before any I/O. Unknown query parameters (such
//! as the SDKs' `x-id`) are ignored; known S3 sub-resources that Stowage does
//! not implement answer `NotImplemented`.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::{Code, S3Error, S3Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    GetBucketVersioning,
    GetBucketAcl,
    PutBucketAcl,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    /// A browser form upload (`POST /bucket`, multipart/form-data).
    PostObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    GetObjectAcl,
    PutObjectAcl,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    GetObjectAttributes,
    GetBucketCors,
    PutBucketCors,
    DeleteBucketCors,
    GetBucketPolicy,
    PutBucketPolicy,
    DeleteBucketPolicy,
    GetBucketLifecycle,
    PutBucketLifecycle,
    DeleteBucketLifecycle,
    GetBucketTagging,
    PutBucketTagging,
    DeleteBucketTagging,
    GetObjectTagging,
    PutObjectTagging,
    DeleteObjectTagging,
    /// `OPTIONS`: a browser asking whether a cross-origin request may be
    /// sent. Never authenticated.
    CorsPreflight,
    /// A request S3 knows but Stowage does not implement.
    NotImplemented,
}

impl Operation {
    /// What the operation does, as authorisation sees it.
    pub fn action(self) -> crate::auth::access::Action {
        use crate::auth::access::Action;
        use Operation::*;
        match self {
            CreateBucket => Action::CreateBucket,
            GetObject | HeadObject => Action::ReadObject,
            HeadBucket | ListObjects | ListObjectsV2 => Action::ListBucket,
            GetBucketLocation => Action::LocateBucket,
            ListObjectVersions | ListMultipartUploads => Action::ListMore,
            _ => Action::Other,
        }
    }
}

/// S3 sub-resources Stowage does not implement; a request naming one must
/// not fall through to a plain object or bucket operation.
const UNSUPPORTED: &[&str] = &[
    "accelerate",
    "analytics",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "logging",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policyStatus",
    "publicAccessBlock",
    "renameObject",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "session",
    "torrent",
    "website",
];

pub use crate::query::Query;

/// Splits a request path into bucket and key. In a path `+` is a literal
/// plus. `domain` enables virtual-hosted-style addressing.
pub fn split_target(
    path: &str,
    host: Option<&str>,
    domain: Option<&str>,
) -> S3Result<(Option<String>, Option<String>)> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| S3Error::new(Code::InvalidURI))?;
    let path = decoded.strip_prefix('/').unwrap_or(&decoded);
    let host_bucket = match (host, domain) {
        (Some(host), Some(domain)) if !domain.is_empty() => {
            let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            host.strip_suffix(domain)
                .and_then(|h| h.strip_suffix('.'))
                .filter(|b| !b.is_empty())
        }
        _ => None,
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(match host_bucket {
        Some(bucket) => (Some(bucket.to_owned()), non_empty(path)),
        None => match path.split_once('/') {
            Some((bucket, key)) => (non_empty(bucket), non_empty(key)),
            None => (non_empty(path), None),
        },
    })
}

/// Chooses the operation. `copy_source` says whether `x-amz-copy-source` was
/// sent.
pub fn route(
    method: &Method,
    bucket: Option<&str>,
    key: Option<&str>,
    q: &Query,
    copy_source: bool,
) -> Operation {
    use Operation::*;
    if method == Method::OPTIONS {
        return CorsPreflight;
    }
    if UNSUPPORTED.iter().any(|name| q.has(name)) {
        return NotImplemented;
    }
    let Some(_bucket) = bucket else {
        return if method == Method::GET {
            ListBuckets
        } else {
            NotImplemented
        };
    };
    match (key.is_some(), method.as_str()) {
        (false, "GET") if q.has("cors") => GetBucketCors,
        (false, "PUT") if q.has("cors") => PutBucketCors,
        (false, "DELETE") if q.has("cors") => DeleteBucketCors,
        (false, "GET") if q.has("policy") => GetBucketPolicy,
        (false, "PUT") if q.has("policy") => PutBucketPolicy,
        (false, "DELETE") if q.has("policy") => DeleteBucketPolicy,
        (true, _) if q.has("policy") => NotImplemented,
        (false, "GET") if q.has("lifecycle") => GetBucketLifecycle,
        (false, "PUT") if q.has("lifecycle") => PutBucketLifecycle,
        (false, "DELETE") if q.has("lifecycle") => DeleteBucketLifecycle,
        (_, _) if q.has("lifecycle") => NotImplemented,
        (false, "GET") if q.has("tagging") => GetBucketTagging,
        (false, "PUT") if q.has("tagging") => PutBucketTagging,
        (false, "DELETE") if q.has("tagging") => DeleteBucketTagging,
        (true, "GET") if q.has("tagging") => GetObjectTagging,
        (true, "PUT") if q.has("tagging") => PutObjectTagging,
        (true, "DELETE") if q.has("tagging") => DeleteObjectTagging,
        (false, "GET") if q.has("location") => GetBucketLocation,
        (false, "GET") if q.has("versioning") => GetBucketVersioning,
        (false, "GET") if q.has("acl") => GetBucketAcl,
        (false, "GET") if q.has("uploads") => ListMultipartUploads,
        (false, "GET") if q.has("versions") => ListObjectVersions,
        (false, "GET") if q.get("list-type") == Some("2") => ListObjectsV2,
        (false, "GET") => ListObjects,
        (false, "HEAD") => HeadBucket,
        (false, "PUT") if q.has("acl") => PutBucketAcl,
        (false, "PUT") if q.has("versioning") => NotImplemented,
        (false, "PUT") => CreateBucket,
        (false, "DELETE") => DeleteBucket,
        (false, "POST") if q.has("delete") => DeleteObjects,
        // A browser form upload: its form fields authenticate it.
        (false, "POST") => PostObject,
        (true, "GET") if q.has("uploadId") => ListParts,
        (true, "GET") if q.has("acl") => GetObjectAcl,
        (true, "GET") if q.has("attributes") => GetObjectAttributes,
        (true, "GET") => GetObject,
        (true, "HEAD") => HeadObject,
        // Either parameter makes it a part upload, so that a malformed one
        // is refused rather than taken for a PutObject.
        (true, "PUT") if q.has("partNumber") || q.has("uploadId") => {
            if copy_source {
                UploadPartCopy
            } else {
                UploadPart
            }
        }
        (true, "PUT") if q.has("acl") => PutObjectAcl,
        (true, "PUT") if copy_source => CopyObject,
        (true, "PUT") => PutObject,
        (true, "POST") if q.has("uploads") => CreateMultipartUpload,
        (true, "POST") if q.has("uploadId") => CompleteMultipartUpload,
        (true, "DELETE") if q.has("uploadId") => AbortMultipartUpload,
        (true, "DELETE") => DeleteObject,
        _ => NotImplemented,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(line: &str, copy: bool) -> Operation {
        let (method, target) = line.split_once(' ').unwrap();
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let (b, k) = split_target(path, None, None).unwrap();
        let q = Query::parse(query).unwrap();
        route(
            &method.parse().unwrap(),
            b.as_deref(),
            k.as_deref(),
            &q,
            copy,
        )
    }

    #[test]
    fn request_lines_from_the_aws_docs() {
        use Operation::*;
        assert_eq!(op("GET /", false), ListBuckets);
        assert_eq!(op("PUT /photos", false), CreateBucket);
        assert_eq!(op("GET /photos?list-type=2&prefix=a", false), ListObjectsV2);
        assert_eq!(op("GET /photos?prefix=a&marker=b", false), ListObjects);
        assert_eq!(op("GET /photos?location", false), GetBucketLocation);
        assert_eq!(op("GET /photos?policy", false), GetBucketPolicy);
        assert_eq!(op("PUT /photos?policy", false), PutBucketPolicy);
        assert_eq!(op("DELETE /photos?policy", false), DeleteBucketPolicy);
        assert_eq!(op("GET /photos/k?policy", false), NotImplemented);
        assert_eq!(op("GET /photos?tagging", false), GetBucketTagging);
        assert_eq!(op("PUT /photos/k?tagging", false), PutObjectTagging);
        assert_eq!(op("DELETE /photos/k?tagging", false), DeleteObjectTagging);
        assert_eq!(
            op("GET /photos?uploads&max-uploads=3", false),
            ListMultipartUploads
        );
        assert_eq!(op("GET /photos?versions", false), ListObjectVersions);
        assert_eq!(op("POST /photos?delete", false), DeleteObjects);
        assert_eq!(
            op("POST /photos/a.mp4?uploads", false),
            CreateMultipartUpload
        );
        assert_eq!(
            op("PUT /photos/a.mp4?partNumber=1&uploadId=x", false),
            UploadPart
        );
        assert_eq!(
            op("PUT /photos/a.mp4?partNumber=1&uploadId=x", true),
            UploadPartCopy
        );
        assert_eq!(op("PUT /photos/a.mp4?uploadId=x", false), UploadPart);
        assert_eq!(op("PUT /photos/a.mp4?partNumber=1", false), UploadPart);
        assert_eq!(
            op("GET /photos/a.mp4?uploadId=x&max-parts=2", false),
            ListParts
        );
        assert_eq!(
            op("POST /photos/a.mp4?uploadId=x", false),
            CompleteMultipartUpload
        );
        assert_eq!(
            op("DELETE /photos/a.mp4?uploadId=x", false),
            AbortMultipartUpload
        );
        assert_eq!(op("PUT /photos/a.mp4", true), CopyObject);
        assert_eq!(op("PUT /photos/a.mp4?x-id=PutObject", false), PutObject);
        assert_eq!(op("GET /photos/a.mp4?partNumber=2", false), GetObject);
        assert_eq!(
            op("DELETE /photos/a.mp4?versionId=null", false),
            DeleteObject
        );
        assert_eq!(op("GET /photos/a?attributes", false), GetObjectAttributes);
        assert_eq!(op("GET /photos?cors", false), GetBucketCors);
        assert_eq!(op("PUT /photos?cors", false), PutBucketCors);
        assert_eq!(op("DELETE /photos?cors", false), DeleteBucketCors);
        assert_eq!(op("OPTIONS /photos/a.mp4?uploadId=x", false), CorsPreflight);
        assert_eq!(op("GET /photos/a.mp4?tagging", false), GetObjectTagging);
        assert_eq!(op("PUT /photos?lifecycle", false), PutBucketLifecycle);
        assert_eq!(op("GET /photos?lifecycle", false), GetBucketLifecycle);
        assert_eq!(op("DELETE /photos?lifecycle", false), DeleteBucketLifecycle);
        assert_eq!(op("PUT /photos/k?lifecycle", false), NotImplemented);
        assert_eq!(op("DELETE /", false), NotImplemented);
        assert_eq!(op("PATCH /photos/a", false), NotImplemented);
    }

    #[test]
    fn keys_decode_once_and_keep_plus() {
        let (b, k) = split_target("/b/a%20b+c/%2E%2E/x", None, None).unwrap();
        assert_eq!(b.as_deref(), Some("b"));
        assert_eq!(k.as_deref(), Some("a b+c/../x"));
        let (_, k) = split_target("/b/dir/", None, None).unwrap();
        assert_eq!(k.as_deref(), Some("dir/"));
        assert!(split_target("/b/%FF", None, None).is_err());
    }

    #[test]
    fn virtual_hosted_style_takes_the_bucket_from_the_host() {
        let (b, k) = split_target("/k/x", Some("photos.s3.local:9000"), Some("s3.local")).unwrap();
        assert_eq!((b.as_deref(), k.as_deref()), (Some("photos"), Some("k/x")));
        let (b, k) = split_target("/photos/k", Some("s3.local:9000"), Some("s3.local")).unwrap();
        assert_eq!((b.as_deref(), k.as_deref()), (Some("photos"), Some("k")));
    }

    #[test]
    fn query_values_decode() {
        let q = Query::parse(Some("prefix=a%2Fb+c%2B&uploads")).unwrap();
        assert_eq!(q.get("prefix"), Some("a/b c+"));
        assert!(q.has("uploads"));
        assert_eq!(q.get("uploads"), Some(""));
    }
}
