"""boto3 multipart upload: the low-level calls and their S3 error cases, part
reads and part copies, and the transfer manager (upload_file/download_file),
with parts sent both with a checksum header and as aws-chunked bodies."""

import os
import time

import boto3.s3.transfer
import pytest
from botocore.exceptions import ClientError

from conftest import REPO, Server, make_client
from helpers import (MiB, etag, file_multipart_etag, file_sha256, multipart_etag, s3_error,
                     write_random_file)


def upload_parts(s3, bucket, key, upload_id, parts):
    """Uploads {part_number: bytes}; returns the CompleteMultipartUpload list."""
    done = []
    for number, data in sorted(parts.items()):
        out = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                             PartNumber=number, Body=data)
        assert out["ETag"] == etag(data)
        done.append({"PartNumber": number, "ETag": out["ETag"]})
    return done


def complete(s3, bucket, key, upload_id, parts, **kwargs):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts}, **kwargs)


def new_upload(s3, bucket, key, **kwargs):
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)["UploadId"]


@pytest.fixture(scope="module")
def blocks():
    """Three distinct random blocks: two of the minimum part size and a short
    last one."""
    return [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(MiB + 3)]


def test_multipart_upload_list_parts_complete(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "mp", ContentType="video/mp4", Metadata={"kind": "mp"})
    parts = upload_parts(s3, bucket, "mp", uid, dict(enumerate(blocks, start=1)))

    first = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    assert [p["Size"] for p in first["Parts"]] == [5 * MiB, 5 * MiB]
    assert [p["ETag"] for p in first["Parts"]] == [etag(b) for b in blocks[:2]]
    assert first["IsTruncated"] is True and first["NextPartNumberMarker"] == 2
    rest = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid,
                         PartNumberMarker=first["NextPartNumberMarker"])
    assert [(p["PartNumber"], p["Size"]) for p in rest["Parts"]] == [(3, MiB + 3)]
    assert rest["IsTruncated"] is False

    out = complete(s3, bucket, "mp", uid, parts)
    assert out["ETag"] == multipart_etag(blocks)
    head = s3.head_object(Bucket=bucket, Key="mp")
    assert head["ContentLength"] == sum(map(len, blocks))
    assert head["ETag"] == multipart_etag(blocks)
    assert head["ContentType"] == "video/mp4" and head["Metadata"] == {"kind": "mp"}
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(blocks)
    with s3_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)


def test_aws_chunked_parts(s3_chunked, s3, bucket, blocks):
    uid = new_upload(s3_chunked, bucket, "chunked")
    parts = upload_parts(s3_chunked, bucket, "chunked", uid, {1: blocks[0], 2: blocks[2]})
    out = complete(s3_chunked, bucket, "chunked", uid, parts)
    assert out["ETag"] == multipart_etag([blocks[0], blocks[2]])
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == blocks[0] + blocks[2]
    assert "aws-chunked" not in got.get("ContentEncoding", "")


def test_single_small_part(s3, bucket):
    uid = new_upload(s3, bucket, "one")
    parts = upload_parts(s3, bucket, "one", uid, {1: b"tiny"})
    assert complete(s3, bucket, "one", uid, parts)["ETag"] == multipart_etag([b"tiny"])
    assert s3.get_object(Bucket=bucket, Key="one")["Body"].read() == b"tiny"


def test_part_numbers_with_gaps(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "gaps")
    parts = upload_parts(s3, bucket, "gaps", uid, {1: blocks[0], 3: blocks[1], 7: blocks[2]})
    assert complete(s3, bucket, "gaps", uid, parts)["ETag"] == multipart_etag(blocks)
    assert s3.get_object(Bucket=bucket, Key="gaps")["Body"].read() == b"".join(blocks)


