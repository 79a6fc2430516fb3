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
//! against the grant. What an upload stores is decided by the rule POST
//! Object keeps ([`Grant::admit`]). An upload created here carries the
//! grant's size range (every part, however it is sent, is held to its
//! maximum; Complete to its minimum) and its expiry. The upload id these
//! routes hand out is the store's id and a capability, a MAC under the
//! grant's signing key: the routes on an upload take only that, so another
//! holder of a grant over the same keys, who may learn the store's id from
//! a listing, still cannot reach the upload.

use http::{Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::grant::Grant;
use super::{Call, Done, json_body};
use crate::auth::Principal;
use crate::auth::access::{self, Action};
use crate::auth::sigv4::{Signer, SigningKey, sha256_hex, uri_encode};
use crate::error::{Code, S3Error, S3Result};
use crate::query::Query;
use crate::server::body::{ResponseBody, json};
use crate::server::state::{AppState, origin_of};
use crate::store::model::{CompletedPart, Completion, UploadRecord, WriteCondition};
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

/// The largest create body: a file name, its type and some metadata.
const CREATE_MAX: u64 = 64 << 10;
/// The largest complete body: 10,000 parts of about 60 bytes each.
const COMPLETE_MAX: u64 = 1 << 20;

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
    let config = state.config();
    let grant = Grant::from_headers(&config, &parts.headers, now)?;
    // The key that signed the grant must still be allowed to write there.
    let principal = Principal::Key(grant.credential.clone());
    let target = (Some(grant.bucket.as_str()), None);
    let on = (config.as_ref(), state.store.as_ref());
    access::authorize(on, &principal, Action::Other, true, target).await?;
    crate::server::admission::Hold::mark(&parts.extensions);
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
            ctx.create(json_body(state, (&parts.headers, CREATE_MAX), incoming).await?)
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
            let body: CompleteBody =
                json_body(state, (&parts.headers, COMPLETE_MAX), incoming).await?;
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

    /// What the page offers for the object: Uppy's `type` as its
    /// Content-Type and its `metadata` entries as `x-amz-meta-*`. The
    /// grant's rule keeps only what its policy names.
    fn offered<'m>(
        content_type: &str,
        metadata: impl Iterator<Item = (&'m str, String)>,
    ) -> Vec<(String, String)> {
        let content_type = Some(("content-type".to_owned(), content_type.to_owned()))
            .filter(|(_, t)| !t.is_empty());
        content_type
            .into_iter()
            .chain(metadata.map(|(k, v)| (format!("x-amz-meta-{}", k.to_ascii_lowercase()), v)))
            .collect()
    }

    /// The capability that proves an upload was made through these routes
    /// under a grant signed by this key: a MAC over the bucket, key and
    /// store id, in a signing scope no S3 request uses.
    fn capability_key(&self) -> SigningKey {
        let secret = &self.grant.credential.secret_access_key;
        SigningKey::derive(
            secret,
            "00000000",
            &self.state.config().region,
            "stowage-upload",
        )
    }

    /// What the capability signs: the upload's bucket, key and store id.
    fn capability_message(&self, key: &str, id: &str) -> String {
        format!("{}\n{key}\n{id}", self.grant.bucket)
    }

    fn handle_for(&self, key: &str, id: &str) -> String {
        let mac = self
            .capability_key()
            .sign(&self.capability_message(key, id));
        format!("{id}.{mac}")
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
        let key = self.grant.key_for(filename)?;
        let metadata = self.query.0.iter().filter_map(|(n, v)| {
            let k = n.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((k, v.clone()))
        });
        let offered = Self::offered(self.query.get("type").unwrap_or(""), metadata);
        // The form carries every field the policy names, as its rule
        // settled them; POST Object checks them again.
        let (fields, _) = self.grant.admit(&key, offered, self.now)?;
        let fields: serde_json::Map<String, Value> = fields
            .into_iter()
            .filter(|(n, _)| n != "bucket")
            .map(|(n, v)| (n, v.into()))
            .collect();
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
        let metadata = body
            .metadata
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?.to_owned())));
        let offered = Self::offered(&body.content_type, metadata);
        let (fields, stored) = self.grant.admit(&key, offered, self.now)?;
        if let Some((name, _)) = fields
            .iter()
            .find(|(n, _)| n == "content-md5" || n.starts_with("x-amz-checksum-"))
        {
            return Err(invalid(format!(
                "This grant fixes the whole object's {name}, which a multipart upload cannot check as it goes; upload the file with the POST form of GET params instead."
            )));
        }
        let limits = &self.state.config().limits;
        let (max_size, granted) = self.grant.hold(limits, self.now);
        // A retried create (same grant, same key, same Idempotency-Key)
        // gets the same upload. Without one the token is unique.
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
            Some(k) => sha256_hex(
                &[
                    granted.grant.as_bytes(),
                    b"\n",
                    key.as_bytes(),
                    b"\n",
                    k.as_bytes(),
                ]
                .concat(),
            ),
            None => format!(
                "grant-{}",
                crate::store::model::id_hex(crate::store::model::new_id())
            ),
        };
        let record = UploadRecord {
            initiated_ms: self.now,
            owner: self.grant.credential.access_key_id.clone(),
            meta: stored.meta,
            checksum: None,
            tags: stored.tags,
            acl: stored.acl,
            max_size: Some(max_size),
            token: Some(token),
            granted: Some(granted),
        };
        let meta_store = &self.state.store.meta;
        let id = meta_store
            .create_upload(&self.grant.bucket, &key, record)
            .await?;
        let handle = self.handle_for(&key, &id);
        let body = json!({"key": key, "uploadId": handle, "bucket": self.grant.bucket});
        Ok((json(StatusCode::OK, &body), key))
    }

    /// The store id of the upload a route names by its handle, once the
    /// handle's capability is checked and the upload found at the grant's
    /// bucket and `key`, made under a grant and not expired. Anything else
    /// is `NoSuchUpload`, so a route tells nothing of uploads it may not
    /// reach.
    async fn upload<'h>(&self, handle: &'h str) -> S3Result<(String, &'h str)> {
        let key = self.key()?;
        let (id, mac) = handle.rsplit_once('.').unwrap_or((handle, ""));
        if !self
            .capability_key()
            .verify(&self.capability_message(&key, id), mac)
        {
            return Err(S3Error::new(Code::NoSuchUpload));
        }
        let upload = self
            .state
            .store
            .meta
            .upload(&self.grant.bucket, &key, id)
            .await?;
        if upload.owner != self.grant.credential.access_key_id
            || upload.granted.is_none()
            || upload.expired(self.now)
        {
            return Err(S3Error::new(Code::NoSuchUpload));
        }
        Ok((key, id))
    }

    async fn sign_parts(
        &self,
        handle: &str,
        numbers: &[u32],
        batch: bool,
    ) -> S3Result<(Response<ResponseBody>, String)> {
        let (key, id) = self.upload(handle).await?;
        let signer = Signer {
            access_key: &self.grant.credential.access_key_id,
            secret: &self.grant.credential.secret_access_key,
            region: &self.state.config().region,
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

    async fn list_parts(&self, handle: &str) -> S3Result<(Response<ResponseBody>, String)> {
        let (key, id) = self.upload(handle).await?;
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
        handle: &str,
        body: CompleteBody,
    ) -> S3Result<(Response<ResponseBody>, String)> {
        let (key, id) = self.upload(handle).await?;
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
            min_part_size: self.state.config().limits.min_part_size,
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

    async fn abort(&self, handle: &str) -> S3Result<(Response<ResponseBody>, String)> {
        let (key, id) = self.upload(handle).await?;
        self.state
            .store
            .meta
            .abort_upload(&self.grant.bucket, &key, id)
            .await?;
        Ok((json(StatusCode::OK, &json!({})), key))
    }
}
