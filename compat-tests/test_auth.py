"""Authentication, per-key permissions and CORS, checked with clients that
share no code with the server: boto3 and its presigner, the aws CLI, plain
http.client / urllib requests, and sigv4.py, a signer written from the AWS
documentation (checked below against the documentation's own examples and
against botocore).

Most tests use the session's server: its config is empty, so the dev
credential (stowage / stowage-dev-secret) is the only key and an admin, and
CORS is off until a bucket gets rules of its own. The permission and
default-CORS tests use a second server started with AUTH_CONFIG.
"""

import base64
import datetime
import email.utils
import hashlib
import hmac
import http.client
import os
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from typing import NamedTuple
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import sigv4
from conftest import (ACCESS_KEY, REGION, SECRET_KEY, _runner, _tool, empty_and_delete,
                      unique_bucket_name)
from helpers import MiB, etag, multipart_etag, s3_error

APP = "https://app.example"

# The second server: an admin, two ordinary keys, a key limited to named
# buckets, a read-only key, a public bucket, and a default CORS rule for
# the browser app at APP.
AUTH_CONFIG = f"""
region = "{REGION}"
public_read_buckets = ["www"]

[[credentials]]
access_key_id = "root"
secret_access_key = "root-secret"
admin = true

[[credentials]]
access_key_id = "alice"
secret_access_key = "alice-secret"

[[credentials]]
access_key_id = "bob"
secret_access_key = "bob-secret"

[[credentials]]
access_key_id = "uploader"
secret_access_key = "uploader-secret"
buckets = ["incoming", "incoming-2"]

[[credentials]]
access_key_id = "reader"
secret_access_key = "reader-secret"
buckets = ["shared"]
read_only = true

[[cors]]
allowed_origins = ["{APP}"]
allowed_methods = ["GET", "PUT", "POST", "DELETE", "HEAD"]
allowed_headers = ["*"]
expose_headers = ["ETag"]
max_age_secs = 3000
"""
SECRETS = {"root": "root-secret", "alice": "alice-secret", "bob": "bob-secret",
           "uploader": "uploader-secret", "reader": "reader-secret"}
# Created by root when the server starts; AUTH_CONFIG names them.
ROOT_BUCKETS = ["www", "shared", "incoming"]
INDEX = b"<html>public page</html>\n"
REPORT = b"quarterly numbers\n"


# --- clients and raw HTTP --------------------------------------------------------


def client(endpoint, key=ACCESS_KEY, secret=SECRET_KEY, **config):
    """A boto3 client with path-style addressing; `config` adds Config options."""
    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                    region_name=REGION)
    return session.client("s3", endpoint_url=endpoint, config=Config(
        s3={"addressing_style": "path"}, **config))


def presigner(endpoint, key=ACCESS_KEY, secret=SECRET_KEY):
    """A boto3 client whose generate_presigned_url makes SigV4 URLs. (boto3
    still presigns S3 URLs with SigV2 unless told otherwise.)"""
    return client(endpoint, key, secret, signature_version="s3v4")


def anonymous_client(endpoint):
    return client(endpoint, signature_version=UNSIGNED)


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def http_request(method, url, headers=None, body=None) -> Reply:
    """One request with http.client, the URL's path and query sent exactly as
    given (no re-encoding), no headers beyond `headers` but Host,
    Accept-Encoding and Content-Length."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def urllib_request(method, url, data=None, headers=None) -> Reply:
    """One request with urllib (which adds its own User-Agent, and a
    Content-Type for a body)."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def send(endpoint, signed: sigv4.Signed, body=None) -> Reply:
    return http_request(signed.method, endpoint + signed.target, signed.headers, body)


def own_sign(endpoint, method, path, query=(), headers=None, body=b"", *,
             key=ACCESS_KEY, secret=SECRET_KEY, payload_hash=None, **kwargs):
    """Signs a request to `endpoint` with sigv4.py; the payload hash is the
    body's SHA-256 unless given."""
    return sigv4.sign(method, urlsplit(endpoint).netloc, path, query, headers,
                      payload_hash or sigv4.sha256_hex(body),
                      access_key=key, secret_key=secret, **kwargs)


def error_fields(reply: Reply) -> dict:
    """The children of an <Error> XML body as {tag: text}; {} for any other
    body."""
    try:
        root = ET.fromstring(reply.body)
    except ET.ParseError:
        return {}
    if root.tag.split("}")[-1] != "Error":
        return {}
    return {child.tag.split("}")[-1]: child.text or "" for child in root}


def assert_error(reply: Reply, status: int, *codes: str) -> dict:
    """Asserts the HTTP status and that the XML error Code is one of `codes`;
    returns the error's fields."""
    fields = error_fields(reply)
    got = (reply.status, fields.get("Code"))
    assert reply.status == status and fields.get("Code") in codes, \
        f"expected {status} {' or '.join(codes)}, got {got}: {reply.body[:2000]!r}"
    return fields


def header_items(reply: Reply, name: str):
    """A comma-separated response header (possibly sent as several lines) as
    a list of lower-case items."""
    value = ",".join(reply.headers.get_all(name) or [])
    return [item.strip().lower() for item in value.split(",") if item.strip()]


def preflight(url, origin, method, request_headers=None) -> Reply:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    return http_request("OPTIONS", url, headers)


