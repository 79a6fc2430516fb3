//! Who besides the owner may read: canned ACLs on buckets and objects, the
//! one bucket policy Stowage keeps, and the read grants they make.
//!
//! S3's rules, kept exactly:
//! - A bucket's ACL governs listing it; an object's ACL governs reading
//!   it. A `public-read` bucket does not make its objects readable.
//! - The anonymous-read policy (`s3:GetObject` for Principal `*` on
//!   `arn:aws:s3:::bucket/*`) makes every object of the bucket readable by
//!   anyone, whatever the object's ACL.
//! - A bucket named in `public_read_buckets` (config.toml) has both: the
//!   `public-read` ACL and the anonymous-read policy, for as long as it is
//!   named there.
//!
//! Only what these can express is accepted: the canned ACLs `private`,
//! `public-read`, `authenticated-read` and `bucket-owner-*`, grants to the
//! owner, and READ grants to the AllUsers and AuthenticatedUsers groups.
//! Anonymous writes (`public-read-write`) and grants to other accounts are
//! refused with `NotImplemented`, saying so.

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::{Ctx, set_header, status_response, xml_response};
use crate::auth::access::BucketAccess;
use crate::error::{Code, S3Error, S3Result};
use crate::server::body::{self, ResponseBody};
use crate::store::model::Acl;
pub use crate::store::rules::input::canned_acl;
use crate::store::rules::input::not_supported;
use crate::xml::XmlWriter;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const GRANT_HEADERS: [&str; 5] = [
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];

/// The canned ACL a request asks for with `x-amz-acl` or `x-amz-grant-*`
/// headers; `None` when it names none. `owners` are the ids whose grants
/// change nothing (the bucket's owner and the requester).
pub fn from_headers(ctx: &Ctx, owners: &[&str]) -> S3Result<Option<Acl>> {
    let canned = ctx.header("x-amz-acl");
    let grants: Vec<(&str, &str)> = GRANT_HEADERS
        .iter()
        .filter_map(|h| ctx.header(h).map(|v| (*h, v)))
        .collect();
    if canned.is_some() && !grants.is_empty() {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed",
        ));
    }
    if let Some(canned) = canned {
        return canned_acl(canned).map(Some);
    }
    if grants.is_empty() {
        return Ok(None);
    }
    let mut acl = Acl::Private;
    for (header, value) in grants {
        let permission = header["x-amz-grant-".len()..]
            .replace('-', "_")
            .to_ascii_uppercase();
        for grantee in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let (kind, id) = grantee.split_once('=').ok_or_else(|| {
                S3Error::invalid_argument("Invalid grantee in a grant header.", header, value)
            })?;
            let id = id.trim().trim_matches('"');
            let grantee = match kind.trim() {
                "id" => Grantee::User(id),
                "uri" => Grantee::Group(id),
                _ => Grantee::Other,
            };
            acl = grant(acl, grantee, &permission, owners)
                .map_err(|_| not_supported(format!("The grant {header}: {value}")))?;
        }
    }
    Ok(Some(acl))
}

