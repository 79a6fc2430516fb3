// The page of the Uppy browser test (uppy.test.mjs bundles it with esbuild
// and serves it from its own origin): @uppy/core and @uppy/aws-s3 configured
// as the README says, with the grant in the headers option and Stowage's
// /_stowage as the endpoint. Nothing else is between the page and Stowage.
//
// window.startUpload(options) adds one file and uploads it; what happened is
// in window.uppyTest for the test to read:
//   parts      every s3-multipart:part-uploaded event's part
//   paused     true from pauseAll() after the first part (when
//              options.pauseAfterFirstPart) until resumeUpload()
//   s3Multipart  the file's { key, uploadId } when it paused
//   result     the `complete` event's successful and failed files
//   error      a rejected uppy.upload(), as text
// window.resumeUpload() calls uppy.resumeAll().

import AwsS3 from "@uppy/aws-s3";
import Uppy from "@uppy/core";

import { deterministicBytes } from "./uppy-bytes.mjs";

const state = {
  parts: [],
  paused: false,
  s3Multipart: null,
  uploadErrors: [],
  result: null,
  error: null,
};
window.uppyTest = state;

let uppy = null;

// options: { endpoint, grant, name, size, seed, limit, pauseAfterFirstPart,
// restore } where restore, when given, is the { key, uploadId } of an upload
// a previous page started: the file takes it as its s3Multipart state (as
// Golden Retriever restores it after a reload) and Uppy resumes that upload.
window.startUpload = (options) => {
  uppy = new Uppy({ id: "stowage-test", autoProceed: false, debug: true });
  const s3Options = {
    endpoint: `${options.endpoint}/_stowage`,
    headers: { "X-Stowage-Grant": options.grant },
    shouldUseMultipart: true,
  };
  if (options.limit != null) {
    s3Options.limit = options.limit;
  }
  uppy.use(AwsS3, s3Options);

  uppy.on("s3-multipart:part-uploaded", (file, part) => {
    state.parts.push({ PartNumber: part.PartNumber, ETag: part.ETag });
    if (options.pauseAfterFirstPart && state.s3Multipart == null) {
      uppy.pauseAll();
      state.s3Multipart = { ...uppy.getFile(file.id).s3Multipart };
      state.paused = true;
    }
  });
  uppy.on("upload-error", (file, error) => {
    state.uploadErrors.push(`${file?.name}: ${error?.message ?? error}`);
  });
  uppy.on("complete", (result) => {
    state.result = {
      successful: (result.successful ?? []).map((file) => ({
        name: file.name,
        uploadURL: file.uploadURL,
        s3Multipart: file.s3Multipart ?? null,
        body: file.response?.body ?? null,
      })),
      failed: (result.failed ?? []).map((file) => ({
        name: file.name,
        error: String(file.error),
      })),
    };
  });

  const data = new Blob([deterministicBytes(options.size, options.seed)], {
    type: "video/mp4",
  });
  const id = uppy.addFile({ name: options.name, type: "video/mp4", data });
  if (options.restore) {
    uppy.setFileState(id, { s3Multipart: { ...options.restore } });
  }
  uppy.upload().catch((error) => {
    state.error = String(error?.stack ?? error);
  });
  return id;
};

window.resumeUpload = () => {
  state.paused = false;
  uppy.resumeAll();
};
