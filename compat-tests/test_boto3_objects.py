"""boto3 with default settings (a CRC32 checksum on every upload) against
buckets, single-part objects, copies, conditional requests and listings."""

import datetime
import os

import pytest

from conftest import unique_bucket_name
from helpers import etag, s3_error

# --- buckets -----------------------------------------------------------------


def test_bucket_create_head_list_location_versioning_delete(s3):
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # us-east-1 is reported as an empty LocationConstraint.
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "")
    # A bucket that never had versioning enabled has no Status.
    versioning = s3.get_bucket_versioning(Bucket=name)
    assert "Status" not in versioning and "MFADelete" not in versioning
    s3.delete_bucket(Bucket=name)
    with s3_error("404", 404):
        s3.head_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_delete_non_empty_bucket_is_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    with s3_error("BucketNotEmpty", 409):
        s3.delete_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


def test_create_existing_bucket(s3, bucket):
    # In us-east-1 AWS answers 200 to a CreateBucket of a bucket the caller
    # owns and changes nothing (other regions say BucketAlreadyOwnedByYou).
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    s3.create_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"x"


@pytest.mark.parametrize("name", ["ab", "a" * 64, "UpperCase", "under_score",
                                  "-leading-dash", "192.168.5.4", "double..dot"])
def test_invalid_bucket_name(s3, name):
    with s3_error("InvalidBucketName", 400):
        s3.create_bucket(Bucket=name)


def test_missing_bucket(s3):
    name = unique_bucket_name("missing")
    with s3_error("NoSuchBucket", 404):
        s3.delete_bucket(Bucket=name)
    with s3_error("NoSuchBucket", 404):
        s3.get_object(Bucket=name, Key="k")
    with s3_error("NoSuchBucket", 404):
        s3.put_object(Bucket=name, Key="k", Body=b"x")


def test_list_buckets_pages_by_prefix_and_token(s3):
    prefix = unique_bucket_name("pages")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        s3.create_bucket(Bucket=name)
    try:
        first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
        assert [b["Name"] for b in first["Buckets"]] == names[:2]
        assert first["Prefix"] == prefix
        assert all(b["BucketRegion"] == "us-east-1" for b in first["Buckets"])
        second = s3.list_buckets(Prefix=prefix, MaxBuckets=2,
                                 ContinuationToken=first["ContinuationToken"])
        assert [b["Name"] for b in second["Buckets"]] == names[2:]
        assert "ContinuationToken" not in second
        pages = s3.get_paginator("list_buckets").paginate(Prefix=prefix, PaginationConfig={"PageSize": 1})
        assert [b["Name"] for page in pages for b in page["Buckets"]] == names
        assert s3.list_buckets(Prefix=prefix, BucketRegion="eu-west-3")["Buckets"] == []
        with s3_error("InvalidArgument", 400):
            s3.list_buckets(MaxBuckets=10001)
    finally:
        for name in names:
            s3.delete_bucket(Bucket=name)


def test_non_ascii_metadata_round_trips_as_on_s3(s3, bucket):
    # botocore refuses non-ASCII metadata; what S3 stores and returns for it
    # is RFC 2047: an encoded-word is stored decoded, and a stored value that
    # is not ASCII comes back as one =?UTF-8?B?...?= word.
    word = "=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?="  # "Hello Worldé"
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"n": word, "plain": "ascii"})
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["Metadata"] == {"n": word, "plain": "ascii"}
    q = "=?utf-8?q?caf=C3=A9?="
    s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/k",
                   MetadataDirective="REPLACE", Metadata={"n": q})
    got = s3.get_object(Bucket=bucket, Key="c")["Metadata"]["n"]
    assert got == "=?UTF-8?B?Y2Fmw6k=?="


