// The entry module of a Worker whose edge cache always fails: it wraps the Worker's own entry
// and gives it a `caches.default` whose every call fails (lookups reject, stores and deletes
// throw). For showing that the Worker answers from the origin when the Cache API fails
// (scripts/run-worker.mjs --failing-cache), and for measuring a read with nothing stored
// (bench/run.mjs).

import path from "node:path";

/**
 * Miniflare's `script` and `scriptPath` for a wrapper of the entry module `script`; the wrapper
 * is named as a file beside it, so its import resolves.
 */
export function failingCacheEntry(script) {
  const code = `import worker from "./${path.basename(script)}";
const refuse = (call) => { throw new Error(\`injected edge cache failure: \${call}\`); };
const failing = {
  match: async () => refuse("match"),
  put: () => refuse("put"),
  delete: () => refuse("delete"),
};
Object.defineProperty(globalThis, "caches", {
  value: { default: failing, open: async () => failing },
  configurable: true,
});
export default worker;
`;
  return { script: code, scriptPath: path.join(path.dirname(script), "failing-cache-entry.mjs") };
}