def with_query(url, **changes):
    """`url` with query parameters replaced or added (others kept in order)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    names = [k for k, _ in pairs]
    pairs = [(k, str(changes[k]) if k in changes else v) for k, v in pairs]
    pairs += [(k, str(v)) for k, v in changes.items() if k not in names]
    return parts._replace(query=urlencode(pairs, safe="~")).geturl()


def assert_no_key(s3, bucket, key):
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key=key)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.fixture(scope="module")
def presign(endpoint):
    """A SigV4 presigner with the dev credential."""
    return presigner(endpoint)


# --- the signer itself (no server) ---------------------------------------------------

DOC_TIME = datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc)
DOC_KEYS = {"access_key": "AKIAIOSFODNN7EXAMPLE",
            "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


def test_signer_reproduces_the_aws_documentation_examples():
    """sigv4.py computes the signatures published in the S3 SigV4 docs: the
    GetObject and ListObjects header examples, the chunked-upload seed and
    chunk signatures, and the chunked upload with a trailer."""
    get = sigv4.sign("GET", "examplebucket.s3.amazonaws.com", "/test.txt", (),
                     {"Range": "bytes=0-9"}, when=DOC_TIME, **DOC_KEYS)
    assert get.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    listing = sigv4.sign("GET", "examplebucket.s3.amazonaws.com", "/",
                         {"max-keys": "2", "prefix": "J"}, when=DOC_TIME, **DOC_KEYS)
    assert listing.signature == \
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"

    seed, body = sigv4.sign_streaming(
        "PUT", "s3.amazonaws.com", "/examplebucket/chunkObject.txt", b"a" * 66560, 65536,
        headers={"x-amz-storage-class": "REDUCED_REDUNDANCY"}, when=DOC_TIME, **DOC_KEYS)
    assert seed.signature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    assert seed.headers["content-length"] == "66824" == str(len(body))
    for sig in ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]:
        assert f";chunk-signature={sig}\r\n".encode() in body
    assert body.endswith(b"\r\n\r\n")

    seed, body = sigv4.sign_streaming(
        "PUT", "s3.amazonaws.com", "/examplebucket/chunkObject.txt", b"a" * 66560, 65536,
        headers={"x-amz-storage-class": "REDUCED_REDUNDANCY"},
        trailers=[("x-amz-checksum-crc32c", "sOO8/Q==")], sign_content_length=False,
        when=DOC_TIME, **DOC_KEYS)
    assert seed.signature == "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    assert body.endswith(
        b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:"
        b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n")


def test_signer_agrees_with_botocore():
    """sigv4.py and botocore's S3SigV4Auth sign the same request (odd key,
    query, metadata with runs of spaces) identically."""
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    body = b"hello world"
    key = "dir/ñandú 日本 +=&?%2F~!$'()*,;@"
    headers = {"Content-Type": "text/plain", "x-amz-meta-Color": "  blue   sky "}
    ours = sigv4.sign("PUT", "127.0.0.1:9000", "/bkt/" + key,
                      {"uploadId": "a/b=c+d", "partNumber": "3"}, headers,
                      sigv4.sha256_hex(body), access_key="AK", secret_key="SK", when=when)
    theirs = AWSRequest("PUT", "http://127.0.0.1:9000" + ours.target, headers=headers, data=body)
    with mock.patch.object(botocore.auth, "get_current_datetime",
                           return_value=when.replace(tzinfo=None)):
        botocore.auth.S3SigV4Auth(Credentials("AK", "SK"), "s3", REGION).add_auth(theirs)
    assert theirs.headers["Authorization"] == ours.headers["Authorization"]


# --- requests signed with sigv4.py are accepted ------------------------------------


def test_own_signed_requests_are_accepted(endpoint, s3, bucket):
    """Header-signed PutObject (hex and UNSIGNED-PAYLOAD payload hashes, signed
    metadata, a key needing percent-encoding), GetObject, ListObjectsV2 with a
    query and DeleteObject all succeed when signed by sigv4.py."""
    key = "own signer/ñ a+b=c&d~.txt"
    data = os.urandom(5000)
    put = send(endpoint, own_sign(endpoint, "PUT", f"/{bucket}/{key}", body=data,
                                  headers={"x-amz-meta-color": "blue"}), data)
    assert put.status == 200, put.body
    assert put.headers["ETag"] == etag(data)
    got = send(endpoint, own_sign(endpoint, "GET", f"/{bucket}/{key}"))
    assert (got.status, got.body) == (200, data)
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"] == {"color": "blue"}

    unsigned = send(endpoint, own_sign(endpoint, "PUT", f"/{bucket}/unsigned-payload",
                                       payload_hash=sigv4.UNSIGNED_PAYLOAD), b"xyz")
    assert unsigned.status == 200, unsigned.body
    assert s3.get_object(Bucket=bucket, Key="unsigned-payload")["Body"].read() == b"xyz"

    listing = send(endpoint, own_sign(endpoint, "GET", f"/{bucket}",
                                      {"list-type": "2", "prefix": "own signer/"}))
    assert listing.status == 200, listing.body
    keys = [e.text for e in ET.fromstring(listing.body).iter()
            if e.tag.split("}")[-1] == "Key"]
    assert keys == [key]

    deleted = send(endpoint, own_sign(endpoint, "DELETE", f"/{bucket}/{key}"))
    assert deleted.status == 204, deleted.body
    assert_no_key(s3, bucket, key)


# --- presigned URLs --------------------------------------------------------------


def test_presigned_put_and_get_round_trip(presign, s3, bucket):
    """A SigV4 URL from boto3's generate_presigned_url works for PutObject and
    GetObject from urllib, with no AWS library on the request: the bytes
    round-trip exactly, and a signed response-* override is applied."""
    key = "presigned/a b+c.bin"
    data = os.urandom(300_000)
    put_url = presign.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert "X-Amz-Signature=" in put_url and "X-Amz-Credential=" in put_url
    put = urllib_request("PUT", put_url, data=data)
    assert put.status == 200, put.body
    assert put.headers["ETag"] == etag(data)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data)

    get_url = presign.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key,
                              "ResponseContentDisposition": "attachment; filename=x.bin"},
        ExpiresIn=300)
    got = urllib_request("GET", get_url)
    assert got.status == 200
    assert got.body == data
    assert got.headers["Content-Disposition"] == "attachment; filename=x.bin"


def test_presigned_url_expired(presign, s3, bucket):
    """A presigned URL used after X-Amz-Date + X-Amz-Expires is refused with
    403 AccessDenied "Request has expired", for GET and for PUT."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    get_url = presign.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    put_url = presign.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2.1)
    for reply in [http_request("GET", get_url), http_request("PUT", put_url, body=b"replaced")]:
        fields = assert_error(reply, 403, "AccessDenied")
        assert "Request has expired" in fields.get("Message", ""), fields
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"