def test_location_constraint_of_the_servers_region_is_accepted(s3):
    name = unique_bucket_name("loc")
    # What boto3, minio-py and s3cmd send for an explicit region.
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    try:
        assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "")
        with s3_error("InvalidArgument", 400):
            s3.create_bucket(Bucket=unique_bucket_name("elsewhere"),
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    finally:
        s3.delete_bucket(Bucket=name)


def test_bucket_policy_reads_as_none(s3, bucket):
    # Tools read S3's 404 NoSuchBucketPolicy as "this bucket has no policy".
    with s3_error("NoSuchBucketPolicy", 404):
        s3.get_bucket_policy(Bucket=bucket)
    assert s3.delete_bucket_policy(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error("MalformedPolicy", 400):
        s3.put_bucket_policy(Bucket=bucket, Policy='{"Version": "2012-10-17", "Statement": []}')
    with s3_error("NoSuchBucket", 404):
        s3.get_bucket_policy(Bucket=unique_bucket_name("missing"))


def test_bucket_acl_grants_owner_full_control(s3, bucket):
    acl = s3.get_bucket_acl(Bucket=bucket)
    owner = acl["Owner"]["ID"]
    assert owner
    assert {"Grantee": acl["Grants"][0]["Grantee"]["ID"],
            "Permission": acl["Grants"][0]["Permission"]} == \
        {"Grantee": owner, "Permission": "FULL_CONTROL"}


def test_unimplemented_operations_answer_not_implemented(s3, bucket):
    with s3_error("NotImplemented", 501):
        s3.get_bucket_website(Bucket=bucket)
    with s3_error("NotImplemented", 501):
        s3.put_bucket_replication(
            Bucket=bucket,
            ReplicationConfiguration={"Role": "arn:aws:iam::1:role/r", "Rules": [{
                "ID": "r", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
                "DeleteMarkerReplication": {"Status": "Disabled"},
                "Destination": {"Bucket": "arn:aws:s3:::elsewhere"}}]})
    # A request naming an unsupported sub-resource must not fall through to
    # PutObject and overwrite the object.
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    with s3_error("NotImplemented", 501):
        s3.put_object_legal_hold(Bucket=bucket, Key="k", LegalHold={"Status": "ON"})
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"


# --- put / get / head / delete -------------------------------------------------


def test_put_get_round_trip_with_headers(s3, bucket):
    data = os.urandom(1024 * 1024 + 17)
    put = s3.put_object(
        Bucket=bucket, Key="dir/obj.bin", Body=data,
        Metadata={"color": "blue", "multi-word": "a b c"},
        ContentType="image/png",
        ContentDisposition='attachment; filename="a b.png"',
        CacheControl="max-age=60",
    )
    assert put["ETag"] == etag(data)
    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == etag(data)
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "image/png"
    assert got["ContentDisposition"] == 'attachment; filename="a b.png"'
    assert got["CacheControl"] == "max-age=60"
    assert got["Metadata"] == {"color": "blue", "multi-word": "a b c"}
    # The aws-chunked framing of the upload must not leak into the object.
    assert "aws-chunked" not in got.get("ContentEncoding", "")

    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == etag(data)
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {"color": "blue", "multi-word": "a b c"}
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - head["LastModified"]).total_seconds()) < 300


def test_empty_object(s3, bucket):
    assert s3.put_object(Bucket=bucket, Key="empty", Body=b"")["ETag"] == etag(b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["ContentLength"] == 0 and got["Body"].read() == b""


def test_overwrite_replaces_bytes_and_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"v": "1"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"second!")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second!"
    assert got["Metadata"] == {}
    assert got["ETag"] == etag(b"second!")


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-9", 0, 10),
    ("bytes=100-", 100, None),
    ("bytes=-50", -50, None),
    ("bytes=990-2000", 990, None),  # an end past the object is clamped
    ("bytes=5-5", 5, 6),
])
def test_range_get(s3, bucket, header, start, end):
    data = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    want = data[start:end]
    first = start % len(data)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == want
    assert got["ContentLength"] == len(want)
    assert got["ContentRange"] == f"bytes {first}-{first + len(want) - 1}/{len(data)}"


def test_unsatisfiable_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    with s3_error("InvalidRange", 416):
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-")
    with s3_error("InvalidRange", 416):
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=20-30")


def test_conditional_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    tag = etag(b"conditional")
    with s3_error("304", 304):
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=tag)
    with s3_error("PreconditionFailed", 412):
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=tag)["Body"].read() == b"conditional"
    other = s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"ffffffffffffffffffffffffffffffff"')
    assert other["Body"].read() == b"conditional"
    with s3_error("304", 304):
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=tag)
    with s3_error("412", 412):
        s3.head_object(Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')
    day = datetime.timedelta(days=1)
    now = datetime.datetime.now(datetime.timezone.utc)
    with s3_error("304", 304):
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=now + day)
    with s3_error("PreconditionFailed", 412):
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=now - day)
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=now - day)["Body"].read() \
        == b"conditional"


def test_response_header_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"a,b\n", ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="o", ResponseContentType="text/csv",
                        ResponseContentDisposition="attachment; filename=o.csv",
                        ResponseCacheControl="no-cache")
    assert got["ContentType"] == "text/csv"
    assert got["ContentDisposition"] == "attachment; filename=o.csv"
    assert got["CacheControl"] == "no-cache"
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain"


