"""s5cmd (Go, aws-sdk-go): bucket creation, multipart upload and parallel
ranged download, listing, removal, and wildcard copies."""

from conftest import unique_bucket_name
from helpers import MiB, etag, file_multipart_etag, file_sha256, write_random_file


def keys_of(s3, bucket):
    return sorted(o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket) for o in page.get("Contents", []))


def test_mb(s5cmd, s3):
    name = unique_bucket_name("s5")
    s5cmd("mb", f"s3://{name}")
    s3.head_bucket(Bucket=name)
    assert f"s3://{name}" in s5cmd("ls").stdout
    s5cmd("rb", f"s3://{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_cp_multipart_round_trip(s5cmd, s3, bucket, tmp_path):
    src = tmp_path / "thirty.bin"
    size = 30 * MiB + 999
    digest = write_random_file(src, size)
    # 5 MiB parts: seven parts, the last one short.
    s5cmd("cp", "-p", "5", "-c", "4", src, f"s3://{bucket}/s5/thirty.bin")
    head = s3.head_object(Bucket=bucket, Key="s5/thirty.bin")
    assert head["ContentLength"] == size
    assert head["ETag"] == file_multipart_etag(src, 5 * MiB)
    assert head["ETag"].endswith('-7"')

    dst = tmp_path / "back.bin"
    s5cmd("cp", "-p", "5", "-c", "4", f"s3://{bucket}/s5/thirty.bin", dst)
    assert file_sha256(dst) == digest


def test_ls_and_rm(s5cmd, s3, bucket):
    for key, body in [("one.txt", b"1"), ("dir/two.txt", b"22"), ("dir/three.txt", b"333")]:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    top = s5cmd("ls", f"s3://{bucket}/").stdout.splitlines()
    assert any(line.split() == ["DIR", "dir/"] for line in top), top
    assert any(line.split()[-2:] == ["1", "one.txt"] for line in top), top

    flat = s5cmd("ls", f"s3://{bucket}/*").stdout.splitlines()
    assert sorted(line.split()[-1] for line in flat) == ["dir/three.txt", "dir/two.txt", "one.txt"]

    s5cmd("rm", f"s3://{bucket}/one.txt")
    assert keys_of(s3, bucket) == ["dir/three.txt", "dir/two.txt"]
    # A wildcard rm goes through DeleteObjects.
    s5cmd("rm", f"s3://{bucket}/dir/*")
    assert keys_of(s3, bucket) == []


def test_cp_wildcards(s5cmd, s3, bucket, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    files = {"f1.txt": b"first", "f2.txt": b"second", "f3.log": b"third", "f4.txt": b""}
    for name, data in files.items():
        (local / name).write_bytes(data)
    s5cmd("cp", f"{local}/*.txt", f"s3://{bucket}/up/")
    assert keys_of(s3, bucket) == ["up/f1.txt", "up/f2.txt", "up/f4.txt"]
    for name in ["f1.txt", "f2.txt", "f4.txt"]:
        assert s3.head_object(Bucket=bucket, Key=f"up/{name}")["ETag"] == etag(files[name])

    out = tmp_path / "out"
    s5cmd("cp", f"s3://{bucket}/up/*", f"{out}/")
    assert sorted(p.name for p in out.iterdir()) == ["f1.txt", "f2.txt", "f4.txt"]
    for p in out.iterdir():
        assert p.read_bytes() == files[p.name]

    # Server-side copy of many objects at once.
    s5cmd("cp", f"s3://{bucket}/up/*", f"s3://{bucket}/copied/")
    assert [k for k in keys_of(s3, bucket) if k.startswith("copied/")] == \
        ["copied/f1.txt", "copied/f2.txt", "copied/f4.txt"]
    assert s3.get_object(Bucket=bucket, Key="copied/f2.txt")["Body"].read() == b"second"