ALTERATIONS = {
    "path changed": lambda url: url.replace("/public.txt?", "/secret.txt?"),
    "query param added": lambda url: with_query(url, **{"response-content-type": "text/html"}),
    "expiry changed": lambda url: with_query(url, **{"X-Amz-Expires": 3600}),
    "signature changed": lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"),
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
def test_presigned_url_altered(presign, s3, bucket, alteration):
    """Changing any signed part of a presigned GET URL (the path, the query
    parameters, the signature) gives 403 SignatureDoesNotMatch, and the error
    body reports the server's StringToSign and CanonicalRequest."""
    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"shared")
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"not shared")
    url = presign.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "public.txt"}, ExpiresIn=600)
    assert http_request("GET", url).body == b"shared"
    altered = ALTERATIONS[alteration](url)
    assert altered != url
    fields = assert_error(http_request("GET", altered), 403, "SignatureDoesNotMatch")
    assert fields.get("StringToSign", "").startswith("AWS4-HMAC-SHA256\n"), fields
    assert fields.get("CanonicalRequest", "").startswith("GET\n"), fields


def test_presigned_url_used_with_another_method(presign, s3, bucket):
    """The HTTP method is signed: a presigned GET URL sent as DELETE is 403
    SignatureDoesNotMatch and deletes nothing."""
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    url = presign.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "keep"}, ExpiresIn=600)
    assert_error(http_request("DELETE", url), 403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


def test_presigned_put_with_signed_content_type(presign, s3, bucket):
    """A presigned PUT whose Content-Type was signed (X-Amz-SignedHeaders
    content-type;host) accepts only that Content-Type: another one is 403
    SignatureDoesNotMatch."""
    url = presign.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "typed", "ContentType": "text/plain"},
        ExpiresIn=300)
    assert "content-type" in dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"]
    wrong = http_request("PUT", url, {"Content-Type": "text/html"}, b"<script>")
    assert_error(wrong, 403, "SignatureDoesNotMatch")
    assert_no_key(s3, bucket, "typed")
    right = http_request("PUT", url, {"Content-Type": "text/plain"}, b"plain")
    assert right.status == 200, right.body
    assert s3.head_object(Bucket=bucket, Key="typed")["ContentType"] == "text/plain"


def test_presigned_url_longer_than_a_week(presign, s3, bucket):
    """X-Amz-Expires above 604800 seconds (7 days) is 400
    AuthorizationQueryParametersError."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = presign.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604801)
    assert_error(http_request("GET", url), 400, "AuthorizationQueryParametersError")


def test_awscli_presign(endpoint, cli_env, s3, bucket, tmp_path):
    """`aws s3 presign` configured for SigV4 makes a URL that urllib can GET."""
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n    addressing_style = path\n"
                      "    signature_version = s3v4\n")
    aws = _runner(_tool("aws"), endpoint, dict(cli_env, AWS_CONFIG_FILE=str(config)))
    data = os.urandom(10_000)
    s3.put_object(Bucket=bucket, Key="cli/presigned", Body=data)
    url = aws("s3", "presign", f"s3://{bucket}/cli/presigned", "--expires-in", "300").stdout.strip()
    assert "X-Amz-Signature=" in url, url
    got = urllib_request("GET", url)
    assert (got.status, got.body) == (200, data)


# --- header authentication errors ---------------------------------------------------


def test_wrong_secret(endpoint, bucket, s3):
    """A signature made with the wrong secret is 403 SignatureDoesNotMatch, from
    boto3 and from sigv4.py; the error reports exactly the StringToSign and
    CanonicalRequest the client signed."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    wrong = client(endpoint, ACCESS_KEY, "not-the-secret")
    with s3_error("SignatureDoesNotMatch", 403):
        wrong.get_object(Bucket=bucket, Key="k")
    with s3_error("SignatureDoesNotMatch", 403):
        wrong.put_object(Bucket=bucket, Key="k", Body=b"overwritten")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"

    signed = own_sign(endpoint, "GET", f"/{bucket}/k", {"versionId": "null"},
                      secret="not-the-secret")
    fields = assert_error(send(endpoint, signed), 403, "SignatureDoesNotMatch")
    assert fields.get("StringToSign") == signed.string_to_sign
    assert fields.get("CanonicalRequest") == signed.canonical_request


def test_unknown_access_key(endpoint, bucket):
    """An access key the server does not know is 403 InvalidAccessKeyId."""
    stranger = client(endpoint, "AKIDNOSUCHKEY", SECRET_KEY)
    with s3_error("InvalidAccessKeyId", 403):
        stranger.list_objects_v2(Bucket=bucket)
    with s3_error("InvalidAccessKeyId", 403):
        stranger.put_object(Bucket=bucket, Key="k", Body=b"x")
    with s3_error("InvalidAccessKeyId", 403):
        stranger.list_buckets()


