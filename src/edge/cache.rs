//! Object routes: the edge cache first, then the origin, storing what the policy allows.
//!
//! Entries live in `caches.default` under the Worker's URL for the route without its query,
//! always as `https` (one entry per object, whichever scheme the client used). An object of at
//! most `SEGMENT_BYTES` is one entry, and the Cache API answers Range requests from it; a larger
//! one is a head entry (headers only, marked [`SEGMENT_BYTES_HEADER`]) plus segments, served by
//! [`super::segments`]. A conditional request for a stored object is answered 304 here.
//!
//! A miss asks the origin for the first segment the client needs (a ranged GET of
//! `SEGMENT_BYTES`): its `Content-Range` tells the object's length, so a small object arrives
//! whole in that one answer, streams to the client and is teed into the cache in the background
//! (`waitUntil`); a large one is streamed segment by segment.
//!
//! The edge cache never turns a working origin into an error: a lookup or a store that fails or
//! throws is logged and the answer comes from the origin (see [`super::entries`]).
//!
//! This is the hot path, so it speaks `web_sys` directly and takes each step's outcome in a
//! plain callback (`js::settled`) rather than an async executor: every call into the runtime is
//! a crossing out of Wasm, and these are the ones a request needs.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Headers, ReadableStream, Request, RequestInit, Response, ResponseInit};
use worker::console_warn;
use worker::worker_sys::Context as JsContext;

use crate::policy::{self, FailReason};
use crate::segments::{
    ByteRange, ContentRange, Layout, RangeSpec, Unsatisfiable, Version, OBJECT_LENGTH_HEADER,
    SEGMENT_BYTES_HEADER,
};

use super::entries::{
    entry_of, restore_encoding, stored_headers, EdgeCache, STORED_ENCODING_HEADER,
};
use super::isolate::Isolate;
use super::origin::{self, OriginAnswer};
use super::segments::{self as segmented, Source, Stream};
use super::{js, EdgeError, Incoming};

/// Serves an object route: the promise of the edge cache's answer, else the origin's.
///
/// Each step's outcome is taken by a plain callback rather than awaited: no async executor
/// runs for a request that is not segmented, and a hit, the common case, costs one callback.
pub(crate) fn serve_object(
    incoming: Incoming,
    isolate: Rc<Isolate>,
    ctx: JsContext,
) -> Result<Promise, EdgeError> {
    let cache_key = incoming.cache_key();
    let cache = EdgeCache::open();
    let lookup = cache
        .as_ref()
        .and_then(|cache| cache.find(&JsValue::from_str(&cache_key), &cache_key));
    let miss = Miss {
        incoming,
        isolate,
        ctx,
        cache,
        cache_key,
    };
    let Some(lookup) = lookup else {
        return Ok(Promise::resolve(&miss.ask_origin()));
    };
    Ok(js::settled(&lookup, move |looked_up| match looked_up {
        Ok(hit) if hit.is_object() => miss.on_hit(hit.unchecked_into()),
        Ok(_) => miss.ask_origin(),
        Err(err) => {
            let err = worker::Error::from(err);
            console_warn!(
                "edge cache: lookup of {} failed: {err}; asking the origin",
                miss.cache_key
            );
            miss.ask_origin()
        }
    }))
}

/// What the client asked of an object of a known length.
enum Want {
    /// The whole object (a GET without a usable Range, or a HEAD).
    Full,
    /// These bytes (206).
    Part(ByteRange),
    /// Bytes the object does not have (416).
    Unsatisfiable,
}

/// A request for an object route, and what answering it needs.
pub(crate) struct Miss {
    pub incoming: Incoming,
    pub isolate: Rc<Isolate>,
    pub ctx: JsContext,
    pub cache: Option<EdgeCache>,
    pub cache_key: String,
}

impl Miss {
    /// What the client wants of an object of `total` bytes. A HEAD, and a Range this Worker
    /// does not serve (several ranges, another unit), want the whole object.
    fn want(&self, total: u64) -> Want {
        let spec = match (&self.incoming.range, self.incoming.head) {
            (Some(range), false) => RangeSpec::parse(range),
            _ => None,
        };
        match spec.map(|spec| spec.resolve(total)) {
            None => Want::Full,
            Some(Ok(range)) => Want::Part(range),
            Some(Err(Unsatisfiable)) => Want::Unsatisfiable,
        }
    }

