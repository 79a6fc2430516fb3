"""s3cmd 2.4 as the README configures it: put, get, sync both ways, cp and mv
(which send PutObjectAcl after the copy), and resuming an interrupted
multipart upload with `--upload-id`. Bytes are checked by sha256."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import recipe
from helpers import MiB, chunks, file_sha256, tree_digests, write_random_file


@pytest.fixture(scope="module")
def s3cmd(endpoint, tmp_path_factory):
    """Runs `s3cmd -c <the README's s3cfg> ARGS...`."""
    binary = Path(sys.executable).parent / "s3cmd"
    if not binary.exists():
        pytest.fail("s3cmd is not installed (compat-tests/run installs it)")
    home = tmp_path_factory.mktemp("s3cmd")
    config = home / "s3cfg"
    config.write_text(recipe("s3cfg", endpoint))

    def run(*args, timeout=600):
        cmd = [sys.executable, str(binary), "-c", str(config), *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, HOME=str(home)))
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc
    return run


def test_put_get_cp_mv(s3cmd, s3, bucket, tmp_path):
    small = tmp_path / "small.bin"
    small_digest = write_random_file(small, 100_000)
    big = tmp_path / "big.bin"
    big_digest = write_random_file(big, 23 * MiB + 5)
    s3cmd("put", small, f"s3://{bucket}/small.bin")
    s3cmd("put", "--multipart-chunk-size-mb=5", big, f"s3://{bucket}/big.bin")
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].endswith('-5"')
    # cp and mv are CopyObject followed by PutObjectAcl with the policy
    # GetObjectAcl returned.
    s3cmd("cp", f"s3://{bucket}/big.bin", f"s3://{bucket}/copy/big.bin")
    s3cmd("mv", f"s3://{bucket}/small.bin", f"s3://{bucket}/moved/small.bin")
    listed = s3cmd("ls", "--recursive", f"s3://{bucket}").stdout
    assert "moved/small.bin" in listed and f"s3://{bucket}/small.bin" not in listed
    back = tmp_path / "back"
    back.mkdir()
    s3cmd("get", f"s3://{bucket}/copy/big.bin", back / "big.bin")
    s3cmd("get", f"s3://{bucket}/moved/small.bin", back / "small.bin")
    assert file_sha256(back / "big.bin") == big_digest
    assert file_sha256(back / "small.bin") == small_digest


def test_sync_both_ways(s3cmd, bucket, tmp_path):
    local = tmp_path / "local"
    for i in range(30):
        path = local / f"dir{i % 4}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_random_file(path, 1000 * i)
    s3cmd("sync", f"{local}/", f"s3://{bucket}/sync/")
    (local / "dir0" / "f0.bin").write_bytes(b"changed")
    (local / "dir1" / "f1.bin").unlink()
    s3cmd("sync", "--delete-removed", f"{local}/", f"s3://{bucket}/sync/")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    s3cmd("sync", f"s3://{bucket}/sync/", f"{mirror}/")
    assert tree_digests(mirror) == tree_digests(local)
    assert len(tree_digests(mirror)) == 29


def test_resume_with_upload_id(s3cmd, s3, server, bucket, tmp_path):
    """An upload interrupted after three of seven parts: s3cmd lists the
    parts already stored, sends only the other four, and completes."""
    src = tmp_path / "resumed.bin"
    digest = write_random_file(src, 33 * MiB)
    data = src.read_bytes()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="resumed.bin")
    upload_id = upload["UploadId"]
    for n, part in enumerate(chunks(data, 5 * MiB)[:3], start=1):
        s3.upload_part(Bucket=bucket, Key="resumed.bin", UploadId=upload_id,
                       PartNumber=n, Body=part)
    listed = s3cmd("multipart", f"s3://{bucket}").stdout
    assert upload_id in listed

    log_start = server.log_size()
    s3cmd("put", "--multipart-chunk-size-mb=5", f"--upload-id={upload_id}",
          src, f"s3://{bucket}/resumed.bin")
    log = server.read_log(log_start)
    sent = re.findall(r'op=UploadPart method=PUT bucket="[^"]+" key="resumed.bin"', log)
    assert len(sent) == 4, log
    assert s3.head_object(Bucket=bucket, Key="resumed.bin")["ETag"].endswith('-7"')
    s3cmd("get", f"s3://{bucket}/resumed.bin", tmp_path / "back.bin")
    assert file_sha256(tmp_path / "back.bin") == digest
