// aws-sdk-js v3 against Stowage, run with `node --test` by
// compat-tests/test_aws_sdk_js.py. The client keeps the SDK's default
// checksum behaviour (CRC32 on every upload: a header for buffers, an
// aws-chunked trailer for streams), so these tests see what a Node
// application on a current SDK sends.
//
// Environment: STOWAGE_ENDPOINT, STOWAGE_BUCKET (an existing, empty bucket),
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION. Each test keeps to
// its own key prefix.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { test } from "node:test";
import { crc32 } from "node:zlib";

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  paginateListObjectsV2,
  paginateListParts,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const MiB = 1024 * 1024;

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} must be set`);
  }
  return value;
}

const Bucket = requireEnv("STOWAGE_BUCKET");

// The client exactly as the README's recipe (compat-tests/recipes/s3-client.mjs)
// makes it, pointed at this run's server by test_aws_sdk_js.py. It retries
// as the SDK does by default; the Python side fails the run on any 5xx in
// the server log, so a retry cannot hide a server error.
const { s3: client } = await import(requireEnv("STOWAGE_RECIPE_CLIENT"));

// Every request the client sends, as it goes on the wire (after checksums
// and signing): { command, headers }.
const sent = [];
client.middlewareStack.add(
  (next, context) => async (args) => {
    sent.push({ command: context.commandName, headers: { ...args.request.headers } });
    return next(args);
  },
  { step: "deserialize", name: "recordSentRequests" },
);

function sentSince(mark, command) {
  return sent.slice(mark).filter((r) => r.command === command);
}

const sha256 = (data) => createHash("sha256").update(data).digest("hex");
const md5 = (data) => createHash("md5").update(data).digest();

// The base64 big-endian CRC32 that S3 puts in x-amz-checksum-crc32.
function crc32Base64(data) {
  const raw = Buffer.alloc(4);
  raw.writeUInt32BE(crc32(data));
  return raw.toString("base64");
}

// The quoted ETag of a multipart object: md5 of the parts' md5s, then -N.
function multipartEtag(parts) {
  const digest = createHash("md5")
    .update(Buffer.concat(parts.map(md5)))
    .digest("hex");
  return `"${digest}-${parts.length}"`;
}

function cut(data, size) {
  const parts = [];
  for (let i = 0; i < data.length; i += size) {
    parts.push(data.subarray(i, i + size));
  }
  return parts;
}

async function download(Key) {
  const res = await client.send(new GetObjectCommand({ Bucket, Key }));
  return Buffer.from(await res.Body.transformToByteArray());
}

async function collect(paginator) {
  const pages = [];
  for await (const page of paginator) {
    pages.push(page);
  }
  return pages;
}

test("lib-storage Upload of a 21 MiB Buffer: five 5 MiB-cut parts with CRC32s, same bytes back", async () => {
  const Key = "upload-buffer/twenty-one.bin";
  const data = randomBytes(21 * MiB + 12345);
  const mark = sent.length;

  const upload = new Upload({
    client,
    params: { Bucket, Key, Body: data },
    partSize: 5 * MiB,
    queueSize: 4,
  });
  const result = await upload.done();

  const parts = cut(data, 5 * MiB);
  assert.equal(parts.length, 5);
  assert.equal(result.ETag, multipartEtag(parts));

  // The SDK's default checksum path: CRC32 announced at creation and sent
  // with every part.
  const [create] = sentSince(mark, "CreateMultipartUploadCommand");
  assert.equal(create.headers["x-amz-checksum-algorithm"], "CRC32");
  const partRequests = sentSince(mark, "UploadPartCommand");
  assert.equal(partRequests.length, 5);
  for (const r of partRequests) {
    assert.ok(r.headers["x-amz-checksum-crc32"], "UploadPart without x-amz-checksum-crc32");
  }

  const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
  assert.equal(head.ContentLength, data.length);
  assert.ok(head.ETag.endsWith('-5"'), head.ETag);
  assert.equal(head.ETag, multipartEtag(parts));

  assert.equal(sha256(await download(Key)), sha256(data));
});

test("lib-storage Upload of a 12 MiB stream of unknown length: three parts, same bytes back", async () => {
  const Key = "upload-stream/twelve.bin";
  const data = randomBytes(12 * MiB + 777);
  // Odd-sized chunks, so parts never line up with them; no length given.
  const body = Readable.from(cut(data, 100_003));

  const upload = new Upload({
    client,
    params: { Bucket, Key, Body: body },
    partSize: 5 * MiB,
    queueSize: 4,
  });
  const result = await upload.done();

  const parts = cut(data, 5 * MiB);
  assert.equal(parts.length, 3);
  assert.equal(result.ETag, multipartEtag(parts));

  const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
  assert.equal(head.ContentLength, data.length);
  assert.ok(head.ETag.endsWith('-3"'), head.ETag);

  assert.equal(sha256(await download(Key)), sha256(data));
});

test("PutObject of a Readable goes aws-chunked with a CRC32 trailer, and the object keeps that CRC32", async () => {
  const Key = "put-stream/trailer.bin";
  const data = randomBytes(MiB + 4321);
  const mark = sent.length;

  await client.send(
    new PutObjectCommand({
      Bucket,
      Key,
      Body: Readable.from(cut(data, 64 * 1024)),
      ContentLength: data.length,
    }),
  );

  const [put] = sentSince(mark, "PutObjectCommand");
  assert.match(put.headers["content-encoding"], /aws-chunked/);
  assert.equal(put.headers["x-amz-content-sha256"], "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
  assert.equal(put.headers["x-amz-trailer"], "x-amz-checksum-crc32");
  assert.equal(put.headers["x-amz-decoded-content-length"], String(data.length));

  const head = await client.send(new HeadObjectCommand({ Bucket, Key, ChecksumMode: "ENABLED" }));
  assert.equal(head.ContentLength, data.length);
  assert.equal(head.ChecksumCRC32, crc32Base64(data));

  assert.equal(sha256(await download(Key)), sha256(data));
});

test("paginateListObjectsV2 with MaxKeys 5 pages through 23 keys: 5 pages, in order, no duplicates", async () => {
  const Prefix = "paging/objects/";
  const expected = Array.from(
    { length: 23 },
    (_, i) => `${Prefix}key-${String(i).padStart(2, "0")}`,
  );
  const bodies = new Map(expected.map((k, i) => [k, randomBytes(16 + i)]));
  // Put in a shuffled order, so the listing's order is the server's doing.
  const shuffled = [...expected].sort(() => Math.random() - 0.5);
  await Promise.all(
    shuffled.map((Key) =>
      client.send(new PutObjectCommand({ Bucket, Key, Body: bodies.get(Key) })),
    ),
  );

  const pages = await collect(paginateListObjectsV2({ client }, { Bucket, Prefix, MaxKeys: 5 }));

  assert.equal(pages.length, 5);
  assert.deepEqual(
    pages.map((p) => p.KeyCount),
    [5, 5, 5, 5, 3],
  );
  assert.deepEqual(
    pages.map((p) => p.IsTruncated),
    [true, true, true, true, false],
  );
  const listed = pages.flatMap((p) => p.Contents.map((o) => o.Key));
  assert.equal(new Set(listed).size, listed.length, "a key was listed twice");
  assert.deepEqual(listed, expected);
  for (const o of pages.flatMap((p) => p.Contents)) {
    assert.equal(o.Size, bodies.get(o.Key).length);
    assert.equal(o.ETag, `"${md5(bodies.get(o.Key)).toString("hex")}"`);
  }
});

test("paginateListParts with MaxParts 3 pages through 7 parts of an in-progress upload; abort removes it", async () => {
  const Key = "paging/parts/upload.bin";
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  // Small parts: the 5 MiB minimum only applies at CompleteMultipartUpload.
  const parts = Array.from({ length: 7 }, (_, i) => randomBytes(1000 + i));
  try {
    for (const [i, Body] of parts.entries()) {
      await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body }));
    }

    const pages = await collect(
      paginateListParts({ client }, { Bucket, Key, UploadId, MaxParts: 3 }),
    );

    // The SDK's paginator follows NextPartNumberMarker and ignores
    // IsTruncated. S3 sets the marker on the last page too, so the paginator
    // asks once more and gets an empty page without one; that fourth request
    // is the SDK's, and all it may return is nothing.
    assert.ok(pages.length === 3 || pages.length === 4, `${pages.length} pages`);
    assert.deepEqual(
      pages.slice(0, 3).map((p) => [p.Parts.length, p.IsTruncated]),
      [
        [3, true],
        [3, true],
        [1, false],
      ],
    );
    for (const extra of pages.slice(3)) {
      assert.equal(extra.Parts?.length ?? 0, 0);
      assert.equal(extra.IsTruncated, false);
    }
    const listed = pages.flatMap((p) => p.Parts ?? []);
    assert.deepEqual(
      listed.map((p) => p.PartNumber),
      [1, 2, 3, 4, 5, 6, 7],
    );
    for (const p of listed) {
      const body = parts[p.PartNumber - 1];
      assert.equal(p.Size, body.length);
      assert.equal(p.ETag, `"${md5(body).toString("hex")}"`);
    }
  } finally {
    await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
  }

  await assert.rejects(client.send(new ListPartsCommand({ Bucket, Key, UploadId })), {
    name: "NoSuchUpload",
  });
});

test("presigned UploadPart URLs PUT with fetch make a multipart object; a presigned GET returns it", async () => {
  const Key = "presigned/object.bin";
  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(MiB)];
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm: "CRC32" }),
  );

  // Presigned without a body, the SDK's default checksum is the CRC32 of an
  // empty payload, signed into the URL (x-amz-checksum-crc32=AAAAAA==); the
  // server holds the part to it and refuses real bytes.
  const emptyCrcUrl = await getSignedUrl(
    client,
    new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 4 }),
    { expiresIn: 600 },
  );
  assert.match(emptyCrcUrl, /[?&]x-amz-checksum-crc32=AAAAAA%3D%3D(&|$)/);
  // As a browser sends it: with an Origin, so the page can read the error.
  const refused = await fetch(emptyCrcUrl, {
    method: "PUT",
    body: randomBytes(1024),
    headers: { Origin: "http://localhost:5173" },
  });
  assert.equal(refused.status, 400);
  assert.equal(refused.headers.get("access-control-allow-origin"), "http://localhost:5173");
  const error = await refused.text();
  assert.match(error, /<Code>BadDigest<\/Code>/);
  // The message says what happened and how to fix it.
  assert.match(error, /CRC32 of an empty body/);
  assert.match(error, /requestChecksumCalculation: &quot;WHEN_REQUIRED&quot;/);

  // The fix the message names: a client that presigns WHEN_REQUIRED signs
  // no checksum into the URL, and the real body goes through.
  const whenRequired = new S3Client({
    endpoint: requireEnv("STOWAGE_ENDPOINT"),
    region: requireEnv("AWS_REGION"),
    forcePathStyle: true,
    credentials: {
      accessKeyId: requireEnv("AWS_ACCESS_KEY_ID"),
      secretAccessKey: requireEnv("AWS_SECRET_ACCESS_KEY"),
    },
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  const putUrl = await getSignedUrl(
    whenRequired,
    new PutObjectCommand({ Bucket, Key: `${Key}.when-required` }),
    { expiresIn: 600 },
  );
  assert.doesNotMatch(putUrl, /x-amz-checksum/);
  const direct = randomBytes(2048);
  const accepted = await fetch(putUrl, { method: "PUT", body: direct });
  assert.equal(accepted.status, 200);
  const back = await client.send(new GetObjectCommand({ Bucket, Key: `${Key}.when-required` }));
  assert.equal(sha256(Buffer.from(await back.Body.transformToByteArray())), sha256(direct));

  // So each URL is presigned with its part's own CRC32, as an application
  // that knows its bytes would.
  const completed = [];
  for (const [i, body] of parts.entries()) {
    const PartNumber = i + 1;
    const ChecksumCRC32 = crc32Base64(body);
    const url = await getSignedUrl(
      client,
      new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, ChecksumCRC32 }),
      { expiresIn: 600 },
    );
    const res = await fetch(url, { method: "PUT", body });
    assert.equal(res.status, 200, `part ${PartNumber}: ${res.status} ${await res.text()}`);
    const ETag = res.headers.get("etag");
    assert.equal(ETag, `"${md5(body).toString("hex")}"`);
    completed.push({ PartNumber, ETag, ChecksumCRC32 });
  }

  const result = await client.send(
    new CompleteMultipartUploadCommand({
      Bucket,
      Key,
      UploadId,
      MultipartUpload: { Parts: completed },
    }),
  );
  assert.equal(result.ETag, multipartEtag(parts));

  const data = Buffer.concat(parts);
  assert.equal(sha256(await download(Key)), sha256(data));

  const getUrl = await getSignedUrl(client, new GetObjectCommand({ Bucket, Key }), {
    expiresIn: 600,
  });
  const res = await fetch(getUrl);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-length"), String(data.length));
  assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(data));
});
