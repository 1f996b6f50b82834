// The JavaScript twin of the Rust Worker, for the benchmark only: the same routes subset
// (/nix-cache-info, /<hash>.narinfo, /nar/<filehash>.nar[.ext]), the same edge cache logic
// (Cache API lookup, full 200s and 404s stored with the same Cache-Control) and the
// same origin call (a path-style GET to SPACES_ENDPOINT/SPACES_BUCKET/key, SigV4-signed by
// aws4fetch's AwsClient with the empty-body payload hash). It reads the same bindings.
import { AwsClient } from "aws4fetch";

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ALLOW = "GET, HEAD";
const NIX_BASE32 = "[0-9a-df-np-sv-z]";
const NARINFO = new RegExp(`^/(${NIX_BASE32}{32})\\.narinfo$`);
const NAR = new RegExp(`^/nar/(${NIX_BASE32}{52})\\.nar(\\.(xz|zst|bz2|br|lz4|lzip|gz))?$`);
const PASS_OUT = ["content-type", "content-length", "etag", "last-modified", "accept-ranges", "content-range"];
const MAX_OBJECT_BYTES = 512 * 1024 * 1024;
const ERROR_BODY_LIMIT = 16 * 1024;
const TTL = { nar: 31536000, narinfo: 86400, negative: 60, other: 3600 };

let client;
let clientKey;

function awsClient(env) {
  const key = `${env.SPACES_ACCESS_KEY_ID}\n${env.SPACES_REGION}`;
  if (!client || clientKey !== key) {
    client = new AwsClient({
      accessKeyId: env.SPACES_ACCESS_KEY_ID,
      secretAccessKey: env.SPACES_SECRET_ACCESS_KEY,
      service: "s3",
      region: env.SPACES_REGION,
    });
    clientKey = key;
  }
  return client;
}

function text(status, body, extra = {}) {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...extra },
  });
}

function cacheControl(kind, status) {
  if (status === 404) return `public, max-age=${TTL.negative}`;
  if (kind === "nar") return `public, max-age=${TTL.nar}, immutable`;
  return `public, max-age=${TTL.narinfo}`;
}

function storable(status, length) {
  if (status === 404) return true;
  return status === 200 && length !== null && length <= MAX_OBJECT_BYTES;
}

function relayHit(hit, head) {
  const headers = new Headers();
  for (const [name, value] of hit.headers) {
    if (PASS_OUT.includes(name) || name === "cache-control") headers.set(name, value);
  }
  headers.set("x-cache", "HIT");
  if (head) hit.body?.cancel();
  return new Response(head ? null : hit.body, { status: hit.status, headers });
}

function missing(kind, head) {
  const body = "not in this cache\n";
  return new Response(head ? null : body, {
    status: 404,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(body.length),
      "cache-control": cacheControl(kind, 404),
      "x-cache": "MISS",
    },
  });
}

// The first ERROR_BODY_LIMIT bytes of an error body, as text (S3 explains itself there).
async function errorBody(origin) {
  if (!origin.body) return "";
  const reader = origin.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  while (bytes < ERROR_BODY_LIMIT) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    const take = value.subarray(0, ERROR_BODY_LIMIT - bytes);
    bytes += take.length;
    text += decoder.decode(take, { stream: true });
  }
  reader.cancel();
  return text;
}

async function serveObject(request, env, ctx, url, kind, key, contentType, head) {
  const cache = caches.default;
  const cacheKey = `${url.origin}${url.pathname}`;
  const range = head ? null : request.headers.get("range");
  const lookupHeaders = request.headers.get("range") ? { range: request.headers.get("range") } : {};
  const hit = await cache.match(new Request(cacheKey, { headers: lookupHeaders }));
  if (hit) return relayHit(hit, head);

  const headers = { "x-amz-content-sha256": EMPTY_SHA256 };
  if (range) headers.range = range;
  const target = `${env.SPACES_ENDPOINT}/${env.SPACES_BUCKET}/${key}`;
  let origin;
  try {
    const signed = await awsClient(env).sign(target, { method: "GET", headers });
    origin = await fetch(signed);
  } catch (err) {
    return text(502, `origin unreachable: ${err.message}\n`);
  }

  if (origin.status >= 400 && origin.status !== 416) {
    const code = /<Code>([^<]*)<\/Code>/.exec(await errorBody(origin))?.[1];
    if (origin.status === 404 || (origin.status === 403 && (code === "AccessDenied" || code === "NoSuchKey"))) {
      if (storable(404, 0)) ctx.waitUntil(cache.put(cacheKey, missing(kind, false)));
      return missing(kind, head);
    }
    if (origin.status === 403) return text(502, `origin refused the Worker's credentials (${code ?? "403"})\n`);
    return text(502, `origin failed (${origin.status}${code ? ` ${code}` : ""})\n`);
  }
  if (!((origin.status >= 200 && origin.status < 300) || origin.status === 304 || origin.status === 416)) {
    origin.body?.cancel();
    return text(502, `origin answered ${origin.status}\n`);
  }

  const out = new Headers();
  for (const [name, value] of origin.headers) {
    if (PASS_OUT.includes(name)) out.set(name, value);
  }
  if (origin.status === 200 || origin.status === 206) out.set("content-type", contentType);
  out.set("cache-control", cacheControl(kind, origin.status));
  out.set("x-cache", "MISS");
  if (head) {
    origin.body?.cancel();
    return new Response(null, { status: origin.status, headers: out });
  }
  const response = new Response(origin.body, { status: origin.status, headers: out });
  const length = out.has("content-length") ? Number(out.get("content-length")) : null;
  if (!range && storable(origin.status, length)) {
    ctx.waitUntil(cache.put(cacheKey, response.clone()));
  }
  return response;
}

export default {
  async fetch(request, env, ctx) {
    const head = request.method === "HEAD";
    if (!head && request.method !== "GET") {
      return text(405, `method not allowed: this cache answers ${ALLOW}\n`, { allow: ALLOW });
    }
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/nix-cache-info") {
      const body = `StoreDir: ${env.STORE_DIR}\nWantMassQuery: ${env.WANT_MASS_QUERY}\nPriority: ${env.PRIORITY}\n`;
      return new Response(head ? null : body, {
        headers: {
          "content-type": "text/x-nix-cache-info",
          "content-length": String(body.length),
          "cache-control": `public, max-age=${TTL.other}`,
        },
      });
    }
    let m = NARINFO.exec(path);
    if (m) {
      return serveObject(request, env, ctx, url, "narinfo", `${m[1]}.narinfo`, "text/x-nix-narinfo", head);
    }
    m = NAR.exec(path);
    if (m) {
      return serveObject(request, env, ctx, url, "nar", path.slice(1), "application/x-nix-nar", head);
    }
    return text(404, "not a Nix binary cache path\n");
  },
};