enum Grantee<'a> {
    User(&'a str),
    Group(&'a str),
    Other,
}

/// Adds one grant to `acl`; `Err` when no canned ACL expresses it.
fn grant(acl: Acl, grantee: Grantee, permission: &str, owners: &[&str]) -> Result<Acl, ()> {
    match (grantee, permission) {
        // The owner has full control already.
        (Grantee::User(id), _) if owners.contains(&id) => Ok(acl),
        (Grantee::Group(ALL_USERS), "READ") => Ok(Acl::PublicRead),
        (Grantee::Group(AUTHENTICATED_USERS), "READ") if acl != Acl::PublicRead => {
            Ok(Acl::AuthenticatedRead)
        }
        (Grantee::Group(AUTHENTICATED_USERS), "READ") => Ok(acl),
        _ => Err(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccessControlPolicy {
    access_control_list: Option<GrantList>,
}

#[derive(Debug, Default, Deserialize)]
struct GrantList {
    #[serde(rename = "Grant", default)]
    grants: Vec<GrantXml>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GrantXml {
    grantee: GranteeXml,
    permission: String,
}

#[derive(Debug, Deserialize)]
struct GranteeXml {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "URI")]
    uri: Option<String>,
    #[serde(rename = "EmailAddress")]
    email: Option<String>,
}

/// The canned ACL an `AccessControlPolicy` body expresses.
fn from_policy_xml(body: &[u8], owners: &[&str]) -> S3Result<Acl> {
    let policy: AccessControlPolicy = crate::xml::parse(body).map_err(|e| {
        let mut malformed = S3Error::new(Code::MalformedACLError);
        malformed.cause = e.cause;
        malformed
    })?;
    let mut acl = Acl::Private;
    for g in policy.access_control_list.unwrap_or_default().grants {
        let grantee = match (&g.grantee.id, &g.grantee.uri, &g.grantee.email) {
            (Some(id), None, None) => Grantee::User(id.trim()),
            (None, Some(uri), None) => Grantee::Group(uri.trim()),
            _ => Grantee::Other,
        };
        let described = || {
            let who = g
                .grantee
                .id
                .as_ref()
                .or(g.grantee.uri.as_ref())
                .or(g.grantee.email.as_ref());
            format!(
                "The grant of {} to {}",
                g.permission,
                who.map_or("?", |s| s.as_str())
            )
        };
        if !["READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"]
            .contains(&g.permission.as_str())
        {
            return Err(S3Error::new(Code::MalformedACLError));
        }
        acl = grant(acl, grantee, &g.permission, owners).map_err(|_| not_supported(described()))?;
    }
    Ok(acl)
}

/// The `AccessControlPolicy` of an ACL: the owner's full control, plus the
/// group read grant the ACL makes.
fn render(acl: Acl, owner: &str) -> String {
    let mut w = XmlWriter::new();
    w.root("AccessControlPolicy");
    super::write_owner(&mut w, "Owner", owner);
    w.open("AccessControlList");
    w.out_raw(
        "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">",
    );
    w.elem("ID", owner);
    w.elem("DisplayName", owner);
    w.close("Grantee");
    w.elem("Permission", "FULL_CONTROL");
    w.close("Grant");
    let group = match acl {
        Acl::Private => None,
        Acl::PublicRead => Some(ALL_USERS),
        Acl::AuthenticatedRead => Some(AUTHENTICATED_USERS),
    };
    if let Some(uri) = group {
        w.out_raw(
            "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\">",
        );
        w.elem("URI", uri);
        w.close("Grantee");
        w.elem("Permission", "READ");
        w.close("Grant");
    }
    w.close("AccessControlList");
    w.close("AccessControlPolicy");
    w.finish()
}

/// GetBucketAcl and GetObjectAcl.
pub async fn get_acl(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let bucket = ctx.bucket().to_owned();
    let record = ctx.meta().bucket(&bucket).await?;
    let acl = match ctx.key.clone() {
        Some(key) => {
            super::check_version_id(&ctx.query)?;
            ctx.meta().head_object(&bucket, &key).await?.acl
        }
        None => BucketAccess::of(&ctx.state.config(), &bucket, &record).acl,
    };
    Ok(xml_response(render(acl, &record.owner)))
}

/// PutBucketAcl and PutObjectAcl: a canned ACL in a header, grant headers,
/// or an `AccessControlPolicy` body.
pub async fn put_acl(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let bucket = ctx.bucket().to_owned();
    let record = ctx.meta().bucket(&bucket).await?;
    let requester = ctx.principal.name().to_owned();
    let owners = [record.owner.as_str(), requester.as_str()];
    let from_headers = from_headers(ctx, &owners)?;
    let body = ctx.xml_body().await?;
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    let acl = match (from_headers, has_body) {
        (Some(_), true) => {
            return Err(S3Error::with_message(
                Code::InvalidRequest,
                "Specifying both an ACL header and an AccessControlPolicy body is not allowed",
            ));
        }
        (Some(acl), false) => acl,
        (None, true) => from_policy_xml(&body, &owners)?,
        (None, false) => {
            return Err(S3Error::with_message(
                Code::MissingSecurityHeader,
                "Your request was missing a required header: x-amz-acl, or an AccessControlPolicy body.",
            ));
        }
    };
    match ctx.key.clone() {
        Some(key) => {
            super::check_version_id(&ctx.query)?;
            ctx.meta().set_object_acl(&bucket, &key, acl).await?;
        }
        None => {
            let access = BucketAccess::of(&ctx.state.config(), &bucket, &record);
            if access.by_config && acl != Acl::PublicRead {
                return Err(by_config(&bucket));
            }
            ctx.meta().set_bucket_acl(&bucket, acl).await?;
        }
    }
    Ok(status_response(StatusCode::OK))
}

fn by_config(bucket: &str) -> S3Error {
    S3Error::with_message(
        Code::InvalidRequest,
        format!(
            "The bucket {bucket} is public because public_read_buckets in config.toml names it; remove it there to make it private."
        ),
    )
}

// ---- the bucket policy ----

/// The one policy Stowage keeps, as GetBucketPolicy shows it.
fn policy_json(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
        }]
    })
    .to_string()
}

