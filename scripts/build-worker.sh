#!/usr/bin/env bash
# Builds the Worker into build/ with worker-build: build/index.js (the entry, re-exporting
# build/worker/shim.mjs) and build/worker/index.wasm.
#
# The entry module is src/edge/shim.js (worker-build's CUSTOM_SHIM): a plain module Worker that
# calls the Rust export directly; the comment at its top says why.
#
# worker-build would download wasm-bindgen, wasm-opt and esbuild; this uses the local ones
# instead: wasm-bindgen-cli from cargo (exactly the version Cargo.toml pins), wasm-opt from the
# npm package binaryen, esbuild from wrangler's own node_modules. scripts/install.sh installs
# all three. wrangler.toml runs this as its build command.
set -euo pipefail
cd "$(dirname "$0")/.."

export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/binaryen/bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/esbuild/bin/esbuild}"
WORKER_BUILD="${WORKER_BUILD:-$(command -v worker-build || echo "$HOME/.cargo/bin/worker-build")}"

missing=0
for tool in "$WORKER_BUILD" "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  if [ ! -x "$tool" ]; then
    echo "build-worker: $tool is missing; run scripts/install.sh" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1

pinned=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
have=$("$WASM_BINDGEN_BIN" --version | awk '{print $2}')
if [ "$pinned" != "$have" ]; then
  echo "build-worker: Cargo.toml pins wasm-bindgen $pinned but $WASM_BINDGEN_BIN is $have; run scripts/install.sh" >&2
  exit 1
fi

export CUSTOM_SHIM="$PWD/src/edge/shim.js"
exec "$WORKER_BUILD" --release "$@"
