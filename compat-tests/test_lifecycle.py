"""Lifecycle rules set the way real tools set them (boto3, the aws CLI,
minio-py's set_bucket_lifecycle), read back by another client, and acted
on by a server whose lifecycle day lasts a second."""

import json
import time

import pytest
from minio.commonconfig import ENABLED, Filter
from minio.lifecycleconfig import (AbortIncompleteMultipartUpload, Expiration,
                                   LifecycleConfig, Rule)

from conftest import make_client, run_recipe, unique_bucket_name
from helpers import s3_error

TUTORIAL_RULES = {
    "Rules": [
        {
            "ID": "expire-logs",
            "Filter": {"Prefix": "logs/"},
            "Status": "Enabled",
            "Expiration": {"Days": 30},
        },
        {
            "ID": "abort-uploads",
            "Filter": {},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
    ]
}


def test_boto3_round_trip_and_errors(s3, bucket):
    with s3_error("NoSuchLifecycleConfiguration", 404):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration=TUTORIAL_RULES)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["expire-logs", "abort-uploads"]
    assert rules[0]["Filter"] == {"Prefix": "logs/"}
    assert rules[0]["Expiration"] == {"Days": 30}
    assert rules[1]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    with s3_error("NotImplemented", 501):
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
            "Rules": [{"ID": "cold", "Filter": {}, "Status": "Enabled",
                       "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]})
    with s3_error("InvalidArgument", 400):
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
            "Rules": [{"ID": "noon", "Filter": {}, "Status": "Enabled",
                       "Expiration": {"Date": "2030-01-01T12:00:00Z"}}]})
    # The refused ones changed nothing.
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 2
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with s3_error("NoSuchLifecycleConfiguration", 404):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)


def test_aws_cli_sets_what_boto3_reads(aws, s3, bucket, tmp_path):
    doc = tmp_path / "lifecycle.json"
    doc.write_text(json.dumps(TUTORIAL_RULES))
    aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
        "--lifecycle-configuration", f"file://{doc}")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["expire-logs", "abort-uploads"]
    out = json.loads(aws("s3api", "get-bucket-lifecycle-configuration",
                         "--bucket", bucket).stdout)
    assert out["Rules"][0]["Expiration"] == {"Days": 30}


def test_minio_sets_what_boto3_reads(endpoint, s3, bucket):
    minio = run_recipe("minio_client.py", endpoint, "client")
    config = LifecycleConfig([
        Rule(ENABLED, rule_filter=Filter(prefix="tmp/"), rule_id="tmp",
             expiration=Expiration(days=1),
             abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(2)),
    ])
    minio.set_bucket_lifecycle(bucket, config)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules[0]["ID"] == "tmp"
    assert rules[0]["Filter"] == {"Prefix": "tmp/"}
    assert rules[0]["Expiration"] == {"Days": 1}
    assert rules[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    back = minio.get_bucket_lifecycle(bucket)
    assert back.rules[0].expiration.days == 1
    minio.delete_bucket_lifecycle(bucket)
    assert minio.get_bucket_lifecycle(bucket) is None


@pytest.fixture(scope="module")
def fast(start_server):
    """A server whose lifecycle day lasts one second, sweeping every second."""
    server = start_server(
        "[limits]\nlifecycle_day_secs = 1\nsweep_interval_secs = 1\n"
        "gc_grace_secs = 0\ngc_interval_secs = 1\n", "stowage-lifecycle")
    return make_client(server.endpoint)


def wait_gone(s3, bucket, key, limit=20):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return
            raise
        time.sleep(0.2)
    pytest.fail(f"{key} did not expire")


def test_rules_act_on_a_fast_clock(fast):
    name = unique_bucket_name("lifecycle")
    fast.create_bucket(Bucket=name)
    fast.put_object(Bucket=name, Key="logs/old.log", Body=b"x" * 20000)
    fast.put_object(Bucket=name, Key="docs/keep.txt", Body=b"kept")
    upload = fast.create_multipart_upload(Bucket=name, Key="logs/partial")["UploadId"]
    fast.upload_part(Bucket=name, Key="logs/partial", UploadId=upload, PartNumber=1,
                     Body=b"part")
    fast.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={
        "Rules": [{"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
                   "Expiration": {"Days": 2},
                   "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    wait_gone(fast, name, "logs/old.log")
    with s3_error("NoSuchUpload", 404):
        fast.list_parts(Bucket=name, Key="logs/partial", UploadId=upload)
    assert fast.get_object(Bucket=name, Key="docs/keep.txt")["Body"].read() == b"kept"
    listed = fast.list_objects_v2(Bucket=name).get("Contents", [])
    assert [o["Key"] for o in listed] == ["docs/keep.txt"]
