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

use crate::auth::post_policy::{self, Condition, PostPolicy, Stored, policy_denied};
use crate::config::{Config, Credential};
use crate::error::{Code, S3Error, S3Result};
use crate::store::model::Granted;

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

    /// Identifies the grant, to scope idempotency tokens and its one
    /// unfinished upload per key: a hash of its signing key and of the
    /// policy text it signed, which no page can vary (a signature's hex
    /// could be sent in another case).
    pub fn id(&self) -> String {
        let policy = self.field("policy").unwrap_or_default();
        crate::auth::sigv4::sha256_hex(
            format!("{}\n{policy}", self.credential.access_key_id).as_bytes(),
        )
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
        let key = template.replace("${filename}", filename);
        // The whole key: the template is the page's to change, as long as
        // the policy's key condition holds.
        post_policy::check_browser_key(&key)?;
        Ok(key)
    }

    /// The size range of an upload under this grant: the policy's
    /// `content-length-range`, within the server's object cap (which alone
    /// bounds a grant without a range, as it bounds POST Object).
    pub fn size_range(&self, cap: u64) -> (u64, u64) {
        let (min, max) = self.policy.length_range().unwrap_or((0, cap));
        (min, max.min(cap))
    }

    /// What an upload made now under this grant is held to, for every
    /// front-end that takes grants: its size maximum (for the record's
    /// `max_size`), and its minimum, its grant and its expiry (the grant's
    /// expiry plus `limits.grant_resume_secs`, at most
    /// `limits.abandoned_upload_secs` from now).
    pub fn hold(&self, limits: &crate::config::Limits, now_ms: i64) -> (u64, Granted) {
        let (min_size, max_size) = self.size_range(limits.max_object_size);
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_ms = (self.policy.expiration_ms)
            .saturating_add(ms(limits.grant_resume_secs))
            .min(now_ms.saturating_add(ms(limits.abandoned_upload_secs)));
        let granted = Granted {
            grant: self.id(),
            min_size,
            expires_ms,
            held: 0,
        };
        (max_size, granted)
    }

    /// Checks only the grant's conditions on the bucket and key: for routes
    /// on an upload whose fields were admitted at its creation.
    pub fn allows_key(&self, key: &str) -> S3Result<()> {
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

    /// An object at `key` under this grant, by the rule POST Object keeps
    /// ([`PostPolicy::admit`]): the fields are the grant's own (which the
    /// page may change, as it may a form's), then what the client offers
    /// (`offered`: lower-case names such as `content-type` and
    /// `x-amz-meta-*`) where the policy names it, then every value the
    /// policy fixes that neither gives. A value offered that the policy
    /// does not name is left out (its protocol's default is safe); every
    /// condition must then hold, and no field may go unnamed.
    ///
    /// Returns the fields, as a POST form to the grant's bucket must carry
    /// them, and what the object stores.
    pub fn admit(
        &self,
        key: &str,
        offered: impl IntoIterator<Item = (String, String)>,
        now_ms: i64,
    ) -> S3Result<(Vec<(String, String)>, Stored)> {
        let mut fields: Vec<(String, String)> = self
            .fields
            .iter()
            .filter(|(n, _)| n != "key" && n != "bucket")
            .cloned()
            .collect();
        fields.push(("bucket".into(), self.bucket.clone()));
        fields.push(("key".into(), key.to_owned()));
        let mut seen = std::collections::HashSet::new();
        for (name, value) in offered {
            // What the policy does not name is left out, whatever it is.
            if !self.policy.names(&name) {
                continue;
            }
            // A name offered twice could meet a condition with one value
            // and be stored with the other.
            if !seen.insert(name.clone()) {
                return Err(S3Error::with_message(
                    Code::InvalidArgument,
                    format!("The field {name} is given more than once."),
                )
                .detail("ArgumentName", name));
            }
            match fields.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => fields.push((name, value)),
            }
        }
        for c in &self.policy.conditions {
            if let Condition::Eq(name, value) = c
                && !fields.iter().any(|(n, _)| n == name)
            {
                fields.push((name.clone(), value.clone()));
            }
        }
        let stored = self.policy.admit(&fields, now_ms)?;
        Ok((fields, stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sigv4::SigningKey;

    /// A grant as the SDKs mint one: the signature fields are named by
    /// conditions too.
    fn mint(config: &Config, conditions: Value, key: &str, expires_in_ms: i64) -> String {
        let now = crate::time::now_ms();
        let date = crate::time::amz_date(now);
        let credential = format!("stowage/{}/us-east-1/s3/aws4_request", &date[..8]);
        let mut conditions = conditions;
        if let Value::Array(list) = &mut conditions {
            list.push(serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}));
            list.push(serde_json::json!({"x-amz-credential": credential}));
            list.push(serde_json::json!({"x-amz-date": date}));
        }
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
        assert_eq!(grant.size_range(u64::MAX), (1, 1000));
        assert_eq!(grant.size_range(500), (1, 500));
        // Its uploads live until the grant expires plus the resume window,
        // and never past the age of abandoned uploads.
        let mut limits = crate::config::Limits {
            grant_resume_secs: 10,
            ..Default::default()
        };
        let (max, held) = grant.hold(&limits, now);
        assert_eq!((max, held.min_size, held.held), (1000, 1, 0));
        assert_eq!(held.expires_ms, grant.policy.expiration_ms + 10_000);
        assert_eq!(held.grant, grant.id());
        limits.abandoned_upload_secs = 1;
        assert_eq!(grant.hold(&limits, now).1.expires_ms, now + 1000);
        let key = grant.key_for("C:\\clips\\cut.mp4").unwrap();
        assert_eq!(key, "u/7/cut.mp4");
        let offer = |t: &str| [("content-type".to_owned(), t.to_owned())];
        let (_, stored) = grant.admit(&key, offer("video/mp4"), now).unwrap();
        assert_eq!(stored.meta.content_type.as_deref(), Some("video/mp4"));
        let e = grant.admit(&key, offer("text/html"), now).unwrap_err();
        assert!(e.message.contains("$content-type"), "{}", e.message);
        assert!(grant.admit("u/8/cut.mp4", offer("video/mp4"), now).is_err());

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
        // Only the policy is signed: fields the page adds to a grant are
        // refused unless the policy names them, as on a POST form.
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
        let e = grant
            .admit("u/7/x.mp4", offer("video/mp4"), now)
            .unwrap_err();
        assert!(e.message.contains("Extra input fields"), "{}", e.message);
    }

    #[test]
    fn a_grant_applies_what_its_policy_fixes_and_drops_what_it_does_not_name() {
        let config = Config::default();
        let now = crate::time::now_ms();
        let tagging =
            "<Tagging><TagSet><Tag><Key>src</Key><Value>app</Value></Tag></TagSet></Tagging>";
        let conditions = serde_json::json!([
            {"bucket": "media"}, ["starts-with", "$key", "u/"],
            {"Content-Disposition": "attachment"}, ["eq", "$Cache-Control", "no-store"],
            {"tagging": tagging}, {"acl": "public-read"},
            ["starts-with", "$x-amz-meta-album", ""]
        ]);
        let grant = Grant::parse(
            &config,
            &mint(&config, conditions, "u/${filename}", 60_000),
            now,
        )
        .unwrap();
        let offered = [
            ("content-type".to_owned(), "text/html".to_owned()),
            ("x-amz-meta-album".to_owned(), "trip".to_owned()),
            ("x-amz-meta-owner".to_owned(), "mallory".to_owned()),
            ("cache-control".to_owned(), "public".to_owned()),
        ];
        // Cache-Control is named and fixed: the page's "public" breaks the
        // condition, so the upload is refused.
        let e = grant.admit("u/a.mp4", offered.clone(), now).unwrap_err();
        assert!(e.message.contains("$cache-control"), "{}", e.message);
        let offered: Vec<_> = offered
            .into_iter()
            .filter(|(n, _)| n != "cache-control")
            .collect();
        let (fields, stored) = grant.admit("u/a.mp4", offered, now).unwrap();
        // Content-Type and x-amz-meta-owner are not named: left out.
        assert_eq!(stored.meta.content_type, None);
        assert_eq!(
            stored.meta.user,
            vec![("album".to_owned(), "trip".to_owned())]
        );
        // What the policy fixes is applied.
        assert_eq!(
            stored.meta.content_disposition.as_deref(),
            Some("attachment")
        );
        assert_eq!(stored.meta.cache_control.as_deref(), Some("no-store"));
        assert_eq!(stored.tags, vec![("src".to_owned(), "app".to_owned())]);
        assert_eq!(stored.acl, crate::store::model::Acl::PublicRead);
        assert!(
            fields
                .iter()
                .any(|(n, v)| n == "content-disposition" && v == "attachment")
        );
    }
}
