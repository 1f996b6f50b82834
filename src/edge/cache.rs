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
use web_sys::{Cache, Headers, ReadableStream, Request, RequestInit, Response, ResponseInit};
use worker::console_warn;
use worker::worker_sys::{ext::CacheStorageExt, Context as JsContext};

use crate::policy::{self, FailReason};

use super::isolate::Isolate;
use super::origin::{self, OriginAnswer};
use super::{js, EdgeError, Incoming};

/// Serves an object route: the promise of the edge cache's answer, else the origin's.
///
/// Each step's outcome is taken by a plain callback rather than awaited: no async executor
/// runs for a request, and a hit, the common case, costs one callback.
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
    let miss = Miss {
        incoming,
        isolate,
        ctx,
        cache,
        cache_key,
    };
    Ok(js::settled(&lookup, move |looked_up| match looked_up {
        Ok(hit) if !hit.is_undefined() => {
            super::answer(relay_hit(hit.unchecked_into(), miss.incoming.head))
        }
        Ok(_) => miss.ask_origin(),
        Err(err) => super::answer(Err(js::failed("cache match")(err))),
    }))
}

/// An edge miss, and what answering it from the origin needs.
struct Miss {
    incoming: Incoming,
    isolate: Rc<Isolate>,
    ctx: JsContext,
    cache: Cache,
    cache_key: String,
}

impl Miss {
    /// The Range sent to the origin. A HEAD is answered from a GET whose body is dropped (S3
    /// explains a refusal only in a body), so it asks for the whole object.
    fn range(&self) -> Option<&str> {
        if self.incoming.head {
            None
        } else {
            self.incoming.range.as_deref()
        }
    }

    /// The signed fetch, and the answer made from what the origin says: a response, or the
    /// promise of one.
    fn ask_origin(self) -> JsValue {
        let Some(key) = self.incoming.route.object_key() else {
            return super::answer(Err(EdgeError::Internal(
                "object route without a key".into(),
            )));
        };
        let asked = match origin::request(&self.isolate, &key, self.range()) {
            Ok(asked) => asked,
            Err(err) => return super::answer(Err(err)),
        };
        js::settled(&asked, move |found| match found {
            Ok(found) => origin::judge(found.unchecked_into(), move |verdict| {
                super::answer(verdict.and_then(|verdict| self.respond(verdict)))
            }),
            Err(_) => super::answer(Err(EdgeError::Origin(FailReason::Unreachable))),
        })
        .into()
    }

    /// The client's answer to the origin's, stored when the policy allows.
    fn respond(self, verdict: OriginAnswer) -> Result<Response, EdgeError> {
        let Miss {
            incoming,
            isolate,
            ctx,
            cache,
            cache_key,
        } = &self;
        let config = &isolate.config;
        let kind = incoming.route.kind();
        let found = match verdict {
            OriginAnswer::Missing => {
                if policy::storable(kind, 404, Some(0), config.max_object_bytes) {
                    store(ctx, cache, cache_key.clone(), &isolate.missing(false)?);
                }
                return isolate.missing(incoming.head);
            }
            OriginAnswer::Pass(found) => found,
        };
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
        if self.range().is_none() && policy::storable(kind, status, length, config.max_object_bytes)
        {
            let entry = response.clone().map_err(js::failed("Response.clone"))?;
            store(ctx, cache, cache_key.clone(), &entry);
        }
        Ok(response)
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
    let stored = js::settled(&put, move |stored| {
        if let Err(err) = stored {
            let err = worker::Error::from(err);
            console_warn!("edge cache: storing {cache_key} failed: {err}");
        }
        JsValue::UNDEFINED
    });
    if let Err(err) = ctx.wait_until(&stored) {
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
