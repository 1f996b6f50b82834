// The benchmark driver: starts s3s-fs and the Workers under workerd (Miniflare), drives them
// with wrk and curl on 127.0.0.1, and prints every figure. scripts/bench.sh is the way in: it
// builds the Rust Worker's bundle with `wrangler deploy --dry-run` and passes it here.
//
// Workers, each in its own Miniflare (so its own workerd process), driven one at a time (and
// rust and js also both at once, "head to head"):
//   rust        the deployable bundle of the Rust Worker (BENCH_RUST_DIR: index.js + *.wasm)
//   js          bench/js-worker/index.mjs bundled with aws4fetch by esbuild
//   rust-floor  the smallest workers-rs Worker (BENCH_FLOOR_DIR: bench/floor built), and
//   js-floor    the smallest JS Worker (bench/floor/index.mjs): /nix-cache-info only
//
// Figures:
//   rps   wrk on /nix-cache-info, a cached narinfo, and a fresh random narinfo per request
//         (edge miss, SigV4-signed GET to s3s-fs, 404, negative entry stored)
//   h2h   the same paths with rust and js driven at the same time on the same CPU, each by its
//         own wrk: their CPU per request and req/s within each round
//   nar   MB/s for NARs of each size in BENCH_NAR_MIB, straight from s3s-fs (curl
//         --aws-sigv4), through each Worker cold (edge miss) and cached (edge hit), and the
//         peak resident memory (VmHWM) of the workerd process(es) serving that Worker
//
// Settings (environment): BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2; BENCH_FIRST_WARMUP, 10 s,
// before the first round of each path), BENCH_THREADS (2),
// BENCH_CONNECTIONS (32), BENCH_ROUNDS (1; the median of the rounds is reported, and the median
// and range of the rust / js ratio within each round),
// BENCH_H2H_ROUNDS (5; rounds of the head-to-head run, 0 to leave it out),
// BENCH_NAR_MIB ("64,256"), BENCH_WORKERS ("rust,js"), BENCH_PATHS (the req/s paths by id;
// all when unset), BENCH_JSON (write results there),
// BENCH_SECTIONS ("rps,nar,segments": which parts run), BENCH_BIG_MIB (1024: the segmented
// NAR), BENCH_SEGMENT_MIB (32: SEGMENT_BYTES for it), BENCH_SEGMENT_ROUNDS (5: cold reads of
// it), BENCH_SLOW_MIB (256: the NAR a client reads at 2 MB/s, cold), BENCH_PIN (1: workerd on
// the last CPU, this driver with its proxy, curl, wrk and s3s-fs on the others; 0: unpinned),
// BENCH_NODE_MODULES (where miniflare, esbuild and aws4fetch are; default ./node_modules),
// S3S_FS (the s3s-fs binary), WRK (the wrk binary), BENCH_KEEP (keep the scratch folders).
//
// Every child process is started here and killed here by its pid, on success, failure or
// signal. The access key and secret are random per run and are never printed (s3s-fs takes
// them as arguments, so other local users could see them in `ps` while it runs).

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { gzipSync } from "node:zlib";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { failingCacheEntry } from "../scripts/failing-cache.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");

const settings = {
  duration: intEnv("BENCH_DURATION", 10),
  warmup: intEnv("BENCH_WARMUP", 2, 0),
  firstWarmup: intEnv("BENCH_FIRST_WARMUP", 10, 0),
  threads: intEnv("BENCH_THREADS", 2),
  connections: intEnv("BENCH_CONNECTIONS", 32),
  rounds: intEnv("BENCH_ROUNDS", 1),
  // Rounds of the head-to-head run (both Workers at once); 0 leaves it out.
  h2hRounds: intEnv("BENCH_H2H_ROUNDS", 5, 0),
  narMiB: (process.env.BENCH_NAR_MIB ?? "64,256").split(",").filter(Boolean).map(Number),
  workers: (process.env.BENCH_WORKERS ?? "rust,js").split(",").filter(Boolean),
  // Which request-per-second paths to run, by id (nix-cache-info, narinfo-cached,
  // narinfo-uncached); all of them when empty.
  paths: (process.env.BENCH_PATHS ?? "").split(",").filter(Boolean),
  // Pin every workerd to the last CPU and this driver (with its byte-counting proxy), wrk, curl
  // and s3s-fs to the others, so the Worker measured does not share its CPU with the load
  // generator or the origin (needs taskset and 2+ CPUs).
  pin: (process.env.BENCH_PIN ?? "1") !== "0" && os.cpus().length >= 2 && fs.existsSync("/usr/bin/taskset"),
  rustDir: process.env.BENCH_RUST_DIR ?? "",
  // The smallest workers-rs Worker, built from bench/floor (worker-build's output folder).
  floorDir: process.env.BENCH_FLOOR_DIR ?? "",
  nodeModules: process.env.BENCH_NODE_MODULES ?? path.join(root, "node_modules"),
  s3sFs: process.env.S3S_FS ?? path.join(os.homedir(), ".cargo/bin/s3s-fs"),
  wrk: process.env.WRK ?? "/usr/bin/wrk",
  json: process.env.BENCH_JSON ?? "",
  sections: (process.env.BENCH_SECTIONS ?? "rps,nar,segments").split(",").filter(Boolean),
  bigMiB: intEnv("BENCH_BIG_MIB", 1024),
  segmentMiB: intEnv("BENCH_SEGMENT_MIB", 32),
  slowMiB: intEnv("BENCH_SLOW_MIB", 256),
  // Cold reads of the big NAR (each on an edge of its own, taking turns with a direct read).
  segmentRounds: intEnv("BENCH_SEGMENT_ROUNDS", 5),
};

/** With BENCH_PIN: the CPU every workerd runs on, and the CPUs of everything else. */
const WORKER_CPU = os.cpus().length - 1;
const LOAD_CPUS = `0-${Math.max(0, os.cpus().length - 2)}`;

const BUCKET = "nix-cache-bench";
const REGION = "bench-1";
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";
/** Fetches per NAR and Worker for each of direct, cold and cached; the median is reported. */
const COLD_FETCHES = 3;
/** The smallest Worker in each language (bench/floor), measured on /nix-cache-info only. */
const FLOORS = ["rust-floor", "js-floor"];

/** A load-side command and its arguments, on the load's CPUs with BENCH_PIN. */
function pinnedLoad(cmd, args) {
  return settings.pin ? ["/usr/bin/taskset", ["-c", LOAD_CPUS, cmd, ...args]] : [cmd, args];
}

