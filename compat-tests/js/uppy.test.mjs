// The real @uppy/aws-s3 in a real headless Chromium, uploading through
// Stowage's signing routes with an upload grant and no app server in the
// byte path; run with `node --test` by compat-tests/test_uppy_browser.py.
//
// The page (uppy-page.mjs, bundled here by esbuild) is served by a static
// server on its own 127.0.0.1 port, so every call to Stowage is
// cross-origin and goes through CORS as on a real site. Each test uploads a
// 12 MiB file made from a seeded generator (three 5 MiB-or-less parts) and
// checks what Stowage stored with @aws-sdk/client-s3.
//
// Environment: STOWAGE_ENDPOINT, STOWAGE_BUCKET (an existing bucket),
// STOWAGE_GRANT (a grant for that bucket whose key is "uploads/${filename}"
// and that allows video/ types), STOWAGE_LOG (the server's log file),
// STOWAGE_CHROMIUM (the browser; /usr/bin/chromium by default),
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION; UPPY_WAIT_MS
// (120000 by default) bounds each wait on the page.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { build } from "esbuild";
import { chromium } from "playwright-core";

import { deterministicBytes } from "./uppy-bytes.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
// Uppy's parts are 5 MiB (its minimum): 5 + 5 + 2 MiB and a bit.
const SIZE = 12 * MiB + 4321;
const PARTS = 3;
const WAIT = { timeout: Number(process.env.UPPY_WAIT_MS) || 120_000, polling: 50 };

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} must be set`);
  }
  return value;
}

const endpoint = requireEnv("STOWAGE_ENDPOINT").replace(/\/$/, "");
const Bucket = requireEnv("STOWAGE_BUCKET");
const grant = requireEnv("STOWAGE_GRANT");
const logPath = requireEnv("STOWAGE_LOG");
const chromiumPath = process.env.STOWAGE_CHROMIUM || "/usr/bin/chromium";

// The key the grant names, "uploads/${filename}" for the Python side's grant.
const grantKey = JSON.parse(Buffer.from(grant, "base64").toString("utf8")).key;
const keyFor = (name) => grantKey.replace("${filename}", name);

const s3 = new S3Client({
  endpoint,
  region: process.env.AWS_REGION || "us-east-1",
  forcePathStyle: true,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID || "stowage",
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || "stowage-dev-secret",
  },
});

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

let workdir;
let site; // the static server's origin
let siteServer;
const siteRequests = []; // "METHOD /path" for every request the site got
let browser;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Stowage + Uppy</title>
<link rel="icon" href="data:,">
<script type="module" src="/uppy-page.js"></script>
</head><body></body></html>
`;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), "stowage-uppy-"));
  await build({
    entryPoints: [join(HERE, "uppy-page.mjs")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(workdir, "uppy-page.js"),
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "error",
  });
  await writeFile(join(workdir, "index.html"), PAGE);
  const files = {
    "/": ["index.html", "text/html; charset=utf-8"],
    "/uppy-page.js": ["uppy-page.js", "text/javascript; charset=utf-8"],
  };
  siteServer = createServer(async (req, res) => {
    siteRequests.push(`${req.method} ${req.url}`);
    const file = req.method === "GET" && files[req.url];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    const body = await readFile(join(workdir, file[0]));
    res.writeHead(200, { "Content-Type": file[1], "Cache-Control": "no-store" }).end(body);
  });
  await new Promise((resolve) => siteServer.listen(0, "127.0.0.1", resolve));
  site = `http://127.0.0.1:${siteServer.address().port}`;
  assert.notEqual(new URL(site).origin, new URL(endpoint).origin);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (siteServer ? siteServer.close(resolve) : resolve()));
  if (workdir) {
    await rm(workdir, { recursive: true, force: true });
  }
});

// A page of the site, with everything it sends and what went wrong recorded.
async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = { requests: [], bad: [], aborted: [], console: [], errors: [] };
  page.on("request", (r) => seen.requests.push({ method: r.method(), url: r.url() }));
  page.on("response", (r) => {
    if (r.status() >= 400) {
      seen.bad.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    }
  });
  page.on("requestfailed", (r) =>
    seen.aborted.push({ method: r.method(), url: r.url(), error: r.failure()?.errorText }),
  );
  page.on("console", (m) => seen.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  await load(page);
  return { context, page, seen };
}

