"""Upload grants and the Uppy signing routes under /_stowage/s3/.

The app's backend mints a grant with boto3's generate_presigned_post (the
fields, base64 JSON, in the X-Stowage-Grant header); requests then calls the
routes with the paths, bodies and headers @uppy/aws-s3 5.x sends, and PUTs
parts to the presigned URLs the routes return, as Uppy's XHR does."""

import base64
import hashlib
import json
import os

import requests

from conftest import unique_bucket_name
from helpers import MiB, s3_error

# The page, on a developer's loopback origin (the development server lets
# only those in).
ORIGIN = "http://localhost:5173"


def mint(s3, bucket, key="uploads/${filename}", max_size=64 * MiB, content_type="video/",
         expires=600, extra=()):
    conditions = [["starts-with", "$key", key.split("${filename}")[0]],
                  ["content-length-range", 1, max_size],
                  ["starts-with", "$Content-Type", content_type], *extra]
    post = s3.generate_presigned_post(bucket, key, Conditions=conditions, ExpiresIn=expires)
    return base64.b64encode(json.dumps(post["fields"]).encode()).decode()


class Uppy:
    """The requests @uppy/aws-s3 sends to its `endpoint`, with the grant in
    the headers option."""

    def __init__(self, endpoint, grant):
        self.base = f"{endpoint}/_stowage"
        self.headers = {"X-Stowage-Grant": grant, "Accept": "application/json",
                        "Origin": ORIGIN}

    def call(self, method, path, body=None, headers=(), **params):
        h = dict(self.headers, **dict(headers))
        if body is not None:
            h["Content-Type"] = "application/json"
        return requests.request(method, f"{self.base}{path}", params=params, headers=h,
                                data=None if body is None else json.dumps(body), timeout=60)

    def ok(self, *args, **kwargs):
        r = self.call(*args, **kwargs)
        assert r.status_code == 200, r.text
        return r.json()


def put_part(url, data):
    r = requests.put(url, data=data, headers={"Origin": ORIGIN}, timeout=60)
    return r