def test_delete_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    assert s3.delete_object(Bucket=bucket, Key="gone")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="gone")
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="gone")
    # Deleting a missing key succeeds too.
    assert s3.delete_object(Bucket=bucket, Key="gone")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects(s3, bucket):
    for k in ["a", "b", "c", "d"]:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a"}, {"Key": "b"}, {"Key": "never-existed"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["a", "b", "never-existed"]
    assert not out.get("Errors")
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert not quiet.get("Deleted") and not quiet.get("Errors")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["d"]


# --- copy --------------------------------------------------------------------


def test_copy_object_copy_directive(s3, bucket):
    data = os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="src dir/a+b.bin", Body=data,
                  ContentType="application/x-test", Metadata={"origin": "src"})
    out = s3.copy_object(Bucket=bucket, Key="dst.bin",
                         CopySource={"Bucket": bucket, "Key": "src dir/a+b.bin"})
    assert out["CopyObjectResult"]["ETag"] == etag(data)
    got = s3.get_object(Bucket=bucket, Key="dst.bin")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"origin": "src"}


def test_copy_object_replace_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload",
                  ContentType="text/plain", Metadata={"origin": "src"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", ContentType="text/html",
                   Metadata={"fresh": "yes"})
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"payload"
    assert got["ContentType"] == "text/html"
    assert got["Metadata"] == {"fresh": "yes"}
    # The source is untouched.
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"origin": "src"}


def test_copy_object_onto_itself(s3, bucket):
    s3.put_object(Bucket=bucket, Key="self", Body=b"same", Metadata={"v": "1"})
    src = {"Bucket": bucket, "Key": "self"}
    # Without a change, S3 refuses a copy onto itself.
    with s3_error("InvalidRequest", 400):
        s3.copy_object(Bucket=bucket, Key="self", CopySource=src)
    s3.copy_object(Bucket=bucket, Key="self", CopySource=src,
                   MetadataDirective="REPLACE", Metadata={"v": "2"})
    got = s3.get_object(Bucket=bucket, Key="self")
    assert got["Body"].read() == b"same" and got["Metadata"] == {"v": "2"}


def test_copy_source_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"abc")
    src = {"Bucket": bucket, "Key": "src"}
    with s3_error("PreconditionFailed", 412):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, CopySourceIfMatch=etag(b"x"))
    with s3_error("PreconditionFailed", 412):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=src,
                       CopySourceIfNoneMatch=etag(b"abc"))
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, CopySourceIfMatch=etag(b"abc"))
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"abc"


def test_copy_from_missing_key(s3, bucket):
    with s3_error("NoSuchKey", 404):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})


# --- conditional writes ------------------------------------------------------


def test_put_if_none_match_star(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_put_if_match(s3, bucket):
    with s3_error("NoSuchKey", 404):
        s3.put_object(Bucket=bucket, Key="missing", Body=b"x", IfMatch=etag(b"x"))
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag(b"other"))
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag(b"v1"))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"


# --- listing -----------------------------------------------------------------

TREE = ["a/1", "a/2", "a/b/3", "b/4", "c", "d/5/6"]


def put_keys(s3, bucket, keys):
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())


def test_list_v2_prefix_and_delimiter(s3, bucket):
    put_keys(s3, bucket, TREE)
    out = s3.list_objects_v2(Bucket=bucket, Prefix="a/")
    assert [o["Key"] for o in out["Contents"]] == ["a/1", "a/2", "a/b/3"]
    assert out["KeyCount"] == 3 and out["IsTruncated"] is False
    assert out["Contents"][0]["Size"] == 3 and out["Contents"][0]["ETag"] == etag(b"a/1")

    out = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in out["Contents"]] == ["c"]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/", "b/", "d/"]
    assert out["KeyCount"] == 4

    out = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in out["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/b/"]

    out = s3.list_objects_v2(Bucket=bucket, Prefix="zzz")
    assert "Contents" not in out and out["KeyCount"] == 0


def test_list_v2_pagination(s3, bucket):
    keys = sorted(f"k{i:02d}" for i in range(23))
    put_keys(s3, bucket, keys)
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        out = s3.list_objects_v2(Bucket=bucket, MaxKeys=5, **kwargs)
        pages += 1
        page = [o["Key"] for o in out.get("Contents", [])]
        assert out["KeyCount"] == len(page) <= 5
        seen += page
        if not out["IsTruncated"]:
            break
        token = out["NextContinuationToken"]
        assert token
    assert seen == keys and pages == 5