function intEnv(name, fallback, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer of at least ${min}, got ${raw}`);
  return n;
}

function log(line) {
  process.stderr.write(`bench: ${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Processes: everything started is tracked and killed by pid.

const children = new Set();
const miniflares = new Set();
let scratch = "";
// The edge cache's storage (Miniflare keeps it in SQLite and files): on tmpfs when there is
// one, so that disk syncs do not stand in for the Workers' own cost.
let cacheRoot = "";

function start(cmd, args, logFile, env = process.env) {
  const out = fs.openSync(logFile, "a", 0o600);
  const child = spawn(cmd, args, { stdio: ["ignore", out, out], env });
  fs.closeSync(out);
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

function stop(child) {
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  children.delete(child);
}

async function cleanup() {
  for (const mf of miniflares) {
    try {
      await mf.dispose();
    } catch {
      // the runtime is being torn down anyway
    }
  }
  miniflares.clear();
  for (const child of [...children]) stop(child);
  if (process.env.BENCH_KEEP) return;
  for (const dir of [scratch, cacheRoot]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    log(`${signal}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, child, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`process ${child.pid} exited with ${child.exitCode}`);
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.on("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${seconds} s`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion (bounded), returning stdout; stdin may carry a config. */
function run(cmd, args, { input, seconds }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => stop(child), seconds * 1000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${path.basename(cmd)} failed (${code ?? signal}): ${stderr.trim().slice(0, 500)}`));
    });
    // A command that exits without reading its input (taskset) must not fail the run.
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
  });
}

// ---------------------------------------------------------------------------------------------
// The origin: s3s-fs over a folder holding the bucket.

function nixHash(length) {
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => NIX_BASE32[b % 32]).join("");
}

function writeRandomFile(file, mib) {
  const fd = fs.openSync(file, "w");
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) {
    // A fresh MiB each time, so nothing on the way can compress or deduplicate it.
    fs.writeSync(fd, randomBytes(chunk.length));
  }
  fs.closeSync(fd);
}

function seedBucket(dir) {
  const bucket = path.join(dir, BUCKET);
  fs.mkdirSync(path.join(bucket, "nar"), { recursive: true });
  const narinfoHash = nixHash(32);
  const nars = settings.narMiB.map((mib) => {
    // The same bytes under COLD_FETCHES keys, so each cold fetch is a real miss; with their
    // ETags, as objects uploaded through S3 have them (a NAR over SEGMENT_BYTES is read in
    // ranged GETs, and s3s-fs hashes the whole file for each one that lacks it).
    const nar = seedBig(dir, mib, COLD_FETCHES);
    return { ...nar, key: nar.keys[0] };
  });
  const narinfo = [
    `StorePath: /nix/store/${narinfoHash}-bench-0.1`,
    `URL: ${nars[0]?.key ?? `nar/${nixHash(52)}.nar`}`,
    "Compression: none",
    `FileHash: sha256:${nixHash(52)}`,
    `FileSize: ${nars[0]?.bytes ?? 0}`,
    `NarHash: sha256:${nixHash(52)}`,
    `NarSize: ${nars[0]?.bytes ?? 0}`,
    "References: ",
    "",
  ].join("\n");
  fs.writeFileSync(path.join(bucket, `${narinfoHash}.narinfo`), narinfo);
  return { narinfo: `/${narinfoHash}.narinfo`, nars };
}

async function startOrigin(creds) {
  const dir = path.join(scratch, "s3");
  fs.mkdirSync(dir);
  const seeded = seedBucket(dir);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = start(
      settings.s3sFs,
      ["--host", "127.0.0.1", "--port", String(port), `--access-key=${creds.accessKeyId}`, `--secret-key=${creds.secretAccessKey}`, dir],
      path.join(scratch, "s3s-fs.log"),
      { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    );
    try {
      await waitForPort(port, child, 20);
      if (settings.pin) await run("/usr/bin/taskset", ["-a", "-p", "-c", LOAD_CPUS, String(child.pid)], { seconds: 10 });
      return { port, child, endpoint: `http://127.0.0.1:${port}`, ...seeded };
    } catch (err) {
      stop(child);
      if (attempt >= 2) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The Workers under workerd.

const nodeRequire = createRequire(path.join(settings.nodeModules, "..", "package.json"));

function compatibilityDate() {
  const toml = fs.readFileSync(path.join(root, "wrangler.toml"), "utf8");
  return /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "2025-09-01";
}

async function bundleJsWorker() {
  const esbuild = nodeRequire("esbuild");
  const outfile = path.join(scratch, "js-worker", "index.mjs");
  await esbuild.build({
    entryPoints: [path.join(here, "js-worker", "index.mjs")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["worker", "browser"],
    mainFields: ["module", "main"],
    nodePaths: [settings.nodeModules],
    minify: true,
    logLevel: "warning",
  });
  return outfile;
}

function workerSources(name, jsBundle) {
  if (name === "js") {
    return { scriptPath: jsBundle, modules: true, modulesRoot: path.dirname(jsBundle) };
  }
  if (name === "js-floor") {
    return { scriptPath: path.join(here, "floor", "index.mjs"), modules: true };
  }
  if (name === "rust-floor") {
    return {
      scriptPath: path.join(settings.floorDir, "index.js"),
      modules: true,
      modulesRoot: settings.floorDir,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    };
  }
  if (name === "rust-nostore") {
    // The Rust Worker with a Cache API whose every call fails (as scripts/run-worker.mjs
    // --failing-cache): nothing is stored, every read goes to the origin.
    const rust = workerSources("rust", jsBundle);
    return {
      ...rust,
      ...failingCacheEntry(rust.scriptPath),
      modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...rust.modulesRules],
    };
  }
  if (name === "rust") {
    if (!settings.rustDir) throw new Error("BENCH_RUST_DIR is not set (the wrangler --dry-run output)");
    const main = ["index.js", "shim.mjs", "index.mjs"].map((f) => path.join(settings.rustDir, f)).find((f) => fs.existsSync(f));
    if (!main) throw new Error(`no index.js in ${settings.rustDir}`);
    return {
      scriptPath: main,
      modules: true,
      modulesRoot: settings.rustDir,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    };
  }
  throw new Error(`unknown worker ${name}`);
}

function childPids(parent) {
  const pids = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === parent) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

function workerdPids() {
  return childPids(process.pid).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "workerd";
    } catch {
      return false;
    }
  });
}

/** CPU time (user + system, all threads) of a process so far, in clock ticks (1/100 s). */
function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5), counted after the command name.
  return Number(fields[11]) + Number(fields[12]);
}

function statusKiB(pid, field) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return m ? Number(m[1]) : 0;
}

async function startWorker(name, jsBundle, origin, creds, extraBindings = {}) {
  const { Miniflare, Log, LogLevel } = nodeRequire("miniflare");
  const before = new Set(workerdPids());
  const logFile = path.join(scratch, `workerd-${name}.log`);
  const logStream = fs.createWriteStream(logFile, { flags: "a", mode: 0o600 });
  const cacheDir = fs.mkdtempSync(path.join(cacheRoot, `cache-${name}-`));
  const mf = new Miniflare({
    ...workerSources(name, jsBundle),
    name: `nix-cache-${name}`,
    compatibilityDate: compatibilityDate(),
    host: "127.0.0.1",
    port: 0,
    // The placeholder Request.cf object: Miniflare would otherwise fetch a real one online.
    cf: false,
    cachePersist: cacheDir,
    log: new Log(LogLevel.WARN),
    handleRuntimeStdio(stdout, stderr) {
      stdout.pipe(logStream, { end: false });
      stderr.pipe(logStream, { end: false });
    },
    bindings: {
      SPACES_ENDPOINT: origin.endpoint,
      SPACES_BUCKET: BUCKET,
      SPACES_REGION: REGION,
      SPACES_ACCESS_KEY_ID: creds.accessKeyId,
      SPACES_SECRET_ACCESS_KEY: creds.secretAccessKey,
      STORE_DIR: "/nix/store",
      WANT_MASS_QUERY: "1",
      PRIORITY: "40",
      ...extraBindings,
    },
  });
  miniflares.add(mf);
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const pids = workerdPids().filter((pid) => !before.has(pid));
  if (pids.length === 0) throw new Error(`no workerd process found for the ${name} Worker`);
  if (settings.pin) {
    for (const pid of pids) await run("/usr/bin/taskset", ["-a", "-p", "-c", String(WORKER_CPU), String(pid)], { seconds: 10 });
  }
  return {
    name,
    url,
    pids,
    cacheDir,
    logText: () => fs.readFileSync(logFile, "utf8"),
    cpuTicks: () => pids.reduce((sum, pid) => sum + cpuTicks(pid), 0),
    hwmKiB: () => pids.reduce((sum, pid) => sum + statusKiB(pid, "VmHWM"), 0),
    rssKiB: () => pids.reduce((sum, pid) => sum + statusKiB(pid, "VmRSS"), 0),
    async stop() {
      miniflares.delete(mf);
      await mf.dispose();
      logStream.end();
      fs.rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Checks before measuring: each path answers what the figure claims it measures.

async function probe(url, init = {}) {
  const res = await fetch(url, init);
  const body = init.method === "HEAD" ? "" : await res.text();
  return { status: res.status, xcache: res.headers.get("x-cache"), body };
}

function expect(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function waitForHit(url, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const res = await fetch(url, { method: "HEAD" });
    if (res.headers.get("x-cache") === "HIT") return true;
    await sleep(100);
  }
  return false;
}

async function checkWorker(worker, origin) {
  const info = await probe(`${worker.url}/nix-cache-info`);
  expect(info.status === 200 && info.body.includes("StoreDir: /nix/store"), `${worker.name}: /nix-cache-info is 200 (${info.status})`);

  const first = await probe(`${worker.url}${origin.narinfo}`);
  expect(first.status === 200 && first.body.startsWith("StorePath:"), `${worker.name}: seeded narinfo is 200 (${first.status} ${first.body.slice(0, 80)})`);
  const random = `${worker.url}/${nixHash(32)}.narinfo`;
  const miss = await probe(random);
  expect(miss.status === 404 && miss.xcache === "MISS", `${worker.name}: a random narinfo is a 404 MISS (${miss.status} ${miss.xcache} ${miss.body.trim()})`);
  // rust-nostore's Cache API fails on purpose: nothing becomes a hit.
  if (worker.name === "rust-nostore") return;
  expect(await waitForHit(`${worker.url}${origin.narinfo}`, 10), `${worker.name}: seeded narinfo becomes an edge hit`);
  const cached = await probe(`${worker.url}${origin.narinfo}`);
  expect(cached.status === 200 && cached.xcache === "HIT" && cached.body === first.body, `${worker.name}: cached narinfo is a 200 HIT`);
  expect(await waitForHit(random, 10), `${worker.name}: the miss is remembered (negative entry)`);
}

// ---------------------------------------------------------------------------------------------
// Requests per second.

async function wrk(url, script, seconds, { threads = settings.threads, connections = settings.connections } = {}) {
  const args = [
    `-t${threads}`,
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    "-s",
    path.join(here, "wrk", script),
    url,
  ];
  const out = await run(...pinnedLoad(settings.wrk, args), { seconds: seconds + 30 });
  const line = out.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!line) throw new Error(`wrk printed no summary:\n${out}`);
  return JSON.parse(line.slice("WRK_JSON ".length));
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

const CACHE_INFO_TARGET = { id: "nix-cache-info", label: "/nix-cache-info", path: "/nix-cache-info", script: "report.lua", expectStatusErrors: false };

function rpsTargets(origin) {
  return [
    CACHE_INFO_TARGET,
    { id: "narinfo-cached", label: "cached narinfo (edge hit)", path: origin.narinfo, script: "report.lua", expectStatusErrors: false },
    { id: "narinfo-uncached", label: "uncached narinfo (sign + origin 404)", path: "/", script: "random-narinfo.lua", expectStatusErrors: true },
  ];
}

/** `floors` run on /nix-cache-info only, in the same rounds as the Workers they are the floor of. */
async function requestsPerSecond(workers, floors, origin) {
  const results = [];
  const known = rpsTargets(origin).map((t) => t.id);
  const unknown = settings.paths.filter((id) => !known.includes(id));
  if (unknown.length > 0) throw new Error(`BENCH_PATHS: no path ${unknown.join(", ")} (there are ${known.join(", ")})`);
  const targets = rpsTargets(origin).filter((t) => settings.paths.length === 0 || settings.paths.includes(t.id));
  for (const target of targets) {
    const row = { ...target, workers: {} };
    const these = target === CACHE_INFO_TARGET ? [...workers, ...floors] : workers;
    for (let round = 0; round < settings.rounds; round++) {
      // Alternate who goes first, so drift over time does not favour one Worker.
      const order = round % 2 === 0 ? these : [...these].reverse();
      for (const worker of order) {
        const url = `${worker.url}${target.path}`;
        // Wasm and JS alike reach their optimised code only after many requests: the first
        // round of each path warms each Worker up for longer.
        const warmup = round === 0 ? Math.max(settings.warmup, settings.firstWarmup) : settings.warmup;
        if (warmup > 0) await wrk(url, target.script, warmup);
        const workerTicks = worker.cpuTicks();
        const originTicks = cpuTicks(origin.child.pid);
        const r = await wrk(url, target.script, settings.duration);
        // CPU per request: less sensitive than req/s to whatever else the machine is doing.
        r.workerd_cpu_us = ((worker.cpuTicks() - workerTicks) * 1e4) / r.requests;
        r.origin_cpu_us = ((cpuTicks(origin.child.pid) - originTicks) * 1e4) / r.requests;
        const bad = r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout;
        const statusOk = target.expectStatusErrors ? r.errors.status === r.requests : r.errors.status === 0;
        if (bad > 0 || !statusOk) {
          log(`${worker.name} ${target.id}: socket errors ${bad}, non-2xx/3xx ${r.errors.status} of ${r.requests}`);
        }
        (row.workers[worker.name] ??= []).push(r);
        log(`${target.id} ${worker.name} round ${round + 1}: ${r.rps.toFixed(0)} req/s, p99 ${(r.latency_us.p99 / 1000).toFixed(2)} ms, CPU/req: workerd ${r.workerd_cpu_us.toFixed(0)} µs, s3s-fs ${r.origin_cpu_us.toFixed(0)} µs`);
      }
    }
    for (const name of Object.keys(row.workers)) {
      const runs = row.workers[name];
      row.workers[name] = {
        rps: median(runs.map((r) => r.rps)),
        p50_ms: median(runs.map((r) => r.latency_us.p50)) / 1000,
        p99_ms: median(runs.map((r) => r.latency_us.p99)) / 1000,
        workerd_cpu_us: median(runs.map((r) => r.workerd_cpu_us)),
        origin_cpu_us: median(runs.map((r) => r.origin_cpu_us)),
        requests: runs.reduce((s, r) => s + r.requests, 0),
        socket_errors: runs.reduce((s, r) => s + r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout, 0),
        non_2xx: runs.reduce((s, r) => s + r.errors.status, 0),
        runs,
      };
    }
    // Each round runs the two Workers back to back, so the ratio within a round is less
    // sensitive to drift over the run than the ratio of the medians.
    const rust = row.workers.rust?.runs;
    const js = row.workers.js?.runs;
    if (rust && js) {
      const ratios = rust.map((r, i) => r.rps / js[i].rps);
      row.paired = { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), ratios };
    }
    results.push(row);
  }
  return results;
}

/**
 * Head to head: the rust and js Workers driven at the same time, each by its own wrk with half
 * the threads and connections, both workerd processes on the same CPU (with BENCH_PIN). What
 * the machine does during a round (other load, a noisy neighbour, the clock) falls on both
 * alike, and the kernel shares the CPU between them evenly, so a Worker that needs less CPU
 * per request serves more of them. The ratios within a round are steadier than those of
 * runs taken one after the other.
 */
async function headToHead(workers, origin) {
  const pair = ["rust", "js"].map((name) => workers.find((w) => w.name === name));
  if (settings.h2hRounds === 0 || pair.some((w) => !w)) return [];
  const half = {
    threads: Math.max(1, Math.floor(settings.threads / 2)),
    connections: Math.max(1, Math.floor(settings.connections / 2)),
  };
  const rows = [];
  const targets = rpsTargets(origin).filter((t) => settings.paths.length === 0 || settings.paths.includes(t.id));
  for (const target of targets) {
    const rounds = [];
    for (let round = 0; round < settings.h2hRounds; round++) {
      const urls = pair.map((w) => `${w.url}${target.path}`);
      if (settings.warmup > 0) await Promise.all(urls.map((url) => wrk(url, target.script, settings.warmup, half)));
      const before = pair.map((w) => w.cpuTicks());
      const runs = await Promise.all(urls.map((url) => wrk(url, target.script, settings.duration, half)));
      runs.forEach((r, i) => {
        r.workerd_cpu_us = ((pair[i].cpuTicks() - before[i]) * 1e4) / r.requests;
        const bad = r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout;
        const statusOk = target.expectStatusErrors ? r.errors.status === r.requests : r.errors.status === 0;
        if (bad > 0 || !statusOk) log(`head to head, ${pair[i].name} ${target.id}: socket errors ${bad}, non-2xx/3xx ${r.errors.status} of ${r.requests}`);
      });
      const [rust, js] = runs;
      rounds.push({ rust, js, rps_ratio: rust.rps / js.rps, cpu_ratio: js.workerd_cpu_us / rust.workerd_cpu_us });
      log(`head to head, ${target.id} round ${round + 1}: rust ${rust.rps.toFixed(0)} req/s ${rust.workerd_cpu_us.toFixed(0)} µs/req, js ${js.rps.toFixed(0)} req/s ${js.workerd_cpu_us.toFixed(0)} µs/req`);
    }
    const stat = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
    rows.push({
      id: target.id,
      label: target.label,
      rust: { rps: median(rounds.map((r) => r.rust.rps)), workerd_cpu_us: median(rounds.map((r) => r.rust.workerd_cpu_us)) },
      js: { rps: median(rounds.map((r) => r.js.rps)), workerd_cpu_us: median(rounds.map((r) => r.js.workerd_cpu_us)) },
      rps_ratio: stat(rounds.map((r) => r.rps_ratio)),
      cpu_ratio: stat(rounds.map((r) => r.cpu_ratio)),
      rounds,
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// NAR streaming.

async function curlSpeed(url, { signed, creds, expectXCache } = {}) {
  const args = ["-sS", "-o", "/dev/null", "-D", "-", "-w", "\nCURL %{http_code} %{size_download} %{time_total} %{speed_download}\n"];
  let input;
  if (signed) {
    // The key pair goes to curl on stdin, never on its command line.
    input = `user = "${creds.accessKeyId}:${creds.secretAccessKey}"\n`;
    args.push("-K", "-", "--aws-sigv4", `aws:amz:${REGION}:s3`, "-H", `x-amz-content-sha256: ${EMPTY_SHA256}`);
  }
  args.push(url);
  const out = await run(...pinnedLoad("curl", args), { input, seconds: 600 });
  const m = /\nCURL (\d+) (\d+) ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`curl printed no summary for ${url}`);
  const xcache = /^x-cache:\s*(\S+)/im.exec(out)?.[1] ?? null;
  const result = { status: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]), mbps: Number(m[2]) / Number(m[3]) / 1e6, xcache };
  if (expectXCache) expect(xcache === expectXCache, `${url} answered x-cache ${xcache}, expected ${expectXCache}`);
  return result;
}

async function narStreaming(origin, creds, jsBundle) {
  const rows = [];
  for (const nar of origin.nars) {
    const row = { mib: nar.mib, bytes: nar.bytes, workers: {} };
    for (const name of settings.workers) {
      // A fresh runtime per NAR, so its peak memory belongs to this NAR alone.
      const worker = await startWorker(name, jsBundle, origin, creds);
      try {
        const idleKiB = worker.rssKiB();
        // Direct and cold fetches take turns, so both see the same machine.
        const direct = [];
        const cold = [];
        for (const key of nar.keys) {
          const d = await curlSpeed(`${origin.endpoint}/${BUCKET}/${key}`, { signed: true, creds });
          expect(d.status === 200 && d.bytes === nar.bytes, `direct fetch of the ${nar.mib} MiB NAR is whole (${d.status}, ${d.bytes} bytes)`);
          direct.push(d.mbps);
          const url = `${worker.url}/${key}`;
          const c = await curlSpeed(url, { expectXCache: "MISS" });
          expect(c.status === 200 && c.bytes === nar.bytes, `${name}: cold ${nar.mib} MiB NAR is whole (${c.status}, ${c.bytes} bytes)`);
          cold.push(c.mbps);
          // The edge stores the copy in the background; let it finish before the next run (for
          // the Rust Worker, every segment of a NAR over its default SEGMENT_BYTES, 32 MiB).
          // (rust-nostore stores nothing: there is nothing to wait for.)
          if (name !== "rust-nostore" && !(await waitForHit(url, 120))) log(`${name}: the ${nar.mib} MiB NAR was not stored in the edge cache within 120 s`);
          const segments = Math.ceil(nar.bytes / (32 * 1024 * 1024));
          if (name === "rust" && segments > 1 && !(await waitForSegments(worker, key, segments, 120))) {
            log(`rust: the ${segments} segments of the ${nar.mib} MiB NAR were not all stored within 120 s`);
          }
        }
        const url = `${worker.url}/${nar.key}`;
        const cached = [];
        for (let i = 0; i < COLD_FETCHES; i++) {
          const r = await curlSpeed(url);
          if (r.xcache !== "HIT") break;
          expect(r.status === 200 && r.bytes === nar.bytes, `${name}: cached ${nar.mib} MiB NAR is whole (${r.status}, ${r.bytes} bytes)`);
          cached.push(r.mbps);
        }
        row.workers[name] = {
          direct_mbps: median(direct),
          cold_mbps: median(cold),
          direct_runs_mbps: direct,
          cold_runs_mbps: cold,
          cached_runs_mbps: cached,
          cached_mbps: cached.length ? median(cached) : null,
          idle_rss_mib: idleKiB / 1024,
          peak_rss_mib: worker.hwmKiB() / 1024,
          workerd_processes: worker.pids.length,
        };
        const w = row.workers[name];
        log(`nar ${nar.mib} MiB ${name}: direct ${w.direct_mbps.toFixed(0)} MB/s, cold ${w.cold_mbps.toFixed(0)} MB/s, cached ${w.cached_mbps?.toFixed(0) ?? "-"} MB/s, peak ${w.peak_rss_mib.toFixed(0)} MiB`);
      } finally {
        await worker.stop();
      }
    }
    rows.push(row);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Big NARs in segments (the Rust Worker only: the JavaScript twin does not segment).

/**
 * A NAR of `mib` MiB under `count` keys (hard links), with the ETag sidecar s3s-fs keeps for
 * an object uploaded through S3 (else it hashes the whole file on every ranged GET).
 */
function seedBig(dir, mib, count) {
  const bucket = path.join(dir, BUCKET);
  const keys = Array.from({ length: count }, () => `nar/${nixHash(52)}.nar`);
  writeRandomFile(path.join(bucket, keys[0]), mib);
  const md5 = createHash("md5");
  const fd = fs.openSync(path.join(bucket, keys[0]), "r");
  const buf = Buffer.alloc(1 << 20);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) md5.update(buf.subarray(0, n));
  fs.closeSync(fd);
  const etag = md5.digest("hex");
  const b64 = (s) => Buffer.from(s).toString("base64url");
  for (const [i, key] of keys.entries()) {
    if (i > 0) fs.linkSync(path.join(bucket, keys[0]), path.join(bucket, key));
    fs.writeFileSync(path.join(dir, `.bucket-${b64(BUCKET)}.object-${b64(key)}.internal.json`), JSON.stringify({ e_tag: etag }));
  }
  return { mib, bytes: mib * 1024 * 1024, keys };
}

/** A TCP proxy in front of the origin that counts the bytes the origin sends. */
async function countingProxy(upstreamPort) {
  const counter = { bytes: 0, connections: 0 };
  const server = net.createServer((client) => {
    counter.connections++;
    const upstream = net.connect(upstreamPort, "127.0.0.1");
    upstream.on("data", (d) => {
      counter.bytes += d.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: server.address().port, counter, close: () => server.close() };
}

/** Waits until the Worker's log says `count` segments of `key` are stored. */
async function waitForSegments(worker, key, count, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const stored = worker.logText().split("\n").filter((l) => l.includes("stored segment") && l.includes(key)).length;
    if (stored >= count) return true;
    await sleep(200);
  }
  return false;
}

/** curl with a rate limit and a Range, sampling workerd's resident memory meanwhile. */
async function curlSampled(url, worker, { rate, range } = {}) {
  const args = ["-sS", "-o", "/dev/null", "-w", "CURL %{http_code} %{size_download} %{time_total} %{time_starttransfer}"];
  if (rate) args.push("--limit-rate", rate);
  if (range) args.push("-H", `Range: ${range}`);
  args.push(url);
  let peakKiB = worker.rssKiB();
  const timer = setInterval(() => {
    peakKiB = Math.max(peakKiB, worker.rssKiB());
  }, 100);
  try {
    const out = await run(...pinnedLoad("curl", args), { seconds: 900 });
    const m = /CURL (\d+) (\d+) ([\d.]+) ([\d.]+)/.exec(out);
    if (!m) throw new Error(`curl printed no summary for ${url}`);
    return { status: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]), ttfb_ms: Number(m[4]) * 1000, mbps: Number(m[2]) / Number(m[3]) / 1e6, peak_rss_mib: peakKiB / 1024 };
  } finally {
    clearInterval(timer);
  }
}

async function segmentedFigures(creds) {
  const dir = path.join(scratch, "s3-big");
  fs.mkdirSync(path.join(dir, BUCKET, "nar"), { recursive: true });
  const rounds = settings.segmentRounds;
  const big = seedBig(dir, settings.bigMiB, rounds + 2);
  const slow = seedBig(dir, settings.slowMiB, 2);
  const port = await freePort();
  const child = start(settings.s3sFs, ["--host", "127.0.0.1", "--port", String(port), `--access-key=${creds.accessKeyId}`, `--secret-key=${creds.secretAccessKey}`, dir], path.join(scratch, "s3s-fs-big.log"), { ...process.env, RUST_LOG: "warn" });
  const proxy = { close() {} };
  try {
    await waitForPort(port, child, 20);
    if (settings.pin) await run("/usr/bin/taskset", ["-a", "-p", "-c", LOAD_CPUS, String(child.pid)], { seconds: 10 });
    Object.assign(proxy, await countingProxy(port));
    const origin = { endpoint: `http://127.0.0.1:${proxy.port}` };
    const segmentBytes = settings.segmentMiB * 1024 * 1024;
    const segments = Math.ceil(big.bytes / segmentBytes);
    const result = { nar_mib: big.mib, segment_mib: settings.segmentMiB, segments };

    // 1. A 1 GiB NAR, cold (each key once, taking turns with a direct fetch) and warm. Each
    // cold read gets an edge of its own (a new Worker with an empty cache folder; the last
    // one's is removed first), so the local cache never holds more than one big NAR: this VM
    // writes to memory it has not touched before at a seventh of the speed (see "fresh memory"
    // in BENCHMARKS.md), and a cache folder growing by 1 GiB a read would measure that.
    const edge = () => startWorker("rust", null, origin, creds, { SEGMENT_BYTES: String(segmentBytes) });
    let worker = null;
    try {
      const direct = [];
      const cold = [];
      const idle = [];
      const coldPeaks = [];
      for (const key of big.keys.slice(0, rounds)) {
        if (worker) {
          await worker.stop();
          worker = null;
        }
        worker = await edge();
        idle.push(worker.rssKiB() / 1024);
        // Through the same counting proxy as the Worker's fetches: both paths pay for it.
        const d = await curlSpeed(`${origin.endpoint}/${BUCKET}/${key}`, { signed: true, creds });
        expect(d.status === 200 && d.bytes === big.bytes, `direct fetch of the ${big.mib} MiB NAR is whole (${d.status}, ${d.bytes})`);
        direct.push(d.mbps);
        const c = await curlSpeed(`${worker.url}/${key}`, { expectXCache: "MISS" });
        expect(c.status === 200 && c.bytes === big.bytes, `cold ${big.mib} MiB NAR is whole (${c.status}, ${c.bytes})`);
        cold.push(c.mbps);
        expect(await waitForSegments(worker, key, segments, 300), `all ${segments} segments of ${key} stored`);
        coldPeaks.push(worker.hwmKiB() / 1024);
      }
      const warmKey = big.keys[rounds - 1];
      const before = proxy.counter.bytes;
      const warm = [];
      for (let i = 0; i < COLD_FETCHES; i++) {
        const r = await curlSpeed(`${worker.url}/${warmKey}`, { expectXCache: "HIT" });
        expect(r.status === 200 && r.bytes === big.bytes, `warm ${big.mib} MiB NAR is whole`);
        warm.push(r.mbps);
      }
      expect(proxy.counter.bytes === before, "warm reads reached the origin");
      Object.assign(result, {
        direct_mbps: median(direct),
        cold_mbps: median(cold),
        warm_mbps: median(warm),
        direct_runs_mbps: direct,
        cold_runs_mbps: cold,
        warm_runs_mbps: warm,
        idle_rss_mib: Math.max(...idle),
        cold_peak_rss_mib: Math.max(...coldPeaks),
        peak_rss_mib: worker.hwmKiB() / 1024,
      });

      // 2. A 1 MiB Range of a cold NAR: bytes from the origin, time to first byte. Centred in
      // the middle segment it needs that one segment; centred on the middle byte it straddles
      // the boundary there (1 GiB is a whole number of segments) and needs the two around it.
      const middle = Math.floor(segments / 2);
      const ranges = [
        ["inside", big.keys[rounds], middle * segmentBytes + segmentBytes / 2 - 512 * 1024, 1],
        ["across", big.keys[rounds + 1], Math.floor(big.bytes / 2) - 512 * 1024, 2],
      ];
      for (const [label, key, first, count] of ranges) {
        const sent = proxy.counter.bytes;
        const r = await curlSampled(`${worker.url}/${key}`, worker, { range: `bytes=${first}-${first + (1 << 20) - 1}` });
        expect(r.status === 206 && r.bytes === 1 << 20, `the cold Range is a 206 of 1 MiB (${r.status}, ${r.bytes})`);
        // The segments are stored in the background: count once they are.
        expect(await waitForSegments(worker, key, count, 60), `the ${count} segment(s) of the ${label} Range stored`);
        result[`range_${label}`] = { first, segments: count, origin_bytes: proxy.counter.bytes - sent, ttfb_ms: r.ttfb_ms, total_ms: r.seconds * 1000 };
      }
    } finally {
      await worker?.stop();
    }

    // 2b. The same cold reads with nothing stored (the Cache API failing): what the segmented
    // read costs without the local Cache API's store, which runs in the same workerd.
    const nostore = await startWorker("rust-nostore", null, origin, creds, { SEGMENT_BYTES: String(segmentBytes) });
    try {
      const direct = [];
      const cold = [];
      let firstPeak = null;
      for (let i = 0; i < rounds; i++) {
        const d = await curlSpeed(`${origin.endpoint}/${BUCKET}/${big.keys[0]}`, { signed: true, creds });
        expect(d.status === 200 && d.bytes === big.bytes, "direct fetch of the big NAR is whole");
        direct.push(d.mbps);
        const c = await curlSpeed(`${nostore.url}/${big.keys[0]}`, { expectXCache: "MISS" });
        expect(c.status === 200 && c.bytes === big.bytes, `cold ${big.mib} MiB NAR without a store is whole (${c.status}, ${c.bytes})`);
        cold.push(c.mbps);
        firstPeak ??= nostore.hwmKiB() / 1024;
      }
      result.no_store = { direct_mbps: median(direct), cold_mbps: median(cold), direct_runs_mbps: direct, cold_runs_mbps: cold, first_cold_peak_rss_mib: firstPeak };
    } finally {
      await nostore.stop();
    }

    // 3. A client reading a cold NAR at 2 MB/s, against one at full speed: workerd's memory.
    for (const [label, key, rate] of [["full", slow.keys[0], null], ["2 MB/s", slow.keys[1], "2000000"]]) {
      const w = await startWorker("rust", null, origin, creds, { SEGMENT_BYTES: String(segmentBytes) });
      try {
        const idle = w.rssKiB() / 1024;
        const r = await curlSampled(`${w.url}/${key}`, w, { rate });
        expect(r.status === 200 && r.bytes === slow.bytes, `${label}: the ${slow.mib} MiB NAR is whole (${r.status}, ${r.bytes})`);
        result[label === "full" ? "full_speed" : "slow_client"] = { nar_mib: slow.mib, mbps: r.mbps, idle_rss_mib: idle, peak_rss_mib: w.hwmKiB() / 1024 };
        log(`segments: ${slow.mib} MiB cold at ${label}: ${r.mbps.toFixed(1)} MB/s, workerd idle ${idle.toFixed(0)} MiB, peak ${(w.hwmKiB() / 1024).toFixed(0)} MiB`);
      } finally {
        await w.stop();
      }
    }
    log(`segments: ${big.mib} MiB NAR: direct ${result.direct_mbps.toFixed(0)} MB/s, cold ${result.cold_mbps.toFixed(0)}, warm ${result.warm_mbps.toFixed(0)}; 1 MiB Range inside a segment: ${result.range_inside.origin_bytes} origin bytes, TTFB ${result.range_inside.ttfb_ms.toFixed(0)} ms`);
    return result;
  } finally {
    proxy.close();
    stop(child);
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

function fmt(n, digits = 0) {
  return n === null || n === undefined ? "-" : n.toFixed(digits);
}

function printReport(results) {
  const lines = [];
  const names = settings.workers;
  const out = (s = "") => lines.push(s);
  out(`## Requests per second (wrk -t${settings.threads} -c${settings.connections} -d${settings.duration}s, warm-up ${settings.warmup}s, median of ${settings.rounds} round(s))`);
  out();
  const both = names.includes("rust") && names.includes("js");
  out(`| path | ${names.map((n) => `${n} req/s`).join(" | ")} |${both ? " rust / js | rust / js by round: median (range) |" : ""} ${names.map((n) => `${n} p50 / p99 ms | ${n} workerd CPU µs/req`).join(" | ")} |`);
  out(`|---|${names.map(() => "---:").join("|")}|${both ? "---:|---:|" : ""}${names.map(() => "---:|---:").join("|")}|`);
  for (const row of results.rps ?? []) {
    const rps = names.map((n) => fmt(row.workers[n]?.rps));
    const paired = row.paired ? `${fmt(row.paired.median, 2)} (${fmt(row.paired.min, 2)}–${fmt(row.paired.max, 2)})` : "-";
    const ratio = both ? ` ${fmt(row.workers.rust.rps / row.workers.js.rps, 2)} | ${paired} |` : "";
    const detail = names.map((n) => {
      const w = row.workers[n];
      return `${fmt(w?.p50_ms, 1)} / ${fmt(w?.p99_ms, 1)} | ${fmt(w?.workerd_cpu_us)}`;
    });
    out(`| ${row.label} | ${rps.join(" | ")} |${ratio} ${detail.join(" | ")} |`);
  }
  for (const row of results.rps ?? []) {
    for (const n of names) {
      const w = row.workers[n];
      if (w?.socket_errors) out(`\n${n}, ${row.label}: ${w.socket_errors} socket errors or timeouts in ${w.requests} requests`);
    }
  }
  const infoRow = (results.rps ?? []).find((row) => row.id === CACHE_INFO_TARGET.id);
  if (FLOORS.some((n) => infoRow?.workers[n])) {
    out();
    out("### The floor: the smallest Worker in each language (bench/floor), /nix-cache-info, in the same rounds");
    out();
    out("| Worker | req/s | p50 / p99 ms | workerd CPU µs/req | the full Worker's extra CPU µs/req |");
    out("|---|---:|---:|---:|---:|");
    for (const n of FLOORS) {
      const w = infoRow.workers[n];
      const full = infoRow.workers[n.replace("-floor", "")];
      out(`| ${n} | ${fmt(w?.rps)} | ${fmt(w?.p50_ms, 1)} / ${fmt(w?.p99_ms, 1)} | ${fmt(w?.workerd_cpu_us)} | ${full && w ? fmt(full.workerd_cpu_us - w.workerd_cpu_us) : "-"} |`);
    }
  }
  if (results.headToHead?.length) {
    const h = results.headToHead;
    out();
    out(`## Head to head: both Workers at once, on the same CPU (wrk -t${Math.max(1, Math.floor(settings.threads / 2))} -c${Math.max(1, Math.floor(settings.connections / 2))} -d${settings.duration}s each, median of ${settings.h2hRounds} round(s))`);
    out();
    out("| path | rust req/s | js req/s | rust / js req/s: median (range) | rust workerd CPU µs/req | js workerd CPU µs/req | js / rust CPU per request: median (range) |");
    out("|---|---:|---:|---:|---:|---:|---:|");
    const range = (r) => `${fmt(r.median, 2)} (${fmt(r.min, 2)}–${fmt(r.max, 2)})`;
    for (const row of h) {
      out(`| ${row.label} | ${fmt(row.rust.rps)} | ${fmt(row.js.rps)} | ${range(row.rps_ratio)} | ${fmt(row.rust.workerd_cpu_us)} | ${fmt(row.js.workerd_cpu_us)} | ${range(row.cpu_ratio)} |`);
    }
  }
  if (results.nar?.length) {
  out();
  out("## NAR streaming (curl to /dev/null; MB = 10^6 bytes; peak = workerd VmHWM)");
  out();
  out("| NAR | Worker | direct MB/s | cold MB/s | cold / direct | cached MB/s | idle MiB | peak MiB |");
  out("|---|---|---:|---:|---:|---:|---:|---:|");
  for (const row of results.nar ?? []) {
    for (const n of names) {
      const w = row.workers[n];
      if (!w) continue;
      out(`| ${row.mib} MiB | ${n} | ${fmt(w.direct_mbps)} | ${fmt(w.cold_mbps)} | ${fmt(w.cold_mbps / w.direct_mbps, 2)} | ${fmt(w.cached_mbps)} | ${fmt(w.idle_rss_mib)} | ${fmt(w.peak_rss_mib)} |`);
    }
  }
  }
  const seg = results.segments;
  if (seg) {
    out();
    out(`## Big NAR in segments (the Rust Worker; SEGMENT_BYTES = ${seg.segment_mib} MiB; curl to /dev/null; MB = 10^6 bytes)`);
    out();
    out("| figure | result |");
    out("|---|---:|");
    out(`| ${seg.nar_mib} MiB NAR straight from s3s-fs (through the counting proxy too), MB/s (runs) | ${fmt(seg.direct_mbps)} (${seg.direct_runs_mbps.map((x) => fmt(x)).join(", ")}) |`);
    // Direct and cold reads take turns, so each pair saw the same machine: the median and range
    // of their ratios, as well as the ratio of the medians.
    const paired = (cold, direct) => {
      const ratios = cold.map((c, i) => c / direct[i]);
      return `${fmt(median(ratios), 2)} (${fmt(Math.min(...ratios), 2)}–${fmt(Math.max(...ratios), 2)})`;
    };
    out(`| through the Worker, cold (${seg.segments} ranged GETs), MB/s (runs) | ${fmt(seg.cold_mbps)} (${seg.cold_runs_mbps.map((x) => fmt(x)).join(", ")}): ${fmt(seg.cold_mbps / seg.direct_mbps, 2)} of direct; by pair ${paired(seg.cold_runs_mbps, seg.direct_runs_mbps)} |`);
    out(`| through the Worker, warm (from the edge's segments), MB/s (runs) | ${fmt(seg.warm_mbps)} (${seg.warm_runs_mbps.map((x) => fmt(x)).join(", ")}): ${fmt(seg.warm_mbps / seg.direct_mbps, 2)} of direct |`);
    out(`| workerd memory: idle / peak after a cold read (the highest of ${seg.cold_runs_mbps.length} edges) / peak of the last edge after its cold and ${seg.warm_runs_mbps.length} warm reads, MiB | ${fmt(seg.idle_rss_mib)} / ${fmt(seg.cold_peak_rss_mib)} / ${fmt(seg.peak_rss_mib)} |`);
    if (seg.no_store) {
      const n = seg.no_store;
      out(`| cold again with the Cache API failing (nothing stored), MB/s (runs) | ${fmt(n.cold_mbps)} (${n.cold_runs_mbps.map((x) => fmt(x)).join(", ")}): ${fmt(n.cold_mbps / n.direct_mbps, 2)} of direct (${n.direct_runs_mbps.map((x) => fmt(x)).join(", ")}); by pair ${paired(n.cold_runs_mbps, n.direct_runs_mbps)}; workerd peak after the first read ${fmt(n.first_cold_peak_rss_mib)} MiB |`);
    }
    for (const [label, r] of [["centred in the middle segment", seg.range_inside], ["centred on the middle byte (across a boundary)", seg.range_across]]) {
      if (r) out(`| 1 MiB Range ${label} of a cold ${seg.nar_mib} MiB NAR: bytes from the origin; TTFB / whole, ms | ${r.origin_bytes} (${fmt(r.origin_bytes / (seg.segment_mib * 1024 * 1024), 3)} segments; needs ${r.segments}); ${fmt(r.ttfb_ms)} / ${fmt(r.total_ms)} |`);
    }
    for (const [label, r] of [["full speed", seg.full_speed], ["2 MB/s", seg.slow_client]]) {
      if (r) out(`| ${r.nar_mib} MiB NAR cold, client at ${label} (${fmt(r.mbps, 1)} MB/s): workerd idle / peak MiB | ${fmt(r.idle_rss_mib)} / ${fmt(r.peak_rss_mib)} |`);
    }
  }
  out();
  out(`Load average (1, 5, 15 min) before: ${results.loadavgBefore.map((x) => x.toFixed(2)).join(", ")}; after: ${results.loadavgAfter.map((x) => x.toFixed(2)).join(", ")}`);
  if (results.jsBundleGzipBytes) {
    out();
    out(`JS twin bundle (esbuild --minify, with aws4fetch): ${results.jsBundleBytes} bytes, gzip -9 ${results.jsBundleGzipBytes} bytes`);
    out();
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function main() {
  // The driver runs the byte-counting proxy both paths of the segments figures go through.
  if (settings.pin) await run("/usr/bin/taskset", ["-a", "-p", "-c", LOAD_CPUS, String(process.pid)], { seconds: 10 });
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-bench-"));
  fs.chmodSync(scratch, 0o700);
  const shm = "/dev/shm";
  cacheRoot = fs.mkdtempSync(path.join(fs.existsSync(shm) ? shm : scratch, "nix-cache-bench-edge-"));
  fs.chmodSync(cacheRoot, 0o700);
  const creds = {
    accessKeyId: `BENCH${randomBytes(8).toString("hex").toUpperCase()}`,
    secretAccessKey: randomBytes(24).toString("hex"),
  };
  const results = {
    settings: { ...settings, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
    startedAt: new Date().toISOString(),
    loadavgBefore: os.loadavg(),
  };

  log(`seeding the bucket (${settings.narMiB.join(", ")} MiB NARs) and starting s3s-fs`);
  const origin = await startOrigin(creds);
  const jsBundle = settings.workers.includes("js") ? await bundleJsWorker() : null;
  if (jsBundle) {
    const bytes = fs.readFileSync(jsBundle);
    results.jsBundleBytes = bytes.length;
    results.jsBundleGzipBytes = gzipSync(bytes, { level: 9 }).length;
  }

  const workers = [];
  const floors = [];
  try {
    for (const name of settings.workers) {
      const worker = await startWorker(name, jsBundle, origin, creds);
      workers.push(worker);
      await checkWorker(worker, origin);
      log(`${name} Worker on ${worker.url} (workerd pid ${worker.pids.join(", ")}) passed its checks`);
    }
    for (const name of settings.floorDir ? FLOORS : []) {
      const worker = await startWorker(name, jsBundle, origin, creds);
      floors.push(worker);
      const info = await probe(`${worker.url}/nix-cache-info`);
      expect(info.status === 200 && info.body.includes("StoreDir: /nix/store"), `${name}: /nix-cache-info is 200 (${info.status})`);
    }
    if (settings.sections.includes("rps")) {
      results.rps = await requestsPerSecond(workers, floors, origin);
      results.headToHead = await headToHead(workers, origin);
    }
  } finally {
    for (const worker of [...workers, ...floors]) await worker.stop();
  }
  if (settings.sections.includes("nar")) results.nar = await narStreaming(origin, creds, jsBundle);
  if (settings.sections.includes("segments")) results.segments = await segmentedFigures(creds);
  results.finishedAt = new Date().toISOString();
  results.loadavgAfter = os.loadavg();

  // The secret is never part of the results; make sure of it before anything is written.
  const json = JSON.stringify(results, null, 2);
  expect(!json.includes(creds.secretAccessKey), "results do not contain the secret");
  printReport(results);
  if (settings.json) fs.writeFileSync(settings.json, `${json}\n`, { mode: 0o644 });
}

try {
  await main();
} catch (err) {
  log(`failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