def test_multipart_upload_through_the_routes(s3, bucket, endpoint):
    uppy = Uppy(endpoint, mint(s3, bucket))
    data = os.urandom(11 * MiB + 5)
    created = uppy.ok("POST", "/s3/multipart",
                      {"filename": "clip.mp4", "type": "video/mp4",
                       "metadata": {"name": "clip.mp4", "type": "video/mp4"}})
    key, upload_id = created["key"], created["uploadId"]
    assert key == "uploads/clip.mp4" and created["bucket"] == bucket
    chunks = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    etags = {}
    # Part 1 and 2 one at a time; part 3 through the batch route (2.x).
    for n in (1, 2):
        signed = uppy.ok("GET", f"/s3/multipart/{upload_id}/{n}", key=key)
        assert 0 < signed["expires"] <= 900
        r = put_part(signed["url"], chunks[n - 1])
        assert r.status_code == 200, r.text
        assert "ETag" in r.headers["Access-Control-Expose-Headers"]
        etags[n] = r.headers["ETag"]
    batch = uppy.ok("GET", f"/s3/multipart/{upload_id}/batch", key=key, partNumbers="3")
    r = put_part(batch["presignedUrls"]["3"], chunks[2])
    etags[3] = r.headers["ETag"]
    # After a refresh Uppy lists the parts to resume: every page, numbers
    # as JSON numbers.
    listed = uppy.ok("GET", f"/s3/multipart/{upload_id}", key=key)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == \
        [(n, etags[n], len(chunks[n - 1])) for n in (1, 2, 3)]
    done = uppy.ok("POST", f"/s3/multipart/{upload_id}/complete",
                   {"parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]}, key=key)
    assert done["location"].endswith(f"/{bucket}/uploads/clip.mp4")
    got = s3.get_object(Bucket=bucket, Key=key)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()
    assert got["ContentType"] == "video/mp4"
    # The page's own metadata is not stored: the grant does not bind it.
    assert got["Metadata"] == {}


def test_create_is_idempotent_and_abort_works(s3, bucket, endpoint):
    uppy = Uppy(endpoint, mint(s3, bucket))
    body = {"filename": "retry.mp4", "type": "video/mp4", "metadata": {}}
    first = uppy.ok("POST", "/s3/multipart", body, headers={"Idempotency-Key": "file-1-7f3a9c2e41"})
    again = uppy.ok("POST", "/s3/multipart", body, headers={"Idempotency-Key": "file-1-7f3a9c2e41"})
    other = uppy.ok("POST", "/s3/multipart", body, headers={"Idempotency-Key": "file-2-7f3a9c2e41"})
    # Issue 18, item 6: a key short enough to guess is refused.
    # Characters count, not bytes: 8 two-byte characters are still short.
    for key in ("file-1", "\u00e9" * 8):
        short = uppy.call("POST", "/s3/multipart", body,
                          headers={"Idempotency-Key": key.encode().decode("latin-1")})
        assert (short.status_code, short.json()["error"]) == (400, "InvalidArgument"), short.text
    assert first["uploadId"] == again["uploadId"] != other["uploadId"]
    # Another create at the key under the same grant replaced the first.
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [other["uploadId"].split(".")[0]]
    assert uppy.call("DELETE", f"/s3/multipart/{first['uploadId']}",
                     key=first["key"]).status_code == 404
    assert uppy.ok("DELETE", f"/s3/multipart/{other['uploadId']}", key=other["key"]) == {}
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_grant_limits_are_each_refused(s3, bucket, endpoint):
    uppy = Uppy(endpoint, mint(s3, bucket, max_size=6 * MiB))
    body = {"filename": "a.mp4", "type": "video/mp4", "metadata": {}}
    # Type.
    r = uppy.call("POST", "/s3/multipart", dict(body, type="text/html"))
    assert r.status_code == 403 and '"$content-type", "video/"' in r.json()["message"]
    # Key prefix: a route naming a key outside the grant.
    created = uppy.ok("POST", "/s3/multipart", body)
    upload_id = created["uploadId"]
    r = uppy.call("GET", f"/s3/multipart/{upload_id}/1", key="elsewhere/a.mp4")
    assert r.status_code == 403, r.text
    # Size: a part that would take the upload past 6 MiB is refused before
    # it is stored, whichever URL it came through.
    signed = uppy.ok("GET", f"/s3/multipart/{upload_id}/1", key=created["key"])
    assert put_part(signed["url"], os.urandom(5 * MiB)).status_code == 200
    signed = uppy.ok("GET", f"/s3/multipart/{upload_id}/2", key=created["key"])
    r = put_part(signed["url"], os.urandom(2 * MiB))
    assert r.status_code == 400 and "<Code>EntityTooLarge</Code>" in r.text
    store_id = upload_id.split(".")[0]
    parts = s3.list_parts(Bucket=bucket, Key=created["key"], UploadId=store_id)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
    # Bucket: a grant for one bucket is no use in another (the grant fixes
    # it; the routes never take one from the page).
    other = unique_bucket_name("grant")
    s3.create_bucket(Bucket=other)
    assert Uppy(endpoint, mint(s3, other)).ok("POST", "/s3/multipart", body)["bucket"] == other
    r = uppy.call("GET", f"/s3/multipart/{upload_id}", key=created["key"])
    assert r.status_code == 200
    # Expiry.
    expired = Uppy(endpoint, mint(s3, bucket, expires=-10))
    r = expired.call("POST", "/s3/multipart", body)
    assert r.status_code == 403 and "expired" in r.json()["message"]
    # No grant, or a forged one.
    r = requests.post(f"{endpoint}/_stowage/s3/multipart", json=body, timeout=10)
    assert r.status_code == 403 and "X-Stowage-Grant" in r.json()["message"]
    fields = json.loads(base64.b64decode(mint(s3, bucket)))
    fields["policy"] = base64.b64encode(json.dumps(
        {"expiration": "2099-01-01T00:00:00Z",
         "conditions": [{"bucket": bucket}, ["starts-with", "$key", ""]]}).encode()).decode()
    forged = Uppy(endpoint, base64.b64encode(json.dumps(fields).encode()).decode())
    assert forged.call("POST", "/s3/multipart", body).status_code == 403


def test_params_form_upload_and_preflight(s3, bucket, endpoint):
    uppy = Uppy(endpoint, mint(s3, bucket, content_type="image/"))
    params = uppy.ok("GET", "/s3/params", filename="cat.png", type="image/png",
                     **{"metadata[name]": "cat.png"})
    assert params["method"] == "POST" and params["url"].endswith(f"/{bucket}")
    png = os.urandom(1000)
    r = requests.post(params["url"], data=params["fields"],
                      files={"file": ("cat.png", png, "image/png")}, timeout=30)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="uploads/cat.png")["Body"].read() == png
    # The browser's preflight for the JSON routes.
    r = requests.options(f"{endpoint}/_stowage/s3/multipart", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-stowage-grant"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def test_a_read_only_keys_grant_stops_working(start_server):
    server = start_server('[[credentials]]\naccess_key_id = "app"\nsecret_access_key = "app-secret"\n'
                          'read_only = true\nadmin = true\n', "stowage-grants")
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="app",
                      aws_secret_access_key="app-secret", region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    uppy = Uppy(server.endpoint, mint(s3, "media"))
    r = uppy.call("POST", "/s3/multipart", {"filename": "a.mp4", "type": "video/mp4"})
    assert r.status_code == 403 and r.json()["error"] == "AccessDenied"
    with s3_error("AccessDenied", 403):
        s3.create_bucket(Bucket="media")


def test_what_the_page_adds_to_a_grant_binds_nothing(s3, bucket, endpoint):
    """Only the policy is signed. A page that adds acl=public-read to its
    grant is refused, as a POST form with a field its policy does not name
    is; and a grant does not reach uploads made by plain S3 calls (which
    carry no size bound)."""
    fields = json.loads(base64.b64decode(mint(s3, bucket)))
    fields["acl"] = "public-read"
    padded = Uppy(endpoint, base64.b64encode(json.dumps(fields).encode()).decode())
    r = padded.call("POST", "/s3/multipart", {"filename": "p.mp4", "type": "video/mp4"})
    assert r.status_code == 403 and "Extra input fields: acl" in r.json()["message"], r.text
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    uppy = Uppy(endpoint, mint(s3, bucket))
    plain = s3.create_multipart_upload(Bucket=bucket, Key="uploads/plain.mp4")
    for handle in (plain["UploadId"], plain["UploadId"] + "." + "0" * 64):
        r = uppy.call("GET", f"/s3/multipart/{handle}/1", key="uploads/plain.mp4")
        assert r.status_code == 404 and r.json()["error"] == "NoSuchUpload"


def test_a_content_type_that_cannot_go_back_out_is_refused_on_every_grant_path(
        s3, bucket, endpoint):
    """Issue 18, item 1: `video/mp4` plus a control character satisfies
    `starts-with video/`, but served back it would be dropped and the body
    sniffed. Both grant paths refuse it with 400 and store nothing; what is
    stored is served with nosniff."""
    uppy = Uppy(endpoint, mint(s3, bucket))
    r = uppy.call("POST", "/s3/multipart",
                  {"filename": "x.mp4", "type": "video/mp4\u0001", "metadata": {}})
    assert (r.status_code, r.json()["error"]) == (400, "InvalidArgument"), r.text
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    presigned = s3.generate_presigned_post(
        bucket, "uploads/${filename}",
        Conditions=[["starts-with", "$key", "uploads/"],
                    ["starts-with", "$Content-Type", "video/"],
                    ["content-length-range", 1, MiB]],
        ExpiresIn=600)
    fields = dict(presigned["fields"], **{"Content-Type": "video/mp4\x7f"})
    r = requests.post(presigned["url"], data=fields,
                      files={"file": ("x.mp4", b"<html>", "video/mp4")}, timeout=60)
    assert r.status_code == 400 and b"<Code>InvalidArgument</Code>" in r.content, r.text
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="uploads/x.mp4")

    fields = dict(presigned["fields"], **{"Content-Type": "video/mp4"})
    r = requests.post(presigned["url"], data=fields,
                      files={"file": ("ok.mp4", b"frames", "video/mp4")}, timeout=60)
    assert r.status_code == 204, r.text
    got = requests.get(s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "uploads/ok.mp4"}), timeout=60)
    assert got.headers["Content-Type"] == "video/mp4"
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_a_grant_without_a_size_range_gets_the_servers_object_cap(start_server):
    """Issue 18, item 3: a grant with no content-length-range once had no
    bound at all (10,000 parts of any size); like POST Object, it is bound by
    max_object_size."""
    server = start_server("[limits]\nmax_object_size = 1048576\nmin_part_size = 1\n",
                          "stowage-grant-cap")
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="stowage",
                      aws_secret_access_key="stowage-dev-secret", region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="media")
    post = s3.generate_presigned_post(
        "media", "uploads/${filename}",
        Conditions=[["starts-with", "$key", "uploads/"],
                    ["starts-with", "$Content-Type", "video/"]], ExpiresIn=600)
    grant = base64.b64encode(json.dumps(post["fields"]).encode()).decode()
    uppy = Uppy(server.endpoint, grant)
    created = uppy.ok("POST", "/s3/multipart", {"filename": "big.mp4", "type": "video/mp4"})
    key, upload_id = created["key"], created["uploadId"]
    first = uppy.ok("GET", f"/s3/multipart/{upload_id}/1", key=key)
    assert put_part(first["url"], b"a" * 700_000).status_code == 200
    second = uppy.ok("GET", f"/s3/multipart/{upload_id}/2", key=key)
    r = put_part(second["url"], b"b" * 700_000)
    assert r.status_code == 400 and b"<Code>EntityTooLarge</Code>" in r.content, r.text
    parts = uppy.ok("GET", f"/s3/multipart/{upload_id}", key=key)
    assert [p["PartNumber"] for p in parts] == [1]


