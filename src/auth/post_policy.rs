//! POST policies: the base64 JSON document an app's backend signs so that a
//! browser may upload with a form (POST Object), exactly as S3 defines it:
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html>
//!
//! The signature is SigV4's, over the base64 text of the policy itself. The
//! policy names an expiry and conditions; every form field but the
//! signature, the policy, the file and `x-ignore-*` must be named by a
//! condition, and every condition must hold.

use base64::Engine as _;
use serde_json::Value;

use super::sigv4::SigningKey;
use crate::config::{Config, Credential};
use crate::error::{Code, S3Error, S3Result};
use crate::store::model::{Acl, ObjectMeta, Tags};
use crate::store::rules::input;

/// What a policy's fields store on the object: its metadata, tags and
/// canned ACL.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub meta: ObjectMeta,
    pub tags: Tags,
    pub acl: Acl,
}

impl Stored {
    /// What form fields (lower-case names) store: `Content-Type` and the
    /// other standard headers, `x-amz-meta-*`, `tagging` and `acl`.
    pub fn from_fields(fields: &[(String, String)]) -> S3Result<Stored> {
        let value = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let meta = input::object_meta_from(fields.iter().map(|(n, v)| (n.as_str(), v.clone())))?;
        let tags = match value("tagging") {
            Some(xml) => crate::s3::tagging::parse_object_tags(xml.as_bytes())?,
            None => Vec::new(),
        };
        let acl = match value("acl") {
            Some(v) => input::canned_acl(v)?,
            None => Acl::default(),
        };
        Ok(Stored { meta, tags, acl })
    }
}

/// One condition of a policy. Field names are lower-case, without `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "value"}` or `["eq", "$field", "value"]`.
    Eq(String, String),
    /// `["starts-with", "$field", "prefix"]`.
    StartsWith(String, String),
    /// `["content-length-range", min, max]`: the file's size, inclusive.
    LengthRange(u64, u64),
}

