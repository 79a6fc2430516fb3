"""POST Object (browser form uploads) as apps mint them: boto3's
generate_presigned_post and minio-py's presigned_post_policy sign the policy,
and requests, curl -F and raw HTTP send the form as a browser would."""

import base64
import datetime
import hashlib
import json
import shutil
import subprocess

import pytest
import requests
from minio.datatypes import PostPolicy

from conftest import run_recipe, unique_bucket_name
from helpers import MiB, s3_error


def post(url, fields, data, filename="upload.bin", content_type="application/octet-stream"):
    return requests.post(url, data=fields, files={"file": (filename, data, content_type)},
                         timeout=60)


def error_of(response):
    """(Code, Message) of an S3 error body."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(response.content)
    return root.findtext("Code"), root.findtext("Message")


def test_boto3_presigned_post_uploads_and_honours_the_policy(s3, bucket):
    presigned = s3.generate_presigned_post(
        bucket, "uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-owner": "field tech",
                "success_action_status": "201"},
        Conditions=[["starts-with", "$key", "uploads/"],
                    {"Content-Type": "text/plain"},
                    {"x-amz-meta-owner": "field tech"},
                    {"success_action_status": "201"},
                    ["content-length-range", 1, 1 * MiB]],
        ExpiresIn=600)
    body = b"log line\n" * 1000
    r = post(presigned["url"], presigned["fields"], body, filename="site-7.log")
    assert r.status_code == 201, r.text
    assert "<Key>uploads/site-7.log</Key>" in r.text
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    assert r.headers["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key="uploads/site-7.log")
    assert got["Body"].read() == body
    assert (got["ContentType"], got["Metadata"]) == ("text/plain", {"owner": "field tech"})

    # Too large: refused while streaming, nothing stored.
    r = post(presigned["url"], presigned["fields"], b"x" * (MiB + 1), filename="big.log")
    assert (r.status_code, error_of(r)[0]) == (400, "EntityTooLarge")
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="uploads/big.log")
    # Empty: below the range.
    r = post(presigned["url"], presigned["fields"], b"", filename="empty.log")
    assert (r.status_code, error_of(r)[0]) == (400, "EntityTooSmall")

    # A field the policy does not name, or one that breaks a condition.
    fields = dict(presigned["fields"], **{"x-amz-meta-extra": "1"})
    r = post(presigned["url"], fields, b"data")
    assert r.status_code == 403
    assert error_of(r) == ("AccessDenied",
                           "Invalid according to Policy: Extra input fields: x-amz-meta-extra")
    fields = dict(presigned["fields"], **{"Content-Type": "text/html"})
    r = post(presigned["url"], fields, b"data")
    assert r.status_code == 403
    assert "Policy Condition failed" in error_of(r)[1] and "content-type" in error_of(r)[1]
    fields = dict(presigned["fields"], key="elsewhere/${filename}")
    r = post(presigned["url"], fields, b"data")
    assert r.status_code == 403 and '"$key", "uploads/"' in error_of(r)[1]

    # A tampered policy no longer matches its signature.
    policy = json.loads(base64.b64decode(presigned["fields"]["policy"]))
    policy["conditions"].remove(["content-length-range", 1, MiB])
    forged = dict(presigned["fields"], policy=base64.b64encode(json.dumps(policy).encode()).decode())
    r = post(presigned["url"], forged, b"x" * (MiB + 1))
    assert (r.status_code, error_of(r)[0]) == (403, "SignatureDoesNotMatch")


def test_expired_policy_and_other_buckets_are_refused(s3, bucket):
    presigned = s3.generate_presigned_post(bucket, "k", ExpiresIn=1)
    policy = json.loads(base64.b64decode(presigned["fields"]["policy"]))
    # Signed for `bucket`; posted to another bucket of the same owner.
    other = unique_bucket_name("post")
    s3.create_bucket(Bucket=other)
    url = presigned["url"].rsplit("/", 1)[0] + "/" + other
    r = post(url, presigned["fields"], b"data")
    assert r.status_code == 403 and '"$bucket"' in error_of(r)[1], r.text
    s3.delete_bucket(Bucket=other)
    # Expired: minted with an expiry already past.
    expired = s3.generate_presigned_post(bucket, "k", ExpiresIn=-60)
    r = post(expired["url"], expired["fields"], b"data")
    assert error_of(r) == ("AccessDenied", "Invalid according to Policy: Policy expired.")
    assert policy["expiration"]


def test_anonymous_and_malformed_posts(s3, bucket, endpoint):
    url = f"{endpoint}/{bucket}"
    r = post(url, {"key": "anon.txt"}, b"data")
    assert (r.status_code, error_of(r)[0]) == (403, "AccessDenied")
    r = requests.post(url, data=b"key=x", timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 412, r.text
    presigned = s3.generate_presigned_post(bucket, "k")
    r = requests.post(presigned["url"], data=presigned["fields"], timeout=10,
                      files={"other": ("x", b"no file field")})
    assert r.status_code == 400, r.text
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="anon.txt")


def test_minio_presigned_post_policy(endpoint, bucket, s3):
    minio = run_recipe("minio_client.py", endpoint, "client")
    policy = PostPolicy(bucket, datetime.datetime.utcnow() + datetime.timedelta(minutes=10))
    policy.add_starts_with_condition("key", "photos/")
    policy.add_content_length_range_condition(1, 10 * MiB)
    policy.add_starts_with_condition("Content-Type", "image/")
    fields = minio.presigned_post_policy(policy)
    fields["key"] = "photos/cat.jpg"
    fields["Content-Type"] = "image/jpeg"
    body = bytes(range(256)) * 4096
    r = post(f"{endpoint}/{bucket}", fields, body, filename="cat.jpg", content_type="image/jpeg")
    assert r.status_code == 204, r.text
    got = s3.get_object(Bucket=bucket, Key="photos/cat.jpg")
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(body).digest()
    assert got["ContentType"] == "image/jpeg"


def test_curl_form_with_fields_after_the_file(s3, bucket, tmp_path):
    curl = shutil.which("curl")
    if not curl:
        pytest.fail("curl is not installed")
    presigned = s3.generate_presigned_post(
        bucket, "curl/${filename}", Fields={"success_action_redirect": "https://app.example/done"},
        Conditions=[["starts-with", "$key", "curl/"],
                    {"success_action_redirect": "https://app.example/done"}])
    src = tmp_path / "report.csv"
    src.write_bytes(b"a,b\n1,2\n" * 5000)
    args = [curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"]
    for name, value in presigned["fields"].items():
        args += ["-F", f"{name}={value}"]
    # S3 ignores fields after the file; so must we (this one would fail the
    # policy if it were read).
    args += ["-F", f"file=@{src}", "-F", "x-amz-meta-late=ignored", presigned["url"]]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    status, location = out.split(" ", 1)
    assert status == "303"
    assert location.startswith("https://app.example/done?bucket=")
    assert "key=curl%2Freport.csv" in location and "etag=" in location
    got = s3.get_object(Bucket=bucket, Key="curl/report.csv")
    assert got["Body"].read() == src.read_bytes()
    assert "late" not in got["Metadata"]