def test_reupload_replaces_part(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "re")
    old = upload_parts(s3, bucket, "re", uid, {1: blocks[0]})
    new = upload_parts(s3, bucket, "re", uid, {1: blocks[1], 2: blocks[2]})
    listed = s3.list_parts(Bucket=bucket, Key="re", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == \
        [(1, etag(blocks[1])), (2, etag(blocks[2]))]
    with s3_error("InvalidPart", 400):
        complete(s3, bucket, "re", uid, old + new[1:])
    assert complete(s3, bucket, "re", uid, new)["ETag"] == multipart_etag(blocks[1:])
    assert s3.get_object(Bucket=bucket, Key="re")["Body"].read() == blocks[1] + blocks[2]


def test_entity_too_small(s3, bucket):
    uid = new_upload(s3, bucket, "small")
    parts = upload_parts(s3, bucket, "small", uid, {1: os.urandom(MiB), 2: os.urandom(MiB)})
    with s3_error("EntityTooSmall", 400):
        complete(s3, bucket, "small", uid, parts)
    # The failed completion leaves the upload usable.
    assert len(s3.list_parts(Bucket=bucket, Key="small", UploadId=uid)["Parts"]) == 2


def test_invalid_part(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "inv")
    parts = upload_parts(s3, bucket, "inv", uid, {1: blocks[0], 2: blocks[2]})
    with s3_error("InvalidPart", 400):
        complete(s3, bucket, "inv", uid,
                 [parts[0], {"PartNumber": 2, "ETag": '"00000000000000000000000000000000"'}])
    # Part 3 was never uploaded.
    with s3_error("InvalidPart", 400):
        complete(s3, bucket, "inv", uid, [parts[0], {"PartNumber": 3, "ETag": parts[1]["ETag"]}])
    assert complete(s3, bucket, "inv", uid, parts)["ETag"] == multipart_etag([blocks[0], blocks[2]])


def test_complete_accepts_unquoted_etags(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "unquoted")
    parts = upload_parts(s3, bucket, "unquoted", uid, {1: blocks[0], 2: blocks[2]})
    bare = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"].strip('"')} for p in parts]
    out = complete(s3, bucket, "unquoted", uid, bare)
    assert out["ETag"] == multipart_etag([blocks[0], blocks[2]])


def test_invalid_part_order(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "order")
    parts = upload_parts(s3, bucket, "order", uid, {1: blocks[0], 2: blocks[1]})
    with s3_error("InvalidPartOrder", 400):
        complete(s3, bucket, "order", uid, [parts[1], parts[0]])


def test_empty_part_list_is_malformed(s3, bucket):
    uid = new_upload(s3, bucket, "empty")
    upload_parts(s3, bucket, "empty", uid, {1: b"x"})
    with s3_error("MalformedXML", 400):
        complete(s3, bucket, "empty", uid, [])


@pytest.mark.parametrize("number", [0, 10001])
def test_part_number_out_of_range(s3, bucket, number):
    uid = new_upload(s3, bucket, "pn")
    with s3_error("InvalidArgument", 400):
        s3.upload_part(Bucket=bucket, Key="pn", UploadId=uid, PartNumber=number, Body=b"x")


def test_abort(s3, bucket):
    uid = new_upload(s3, bucket, "ab")
    parts = upload_parts(s3, bucket, "ab", uid, {1: b"data"})
    out = s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error("NoSuchUpload", 404):
        s3.upload_part(Bucket=bucket, Key="ab", UploadId=uid, PartNumber=2, Body=b"more")
    with s3_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key="ab", UploadId=uid)
    with s3_error("NoSuchUpload", 404):
        complete(s3, bucket, "ab", uid, parts)
    with s3_error("NoSuchUpload", 404):
        s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="ab")


def test_list_multipart_uploads(s3, bucket):
    created = []
    for key in ["docs/a", "docs/b", "docs/b", "img/c", "top"]:
        created.append((key, new_upload(s3, bucket, key)))
        time.sleep(0.02)  # distinct initiation times for the two docs/b

    out = s3.list_multipart_uploads(Bucket=bucket, Prefix="docs/")
    assert [(u["Key"], u["UploadId"]) for u in out["Uploads"]] == created[:3]

    out = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["docs/", "img/"]
    assert [(u["Key"], u["UploadId"]) for u in out["Uploads"]] == [created[4]]

    seen, kwargs = [], {}
    while True:
        out = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, **kwargs)
        page = [(u["Key"], u["UploadId"]) for u in out.get("Uploads", [])]
        assert len(page) <= 2
        seen += page
        if not out["IsTruncated"]:
            break
        kwargs = {"KeyMarker": out["NextKeyMarker"], "UploadIdMarker": out["NextUploadIdMarker"]}
    assert seen == created


def test_complete_retry_replays_success(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "retry")
    parts = upload_parts(s3, bucket, "retry", uid, {1: blocks[0], 2: blocks[2]})
    first = complete(s3, bucket, "retry", uid, parts)
    again = complete(s3, bucket, "retry", uid, parts)
    assert first["ETag"] == again["ETag"] == multipart_etag([blocks[0], blocks[2]])
    assert s3.get_object(Bucket=bucket, Key="retry")["Body"].read() == blocks[0] + blocks[2]


