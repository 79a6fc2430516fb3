//! Upload grants: one signed permission for every browser protocol.
//!
//! A grant is what any SDK's `generate_presigned_post` returns as
//! `fields` (the POST policy, its SigV4 signature and credential, the
//! `key`), sent base64-encoded JSON in the `X-Stowage-Grant` header. The
//! app's backend mints it offline with its Stowage key; the policy fixes
//! the bucket, the key or key prefix, the size range and content types, and
//! the expiry. Every front-end that takes a grant checks it on every
//! request and holds uploads to its size while bytes stream. A grant signed
//! by a key that is gone or read-only stops working.

use base64::Engine as _;
use http::HeaderMap;
use serde_json::Value;

use crate::auth::post_policy::{self, PostPolicy, policy_denied};
use crate::config::{Config, Credential};
use crate::error::{Code, S3Error, S3Result};

pub const HEADER: &str = "x-stowage-grant";

#[derive(Debug, Clone)]
pub struct Grant {
    pub credential: Credential,
    pub policy: PostPolicy,
    pub bucket: String,
    /// The grant's fields, names lower-cased: the key (template), the
    /// signature fields and whatever else the backend bound.
    fields: Vec<(String, String)>,
}

fn denied(message: impl Into<String>) -> S3Error {
    S3Error::with_message(Code::AccessDenied, message)
}