async function load(page) {
  await page.goto(`${site}/`);
  await page.waitForFunction(() => typeof window.startUpload === "function", null, WAIT);
}

function describe(seen, state) {
  return JSON.stringify({ state, ...seen, requests: seen.requests.map(show) }, null, 2);
}

const show = (r) => `${r.method} ${r.url}`;

// What the page sent to Stowage, by Uppy's call.
function classify(requests, key) {
  const base = `${endpoint}/_stowage/s3/multipart`;
  const object = `${endpoint}/${Bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  const out = { create: [], sign: [], list: [], complete: [], abort: [], puts: [], other: [] };
  for (const r of requests) {
    const url = new URL(r.url);
    const path = `${url.origin}${url.pathname}`;
    if (url.origin === site) {
      continue; // the page itself, checked through siteRequests
    } else if (r.method === "POST" && path === base) {
      out.create.push(r);
    } else if (r.method === "POST" && path.startsWith(`${base}/`) && path.endsWith("/complete")) {
      out.complete.push({ ...r, uploadId: decodeURIComponent(path.split("/").at(-2)) });
    } else if (r.method === "GET" && /\/multipart\/[^/]+\/\d+$/.test(path)) {
      out.sign.push(r);
    } else if (r.method === "GET" && /\/multipart\/[^/]+$/.test(path)) {
      out.list.push({ ...r, uploadId: decodeURIComponent(path.split("/").at(-1)) });
    } else if (r.method === "DELETE") {
      out.abort.push(r);
    } else if (r.method === "PUT" && path === object) {
      out.puts.push({
        ...r,
        partNumber: Number(url.searchParams.get("partNumber")),
        uploadId: url.searchParams.get("uploadId"),
      });
    } else {
      out.other.push(r);
    }
  }
  return out;
}

// Waits until the page's state satisfies `done` (run in the page); on a
// timeout, fails with the state, the requests and Uppy's log.
async function waitFor(page, seen, done) {
  try {
    await page.waitForFunction(done, null, WAIT);
  } catch (e) {
    const state = await page.evaluate(() => window.uppyTest).catch(() => null);
    throw new Error(`${e.message}\n${describe(seen, state)}`);
  }
  return page.evaluate(() => window.uppyTest);
}

const waitForResult = (page, seen) =>
  waitFor(
    page,
    seen,
    () => window.uppyTest.result || window.uppyTest.error || window.uppyTest.uploadErrors.length,
  );

const waitForPause = (page, seen) =>
  waitFor(
    page,
    seen,
    () => window.uppyTest.paused || window.uppyTest.error || window.uppyTest.uploadErrors.length,
  );

function assertSucceeded(state, name, key, context) {
  assert.equal(state.error, null, context);
  assert.deepEqual(state.uploadErrors, [], context);
  assert.deepEqual(state.result.failed, [], context);
  assert.equal(state.result.successful.length, 1, context);
  const [file] = state.result.successful;
  assert.equal(file.name, name);
  // The complete route's location: the object on Stowage itself.
  const url = new URL(file.uploadURL);
  assert.equal(url.origin, new URL(endpoint).origin, file.uploadURL);
  assert.equal(decodeURIComponent(url.pathname), `/${Bucket}/${key}`, file.uploadURL);
  return file;
}

// The server's access-log lines for UploadPart on `key` in this bucket.
function uploadPartLines(key) {
  return readFileSync(logPath, "utf8")
    .split("\n")
    .filter(
      (line) =>
        line.includes("op=UploadPart ") &&
        line.includes(`bucket="${Bucket}"`) &&
        line.includes(`key="${key}"`),
    );
}

// The routes' upload id is the store's id, a dot, and the capability that
// proves the page made the upload; S3 calls (and part URLs) use the first.
const storeId = (uploadId) => uploadId.split(".")[0];

async function listedParts(key, uploadId) {
  const UploadId = storeId(uploadId);
  const listed = await s3.send(new ListPartsCommand({ Bucket, Key: key, UploadId }));
  return (listed.Parts ?? []).map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag }));
}

async function assertStored(key, bytes) {
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: key }));
  assert.match(head.ETag, new RegExp(`^"[0-9a-f]{32}-${PARTS}"$`), head.ETag);
  assert.equal(head.ContentLength, bytes.length);
  assert.equal(head.ContentType, "video/mp4");
  const got = await s3.send(new GetObjectCommand({ Bucket, Key: key }));
  const body = await got.Body.transformToByteArray();
  assert.equal(body.length, bytes.length);
  assert.equal(sha256(body), sha256(bytes), "the stored bytes differ from the file's");
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: key }));
  assert.deepEqual(uploads.Uploads ?? [], [], "the multipart upload is still open");
}

function assertEachPartOnce(puts, uploadId, partNumbers) {
  assert.deepEqual(
    puts.map((p) => p.partNumber).sort((a, b) => a - b),
    partNumbers,
    puts.map(show).join("\n"),
  );
  for (const p of puts) {
    assert.equal(p.uploadId, storeId(uploadId), show(p));
  }
}

test("Uppy uploads a 12 MiB file in three parts straight to Stowage", { timeout: 180_000 }, async () => {
  const name = "whole.mp4";
  const key = keyFor(name);
  const seed = 0x5eed0001;
  const bytes = deterministicBytes(SIZE, seed);
  const siteBefore = siteRequests.length;
  const { context, page, seen } = await openPage();
  try {
    await page.evaluate(
      (o) => window.startUpload(o),
      { endpoint, grant, name, size: SIZE, seed },
    );
    const state = await waitForResult(page, seen);
    const context_ = describe(seen, state);
    const file = assertSucceeded(state, name, key, context_);
    assert.deepEqual(seen.bad, [], context_);
    assert.deepEqual(seen.aborted, [], context_);
    assert.deepEqual(seen.errors, [], context_);

    const calls = classify(seen.requests, key);
    assert.deepEqual(calls.other, [], context_);
    assert.equal(calls.create.length, 1, context_);
    assert.equal(calls.complete.length, 1, context_);
    assert.deepEqual(calls.abort, [], context_);
    const uploadId = calls.complete[0].uploadId;
    assert.equal(file.s3Multipart.uploadId, uploadId);
    assert.equal(file.s3Multipart.key, key);
    assertEachPartOnce(calls.puts, uploadId, [1, 2, 3]);
    assert.deepEqual(state.parts.map((p) => p.PartNumber).sort(), [1, 2, 3]);

    // The site served the page and its script, and took no upload bytes.
    assert.deepEqual(
      siteRequests.slice(siteBefore).filter((r) => r !== "GET /favicon.ico"),
      ["GET /", "GET /uppy-page.js"],
    );

    const lines = uploadPartLines(key);
    assert.equal(lines.length, PARTS, lines.join("\n"));
    for (const line of lines) {
      assert.match(line, /status=200 /, line);
      // The page sent the part to the URL the sign route presigned.
      assert.match(line, /auth="presigned" /, line);
    }
    await assertStored(key, bytes);
  } finally {
    await context.close();
  }
});

test("Uppy resumes a paused upload without sending its uploaded part again", { timeout: 180_000 }, async () => {
  const name = "paused.mp4";
  const key = keyFor(name);
  const seed = 0x5eed0002;
  const bytes = deterministicBytes(SIZE, seed);
  const { context, page, seen } = await openPage();
  try {
    // One request at a time, so that when the first part lands nothing else
    // is on the wire: pauseAll() then stops the upload between parts.
    await page.evaluate(
      (o) => window.startUpload(o),
      { endpoint, grant, name, size: SIZE, seed, limit: 1, pauseAfterFirstPart: true },
    );
    const paused = await waitForPause(page, seen);
    assert.equal(paused.paused, true, describe(seen, paused));
    assert.equal(paused.parts.length, 1, describe(seen, paused));
    const [first] = paused.parts;
    const { uploadId } = paused.s3Multipart;
    assert.equal(paused.s3Multipart.key, key);

    // Stowage holds that one part, and the browser has sent only it.
    assert.deepEqual(await listedParts(key, uploadId), [first]);
    const before = classify(seen.requests, key);
    assertEachPartOnce(before.puts, uploadId, [first.PartNumber]);
    assert.equal(uploadPartLines(key).length, 1);

    await page.evaluate(() => window.resumeUpload());
    const state = await waitForResult(page, seen);
    const context_ = describe(seen, state);
    const file = assertSucceeded(state, name, key, context_);
    assert.deepEqual(seen.bad, [], context_);
    assert.deepEqual(seen.errors, [], context_);
    // Pausing may cancel a queued signing request; never a part's bytes.
    assert.deepEqual(seen.aborted.filter((r) => r.method === "PUT"), [], context_);

    const calls = classify(seen.requests, key);
    assert.deepEqual(calls.other, [], context_);
    assert.equal(calls.create.length, 1, context_);
    // The resume asked Stowage which parts it has (ListParts)...
    assert.ok(calls.list.length >= 1, context_);
    for (const r of calls.list) {
      assert.equal(r.uploadId, uploadId, show(r));
    }
    // ...sent only the others, and completed the same upload.
    assertEachPartOnce(calls.puts, uploadId, [1, 2, 3]);
    assert.deepEqual(calls.complete.map((r) => r.uploadId), [uploadId], context_);
    assert.equal(file.s3Multipart.uploadId, uploadId);
    assert.deepEqual(calls.abort, [], context_);

    const lines = uploadPartLines(key);
    assert.equal(lines.length, PARTS, lines.join("\n"));
    for (const line of lines) {
      assert.match(line, /status=200 /, line);
    }
    await assertStored(key, bytes);
  } finally {
    await context.close();
  }
});

test("after a reload, Uppy resumes the upload from the parts Stowage lists", { timeout: 180_000 }, async () => {
  const name = "reloaded.mp4";
  const key = keyFor(name);
  const seed = 0x5eed0003;
  const bytes = deterministicBytes(SIZE, seed);
  const { context, page, seen } = await openPage();
  try {
    await page.evaluate(
      (o) => window.startUpload(o),
      { endpoint, grant, name, size: SIZE, seed, limit: 1, pauseAfterFirstPart: true },
    );
    const paused = await waitForPause(page, seen);
    assert.equal(paused.paused, true, describe(seen, paused));
    const [first] = paused.parts;
    const restore = paused.s3Multipart;
    assert.equal(restore.key, key);
    assert.deepEqual(await listedParts(key, restore.uploadId), [first]);

    // A new page: all that survives is the { key, uploadId } the app kept.
    const mark = seen.requests.length;
    await page.reload();
    await page.waitForFunction(() => typeof window.startUpload === "function", null, WAIT);
    assert.deepEqual(await page.evaluate(() => window.uppyTest.parts), []);
    await page.evaluate(
      (o) => window.startUpload(o),
      { endpoint, grant, name, size: SIZE, seed, restore },
    );
    const state = await waitForResult(page, seen);
    const context_ = describe(seen, state);
    const file = assertSucceeded(state, name, key, context_);
    assert.deepEqual(seen.bad, [], context_);
    assert.deepEqual(seen.errors, [], context_);
    assert.deepEqual(seen.aborted.filter((r) => r.method === "PUT"), [], context_);

    const calls = classify(seen.requests.slice(mark), key);
    assert.deepEqual(calls.other, [], context_);
    assert.deepEqual(calls.create, [], context_); // no new upload
    assert.deepEqual(calls.list.map((r) => r.uploadId), [restore.uploadId], context_);
    const rest = [1, 2, 3].filter((n) => n !== first.PartNumber);
    assertEachPartOnce(calls.puts, restore.uploadId, rest);
    assert.deepEqual(calls.complete.map((r) => r.uploadId), [restore.uploadId], context_);
    assert.equal(file.s3Multipart.uploadId, restore.uploadId);
    assert.deepEqual(calls.abort, [], context_);

    const lines = uploadPartLines(key);
    assert.equal(lines.length, PARTS, lines.join("\n"));
    for (const line of lines) {
      assert.match(line, /status=200 /, line);
    }
    await assertStored(key, bytes);
  } finally {
    await context.close();
  }
});
