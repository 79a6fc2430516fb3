"""Upload integrity: Content-MD5 and x-amz-checksum-* headers are checked, and
aws-chunked bodies with a checksum trailer (what boto3 sends over HTTPS) are
decoded without leaking their framing into the object."""

import base64
import hashlib
import os
import zlib

import pytest

from helpers import etag, s3_error


@pytest.fixture
def sent(s3_chunked):
    """The headers (lower-cased names, str values) of each request that
    s3_chunked sends during the test."""
    requests = []

    def record(request, **_):
        requests.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                         for k, v in request.headers.items()})

    s3_chunked.meta.events.register("before-send.s3", record)
    yield requests
    s3_chunked.meta.events.unregister("before-send.s3", record)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("size", [0, 5, 3 * 1024 * 1024 + 5])
def test_aws_chunked_put_with_trailer(s3_chunked, s3, bucket, sent, size):
    data = os.urandom(size)
    put = s3_chunked.put_object(Bucket=bucket, Key="chunked", Body=data,
                                ContentEncoding="gzip", Metadata={"m": "1"})
    assert sent[-1]["content-encoding"] == "gzip,aws-chunked"
    assert sent[-1]["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert sent[-1]["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert sent[-1]["x-amz-decoded-content-length"] == str(size)
    assert put["ETag"] == etag(data)
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == data
    assert got["ContentLength"] == size
    # The stored Content-Encoding keeps the user's value without aws-chunked.
    assert got["ContentEncoding"] == "gzip"
    assert got["Metadata"] == {"m": "1"}


def test_aws_chunked_put_from_file(s3_chunked, s3, bucket, sent, tmp_path):
    path = tmp_path / "body.bin"
    data = os.urandom(2 * 1024 * 1024 + 1)
    path.write_bytes(data)
    with open(path, "rb") as f:
        s3_chunked.put_object(Bucket=bucket, Key="from-file", Body=f)
    assert sent[-1]["content-encoding"] == "aws-chunked"
    got = s3.get_object(Bucket=bucket, Key="from-file")
    assert got["Body"].read() == data and got["ETag"] == etag(data)
    assert "aws-chunked" not in got.get("ContentEncoding", "")


def test_wrong_content_md5_is_bad_digest(s3, bucket):
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with s3_error("BadDigest", 400):
        s3.put_object(Bucket=bucket, Key="md5", Body=b"payload", ContentMD5=wrong)
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="md5")
    right = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=b"payload", ContentMD5=right)


def test_wrong_checksum_header_is_bad_digest(s3, bucket):
    # An explicit checksum the body does not match must be refused, and
    # nothing stored.
    with s3_error("BadDigest", 400):
        s3.put_object(Bucket=bucket, Key="crc", Body=b"payload",
                      ChecksumCRC32=crc32_b64(b"something else"))
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="crc")
    s3.put_object(Bucket=bucket, Key="crc", Body=b"payload", ChecksumCRC32=crc32_b64(b"payload"))
    assert s3.get_object(Bucket=bucket, Key="crc")["Body"].read() == b"payload"