    /// A stored answer: a small object or a miss (relayed), or the head entry of a segmented
    /// object (served by [`segmented`]).
    fn on_hit(self, hit: Response) -> JsValue {
        let headers = hit.headers();
        if let Ok(Some(segment_bytes)) = headers.get(SEGMENT_BYTES_HEADER) {
            return self.on_segmented_hit(hit, &segment_bytes);
        }
        if hit.status() == 200 && self.not_modified(&headers) {
            cancel(hit.body());
            return super::answer(not_modified(&headers));
        }
        if let (Some(range), false, 200) = (&self.incoming.range, self.incoming.head, hit.status())
        {
            // The entry is the whole object: the Cache API answers the Range from it.
            cancel(hit.body());
            let asked = ranged(&self.cache_key, range).map(|request| {
                self.cache
                    .as_ref()
                    .and_then(|cache| cache.find(&request, &self.cache_key))
            });
            let Ok(Some(asked)) = asked else {
                return self.ask_origin();
            };
            return js::settled(&asked, move |found| match found {
                Ok(hit) if hit.is_object() => super::answer(relay_hit(hit.unchecked_into(), false)),
                _ => self.ask_origin(),
            })
            .into();
        }
        super::answer(relay_hit(hit, self.incoming.head))
    }

    fn not_modified(&self, stored: &Headers) -> bool {
        let incoming = &self.incoming;
        if incoming.if_none_match.is_none() && incoming.if_modified_since.is_none() {
            return false;
        }
        policy::not_modified(
            incoming.if_none_match.as_deref(),
            incoming.if_modified_since.as_deref(),
            stored.get("etag").ok().flatten().as_deref(),
            stored.get("last-modified").ok().flatten().as_deref(),
        )
    }

    /// The head entry of a segmented object: its headers say the length, the `ETag` and the
    /// segment size; the bytes come from the segments.
    fn on_segmented_hit(self, hit: Response, segment_bytes: &str) -> JsValue {
        cancel(hit.body());
        let stored = hit.headers();
        let header = |name: &str| stored.get(name).ok().flatten();
        let total = header(OBJECT_LENGTH_HEADER).and_then(|v| v.parse::<u64>().ok());
        let segment_bytes = segment_bytes.parse::<u64>().ok().filter(|s| *s > 0);
        let (Some(total), Some(segment_bytes), Some(etag)) = (total, segment_bytes, header("etag"))
        else {
            console_warn!(
                "edge cache: the head entry of {} is unreadable; asking the origin",
                self.cache_key
            );
            return self.ask_origin();
        };
        if self.not_modified(&stored) {
            return super::answer(not_modified(&stored));
        }
        let result = (|| {
            let headers = Headers::new_with_headers(&stored).map_err(js::failed("new Headers"))?;
            for name in [SEGMENT_BYTES_HEADER, OBJECT_LENGTH_HEADER] {
                headers.delete(name).map_err(js::failed("Headers.delete"))?;
            }
            restore_encoding(&headers)?;
            js::set(&headers, "x-cache", "HIT")?;
            let layout = Layout {
                total,
                segment_bytes,
            };
            let version = Version { etag, total };
            self.answer_segmented(headers, layout, version, None)
        })();
        super::answer(result)
    }

    /// The answer for a segmented object of this layout and version, with `headers` (the
    /// object's, without a length): the body streams from its segments, `first` (the origin's
    /// answer for the first segment wanted) or the edge and the origin.
    fn answer_segmented(
        self,
        headers: Headers,
        layout: Layout,
        version: Version,
        first: Option<Response>,
    ) -> Result<Response, EdgeError> {
        let (status, range) = match self.want(layout.total) {
            Want::Unsatisfiable => {
                if let Some(first) = first {
                    cancel(first.body());
                }
                return unsatisfiable(&headers, layout.total);
            }
            Want::Full => (
                200,
                ByteRange {
                    first: 0,
                    last: layout.total - 1,
                },
            ),
            Want::Part(range) => (206, range),
        };
        if status == 206 {
            js::set(
                &headers,
                "content-range",
                &range.content_range(layout.total),
            )?;
        }
        if self.incoming.head {
            if let Some(first) = first {
                cancel(first.body());
            }
            js::set(&headers, "content-length", &range.len().to_string())?;
            return js::response(None, &response_init(status, &headers)?);
        }
        let pieces = layout.pieces(range);
        let source = match first {
            Some(first) => Source::Cold(first),
            None => Source::Warm,
        };
        let stream = self.into_stream(layout, version, None)?;
        segmented::respond(
            stream,
            pieces,
            source,
            &response_init(status, &headers)?,
            range.len(),
        )
    }

