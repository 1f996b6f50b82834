#!/usr/bin/env node
// Serves the built Worker (build/index.js, re-exporting build/worker/shim.mjs, and
// build/worker/index.wasm) under workerd, through Miniflare, on 127.0.0.1. Miniflare gives it
// `caches.default` (in memory, new for every run) and lets it fetch loopback origins such as a
// local s3s-fs.
//
//   node scripts/run-worker.mjs [--port N] [--bindings FILE] [--script PATH] [--failing-cache]
//                               [--exit-on-stdin-close]
//
//   --port N                 port on 127.0.0.1 (default 8787; 0 picks a free one)
//   --bindings FILE          a JSON object of bindings, e.g. {"SPACES_BUCKET": "nix-cache",
//                            "PRIORITY": 10, "WANT_MASS_QUERY": true}: strings, numbers and
//                            booleans, as wrangler.toml's [vars] give them; keep it mode 0600
//                            when it holds the secrets
//   --script PATH            the Worker's entry module (default build/index.js)
//   --failing-cache          replace caches.default with one whose every call fails (lookups
//                            reject, stores throw), to show the Worker answers from the origin
//   --exit-on-stdin-close    stop when standard input closes (for a parent that may die)
//
// Bindings also come from the environment under their own names (see BINDINGS below); the
// file wins over the environment. Secrets are never taken from the command line, where `ps`
// would show them, and never printed.
//
// Prints one line `ready: http://127.0.0.1:PORT` on standard output once the Worker answers,
// then serves until SIGINT or SIGTERM.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Log, LogLevel, Miniflare } from "miniflare";
import { failingCacheEntry } from "./failing-cache.mjs";

const BINDINGS = [
  "SPACES_ENDPOINT",
  "SPACES_BUCKET",
  "SPACES_REGION",
  "SPACES_ACCESS_KEY_ID",
  "SPACES_SECRET_ACCESS_KEY",
  "STORE_DIR",
  "WANT_MASS_QUERY",
  "PRIORITY",
  "PUBLIC_KEYS",
  "NAR_TTL",
  "NARINFO_TTL",
  "NEGATIVE_TTL",
  "TOKEN_SECRET",
  "SIGNING_KEY",
  "PRIVATE",
  "MAX_UPLOAD_BYTES",
  "SEGMENT_BYTES",
];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function fail(message) {
  process.stderr.write(`run-worker: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: 8787, bindings: null, script: path.join(root, "build/index.js"), exitOnStdinClose: false, failingCache: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case "--port": {
        const port = Number(value());
        if (!Number.isInteger(port) || port < 0 || port > 65535) fail("--port must be 0..65535");
        opts.port = port;
        break;
      }
      case "--bindings":
        opts.bindings = value();
        break;
      case "--script":
        opts.script = path.resolve(value());
        break;
      case "--exit-on-stdin-close":
        opts.exitOnStdinClose = true;
        break;
      case "--failing-cache":
        opts.failingCache = true;
        break;
      case "-h":
      case "--help":
        process.stdout.write(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 25).join("\n") + "\n");
        process.exit(0);
      default:
        fail(`unknown argument ${arg} (bindings go in the environment or --bindings FILE)`);
    }
  }
  return opts;
}

function readBindings(file) {
  const bindings = {};
  for (const name of BINDINGS) {
    if (process.env[name] !== undefined) bindings[name] = process.env[name];
  }
  if (file) {
    let parsed;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      fail(`cannot read bindings from ${file}: ${err.code ?? "invalid JSON"}`);
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail(`${file} must hold a JSON object`);
    for (const [name, value] of Object.entries(parsed)) {
      if (!["string", "number", "boolean"].includes(typeof value)) {
        fail(`binding ${name} in ${file} must be a string, a number or a boolean`);
      }
      bindings[name] = value;
    }
  }
  return bindings;
}

// The deploy config's compatibility date and flags, so that workerd behaves as in production.
function compatibility() {
  const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([0-9-]+)"/m.exec(toml)?.[1];
  if (!date) fail("wrangler.toml has no compatibility_date");
  const flagsLine = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? "";
  const flags = [...flagsLine.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  return { compatibilityDate: date, compatibilityFlags: flags };
}

const opts = parseArgs(process.argv.slice(2));
const entry = opts.failingCache ? failingCacheEntry(opts.script) : { scriptPath: opts.script };
const mf = new Miniflare({
  host: "127.0.0.1",
  port: opts.port,
  modules: true,
  ...entry,
  modulesRoot: path.dirname(opts.script),
  // The rules wrangler applies to a workers-rs build: JS as ES modules, .wasm compiled.
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm", "**/*.wasm?module"] },
  ],
  ...compatibility(),
  bindings: readBindings(opts.bindings),
  // A fixed placeholder for `request.cf` instead of fetching one from the internet.
  cf: false,
  log: new Log(LogLevel.WARN),
});

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(code);
  }
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
if (opts.exitOnStdinClose) {
  process.stdin.on("end", () => stop(0));
  process.stdin.on("error", () => stop(0));
  process.stdin.resume();
}

try {
  const url = await mf.ready;
  process.stdout.write(`ready: ${url.origin}\n`);
} catch (err) {
  process.stderr.write(`run-worker: the Worker did not start: ${err?.message ?? err}\n`);
  await stop(1);
}
