"""Flexible checksums end to end with boto3: every algorithm (CRC32, CRC32C,
CRC64NVME, SHA1, SHA256) on PutObject and UploadPart, composite and
full-object multipart checksums, the transfer manager's default CRC32,
GetObjectAttributes, and the checksum error cases of multipart uploads and
DeleteObjects.

Every expected value is computed here, independently of both boto3 and the
server: hashlib for SHA1/SHA256, zlib for CRC32, and small table-driven
implementations below for CRC32C and CRC64NVME. On the wire a checksum is the
base64 of its big-endian digest bytes.

boto3 computes CRC32, SHA1 and SHA256 itself; CRC32C and CRC64NVME need
awscrt, which the suite does not install, so for those the test passes the
value it computed (boto3 then sends it in the same x-amz-checksum-* header).
"""

import base64
import contextlib
import hashlib
import os
import zlib

import boto3.s3.transfer
import pytest
from botocore.httpchecksum import _CHECKSUM_CLS

from conftest import make_client, unique_bucket_name, empty_and_delete
from helpers import MiB, etag, multipart_etag, s3_error, write_random_file

# --- independent checksum implementations ------------------------------------


def _reflected_table(poly: int):
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _reflected_table(0x82F63B78)
_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli): reflected, init and xorout 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc64nvme(data: bytes) -> int:
    """CRC-64/NVME: reflected, init and xorout all ones."""
    mask = 0xFFFFFFFFFFFFFFFF
    crc = mask
    table = _CRC64NVME_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def digest(algorithm: str, data: bytes) -> bytes:
    """The raw (big-endian) digest of `data` under an S3 checksum algorithm."""
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return crc32c(data).to_bytes(4, "big")
    if algorithm == "CRC64NVME":
        return crc64nvme(data).to_bytes(8, "big")
    if algorithm == "SHA1":
        return hashlib.sha1(data).digest()
    if algorithm == "SHA256":
        return hashlib.sha256(data).digest()
    raise ValueError(algorithm)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def checksum(algorithm: str, data: bytes) -> str:
    """The wire form of a checksum: base64 of the digest."""
    return b64(digest(algorithm, data))


def composite(algorithm: str, parts) -> str:
    """A composite multipart checksum: H(concat(part digests)), base64, -N."""
    joined = b"".join(digest(algorithm, p) for p in parts)
    return f"{checksum(algorithm, joined)}-{len(parts)}"


ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
MPU_CASES = [
    ("SHA256", "COMPOSITE"),
    ("SHA1", "COMPOSITE"),
    ("CRC32", "COMPOSITE"),
    ("CRC32C", "COMPOSITE"),
    ("CRC32", "FULL_OBJECT"),
    ("CRC32C", "FULL_OBJECT"),
    ("CRC64NVME", "FULL_OBJECT"),
]
PART_SIZES = [3000, 2048, 777]


def boto3_computes(algorithm: str) -> bool:
    return algorithm.lower() in _CHECKSUM_CLS


def checksum_args(algorithm: str, data: bytes) -> dict:
    """ChecksumAlgorithm for boto3 to compute the checksum; when it cannot
    (CRC32C/CRC64NVME without awscrt), also our own value of it."""
    args = {"ChecksumAlgorithm": algorithm}
    if not boto3_computes(algorithm):
        args[f"Checksum{algorithm}"] = checksum(algorithm, data)
    return args


def test_checksum_implementations_match_published_check_values():
    """The reference implementations used by this file give the published
    check values (the checksum of b"123456789") of each algorithm."""
    check = b"123456789"
    assert zlib.crc32(check) == 0xCBF43926
    assert crc32c(check) == 0xE3069283
    assert crc64nvme(check) == 0xAE8B14860A799888
    assert crc32c(b"") == 0 and crc64nvme(b"") == 0
    assert digest("CRC64NVME", check) == bytes.fromhex("ae8b14860a799888")
    assert checksum("CRC32C", check) == "4waSgw=="


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(start_server):
    """A server whose minimum part size is 1 KiB, so multipart objects can be
    a few KB (the pure-Python CRCs stay fast)."""
    return start_server("[limits]\nmin_part_size = 1024\n", "stowage-small-parts")