    /// The signed fetch, and the answer made from what the origin says: a response, or the
    /// promise of one.
    ///
    /// A GET or HEAD asks for the segment holding the first byte the client wants; a Range
    /// this Worker cannot place without the object's length (`bytes=-n`, several ranges) goes
    /// to the origin as it is and is never stored.
    pub(crate) fn ask_origin(self) -> JsValue {
        let Some(key) = self.incoming.route.object_key() else {
            return super::answer(Err(EdgeError::Internal(
                "object route without a key".into(),
            )));
        };
        let segment_bytes = self.isolate.config.segment_bytes;
        let first = match (&self.incoming.range, self.incoming.head) {
            (Some(range), false) => RangeSpec::parse(range).and_then(RangeSpec::first),
            _ => Some(0),
        };
        let probe = first.map(|first| {
            let start = first / segment_bytes * segment_bytes;
            ByteRange {
                first: start,
                last: start + segment_bytes - 1,
            }
        });
        let range = match probe {
            Some(probe) => Some(probe.header()),
            None => self.incoming.range.clone(),
        };
        let asked = match origin::request(&self.isolate, &key, range.as_deref(), None) {
            Ok(asked) => asked,
            Err(err) => return super::answer(Err(err)),
        };
        js::settled(&asked, move |found| match found {
            Ok(found) => origin::judge(found.unchecked_into(), move |verdict| match verdict {
                Ok(OriginAnswer::Pass(found)) => match (probe, found.status()) {
                    (Some(probe), 206) => super::answer(self.on_probe(found, probe)),
                    (Some(_), 416) if self.want(0).is_full() && empty(&found) => {
                        super::answer(self.empty_object(found))
                    }
                    _ => super::answer(self.relay(found, probe.is_none())),
                },
                Ok(OriginAnswer::Missing) => super::answer(self.missing()),
                Err(err) => super::answer(Err(err)),
            }),
            Err(_) => super::answer(Err(EdgeError::Origin(FailReason::Unreachable))),
        })
        .into()
    }

    /// The origin has no such object: the 404, remembered briefly.
    fn missing(self) -> Result<Response, EdgeError> {
        let config = &self.isolate.config;
        let kind = self.incoming.route.kind();
        if let Some(cache) = &self.cache {
            if policy::storable(kind, 404, Some(0), config.segment_bytes) {
                let entry = self.isolate.missing(false)?;
                let _ = cache.store(&self.ctx, self.cache_key.clone(), &entry, None);
            }
        }
        self.isolate.missing(self.incoming.head)
    }

    /// The headers of the client's answer made from the origin's `found`: the passed ones
    /// (without length and range, which the caller sets), our content type and cache policy.
    fn object_headers(&self, found: &Response) -> Result<Headers, EdgeError> {
        let from = found.headers();
        let headers = Headers::new().map_err(js::failed("new Headers"))?;
        for name in policy::PASSED_RESPONSE_HEADERS {
            if matches!(name, "content-type" | "content-length" | "content-range") {
                continue;
            }
            if let Some(value) = from.get(name).map_err(js::failed("Headers.get"))? {
                js::set(&headers, name, &value)?;
            }
        }
        js::set(&headers, "content-type", self.incoming.route.content_type())?;
        let kind = self.incoming.route.kind();
        let cache_control = policy::cache_control(kind, 200, &self.isolate.config.ttls);
        set_cache_control(&headers, &cache_control)?;
        js::set(&headers, "x-cache", "MISS")?;
        Ok(headers)
    }

