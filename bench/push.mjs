// The upload benchmark: pushing through the Worker against pushing straight to s3s-fs, side by
// side in one run, on 127.0.0.1. scripts/bench-push.sh is the way in (it builds the Worker).
//
//   nar      MB/s of a PUT of a fresh random NAR of each size in BENCH_PUSH_MIB (default 64,256)
//            through the Worker (Bearer write token; the Worker hashes the stream and signs its
//            PUT to s3s-fs) and straight to s3s-fs (curl --aws-sigv4 with the body's SHA-256),
//            alternating, BENCH_PUSH_ROUNDS times (default 3); with workerd's resident memory
//            before and its peak (VmHWM) after each upload through the Worker.
//   narinfo  narinfo PUTs per second (parse, one HEAD of its NAR at the origin, ed25519 sign,
//            PUT) against uncached narinfo GETs per second (a fresh random hash each time: an
//            edge miss, a signed GET, a 404 from the origin), each for BENCH_PUSH_SECONDS
//            (default 5) with BENCH_PUSH_CONNECTIONS (default 8) keep-alive connections from
//            this process, alternating, BENCH_PUSH_ROUNDS times.
//
// The Worker is build/index.js (scripts/build-worker.sh). s3s-fs keys, TOKEN_SECRET and the
// signing key are random per run and never printed; curl gets its keys and token on stdin.
// Every process started is stopped by pid, also on failure or a signal.

