"""HTTPS on the S3 port: a certificate made here with openssl, trusted by
boto3 and the aws CLI, carrying the uploads those clients make over TLS
(botocore then streams with STREAMING-UNSIGNED-PAYLOAD-TRAILER)."""

import subprocess

import boto3
import pytest
from botocore.config import Config

from conftest import ACCESS_KEY, REGION, SECRET_KEY, _runner, _tool, unique_bucket_name
from helpers import MiB, file_sha256, write_random_file


@pytest.fixture(scope="module")
def tls(start_server, tmp_path_factory):
    certs = tmp_path_factory.mktemp("tls-certs")
    cert, key = certs / "cert.pem", certs / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    server = start_server(f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n', name="stowage-tls")
    return server, cert


def client(endpoint, ca):
    return boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION,
    ).client("s3", endpoint_url=endpoint, verify=str(ca),
             config=Config(s3={"addressing_style": "path"}))


def test_boto3_uploads_over_https(tls, tmp_path):
    server, ca = tls
    assert server.endpoint.startswith("https://")
    s3 = client(server.endpoint, ca)
    bucket = unique_bucket_name("tls")
    s3.create_bucket(Bucket=bucket)
    src = tmp_path / "big.bin"
    digest = write_random_file(src, 20 * MiB + 3)
    start = server.log_size()
    s3.upload_file(str(src), bucket, "big.bin")  # multipart, CRC32 trailers
    s3.put_object(Bucket=bucket, Key="small", Body=b"over tls")
    log = server.read_log(start)
    assert 'op=UploadPart' in log and 'auth="sigv4-unsigned-trailer"' in log, log[-2000:]
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(dst))
    assert file_sha256(dst) == digest
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"over tls"


def test_an_untrusting_client_is_refused_and_plain_http_gets_nothing(tls):
    server, _ = tls
    from botocore.exceptions import SSLError, EndpointConnectionError, ConnectionClosedError
    untrusting = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION,
    ).client("s3", endpoint_url=server.endpoint, config=Config(retries={"max_attempts": 1}))
    with pytest.raises(SSLError):
        untrusting.list_buckets()
    plain = client(server.endpoint.replace("https://", "http://"), "/dev/null")
    plain.meta.config.retries = {"max_attempts": 1}
    with pytest.raises((EndpointConnectionError, ConnectionClosedError, Exception)):
        plain.list_buckets()


def test_aws_cli_over_https(tls, cli_env, tmp_path):
    server, ca = tls
    aws = _runner(_tool("aws"), server.endpoint, cli_env)
    bucket = unique_bucket_name("tls-cli")
    aws("--ca-bundle", ca, "s3", "mb", f"s3://{bucket}")
    src = tmp_path / "f.bin"
    digest = write_random_file(src, 12 * MiB)
    aws("--ca-bundle", ca, "s3", "cp", src, f"s3://{bucket}/f.bin")
    dst = tmp_path / "g.bin"
    aws("--ca-bundle", ca, "s3", "cp", f"s3://{bucket}/f.bin", dst)
    assert file_sha256(dst) == digest