def test_anonymous_requests_are_denied(endpoint, s3, bucket):
    """Requests without any authentication, on a bucket that is not
    public-read, are 403 AccessDenied: GetObject, ListObjects, ListBuckets,
    PutObject (which stores nothing) and DeleteObject."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"private")
    for method, path, body in [("GET", f"/{bucket}/k", None),
                               ("GET", f"/{bucket}?list-type=2", None),
                               ("GET", "/", None),
                               ("PUT", f"/{bucket}/new", b"anonymous"),
                               ("DELETE", f"/{bucket}/k", None)]:
        reply = http_request(method, endpoint + path, body=body)
        assert_error(reply, 403, "AccessDenied")
    assert_no_key(s3, bucket, "new")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"private"
    with s3_error("AccessDenied", 403):
        anonymous_client(endpoint).get_object(Bucket=bucket, Key="k")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_request_time_too_skewed(endpoint, s3, bucket, minutes):
    """A request signed with an x-amz-date 20 minutes from the server's clock
    (more than the 15 minutes allowed) is 403 RequestTimeTooSkewed, and a
    PUT so signed stores nothing."""
    when = sigv4.utc_now() + datetime.timedelta(minutes=minutes)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    get = own_sign(endpoint, "GET", f"/{bucket}/k", when=when)
    assert_error(send(endpoint, get), 403, "RequestTimeTooSkewed")
    put = own_sign(endpoint, "PUT", f"/{bucket}/skewed", body=b"late", when=when)
    assert_error(send(endpoint, put, b"late"), 403, "RequestTimeTooSkewed")
    assert_no_key(s3, bucket, "skewed")


def test_boto3_with_a_slow_clock_is_too_skewed(endpoint, bucket):
    """boto3 signing with a clock 20 minutes behind gets 403
    RequestTimeTooSkewed."""
    real = botocore.auth.get_current_datetime
    slow = client(endpoint, retries={"total_max_attempts": 1})
    with mock.patch.object(botocore.auth, "get_current_datetime",
                           lambda *a, **kw: real(*a, **kw) - datetime.timedelta(minutes=20)):
        with s3_error("RequestTimeTooSkewed", 403):
            slow.list_objects_v2(Bucket=bucket)


def test_amz_header_added_after_signing(endpoint, s3, bucket):
    """An x-amz-meta-* header that is not among SignedHeaders (added after
    boto3 or sigv4.py signed the request) makes the request 403, and nothing
    is stored."""
    late = client(endpoint)

    def inject(request, **_):
        request.headers["x-amz-meta-injected"] = "after-signing"

    late.meta.events.register("before-send.s3.PutObject", inject)
    with pytest.raises(ClientError) as info:
        late.put_object(Bucket=bucket, Key="boto3", Body=b"x")
    response = info.value.response
    got = (response["Error"].get("Code"), response["ResponseMetadata"]["HTTPStatusCode"])
    assert got in {("AccessDenied", 403), ("SignatureDoesNotMatch", 403)}, got
    assert_no_key(s3, bucket, "boto3")

    signed = own_sign(endpoint, "PUT", f"/{bucket}/own", body=b"y")
    signed.headers["x-amz-meta-late"] = "after-signing"
    assert_error(send(endpoint, signed, b"y"), 403, "AccessDenied", "SignatureDoesNotMatch")
    assert_no_key(s3, bucket, "own")


def test_missing_date_is_denied(endpoint, s3, bucket):
    """A header-signed request with neither x-amz-date nor Date is 403
    AccessDenied."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    signed = own_sign(endpoint, "GET", f"/{bucket}/k")
    del signed.headers["x-amz-date"]
    assert_error(send(endpoint, signed), 403, "AccessDenied")


def test_unsigned_host_is_denied(endpoint, s3, bucket):
    """A signature whose SignedHeaders leave out host is 403 AccessDenied."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    signed = own_sign(endpoint, "GET", f"/{bucket}/k", unsigned=("host",))
    assert "SignedHeaders=x-amz-content-sha256;x-amz-date," in signed.headers["Authorization"]
    assert_error(send(endpoint, signed), 403, "AccessDenied")


def test_malformed_authorization_header(endpoint, s3, bucket):
    """An Authorization header that does not parse, or whose credential scope
    names another region, is 400 AuthorizationHeaderMalformed."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    signed = own_sign(endpoint, "GET", f"/{bucket}/k")
    signed.headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}"
    assert_error(send(endpoint, signed), 400, "AuthorizationHeaderMalformed")
    elsewhere = own_sign(endpoint, "GET", f"/{bucket}/k", region="eu-west-1")
    assert_error(send(endpoint, elsewhere), 400, "AuthorizationHeaderMalformed")


