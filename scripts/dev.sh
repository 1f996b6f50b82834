#!/usr/bin/env bash
# Runs the cache locally, end to end, on 127.0.0.1:
#
#   1. installs what is missing (scripts/install.sh) and builds the Worker;
#   2. seeds a small real binary cache, made and signed by the Nix client, into
#      .local/s3/nix-cache (once; later runs reuse it; remove .local/ to start over);
#   3. starts s3s-fs (an S3 server that verifies SigV4) on a free port with random local
#      credentials, kept in .local/ with mode 0600 and never printed;
#   4. runs the Worker under workerd (Miniflare) on http://127.0.0.1:8787 pointed at it;
#   5. prints the substituter URL, the public key, the nix.conf lines and a `nix copy` command
#      that works right away.
#
# Ctrl-C stops both servers. PORT=N picks another port for the Worker.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
port="${PORT:-8787}"
local_dir="$root/.local"
bucket="nix-cache"

bash scripts/install.sh
bash scripts/build-worker.sh

mkdir -p "$local_dir"
chmod 0700 "$local_dir"

# --- the seeded cache, once ---
if [ ! -s "$local_dir/seed/public-key" ] || [ ! -s "$local_dir/seed/top-path" ] \
  || [ ! -f "$local_dir/s3/$bucket/nix-cache-info" ]; then
  rm -rf "$local_dir/s3" "$local_dir/seed"
  bash scripts/seed-cache.sh --meta "$local_dir/seed" "$local_dir/s3/$bucket" >/dev/null
fi
public_key="$(cat "$local_dir/seed/public-key")"
top_path="$(cat "$local_dir/seed/top-path")"

# --- local credentials, once, mode 0600 ---
credentials="$local_dir/credentials"
if [ ! -s "$credentials" ]; then
  (
    umask 077
    {
      echo "AK$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F')"
      head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n'
      echo
    } > "$credentials"
  )
fi
chmod 0600 "$credentials"
access_key="$(sed -n 1p "$credentials")"
secret_key="$(sed -n 2p "$credentials")"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
interrupted=0
trap stop EXIT
trap 'interrupted=1; exit 130' INT TERM

# --- s3s-fs on a free port ---
s3_log="$local_dir/s3s-fs.log"
: > "$s3_log"
# s3s-fs 0.14 takes its keys only as arguments: they are throwaway local credentials.
RUST_LOG=s3s_fs=info s3s-fs --host 127.0.0.1 --port 0 \
  --access-key "$access_key" --secret-key "$secret_key" "$local_dir/s3" > "$s3_log" 2>&1 &
pids+=($!)
s3_url=""
for _ in $(seq 1 100); do
  s3_url="$(grep -o 'server is running at http://127\.0\.0\.1:[0-9]*' "$s3_log" | sed 's/.* at //' || true)"
  [ -n "$s3_url" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
[ -n "$s3_url" ] || { cat "$s3_log" >&2; echo "dev: s3s-fs did not start" >&2; exit 1; }

# --- the Worker's bindings: a file with mode 0600, since it holds the secret ---
bindings="$local_dir/worker-bindings.json"
(
  umask 077
  node -e '
    const [endpoint, bucket, accessKey, secretKey, publicKey] = process.argv.slice(1);
    process.stdout.write(JSON.stringify({
      SPACES_ENDPOINT: endpoint,
      SPACES_BUCKET: bucket,
      SPACES_REGION: "us-east-1",
      SPACES_ACCESS_KEY_ID: accessKey,
      SPACES_SECRET_ACCESS_KEY: secretKey,
      STORE_DIR: "/nix/store",
      WANT_MASS_QUERY: "1",
      PRIORITY: "40",
      PUBLIC_KEYS: publicKey,
    }, null, 2) + "\n");
  ' "$s3_url" "$bucket" "$access_key" "$secret_key" "$public_key" > "$bindings"
)
chmod 0600 "$bindings"

# --- the Worker ---
worker_out="$local_dir/worker.log"
: > "$worker_out"
node scripts/run-worker.mjs --port "$port" --bindings "$bindings" > "$worker_out" 2>&1 &
pids+=($!)
url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's/^ready: //p' "$worker_out" | head -n 1)"
  [ -n "$url" ] && break
  kill -0 "${pids[1]}" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { cat "$worker_out" >&2; echo "dev: the Worker did not start" >&2; exit 1; }

cat <<INFO

The cache runs locally.

  substituter URL  $url
  public key       $public_key
  origin           s3s-fs at $s3_url, bucket $bucket (credentials in .local/credentials)
  logs             .local/worker.log, .local/s3s-fs.log

nix.conf lines:

  substituters = $url
  trusted-public-keys = $public_key

Try it (copies the seeded closure into a throwaway chroot store):

  nix --extra-experimental-features nix-command copy --from $url \\
    --option trusted-public-keys '$public_key' --option build-users-group '' \\
    --store /tmp/nix-spaces-cache-demo $top_path

Seeded store paths:
$(sed 's/^/  /' "$local_dir/seed/closure")

Ctrl-C stops the Worker and s3s-fs.
INFO

# Serve until Ctrl-C (the trap) or until either server exits.
wait -n "${pids[@]}" || true
sleep 0.2 # a Ctrl-C reaches the servers too; let its trap run first
[ "$interrupted" = 0 ] || exit 130
echo "dev: a server stopped; see .local/worker.log and .local/s3s-fs.log" >&2
exit 1
