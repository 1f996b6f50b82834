#!/usr/bin/env bash
# Installs what building, running and testing the cache needs, and only what is missing or at
# the wrong version. Quiet when everything is there; says what it installs otherwise.
#
#   Rust:   the wasm32-unknown-unknown target; wasm-bindgen-cli at exactly the version that
#           Cargo.toml pins; worker-build; s3s-fs (the S3 origin for local runs and tests)
#   npm:    wrangler, miniflare, binaryen (wasm-opt) and aws4fetch, from package-lock.json
#   Debian: nix-bin (the Nix client), busybox-static (a /bin/sh for builds in chroot stores)
#   PyPI:   moto[server] (the S3 API fake for provision's tests)
#
# Meant for a Debian machine with rustup, Node 20+ and root.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
S3S_FS_VERSION=0.14.1

say() { echo "install: $*" >&2; }
die() { echo "install: $*" >&2; exit 1; }

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$PATH"

command -v rustup >/dev/null || die "rustup is missing (https://rustup.rs); it installs the toolchain in rust-toolchain.toml"
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are missing (Node 20 or later)"

# --- Rust toolchain and target (rust-toolchain.toml pins both) ---
if ! rustup toolchain list | grep -q "^$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)"; then
  say "installing the Rust toolchain from rust-toolchain.toml"
  rustup toolchain install "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" --profile minimal \
    --component rustfmt --component clippy --target wasm32-unknown-unknown
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# --- cargo-installed tools: NAME VERSION BIN [extra cargo install args] ---
cargo_tool() {
  local crate="$1" version="$2" bin="$3"
  shift 3
  local have=""
  if [ -x "$cargo_bin/$bin" ]; then
    have="$("$cargo_bin/$bin" --version 2>/dev/null | awk '{print $NF}' | sed 's/^v//')"
  fi
  if [ "$have" != "$version" ]; then
    say "cargo install $crate $version${have:+ (found $have)}"
    cargo install "$crate" --version "$version" --locked --quiet "$@"
  fi
}
wasm_bindgen_version="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)"
[ -n "$wasm_bindgen_version" ] || die "Cargo.toml does not pin wasm-bindgen as \"=x.y.z\""
cargo_tool wasm-bindgen-cli "$wasm_bindgen_version" wasm-bindgen
cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build
cargo_tool s3s-fs "$S3S_FS_VERSION" s3s-fs --features binary

# --- npm packages, exactly as package-lock.json says ---
npm_ok() {
  node -e '
    const want = require("./package.json").devDependencies;
    for (const [name, version] of Object.entries(want)) {
      let have;
      try { have = require(`./node_modules/${name}/package.json`).version; } catch { process.exit(1); }
      if (have !== version) process.exit(1);
    }' 2>/dev/null && [ -x node_modules/.bin/wrangler ] && [ -x node_modules/binaryen/bin/wasm-opt ] \
    && [ -x node_modules/esbuild/bin/esbuild ]
}
if ! npm_ok; then
  say "npm ci (wrangler, miniflare, binaryen, aws4fetch)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  npm_ok || die "npm ci did not install the packages package.json names"
fi

# --- Debian packages ---
apt_missing=()
command -v nix >/dev/null || apt_missing+=(nix-bin)
dpkg -s busybox-static >/dev/null 2>&1 || apt_missing+=(busybox-static)
if [ ${#apt_missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "${apt_missing[*]} missing; run this as root (or apt-get install ${apt_missing[*]})"
  say "apt-get install ${apt_missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

# --- PyPI ---
if ! python3 -c 'import moto, moto.server, flask' 2>/dev/null || ! command -v moto_server >/dev/null; then
  say "pip install moto[server]"
  python3 -m pip install --quiet 'moto[server]'
  hash -r
  command -v moto_server >/dev/null || [ -x "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/moto_server" ] \
    || die "moto_server is not on PATH after pip install"
fi