@pytest.fixture(scope="module")
def s3s(small_server):
    return make_client(small_server.endpoint)


@pytest.fixture
def sbucket(s3s):
    name = unique_bucket_name("cksum")
    s3s.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3s, name)


@pytest.fixture(scope="module")
def blocks():
    return [os.urandom(n) for n in PART_SIZES]


@contextlib.contextmanager
def recording(client):
    """Yields a list that collects the headers (lower-cased names, str
    values) of each request `client` sends inside the block."""
    requests = []

    def record(request, **_):
        requests.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                         for k, v in request.headers.items()})

    client.meta.events.register("before-send.s3", record)
    try:
        yield requests
    finally:
        client.meta.events.unregister("before-send.s3", record)


@pytest.fixture
def sent_headers(s3s):
    """The headers of each request s3s sends during the test."""
    with recording(s3s) as requests:
        yield requests


def create(s3, bucket, key, algorithm, checksum_type=None):
    kwargs = {"ChecksumAlgorithm": algorithm}
    if checksum_type:
        kwargs["ChecksumType"] = checksum_type
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)


def upload_parts(s3, bucket, key, upload_id, algorithm, blocks):
    """Uploads the blocks as parts 1..N with `algorithm`; checks each echoed
    checksum and returns the Parts list for CompleteMultipartUpload."""
    member = f"Checksum{algorithm}"
    parts = []
    for number, data in enumerate(blocks, start=1):
        out = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                             PartNumber=number, Body=data,
                             **checksum_args(algorithm, data))
        assert out["ETag"] == etag(data)
        assert out[member] == checksum(algorithm, data), f"part {number}"
        parts.append({"PartNumber": number, "ETag": out["ETag"],
                      member: out[member]})
    return parts


def complete(s3, bucket, key, upload_id, parts, **kwargs):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts}, **kwargs)


def expected_object_checksum(algorithm, checksum_type, blocks):
    if checksum_type == "COMPOSITE":
        return composite(algorithm, blocks)
    return checksum(algorithm, b"".join(blocks))


def upload_object(s3, bucket, key, algorithm, checksum_type, blocks):
    uid = create(s3, bucket, key, algorithm, checksum_type)["UploadId"]
    parts = upload_parts(s3, bucket, key, uid, algorithm, blocks)
    return complete(s3, bucket, key, uid, parts)


