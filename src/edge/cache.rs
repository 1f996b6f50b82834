//! Object routes: the edge cache first, then the origin, storing what the policy allows.
//!
//! Hits come from `caches.default` keyed by the Worker's URL for the route without its query;
//! the Cache API itself answers Range and HEAD from a stored full object. Misses stream the
//! origin's body straight to the client; a storable one is teed into the cache in the
//! background (`waitUntil`), so the client never waits for the store.
//!
//! This is the hot path, so it speaks `web_sys` directly: every call into the runtime is a
//! crossing out of Wasm, and these are the ones a request needs.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::future_to_promise;
use web_sys::{Cache, Headers, ReadableStream, Request, RequestInit, Response, ResponseInit};
use worker::console_warn;
use worker::worker_sys::{ext::CacheStorageExt, Context as JsContext};

use crate::policy;

use super::isolate::Isolate;
use super::origin::{self, OriginAnswer};
use super::{js, EdgeError, Incoming};

/// Serves an object route: the promise of the edge cache's answer, else the origin's.
///
/// The lookup's outcome is taken by plain callbacks rather than awaited: a hit, the common
/// case, is answered without starting the async executor, which only the origin path needs.
pub(crate) fn serve_object(
    incoming: Incoming,
    isolate: Rc<Isolate>,
    ctx: JsContext,
) -> Result<Promise, EdgeError> {
    let cache = edge_cache()?;
    let cache_key = incoming.cache_key();
    let lookup = match incoming.range.as_deref() {
        None => cache.match_with_str(&cache_key),
        Some(range) => cache.match_with_request(&ranged(&cache_key, range)?),
    };
    let looked_up = move |hit: JsValue| {
        if !hit.is_undefined() {
            return super::answer(relay_hit(hit.unchecked_into(), incoming.head));
        }
        let from_origin = async move {
            let result = from_origin(&incoming, &isolate, &ctx, cache, cache_key).await;
            Ok(super::answer(result))
        };
        future_to_promise(from_origin).into()
    };
    let failed = |err: JsValue| super::answer(Err(js::failed("cache match")(err)));
    Ok(js::then(&lookup, looked_up, failed))
}

/// An edge miss: the origin's answer, stored when the policy allows.
async fn from_origin(
    incoming: &Incoming,
    isolate: &Isolate,
    ctx: &JsContext,
    cache: Cache,
    cache_key: String,
) -> Result<Response, EdgeError> {
    let config = &isolate.config;
    let key = incoming
        .route
        .object_key()
        .ok_or_else(|| EdgeError::Internal("object route without a key".into()))?;
    // A HEAD is answered from a GET whose body is dropped: S3 explains a refusal only in a body.
    let range = if incoming.head {
        None
    } else {
        incoming.range.as_deref()
    };
    let kind = incoming.route.kind();
    match origin::get(isolate, &key, range).await? {
        OriginAnswer::Missing => {
            if policy::storable(kind, 404, Some(0), config.max_object_bytes) {
                store(ctx, &cache, cache_key, &isolate.missing(false)?);
            }
            isolate.missing(incoming.head)
        }
        OriginAnswer::Pass(found) => {
            let status = found.status();
            let ours = matches!(status, 200 | 206);
            let from = found.headers();
            let headers = Headers::new().map_err(js::failed("new Headers"))?;
            for name in policy::PASSED_RESPONSE_HEADERS {
                if ours && name == "content-type" {
                    continue;
                }
                if let Some(value) = from.get(name).map_err(js::failed("Headers.get"))? {
                    js::set(&headers, name, &value)?;
                }
            }
            if ours {
                js::set(&headers, "content-type", incoming.route.content_type())?;
            }
            let cache_control = policy::cache_control(kind, status, &config.ttls);
            js::set(&headers, "cache-control", &cache_control)?;
            js::set(&headers, "x-cache", "MISS")?;
            let init = ResponseInit::new();
            init.set_status(status);
            init.set_headers(&headers);
            if incoming.head {
                cancel(found.body());
                return js::response(None, &init);
            }
            let response = js::response(found.body().as_ref(), &init)?;
            let length = headers
                .get("content-length")
                .map_err(js::failed("Headers.get"))?
                .and_then(|v| v.parse::<u64>().ok());
            if range.is_none() && policy::storable(kind, status, length, config.max_object_bytes) {
                let entry = response.clone().map_err(js::failed("Response.clone"))?;
                store(ctx, &cache, cache_key, &entry);
            }
            Ok(response)
        }
    }
}

/// `caches.default`, the edge cache of the zone.
fn edge_cache() -> Result<Cache, EdgeError> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(global.caches().map_err(js::failed("caches"))?.default())
}

/// Puts `entry` (a tee of what the client gets, or its own copy) into the edge cache after the
/// response, so the client never waits for the store. A failed store is logged, never seen by
/// the client.
fn store(ctx: &JsContext, cache: &Cache, cache_key: String, entry: &Response) {
    let put = cache.put_with_str(&cache_key, entry);
    let stored = |_| JsValue::UNDEFINED;
    let failed = move |err: JsValue| {
        let err = worker::Error::from(err);
        console_warn!("edge cache: storing {cache_key} failed: {err}");
        JsValue::UNDEFINED
    };
    if let Err(err) = ctx.wait_until(&js::then(&put, stored, failed)) {
        console_warn!("edge cache: waitUntil failed: {}", worker::Error::from(err));
    }
}

/// The request the cache is asked with for a Range: GET with the client's Range.
fn ranged(cache_key: &str, range: &str) -> Result<Request, EdgeError> {
    let headers = Headers::new().map_err(js::failed("new Headers"))?;
    js::set(&headers, "range", range)?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers(&headers);
    Request::new_with_str_and_init(cache_key, &init).map_err(js::failed("new Request"))
}

/// A stored answer, relayed with `x-cache: HIT`; no body for HEAD.
///
/// The stored response is its own init: the runtime copies its status and headers (the ones
/// this Worker chose when it stored the entry) into the new, mutable response.
fn relay_hit(hit: Response, head: bool) -> Result<Response, EdgeError> {
    let body = hit.body();
    let body = if head {
        cancel(body);
        None
    } else {
        body
    };
    let response = js::response(body.as_ref(), hit.unchecked_ref())?;
    js::set(&response.headers(), "x-cache", "HIT")?;
    Ok(response)
}

/// Let go of a body nobody will read, so the subrequest stops.
fn cancel(body: Option<ReadableStream>) {
    if let Some(body) = body {
        let _ = body.cancel();
    }
}