fn malformed_policy(message: &str) -> S3Error {
    S3Error::with_message(Code::MalformedPolicy, message)
}

fn policy_not_supported(what: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(
        Code::NotImplemented,
        format!(
            "{what} is not supported. The only bucket policy Stowage keeps is anonymous read of every object: Effect Allow, Principal \"*\", Action s3:GetObject, Resource arn:aws:s3:::BUCKET/*. Access is otherwise granted per key ([[credentials]] in config.toml)."
        ),
    )
}

/// One string or a list of strings, as policies write them.
fn strings(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// Checks that `text` is the anonymous-read policy for `bucket`.
fn check_public_read_policy(text: &[u8], bucket: &str) -> S3Result<()> {
    let doc: Value = serde_json::from_slice(text).map_err(|_| {
        malformed_policy("Policies must be valid JSON and the first byte must be '{'")
    })?;
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) if !list.is_empty() => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return Err(malformed_policy("Missing required field Statement")),
    };
    let Some(fields) = doc.as_object() else {
        return Err(malformed_policy("Policies must be a JSON object"));
    };
    if let Some(other) = fields
        .keys()
        .find(|k| !["Version", "Id", "Statement"].contains(&k.as_str()))
    {
        return Err(malformed_policy(&format!("Unknown field {other}")));
    }
    let whole_bucket = format!("arn:aws:s3:::{bucket}/*");
    for s in &statements {
        let Some(s) = s.as_object() else {
            return Err(malformed_policy("Each Statement must be a JSON object"));
        };
        if let Some(other) = s
            .keys()
            .find(|k| !["Sid", "Effect", "Principal", "Action", "Resource"].contains(&k.as_str()))
        {
            return Err(policy_not_supported(format!("The policy element {other}")));
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => {}
            Some("Deny") => return Err(policy_not_supported("A Deny statement")),
            _ => return Err(malformed_policy("Missing required field Effect")),
        }
        let anyone = match s.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(p)) => {
                p.len() == 1 && p.get("AWS").and_then(strings).is_some_and(|v| v == ["*"])
            }
            None => return Err(malformed_policy("Missing required field Principal")),
            _ => false,
        };
        if !anyone {
            return Err(policy_not_supported("A Principal other than \"*\""));
        }
        let Some(actions) = s.get("Action").and_then(strings).filter(|a| !a.is_empty()) else {
            return Err(malformed_policy("Missing required field Action"));
        };
        if let Some(a) = actions.iter().find(|a| **a != "s3:GetObject") {
            return Err(policy_not_supported(format!("The action {a}")));
        }
        let Some(resources) = s
            .get("Resource")
            .and_then(strings)
            .filter(|r| !r.is_empty())
        else {
            return Err(malformed_policy("Missing required field Resource"));
        };
        for r in resources {
            if r == whole_bucket {
                continue;
            }
            let in_bucket = r
                .strip_prefix("arn:aws:s3:::")
                .is_some_and(|rest| rest.split('/').next() == Some(bucket));
            return Err(if in_bucket {
                policy_not_supported(format!("The resource {r} (only {whole_bucket})"))
            } else {
                malformed_policy("Policy has invalid resource")
            });
        }
    }
    Ok(())
}

/// GetBucketPolicy: the anonymous-read policy if the bucket has it, 404
/// `NoSuchBucketPolicy` otherwise (which tools read as "no policy").
pub async fn get_bucket_policy(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let bucket = ctx.bucket().to_owned();
    let record = ctx.meta().bucket(&bucket).await?;
    if !BucketAccess::of(&ctx.state.config(), &bucket, &record).public_objects {
        return Err(S3Error::new(Code::NoSuchBucketPolicy).detail("BucketName", bucket));
    }
    let mut r = Response::new(body::full(policy_json(&bucket)));
    set_header(&mut r, "content-type", "application/json");
    Ok(r)
}