# --- 1. single requests: PutObject and UploadPart ----------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_put_object_checksum_is_echoed_and_stored(s3s, sbucket, sent_headers, algorithm):
    """PutObject with ChecksumAlgorithm: the x-amz-checksum-<alg> the client
    sends is verified and echoed in the response; HeadObject and GetObject
    with ChecksumMode=ENABLED return it (type FULL_OBJECT)."""
    data = os.urandom(2500)
    want = checksum(algorithm, data)
    member = f"Checksum{algorithm}"
    put = s3s.put_object(Bucket=sbucket, Key="obj", Body=data,
                         **checksum_args(algorithm, data))
    assert sent_headers[-1][f"x-amz-checksum-{algorithm.lower()}"] == want
    assert put[member] == want
    assert put["ETag"] == etag(data)

    head = s3s.head_object(Bucket=sbucket, Key="obj", ChecksumMode="ENABLED")
    assert head[member] == want
    assert head["ChecksumType"] == "FULL_OBJECT"
    others = {f"Checksum{a}" for a in ALGORITHMS} - {member}
    assert not others & head.keys()

    got = s3s.get_object(Bucket=sbucket, Key="obj", ChecksumMode="ENABLED")
    assert got[member] == want
    assert got["Body"].read() == data
    # Without ChecksumMode the checksum is not returned.
    assert member not in s3s.head_object(Bucket=sbucket, Key="obj")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_put_object_wrong_checksum_is_bad_digest(s3s, sbucket, algorithm):
    """A PutObject whose x-amz-checksum-<alg> does not match the body is
    refused with 400 BadDigest and stores nothing."""
    wrong = checksum(algorithm, b"not the body")
    with s3_error("BadDigest", 400):
        s3s.put_object(Bucket=sbucket, Key="bad", Body=b"the body",
                       ChecksumAlgorithm=algorithm, **{f"Checksum{algorithm}": wrong})
    with s3_error("NoSuchKey", 404):
        s3s.get_object(Bucket=sbucket, Key="bad")


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_checksum_in_aws_chunked_trailer(s3_chunked, s3, bucket, algorithm):
    """PutObject and UploadPart sent as boto3 sends them over HTTPS
    (aws-chunked, the checksum boto3 computed in an unsigned trailer): the
    trailer's checksum is verified, echoed and stored."""
    data = os.urandom(3 * 1024 + 1)
    member = f"Checksum{algorithm}"
    with recording(s3_chunked) as sent:
        put = s3_chunked.put_object(Bucket=bucket, Key="t", Body=data,
                                    ChecksumAlgorithm=algorithm)
    assert sent[-1]["x-amz-trailer"] == f"x-amz-checksum-{algorithm.lower()}"
    assert sent[-1]["content-encoding"] == "aws-chunked"
    assert put[member] == checksum(algorithm, data)
    head = s3.head_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    assert head[member] == checksum(algorithm, data)
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == data

    uid = create(s3_chunked, bucket, "p", algorithm)["UploadId"]
    with recording(s3_chunked) as sent:
        out = s3_chunked.upload_part(Bucket=bucket, Key="p", UploadId=uid, PartNumber=1,
                                     Body=data, ChecksumAlgorithm=algorithm)
    assert sent[-1]["x-amz-trailer"] == f"x-amz-checksum-{algorithm.lower()}"
    assert out[member] == checksum(algorithm, data)
    listed = s3.list_parts(Bucket=bucket, Key="p", UploadId=uid)["Parts"]
    assert [p[member] for p in listed] == [checksum(algorithm, data)]
    s3.abort_multipart_upload(Bucket=bucket, Key="p", UploadId=uid)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_upload_part_checksum_is_echoed(s3s, sbucket, algorithm):
    """UploadPart with ChecksumAlgorithm (on an upload created with the same
    algorithm): the part's checksum is echoed and ListParts shows it; a part
    whose checksum does not match its body is BadDigest."""
    data = os.urandom(1500)
    member = f"Checksum{algorithm}"
    uid = create(s3s, sbucket, "part", algorithm)["UploadId"]
    out = s3s.upload_part(Bucket=sbucket, Key="part", UploadId=uid, PartNumber=1,
                          Body=data, **checksum_args(algorithm, data))
    assert out[member] == checksum(algorithm, data)
    assert out["ETag"] == etag(data)

    with s3_error("BadDigest", 400):
        s3s.upload_part(Bucket=sbucket, Key="part", UploadId=uid, PartNumber=2,
                        Body=data, ChecksumAlgorithm=algorithm,
                        **{member: checksum(algorithm, data + b"x")})

    listed = s3s.list_parts(Bucket=sbucket, Key="part", UploadId=uid)
    assert [(p["PartNumber"], p[member]) for p in listed["Parts"]] == \
        [(1, checksum(algorithm, data))]
    s3s.abort_multipart_upload(Bucket=sbucket, Key="part", UploadId=uid)


# --- 2. multipart objects: composite and full-object checksums ---------------