impl Condition {
    /// As S3 quotes it in "Policy Condition failed".
    fn describe(&self) -> String {
        match self {
            Condition::Eq(f, v) => format!("[\"eq\", \"${f}\", {}]", Value::from(v.as_str())),
            Condition::StartsWith(f, v) => {
                format!("[\"starts-with\", \"${f}\", {}]", Value::from(v.as_str()))
            }
            Condition::LengthRange(min, max) => format!("[\"content-length-range\", {min}, {max}]"),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Condition::Eq(f, _) | Condition::StartsWith(f, _) => Some(f),
            Condition::LengthRange(..) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostPolicy {
    pub expiration_ms: i64,
    pub conditions: Vec<Condition>,
}

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(
        Code::InvalidPolicyDocument,
        format!("Invalid Policy: {}", message.into()),
    )
}

pub fn policy_denied(message: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(
        Code::AccessDenied,
        format!("Invalid according to Policy: {message}"),
    )
}

/// A JSON number or numeric string as a byte count.
fn length(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl PostPolicy {
    /// Decodes the base64 `policy` field.
    pub fn decode(policy_b64: &str) -> S3Result<PostPolicy> {
        let json = base64::engine::general_purpose::STANDARD
            .decode(policy_b64.trim())
            .map_err(|_| invalid("Invalid Base64 Encoding."))?;
        PostPolicy::parse(&json)
    }

    pub fn parse(json: &[u8]) -> S3Result<PostPolicy> {
        let doc: Value = serde_json::from_slice(json).map_err(|_| invalid("Invalid JSON."))?;
        let expiration = doc
            .get("expiration")
            .ok_or_else(|| invalid("Policy missing expiration."))?;
        let expiration_ms = expiration
            .as_str()
            .and_then(crate::time::parse_iso8601)
            .ok_or_else(|| invalid("Invalid 'expiration' value."))?;
        let list = match doc.get("conditions") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid("Invalid 'conditions' value.")),
            None => return Err(invalid("Policy missing conditions.")),
        };
        let mut conditions = Vec::with_capacity(list.len());
        for c in list {
            conditions.push(parse_condition(c)?);
        }
        Ok(PostPolicy {
            expiration_ms,
            conditions,
        })
    }

    /// The file's allowed size, if the policy bounds it (every range
    /// condition holds: their intersection).
    pub fn length_range(&self) -> Option<(u64, u64)> {
        self.conditions
            .iter()
            .filter_map(|c| match c {
                Condition::LengthRange(min, max) => Some((*min, *max)),
                _ => None,
            })
            .reduce(|(a, b), (c, d)| (a.max(c), b.min(d)))
    }

    /// Checks the expiry and every field condition against `fields`
    /// (lower-case names; `bucket` and the expanded `key` among them), and
    /// that no field goes unnamed. The file's size is checked as it
    /// streams.
    pub fn check(&self, fields: &[(String, String)], now_ms: i64) -> S3Result<()> {
        if now_ms >= self.expiration_ms {
            return Err(policy_denied("Policy expired."));
        }
        self.check_conditions(fields)?;
        for (name, _) in fields {
            let exempt = matches!(
                name.as_str(),
                "x-amz-signature" | "file" | "policy" | "bucket"
            ) || name.starts_with("x-ignore-");
            if !exempt && !self.conditions.iter().any(|c| c.field() == Some(name)) {
                return Err(policy_denied(format_args!("Extra input fields: {name}")));
            }
        }
        Ok(())
    }

    /// The one rule of every path that takes a policy (POST Object, and
    /// each front-end that takes an upload grant): the policy has not
    /// expired, every condition holds over `fields`, no field goes unnamed,
    /// and the object stores what the fields say and nothing else.
    ///
    /// A Content-Type must be one media type (`type/subtype`, parameters
    /// allowed): a page could otherwise meet `starts-with image/` with a
    /// value no browser parses (`image/png<TAB>text/html`), and the object
    /// would be served as if it had none.
    pub fn admit(&self, fields: &[(String, String)], now_ms: i64) -> S3Result<Stored> {
        self.check(fields, now_ms)?;
        if let Some((_, t)) = fields.iter().find(|(n, _)| n == "content-type")
            && !is_media_type(t)
        {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                "The Content-Type must be one media type, such as video/mp4 or text/plain; charset=utf-8.",
            )
            .detail("ArgumentName", "Content-Type"));
        }
        Stored::from_fields(fields)
    }

    /// Whether the policy names `field` in a condition.
    pub fn names(&self, field: &str) -> bool {
        self.conditions.iter().any(|c| c.field() == Some(field))
    }

    /// The exact value the policy requires of `field`, if it fixes one.
    pub fn fixed(&self, field: &str) -> Option<&str> {
        self.conditions.iter().find_map(|c| match c {
            Condition::Eq(f, v) if f == field => Some(v.as_str()),
            _ => None,
        })
    }

    /// Checks every field condition against `fields`.
    pub fn check_conditions(&self, fields: &[(String, String)]) -> S3Result<()> {
        let value = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        for c in &self.conditions {
            let holds = match c {
                Condition::Eq(f, want) => value(f) == Some(want.as_str()),
                Condition::StartsWith(f, prefix) => match value(f) {
                    // Content-Type may list several values; each must match.
                    Some(v) if f == "content-type" => v
                        .split(',')
                        .all(|t| t.trim_start().starts_with(prefix.as_str())),
                    Some(v) => v.starts_with(prefix.as_str()),
                    None => prefix.is_empty(),
                },
                Condition::LengthRange(..) => true,
            };
            if !holds {
                return Err(policy_denied(format_args!(
                    "Policy Condition failed: {}",
                    c.describe()
                )));
            }
        }
        Ok(())
    }
}

/// Refuses a key a browser path should never make: a control character
/// (listings cannot carry it), a bidirectional control (`x\u{202e}gpj.exe`
/// reads as another name), or a `.` or `..` segment (clients resolve it in
/// URLs).
pub fn check_browser_key(key: &str) -> S3Result<()> {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let dots = key.split(['/', '\\']).any(|s| s == "." || s == "..");
    if dots || key.chars().any(|c| c.is_control() || bidi(c)) {
        return Err(S3Error::with_message(
            Code::InvalidArgument,
            "A key made in a browser may not contain control or bidirectional formatting characters, nor . or .. segments.",
        ));
    }
    Ok(())
}