impl Grant {
    /// The grant a request carries, verified: signature, known key, expiry
    /// and a bucket.
    pub fn from_headers(config: &Config, headers: &HeaderMap, now_ms: i64) -> S3Result<Grant> {
        let raw = headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                denied("This route needs an upload grant in the X-Stowage-Grant header: the base64 JSON of the fields generate_presigned_post returns.")
            })?;
        Grant::parse(config, raw, now_ms)
    }

    pub fn parse(config: &Config, raw: &str, now_ms: i64) -> S3Result<Grant> {
        let malformed = || {
            S3Error::with_message(
                Code::InvalidArgument,
                "X-Stowage-Grant must be base64 of a JSON object of string fields (what generate_presigned_post returns as fields).",
            )
            .detail("ArgumentName", "X-Stowage-Grant")
        };
        let raw = raw.trim();
        let json = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
            })
            .map_err(|_| malformed())?;
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&json) else {
            return Err(malformed());
        };
        let mut fields = Vec::with_capacity(map.len());
        for (name, value) in map {
            let Value::String(value) = value else {
                return Err(malformed());
            };
            fields.push((name.to_ascii_lowercase(), value));
        }
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let policy_b64 = field("policy").ok_or_else(malformed)?;
        let credential = post_policy::verify(config, field, &policy_b64)?;
        let policy = PostPolicy::decode(&policy_b64)?;
        if now_ms >= policy.expiration_ms {
            return Err(policy_denied("Policy expired."));
        }
        if !policy.names("key") {
            return Err(S3Error::with_message(
                Code::InvalidPolicyDocument,
                "An upload grant's policy must bind the key ({\"key\": ...} or [\"starts-with\", \"$key\", prefix]).",
            ));
        }
        let bucket = policy
            .fixed("bucket")
            .ok_or_else(|| {
                S3Error::with_message(
                    Code::InvalidPolicyDocument,
                    "An upload grant's policy must fix its bucket ({\"bucket\": \"name\"}).",
                )
            })?
            .to_owned();
        Ok(Grant {
            credential,
            policy,
            bucket,
            fields,
        })
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Identifies the grant (its signature), to scope idempotency tokens.
    pub fn id(&self) -> &str {
        self.field("x-amz-signature").unwrap_or_default()
    }

    /// The key an upload of `filename` gets: the grant's `key` with
    /// `${filename}` replaced by the file name's last component.
    pub fn key_for(&self, filename: &str) -> S3Result<String> {
        let template = self.field("key").ok_or_else(|| {
            S3Error::with_message(
                Code::InvalidArgument,
                "The upload grant has no key field (generate_presigned_post's Key, e.g. \"uploads/${filename}\").",
            )
        })?;
        let filename = filename.rsplit(['/', '\\']).next().unwrap_or_default();
        if template.contains("${filename}") && filename.is_empty() {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                "A filename is required: the grant's key is made from it.",
            ));
        }
        Ok(template.replace("${filename}", filename))
    }

    /// The most an upload under this grant may hold.
    pub fn max_size(&self) -> Option<u64> {
        self.policy.length_range().map(|(_, max)| max)
    }

    /// Checks only the grant's conditions on the bucket and key: for routes
    /// on an upload whose type and metadata were checked at its creation.
    pub fn allows_key(&self, key: &str) -> S3Result<()> {
        use crate::auth::post_policy::Condition;
        let on_key = |c: &&Condition| match c {
            Condition::Eq(f, _) | Condition::StartsWith(f, _) => f == "key" || f == "bucket",
            Condition::LengthRange(..) => false,
        };
        let policy = PostPolicy {
            expiration_ms: self.policy.expiration_ms,
            conditions: self
                .policy
                .conditions
                .iter()
                .filter(on_key)
                .cloned()
                .collect(),
        };
        let fields = [
            ("bucket".to_owned(), self.bucket.clone()),
            ("key".to_owned(), key.to_owned()),
        ];
        policy.check_conditions(&fields)
    }

    /// The canned ACL the grant's policy fixes, if any. Only the policy is
    /// signed: the grant's other fields are the page's to change.
    pub fn acl(&self) -> Option<&str> {
        self.policy.fixed("acl")
    }

    /// Checks that the grant allows an object at `key` with this content
    /// type and metadata (lower-case `x-amz-meta-*` names): the conditions
    /// on what a route stores (bucket, key, type, metadata) and on the
    /// signature fields, which [`Grant::parse`] verified. Only the policy
    /// is signed, so no other field of the grant is taken as given.
    pub fn allows(
        &self,
        key: &str,
        content_type: Option<&str>,
        meta: &[(String, String)],
    ) -> S3Result<()> {
        const SIGNED: [&str; 3] = ["x-amz-algorithm", "x-amz-credential", "x-amz-date"];
        use crate::auth::post_policy::Condition;
        let binds = |c: &&Condition| match c {
            Condition::Eq(f, _) | Condition::StartsWith(f, _) => {
                matches!(f.as_str(), "bucket" | "key" | "content-type")
                    || f.starts_with("x-amz-meta-")
                    || SIGNED.contains(&f.as_str())
            }
            Condition::LengthRange(..) => false,
        };
        let policy = PostPolicy {
            expiration_ms: self.policy.expiration_ms,
            conditions: self
                .policy
                .conditions
                .iter()
                .filter(binds)
                .cloned()
                .collect(),
        };
        let mut fields: Vec<(String, String)> = self
            .fields
            .iter()
            .filter(|(n, _)| SIGNED.contains(&n.as_str()))
            .cloned()
            .collect();
        fields.push(("bucket".into(), self.bucket.clone()));
        fields.push(("key".into(), key.to_owned()));
        if let Some(t) = content_type.filter(|t| !t.is_empty()) {
            fields.push(("content-type".into(), t.to_owned()));
        }
        fields.extend(meta.iter().cloned());
        policy.check_conditions(&fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sigv4::SigningKey;

    fn mint(config: &Config, conditions: Value, key: &str, expires_in_ms: i64) -> String {
        let now = crate::time::now_ms();
        let date = crate::time::amz_date(now);
        let credential = format!("stowage/{}/us-east-1/s3/aws4_request", &date[..8]);
        let policy = serde_json::json!({
            "expiration": crate::time::iso8601(now + expires_in_ms),
            "conditions": conditions,
        });
        let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
        let secret = config.credential("stowage").unwrap().secret_access_key;
        let signature = SigningKey::derive(&secret, &date[..8], "us-east-1", "s3").sign(&policy);
        let fields = serde_json::json!({
            "key": key, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential,
            "x-amz-date": date, "policy": policy, "x-amz-signature": signature,
        });
        base64::engine::general_purpose::STANDARD.encode(fields.to_string())
    }

    #[test]
    fn a_grant_binds_bucket_key_type_and_size() {
        let config = Config::default();
        let now = crate::time::now_ms();
        let conditions = serde_json::json!([
            {"bucket": "media"}, ["starts-with", "$key", "u/7/"],
            ["starts-with", "$Content-Type", "video/"], ["content-length-range", 1, 1000]
        ]);
        let token = mint(&config, conditions.clone(), "u/7/${filename}", 60_000);
        let grant = Grant::parse(&config, &token, now).unwrap();
        assert_eq!(grant.bucket, "media");
        assert_eq!(grant.max_size(), Some(1000));
        let key = grant.key_for("C:\\clips\\cut.mp4").unwrap();
        assert_eq!(key, "u/7/cut.mp4");
        grant.allows(&key, Some("video/mp4"), &[]).unwrap();
        let e = grant.allows(&key, Some("text/html"), &[]).unwrap_err();
        assert!(e.message.contains("$content-type"), "{}", e.message);
        assert!(grant.allows("u/8/cut.mp4", Some("video/mp4"), &[]).is_err());

        // Expired, tampered and unsigned grants are refused.
        // Expired a minute before `now` was read, whatever the clock did since.
        let expired = mint(&config, conditions.clone(), "u/7/${filename}", -60_000);
        assert!(
            Grant::parse(&config, &expired, now)
                .unwrap_err()
                .message
                .contains("expired")
        );
        let mut fields: serde_json::Map<String, Value> = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(&token)
                .unwrap(),
        )
        .unwrap();
        fields.insert("x-amz-signature".into(), "0".repeat(64).into());
        let forged =
            base64::engine::general_purpose::STANDARD.encode(Value::Object(fields).to_string());
        assert_eq!(
            Grant::parse(&config, &forged, now).unwrap_err().code,
            Code::SignatureDoesNotMatch
        );
        assert_eq!(
            Grant::parse(&config, "!!", now).unwrap_err().code,
            Code::InvalidArgument
        );
        // A grant must name its bucket, and bind its key.
        let loose = mint(
            &config,
            serde_json::json!([["starts-with", "$key", ""]]),
            "k",
            60_000,
        );
        assert_eq!(
            Grant::parse(&config, &loose, now).unwrap_err().code,
            Code::InvalidPolicyDocument
        );
        let any_key = mint(
            &config,
            serde_json::json!([{"bucket": "media"}]),
            "k",
            60_000,
        );
        assert_eq!(
            Grant::parse(&config, &any_key, now).unwrap_err().code,
            Code::InvalidPolicyDocument
        );
        // Only the policy is signed: fields the page adds bind nothing.
        let mut fields: serde_json::Map<String, Value> = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(&token)
                .unwrap(),
        )
        .unwrap();
        fields.insert("acl".into(), "public-read".into());
        fields.insert("x-amz-meta-user".into(), "8".into());
        let padded =
            base64::engine::general_purpose::STANDARD.encode(Value::Object(fields).to_string());
        let grant = Grant::parse(&config, &padded, now).unwrap();
        assert_eq!(grant.acl(), None);
        let meta = [("x-amz-meta-user".to_owned(), "9".to_owned())];
        grant.allows("u/7/x.mp4", Some("video/mp4"), &meta).unwrap();
    }
}