@pytest.mark.parametrize("algorithm,checksum_type", MPU_CASES)
def test_multipart_object_checksum(s3s, sbucket, blocks, algorithm, checksum_type):
    """CreateMultipartUpload with ChecksumAlgorithm and ChecksumType: parts
    carry their own checksums (UploadPart, ListParts); Complete answers the
    object checksum -- COMPOSITE: H(concat(part digests))-N, FULL_OBJECT:
    the CRC of the whole object -- which HeadObject repeats; GetObject of
    one part returns that part's checksum."""
    key = f"mpu-{algorithm}-{checksum_type}"
    member = f"Checksum{algorithm}"
    want = expected_object_checksum(algorithm, checksum_type, blocks)

    created = create(s3s, sbucket, key, algorithm, checksum_type)
    assert created["ChecksumAlgorithm"] == algorithm
    assert created["ChecksumType"] == checksum_type
    uid = created["UploadId"]
    uploads = s3s.list_multipart_uploads(Bucket=sbucket)["Uploads"]
    assert [(u["UploadId"], u["ChecksumAlgorithm"], u["ChecksumType"]) for u in uploads] \
        == [(uid, algorithm, checksum_type)]
    parts = upload_parts(s3s, sbucket, key, uid, algorithm, blocks)

    listed = s3s.list_parts(Bucket=sbucket, Key=key, UploadId=uid)
    assert listed["ChecksumAlgorithm"] == algorithm
    assert listed["ChecksumType"] == checksum_type
    assert [(p["PartNumber"], p["Size"], p[member]) for p in listed["Parts"]] == \
        [(n, len(b), checksum(algorithm, b)) for n, b in enumerate(blocks, start=1)]

    done = complete(s3s, sbucket, key, uid, parts)
    assert done[member] == want
    assert done["ChecksumType"] == checksum_type
    assert done["ETag"] == multipart_etag(blocks)

    head = s3s.head_object(Bucket=sbucket, Key=key, ChecksumMode="ENABLED")
    assert head[member] == want
    assert head["ChecksumType"] == checksum_type
    assert head["ContentLength"] == sum(PART_SIZES)
    assert head["ETag"] == multipart_etag(blocks)

    listed = s3s.list_objects_v2(Bucket=sbucket)["Contents"]
    assert [(o["Key"], o["ChecksumAlgorithm"], o["ChecksumType"]) for o in listed] == \
        [(key, [algorithm], checksum_type)]

    part2 = s3s.get_object(Bucket=sbucket, Key=key, PartNumber=2, ChecksumMode="ENABLED")
    assert part2[member] == checksum(algorithm, blocks[1])
    assert part2["PartsCount"] == 3
    assert part2["Body"].read() == blocks[1]
    assert s3s.get_object(Bucket=sbucket, Key=key)["Body"].read() == b"".join(blocks)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_expected_checksum_on_complete(s3s, sbucket, blocks, algorithm):
    """A FULL_OBJECT upload's Complete may carry the whole object's CRC
    (x-amz-checksum-<alg>); the right value is accepted and is the object's
    checksum."""
    key = f"full-{algorithm}"
    member = f"Checksum{algorithm}"
    whole = checksum(algorithm, b"".join(blocks))
    uid = create(s3s, sbucket, key, algorithm, "FULL_OBJECT")["UploadId"]
    parts = upload_parts(s3s, sbucket, key, uid, algorithm, blocks)
    done = complete(s3s, sbucket, key, uid, parts, **{member: whole},
                    ChecksumType="FULL_OBJECT")
    assert done[member] == whole and done["ChecksumType"] == "FULL_OBJECT"


# --- 3. the transfer manager's defaults --------------------------------------