/// Whether `value` is one media type as RFC 9110 writes it: `type/subtype`
/// in tokens, then `; name=value` parameters (a token or a quoted string).
fn is_media_type(value: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim_matches(' ');
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    if !token(kind) || !token(subtype) {
        return false;
    }
    parts.all(|param| {
        let param = param.trim_matches(' ');
        let Some((name, v)) = param.split_once('=') else {
            return param.is_empty();
        };
        let quoted = v.len() >= 2
            && v.starts_with('"')
            && v.ends_with('"')
            && v[1..v.len() - 1]
                .bytes()
                .all(|b| b == b' ' || b.is_ascii_graphic());
        token(name) && (token(v) || quoted)
    })
}

fn parse_condition(c: &Value) -> S3Result<Condition> {
    let field = |v: &Value| -> S3Result<String> {
        let s = v
            .as_str()
            .ok_or_else(|| invalid("Condition field must be a string."))?;
        let name = s.strip_prefix('$').unwrap_or(s);
        Ok(name.to_ascii_lowercase())
    };
    let text = |v: &Value| -> S3Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(invalid("Condition value must be a string.")),
        }
    };
    match c {
        Value::Object(map) if map.len() == 1 => {
            let (name, v) = map.iter().next().expect("one entry");
            Ok(Condition::Eq(
                name.trim_start_matches('$').to_ascii_lowercase(),
                text(v)?,
            ))
        }
        Value::Array(items) if items.len() == 3 => {
            let op = items[0]
                .as_str()
                .ok_or_else(|| invalid("Invalid condition operator."))?;
            match op.to_ascii_lowercase().as_str() {
                "eq" => Ok(Condition::Eq(field(&items[1])?, text(&items[2])?)),
                "starts-with" => Ok(Condition::StartsWith(field(&items[1])?, text(&items[2])?)),
                "content-length-range" => {
                    let (Some(min), Some(max)) = (length(&items[1]), length(&items[2])) else {
                        return Err(invalid("Invalid content-length-range."));
                    };
                    if min > max {
                        return Err(invalid("Invalid content-length-range."));
                    }
                    Ok(Condition::LengthRange(min, max))
                }
                other => Err(invalid(format!("Invalid condition operator: {other}"))),
            }
        }
        _ => Err(invalid("Invalid condition.")),
    }
}

