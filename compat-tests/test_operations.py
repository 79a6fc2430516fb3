"""Running Stowage as an operator: a key added with SIGHUP while boto3 uses
the server, and a metrics scrape read by the Prometheus client library's
own parser, checked against the README's table of families."""

import re
import signal
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from conftest import REGION, unique_bucket_name
from helpers import MiB

README = Path(__file__).resolve().parent.parent / "README.md"

FIRST = ("operator-key", "operator-secret-1")
ADDED = ("added-key", "added-secret")


def credentials(*pairs):
    return "".join(
        f'[[credentials]]\naccess_key_id = "{k}"\nsecret_access_key = "{s}"\nadmin = true\n'
        for k, s in pairs)


def client(endpoint, pair):
    return boto3.session.Session(
        aws_access_key_id=pair[0], aws_secret_access_key=pair[1], region_name=REGION,
    ).client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"},
                                                        retries={"max_attempts": 1}))


def wait_for_log(server, text, start, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.read_log(start):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log:\n{server.read_log(start)}")


@pytest.fixture(scope="module")
def operated(start_server):
    top = 'metrics_listen = "127.0.0.1:0"\n'
    server = start_server(top + credentials(FIRST), name="stowage-operated")
    match = re.search(r"metrics on (http://\S+/metrics)", server.read_log(server.log_start))
    assert match, server.read_log()
    return server, top, match.group(1)


def test_a_key_added_with_sighup_works_at_once(operated):
    server, top, _ = operated
    s3 = client(server.endpoint, FIRST)
    bucket = unique_bucket_name("hup")
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(Exception) as refused:
        client(server.endpoint, ADDED).list_buckets()
    assert "InvalidAccessKeyId" in str(refused.value)

    config = Path(server.proc.args[2])
    config.write_text(top + credentials(FIRST, ADDED))
    start = server.log_size()
    server.proc.send_signal(signal.SIGHUP)
    wait_for_log(server, "credentials: added added-key", start)

    added = client(server.endpoint, ADDED)
    added.put_object(Bucket=bucket, Key="k", Body=b"after the reload")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"after the reload"
    assert server.proc.poll() is None


def documented_families():
    text = README.read_text()
    section = text.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(stowage_\w+)` \|", section, re.M))


def test_a_scrape_parses_and_matches_the_readme(operated):
    server, _, metrics_url = operated
    s3 = client(server.endpoint, FIRST)
    bucket = unique_bucket_name("scraped")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 1000)
    s3.put_object(Bucket=bucket, Key="b", Body=b"y" * 24)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"z" * 77)
    with pytest.raises(Exception):
        s3.get_object(Bucket=bucket, Key="missing")

    response = requests.get(metrics_url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}

    # The parser strips a counter's _total suffix from the family name.
    scraped = {n + "_total" if f.type == "counter" else n for n, f in families.items()}
    documented = documented_families()
    assert documented, "the README lists the families"
    assert scraped == documented, (scraped ^ documented)

    def samples(name, **labels):
        family = families[name.removesuffix("_total")]
        return [s for s in family.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    assert samples("stowage_bucket_objects", bucket=bucket)[0].value == 2
    assert samples("stowage_bucket_bytes", bucket=bucket)[0].value == 1024
    assert samples("stowage_bucket_incomplete_upload_bytes", bucket=bucket)[0].value == 77
    assert samples("stowage_incomplete_upload_bytes", protocol="s3")[0].value >= 77
    assert samples("stowage_requests_total", operation="GetObject", status="404")[0].value >= 1
    latency = families["stowage_request_duration_seconds"]
    assert latency.type == "histogram"
    count = [s for s in latency.samples if s.name.endswith("_count")
             and s.labels == {"operation": "PutObject", "class": "2xx"}]
    assert count and count[0].value >= 2
    assert samples("stowage_disk_free_bytes")[0].value > 0
    assert samples("stowage_connections_open")[0].value >= 0
    assert families["stowage_metadata_commit_seconds"].type == "histogram"
    assert samples("stowage_build_info")[0].labels["version"]


def blob_files(server):
    data = Path(server.log_path).parent / "data" / "blobs"
    return [p for p in data.rglob("*") if p.is_file()]


def test_aws_cp_never_downloads_rot_as_a_good_copy(aws, server, bucket, tmp_path):
    """The issue's own report: with one byte flipped on disk, `aws s3 cp`
    exited 0 with the wrong bytes. Each blob a read covers whole is now
    checked as it streams, and the CLI's 8 MiB ranges cover whole parts
    of what it uploaded, so the download fails instead."""
    import os
    sizes = {"small.bin": 1 * MiB + 3, "large.bin": 20 * MiB + 7}
    before = set(blob_files(server))
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
        aws("s3", "cp", tmp_path / name, f"s3://{bucket}/rot/{name}")
    written = [p for p in blob_files(server) if p not in before]
    # The small object is one blob; the large one three parts (8, 8, 4 MiB).
    targets = [p for p in written if p.stat().st_size in (1 * MiB + 3, 4 * MiB + 7)]
    assert len(targets) == 2, [(p, p.stat().st_size) for p in written]
    for path in targets:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    for name in sizes:
        back = tmp_path / f"back-{name}"
        done = aws("s3", "cp", f"s3://{bucket}/rot/{name}", back, check=False)
        assert done.returncode != 0, f"{name}: {done.stdout}{done.stderr}"
    damaged = [line for line in server.read_log().splitlines() if "damaged blob" in line]
    for name in sizes:
        assert any(f'key="rot/{name}"' in line for line in damaged), damaged