def test_upload_file_default_crc32_is_composite(s3, bucket, tmp_path):
    """upload_file with the default TransferConfig (8 MiB threshold and
    parts) makes a multipart upload with CRC32 at create and on every part;
    the object's checksum is the COMPOSITE CRC32 of its 8 MiB + rest parts,
    and it downloads back unchanged."""
    size = 12 * MiB + 4321
    src = tmp_path / "big.bin"
    write_random_file(src, size)
    data = src.read_bytes()
    with recording(s3) as sent:
        s3.upload_file(str(src), bucket, "big",
                       Config=boto3.s3.transfer.TransferConfig())
    # CreateMultipartUpload names CRC32; both UploadParts carry one.
    assert [h.get("x-amz-checksum-algorithm") for h in sent
            if "x-amz-checksum-algorithm" in h] == ["CRC32"]
    assert len([h for h in sent if "x-amz-checksum-crc32" in h]) == 2

    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "big", str(dst))
    assert dst.read_bytes() == data

    parts = [data[:8 * MiB], data[8 * MiB:]]
    head = s3.head_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite("CRC32", parts)
    assert head["ChecksumType"] == "COMPOSITE"
    assert head["ETag"] == multipart_etag(parts)
    assert head["ContentLength"] == size


# --- 4. checksum errors of multipart uploads ---------------------------------


@pytest.mark.parametrize("algorithm,checksum_type", [
    ("CRC64NVME", "COMPOSITE"),
    ("SHA256", "FULL_OBJECT"),
    ("SHA1", "FULL_OBJECT"),
])
def test_create_with_unsupported_checksum_type(s3s, sbucket, algorithm, checksum_type):
    """CRC64NVME only has full-object checksums and SHA1/SHA256 only
    composite ones: CreateMultipartUpload asking otherwise is 400
    InvalidRequest."""
    with s3_error("InvalidRequest", 400):
        create(s3s, sbucket, "k", algorithm, checksum_type)
    assert s3s.list_multipart_uploads(Bucket=sbucket).get("Uploads", []) == []


def test_upload_part_with_other_algorithm(s3s, sbucket, blocks):
    """An UploadPart whose checksum algorithm differs from the one the
    upload was created with is 400 InvalidRequest, and stores no part."""
    uid = create(s3s, sbucket, "k", "SHA256", "COMPOSITE")["UploadId"]
    with s3_error("InvalidRequest", 400):
        s3s.upload_part(Bucket=sbucket, Key="k", UploadId=uid, PartNumber=1,
                        Body=blocks[0], ChecksumAlgorithm="CRC32")
    assert s3s.list_parts(Bucket=sbucket, Key="k", UploadId=uid).get("Parts", []) == []
    s3s.abort_multipart_upload(Bucket=sbucket, Key="k", UploadId=uid)


def test_complete_composite_checksum_errors(s3s, sbucket, blocks):
    """Completing a COMPOSITE upload: a part listed without its checksum is
    400 InvalidRequest, a part with the wrong checksum is 400 InvalidPart;
    neither ends the upload, and the correct Complete then succeeds."""
    key = "composite-errors"
    uid = create(s3s, sbucket, key, "SHA256", "COMPOSITE")["UploadId"]
    parts = upload_parts(s3s, sbucket, key, uid, "SHA256", blocks)

    missing = [dict(p) for p in parts]
    del missing[1]["ChecksumSHA256"]
    with s3_error("InvalidRequest", 400):
        complete(s3s, sbucket, key, uid, missing)

    wrong = [dict(p) for p in parts]
    wrong[2]["ChecksumSHA256"] = checksum("SHA256", b"another part")
    with s3_error("InvalidPart", 400):
        complete(s3s, sbucket, key, uid, wrong)

    with s3_error("NoSuchKey", 404):
        s3s.get_object(Bucket=sbucket, Key=key)
    done = complete(s3s, sbucket, key, uid, parts)
    assert done["ChecksumSHA256"] == composite("SHA256", blocks)
    assert s3s.get_object(Bucket=sbucket, Key=key)["Body"].read() == b"".join(blocks)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC64NVME"])