import { spawn } from "node:child_process";
import { createHash, createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const intEnv = (name, fallback) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a whole number above 0`);
  return v;
};
const LOAD_CPUS = `0-${Math.max(0, os.cpus().length - 2)}`;
const settings = {
  mib: (process.env.BENCH_PUSH_MIB ?? "64,256").split(",").filter(Boolean).map(Number),
  rounds: intEnv("BENCH_PUSH_ROUNDS", 3),
  seconds: intEnv("BENCH_PUSH_SECONDS", 5),
  connections: intEnv("BENCH_PUSH_CONNECTIONS", 8),
  // As bench/run.mjs: workerd alone on the last CPU, s3s-fs and curl on the others, so the
  // Worker's work does not take CPU from the origin it is compared with.
  pin: (process.env.BENCH_PIN ?? "1") !== "0" && os.cpus().length >= 2 && fs.existsSync("/usr/bin/taskset"),
  s3sFs: process.env.S3S_FS ?? path.join(os.homedir(), ".cargo/bin/s3s-fs"),
  workerDir: process.env.BENCH_WORKER_DIR ?? path.join(root, "build"),
};
const BUCKET = "nix-cache-bench";
const REGION = "bench-1";
const NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";

const log = (line) => process.stderr.write(`bench-push: ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const children = new Set();
let mf = null;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-bench-push-"));

async function cleanup() {
  if (mf) await mf.dispose().catch(() => {});
  for (const child of children) {
    if (child.exitCode === null) process.kill(child.pid, "SIGTERM");
  }
  fs.rmSync(scratch, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => cleanup().finally(() => process.exit(130)));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.on("connect", () => (socket.destroy(), resolve(true)));
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${seconds} s`);
}

function run(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => {
      children.delete(child);
      code === 0 ? resolve(out) : reject(new Error(`${cmd} failed (${code}): ${err.slice(0, 300)}`));
    });
    child.stdin.end(input ?? "");
  });
}

/** Nix base32 of bytes (Nix's order: the last character holds the lowest bits). */
function nixBase32(bytes) {
  const len = Math.floor((bytes.length * 8 - 1) / 5) + 1;
  let s = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = (bytes[i] >> j) | (i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0);
    s += NIX_BASE32[c & 0x1f];
  }
  return s;
}

function randomNar(mib) {
  const file = path.join(scratch, `nar-${randomBytes(4).toString("hex")}`);
  const fd = fs.openSync(file, "w");
  const hash = createHash("sha256");
  for (let i = 0; i < mib; i++) {
    const chunk = randomBytes(1 << 20);
    hash.update(chunk);
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
  const digest = hash.digest();
  return { file, hex: digest.toString("hex"), key: `nar/${nixBase32(digest)}.nar`, bytes: mib << 20 };
}

function jwt(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const signed = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

/** A Nix secret key, `name:base64(seed ‖ public)`, and its public key. */
function nixKeyPair(name) {
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d, "base64url");
  const pub = Buffer.from(jwk.x, "base64url");
  return { secret: `${name}:${Buffer.concat([seed, pub]).toString("base64")}`, public: `${name}:${pub.toString("base64")}` };
}

function statusKiB(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

function workerdPids() {
  const pids = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && fs.readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "workerd") pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** curl's upload of `file` to `url`: MB/s from its own timing. `config` goes on stdin. */
async function curlPut(url, file, config, extraArgs = []) {
  const args = ["-sS", "-K", "-", "-o", "/dev/null", "-w", "CURL %{http_code} %{size_upload} %{time_total}\n", "-T", file, ...extraArgs, url];
  const out = settings.pin ? await run("/usr/bin/taskset", ["-c", LOAD_CPUS, "curl", ...args], config) : await run("curl", args, config);
  const m = /CURL (\d+) (\d+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`curl printed no summary for ${url}`);
  return { status: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]), mbps: Number(m[2]) / Number(m[3]) / 1e6 };
}

/** Requests per second of `request()` from `connections` keep-alive loops over `seconds`. */
async function rate(port, seconds, connections, request) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  let failed = 0;
  const one = () =>
    new Promise((resolve) => {
      const { method, path: p, headers, body, want } = request();
      const req = http.request({ host: "127.0.0.1", port, method, path: p, headers, agent }, (res) => {
        res.resume();
        res.on("end", () => {
          res.statusCode === want ? done++ : failed++;
          resolve();
        });
      });
      req.on("error", () => (failed++, resolve()));
      req.end(body);
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  agent.destroy();
  if (failed > 0) throw new Error(`${failed} requests failed (of ${done + failed})`);
  return done / ((Date.now() - started) / 1000);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  // The origin: s3s-fs over an empty bucket.
  const accessKeyId = `AK${randomBytes(8).toString("hex").toUpperCase()}`;
  const secretAccessKey = randomBytes(20).toString("hex");
  const s3Root = path.join(scratch, "s3");
  fs.mkdirSync(path.join(s3Root, BUCKET), { recursive: true });
  const s3Port = await freePort();
  const s3 = spawn(settings.s3sFs, ["--host", "127.0.0.1", "--port", String(s3Port), `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`, s3Root], {
    stdio: "ignore",
    env: { ...process.env, RUST_LOG: "warn" },
  });
  children.add(s3);
  await waitForPort(s3Port, 20);
  if (settings.pin) await run("/usr/bin/taskset", ["-a", "-p", "-c", LOAD_CPUS, String(s3.pid)]);
  const origin = `http://127.0.0.1:${s3Port}`;

  // The Worker, taking uploads up to the largest NAR measured.
  const tokenSecret = randomBytes(32).toString("hex");
  const key = nixKeyPair("bench-1");
  const nodeRequire = createRequire(path.join(root, "package.json"));
  const { Miniflare, Log, LogLevel } = nodeRequire("miniflare");
  const compat = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(path.join(root, "wrangler.toml"), "utf8"))[1];
  const before = new Set(workerdPids());
  mf = new Miniflare({
    scriptPath: path.join(settings.workerDir, "index.js"),
    modules: true,
    modulesRoot: settings.workerDir,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: compat,
    host: "127.0.0.1",
    port: 0,
    cf: false,
    log: new Log(LogLevel.WARN),
    // The Worker logs every store: into a file, not into the report.
    handleRuntimeStdio(stdout, stderr) {
      const logFile = fs.createWriteStream(path.join(scratch, "workerd.log"), { flags: "a", mode: 0o600 });
      stdout.pipe(logFile, { end: false });
      stderr.pipe(logFile, { end: false });
    },
    bindings: {
      SPACES_ENDPOINT: origin,
      SPACES_BUCKET: BUCKET,
      SPACES_REGION: REGION,
      SPACES_ACCESS_KEY_ID: accessKeyId,
      SPACES_SECRET_ACCESS_KEY: secretAccessKey,
      TOKEN_SECRET: tokenSecret,
      SIGNING_KEY: key.secret,
      MAX_UPLOAD_BYTES: String(Math.max(...settings.mib) * 1048576 + 1),
    },
  });
  const workerUrl = (await mf.ready).toString().replace(/\/$/, "");
  const workerPort = Number(new URL(workerUrl).port);
  const pids = workerdPids().filter((p) => !before.has(p));
  if (settings.pin) {
    for (const pid of pids) await run("/usr/bin/taskset", ["-a", "-p", "-c", String(os.cpus().length - 1), String(pid)]);
  }
  const now = Math.floor(Date.now() / 1000);
  const token = jwt(tokenSecret, { sub: "bench", scope: "write", exp: now + 3600, iat: now });
  const auth = `header = "Authorization: Bearer ${token}"\n`;
  const s3Config = `user = "${accessKeyId}:${secretAccessKey}"\n`;

  const report = { machine: `${os.cpus().length} CPUs, ${os.cpus()[0]?.model ?? "?"}${settings.pin ? `; workerd pinned to CPU ${os.cpus().length - 1}, s3s-fs and curl to CPUs ${LOAD_CPUS}` : ""}`, nar: [], narinfo: null };

  for (const mib of settings.mib) {
    const rows = [];
    for (let round = 0; round < settings.rounds; round++) {
      const direct = randomNar(mib);
      const d = await curlPut(`${origin}/${BUCKET}/${direct.key}`, direct.file, s3Config, [
        "--aws-sigv4",
        `aws:amz:${REGION}:s3`,
        "-H",
        `x-amz-content-sha256: ${direct.hex}`,
      ]);
      if (d.status !== 200) throw new Error(`direct PUT answered ${d.status}`);
      const through = randomNar(mib);
      const rssBefore = pids.reduce((s, p) => s + statusKiB(p, "VmRSS"), 0);
      // workerd sends no `100 Continue`: without this header curl would wait a second for one.
      const w = await curlPut(`${workerUrl}/${through.key}`, through.file, auth, ["-H", "Expect:"]);
      if (w.status !== 200) throw new Error(`PUT through the Worker answered ${w.status}`);
      const hwm = pids.reduce((s, p) => s + statusKiB(p, "VmHWM"), 0);
      const stored = fs.statSync(path.join(s3Root, BUCKET, through.key)).size;
      if (stored !== through.bytes) throw new Error(`the bucket holds ${stored} bytes of ${through.bytes}`);
      // The same bytes as a listing: the Worker pipes it to the origin without looking at it.
      const lsHash = Array.from(randomBytes(32), (b) => NIX_BASE32[b % 32]).join("");
      const piped = await curlPut(`${workerUrl}/${lsHash}.ls`, through.file, auth, ["-H", "Expect:"]);
      if (piped.status !== 200) throw new Error(`listing PUT through the Worker answered ${piped.status}`);
      fs.rmSync(direct.file);
      fs.rmSync(through.file);
      rows.push({ direct: d.mbps, worker: w.mbps, piped: piped.mbps, ratio: w.mbps / d.mbps, rss_before_mib: rssBefore / 1024, hwm_mib: hwm / 1024 });
      log(`${mib} MiB round ${round + 1}: worker ${w.mbps.toFixed(1)} MB/s, piped listing ${piped.mbps.toFixed(1)} MB/s, direct ${d.mbps.toFixed(1)} MB/s, workerd peak ${(hwm / 1024).toFixed(0)} MiB`);
    }
    report.nar.push({ mib, rounds: rows, ratio_median: median(rows.map((r) => r.ratio)) });
  }

  // Narinfo PUTs: a small NAR in the bucket first, and a narinfo that names it.
  const small = randomNar(1);
  const put = await curlPut(`${origin}/${BUCKET}/${small.key}`, small.file, s3Config, ["--aws-sigv4", `aws:amz:${REGION}:s3`, "-H", `x-amz-content-sha256: ${small.hex}`]);
  if (put.status !== 200) throw new Error(`seeding the small NAR answered ${put.status}`);
  const pathHash = Array.from(randomBytes(32), (b) => NIX_BASE32[b % 32]).join("");
  const fileHash = small.key.slice(4, 56);
  const narinfo = [
    `StorePath: /nix/store/${pathHash}-bench-0.1`,
    `URL: ${small.key}`,
    "Compression: none",
    `FileHash: sha256:${fileHash}`,
    `FileSize: ${small.bytes}`,
    `NarHash: sha256:${fileHash}`,
    `NarSize: ${small.bytes}`,
    "References: ",
    "",
  ].join("\n");
  const putNarinfo = () => ({
    method: "PUT",
    path: `/${pathHash}.narinfo`,
    headers: { authorization: `Bearer ${token}`, "content-length": Buffer.byteLength(narinfo), "content-type": "text/x-nix-narinfo" },
    body: narinfo,
    want: 200,
  });
  const getUncached = () => ({
    method: "GET",
    path: `/${Array.from(randomBytes(32), (b) => NIX_BASE32[b % 32]).join("")}.narinfo`,
    headers: {},
    want: 404,
  });
  await rate(workerPort, 1, settings.connections, putNarinfo);
  await rate(workerPort, 1, settings.connections, getUncached);
  const signed = fs.readFileSync(path.join(s3Root, BUCKET, `${pathHash}.narinfo`), "utf8");
  if (!signed.includes("Sig: bench-1:")) throw new Error("the pushed narinfo was not signed");
  const rounds = [];
  for (let round = 0; round < settings.rounds; round++) {
    const puts = await rate(workerPort, settings.seconds, settings.connections, putNarinfo);
    const gets = await rate(workerPort, settings.seconds, settings.connections, getUncached);
    rounds.push({ put_per_s: puts, get_uncached_per_s: gets, ratio: puts / gets });
    log(`narinfo round ${round + 1}: ${puts.toFixed(0)} PUT/s, ${gets.toFixed(0)} uncached GET/s`);
  }
  report.narinfo = { rounds, ratio_median: median(rounds.map((r) => r.ratio)) };

  console.log("## Uploads through the Worker (bench/push.mjs)\n");
  console.log(`${report.machine}; ${settings.rounds} rounds, alternating; medians\n`);
  console.log("| NAR | through the Worker MB/s | straight to s3s-fs MB/s | ratio (median of rounds, range) | a listing of the same size through the Worker MB/s | workerd RSS before → peak (VmHWM), each round |");
  console.log("|---|---:|---:|---:|---:|---|");
  for (const n of report.nar) {
    const w = median(n.rounds.map((r) => r.worker));
    const d = median(n.rounds.map((r) => r.direct));
    const p = median(n.rounds.map((r) => r.piped));
    const ratios = n.rounds.map((r) => r.ratio);
    const mem = n.rounds.map((r) => `${r.rss_before_mib.toFixed(0)} → ${r.hwm_mib.toFixed(0)}`).join(", ");
    console.log(
      `| ${n.mib} MiB | ${w.toFixed(1)} | ${d.toFixed(1)} | ${n.ratio_median.toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) | ${p.toFixed(1)} | ${mem} MiB |`,
    );
  }
  const r = report.narinfo.rounds;
  console.log("\n| narinfo | PUT/s (parse, HEAD, sign, PUT) | uncached GET/s (signed GET, 404) | ratio (median of rounds) |");
  console.log("|---|---:|---:|---:|");
  console.log(
    `| ${settings.connections} connections, ${settings.seconds} s | ${median(r.map((x) => x.put_per_s)).toFixed(0)} | ${median(r.map((x) => x.get_uncached_per_s)).toFixed(0)} | ${report.narinfo.ratio_median.toFixed(2)} |`,
  );
  if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(report, null, 2));
}

main()
  .then(() => cleanup())
  .catch(async (err) => {
    log(err.stack ?? String(err));
    await cleanup();
    process.exit(1);
  });
