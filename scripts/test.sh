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

step "cargo test --workspace"
cargo test --workspace --no-fail-fast

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy --target wasm32-unknown-unknown (the Workers glue)"
cargo clippy -p nix-spaces-cache --lib --target wasm32-unknown-unknown -- -D warnings

step "all tests passed"
