"""minio-py 7.2 as the README configures it: fput/fget (multipart), a
presigned PUT sent by a client without credentials, object tags, and
compose_object (server-side UploadPartCopy). Bytes are checked by sha256."""

import hashlib
import io
import urllib.request
from datetime import timedelta

import pytest
from minio.commonconfig import ComposeSource, Tags

from conftest import run_recipe
from helpers import MiB, file_sha256, write_random_file


@pytest.fixture(scope="module")
def minio(endpoint):
    return run_recipe("minio_client.py", endpoint, "client")


def test_fput_fget_multipart(minio, s3, bucket, tmp_path):
    src = tmp_path / "video.bin"
    digest = write_random_file(src, 17 * MiB + 3)
    minio.fput_object(bucket, "videos/video.bin", str(src), part_size=5 * MiB,
                      content_type="video/mp4", metadata={"x-amz-meta-camera": "7"})
    head = s3.head_object(Bucket=bucket, Key="videos/video.bin")
    assert head["ETag"].endswith('-4"')
    assert (head["ContentType"], head["Metadata"]) == ("video/mp4", {"camera": "7"})
    back = tmp_path / "back.bin"
    minio.fget_object(bucket, "videos/video.bin", str(back))
    assert file_sha256(back) == digest
    stat = minio.stat_object(bucket, "videos/video.bin")
    assert stat.size == 17 * MiB + 3


def test_presigned_put(minio, bucket):
    url = minio.presigned_put_object(bucket, "from-browser.txt", expires=timedelta(minutes=5))
    body = b"uploaded without credentials"
    request = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    got = minio.get_object(bucket, "from-browser.txt")
    try:
        assert hashlib.sha256(got.read()).digest() == hashlib.sha256(body).digest()
    finally:
        got.close()
        got.release_conn()


def test_tags(minio, bucket):
    minio.put_object(bucket, "tagged", io.BytesIO(b"x"), 1)
    tags = Tags.new_object_tags()
    tags["project"] = "edge"
    tags["retention"] = "30d"
    minio.set_object_tags(bucket, "tagged", tags)
    assert dict(minio.get_object_tags(bucket, "tagged")) == {"project": "edge",
                                                             "retention": "30d"}
    minio.delete_object_tags(bucket, "tagged")
    assert not minio.get_object_tags(bucket, "tagged")
    bucket_tags = Tags.new_bucket_tags()
    bucket_tags["team"] = "video"
    minio.set_bucket_tags(bucket, bucket_tags)
    assert dict(minio.get_bucket_tags(bucket)) == {"team": "video"}
    minio.delete_bucket_tags(bucket)
    assert minio.get_bucket_tags(bucket) is None


def test_compose(minio, bucket, tmp_path):
    digest = hashlib.sha256()
    sources = []
    for i, size in enumerate([6 * MiB, 5 * MiB + 17, 1234]):
        path = tmp_path / f"piece{i}"
        write_random_file(path, size)
        digest.update(path.read_bytes())
        minio.fput_object(bucket, f"pieces/{i}", str(path))
        sources.append(ComposeSource(bucket, f"pieces/{i}"))
    minio.compose_object(bucket, "whole.bin", sources)
    back = tmp_path / "whole.bin"
    minio.fget_object(bucket, "whole.bin", str(back))
    assert file_sha256(back) == digest.hexdigest()
    assert minio.stat_object(bucket, "whole.bin").size == 11 * MiB + 17 + 1234