def test_complete_full_object_wrong_expected_checksum(s3s, sbucket, blocks, algorithm):
    """A FULL_OBJECT Complete whose expected whole-object checksum is wrong
    is 400 BadDigest and creates nothing; the upload survives and the
    correct Complete succeeds."""
    key = f"full-errors-{algorithm}"
    member = f"Checksum{algorithm}"
    uid = create(s3s, sbucket, key, algorithm, "FULL_OBJECT")["UploadId"]
    parts = upload_parts(s3s, sbucket, key, uid, algorithm, blocks)

    with s3_error("BadDigest", 400):
        complete(s3s, sbucket, key, uid, parts,
                 **{member: checksum(algorithm, b"".join(blocks) + b"!")})
    with s3_error("NoSuchKey", 404):
        s3s.get_object(Bucket=sbucket, Key=key)

    whole = checksum(algorithm, b"".join(blocks))
    done = complete(s3s, sbucket, key, uid, parts, **{member: whole})
    assert done[member] == whole
    assert s3s.get_object(Bucket=sbucket, Key=key)["Body"].read() == b"".join(blocks)


# --- 5. GetObjectAttributes --------------------------------------------------

ALL_ATTRIBUTES = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def test_get_object_attributes_composite(s3s, sbucket, blocks):
    """GetObjectAttributes of a composite multipart object: unquoted ETag,
    the checksum without its -N suffix and type COMPOSITE, and the parts
    (number, size, checksum) paged by MaxParts and PartNumberMarker."""
    upload_object(s3s, sbucket, "comp", "SHA256", "COMPOSITE", blocks)
    whole = composite("SHA256", blocks)

    attrs = s3s.get_object_attributes(Bucket=sbucket, Key="comp",
                                      ObjectAttributes=ALL_ATTRIBUTES, MaxParts=2)
    assert attrs["ETag"] == multipart_etag(blocks).strip('"')
    assert whole.endswith("-3")
    assert attrs["Checksum"]["ChecksumSHA256"] == whole[:-len("-3")]
    assert attrs["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert attrs["StorageClass"] == "STANDARD"
    assert attrs["ObjectSize"] == sum(PART_SIZES)
    assert "LastModified" in attrs

    op = attrs["ObjectParts"]
    assert op["TotalPartsCount"] == 3
    assert op["IsTruncated"] is True
    assert op["MaxParts"] == 2
    assert op["NextPartNumberMarker"] == 2
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in op["Parts"]] == \
        [(n, len(b), checksum("SHA256", b)) for n, b in enumerate(blocks[:2], start=1)]

    rest = s3s.get_object_attributes(Bucket=sbucket, Key="comp",
                                     ObjectAttributes=["ObjectParts"], MaxParts=2,
                                     PartNumberMarker=op["NextPartNumberMarker"])
    op = rest["ObjectParts"]
    assert op["TotalPartsCount"] == 3
    assert op["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in op["Parts"]] == \
        [(3, len(blocks[2]), checksum("SHA256", blocks[2]))]
    # Only what was asked for.
    assert not {"ETag", "Checksum", "StorageClass", "ObjectSize"} & rest.keys()


def test_get_object_attributes_full_object_and_single_part(s3s, sbucket, blocks):
    """GetObjectAttributes of a FULL_OBJECT multipart object gives its CRC
    (type FULL_OBJECT) and only the parts count; a PutObject object has no
    ObjectParts at all."""
    upload_object(s3s, sbucket, "full", "CRC32C", "FULL_OBJECT", blocks)
    attrs = s3s.get_object_attributes(Bucket=sbucket, Key="full",
                                      ObjectAttributes=ALL_ATTRIBUTES, MaxParts=2)
    assert attrs["ETag"] == multipart_etag(blocks).strip('"')
    assert attrs["Checksum"] == {"ChecksumCRC32C": checksum("CRC32C", b"".join(blocks)),
                                 "ChecksumType": "FULL_OBJECT"}
    assert attrs["ObjectParts"] == {"TotalPartsCount": 3}

    data = os.urandom(100)
    s3s.put_object(Bucket=sbucket, Key="single", Body=data, ChecksumAlgorithm="SHA1")
    attrs = s3s.get_object_attributes(Bucket=sbucket, Key="single",
                                      ObjectAttributes=ALL_ATTRIBUTES)
    assert attrs["ETag"] == etag(data).strip('"')
    assert attrs["Checksum"] == {"ChecksumSHA1": checksum("SHA1", data),
                                 "ChecksumType": "FULL_OBJECT"}
    assert attrs["ObjectSize"] == 100
    assert "ObjectParts" not in attrs


def test_get_object_attributes_errors(s3s, sbucket):
    """GetObjectAttributes with an unknown attribute name is 400
    InvalidArgument; of a missing key, 404 NoSuchKey."""
    s3s.put_object(Bucket=sbucket, Key="k", Body=b"x")
    with s3_error("InvalidArgument", 400):
        s3s.get_object_attributes(Bucket=sbucket, Key="k",
                                  ObjectAttributes=["ETag", "Colour"])
    with s3_error("NoSuchKey", 404):
        s3s.get_object_attributes(Bucket=sbucket, Key="nope", ObjectAttributes=["ETag"])


# --- 6. DeleteObjects --------------------------------------------------------


def _wrong_flexible_checksum(request):
    """Replaces the x-amz-checksum-<alg> botocore computed for the body with
    that algorithm's checksum of other bytes."""
    tampered = []
    for name in list(request.headers.keys()):
        lower = name.lower()
        algorithm = lower[len("x-amz-checksum-"):].upper()
        if lower.startswith("x-amz-checksum-") and algorithm in ALGORITHMS:
            request.headers.replace_header(name, checksum(algorithm, b"other"))
            tampered.append(lower)
    return tampered


def _wrong_content_md5(request):
    """Sends a Content-MD5 of other bytes instead of botocore's flexible
    checksum (as older SDKs send DeleteObjects)."""
    for name in list(request.headers.keys()):
        lower = name.lower()
        if lower.startswith("x-amz-checksum-") or lower == "x-amz-sdk-checksum-algorithm":
            del request.headers[name]
    del request.headers["Content-MD5"]  # a no-op when absent
    request.headers["Content-MD5"] = b64(hashlib.md5(b"other").digest())
    return ["content-md5"]


@pytest.mark.parametrize("tamper", [_wrong_flexible_checksum, _wrong_content_md5],
                         ids=["x-amz-checksum", "content-md5"])
def test_delete_objects_wrong_body_checksum_is_bad_digest(s3, bucket, tamper):
    """DeleteObjects carries an integrity checksum of its body (boto3 sends
    x-amz-checksum-crc32, older clients Content-MD5); one that does not
    match the body is 400 BadDigest and deletes nothing; the untampered
    request deletes."""
    keys = ["a", "b"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    tampered = []

    def handler(request, **_):
        tampered.extend(tamper(request))

    # Before signing, so the tampered request is still correctly signed.
    s3.meta.events.register("before-sign.s3.DeleteObjects", handler)
    try:
        with s3_error("BadDigest", 400):
            s3.delete_objects(Bucket=bucket,
                              Delete={"Objects": [{"Key": k} for k in keys]})
    finally:
        s3.meta.events.unregister("before-sign.s3.DeleteObjects", handler)
    assert tampered, "boto3 sent no body checksum to tamper with"
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed.get("Contents", [])] == keys

    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in out["Deleted"]) == keys
    assert "Errors" not in out
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_delete_objects_without_body_checksum(s3, bucket):
    """Multi-object delete requires Content-MD5 or a flexible checksum of its
    body: without either it is 400 InvalidRequest and deletes nothing."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")

    def strip(request, **_):
        for name in list(request.headers.keys()):
            lower = name.lower()
            if lower.startswith("x-amz-checksum-") or lower in (
                    "x-amz-sdk-checksum-algorithm", "content-md5"):
                del request.headers[name]

    s3.meta.events.register("before-sign.s3.DeleteObjects", strip)
    try:
        with s3_error("InvalidRequest", 400):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}]})
    finally:
        s3.meta.events.unregister("before-sign.s3.DeleteObjects", strip)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a"]
