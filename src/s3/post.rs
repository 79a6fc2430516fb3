//! POST Object: a browser uploads a file with an HTML form
//! (`POST /bucket`, `multipart/form-data`), permitted by a policy that an
//! app's backend signed. As on S3:
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html>
//!
//! The fields before the file carry the key, the metadata and the signed
//! policy; they are read (at most [`FIELDS_MAX`] bytes) and checked, the
//! signature and every condition, before a byte of the file is stored. The
//! file then streams into a blob, its size held to the policy's
//! `content-length-range` as it arrives; a violation stores nothing. Fields
//! after the file are ignored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::{Ctx, set_header, status_response, xml_response};
use crate::auth::Principal;
use crate::auth::post_policy::{self, PostPolicy, Stored};
use crate::checksum::{self, Algorithm};
use crate::error::{Code, S3Error, S3Result};
use crate::s3::router::Operation;
use crate::server::body::{RequestBody, ResponseBody};
use crate::store::ingest::Expect;
use crate::store::model::WriteCondition;
use crate::xml::XmlWriter;

/// The most the fields before the file may hold, as on S3.
const FIELDS_MAX: usize = 20 * 1024;
/// The most of the body passed to the form reader before the file part
/// begins: the fields, their part heads and the framing. The reader buffers
/// what it has not parsed yet, so this is what an unauthenticated form can
/// make the server hold.
const PRE_FILE_MAX: usize = FIELDS_MAX + 12 * 1024;
/// Until the file begins, the body goes to the form reader in pieces of at
/// most this size, so that a large read cannot carry it past
/// [`PRE_FILE_MAX`].
const PRE_FILE_PIECE: usize = 4 * 1024;
/// What each field costs against [`FIELDS_MAX`] beyond its name and value
/// (its part head), so that many empty fields cannot pile up.
const FIELD_OVERHEAD: usize = 64;

fn malformed(why: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(
        Code::MalformedPOSTRequest,
        format!("The body of your POST request is not well-formed multipart/form-data: {why}"),
    )
}

/// The form's fields, in order, names lower-cased (S3 compares them
/// without case), with the file field's filename.
struct Form {
    fields: Vec<(String, String)>,
    filename: Option<String>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A multipart reader's error: the body's own S3 error when reading the
/// body failed (a timeout, a limit), otherwise the form is malformed.
fn form_error(e: multer::Error) -> S3Error {
    match e {
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<S3Error>() {
            Ok(e) => *e,
            Err(other) => malformed(other),
        },
        other => malformed(other),
    }
}

/// The body as the form reader takes it. Until the file part begins
/// (`file_started`), it goes in pieces of at most [`PRE_FILE_PIECE`], and
/// no more than [`PRE_FILE_MAX`] bytes in all; then in the chunks it came
/// in.
fn body_stream(
    body: RequestBody,
    file_started: Arc<AtomicBool>,
) -> impl futures_util::Stream<Item = Result<Bytes, S3Error>> + Send + 'static {
    let state = (body, Bytes::new(), 0usize);
    futures_util::stream::unfold(state, move |(mut body, mut held, seen)| {
        let file_started = Arc::clone(&file_started);
        async move {
            if held.is_empty() {
                held = match body.next().await {
                    Ok(Some(data)) => data,
                    Ok(None) => return None,
                    Err(e) => return Some((Err(e), (body, held, seen))),
                };
            }
            if file_started.load(Ordering::Relaxed) {
                let piece = std::mem::take(&mut held);
                return Some((Ok(piece), (body, held, seen)));
            }
            let piece = held.split_to(held.len().min(PRE_FILE_PIECE));
            let seen = seen + piece.len();
            if seen > PRE_FILE_MAX {
                return Some((Err(fields_too_large()), (body, held, seen)));
            }
            Some((Ok(piece), (body, held, seen)))
        }
    })
}

fn fields_too_large() -> S3Error {
    S3Error::new(Code::MaxPostPreDataLengthExceeded)
        .detail("MaxPostPreDataLengthBytes", FIELDS_MAX.to_string())
}

