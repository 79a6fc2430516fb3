"""Canned ACLs and the anonymous-read bucket policy, set by boto3 and the aws
CLI the way tutorials set them, and read back by an unsigned botocore
client (anonymous access, as a browser or curl gets it)."""

import json

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from conftest import REGION, unique_bucket_name
from helpers import s3_error

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


@pytest.fixture
def anon(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        config=Config(signature_version=UNSIGNED,
                                      s3={"addressing_style": "path"}))


def group_reads(acl):
    return [g["Grantee"].get("URI") for g in acl["Grants"]
            if g["Permission"] == "READ" and g["Grantee"]["Type"] == "Group"]


def test_public_read_bucket_and_objects(s3, anon):
    name = unique_bucket_name("pub")
    s3.create_bucket(Bucket=name, ACL="public-read")
    assert group_reads(s3.get_bucket_acl(Bucket=name)) == [ALL_USERS]
    s3.put_object(Bucket=name, Key="open", Body=b"hello", ACL="public-read")
    s3.put_object(Bucket=name, Key="closed", Body=b"secret")
    keys = [o["Key"] for o in anon.list_objects_v2(Bucket=name)["Contents"]]
    assert keys == ["closed", "open"]
    assert anon.get_object(Bucket=name, Key="open")["Body"].read() == b"hello"
    with s3_error("AccessDenied", 403):
        anon.get_object(Bucket=name, Key="closed")
    with s3_error("AccessDenied", 403):
        anon.put_object(Bucket=name, Key="open", Body=b"vandal")
    assert group_reads(s3.get_object_acl(Bucket=name, Key="open")) == [ALL_USERS]
    assert group_reads(s3.get_object_acl(Bucket=name, Key="closed")) == []
    # PutObjectAcl with the body GetObjectAcl returned (s3cmd's habit).
    acl = s3.get_object_acl(Bucket=name, Key="closed")
    s3.put_object_acl(Bucket=name, Key="closed",
                      AccessControlPolicy={"Owner": acl["Owner"], "Grants": acl["Grants"]})
    with s3_error("AccessDenied", 403):
        anon.get_object(Bucket=name, Key="closed")
    with s3_error("NotImplemented", 501):
        s3.put_object_acl(Bucket=name, Key="open", ACL="public-read-write")
    assert anon.get_object(Bucket=name, Key="open")["Body"].read() == b"hello"
    for key in ("open", "closed"):
        s3.delete_object(Bucket=name, Key=key)
    s3.delete_bucket(Bucket=name)


def test_anonymous_read_policy(s3, anon, bucket):
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"<p>hi</p>")
    with s3_error("AccessDenied", 403):
        anon.get_object(Bucket=bucket, Key="index.html")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicReadGetObject",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert anon.get_object(Bucket=bucket, Key="index.html")["Body"].read() == b"<p>hi</p>"
    shown = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    statement = shown["Statement"][0]
    assert (statement["Effect"], statement["Principal"], statement["Action"],
            statement["Resource"]) == ("Allow", "*", "s3:GetObject",
                                       f"arn:aws:s3:::{bucket}/*")
    # The policy reads; it does not list.
    with s3_error("AccessDenied", 403):
        anon.list_objects_v2(Bucket=bucket)
    policy["Statement"][0]["Action"] = ["s3:GetObject", "s3:PutObject"]
    with s3_error("NotImplemented", 501):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    s3.delete_bucket_policy(Bucket=bucket)
    with s3_error("AccessDenied", 403):
        anon.get_object(Bucket=bucket, Key="index.html")
    with s3_error("NoSuchBucketPolicy", 404):
        s3.get_bucket_policy(Bucket=bucket)


def test_aws_cli_uploads_public_objects(aws, anon, bucket, tmp_path):
    small = tmp_path / "small.txt"
    small.write_bytes(b"small file")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x07" * (9 * 1024 * 1024))  # past the CLI's 8 MiB threshold
    for f in (small, big):
        aws("s3", "cp", str(f), f"s3://{bucket}/{f.name}", "--acl", "public-read")
    assert anon.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == b"small file"
    got = anon.get_object(Bucket=bucket, Key="big.bin")
    assert got["ContentLength"] == 9 * 1024 * 1024 and got["ETag"].endswith('-2"')
    # `aws s3 cp` of a copy sets the ACL it is given, not the source's.
    aws("s3", "cp", f"s3://{bucket}/small.txt", f"s3://{bucket}/copy.txt")
    with s3_error("AccessDenied", 403):
        anon.get_object(Bucket=bucket, Key="copy.txt")
