//! Object routes: the edge cache first, then the origin, storing what the policy allows.
//!
//! Hits come from `caches.default` keyed by the Worker's URL for the route without its query;
//! the Cache API itself answers Range and HEAD from a stored full object. Misses stream the
//! origin's body straight to the client; a storable one is teed into the cache in the
//! background (`waitUntil`), so the client never waits for the store.

use worker::{
    console_warn, Cache, Context, Headers, Method, Request, RequestInit, Response, ResponseBody,
};

use crate::config::Config;
use crate::policy;

use super::origin::{self, OriginAnswer};
use super::{EdgeError, Incoming};

pub(crate) async fn serve_object(
    incoming: &Incoming,
    config: &Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    let key = incoming
        .route
        .object_key()
        .ok_or_else(|| EdgeError::Internal("object route without a key".into()))?;
    let cache = Cache::default();
    let cache_key = incoming.cache_key();

    let hit = match incoming.range.as_deref() {
        None => cache.get(cache_key.as_str(), false).await?,
        Some(range) => cache.get(&ranged(&cache_key, range)?, false).await?,
    };
    if let Some(hit) = hit {
        return relay_hit(hit, incoming);
    }

    // A HEAD is answered from a GET whose body is dropped: S3 explains a refusal only in a body.
    let range = if incoming.head {
        None
    } else {
        incoming.range.as_deref()
    };
    match origin::get(config, &key, range).await? {
        OriginAnswer::Missing => {
            let kind = incoming.route.kind();
            let mut response = missing(incoming, config)?;
            if policy::storable(kind, 404, Some(0), config.max_object_bytes) {
                store(ctx, cache, cache_key, response.cloned()?);
            }
            Ok(response)
        }
        OriginAnswer::Pass(found) => {
            let status = found.status_code();
            let headers = Headers::new();
            for (name, value) in found.headers().entries() {
                if policy::pass_response_header(&name) {
                    headers.set(&name, &value)?;
                }
            }
            let kind = incoming.route.kind();
            if matches!(status, 200 | 206) {
                headers.set("content-type", incoming.route.content_type())?;
            }
            headers.set(
                "cache-control",
                &policy::cache_control(kind, status, &config.ttls),
            )?;
            headers.set("x-cache", "MISS")?;
            let length = headers
                .get("content-length")?
                .and_then(|v| v.parse::<u64>().ok());
            let (_, body) = found.into_parts();
            let builder = Response::builder()
                .with_status(status)
                .with_headers(headers);
            if incoming.head {
                cancel(body);
                return Ok(builder.empty());
            }
            let mut response = builder.body(body);
            if range.is_none() && policy::storable(kind, status, length, config.max_object_bytes) {
                store(ctx, cache, cache_key, response.cloned()?);
            }
            Ok(response)
        }
    }
}

/// Puts `entry` (a tee of what the client gets) into the edge cache after the response, so the
/// client never waits for the store. A failed store is logged, never seen by the client.
fn store(ctx: &Context, cache: Cache, cache_key: String, entry: Response) {
    ctx.wait_until(async move {
        if let Err(err) = cache.put(cache_key.as_str(), entry).await {
            console_warn!("edge cache: storing {cache_key} failed: {err}");
        }
    });
}

/// The request the cache is asked with for a Range: GET with the client's Range.
fn ranged(cache_key: &str, range: &str) -> Result<Request, EdgeError> {
    let headers = Headers::new();
    headers.set("range", range)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    Ok(Request::new_with_init(cache_key, &init)?)
}

/// A stored answer, relayed with `x-cache: HIT`; no body for HEAD.
fn relay_hit(hit: Response, incoming: &Incoming) -> Result<Response, EdgeError> {
    let status = hit.status_code();
    // The stored headers are the ones this Worker chose when it stored the entry; copy them
    // in one call (stored headers are immutable) and mark the hit.
    let headers =
        Headers(web_sys::Headers::new_with_headers(&hit.headers().0).map_err(worker::Error::from)?);
    headers.set("x-cache", "HIT")?;
    let (_, body) = hit.into_parts();
    let builder = Response::builder()
        .with_status(status)
        .with_headers(headers);
    Ok(if incoming.head {
        cancel(body);
        builder.empty()
    } else {
        builder.body(body)
    })
}

/// The 404 for an object Spaces does not have, remembered briefly at the edge. A HEAD gets
/// the same: the runtime sends no body for HEAD.
fn missing(incoming: &Incoming, config: &Config) -> Result<Response, EdgeError> {
    let body = "not in this cache\n";
    let headers = Headers::new();
    headers.set("content-type", "text/plain; charset=utf-8")?;
    headers.set(
        "cache-control",
        &policy::cache_control(incoming.route.kind(), 404, &config.ttls),
    )?;
    headers.set("x-cache", "MISS")?;
    Ok(Response::builder()
        .with_status(404)
        .with_headers(headers)
        .fixed(body.as_bytes().to_vec()))
}

/// Let go of a body nobody will read, so the subrequest stops.
fn cancel(body: ResponseBody) {
    if let ResponseBody::Stream(stream) = body {
        let _ = stream.cancel();
    }
}