    /// The origin's answer to the ranged GET of the first segment wanted: the object's length
    /// is in its `Content-Range`. A small object is whole in it; a large one is segmented.
    fn on_probe(self, found: Response, probe: ByteRange) -> Result<Response, EdgeError> {
        let from = found.headers();
        let content_range = from
            .get("content-range")
            .map_err(js::failed("Headers.get"))?
            .as_deref()
            .and_then(ContentRange::parse);
        let (Some(got), Some(total)) = (
            content_range.and_then(|c| c.range),
            content_range.and_then(|c| c.total),
        ) else {
            cancel(found.body());
            return Err(EdgeError::Origin(FailReason::BadSegment));
        };
        if got.first != probe.first {
            cancel(found.body());
            return Err(EdgeError::Origin(FailReason::BadSegment));
        }
        let config = &self.isolate.config;
        let layout = Layout {
            total,
            segment_bytes: config.segment_bytes,
        };
        let headers = self.object_headers(&found)?;
        if layout.segmented() {
            let Some(etag) = from.get("etag").map_err(js::failed("Headers.get"))? else {
                cancel(found.body());
                return Err(EdgeError::Origin(FailReason::BadSegment));
            };
            self.store_head(&headers, layout)?;
            let version = Version { etag, total };
            return self.answer_segmented(headers, layout, version, Some(found));
        }
        // A small object: the answer holds all of it.
        match self.want(total) {
            Want::Unsatisfiable => {
                cancel(found.body());
                unsatisfiable(&headers, total)
            }
            Want::Full => {
                js::set(&headers, "content-length", &total.to_string())?;
                let init = response_init(200, &headers)?;
                if self.incoming.head {
                    cancel(found.body());
                    return js::response(None, &init);
                }
                let response = js::response(found.body().as_ref(), &init)?;
                let kind = self.incoming.route.kind();
                if let Some(cache) = &self.cache {
                    if policy::storable(kind, 200, Some(total), config.segment_bytes) {
                        let entry = entry_of(&response)?;
                        let _ = cache.store(&self.ctx, self.cache_key.clone(), &entry, None);
                    }
                }
                Ok(response)
            }
            Want::Part(range) => {
                // The client wants part of it: serve that part, store the whole.
                let whole = stored_headers(&headers)?;
                js::set(&whole, "content-length", &total.to_string())?;
                js::set(&headers, "content-range", &range.content_range(total))?;
                let etag = from.get("etag").map_err(js::failed("Headers.get"))?;
                let version = Version {
                    etag: etag.unwrap_or_default(),
                    total,
                };
                let stream =
                    self.into_stream(layout, version, Some(response_init(200, &whole)?))?;
                let pieces = layout.pieces(range);
                let init = response_init(206, &headers)?;
                segmented::respond(stream, pieces, Source::Cold(found), &init, range.len())
            }
        }
    }

    /// The segment stream that serves this object's `version` in `layout`.
    fn into_stream(
        self,
        layout: Layout,
        version: Version,
        whole_entry: Option<ResponseInit>,
    ) -> Result<Stream, EdgeError> {
        let object_key = self
            .incoming
            .route
            .object_key()
            .ok_or_else(|| EdgeError::Internal("object route without a key".into()))?;
        Ok(Stream {
            isolate: self.isolate,
            cache: self.cache,
            ctx: self.ctx,
            object_key,
            cache_key: self.cache_key,
            kind: self.incoming.route.kind(),
            layout,
            version,
            whole_entry,
        })
    }

    /// Stores the head entry of a segmented object: its headers, its length and the segment
    /// size, no body.
    fn store_head(&self, headers: &Headers, layout: Layout) -> Result<(), EdgeError> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let head = stored_headers(headers)?;
        js::set(
            &head,
            SEGMENT_BYTES_HEADER,
            &layout.segment_bytes.to_string(),
        )?;
        js::set(&head, OBJECT_LENGTH_HEADER, &layout.total.to_string())?;

        let entry = js::response(None, &response_init(200, &head)?)?;
        let _ = cache.store(&self.ctx, self.cache_key.clone(), &entry, None);
        Ok(())
    }

    /// An object of no bytes (the origin cannot serve a Range of it): a 200 with an empty
    /// body, stored like any small object.
    fn empty_object(self, found: Response) -> Result<Response, EdgeError> {
        cancel(found.body());
        let headers = self.object_headers(&found)?;
        js::set(&headers, "content-length", "0")?;
        let init = response_init(200, &headers)?;
        if let Some(cache) = &self.cache {
            let kind = self.incoming.route.kind();
            if policy::storable(kind, 200, Some(0), self.isolate.config.segment_bytes) {
                let entry = js::text_response(Some(""), &init)?;
                let _ = cache.store(&self.ctx, self.cache_key.clone(), &entry, None);
            }
        }
        js::text_response((!self.incoming.head).then_some(""), &init)
    }

    /// The origin's answer relayed as it is (a 200 when it ignored the Range, a 416, a 206 for
    /// a Range sent as the client wrote it), stored when the policy allows and `passed` is
    /// false (the answer is the whole object the client asked for).
    fn relay(self, found: Response, passed: bool) -> Result<Response, EdgeError> {
        let Miss {
            incoming,
            isolate,
            ctx,
            cache,
            cache_key,
        } = &self;
        let config = &isolate.config;
        let kind = incoming.route.kind();
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
        set_cache_control(&headers, &cache_control)?;
        js::set(&headers, "x-cache", "MISS")?;
        let init = response_init(status, &headers)?;
        if incoming.head {
            cancel(found.body());
            return js::response(None, &init);
        }
        let response = js::response(found.body().as_ref(), &init)?;
        let length = headers
            .get("content-length")
            .map_err(js::failed("Headers.get"))?
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(cache) = cache {
            if !passed
                && incoming.range.is_none()
                && policy::storable(kind, status, length, config.segment_bytes)
            {
                let entry = entry_of(&response)?;
                let _ = cache.store(ctx, cache_key.clone(), &entry, None);
            }
        }
        Ok(response)
    }
}