/// The SigV4 fields of a POST form, checked: the credential's key, date,
/// region and service, and the signature over the base64 policy.
pub fn verify(
    config: &Config,
    field: impl Fn(&str) -> Option<String>,
    policy_b64: &str,
) -> S3Result<Credential> {
    let required = |name: &str| {
        field(name).ok_or_else(|| {
            S3Error::with_message(
                Code::InvalidArgument,
                format!("Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."),
            )
            .detail("ArgumentName", name)
        })
    };
    let algorithm = required("x-amz-algorithm")?;
    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(S3Error::with_message(
            Code::InvalidArgument,
            "Only the AWS4-HMAC-SHA256 algorithm is supported for POST (Signature Version 2 is not).",
        )
        .detail("ArgumentName", "x-amz-algorithm")
        .detail("ArgumentValue", algorithm));
    }
    let credential = required("x-amz-credential")?;
    let date = required("x-amz-date")?;
    let signature = required("x-amz-signature")?;
    let bad_credential = |why: String| {
        S3Error::with_message(
            Code::InvalidArgument,
            format!("Invalid x-amz-credential: {why}"),
        )
        .detail("ArgumentName", "x-amz-credential")
        .detail("ArgumentValue", credential.clone())
    };
    let parts: Vec<&str> = credential.rsplitn(5, '/').collect();
    let [terminal, service, region, day, key_id] = parts[..] else {
        return Err(bad_credential(
            "it must be KEY/DATE/REGION/s3/aws4_request".into(),
        ));
    };
    if terminal != "aws4_request" || service != "s3" {
        return Err(bad_credential(
            "it must be KEY/DATE/REGION/s3/aws4_request".into(),
        ));
    }
    if region != config.region {
        return Err(bad_credential(format!(
            "the region '{region}' is wrong; expecting '{}'",
            config.region
        )));
    }
    if crate::time::parse_amz_date(&date).is_none() || !date.starts_with(day) || day.len() != 8 {
        return Err(bad_credential(format!(
            "its date '{day}' must be the date of x-amz-date '{date}'"
        )));
    }
    let Some(found) = config.credential(key_id) else {
        return Err(S3Error::new(Code::InvalidAccessKeyId).detail("AWSAccessKeyId", key_id));
    };
    let key = SigningKey::derive(&found.secret_access_key, day, region, service);
    if !key.verify(policy_b64, &signature) {
        return Err(S3Error::new(Code::SignatureDoesNotMatch)
            .detail("AWSAccessKeyId", key_id)
            .detail("StringToSign", policy_b64));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(conditions: &str) -> PostPolicy {
        PostPolicy::parse(
            format!(r#"{{"expiration": "2030-01-01T00:00:00.000Z", "conditions": {conditions}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_condition_form_parses() {
        let p = policy(
            r#"[{"bucket": "b"}, ["starts-with", "$key", "user/"], ["eq", "$Content-Type", "image/png"],
                ["content-length-range", 1, "1048576"], {"success_action_status": 201}]"#,
        );
        assert_eq!(
            p.conditions,
            vec![
                Condition::Eq("bucket".into(), "b".into()),
                Condition::StartsWith("key".into(), "user/".into()),
                Condition::Eq("content-type".into(), "image/png".into()),
                Condition::LengthRange(1, 1_048_576),
                Condition::Eq("success_action_status".into(), "201".into()),
            ]
        );
        assert_eq!(p.length_range(), Some((1, 1_048_576)));
        for bad in [
            r#"{"conditions": []}"#,
            r#"{"expiration": "tomorrow", "conditions": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 5, 1]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["matches", "$key", "x"]]}"#,
            "not json",
        ] {
            let e = PostPolicy::parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code, Code::InvalidPolicyDocument, "{bad}");
        }
    }

    #[test]
    fn keys_made_in_a_browser_are_plain() {
        for ok in ["users/7/cut.mp4", "a..b", "u/.hidden", "café/x"] {
            check_browser_key(ok).unwrap();
        }
        for bad in [
            "users/7/\u{1}x",
            "u/x\u{202e}gpj.exe",
            "users/7/../8/x",
            "u/.",
            "u\\..\\x",
        ] {
            assert!(check_browser_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_content_type_is_one_media_type() {
        for ok in [
            "video/mp4",
            "text/plain; charset=utf-8",
            "text/plain;charset=\"utf-8\"",
            "application/vnd.api+json",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "image/png\ttext/html",
            "image/png text/html",
            "image/png, text/html",
            "image/",
            "png",
            "",
            "text/plain; charset=utf 8",
        ] {
            assert!(!is_media_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn conditions_hold_or_say_which_failed() {
        let p =
            policy(r#"[{"bucket": "b"}, ["starts-with", "$key", "user/"], {"acl": "private"}]"#);
        let ok = fields(&[("bucket", "b"), ("key", "user/a.txt"), ("acl", "private")]);
        p.check(&ok, 0).unwrap();
        let e = p
            .check(
                &fields(&[("bucket", "b"), ("key", "other/a"), ("acl", "private")]),
                0,
            )
            .unwrap_err();
        assert_eq!(e.code, Code::AccessDenied);
        assert_eq!(
            e.message,
            r#"Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/"]"#
        );
        let mut extra = ok.clone();
        extra.push(("x-amz-meta-x".into(), "1".into()));
        let e = p.check(&extra, 0).unwrap_err();
        assert!(
            e.message.ends_with("Extra input fields: x-amz-meta-x"),
            "{}",
            e.message
        );
        let mut ignored = ok.clone();
        ignored.push(("x-ignore-note".into(), "1".into()));
        p.check(&ignored, 0).unwrap();
        let e = p.check(&ok, p.expiration_ms).unwrap_err();
        assert!(e.message.ends_with("Policy expired."));
    }
}
