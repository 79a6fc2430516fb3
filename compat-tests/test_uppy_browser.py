"""The real @uppy/aws-s3 (5.x) in a real headless Chromium: a static page on
its own origin uploads a 12 MiB file in three parts through Stowage's
signing routes, authorised by an upload grant minted here as an app's
backend would, with no app server in the byte path; then an upload paused
after its first part resumes, and one restored on a reloaded page resumes
from the parts Stowage lists, each without sending that part again.

The tests themselves are compat-tests/js/uppy.test.mjs, run with
`node --test`; it bundles the page (compat-tests/js/uppy-page.mjs) with
esbuild and drives Debian's /usr/bin/chromium with playwright-core.
compat-tests/run installs Chromium (apt-get) and the pinned npm packages
(npm ci)."""

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ACCESS_KEY, REGION, SECRET_KEY
from helpers import MiB

JS = Path(__file__).resolve().parent / "js"
TESTS = JS / "uppy.test.mjs"
CHROMIUM = os.environ.get("STOWAGE_CHROMIUM", "/usr/bin/chromium")
PACKAGES = ("@uppy/core", "@uppy/aws-s3", "esbuild", "playwright-core", "@aws-sdk/client-s3")


def _text(output):
    # TimeoutExpired carries bytes even when the run asked for text.
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output or ""


def mint_grant(s3, bucket):
    """The app backend's grant: any file name under uploads/, video types,
    up to 64 MiB, for ten minutes."""
    post = s3.generate_presigned_post(
        bucket, "uploads/${filename}",
        Conditions=[["starts-with", "$key", "uploads/"],
                    ["content-length-range", 1, 64 * MiB],
                    ["starts-with", "$Content-Type", "video/"]],
        ExpiresIn=600)
    return base64.b64encode(json.dumps(post["fields"]).encode()).decode()


def test_uppy_in_chromium(server, endpoint, bucket, s3):
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed (the Uppy browser tests need Node 20 or later)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM} (compat-tests/run installs Debian's "
                    "chromium with apt-get)")
    missing = [p for p in PACKAGES if not (JS / "node_modules" / p).is_dir()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed in {JS}/node_modules "
                    "(compat-tests/run installs them with npm ci)")
    log_start = server.log_size()
    env = dict(
        os.environ,
        STOWAGE_ENDPOINT=endpoint,
        STOWAGE_BUCKET=bucket,
        STOWAGE_GRANT=mint_grant(s3, bucket),
        STOWAGE_LOG=str(server.log_path),
        STOWAGE_CHROMIUM=CHROMIUM,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION=REGION,
    )
    cmd = [node, "--test", "--test-reporter=spec", str(TESTS)]
    try:
        proc = subprocess.run(cmd, cwd=JS, env=env, capture_output=True,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} timed out after {e.timeout} s\n"
                    f"stdout:\n{_text(e.stdout)}\nstderr:\n{_text(e.stderr)}")
    faults = re.findall(r".*status=5\d\d.*", server.read_log(log_start))
    assert not faults, "server errors during the run:\n" + "\n".join(faults)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
