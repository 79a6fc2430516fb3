"""aws-sdk-js v3 in Node (client-s3, lib-storage, s3-request-presigner, with
the SDK's default CRC32 checksums): lib-storage multipart uploads of a Buffer
and of a stream of unknown length, a streamed PutObject sent aws-chunked
with a CRC32 trailer, ListObjectsV2 and ListParts paging through the SDK's
paginators, and presigned UploadPart and GetObject URLs used with fetch.

The tests themselves are compat-tests/js/s3.test.mjs, run with `node --test`
against the session's server and a fresh bucket, with the client the README's
recipe (recipes/s3-client.mjs) makes; compat-tests/run installs the pinned
SDK (compat-tests/js/package-lock.json) with npm ci."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import re

from conftest import ACCESS_KEY, REGION, SECRET_KEY, recipe

JS = Path(__file__).resolve().parent / "js"
TESTS = JS / "s3.test.mjs"


def _text(output):
    # TimeoutExpired carries bytes even when the run asked for text.
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output or ""


def test_aws_sdk_js(server, endpoint, bucket):
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed (the aws-sdk-js tests need Node 20 or later)")
    if not (JS / "node_modules" / "@aws-sdk" / "client-s3").is_dir():
        pytest.fail(f"the SDK is not installed in {JS}/node_modules "
                    "(compat-tests/run installs it with npm ci)")
    # The recipe as a module: it lives beside node_modules so that its
    # import of @aws-sdk/client-s3 resolves.
    client = JS / f".recipe-client-{os.getpid()}.mjs"
    client.write_text(recipe("s3-client.mjs", endpoint) + "\nexport { s3 };\n")
    log_start = server.log_size()
    env = dict(
        os.environ,
        STOWAGE_RECIPE_CLIENT=str(client),
        STOWAGE_ENDPOINT=endpoint,
        STOWAGE_BUCKET=bucket,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION=REGION,
    )
    cmd = [node, "--test", "--test-reporter=spec", str(TESTS)]
    try:
        proc = subprocess.run(cmd, cwd=JS, env=env, capture_output=True,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        client.unlink()
        pytest.fail(f"{' '.join(cmd)} timed out after {e.timeout} s\n"
                    f"stdout:\n{_text(e.stdout)}\nstderr:\n{_text(e.stderr)}")
    client.unlink()
    faults = re.findall(r".*status=5\d\d.*", server.read_log(log_start))
    assert not faults, "server errors during the run:\n" + "\n".join(faults)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