impl Want {
    fn is_full(&self) -> bool {
        matches!(self, Want::Full)
    }
}

/// Whether a 416 says the object has no bytes at all (`Content-Range: bytes */0`).
fn empty(found: &Response) -> bool {
    let range = found.headers().get("content-range").ok().flatten();
    range.as_deref().and_then(ContentRange::parse)
        == Some(ContentRange {
            range: None,
            total: Some(0),
        })
}

/// A response init with this status and headers; the body is passed as it is, whatever
/// `Content-Encoding` the headers carry.
pub(crate) fn response_init(status: u16, headers: &Headers) -> Result<ResponseInit, EdgeError> {
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(headers);
    js::manual_encoding(&init, "encodeBody")?;
    Ok(init)
}

/// The 416 for bytes an object of `total` bytes does not have, with the object's headers.
fn unsatisfiable(headers: &Headers, total: u64) -> Result<Response, EdgeError> {
    js::set(headers, "content-range", &format!("bytes */{total}"))?;
    js::set(headers, "cache-control", "no-store")?;
    js::set(headers, "content-length", "0")?;
    headers
        .delete("content-encoding")
        .map_err(js::failed("Headers.delete"))?;
    js::text_response(None, &response_init(416, headers)?)
}

/// The 304 for a stored object the client already has: its validators and cache policy.
fn not_modified(stored: &Headers) -> Result<Response, EdgeError> {
    let headers = Headers::new().map_err(js::failed("new Headers"))?;
    for name in ["etag", "last-modified", "cache-control"] {
        if let Some(value) = stored.get(name).map_err(js::failed("Headers.get"))? {
            js::set(&headers, name, &value)?;
        }
    }
    js::set(&headers, "x-cache", "HIT")?;
    js::response(None, &response_init(304, &headers)?)
}

/// The request the cache is asked with for a Range: GET with the client's Range.
pub(crate) fn ranged(cache_key: &str, range: &str) -> Result<JsValue, EdgeError> {
    let headers = Headers::new().map_err(js::failed("new Headers"))?;
    js::set(&headers, "range", range)?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers(&headers);
    Request::new_with_str_and_init(cache_key, &init)
        .map(Into::into)
        .map_err(js::failed("new Request"))
}

/// A stored answer, relayed with `x-cache: HIT`; no body for HEAD.
///
/// The stored response is its own init: the runtime copies its status and headers (the ones
/// this Worker chose when it stored the entry) into the new, mutable response. One stored with
/// a `Content-Encoding` gets an init that passes its bytes as they are.
fn relay_hit(hit: Response, head: bool) -> Result<Response, EdgeError> {
    let body = hit.body();
    let body = if head {
        cancel(body);
        None
    } else {
        body
    };
    let encoded = hit
        .headers()
        .has(STORED_ENCODING_HEADER)
        .map_err(js::failed("Headers.has"))?;
    let response = if encoded {
        let headers =
            Headers::new_with_headers(&hit.headers()).map_err(js::failed("new Headers"))?;
        restore_encoding(&headers)?;
        js::response(body.as_ref(), &response_init(hit.status(), &headers)?)?
    } else {
        js::response(body.as_ref(), hit.unchecked_ref())?
    };
    js::set(&response.headers(), "x-cache", "HIT")?;
    Ok(response)
}

/// `Cache-Control` for an answer; one whose bytes carry a `Content-Encoding` also says
/// `no-transform`, so no proxy on the way (Cloudflare's own compression included) decodes or
/// re-encodes them.
fn set_cache_control(headers: &Headers, value: &str) -> Result<(), EdgeError> {
    if headers
        .has("content-encoding")
        .map_err(js::failed("Headers.has"))?
    {
        js::set(headers, "cache-control", &format!("{value}, no-transform"))
    } else {
        js::set(headers, "cache-control", value)
    }
}

/// Let go of a body nobody will read, so the subrequest stops.
pub(crate) fn cancel(body: Option<ReadableStream>) {
    if let Some(body) = body {
        let _ = body.cancel();
    }
}