def test_a_metadata_name_given_twice_cannot_slip_past_the_grant(s3, bucket, endpoint):
    """The grant fixes x-amz-meta-owner; the page sends `OWNER` (checked) and
    `owner` (which would have been stored). Refused, nothing created."""
    uppy = Uppy(endpoint, mint(s3, bucket, extra=[{"x-amz-meta-owner": "user7"}]))
    r = uppy.call("POST", "/s3/multipart",
                  {"filename": "d.mp4", "type": "video/mp4",
                   "metadata": {"OWNER": "user7", "owner": "admin"}})
    assert (r.status_code, r.json()["error"]) == (400, "InvalidArgument"), r.text
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def upload_through(uppy, s3, bucket, filename, data, content_type="video/mp4", metadata=None):
    """Create, one part, complete: what Uppy does for a small file."""
    created = uppy.ok("POST", "/s3/multipart", {"filename": filename, "type": content_type,
                                                "metadata": metadata or {}})
    key, handle = created["key"], created["uploadId"]
    signed = uppy.ok("GET", f"/s3/multipart/{handle}/1", key=key)
    etag = put_part(signed["url"], data).headers["ETag"]
    return uppy.call("POST", f"/s3/multipart/{handle}/complete",
                     {"parts": [{"PartNumber": 1, "ETag": etag}]}, key=key)


