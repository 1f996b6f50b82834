#!/usr/bin/env bash
# Makes a small, real, signed Nix binary cache with the Nix client.
#
#   scripts/seed-cache.sh [--large] [--meta META_DIR] CACHE_DIR
#
# Builds a closure with references in a throwaway chroot store (leaf <- mid <- top, and top's
# script references busybox, which is the builder of all three), signs it with a fresh key from
# `nix key generate-secret` and copies it with `nix copy --to file://CACHE_DIR`. CACHE_DIR then
# holds exactly what a bucket holds: nix-cache-info, <hash>.narinfo, nar/<filehash>.nar.xz.
#
# --large adds one path whose NAR is over 64 MiB (random bytes, compression=none), for
# streaming tests.
#
# Written to META_DIR (default: CACHE_DIR.meta, kept outside the cache so that the secret key
# is never served):
#   secret-key     the signing key (mode 0600, directory 0700)
#   public-key     the matching public key, the value for trusted-public-keys
#   top-path       the top of the closure
#   closure        every store path of the closure, one a line
#   large-path     the large path (only with --large)
#
# Needs nix-bin (2.8 or later) and a static busybox (/bin/busybox from busybox-static); runs as
# root without a Nix daemon.
set -euo pipefail

large=0
meta=""
cache=""
while [ $# -gt 0 ]; do
  case "$1" in
    --large) large=1 ;;
    --meta) meta="${2:?--meta needs a directory}"; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "seed-cache: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$cache" ] || { echo "seed-cache: one CACHE_DIR only" >&2; exit 2; }; cache="$1" ;;
  esac
  shift
done
[ -n "$cache" ] || { echo "usage: seed-cache.sh [--large] [--meta META_DIR] CACHE_DIR" >&2; exit 2; }
cache="$(mkdir -p "$cache" && cd "$cache" && pwd)"
meta="${meta:-$cache.meta}"
mkdir -p "$meta"
meta="$(cd "$meta" && pwd)"
chmod 0700 "$meta"

busybox="${BUSYBOX:-/bin/busybox}"
if [ ! -x "$busybox" ] || ! "$busybox" --help >/dev/null 2>&1; then
  echo "seed-cache: no static busybox at $busybox (apt-get install busybox-static, or set BUSYBOX)" >&2
  exit 1
fi
command -v nix >/dev/null || { echo "seed-cache: nix is missing (apt-get install nix-bin)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/seed-cache.XXXXXX")"
cleanup() {
  # The chroot store's files are read-only; make them writable so they can be removed.
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/conf" "$work/xdg" "$work/busybox/bin"
cat > "$work/conf/nix.conf" <<'CONF'
experimental-features = nix-command
build-users-group =
sandbox = false
substituters =
CONF
export NIX_CONF_DIR="$work/conf" XDG_CACHE_HOME="$work/xdg"
store="$work/store"

cp "$busybox" "$work/busybox/bin/busybox"
for applet in sh mkdir cat echo ln printf chmod; do
  ln -s busybox "$work/busybox/bin/$applet"
done

cat > "$work/closure.nix" <<'NIX'
{ busyboxDir }:
let
  busybox = builtins.path { path = busyboxDir; name = "busybox"; };
  build = name: script: builtins.derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "${busybox}/bin/sh";
    args = [ "-c" script ];
    PATH = "${busybox}/bin";
  };
  leaf = build "nix-spaces-cache-seed-leaf" ''
    mkdir -p $out/share
    echo "hello from the nix-spaces-cache seed" > $out/share/greeting
  '';
  mid = build "nix-spaces-cache-seed-mid" ''
    mkdir -p $out
    ln -s ${leaf} $out/leaf
    echo ${leaf} > $out/depends-on
  '';
  top = build "nix-spaces-cache-seed-top" ''
    mkdir -p $out/bin
    printf '#!${busybox}/bin/sh\ncat ${mid}/leaf/share/greeting\n' > $out/bin/hello
    chmod +x $out/bin/hello
  '';
in top
NIX

nix build --store "$store" --no-link -f "$work/closure.nix" --arg busyboxDir "$work/busybox" 2>"$work/build.log" \
  || { cat "$work/build.log" >&2; echo "seed-cache: building the closure failed" >&2; exit 1; }
top="$(nix path-info --store "$store" -f "$work/closure.nix" --arg busyboxDir "$work/busybox")"

# A fresh signing key for every new cache directory; reuse the existing one otherwise.
if [ ! -s "$meta/secret-key" ]; then
  (umask 077 && nix key generate-secret --key-name "nix-spaces-cache-local-1" > "$meta/secret-key.tmp")
  mv "$meta/secret-key.tmp" "$meta/secret-key"
fi
chmod 0600 "$meta/secret-key"
nix key convert-secret-to-public < "$meta/secret-key" > "$meta/public-key"

nix copy --store "$store" --to "file://$cache?secret-key=$meta/secret-key" "$top" 2>"$work/copy.log" \
  || { cat "$work/copy.log" >&2; echo "seed-cache: nix copy to file://$cache failed" >&2; exit 1; }
printf '%s\n' "$top" > "$meta/top-path"
nix path-info --store "$store" -r "$top" > "$meta/closure"

if [ "$large" = 1 ]; then
  mkdir -p "$work/large"
  # 65 MiB of random bytes: the NAR is over 64 MiB and does not compress.
  head -c $((65 * 1024 * 1024)) /dev/urandom > "$work/large/blob"
  largepath="$(nix store add-path --store "$store" --name nix-spaces-cache-seed-large "$work/large")"
  nix copy --store "$store" --to "file://$cache?compression=none&secret-key=$meta/secret-key" "$largepath" 2>"$work/copy-large.log" \
    || { cat "$work/copy-large.log" >&2; echo "seed-cache: nix copy of the large path failed" >&2; exit 1; }
  printf '%s\n' "$largepath" > "$meta/large-path"
else
  rm -f "$meta/large-path"
fi

echo "seeded binary cache: $cache"
echo "store paths (closure of $top):"
sed 's/^/  /' "$meta/closure"
[ "$large" = 1 ] && echo "large path: $(cat "$meta/large-path")"
echo "public key: $(cat "$meta/public-key")"
echo "secret key: $meta/secret-key (mode 0600)"
