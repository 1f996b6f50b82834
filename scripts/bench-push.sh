#!/usr/bin/env bash
# The upload benchmark (bench/push.mjs): a NAR pushed through the Worker against one pushed
# straight to s3s-fs, side by side in one run, with workerd's peak memory; narinfo PUTs per
# second against uncached narinfo GETs. Builds the Worker first. Settings (environment):
# BENCH_PUSH_MIB (default 64,256), BENCH_PUSH_ROUNDS (3), BENCH_PUSH_SECONDS (5),
# BENCH_PUSH_CONNECTIONS (8), BENCH_JSON (a file for the raw results). BENCHMARKS.md has the
# figures and the command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/build-worker.sh >&2
command -v curl >/dev/null || { echo "bench-push: curl is missing" >&2; exit 1; }
exec node bench/push.mjs