def test_a_type_the_policy_does_not_name_is_not_taken_from_the_page(s3, bucket, endpoint):
    """Issue 18, item 2: with no Content-Type condition, POST Object refuses a
    Content-Type field; the Uppy create once stored the page's `text/html`.
    It is left out now (S3's default type, served with nosniff), on both
    routes."""
    post = s3.generate_presigned_post(bucket, "uploads/${filename}", ExpiresIn=600,
                                      Conditions=[["starts-with", "$key", "uploads/"],
                                                  ["content-length-range", 1, MiB]])
    uppy = Uppy(endpoint, base64.b64encode(json.dumps(post["fields"]).encode()).decode())
    r = upload_through(uppy, s3, bucket, "page.html", b"<script>alert(1)</script>",
                       content_type="text/html")
    assert r.status_code == 200, r.text
    head = s3.head_object(Bucket=bucket, Key="uploads/page.html")
    assert head["ContentType"] != "text/html"
    params = uppy.ok("GET", "/s3/params", filename="form.html", type="text/html")
    assert not any(n.lower() == "content-type" for n in params["fields"])
    r = requests.post(params["url"], data=params["fields"],
                      files={"file": ("form.html", b"<p>", "text/html")}, timeout=30)
    assert r.status_code == 204, r.text
    assert s3.head_object(Bucket=bucket, Key="uploads/form.html")["ContentType"] != "text/html"


