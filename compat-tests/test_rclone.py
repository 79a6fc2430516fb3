"""rclone (Go, its own S3 backend) as the README configures it: copy, check,
sync and server-side copy of a 300 MiB file and a tree of 200 files. Every
check of bytes is a sha256 of what came back."""

import os
import random
import shutil
import subprocess

import pytest

from conftest import recipe
from helpers import MiB, file_sha256, tree_digests, write_random_file


@pytest.fixture(scope="module")
def rclone(endpoint, tmp_path_factory):
    """Runs `rclone --config <the README's rclone.conf> ARGS...`."""
    binary = shutil.which("rclone")
    if not binary:
        pytest.fail("rclone is not installed (compat-tests/run installs it)")
    home = tmp_path_factory.mktemp("rclone")
    config = home / "rclone.conf"
    config.write_text(recipe("rclone.conf", endpoint))

    def run(*args, timeout=600):
        cmd = [binary, "--config", str(config), *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, HOME=str(home)))
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc
    return run


def make_tree(root, count, seed):
    """`count` files of 0 B to 300 KiB in nested directories."""
    rng = random.Random(seed)
    for i in range(count):
        path = root / f"d{i % 7}" / f"e{i % 3}" / f"file-{i:03}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.choice([0, 1, 100, 4096, 70_000, 300_000])))


def test_large_file_copy_check_and_server_side_copy(rclone, s3, bucket, tmp_path):
    src = tmp_path / "big.bin"
    digest = write_random_file(src, 300 * MiB + 123)
    # 5 MiB chunks, four at a time: a 61-part multipart upload.
    rclone("copy", src, f"stowage:{bucket}/in", "--s3-chunk-size", "5M",
           "--s3-upload-concurrency", "4")
    head = s3.head_object(Bucket=bucket, Key="in/big.bin")
    assert head["ContentLength"] == 300 * MiB + 123
    assert head["ETag"].endswith('-61"')
    # check --download compares the bytes themselves, not stored hashes.
    rclone("check", "--download", tmp_path, f"stowage:{bucket}/in", "--include", "big.bin")
    # Server-side copy (CopyObject): no bytes pass through rclone.
    rclone("copyto", f"stowage:{bucket}/in/big.bin", f"stowage:{bucket}/copied/big.bin")
    back = tmp_path / "back"
    rclone("copy", f"stowage:{bucket}/copied", back)
    assert file_sha256(back / "big.bin") == digest


def test_tree_copy_sync_and_check(rclone, s3, bucket, tmp_path):
    local = tmp_path / "tree"
    make_tree(local, 200, seed=7)
    rclone("copy", local, f"stowage:{bucket}/tree", "--transfers", "8")
    rclone("check", local, f"stowage:{bucket}/tree")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix="tree/") for o in page.get("Contents", [])]
    assert len(keys) == 200

    # Change the tree: edit, remove and add files; sync makes the remote
    # match, deleting what the source no longer has.
    files = sorted(p for p in local.rglob("*") if p.is_file())
    files[0].write_bytes(b"edited")
    files[1].unlink()
    (local / "d0" / "new.txt").write_bytes(b"new file")
    rclone("sync", local, f"stowage:{bucket}/tree", "--transfers", "8")
    rclone("check", "--download", local, f"stowage:{bucket}/tree")

    # Server-side copy of the whole tree, then down again, byte for byte.
    rclone("copy", f"stowage:{bucket}/tree", f"stowage:{bucket}/tree-copy")
    back = tmp_path / "back"
    rclone("copy", f"stowage:{bucket}/tree-copy", back, "--transfers", "8")
    assert tree_digests(back) == tree_digests(local)
    # Empty files survive too.
    assert any(p.stat().st_size == 0 for p in back.rglob("*") if p.is_file())