pub async fn post_object(ctx: &mut Ctx) -> S3Result<Response<ResponseBody>> {
    let bucket = ctx.bucket().to_owned();
    let boundary = form_boundary(ctx)?;
    let limit = ctx.state.config().limits.max_object_size + FIELDS_MAX as u64 + 64 * 1024;
    let body = ctx.body(limit)?;
    let file_started = Arc::new(AtomicBool::new(false));
    let stream = body_stream(body, Arc::clone(&file_started));
    let mut form_reader = multer::Multipart::new(stream, boundary);
    let (form, mut file) = read_fields(&mut form_reader, &file_started).await?;

    let principal = authenticate(ctx, &form, &bucket).await?;
    ctx.authenticated();
    let key = expand_key(&form)?;
    super::check_key(&key)?;
    // The policy sees the bucket and the expanded key among the fields.
    let mut checked = form.fields.clone();
    checked.retain(|(n, _)| n != "key" && n != "bucket");
    checked.push(("bucket".into(), bucket.clone()));
    checked.push(("key".into(), key.clone()));
    // The policy's rule (every condition holds, nothing unnamed) decides
    // what the object stores; without a policy, the bucket lets anonymous
    // writes and the form's fields are taken as they are.
    let (stored, range) = match &principal.1 {
        Some(policy) => (
            policy.admit(&checked, crate::time::now_ms())?,
            policy.length_range(),
        ),
        None => (Stored::from_fields(&checked)?, None),
    };
    ctx.principal = principal.0;
    ctx.key = Some(key.clone());
    let digests = digest_fields(&form)?;
    // A redirect that cannot be one is ignored, as on S3.
    let redirect = form
        .get("success_action_redirect")
        .or(form.get("redirect"))
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .filter(|u| HeaderValue::from_str(u).is_ok())
        .map(str::to_owned);
    let status = success_status(form.get("success_action_status"))?;

    // The file, streamed through the store's one ingest path.
    let (min, max) = range.unwrap_or((0, u64::MAX));
    let md5 = checksum::content_md5(&digests)?;
    let mut expect = Expect::new(md5, checksum::requested(&digests)?, Algorithm::Crc64Nvme);
    (expect.min, expect.max) = (min, max.min(ctx.state.config().limits.max_object_size));
    expect.inline = true;
    let received = ctx
        .store()
        .ingest(&mut FormFile(&mut file), &expect)
        .await?;
    // What follows the file is ignored, as on S3; it is read (a little of
    // it) so that the connection stays usable.
    drop(file);
    let _ = drain(&mut form_reader).await;

    let head = ctx
        .store()
        .put_object(
            (&bucket, &key),
            received,
            (stored.meta, stored.tags, stored.acl),
            WriteCondition::None,
        )
        .await?;
    Ok(respond(ctx, (&bucket, &key), &head, redirect, status))
}

/// The form's boundary; a POST that is not `multipart/form-data` is
/// refused as S3 refuses it.
fn form_boundary(ctx: &Ctx) -> S3Result<String> {
    let content_type = ctx.header("content-type").unwrap_or_default();
    if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return multer::parse_boundary(content_type).map_err(form_error);
    }
    let why = "Bucket POST must be of the enclosure-type multipart/form-data";
    Err(S3Error::with_message(Code::PreconditionFailed, why).detail("Condition", why))
}

/// The fields before the file, at most [`FIELDS_MAX`] bytes of them, each
/// once; and the file field, not yet read.
async fn read_fields<'r>(
    form_reader: &mut multer::Multipart<'r>,
    file_started: &AtomicBool,
) -> S3Result<(Form, multer::Field<'r>)> {
    let mut form = Form {
        fields: Vec::new(),
        filename: None,
    };
    let mut size = 0;
    loop {
        let Some(mut field) = form_reader.next_field().await.map_err(form_error)? else {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                "POST requires exactly one file upload per request.",
            )
            .detail("ArgumentName", "file")
            .detail("ArgumentValue", "0"));
        };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            file_started.store(true, Ordering::Relaxed);
            form.filename = Some(field.file_name().unwrap_or_default().to_owned());
            return Ok((form, field));
        }
        size += name.len() + FIELD_OVERHEAD;
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(form_error)? {
            size += chunk.len();
            if size > FIELDS_MAX {
                return Err(fields_too_large());
            }
            value.extend_from_slice(&chunk);
        }
        if size > FIELDS_MAX {
            return Err(fields_too_large());
        }
        let value = String::from_utf8(value)
            .map_err(|_| malformed(format!("the field {name} is not UTF-8")))?;
        // A field given twice could satisfy a condition with one value and
        // store the other.
        if form.fields.iter().any(|(n, _)| *n == name) {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                format!("The form field {name} appears more than once."),
            )
            .detail("ArgumentName", name));
        }
        form.fields.push((name, value));
    }
}

/// The answer to a stored form: a redirect, a `PostResponse` document
/// (201), or an empty status.
fn respond(
    ctx: &Ctx,
    (bucket, key): (&str, &str),
    head: &crate::store::model::ObjectHead,
    redirect: Option<String>,
    status: StatusCode,
) -> Response<ResponseBody> {
    let etag = super::quoted(&head.etag);
    let location = format!(
        "{}/{bucket}/{}",
        crate::server::state::origin_of(&ctx.state, &ctx.headers),
        uri_query(key)
    );
    if let Some(target) = redirect {
        let mut r = status_response(StatusCode::SEE_OTHER);
        let sep = if target.contains('?') { '&' } else { '?' };
        let query = format!(
            "bucket={}&key={}&etag={}",
            uri_query(bucket),
            uri_query(key),
            uri_query(&etag)
        );
        set_header(&mut r, "location", &format!("{target}{sep}{query}"));
        set_header(&mut r, "etag", &etag);
        return r;
    }
    let mut r = if status == StatusCode::CREATED {
        let mut w = XmlWriter::new();
        w.out_raw("<PostResponse>");
        w.elem("Location", &location);
        w.elem("Bucket", bucket);
        w.elem("Key", key);
        w.elem("ETag", &etag);
        w.close("PostResponse");
        let mut r = xml_response(w.finish());
        *r.status_mut() = status;
        r
    } else {
        status_response(status)
    };
    set_header(&mut r, "etag", &etag);
    set_header(&mut r, "location", &location);
    if let Some((algorithm, value)) = head.checksum_value() {
        super::objects::checksum_headers(&mut r, algorithm, &value, head.checksum_type);
    }
    r
}