def test_fields_the_policy_fixes_are_applied_on_the_uppy_routes(s3, bucket, endpoint):
    """Issue 18, item 2: a policy that fixes Content-Disposition, Cache-Control
    and tagging gets them on the object, as POST Object would; a page value
    against a fixed field is refused."""
    tagging = ("<Tagging><TagSet><Tag><Key>source</Key><Value>browser</Value></Tag>"
               "</TagSet></Tagging>")
    extra = [{"Content-Disposition": "attachment"}, {"Cache-Control": "no-store"},
             {"tagging": tagging}]
    uppy = Uppy(endpoint, mint(s3, bucket, extra=extra))
    r = upload_through(uppy, s3, bucket, "fixed.mp4", b"frames")
    assert r.status_code == 200, r.text
    head = s3.head_object(Bucket=bucket, Key="uploads/fixed.mp4")
    assert head["ContentDisposition"] == "attachment"
    assert head["CacheControl"] == "no-store"
    assert head["ContentType"] == "video/mp4"
    tags = s3.get_object_tagging(Bucket=bucket, Key="uploads/fixed.mp4")["TagSet"]
    assert tags == [{"Key": "source", "Value": "browser"}]
    # The params route hands the page a form that carries them, and POST
    # Object takes it.
    params = uppy.ok("GET", "/s3/params", filename="small.mp4", type="video/mp4")
    r = requests.post(params["url"], data=params["fields"],
                      files={"file": ("small.mp4", b"frames", "video/mp4")}, timeout=30)
    assert r.status_code == 204, r.text
    head = s3.head_object(Bucket=bucket, Key="uploads/small.mp4")
    assert (head["ContentDisposition"], head["CacheControl"]) == ("attachment", "no-store")
    # The form carried the fixed tagging too.
    assert s3.get_object_tagging(Bucket=bucket, Key="uploads/small.mp4")["TagSet"] == tags


def test_the_size_minimum_holds_at_complete(s3, bucket, endpoint):
    """Issue 18, item 3: a 1-byte upload under content-length-range 100..1000
    once completed. Complete refuses it with EntityTooSmall and the upload
    stays, to be finished with more bytes."""
    post = s3.generate_presigned_post(
        bucket, "uploads/${filename}", ExpiresIn=600,
        Conditions=[["starts-with", "$key", "uploads/"], ["content-length-range", 100, 1000]])
    uppy = Uppy(endpoint, base64.b64encode(json.dumps(post["fields"]).encode()).decode())
    r = upload_through(uppy, s3, bucket, "tiny.bin", b"x")
    assert (r.status_code, r.json()["error"]) == (400, "EntityTooSmall"), r.text
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="uploads/tiny.bin")
    assert upload_through(uppy, s3, bucket, "ok.bin", b"x" * 100).status_code == 200


