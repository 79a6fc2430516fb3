// The file the Uppy browser test uploads: `size` bytes from a seeded
// xorshift32 generator, so that the page (which builds the Blob) and the
// Node test (which checks what Stowage stored) make the same bytes without
// sending 12 MiB through page.evaluate. Imported by uppy-page.mjs (bundled
// for the browser by esbuild) and by uppy.test.mjs.

export function deterministicBytes(size, seed) {
  const bytes = new Uint8Array(size);
  const words = new Uint32Array(bytes.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  for (let i = 0; i < words.length; i++) {
    words[i] = next();
  }
  for (let i = words.length * 4; i < size; i++) {
    bytes[i] = next() & 0xff;
  }
  return bytes;
}
