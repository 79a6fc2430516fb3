//! The signing routes @uppy/aws-s3 calls on its `endpoint`, answered by
//! Stowage itself under `/_stowage/s3/`, each authorised by an upload grant
//! (the `X-Stowage-Grant` header, which Uppy's `headers` option sends). A
//! static page, Uppy and Stowage then make resumable multipart uploads with
//! no app route in between:
//!
//! - `GET params?filename&type&metadata[k]`: a POST form for small files;
//! - `POST multipart` (`{filename, type, metadata}`, optional
//!   `Idempotency-Key`): creates the upload at the grant's key;
//! - `GET multipart/{id}/{part}` and `GET multipart/{id}/batch?partNumbers=`:
//!   presigned UploadPart URLs;
//! - `GET multipart/{id}`: every part, all pages;
//! - `POST multipart/{id}/complete` (`{parts: [{PartNumber, ETag}]}`);
//! - `DELETE multipart/{id}`.
//!
//! Every route takes `key` (in the query, or from the grant) and checks it
//! against the grant; uploads created here carry the grant's size bound,
//! which every part, however it is sent, is held to.

use http::{Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::grant::Grant;
use super::{Call, Done, json_body};
use crate::auth::Principal;
use crate::auth::access::{self, Action};
use crate::auth::sigv4::{Signer, sha256_hex, uri_encode};
use crate::error::{Code, S3Error, S3Result};
use crate::query::Query;
use crate::server::body::{ResponseBody, json};
use crate::server::state::{AppState, origin_of};
use crate::store::model::{CompletedPart, Completion, ObjectMeta, UploadRecord, WriteCondition};
use crate::store::rules::input;
use crate::time::{amz_date, iso8601, now_ms};

/// The longest a URL handed out here lives (Companion's default is 800 s),
/// and never past the grant.
const URL_SECS: i64 = 900;

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    filename: String,
    #[serde(default, rename = "type")]
    content_type: String,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct CompleteBody {
    parts: Vec<PartBody>,
}

#[derive(Deserialize)]
struct PartBody {
    #[serde(rename = "PartNumber")]
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
}

/// The shortest Idempotency-Key taken: 16 characters.
const MIN_IDEMPOTENCY_KEY: usize = 16;

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(Code::InvalidArgument, message)
}

pub async fn handle(
    state: &AppState,
    call: Call,
    parts: &http::request::Parts,
    incoming: Incoming,
    rest: &str,
) -> S3Result<Done> {
    let now = now_ms();
    let grant = Grant::from_headers(&state.config, &parts.headers, now)?;
    // The key that signed the grant must still be allowed to write there.
    let principal = Principal::Key(grant.credential.clone());
    let target = (Some(grant.bucket.as_str()), None);
    let on = (&state.config, state.store.as_ref());
    access::authorize(on, &principal, Action::Other, true, target).await?;
    let query = Query::parse(parts.uri.query())?;
    let segments: Vec<&str> = rest.split('/').collect();
    let upload_id = segments.get(2).map(|s| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    });
    let ctx = Route {
        state,
        grant: &grant,
        parts,
        query: &query,
        now,
    };
    let (response, key) = match call {
        Call::Params => ctx.params()?,
        Call::Create => {
            ctx.create(json_body(state, &parts.headers, incoming).await?)
                .await?
        }
        Call::SignPart => {
            let number = part_number(segments[3])?;
            ctx.sign_parts(upload_id.as_deref().unwrap_or(""), &[number], false)
                .await?
        }
        Call::SignParts => {
            let numbers = query
                .get("partNumbers")
                .unwrap_or("")
                .split(',')
                .filter(|n| !n.is_empty())
                .map(part_number)
                .collect::<S3Result<Vec<u32>>>()?;
            ctx.sign_parts(upload_id.as_deref().unwrap_or(""), &numbers, true)
                .await?
        }
        Call::ListParts => ctx.list_parts(upload_id.as_deref().unwrap_or("")).await?,
        Call::Complete => {
            let body: CompleteBody = json_body(state, &parts.headers, incoming).await?;
            ctx.complete(upload_id.as_deref().unwrap_or(""), body)
                .await?
        }
        Call::Abort => ctx.abort(upload_id.as_deref().unwrap_or("")).await?,
        Call::Preflight | Call::Unknown => {
            return Err(S3Error::internal("not an Uppy route"));
        }
    };
    Ok(Done {
        response,
        bucket: Some(grant.bucket.clone()),
        key: Some(key),
        access_key: Some(grant.credential.access_key_id.clone()),
    })
}

fn part_number(s: &str) -> S3Result<u32> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| invalid(format!("Invalid part number {s:?}: 1 to 10000.")))
}

