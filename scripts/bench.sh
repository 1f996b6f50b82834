#!/usr/bin/env bash
# Runs the benchmark and prints every figure:
#
#   1. the Worker's bundle as `wrangler deploy --dry-run` makes it: bytes and gzip -9 bytes of
#      the .wasm and the .js, each and in total (target: at most 200 KiB gzipped);
#   2. requests per second on 127.0.0.1 under workerd (Miniflare), the Rust Worker side by side
#      with its JavaScript twin (bench/js-worker, signing with aws4fetch): /nix-cache-info, a
#      cached narinfo, and a fresh random narinfo per request (the signing path); one Worker
#      at a time, then the two at once on the same CPU ("head to head");
#   3. NAR streaming in MB/s, straight from s3s-fs and through each Worker (cold and cached),
#      with the peak memory of the workerd process, for each NAR size.
#   4. a big NAR in segments (the Rust Worker, SEGMENT_BYTES = BENCH_SEGMENT_MIB): cold and
#      warm MB/s against direct, the origin bytes and time to first byte of a cold 1 MiB Range,
#      and workerd's memory while a client reads at 2 MB/s against full speed.
#
# Everything listens on 127.0.0.1 on free ports, and every process started is stopped by pid.
# Settings are environment variables, read by bench/run.mjs (BENCH_DURATION, BENCH_WARMUP,
# BENCH_FIRST_WARMUP, BENCH_THREADS, BENCH_CONNECTIONS, BENCH_ROUNDS, BENCH_H2H_ROUNDS,
# BENCH_PATHS, BENCH_PIN, BENCH_NAR_MIB, BENCH_WORKERS, BENCH_FLOOR, BENCH_SECTIONS, BENCH_BIG_MIB,
# BENCH_SEGMENT_MIB, BENCH_SLOW_MIB); BENCH_JSON names a file to
# keep the raw results in. BENCHMARKS.md has the figures and the command.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "bench: $*" >&2; }

bash scripts/install.sh
WRK="${WRK:-/usr/bin/wrk}"
if [ ! -x "$WRK" ]; then
  [ "$(id -u)" = 0 ] || { say "wrk is missing; apt-get install wrk"; exit 1; }
  say "apt-get install wrk"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
export WRK

work="$(mktemp -d "${TMPDIR:-/tmp}/nix-cache-bench-sh-XXXXXX")"
driver=""
finish() {
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

# 1. The deployable bundle, built offline by wrangler's build command (scripts/build-worker.sh).
say "npx wrangler deploy --dry-run --outdir <tmp>"
if ! WRANGLER_SEND_METRICS=false npx --no-install wrangler deploy --dry-run --outdir "$work/bundle" \
  >"$work/wrangler.log" 2>&1; then
  cat "$work/wrangler.log" >&2
  say "wrangler deploy --dry-run failed"
  exit 1
fi

echo "## Wasm bundle (npx wrangler deploy --dry-run --outdir DIR; gzip -9)"
echo
echo "| file | bytes | gzip -9 bytes |"
echo "|---|---:|---:|"
total=0
total_gz=0
shopt -s nullglob
files=("$work"/bundle/*.wasm "$work"/bundle/*.js "$work"/bundle/*.mjs)
[ ${#files[@]} -gt 0 ] || { say "wrangler produced no .wasm or .js in its outdir"; exit 1; }
for f in "${files[@]}"; do
  raw=$(stat -c %s "$f")
  gz=$(gzip -9 -c "$f" | wc -c)
  total=$((total + raw))
  total_gz=$((total_gz + gz))
  # The wasm file's name starts with a content hash; show the stable part.
  echo "| $(basename "$f" | sed 's/^[0-9a-f]\{40\}-//') | $raw | $gz |"
done
echo "| total | $total | $total_gz ($(awk -v b="$total_gz" 'BEGIN { printf "%.1f", b / 1024 }') KiB; target 200 KiB) |"
echo

# The floor: the smallest workers-rs Worker (bench/floor), built like the real one, beside the
# smallest JavaScript Worker. BENCH_FLOOR=0 leaves it out.
floor_dir=""
if [ "${BENCH_FLOOR:-1}" = 1 ]; then
  say "worker-build --release bench/floor"
  if ! (
    cd bench/floor
    WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}" \
      WASM_OPT_BIN="${WASM_OPT_BIN:-$OLDPWD/node_modules/binaryen/bin/wasm-opt}" \
      ESBUILD_BIN="${ESBUILD_BIN:-$OLDPWD/node_modules/esbuild/bin/esbuild}" \
      CARGO_TARGET_DIR="$OLDPWD/target/bench-floor" \
      "${WORKER_BUILD:-$HOME/.cargo/bin/worker-build}" --release
  ) >"$work/floor.log" 2>&1; then
    cat "$work/floor.log" >&2
    say "building bench/floor failed"
    exit 1
  fi
  floor_dir="$PWD/bench/floor/build"
fi

# 2 and 3. The driver: s3s-fs, the Workers under workerd, wrk and curl.
BENCH_RUST_DIR="$work/bundle" BENCH_FLOOR_DIR="$floor_dir" node bench/run.mjs &
driver=$!
wait "$driver"