def test_signature_version_2_is_refused(endpoint, s3, bucket):
    """A SigV2 `Authorization: AWS key:signature` header (correctly computed)
    is 400 InvalidRequest; a SigV2 presigned URL (boto3's default presigner)
    is refused as well and returns no data."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret bytes")
    date = email.utils.formatdate(usegmt=True)
    string_to_sign = f"GET\n\n\n{date}\n/{bucket}/k"
    v2 = base64.b64encode(hmac.new(SECRET_KEY.encode(), string_to_sign.encode(),
                                   hashlib.sha1).digest()).decode()
    reply = http_request("GET", f"{endpoint}/{bucket}/k",
                         {"Date": date, "Authorization": f"AWS {ACCESS_KEY}:{v2}"})
    assert_error(reply, 400, "InvalidRequest")

    # The spec names no answer for SigV2 query parameters: refusing them as
    # unsupported (400 InvalidRequest) or as anonymous (403 AccessDenied) are
    # both safe.
    url = client(endpoint).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    reply = http_request("GET", url)
    assert (reply.status, error_fields(reply).get("Code")) in \
        {(400, "InvalidRequest"), (403, "AccessDenied")}, reply


def test_payload_hash_mismatch_stores_nothing(endpoint, s3, bucket):
    """A body that differs from the signed hex x-amz-content-sha256 (same
    length) is 400 XAmzContentSHA256Mismatch: a new key is not created and an
    existing one keeps its bytes."""
    signed_body = os.urandom(2048)
    sent_body = bytes([signed_body[0] ^ 1]) + signed_body[1:]
    signed = own_sign(endpoint, "PUT", f"/{bucket}/new", body=signed_body)
    assert_error(send(endpoint, signed, sent_body), 400, "XAmzContentSHA256Mismatch")
    assert_no_key(s3, bucket, "new")

    s3.put_object(Bucket=bucket, Key="existing", Body=b"original")
    signed = own_sign(endpoint, "PUT", f"/{bucket}/existing", body=signed_body)
    assert_error(send(endpoint, signed, sent_body), 400, "XAmzContentSHA256Mismatch")
    assert s3.get_object(Bucket=bucket, Key="existing")["Body"].read() == b"original"


# --- signed aws-chunked bodies ---------------------------------------------------------


@pytest.mark.parametrize("trailer", [False, True], ids=["no-trailer", "crc32-trailer"])
def test_signed_streaming_upload(endpoint, s3, bucket, trailer):
    """A PutObject body sent as STREAMING-AWS4-HMAC-SHA256-PAYLOAD (and
    ...-PAYLOAD-TRAILER with a signed x-amz-checksum-crc32 trailer), in
    64 KiB chunks each signed by sigv4.py, stores exactly the decoded bytes."""
    data = os.urandom(200_000)
    trailers = [("x-amz-checksum-crc32", crc32_b64(data))] if trailer else None
    seed, body = sigv4.sign_streaming(
        "PUT", urlsplit(endpoint).netloc, f"/{bucket}/streamed", data, 64 * 1024,
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, trailers=trailers,
        headers={"content-type": "application/x-test"})
    reply = send(endpoint, seed, body)
    assert reply.status == 200, reply.body
    assert reply.headers["ETag"] == etag(data)
    got = s3.get_object(Bucket=bucket, Key="streamed")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "application/x-test"
    assert "aws-chunked" not in got.get("ContentEncoding", "")


def _flip_in_second_chunk(body: bytes) -> bytes:
    first_header_end = body.index(b"\r\n") + 2
    second_header = body.index(b";chunk-signature=", first_header_end)
    data_start = body.index(b"\r\n", second_header) + 2
    out = bytearray(body)
    out[data_start + 100] ^= 0x01
    return bytes(out)


def _break_trailer_signature(body: bytes) -> bytes:
    at = body.index(b"x-amz-trailer-signature:") + len(b"x-amz-trailer-signature:")
    out = bytearray(body)
    out[at] = ord("0") if out[at] != ord("0") else ord("1")
    return bytes(out)


@pytest.mark.parametrize("trailer,tamper", [
    (False, _flip_in_second_chunk),
    (True, _flip_in_second_chunk),
    (True, _break_trailer_signature),
], ids=["chunk-byte", "chunk-byte-with-trailer", "trailer-signature"])
def test_signed_streaming_upload_tampered(endpoint, s3, bucket, trailer, tamper):
    """A signed aws-chunked body with one altered data byte in its second
    chunk, or an altered trailer signature, is 403 SignatureDoesNotMatch and
    the key does not exist afterwards."""
    data = os.urandom(40_000)
    trailers = [("x-amz-checksum-crc32", crc32_b64(data))] if trailer else None
    seed, body = sigv4.sign_streaming(
        "PUT", urlsplit(endpoint).netloc, f"/{bucket}/tampered", data, 8 * 1024,
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, trailers=trailers)
    tampered = tamper(body)
    assert len(tampered) == len(body) and tampered != body
    assert_error(send(endpoint, seed, tampered), 403, "SignatureDoesNotMatch")
    assert_no_key(s3, bucket, "tampered")


# --- the aws CLI ---------------------------------------------------------------------


def test_awscli_wrong_secret(endpoint, cli_env, s3, bucket, tmp_path):
    """The aws CLI with a wrong secret exits non-zero and reports
    SignatureDoesNotMatch, for `s3api list-objects-v2` and `s3 cp`."""
    aws = _runner(_tool("aws"), endpoint, dict(cli_env, AWS_SECRET_ACCESS_KEY="wrong-secret"))
    listing = aws("s3api", "list-objects-v2", "--bucket", bucket, check=False)
    assert listing.returncode != 0
    assert "SignatureDoesNotMatch" in listing.stderr, listing.stderr
    src = tmp_path / "f.txt"
    src.write_bytes(b"should not arrive")
    copy = aws("s3", "cp", src, f"s3://{bucket}/cli-wrong", check=False)
    assert copy.returncode != 0
    assert "SignatureDoesNotMatch" in copy.stderr, copy.stderr
    assert_no_key(s3, bucket, "cli-wrong")


# --- CORS configuration on the session's server (CORS off by default) ---------------

CORS_RULES = [
    {"ID": "app-uploads", "AllowedOrigins": [APP], "AllowedMethods": ["PUT", "POST", "DELETE"],
     "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag", "x-amz-request-id"],
     "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
]


def test_bucket_cors_configuration_round_trip(s3, bucket):
    """PutBucketCors / GetBucketCors / DeleteBucketCors round-trip the rules;
    GetBucketCors without a configuration (before and after the delete) is
    404 NoSuchCORSConfiguration."""
    with s3_error("NoSuchCORSConfiguration", 404):
        s3.get_bucket_cors(Bucket=bucket)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == CORS_RULES
    deleted = s3.delete_bucket_cors(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error("NoSuchCORSConfiguration", 404):
        s3.get_bucket_cors(Bucket=bucket)


def test_bucket_cors_rules_answer_browsers(endpoint, s3, presign, bucket):
    """With bucket rules set, a preflight is answered by the first matching
    rule (the origin echoed, or `*` for a `*` rule), a preflight from an
    origin or for a method no rule allows is 403 AccessForbidden, and actual
    requests with a matching Origin get Access-Control-Allow-Origin and
    Access-Control-Expose-Headers."""
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    url = f"{endpoint}/{bucket}/upload.bin"

    ok = preflight(url, APP, "PUT", "content-type,x-amz-meta-tag")
    assert ok.status == 200, ok.body
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert "put" in header_items(ok, "Access-Control-Allow-Methods")
    assert {"content-type", "x-amz-meta-tag"} <= set(
        header_items(ok, "Access-Control-Allow-Headers"))
    assert "etag" in header_items(ok, "Access-Control-Expose-Headers")
    assert ok.headers["Access-Control-Max-Age"] == "600"
    assert "origin" in header_items(ok, "Vary")

    anyone = preflight(url, "https://elsewhere.example", "GET")
    assert anyone.status == 200, anyone.body
    assert anyone.headers["Access-Control-Allow-Origin"] == "*"

    assert_error(preflight(url, "https://evil.example", "PUT"), 403, "AccessForbidden")
    assert_error(preflight(url, APP, "PATCH"), 403, "AccessForbidden")

    data = os.urandom(1000)
    put_url = presign.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "upload.bin"}, ExpiresIn=300)
    put = http_request("PUT", put_url, {"Origin": APP}, data)
    assert put.status == 200, put.body
    assert put.headers["Access-Control-Allow-Origin"] == APP
    assert "etag" in header_items(put, "Access-Control-Expose-Headers")
    get_url = presign.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "upload.bin"}, ExpiresIn=300)
    got = http_request("GET", get_url, {"Origin": "https://elsewhere.example"})
    assert got.status == 200 and got.body == data
    assert got.headers["Access-Control-Allow-Origin"] == "*"
    # No rule allows PUT from this origin: the upload itself works (CORS is
    # the browser's business) but carries no CORS headers.
    other = http_request("PUT", put_url, {"Origin": "https://evil.example"}, data)
    assert other.status == 200, other.body
    assert "Access-Control-Allow-Origin" not in other.headers


def test_preflight_without_cors_is_forbidden(start_server):
    """On a server with credentials and without default CORS rules, a bucket
    without its own rules answers a preflight with 403 AccessForbidden, and
    adds no CORS headers to actual requests (but says they vary by Origin)."""
    server = start_server('[[credentials]]\naccess_key_id = "root"\n'
                          f'secret_access_key = "{SECRETS["root"]}"\n', "stowage-no-cors")
    root = client(server.endpoint, "root", SECRETS["root"])
    root.create_bucket(Bucket="plain")
    root.put_object(Bucket="plain", Key="k", Body=b"x")
    reply = preflight(f"{server.endpoint}/plain/k", APP, "GET")
    assert_error(reply, 403, "AccessForbidden")
    url = presigner(server.endpoint, "root", SECRETS["root"]).generate_presigned_url(
        "get_object", Params={"Bucket": "plain", "Key": "k"}, ExpiresIn=300)
    got = http_request("GET", url, {"Origin": APP})
    assert got.status == 200
    assert "Access-Control-Allow-Origin" not in got.headers
    assert "Origin" in got.headers["Vary"]


def test_development_server_lets_loopback_origins_in(endpoint, s3, presign, bucket):
    """Without credentials and without [[cors]], a page on a loopback origin
    (a dev server such as Vite's) may upload and read ETag and Location; a
    page elsewhere may not, since the development secret is public."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    page = "http://localhost:5173"
    reply = preflight(f"{endpoint}/{bucket}/k", page, "DELETE")
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == page
    assert preflight(f"{endpoint}/{bucket}/k", "https://elsewhere.example", "DELETE").status == 403
    url = presign.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    got = http_request("GET", url, {"Origin": page})
    assert got.status == 200
    exposed = got.headers["Access-Control-Expose-Headers"]
    assert "ETag" in exposed and "Location" in exposed
    got = http_request("GET", url, {"Origin": APP})
    assert "Access-Control-Allow-Origin" not in got.headers


def test_preflight_without_request_method_is_bad_request(endpoint, s3, bucket):
    """A preflight OPTIONS without Origin or without
    Access-Control-Request-Method is 400 BadRequest."""
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    url = f"{endpoint}/{bucket}/k"
    assert_error(http_request("OPTIONS", url, {"Origin": APP}), 400, "BadRequest")
    assert_error(http_request("OPTIONS", url, {"Access-Control-Request-Method": "PUT"}),
                 400, "BadRequest")


# --- the server with several credentials -----------------------------------------------


class AuthServer:
    """The server started with AUTH_CONFIG, and boto3 clients for its keys."""

    def __init__(self, server):
        self.endpoint = server.endpoint
        self._clients = {}

    def client(self, name):
        if name not in self._clients:
            self._clients[name] = client(self.endpoint, name, SECRETS[name])
        return self._clients[name]

    def presigner(self, name):
        return presigner(self.endpoint, name, SECRETS[name])

    @property
    def root(self):
        return self.client("root")


@pytest.fixture(scope="module")
def auth(start_server):
    """The multi-credential server, with root's buckets www (public-read,
    holding index.html), shared (holding report.txt) and incoming."""
    server = AuthServer(start_server(AUTH_CONFIG, "stowage-auth"))
    for name in ROOT_BUCKETS:
        server.root.create_bucket(Bucket=name)
    server.root.put_object(Bucket="www", Key="index.html", Body=INDEX, ContentType="text/html")
    server.root.put_object(Bucket="shared", Key="report.txt", Body=REPORT)
    return server


@pytest.fixture
def owned_bucket(auth):
    """Creates buckets as a given key; removes them (as root) afterwards."""
    made = []

    def make(owner, tag):
        name = unique_bucket_name(tag)
        auth.client(owner).create_bucket(Bucket=name)
        made.append(name)
        return name

    yield make
    for name in made:
        empty_and_delete(auth.root, name)


def test_read_only_key(auth):
    """A read_only key limited to bucket "shared" reads it (GetObject,
    ListObjectsV2) but every write is 403 AccessDenied (PutObject,
    DeleteObject, CreateBucket, CreateMultipartUpload), and buckets outside
    its list are 403 AccessDenied even to read."""
    reader = auth.client("reader")
    assert reader.get_object(Bucket="shared", Key="report.txt")["Body"].read() == REPORT
    assert [o["Key"] for o in reader.list_objects_v2(Bucket="shared")["Contents"]] == \
        ["report.txt"]
    with s3_error("AccessDenied", 403):
        reader.put_object(Bucket="shared", Key="new", Body=b"x")
    with s3_error("AccessDenied", 403):
        reader.delete_object(Bucket="shared", Key="report.txt")
    with s3_error("AccessDenied", 403):
        reader.create_multipart_upload(Bucket="shared", Key="mp")
    with s3_error("AccessDenied", 403):
        reader.create_bucket(Bucket=unique_bucket_name("reader"))
    with s3_error("AccessDenied", 403):
        reader.get_object(Bucket="incoming", Key="anything")
    assert auth.root.get_object(Bucket="shared", Key="report.txt")["Body"].read() == REPORT
    assert_no_key(auth.root, "shared", "new")


def test_bucket_limited_key(auth):
    """A key whose `buckets` are incoming and incoming-2 writes and reads
    incoming (owned by root), may create incoming-2, and gets 403
    AccessDenied on any other bucket: reading, writing, listing, creating."""
    uploader = auth.client("uploader")
    uploader.put_object(Bucket="incoming", Key="drop.bin", Body=b"dropped")
    assert uploader.get_object(Bucket="incoming", Key="drop.bin")["Body"].read() == b"dropped"
    assert auth.root.get_object(Bucket="incoming", Key="drop.bin")["Body"].read() == b"dropped"
    with s3_error("AccessDenied", 403):
        uploader.put_object(Bucket="shared", Key="drop.bin", Body=b"x")
    with s3_error("AccessDenied", 403):
        uploader.get_object(Bucket="shared", Key="report.txt")
    with s3_error("AccessDenied", 403):
        uploader.list_objects_v2(Bucket="shared")
    with s3_error("AccessDenied", 403):
        uploader.create_bucket(Bucket=unique_bucket_name("not-incoming"))
    uploader.create_bucket(Bucket="incoming-2")
    try:
        uploader.put_object(Bucket="incoming-2", Key="k", Body=b"y")
        assert uploader.get_object(Bucket="incoming-2", Key="k")["Body"].read() == b"y"
    finally:
        empty_and_delete(auth.root, "incoming-2")
    assert_no_key(auth.root, "shared", "drop.bin")


def test_copy_source_must_be_reachable(auth):
    """CopyObject and UploadPartCopy into a bucket the key may write are 403
    AccessDenied when the source bucket is one it may not reach, and copy
    nothing; a copy within its own bucket works."""
    uploader = auth.client("uploader")
    secret = {"Bucket": "shared", "Key": "report.txt"}
    with s3_error("AccessDenied", 403):
        uploader.copy_object(Bucket="incoming", Key="stolen", CopySource=secret)
    assert_no_key(auth.root, "incoming", "stolen")

    upload = uploader.create_multipart_upload(Bucket="incoming", Key="stolen-mp")["UploadId"]
    try:
        with s3_error("AccessDenied", 403):
            uploader.upload_part_copy(Bucket="incoming", Key="stolen-mp", UploadId=upload,
                                      PartNumber=1, CopySource=secret)
    finally:
        uploader.abort_multipart_upload(Bucket="incoming", Key="stolen-mp", UploadId=upload)

    uploader.put_object(Bucket="incoming", Key="mine", Body=b"own bytes")
    uploader.copy_object(Bucket="incoming", Key="mine-copy",
                         CopySource={"Bucket": "incoming", "Key": "mine"})
    assert uploader.get_object(Bucket="incoming", Key="mine-copy")["Body"].read() == b"own bytes"


def test_bucket_name_conflicts_between_keys(auth, owned_bucket):
    """CreateBucket of a name another key owns is 409 BucketAlreadyExists; of
    a name the caller owns, 200 and nothing changes (us-east-1's answer). A
    key without a `buckets` list cannot reach another key's bucket (403
    AccessDenied)."""
    alices = owned_bucket("alice", "alice")
    alice, bob = auth.client("alice"), auth.client("bob")
    with s3_error("BucketAlreadyExists", 409):
        bob.create_bucket(Bucket=alices)
    alice.create_bucket(Bucket=alices)
    alice.put_object(Bucket=alices, Key="k", Body=b"alice's")
    with s3_error("AccessDenied", 403):
        bob.get_object(Bucket=alices, Key="k")
    with s3_error("AccessDenied", 403):
        bob.put_object(Bucket=alices, Key="k", Body=b"bob's")
    with s3_error("AccessDenied", 403):
        bob.list_objects_v2(Bucket=alices)
    with s3_error("AccessDenied", 403):
        bob.delete_bucket(Bucket=alices)
    assert alice.get_object(Bucket=alices, Key="k")["Body"].read() == b"alice's"


def test_list_buckets_per_key(auth, owned_bucket):
    """ListBuckets shows a non-admin key only the buckets it owns; the admin
    sees every bucket."""
    alices = owned_bucket("alice", "alice")
    bobs = owned_bucket("bob", "bob")

    def names(key):
        return {b["Name"] for b in auth.client(key).list_buckets()["Buckets"]}

    everything = names("root")
    assert {alices, bobs, *ROOT_BUCKETS} <= everything
    alice_sees = names("alice")
    assert alices in alice_sees
    assert not alice_sees & {bobs, *ROOT_BUCKETS}, alice_sees
    bob_sees = names("bob")
    assert bobs in bob_sees
    assert not bob_sees & {alices, *ROOT_BUCKETS}, bob_sees


def test_public_read_bucket(auth):
    """Anonymous clients may read a public_read bucket (GetObject from
    urllib, HeadObject and ListObjectsV2 from unsigned boto3) but not write
    it (PutObject, DeleteObject: 403 AccessDenied); other buckets stay
    private to them."""
    got = urllib_request("GET", f"{auth.endpoint}/www/index.html")
    assert (got.status, got.body) == (200, INDEX)
    anon = anonymous_client(auth.endpoint)
    assert anon.head_object(Bucket="www", Key="index.html")["ContentLength"] == len(INDEX)
    assert [o["Key"] for o in anon.list_objects_v2(Bucket="www")["Contents"]] == ["index.html"]

    put = http_request("PUT", f"{auth.endpoint}/www/defaced.html", body=b"pwned")
    assert_error(put, 403, "AccessDenied")
    with s3_error("AccessDenied", 403):
        anon.put_object(Bucket="www", Key="defaced.html", Body=b"pwned")
    assert_error(http_request("DELETE", f"{auth.endpoint}/www/index.html"), 403, "AccessDenied")
    assert_no_key(auth.root, "www", "defaced.html")
    assert auth.root.get_object(Bucket="www", Key="index.html")["Body"].read() == INDEX
    assert_error(http_request("GET", f"{auth.endpoint}/shared/report.txt"), 403, "AccessDenied")


# --- browsers: presigned multipart upload with the default CORS rule --------------------


@pytest.fixture
def root_bucket(auth, owned_bucket):
    return owned_bucket("root", "browser")


def test_browser_presigned_multipart_upload(auth, root_bucket):
    """The browser upload flow: the backend creates a multipart upload with
    boto3 and presigns UploadPart URLs; the browser PUTs each part with an
    Origin header and reads each part's ETag from the response (so the
    response allows the origin and exposes ETag); the backend completes the
    upload; the object holds exactly the parts' bytes."""
    root, urls = auth.root, auth.presigner("root")
    key = "uploads/video.bin"
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(123_457)]
    upload = root.create_multipart_upload(Bucket=root_bucket, Key=key)["UploadId"]
    completed = []
    for number, data in enumerate(parts, start=1):
        url = urls.generate_presigned_url(
            "upload_part", Params={"Bucket": root_bucket, "Key": key, "UploadId": upload,
                                   "PartNumber": number}, ExpiresIn=600)
        reply = http_request("PUT", url, {"Origin": APP,
                                          "Content-Type": "application/octet-stream"}, data)
        assert reply.status == 200, reply.body
        assert reply.headers["Access-Control-Allow-Origin"] == APP
        assert "etag" in header_items(reply, "Access-Control-Expose-Headers")
        assert reply.headers["ETag"] == etag(data)
        completed.append({"PartNumber": number, "ETag": reply.headers["ETag"]})
    done = root.complete_multipart_upload(Bucket=root_bucket, Key=key, UploadId=upload,
                                          MultipartUpload={"Parts": completed})
    assert done["ETag"] == multipart_etag(parts)
    got = root.get_object(Bucket=root_bucket, Key=key)
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == multipart_etag(parts)