pub async fn put_bucket_policy(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let bucket = ctx.bucket().to_owned();
    ctx.meta().bucket(&bucket).await?;
    let body = ctx.xml_body().await?;
    check_public_read_policy(&body, &bucket)?;
    ctx.meta().set_bucket_policy(&bucket, true).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

/// Deleting the policy of a bucket that has none succeeds, as on S3.
pub async fn delete_bucket_policy(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let bucket = ctx.bucket().to_owned();
    let record = ctx.meta().bucket(&bucket).await?;
    if BucketAccess::of(&ctx.state.config(), &bucket, &record).by_config {
        return Err(by_config(&bucket));
    }
    ctx.meta().set_bucket_policy(&bucket, false).await?;
    Ok(status_response(StatusCode::NO_CONTENT))
}

// ---- read grants ----

/// What an ACL or the policy can let a non-owner do: list a bucket, or
/// read an object.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acl_bodies_we_render_parse_back_to_themselves() {
        for acl in [Acl::Private, Acl::PublicRead, Acl::AuthenticatedRead] {
            let xml = render(acl, "alice");
            assert_eq!(from_policy_xml(xml.as_bytes(), &["alice"]).unwrap(), acl);
        }
        // s3cmd sends back the owner-only policy another key rendered.
        let xml = render(Acl::Private, "bob");
        assert!(from_policy_xml(xml.as_bytes(), &["alice"]).is_err());
    }

    #[test]
    fn grants_nothing_can_express_are_refused() {
        let write = format!(
            r#"<AccessControlPolicy><AccessControlList><Grant><Grantee><URI>{ALL_USERS}</URI></Grantee><Permission>WRITE</Permission></Grant></AccessControlList></AccessControlPolicy>"#
        );
        let e = from_policy_xml(write.as_bytes(), &["o"]).unwrap_err();
        assert_eq!(e.code, Code::NotImplemented);
        assert!(e.message.contains("WRITE"), "{}", e.message);
        let bad = b"<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>o</ID></Grantee><Permission>ALL</Permission></Grant></AccessControlList></AccessControlPolicy>";
        assert_eq!(
            from_policy_xml(bad, &["o"]).unwrap_err().code,
            Code::MalformedACLError
        );
        assert_eq!(
            from_policy_xml(b"<nope", &["o"]).unwrap_err().code,
            Code::MalformedACLError
        );
    }

    #[test]
    fn canned_acls_map_to_what_they_grant() {
        assert_eq!(
            canned_acl("bucket-owner-full-control").unwrap(),
            Acl::Private
        );
        assert_eq!(canned_acl("public-read").unwrap(), Acl::PublicRead);
        assert_eq!(
            canned_acl("authenticated-read").unwrap(),
            Acl::AuthenticatedRead
        );
        let e = canned_acl("public-read-write").unwrap_err();
        assert_eq!(e.code, Code::NotImplemented);
        assert!(e.message.contains("anonymous writes"), "{}", e.message);
        assert_eq!(
            canned_acl("everyone").unwrap_err().code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn only_the_anonymous_read_policy_is_accepted() {
        let ok = |p: Value| check_public_read_policy(p.to_string().as_bytes(), "b");
        let statement = |principal: Value, action: Value, resource: Value| {
            serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "x", "Effect": "Allow", "Principal": principal,
                "Action": action, "Resource": resource}]})
        };
        ok(statement(
            "*".into(),
            "s3:GetObject".into(),
            "arn:aws:s3:::b/*".into(),
        ))
        .unwrap();
        ok(statement(
            serde_json::json!({"AWS": ["*"]}),
            serde_json::json!(["s3:GetObject"]),
            serde_json::json!(["arn:aws:s3:::b/*"]),
        ))
        .unwrap();
        ok(serde_json::from_str(&policy_json("b")).unwrap()).unwrap();

        let code = |p: Value| ok(p).unwrap_err().code;
        let put = statement("*".into(), "s3:PutObject".into(), "arn:aws:s3:::b/*".into());
        assert_eq!(code(put), Code::NotImplemented);
        let user = statement(
            serde_json::json!({"AWS": "arn:aws:iam::1:root"}),
            "s3:GetObject".into(),
            "arn:aws:s3:::b/*".into(),
        );
        assert_eq!(code(user), Code::NotImplemented);
        let prefix = statement(
            "*".into(),
            "s3:GetObject".into(),
            "arn:aws:s3:::b/pub/*".into(),
        );
        assert_eq!(code(prefix), Code::NotImplemented);
        let other = statement("*".into(), "s3:GetObject".into(), "arn:aws:s3:::c/*".into());
        assert_eq!(code(other), Code::MalformedPolicy);
        assert_eq!(
            code(serde_json::json!({"Version": "2012-10-17"})),
            Code::MalformedPolicy
        );
        // A statement that grants nothing must not open the bucket.
        let empty = statement("*".into(), serde_json::json!([]), "arn:aws:s3:::b/*".into());
        assert_eq!(code(empty), Code::MalformedPolicy);
        let nowhere = statement("*".into(), "s3:GetObject".into(), serde_json::json!([]));
        assert_eq!(code(nowhere), Code::MalformedPolicy);
        assert_eq!(
            check_public_read_policy(b"not json", "b").unwrap_err().code,
            Code::MalformedPolicy
        );
    }
}