def test_list_v2_pagination_with_delimiter(s3, bucket):
    keys = [f"p{i}/x" for i in range(4)] + [f"q{i}" for i in range(4)]
    put_keys(s3, bucket, keys)
    entries, token = [], None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        out = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=3, **kwargs)
        page = [o["Key"] for o in out.get("Contents", [])] + \
            [p["Prefix"] for p in out.get("CommonPrefixes", [])]
        assert len(page) == out["KeyCount"] <= 3
        entries += page
        if not out["IsTruncated"]:
            break
        token = out["NextContinuationToken"]
    assert sorted(entries) == sorted([f"p{i}/" for i in range(4)] + [f"q{i}" for i in range(4)])
    assert len(entries) == 8


def test_list_v2_start_after(s3, bucket):
    keys = [f"k{i:02d}" for i in range(10)]
    put_keys(s3, bucket, keys)
    out = s3.list_objects_v2(Bucket=bucket, StartAfter="k05")
    assert [o["Key"] for o in out["Contents"]] == keys[6:]
    # A start-after key that does not exist must not skip the next key.
    out = s3.list_objects_v2(Bucket=bucket, StartAfter="k05a")
    assert [o["Key"] for o in out["Contents"]] == keys[6:]
    out = s3.list_objects_v2(Bucket=bucket, StartAfter="k04z", MaxKeys=2)
    assert [o["Key"] for o in out["Contents"]] == ["k05", "k06"]
    assert s3.list_objects_v2(Bucket=bucket, StartAfter="zz")["KeyCount"] == 0


def test_list_v1_marker(s3, bucket):
    keys = sorted(f"m{i:02d}" for i in range(11))
    put_keys(s3, bucket, keys)
    seen, marker = [], ""
    while True:
        out = s3.list_objects(Bucket=bucket, MaxKeys=4, Marker=marker)
        page = [o["Key"] for o in out.get("Contents", [])]
        assert len(page) <= 4
        seen += page
        if not out["IsTruncated"]:
            break
        # Without a delimiter S3 may omit NextMarker: the last key is the marker.
        marker = out.get("NextMarker") or page[-1]
    assert seen == keys
    out = s3.list_objects(Bucket=bucket, Marker="m07")
    assert [o["Key"] for o in out["Contents"]] == keys[8:]


def test_list_v1_delimiter_truncation_gives_next_marker(s3, bucket):
    put_keys(s3, bucket, ["a/1", "b/1", "c/1", "d"])
    out = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert out["IsTruncated"] is True
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/", "b/"]
    assert out["NextMarker"]
    rest = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=out["NextMarker"])
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["c/"]
    assert [o["Key"] for o in rest["Contents"]] == ["d"]


def test_list_object_versions_of_unversioned_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="v", Body=b"12345")
    out = s3.list_object_versions(Bucket=bucket)
    versions = out["Versions"]
    assert len(versions) == 1
    v = versions[0]
    assert (v["Key"], v["VersionId"], v["IsLatest"], v["Size"], v["ETag"]) == \
        ("v", "null", True, 5, etag(b"12345"))
    assert not out.get("DeleteMarkers")
    # The only version of an object in an unversioned bucket is "null".
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == b"12345"
    s3.delete_object(Bucket=bucket, Key="v", VersionId="null")
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="v")
    assert not s3.list_object_versions(Bucket=bucket).get("Versions")


# --- keys --------------------------------------------------------------------

ODD_KEYS = [
    "unicode/ñandú/日本語.txt",
    "emoji 😀.txt",
    "with space/a b.txt",
    "plus+sign/a+b=c",
    "../../escape",
    "dots/./x/../y",
    "double//slash",
    "percent%20literal%2F",
    "tilde~ and !$&'()*,;=@",
    "question?mark#hash",
    "trailing/",
    "a" * 1024,
]


def test_odd_keys_round_trip(s3, bucket):
    for key in ODD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in ODD_KEYS:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode(), key
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(key.encode())
    # boto3 lists with encoding-type=url and decodes the keys again.
    listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
              for o in page.get("Contents", [])]
    assert listed == sorted(ODD_KEYS, key=lambda k: k.encode())
    s3.copy_object(Bucket=bucket, Key="copy of " + ODD_KEYS[0],
                   CopySource={"Bucket": bucket, "Key": ODD_KEYS[0]})
    got = s3.get_object(Bucket=bucket, Key="copy of " + ODD_KEYS[0])
    assert got["Body"].read() == ODD_KEYS[0].encode()
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in ODD_KEYS]})
    assert sorted(d["Key"] for d in out["Deleted"]) == sorted(ODD_KEYS)
    remaining = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert remaining == ["copy of " + ODD_KEYS[0]]


def test_key_too_long(s3, bucket):
    with s3_error("KeyTooLongError", 400):
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