/// Who the form acts as: the key that signed its policy, allowed to put
/// objects in `bucket`; or, without a policy, an anonymous client, which
/// no bucket lets write.
async fn authenticate(
    ctx: &Ctx,
    form: &Form,
    bucket: &str,
) -> S3Result<(Principal, Option<PostPolicy>)> {
    let (principal, policy) = match form.get("policy") {
        Some(policy_b64) => {
            let config = &ctx.state.config();
            let field = |name: &str| form.get(name).map(str::to_owned);
            let credential = post_policy::verify(config, field, policy_b64)?;
            let policy = PostPolicy::decode(policy_b64)?;
            (Principal::Key(credential), Some(policy))
        }
        None if form.get("signature").is_some() || form.get("awsaccesskeyid").is_some() => {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                "POST forms signed with Signature Version 2 (AWSAccessKeyId, signature) are not supported; sign with AWS4-HMAC-SHA256 (boto3: Config(signature_version=\"s3v4\")).",
            )
            .detail("ArgumentName", "signature"));
        }
        None if form.get("x-amz-signature").is_some() => {
            return Err(S3Error::with_message(
                Code::InvalidArgument,
                "Bucket POST must contain a field named 'policy'.  If it is specified, please check the order of the fields.",
            )
            .detail("ArgumentName", "policy"));
        }
        None => (Principal::Anonymous, None),
    };
    let target = (Some(bucket), None);
    super::authorize(&ctx.state, &principal, Operation::PutObject, true, target).await?;
    Ok((principal, policy))
}

/// The `key` field, with `${filename}` replaced by the file's name.
fn expand_key(form: &Form) -> S3Result<String> {
    let key = form.get("key").ok_or_else(|| {
        S3Error::with_message(
            Code::InvalidArgument,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )
        .detail("ArgumentName", "key")
        .detail("ArgumentValue", "")
    })?;
    let filename = form.filename.as_deref().unwrap_or_default();
    // Browsers on some systems send a path; S3 keeps the last component.
    let filename = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    let key = key.replace("${filename}", filename);
    post_policy::check_browser_key(&key)?;
    if key.is_empty() {
        return Err(S3Error::with_message(
            Code::InvalidArgument,
            "User key must have a length greater than 0.",
        )
        .detail("ArgumentName", "key"));
    }
    Ok(key)
}

/// `Content-MD5` and `x-amz-checksum-*` fields, as the headers the
/// checksum code reads.
fn digest_fields(form: &Form) -> S3Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in &form.fields {
        if name == "content-md5" || name.starts_with("x-amz-checksum-") {
            let n = HeaderName::try_from(name.as_str());
            let v = HeaderValue::from_str(value);
            let (Ok(n), Ok(v)) = (n, v) else {
                return Err(S3Error::invalid_argument(
                    "Invalid checksum field.",
                    "field",
                    name,
                ));
            };
            headers.insert(n, v);
        }
    }
    Ok(headers)
}

/// `success_action_status`: 200, 201 or 204 (the default; any other value
/// is 204 too, as on S3).
fn success_status(value: Option<&str>) -> S3Result<StatusCode> {
    Ok(match value.map(str::trim) {
        Some("200") => StatusCode::OK,
        Some("201") => StatusCode::CREATED,
        _ => StatusCode::NO_CONTENT,
    })
}

/// A form's file field as a body to ingest.
struct FormFile<'a, 'f>(&'a mut multer::Field<'f>);

impl crate::store::ingest::Source for FormFile<'_, '_> {
    async fn next_piece(&mut self) -> S3Result<Option<bytes::Bytes>> {
        self.0.chunk().await.map_err(form_error)
    }
}

/// Reads what follows the file, up to a bound, and discards it.
async fn drain(form: &mut multer::Multipart<'_>) -> Result<(), multer::Error> {
    let mut left = FIELDS_MAX;
    while let Some(mut field) = form.next_field().await? {
        while let Some(chunk) = field.chunk().await? {
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn uri_query(value: &str) -> String {
    let mut out = String::new();
    crate::auth::sigv4::uri_encode(value.as_bytes(), false, &mut out);
    out
}