def test_preflight_for_presigned_part_url(auth, root_bucket):
    """A preflight OPTIONS for a presigned UploadPart URL, unauthenticated,
    with Origin, Access-Control-Request-Method: PUT and
    Access-Control-Request-Headers: content-type, is answered 200 by the
    config's default rule; an origin that rule does not list is 403
    AccessForbidden."""
    root = auth.root
    upload = root.create_multipart_upload(Bucket=root_bucket, Key="k")["UploadId"]
    url = auth.presigner("root").generate_presigned_url(
        "upload_part", Params={"Bucket": root_bucket, "Key": "k", "UploadId": upload,
                               "PartNumber": 1}, ExpiresIn=600)
    ok = preflight(url, APP, "PUT", "content-type")
    assert ok.status == 200, ok.body
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert "put" in header_items(ok, "Access-Control-Allow-Methods")
    assert "content-type" in header_items(ok, "Access-Control-Allow-Headers")
    assert "etag" in header_items(ok, "Access-Control-Expose-Headers")
    assert ok.headers["Access-Control-Max-Age"] == "3000"
    assert_error(preflight(url, "https://evil.example", "PUT", "content-type"),
                 403, "AccessForbidden")
    root.abort_multipart_upload(Bucket=root_bucket, Key="k", UploadId=upload)