def test_another_grant_holder_cannot_reach_an_upload(s3, bucket, endpoint):
    """Issue 18, item 5: Bob holds another grant over uploads/ and learns
    Alice's upload id from a listing. Without the capability her create
    returned, he can neither list, sign, complete nor abort it; a fresh
    grant of Alice's resumes it with the capability."""
    alice = Uppy(endpoint, mint(s3, bucket))
    bob = Uppy(endpoint, mint(s3, bucket, content_type="video/m"))
    created = alice.ok("POST", "/s3/multipart", {"filename": "alice.mp4", "type": "video/mp4"})
    key, handle = created["key"], created["uploadId"]
    (listed,) = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    store_id = listed["UploadId"]
    assert handle.startswith(store_id + ".")
    mine = bob.ok("POST", "/s3/multipart", {"filename": "bob.mp4", "type": "video/mp4"})
    bobs_mac = mine["uploadId"].split(".")[1]
    for guess in (store_id, f"{store_id}.{bobs_mac}", f"{store_id}.{'0' * 64}"):
        for method, path, body in (("GET", f"/s3/multipart/{guess}", None),
                                   ("GET", f"/s3/multipart/{guess}/1", None),
                                   ("POST", f"/s3/multipart/{guess}/complete", {"parts": []}),
                                   ("DELETE", f"/s3/multipart/{guess}", None)):
            r = bob.call(method, path, body, key=key)
            assert (r.status_code, r.json()["error"]) == (404, "NoSuchUpload"), (path, r.text)
    # Alice's own handle, under a grant minted later, still works.
    fresh = Uppy(endpoint, mint(s3, bucket))
    signed = fresh.ok("GET", f"/s3/multipart/{handle}/1", key=key)
    etag = put_part(signed["url"], b"alice's bytes").headers["ETag"]
    fresh.ok("POST", f"/s3/multipart/{handle}/complete",
             {"parts": [{"PartNumber": 1, "ETag": etag}]}, key=key)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"alice's bytes"


def test_a_grant_holds_one_unfinished_upload_per_key(s3, bucket, endpoint):
    """Issue 18, item 4: five creates under one grant for one fixed key once
    held five uploads for 7 days. A new create replaces the grant's older
    upload at that key (its parts freed); an idempotent retry still gets the
    same upload; another grant's upload at the key is left alone."""
    grant = mint(s3, bucket, key="uploads/fixed.mp4", max_size=1000)
    uppy = Uppy(endpoint, grant)
    body = {"filename": "any.mp4", "type": "video/mp4"}
    handles = []
    for _ in range(5):
        created = uppy.ok("POST", "/s3/multipart", body)
        signed = uppy.ok("GET", f"/s3/multipart/{created['uploadId']}/1", key=created["key"])
        assert put_part(signed["url"], b"x" * 1000).status_code == 200
        handles.append(created["uploadId"])
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [handles[-1].split(".")[0]]
    r = uppy.call("GET", f"/s3/multipart/{handles[0]}", key="uploads/fixed.mp4")
    assert r.status_code == 404
    # The same grant with its signature's hex in another case is the same
    # grant: it replaces the upload too.
    fields = json.loads(base64.b64decode(grant))
    fields["x-amz-signature"] = fields["x-amz-signature"].upper()
    recased = Uppy(endpoint, base64.b64encode(json.dumps(fields).encode()).decode())
    recased.ok("POST", "/s3/multipart", body)
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1
    retry = {"Idempotency-Key": "retry-0123456789abcdef"}
    first = uppy.ok("POST", "/s3/multipart", body, headers=retry)
    assert uppy.ok("POST", "/s3/multipart", body, headers=retry) == first
    other = Uppy(endpoint, mint(s3, bucket, key="uploads/fixed.mp4", max_size=999))
    other.ok("POST", "/s3/multipart", body)
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 2


