#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the Worker, then the whole workspace's
# tests (unit, property, SigV4 vectors, end to end with workerd + s3s-fs + the Nix client,
# provision against its fakes), then formatting and lints. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing what is missing"
bash scripts/install.sh

step "building the Worker (scripts/build-worker.sh)"
bash scripts/build-worker.sh

# The test build: the same Worker plus routes that panic on purpose, for the recovery test.
step "building the Worker's test build (--features panic-route)"
bash scripts/build-worker.sh --out-dir target/worker-panic-route -- --features panic-route

step "cargo test --workspace"
test_log="$(mktemp)"
trap 'rm -f "$test_log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log"
test_status=${PIPESTATUS[0]}
set -e
# One closing line for every test binary together: "tests: N passed, N failed".
summary() {
  awk '/^test result:/ {
         for (i = 1; i < NF; i++) {
           if ($(i + 1) ~ /^passed/) passed += $i
           if ($(i + 1) ~ /^failed/) failed += $i
         }
       }
       END { printf "tests: %d passed, %d failed\n", passed, failed }' "$test_log"
}
if [ "$test_status" -ne 0 ]; then
  step "tests failed"
  summary
  exit "$test_status"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy --target wasm32-unknown-unknown (the Workers glue)"
cargo clippy -p nix-spaces-cache --lib --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p nix-spaces-cache --lib --target wasm32-unknown-unknown --features panic-route -- -D warnings

step "all tests passed"
summary