def test_get_and_head_part_number(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "pp")
    complete(s3, bucket, "pp", uid, upload_parts(s3, bucket, "pp", uid,
                                                 dict(enumerate(blocks, start=1))))
    total = sum(map(len, blocks))
    offset = 0
    for number, block in enumerate(blocks, start=1):
        got = s3.get_object(Bucket=bucket, Key="pp", PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 3
        assert got["ContentLength"] == len(block)
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(block) - 1}/{total}"
        assert got["Body"].read() == block
        offset += len(block)
    head = s3.head_object(Bucket=bucket, Key="pp", PartNumber=2)
    assert head["PartsCount"] == 3 and head["ContentLength"] == len(blocks[1])
    with s3_error("InvalidPartNumber", 416):
        s3.get_object(Bucket=bucket, Key="pp", PartNumber=4)
    # partNumber and Range together are refused.
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="pp", PartNumber=1, Range="bytes=0-9")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    # On a single-part object, part 1 is the whole object.
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain bytes")
    got = s3.get_object(Bucket=bucket, Key="plain", PartNumber=1)
    assert got["Body"].read() == b"plain bytes"
    assert "PartsCount" not in got


def test_upload_part_copy_with_ranges(s3, bucket):
    source = os.urandom(12 * MiB)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    uid = new_upload(s3, bucket, "assembled")
    src = {"Bucket": bucket, "Key": "source"}
    pieces = [(0, 5 * MiB), (5 * MiB, 12 * MiB), (MiB, 2 * MiB)]
    parts = []
    for number, (start, end) in enumerate(pieces, start=1):
        out = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=uid,
                                  PartNumber=number, CopySource=src,
                                  CopySourceRange=f"bytes={start}-{end - 1}")
        assert out["CopyPartResult"]["ETag"] == etag(source[start:end])
        parts.append({"PartNumber": number, "ETag": out["CopyPartResult"]["ETag"]})
    want = [source[a:b] for a, b in pieces]
    assert complete(s3, bucket, "assembled", uid, parts)["ETag"] == multipart_etag(want)
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == b"".join(want)


def test_complete_if_none_match(s3, bucket, blocks):
    uid = new_upload(s3, bucket, "cond")
    parts = upload_parts(s3, bucket, "cond", uid, {1: blocks[2]})
    complete(s3, bucket, "cond", uid, parts, IfNoneMatch="*")  # no object yet: allowed

    uid = new_upload(s3, bucket, "cond")
    parts = upload_parts(s3, bucket, "cond", uid, {1: b"replacement"})
    with s3_error("PreconditionFailed", 412):
        complete(s3, bucket, "cond", uid, parts, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="cond")["Body"].read() == blocks[2]


@pytest.mark.parametrize("client", ["s3", "s3_chunked"])
def test_transfer_manager_round_trip(request, client, s3, bucket, tmp_path):
    """upload_file sets ChecksumAlgorithm=CRC32 on the upload and sends the
    part checksums in CompleteMultipartUpload; download_file reads ranges."""
    s3 = request.getfixturevalue(client)
    src = tmp_path / "upload.bin"
    size = 40 * MiB + 12345
    digest = write_random_file(src, size)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MiB,
                                              multipart_chunksize=8 * MiB)
    s3.upload_file(str(src), bucket, "big/object.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big/object.bin")
    assert head["ContentLength"] == size
    assert head["ETag"] == file_multipart_etag(src, 8 * MiB)
    assert head["ETag"].endswith('-6"')
    dst = tmp_path / "download.bin"
    s3.download_file(bucket, "big/object.bin", str(dst), Config=config)
    assert file_sha256(dst) == digest


def test_upload_and_objects_survive_a_crash(tmp_path, blocks):
    """A multipart upload in progress and an acknowledged object outlive a
    SIGKILL of the server; the upload then completes after the restart."""
    binary = os.environ.get("STOWAGE_BIN", str(REPO / "target/release/stowage"))
    print(f"server log: {tmp_path / 'stowage.log'}")  # shown if the test fails
    first = Server(binary, tmp_path)
    try:
        c = make_client(first.endpoint)
        c.create_bucket(Bucket="crash")
        c.put_object(Bucket="crash", Key="acked", Body=blocks[2])
        uid = new_upload(c, "crash", "resumed")
        parts = upload_parts(c, "crash", "resumed", uid, {1: blocks[0]})
    finally:
        first.proc.kill()
        first.stop()
    second = Server(binary, tmp_path)
    try:
        c = make_client(second.endpoint)
        assert c.get_object(Bucket="crash", Key="acked")["Body"].read() == blocks[2]
        listed = c.list_parts(Bucket="crash", Key="resumed", UploadId=uid)["Parts"]
        assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, etag(blocks[0]))]
        parts += upload_parts(c, "crash", "resumed", uid, {2: blocks[1]})
        assert complete(c, "crash", "resumed", uid, parts)["ETag"] == multipart_etag(blocks[:2])
        assert c.get_object(Bucket="crash", Key="resumed")["Body"].read() == blocks[0] + blocks[1]
    finally:
        second.stop()
