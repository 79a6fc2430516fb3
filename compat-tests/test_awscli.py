"""The aws CLI (v1, from PyPI): high-level `aws s3` commands, including a
multipart transfer of more than 100 MiB, and the low-level `aws s3api`
multipart commands."""

import json
import os

from conftest import unique_bucket_name
from helpers import MiB, etag, file_multipart_etag, file_sha256, multipart_etag, write_random_file


def keys_of(s3, bucket, prefix=""):
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]


def test_cp_large_file_round_trip(aws, s3, bucket, tmp_path):
    src = tmp_path / "big.bin"
    size = 110 * MiB + 7
    digest = write_random_file(src, size)
    aws("s3", "cp", src, f"s3://{bucket}/large/big.bin")
    head = s3.head_object(Bucket=bucket, Key="large/big.bin")
    assert head["ContentLength"] == size
    # The CLI's default multipart_chunksize is 8 MiB.
    assert head["ETag"] == file_multipart_etag(src, 8 * MiB)
    dst = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{bucket}/large/big.bin", dst)
    assert dst.stat().st_size == size
    assert file_sha256(dst) == digest


def make_tree(root):
    files = {
        "a.txt": b"alpha\n",
        "with space.txt": b"spaced out\n",
        "sub/b.txt": b"bravo\n",
        "sub/deeper/c.bin": os.urandom(300_000),
        "sub/deeper/empty": b"",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_sync_up_and_down(aws, s3, bucket, tmp_path):
    up = tmp_path / "up"
    files = make_tree(up)
    aws("s3", "sync", up, f"s3://{bucket}/tree/")
    assert sorted(keys_of(s3, bucket)) == sorted(f"tree/{k}" for k in files)
    for rel, data in files.items():
        assert s3.head_object(Bucket=bucket, Key=f"tree/{rel}")["ETag"] == etag(data)

    # Nothing changed, so a second sync uploads nothing.
    again = aws("s3", "sync", up, f"s3://{bucket}/tree/")
    assert "upload:" not in again.stdout, again.stdout

    down = tmp_path / "down"
    aws("s3", "sync", f"s3://{bucket}/tree/", down)
    for rel, data in files.items():
        assert (down / rel).read_bytes() == data, rel

    # --delete removes keys whose local file is gone.
    (up / "a.txt").unlink()
    out = aws("s3", "sync", up, f"s3://{bucket}/tree/", "--delete")
    assert f"delete: s3://{bucket}/tree/a.txt" in out.stdout
    assert "tree/a.txt" not in keys_of(s3, bucket)
    assert len(keys_of(s3, bucket)) == len(files) - 1


def test_ls(aws, s3, bucket):
    for key, body in [("top.txt", b"12345"), ("dir/x.txt", b"x"), ("dir/sub/y.txt", b"yy")]:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    listing = aws("s3", "ls", f"s3://{bucket}/").stdout.splitlines()
    assert any(line.split() == ["PRE", "dir/"] for line in listing), listing
    assert any(line.split()[-2:] == ["5", "top.txt"] for line in listing), listing
    assert len(listing) == 2, listing

    recursive = aws("s3", "ls", f"s3://{bucket}", "--recursive").stdout.splitlines()
    assert sorted(line.split()[-1] for line in recursive) == \
        ["dir/sub/y.txt", "dir/x.txt", "top.txt"]
    sizes = {line.split()[-1]: int(line.split()[-2]) for line in recursive}
    assert sizes == {"dir/sub/y.txt": 2, "dir/x.txt": 1, "top.txt": 5}

    buckets = aws("s3", "ls").stdout.splitlines()
    assert any(line.split()[-1] == bucket for line in buckets), buckets


def test_rm_recursive(aws, s3, bucket):
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"junk/{i}", Body=b"j")
    s3.put_object(Bucket=bucket, Key="keep/me", Body=b"k")
    aws("s3", "rm", f"s3://{bucket}/junk/", "--recursive")
    assert keys_of(s3, bucket) == ["keep/me"]
    aws("s3", "rm", f"s3://{bucket}/", "--recursive")
    assert keys_of(s3, bucket) == []


def test_mb_rb(aws, s3):
    name = unique_bucket_name("cli")
    assert f"make_bucket: {name}" in aws("s3", "mb", f"s3://{name}").stdout
    s3.head_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="inside", Body=b"x")
    # rb refuses a non-empty bucket; --force empties it first.
    assert aws("s3", "rb", f"s3://{name}", check=False).returncode != 0
    aws("s3", "rb", f"s3://{name}", "--force")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def s3api(aws, *args):
    out = aws("s3api", *args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


def test_s3api_multipart(aws, s3, bucket, tmp_path):
    blocks = [os.urandom(5 * MiB), os.urandom(1234)]
    uid = s3api(aws, "create-multipart-upload", "--bucket", bucket, "--key", "api/obj")["UploadId"]
    parts = []
    for number, block in enumerate(blocks, start=1):
        body = tmp_path / f"part{number}"
        body.write_bytes(block)
        out = s3api(aws, "upload-part", "--bucket", bucket, "--key", "api/obj",
                    "--upload-id", uid, "--part-number", str(number), "--body", body)
        assert out["ETag"] == etag(block)
        parts.append({"PartNumber": number, "ETag": out["ETag"]})

    listed = s3api(aws, "list-parts", "--bucket", bucket, "--key", "api/obj", "--upload-id", uid)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == \
        [(1, 5 * MiB, etag(blocks[0])), (2, 1234, etag(blocks[1]))]

    manifest = tmp_path / "parts.json"
    manifest.write_text(json.dumps({"Parts": parts}))
    done = s3api(aws, "complete-multipart-upload", "--bucket", bucket, "--key", "api/obj",
                 "--upload-id", uid, "--multipart-upload", f"file://{manifest}")
    assert done["ETag"] == multipart_etag(blocks)
    assert done["Key"] == "api/obj" and done["Bucket"] == bucket

    out = tmp_path / "obj.out"
    got = s3api(aws, "get-object", "--bucket", bucket, "--key", "api/obj", out)
    assert got["ContentLength"] == sum(map(len, blocks))
    assert out.read_bytes() == b"".join(blocks)


def test_s3api_abort(aws, s3, bucket):
    uid = s3api(aws, "create-multipart-upload", "--bucket", bucket, "--key", "gone")["UploadId"]
    uploads = s3api(aws, "list-multipart-uploads", "--bucket", bucket)
    assert [u["UploadId"] for u in uploads["Uploads"]] == [uid]
    s3api(aws, "abort-multipart-upload", "--bucket", bucket, "--key", "gone", "--upload-id", uid)
    assert not s3api(aws, "list-multipart-uploads", "--bucket", bucket).get("Uploads")
    failed = aws("s3api", "list-parts", "--bucket", bucket, "--key", "gone",
                 "--upload-id", uid, check=False)
    assert failed.returncode != 0 and "NoSuchUpload" in failed.stderr