def test_a_grants_uploads_expire_with_it_and_a_resume_window(start_server):
    """Issue 18, item 4: an upload made under a grant lives until the grant
    expires plus grant_resume_secs, not the global 7 days."""
    import time
    import boto3
    from botocore.config import Config
    server = start_server("[limits]\ngrant_resume_secs = 1\nsweep_interval_secs = 1\n",
                          "stowage-grant-expiry")
    s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="stowage",
                      aws_secret_access_key="stowage-dev-secret", region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="media")
    uppy = Uppy(server.endpoint, mint(s3, "media", expires=3))
    created = uppy.ok("POST", "/s3/multipart", {"filename": "a.mp4", "type": "video/mp4"})
    signed = uppy.ok("GET", f"/s3/multipart/{created['uploadId']}/1", key=created["key"])
    assert put_part(signed["url"], b"held").status_code == 200
    plain = s3.create_multipart_upload(Bucket="media", Key="plain")["UploadId"]
    deadline = time.time() + 30
    while time.time() < deadline:
        ids = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="media").get("Uploads", [])]
        if ids == [plain]:
            break
        time.sleep(0.5)
    assert ids == [plain], "the grant's upload was swept; a plain upload was not"


def test_values_a_browser_cannot_read_back_are_refused(s3, bucket, endpoint):
    """A Content-Type that meets starts-with video/ but is no media type
    (a tab or a space then text/html) would be served as no type at all; a
    filename with a control character, or . or .., makes a key listings or
    URLs cannot carry, and one with a bidirectional control reads as another. Each is refused with 400, on both routes."""
    uppy = Uppy(endpoint, mint(s3, bucket))
    for content_type in ("video/mp4\ttext/html", "video/mp4 text/html"):
        r = uppy.call("POST", "/s3/multipart", {"filename": "x.mp4", "type": content_type})
        assert (r.status_code, r.json()["error"]) == (400, "InvalidArgument"), r.text
        r = uppy.call("GET", "/s3/params", filename="x.mp4", type=content_type)
        assert r.status_code == 400, r.text
    for filename in ("a\u0000b.mp4", "a\u007fb.mp4", "x\u202egpj.mp4", ".", ".."):
        r = uppy.call("POST", "/s3/multipart", {"filename": filename, "type": "video/mp4"})
        assert (r.status_code, r.json()["error"]) == (400, "InvalidArgument"), r.text
    # The grant's key template is the page's to edit (within the policy's
    # prefix): the whole key is held to the same rule.
    fields = json.loads(base64.b64decode(mint(s3, bucket)))
    for template in ("uploads/\u0001${filename}", "uploads/../x/${filename}"):
        edited = Uppy(endpoint, base64.b64encode(json.dumps(dict(fields, key=template)).encode()).decode())
        r = edited.call("POST", "/s3/multipart", {"filename": "a.mp4", "type": "video/mp4"})
        assert (r.status_code, r.json()["error"]) == (400, "InvalidArgument"), r.text
    # A create body is small: one past 64 KiB is refused as it arrives.
    r = uppy.call("POST", "/s3/multipart", {"filename": "a.mp4", "type": "video/mp4",
                                            "metadata": {f"k{i}": "v" for i in range(10000)}})
    assert r.status_code == 400 and r.json()["error"] == "EntityTooLarge", r.text
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    presigned = s3.generate_presigned_post(
        bucket, "uploads/${filename}", ExpiresIn=600,
        Conditions=[["starts-with", "$key", "uploads/"],
                    ["starts-with", "$Content-Type", "video/"]])
    fields = dict(presigned["fields"], **{"Content-Type": "video/mp4\ttext/html"})
    r = requests.post(presigned["url"], data=fields,
                      files={"file": ("x.mp4", b"<html>", "video/mp4")}, timeout=60)
    assert r.status_code == 400 and b"<Code>InvalidArgument</Code>" in r.content, r.text