struct Route<'a> {
    state: &'a AppState,
    grant: &'a Grant,
    parts: &'a http::request::Parts,
    query: &'a Query,
    now: i64,
}

impl Route<'_> {
    /// How long URLs handed out now may live.
    fn url_secs(&self) -> i64 {
        ((self.grant.policy.expiration_ms - self.now) / 1000).clamp(1, URL_SECS)
    }

    /// The `x-amz-meta-*` fields of Uppy's metadata that the grant names;
    /// the others are not the browser's to set, and are dropped.
    fn bound_metadata<'m>(
        &self,
        metadata: impl Iterator<Item = (&'m str, String)>,
    ) -> Vec<(String, String)> {
        metadata
            .map(|(k, v)| (format!("x-amz-meta-{}", k.to_ascii_lowercase()), v))
            .filter(|(name, _)| self.grant.policy.names(name))
            .collect()
    }

    /// The key a route names (`?key=`), checked against the grant.
    fn key(&self) -> S3Result<String> {
        let key = self
            .query
            .get("key")
            .ok_or_else(|| invalid("The key query parameter is required."))?;
        self.grant.allows_key(key)?;
        Ok(key.to_owned())
    }

    fn params(&self) -> S3Result<(Response<ResponseBody>, String)> {
        let filename = self.query.get("filename").unwrap_or("");
        let content_type = self.query.get("type").filter(|t| !t.is_empty());
        let key = self.grant.key_for(filename)?;
        let metadata = self.query.0.iter().filter_map(|(n, v)| {
            let k = n.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((k, v.clone()))
        });
        let meta = self.bound_metadata(metadata);
        self.grant.allows(&key, content_type, &meta)?;
        let mut fields = serde_json::Map::new();
        for name in [
            "x-amz-algorithm",
            "x-amz-credential",
            "x-amz-date",
            "policy",
            "x-amz-signature",
        ] {
            if let Some(v) = self.grant.field(name) {
                fields.insert(name.into(), v.into());
            }
        }
        fields.insert("key".into(), key.clone().into());
        if let Some(t) = content_type.filter(|_| self.grant.policy.names("content-type")) {
            fields.insert("Content-Type".into(), t.into());
        }
        for (name, value) in meta {
            fields.insert(name, value.into());
        }
        // Fields the policy fixes go in as fixed (a POST form must carry
        // every field the policy names).
        for name in ["success_action_status", "acl"] {
            if let Some(v) = self.grant.policy.fixed(name) {
                fields.insert(name.into(), v.into());
            }
        }
        let url = format!(
            "{}/{}",
            origin_of(self.state, &self.parts.headers),
            self.grant.bucket
        );
        let body =
            json!({"method": "POST", "url": url, "fields": fields, "expires": self.url_secs()});
        Ok((json(StatusCode::OK, &body), key))
    }

    async fn create(&self, body: CreateBody) -> S3Result<(Response<ResponseBody>, String)> {
        let key = self.grant.key_for(&body.filename)?;
        input::check_key(&key)?;
        let content_type = Some(body.content_type.as_str()).filter(|t| !t.is_empty());
        let metadata = body
            .metadata
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?.to_owned())));
        let meta = self.bound_metadata(metadata);
        self.grant.allows(&key, content_type, &meta)?;
        let fields = meta
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .chain(content_type.map(|t| ("content-type", t.to_owned())));
        let object_meta: ObjectMeta = input::object_meta_from(fields)?;
        let acl = match self.grant.acl() {
            Some(v) => input::canned_acl(v)?,
            None => Default::default(),
        };
        // A retried create (same grant, same key, same Idempotency-Key)
        // gets the same upload. Without one the token is unique; either
        // way it marks the upload as made under a grant.
        let token = match self.parts.headers.get("idempotency-key") {
            // A short key could be guessed by another holder of the grant.
            Some(k)
                if k.to_str()
                    .map_or(true, |k| k.trim().chars().count() < MIN_IDEMPOTENCY_KEY) =>
            {
                return Err(S3Error::with_message(
                    Code::InvalidArgument,
                    format!(
                        "An Idempotency-Key must be at least {MIN_IDEMPOTENCY_KEY} characters long, so that it cannot be guessed (a random UUID is)."
                    ),
                ));
            }
            Some(k) => sha256_hex(&[self.grant.id().as_bytes(), b"\n", k.as_bytes()].concat()),
            None => format!(
                "grant-{}",
                crate::store::model::id_hex(crate::store::model::new_id())
            ),
        };
        let cap = self.state.config.limits.max_object_size;
        let record = UploadRecord {
            initiated_ms: self.now,
            owner: self.grant.credential.access_key_id.clone(),
            meta: object_meta,
            checksum: None,
            tags: Vec::new(),
            acl,
            // A grant's size range binds the whole object; without one the
            // server's object cap does, as on POST Object.
            max_size: Some(self.grant.max_size().map_or(cap, |max| max.min(cap))),
            token: Some(token),
        };
        let meta_store = &self.state.store.meta;
        let id = meta_store
            .create_upload(&self.grant.bucket, &key, record)
            .await?;
        let body = json!({"key": key, "uploadId": id, "bucket": self.grant.bucket});
        Ok((json(StatusCode::OK, &body), key))
    }

    /// Checks that the upload exists at the grant's bucket and `key`, and
    /// was made under a grant of the same key: a grant reaches the uploads
    /// at keys it covers that its signing key's grants created (so that a
    /// fresh grant resumes an upload), never uploads made by plain S3
    /// calls, which carry no size bound.
    async fn upload(&self, id: &str) -> S3Result<String> {
        let key = self.key()?;
        let upload = self
            .state
            .store
            .meta
            .upload(&self.grant.bucket, &key, id)
            .await?;
        if upload.owner != self.grant.credential.access_key_id || upload.token.is_none() {
            return Err(S3Error::new(Code::NoSuchUpload));
        }
        Ok(key)
    }

    async fn sign_parts(
        &self,
        id: &str,
        numbers: &[u32],
        batch: bool,
    ) -> S3Result<(Response<ResponseBody>, String)> {
        let key = self.upload(id).await?;
        let signer = Signer {
            access_key: &self.grant.credential.access_key_id,
            secret: &self.grant.credential.secret_access_key,
            region: &self.state.config.region,
        };
        let mut path = format!("/{}/", self.grant.bucket);
        uri_encode(key.as_bytes(), true, &mut path);
        let origin = origin_of(self.state, &self.parts.headers);
        let host = origin.split_once("://").map_or("", |(_, h)| h);
        let timestamp = amz_date(self.now);
        let expires = self.url_secs();
        let url = |n: u32| {
            let n = n.to_string();
            let params = [("partNumber", n.as_str()), ("uploadId", id)];
            let signed = signer.presign("PUT", (host, &path), &params, &timestamp, expires as u64);
            format!("{origin}{signed}")
        };
        let body = if batch {
            let urls: serde_json::Map<String, Value> = numbers
                .iter()
                .map(|n| (n.to_string(), url(*n).into()))
                .collect();
            json!({"presignedUrls": urls})
        } else {
            json!({"url": url(numbers[0]), "expires": expires})
        };
        Ok((json(StatusCode::OK, &body), key))
    }

    async fn list_parts(&self, id: &str) -> S3Result<(Response<ResponseBody>, String)> {
        let key = self.upload(id).await?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let (page, more) = self.state.store.meta.parts(id, after, 1000).await?;
            for (number, part) in &page {
                out.push(json!({
                    "PartNumber": number,
                    "ETag": format!("\"{}\"", crate::store::model::hex(&part.md5)),
                    "Size": part.size,
                    "LastModified": iso8601(part.last_modified_ms),
                }));
            }
            match page.last() {
                Some((n, _)) if more => after = *n,
                _ => break,
            }
        }
        Ok((json(StatusCode::OK, &Value::Array(out)), key))
    }

    async fn complete(
        &self,
        id: &str,
        body: CompleteBody,
    ) -> S3Result<(Response<ResponseBody>, String)> {
        let key = self.upload(id).await?;
        let completion = Completion {
            parts: body
                .parts
                .into_iter()
                .map(|p| CompletedPart {
                    part_number: p.part_number,
                    etag: p.etag.trim().trim_matches('"').to_owned(),
                    checksum: None,
                })
                .collect(),
            expected: None,
            kind: None,
            min_part_size: self.state.config.limits.min_part_size,
        };
        let head = self
            .state
            .store
            .meta
            .complete_upload(
                &self.grant.bucket,
                &key,
                id,
                completion,
                WriteCondition::None,
            )
            .await?;
        let mut location = format!(
            "{}/{}/",
            origin_of(self.state, &self.parts.headers),
            self.grant.bucket
        );
        uri_encode(key.as_bytes(), true, &mut location);
        let body = json!({
            "location": location,
            "key": key,
            "bucket": self.grant.bucket,
            "etag": format!("\"{}\"", head.etag),
        });
        Ok((json(StatusCode::OK, &body), key))
    }

    async fn abort(&self, id: &str) -> S3Result<(Response<ResponseBody>, String)> {
        let key = self.upload(id).await?;
        self.state
            .store
            .meta
            .abort_upload(&self.grant.bucket, &key, id)
            .await?;
        Ok((json(StatusCode::OK, &json!({})), key))
    }
}
