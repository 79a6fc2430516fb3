"""A small AWS Signature Version 4 signer for S3, written from the AWS
documentation and independent of botocore, for requests an SDK will not
produce: a chosen clock, an unsigned host, a body that differs from its
signed hash, and signed `aws-chunked` bodies
(STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]).

References:
  https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
"""

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
SIGNATURE_HEX_LEN = 64


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def uri_encode(text: str, encode_slash: bool = True) -> str:
    """UriEncode() from the S3 SigV4 documentation: every byte but the
    unreserved characters A-Z a-z 0-9 - _ . ~ is %XX-encoded (upper-case hex),
    and '/' too unless this is an object key path."""
    return quote(text, safe="-_.~" if encode_slash else "-_.~/")


def amz_date(when: datetime.datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str = "s3") -> bytes:
    k = _hmac(("AWS4" + secret_key).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _trim(value: str) -> str:
    return " ".join(str(value).split())


@dataclass
class Signed:
    """A signed request: what to send (method, target, headers) and the
    intermediate values, for comparison with a server's error report and for
    signing chunks after the seed signature."""
    method: str
    target: str            # path and query as they go on the wire
    headers: dict          # every header to send, Authorization included
    canonical_request: str
    string_to_sign: str
    signature: str
    amz_date: str
    scope: str
    key: bytes             # the derived signing key


def sign(method, host, path, query=(), headers=None, payload_hash=EMPTY_SHA256, *,
         access_key, secret_key, region="us-east-1", when=None, unsigned=()):
    """Signs a request with the Authorization header.

    `path` is the decoded path (`/bucket/key with space`); `query` is a
    sequence of decoded (name, value) pairs or a dict; `headers` are extra
    headers to send and sign. Host, x-amz-date and x-amz-content-sha256
    (`payload_hash`) are added. Headers named (lower-case) in `unsigned` are
    sent but left out of SignedHeaders."""
    when = when or utc_now()
    date_time = amz_date(when)
    scope = f"{date_time[:8]}/{region}/s3/aws4_request"

    send = {"host": host, "x-amz-date": date_time, "x-amz-content-sha256": payload_hash}
    for name, value in (headers or {}).items():
        send[name.lower()] = str(value)

    pairs = sorted((uri_encode(k), uri_encode(v))
                   for k, v in (query.items() if isinstance(query, dict) else query))
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical_uri = uri_encode(path, encode_slash=False)
    signed_names = sorted(n for n in send if n not in unsigned)
    canonical_headers = "".join(f"{n}:{_trim(send[n])}\n" for n in signed_names)
    signed_headers = ";".join(signed_names)
    canonical_request = "\n".join([method, canonical_uri, canonical_query,
                                   canonical_headers, signed_headers, payload_hash])
    string_to_sign = "\n".join([ALGORITHM, date_time, scope,
                                sha256_hex(canonical_request.encode())])
    key = signing_key(secret_key, date_time[:8], region)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    send["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                             f"SignedHeaders={signed_headers}, Signature={signature}")
    target = canonical_uri + ("?" + canonical_query if canonical_query else "")
    return Signed(method, target, send, canonical_request, string_to_sign,
                  signature, date_time, scope, key)


# --- signed aws-chunked bodies --------------------------------------------------


def chunk_signature(seed: Signed, previous: str, chunk: bytes) -> str:
    """The signature of one chunk, chained to the previous one (the seed
    signature for the first chunk)."""
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", seed.amz_date, seed.scope,
                                previous, EMPTY_SHA256, sha256_hex(chunk)])
    return hmac.new(seed.key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def trailer_signature(seed: Signed, previous: str, trailers) -> str:
    """The x-amz-trailer-signature of the trailing headers (name, value) pairs,
    chained to the final (zero-length) chunk's signature."""
    canonical = "".join(f"{name}:{value}\n" for name, value in trailers)
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", seed.amz_date, seed.scope,
                                previous, sha256_hex(canonical.encode())])
    return hmac.new(seed.key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def frame(chunks, signatures, trailers=None, trailer_sig=None) -> bytes:
    """The aws-chunked body: each chunk (the last one empty) as
    `hex-size;chunk-signature=SIG\\r\\nDATA\\r\\n`; then, with trailers, the
    trailing header lines and x-amz-trailer-signature; then a blank line
    (for a body without trailers the final chunk's own CRLF ends it)."""
    out = bytearray()
    for chunk, sig in zip(chunks, signatures):
        out += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + chunk + b"\r\n"
    if trailers is not None:
        out = out[:-2]  # the final chunk's header line ends the chunks
        for name, value in trailers:
            out += f"{name}:{value}\r\n".encode()
        out += f"x-amz-trailer-signature:{trailer_sig}\r\n".encode()
        out += b"\r\n"
    return bytes(out)


def sign_streaming(method, host, path, data: bytes, chunk_size: int, *, access_key,
                   secret_key, region="us-east-1", headers=None, trailers=None,
                   sign_content_length=True, when=None):
    """Signs an upload of `data` as STREAMING-AWS4-HMAC-SHA256-PAYLOAD
    (or ...-PAYLOAD-TRAILER when `trailers`, (name, value) pairs, are given).
    Returns (Signed, body): the headers carry Content-Encoding: aws-chunked,
    x-amz-decoded-content-length, Content-Length (signed unless
    sign_content_length is false) and, with trailers, x-amz-trailer.

    The body's chunks are `chunk_size` bytes except the last data chunk,
    followed by the final zero-length chunk."""
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    dummy = "0" * SIGNATURE_HEX_LEN
    length = len(frame(chunks, [dummy] * len(chunks),
                       trailers, dummy if trailers is not None else None))
    send = {"content-encoding": "aws-chunked",
            "content-length": str(length),
            "x-amz-decoded-content-length": str(len(data))}
    if trailers is not None:
        send["x-amz-trailer"] = ",".join(name for name, _ in trailers)
    send.update({k.lower(): v for k, v in (headers or {}).items()})
    seed = sign(method, host, path, (), send,
                STREAMING_PAYLOAD_TRAILER if trailers is not None else STREAMING_PAYLOAD,
                access_key=access_key, secret_key=secret_key, region=region, when=when,
                unsigned=() if sign_content_length else ("content-length",))
    signatures, previous = [], seed.signature
    for chunk in chunks:
        previous = chunk_signature(seed, previous, chunk)
        signatures.append(previous)
    trailer_sig = trailer_signature(seed, previous, trailers) if trailers is not None else None
    body = frame(chunks, signatures, trailers, trailer_sig)
    assert len(body) == length
    return seed, body
