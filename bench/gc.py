#!/usr/bin/env python3
"""Benchmark of `provision gc` over a generated bucket, side by side with a reference client.

    python3 bench/gc.py [OBJECTS ...]        (default: 20000 100000)

For each size it writes a bucket of that many objects into a folder that s3s-fs serves (a third
narinfos with references forming chains, a third NARs, a third listings; ages spread over 90
days, set on the files' modification times), starts s3s-fs on 127.0.0.1, and measures:

- `provision gc --dry-run` (release build): objects listed per second, narinfos read per second
  (16 requests in flight), and its peak resident memory (/usr/bin/time);
- the reference: boto3 on the same server listing every page (ListObjectsV2, 1000 keys a page)
  and GETting every narinfo with 16 threads: the same requests, made by AWS's own Python SDK.

It prints one table; ratios above 1 mean gc is faster than the reference. Everything is on
127.0.0.1 and every process it starts is stopped by pid.
"""

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "nix-store"
ACCESS = "AKBENCHGC00000000000"


def b32(rng, n):
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def generate(bucket, objects, rng):
    """A third narinfos (each referring to up to 3 earlier paths), a third NARs, a third
    listings. Returns the number of objects written."""
    os.makedirs(os.path.join(bucket, "nar"))
    now = time.time()
    paths = objects // 3
    hashes = []
    written = 0
    with open(os.path.join(bucket, "nix-cache-info"), "w") as f:
        f.write("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")
    written += 1
    for i in range(paths):
        h = b32(rng, 32)
        nar = "nar/%s.nar.xz" % b32(rng, 52)
        refs = [hashes[rng.randrange(len(hashes))] for _ in range(min(3, len(hashes)))]
        text = (
            "StorePath: /nix/store/%s-bench-%d\nURL: %s\nCompression: xz\n"
            "FileHash: sha256:%s\nFileSize: 4096\nNarHash: sha256:%s\nNarSize: 8192\n"
            "References: %s\n"
            % (h, i, nar, b32(rng, 52), b32(rng, 52), " ".join("%s-bench" % r for r in refs))
        )
        age = rng.uniform(0, 90 * 86400)
        for key, body in (
            ("%s.narinfo" % h, text.encode()),
            (nar, b"\0" * 64),
            ("%s.ls" % h, b'{"version":1,"root":{"type":"directory","entries":{}}}'),
        ):
            path = os.path.join(bucket, key)
            with open(path, "wb") as f:
                f.write(body)
            os.utime(path, (now - age, now - age))
            written += 1
        hashes.append(h)
    return written


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3s_fs(root, secret):
    port = free_port()
    exe = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
    proc = subprocess.Popen(
        [exe, "--host", "127.0.0.1", "--port", str(port), "--access-key", ACCESS,
         "--secret-key", secret, root],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise SystemExit("s3s-fs did not start")
            time.sleep(0.05)


def run_gc(binary, port, secret, workdir):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SPACES_ACCESS_KEY_ID": ACCESS,
        "SPACES_SECRET_ACCESS_KEY": secret,
        "SPACES_ENDPOINT": "http://127.0.0.1:%d" % port,
    }
    out = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kib=%M", binary, "--hostname", "cache.example.com",
         "--bucket", BUCKET, "--region", "fra1", "gc", "--dry-run", "--concurrency", "16"],
        cwd=workdir, env=env, capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise SystemExit("provision gc failed:\n" + out.stdout + out.stderr)
    m = re.search(r"listed (\d+) objects in ([\d.]+) s .* read (\d+) narinfos in ([\d.]+) s", out.stdout)
    rss = int(re.search(r"maxrss_kib=(\d+)", out.stderr).group(1))
    return int(m.group(1)), float(m.group(2)), int(m.group(3)), float(m.group(4)), rss


def run_boto3(port, secret):
    s3 = boto3.client(
        "s3", endpoint_url="http://127.0.0.1:%d" % port, region_name="fra1",
        aws_access_key_id=ACCESS, aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16,
                      retries={"max_attempts": 1}),
    )
    start = time.perf_counter()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 1000}):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    listing = time.perf_counter() - start
    narinfos = [k for k in keys if k.endswith(".narinfo")]
    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        for _ in pool.map(lambda k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read(), narinfos):
            pass
    reading = time.perf_counter() - start
    return len(keys), listing, len(narinfos), reading


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [20000, 100000]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "provision"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "provision")
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="nix-cache-bench-gc-") as tmp:
            root = os.path.join(tmp, "root")
            written = generate(os.path.join(root, BUCKET), size, random.Random(size))
            secret = os.urandom(16).hex()
            proc, port = start_s3s_fs(root, secret)
            try:
                listed, list_s, read, read_s, rss = run_gc(binary, port, secret, tmp)
                b_listed, b_list_s, b_read, b_read_s = run_boto3(port, secret)
            finally:
                proc.kill()
                proc.wait()
            assert listed == written == b_listed, (listed, written, b_listed)
            assert read == b_read, (read, b_read)
            rows.append((size, listed, listed / list_s, b_listed / b_list_s, read, read / read_s,
                         b_read / b_read_s, rss / 1024))
    print("| objects | narinfos | gc list/s | boto3 list/s | ratio | gc narinfo GET/s | boto3 GET/s | ratio | gc peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, listed, gl, bl, read, gr, br, rss in rows:
        print("| %d | %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %.1f MiB |"
              % (listed, read, gl, bl, gl / bl, gr, br, gr / br, rss))


if __name__ == "__main__":
    main()
