//! The smallest workers-rs Worker: every request gets the same `nix-cache-info` text, with no
//! bindings, route, cache or origin. The benchmark runs it beside its JavaScript twin
//! (`bench/floor/index.mjs`) to show what the runtime glue alone costs per request.

use worker::{event, Context, Env, Headers, Request, Response, Result};

const CACHE_INFO: &str = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "text/x-nix-cache-info")?;
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .fixed(CACHE_INFO.as_bytes().to_vec()))
}