def test_cors_headers_on_error_responses(auth, root_bucket):
    """An error response to a request whose Origin matches a rule still
    carries Access-Control-Allow-Origin and Access-Control-Expose-Headers, so
    the browser app can read the error."""
    reply = http_request("GET", f"{auth.endpoint}/{root_bucket}/k", {"Origin": APP})
    assert_error(reply, 403, "AccessDenied")
    assert reply.headers["Access-Control-Allow-Origin"] == APP
    assert "etag" in header_items(reply, "Access-Control-Expose-Headers")


def test_bucket_rules_replace_the_default_rule(auth, root_bucket):
    """A bucket's own CORS rules replace the config's default rule: an origin
    only the default allows gets 403 AccessForbidden until DeleteBucketCors
    brings the default back."""
    url = f"{auth.endpoint}/{root_bucket}/k"
    assert preflight(url, APP, "PUT").status == 200
    auth.root.put_bucket_cors(Bucket=root_bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://other.example"], "AllowedMethods": ["PUT"]}]})
    assert_error(preflight(url, APP, "PUT"), 403, "AccessForbidden")
    other = preflight(url, "https://other.example", "PUT")
    assert other.status == 200, other.body
    assert other.headers["Access-Control-Allow-Origin"] == "https://other.example"
    auth.root.delete_bucket_cors(Bucket=root_bucket)
    assert preflight(url, APP, "PUT").status == 200
