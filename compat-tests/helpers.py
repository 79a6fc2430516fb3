"""Independent computations of what S3 must answer (ETags, digests), and an
assertion helper for S3 error responses."""

import contextlib
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def etag(data: bytes) -> str:
    """The quoted ETag of a single-part object: its MD5 in hex."""
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(parts) -> str:
    """The quoted ETag of a multipart object: md5(concat(part md5s))-N."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts))
    return f'"{digest.hexdigest()}-{len(parts)}"'


def chunks(data: bytes, size: int):
    return [data[i:i + size] for i in range(0, len(data), size)]


def write_random_file(path, size: int, block: int = 4 * MiB) -> str:
    """Writes `size` random bytes to `path`; returns their SHA-256 in hex."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(block, left))
            h.update(b)
            f.write(b)
            left -= len(b)
    return h.hexdigest()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(4 * MiB), b""):
            h.update(b)
    return h.hexdigest()


def tree_digests(root) -> dict:
    """The sha256 of every file under `root`, by relative path."""
    return {str(p.relative_to(root)): file_sha256(p)
            for p in sorted(root.rglob("*")) if p.is_file()}


def file_multipart_etag(path, part_size: int) -> str:
    """multipart_etag() of a file cut into `part_size` parts."""
    md5s = []
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(part_size), b""):
            md5s.append(hashlib.md5(b).digest())
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


@contextlib.contextmanager
def s3_error(code: str, status: int):
    """Asserts that the block raises a ClientError with this S3 error code and
    HTTP status."""
    with pytest.raises(ClientError) as info:
        yield info
    response = info.value.response
    got = (response["Error"].get("Code"), response["ResponseMetadata"]["HTTPStatusCode"])
    assert got == (code, status), f"expected {code} {status}, got {got}: {response}"
