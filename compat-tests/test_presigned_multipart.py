"""Presigned multipart, end to end, as a browser sends it with fetch: boto3
presigns every call (CreateMultipartUpload, UploadPart, ListParts with every
page, CompleteMultipartUpload with its XML body and no Content-MD5,
AbortMultipartUpload), and requests sends each with an Origin header."""

import hashlib
import os
import time

import requests

from helpers import MiB

ORIGIN = "http://localhost:5173"  # a page on a developer's loopback origin


def send(method, url, data=None):
    return requests.request(method, url, data=data, headers={"Origin": ORIGIN}, timeout=60)


def test_every_multipart_call_through_presigned_urls(s3, bucket):
    presign = s3.generate_presigned_url
    key = "browser/film.bin"
    r = send("POST", presign("create_multipart_upload", Params={"Bucket": bucket, "Key": key}))
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    upload_id = r.text.split("<UploadId>")[1].split("</UploadId>")[0]

    data = os.urandom(5 * MiB * 3 + 77)
    chunks = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    etags = []
    for n, chunk in enumerate(chunks, start=1):
        url = presign("upload_part", Params={"Bucket": bucket, "Key": key,
                                             "UploadId": upload_id, "PartNumber": n})
        r = send("PUT", url, chunk)
        assert r.status_code == 200, r.text
        assert "ETag" in r.headers["Access-Control-Expose-Headers"]
        etags.append(r.headers["ETag"])

    # ListParts, two parts a page, every page.
    listed, marker = [], 0
    while True:
        url = presign("list_parts", Params={"Bucket": bucket, "Key": key, "UploadId": upload_id,
                                            "MaxParts": 2, "PartNumberMarker": marker})
        r = send("GET", url)
        assert r.status_code == 200, r.text
        listed += [int(p.split("</PartNumber>")[0]) for p in r.text.split("<PartNumber>")[1:]]
        if "<IsTruncated>true</IsTruncated>" not in r.text:
            break
        marker = int(r.text.split("<NextPartNumberMarker>")[1].split("<")[0])
    assert listed == [1, 2, 3, 4]

    xml = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
        for n, e in enumerate(etags, start=1)) + "</CompleteMultipartUpload>"
    url = presign("complete_multipart_upload", Params={"Bucket": bucket, "Key": key,
                                                        "UploadId": upload_id})
    r = send("POST", url, xml.encode())
    assert r.status_code == 200 and "<ETag>" in r.text, r.text
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    # Abort, on a second upload.
    created = s3.create_multipart_upload(Bucket=bucket, Key="browser/abandoned")
    url = presign("abort_multipart_upload", Params={"Bucket": bucket, "Key": "browser/abandoned",
                                                     "UploadId": created["UploadId"]})
    r = send("DELETE", url)
    assert r.status_code == 204, r.text
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_an_expired_url_says_so_and_the_page_can_read_it(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="late")
    url = s3.generate_presigned_url("upload_part", ExpiresIn=1, Params={
        "Bucket": bucket, "Key": "late", "UploadId": upload["UploadId"], "PartNumber": 1})
    time.sleep(2.1)
    r = send("PUT", url, b"too late")
    assert r.status_code == 403
    assert "<Message>Request has expired</Message>" in r.text
    # CORS headers on the error, so fetch() can read it (and Uppy retry).
    assert r.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    parts = s3.list_parts(Bucket=bucket, Key="late", UploadId=upload["UploadId"])
    assert "Parts" not in parts
