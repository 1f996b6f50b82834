//! The edge cache as this Worker uses it: `caches.default` with every call bound so that a
//! throw is an `Err` (never a trap), stores after the response (`waitUntil`) that are logged
//! and never seen by the client, and the headers an entry keeps.
//!
//! An entry never carries a `Content-Encoding`: the object's is kept under
//! [`STORED_ENCODING_HEADER`] and given back on a hit, so the Cache API stores and returns the
//! bytes as they are, never decoded or re-encoded.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Headers, Response};
use worker::console_warn;
use worker::worker_sys::Context as JsContext;

use super::cache::{cancel, response_init};
use super::{js, EdgeError};

/// The header an entry keeps its object's `Content-Encoding` under. The entry itself has none,
/// so the Cache API stores and returns its bytes as they are, never decoded or re-encoded; a
/// hit gets the header back.
pub(crate) const STORED_ENCODING_HEADER: &str = "x-stored-content-encoding";

#[wasm_bindgen]
extern "C" {
    /// `caches.default`, with every call bound so that a throw is an `Err`, not a trap.
    #[derive(Debug, Clone)]
    #[wasm_bindgen(js_name = Cache)]
    pub(crate) type EdgeCache;

    #[wasm_bindgen(catch, method, js_name = match)]
    fn lookup(this: &EdgeCache, request: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(catch, method, js_name = put)]
    fn put(this: &EdgeCache, key: &str, response: &Response) -> Result<Promise, JsValue>;

    #[wasm_bindgen(catch, method, js_name = delete)]
    fn delete(this: &EdgeCache, key: &str) -> Result<Promise, JsValue>;
}

impl EdgeCache {
    /// `caches.default`, or `None` (logged) when the runtime has none or fails to give it.
    pub(crate) fn open() -> Option<EdgeCache> {
        let caches = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("caches"));
        let default =
            caches.and_then(|caches| js_sys::Reflect::get(&caches, &JsValue::from_str("default")));
        match default {
            Ok(cache) if cache.is_object() => Some(cache.unchecked_into()),
            Ok(_) => {
                console_warn!("edge cache: none available; answering from the origin");
                None
            }
            Err(err) => {
                let err = worker::Error::from(err);
                console_warn!(
                    "edge cache: caches.default failed: {err}; answering from the origin"
                );
                None
            }
        }
    }

    /// The promise of a lookup, or `None` (logged) when the call throws.
    pub(crate) fn find(&self, request: &JsValue, what: &str) -> Option<Promise> {
        self.lookup(request)
            .map_err(|err| {
                let err = worker::Error::from(err);
                console_warn!("edge cache: lookup of {what} threw: {err}; asking the origin");
            })
            .ok()
    }

    /// Puts `entry` under `key` after the response (`waitUntil`), so the client never waits
    /// for the store. A failed store is logged, never seen by the client; `stored` runs after a
    /// store that worked. Returns the promise that settles when the store has.
    pub(crate) fn store(
        &self,
        ctx: &JsContext,
        key: String,
        entry: &Response,
        stored: Option<Box<dyn FnOnce()>>,
    ) -> Option<Promise> {
        let put = match self.put(&key, entry) {
            Ok(put) => put,
            Err(err) => {
                let err = worker::Error::from(err);
                console_warn!("edge cache: storing {key} threw: {err}");
                // Nobody will read the entry's copy of the body: let it go.
                cancel(entry.body());
                return None;
            }
        };
        let mut cache = Some(self.clone());
        let later: JsContext = js_sys::Object::clone(ctx).unchecked_into();
        let done = js::settled(&put, move |result| {
            match result {
                Ok(_) => {
                    if let Some(stored) = stored {
                        stored();
                    }
                }
                Err(err) => {
                    let err = worker::Error::from(err);
                    console_warn!("edge cache: storing {key} failed: {err}");
                    // A store that failed leaves nothing behind (Miniflare's Cache API keeps
                    // what arrived of a body that failed, and then rejects the store).
                    if let Some(cache) = cache.take() {
                        cache.forget(&later, &key, "its store failed");
                    }
                }
            }
            JsValue::UNDEFINED
        });
        wait_until(ctx, &done);
        Some(done)
    }

    /// Drops the entry under `key` (after the response), saying why; a failure is logged.
    pub(crate) fn forget(&self, ctx: &JsContext, key: &str, why: &str) {
        match self.delete(key) {
            Ok(deleted) => {
                let (key, why) = (key.to_string(), why.to_string());
                let done = js::settled(&deleted, move |result| {
                    match result {
                        Ok(_) => console_warn!("edge cache: dropped {key}: {why}"),
                        Err(err) => {
                            let err = worker::Error::from(err);
                            console_warn!("edge cache: dropping {key} failed: {err}");
                        }
                    }
                    JsValue::UNDEFINED
                });
                wait_until(ctx, &done)
            }
            Err(err) => {
                let err = worker::Error::from(err);
                console_warn!("edge cache: deleting {key} threw: {err}");
            }
        }
    }
}

pub(crate) fn wait_until(ctx: &JsContext, promise: &Promise) {
    if let Err(err) = ctx.wait_until(promise) {
        console_warn!("waitUntil failed: {}", worker::Error::from(err));
    }
}

/// A copy of an answer's headers as an entry keeps them: its `Content-Encoding` moved to
/// [`STORED_ENCODING_HEADER`], `x-cache` dropped.
pub(crate) fn stored_headers(headers: &Headers) -> Result<Headers, EdgeError> {
    let stored = Headers::new_with_headers(headers).map_err(js::failed("new Headers"))?;
    if let Some(encoding) = stored
        .get("content-encoding")
        .map_err(js::failed("Headers.get"))?
    {
        js::set(&stored, STORED_ENCODING_HEADER, &encoding)?;
        stored
            .delete("content-encoding")
            .map_err(js::failed("Headers.delete"))?;
    }
    stored
        .delete("x-cache")
        .map_err(js::failed("Headers.delete"))?;
    Ok(stored)
}

/// Gives headers read from an entry their `Content-Encoding` back.
pub(crate) fn restore_encoding(headers: &Headers) -> Result<(), EdgeError> {
    if let Some(encoding) = headers
        .get(STORED_ENCODING_HEADER)
        .map_err(js::failed("Headers.get"))?
    {
        js::set(headers, "content-encoding", &encoding)?;
        headers
            .delete(STORED_ENCODING_HEADER)
            .map_err(js::failed("Headers.delete"))?;
    }
    Ok(())
}

/// The entry to store for `response` (a full 200): a copy sharing its body (teed), with the
/// headers an entry keeps ([`stored_headers`]) when its bytes carry a `Content-Encoding`.
pub(crate) fn entry_of(response: &Response) -> Result<Response, EdgeError> {
    let copy = response.clone().map_err(js::failed("Response.clone"))?;
    let headers = response.headers();
    if !headers
        .has("content-encoding")
        .map_err(js::failed("Headers.has"))?
    {
        return Ok(copy);
    }
    let stored = stored_headers(&headers)?;
    js::response(
        copy.body().as_ref(),
        &response_init(response.status(), &stored)?,
    )
}
