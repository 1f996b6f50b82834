//! Streams a segmented object (or part of any object) to the client, segment by segment, from
//! the edge where a segment is stored, else from the origin while storing it.
//!
//! What it owns: the client's body (a `FixedLengthStream` of the exact length promised), the
//! order of segments, the ranged GET of each missing one (`If-Match` the object's `ETag`), the
//! check that each belongs to the version being served ([`Version`]), and its store under its
//! own key. The arithmetic is [`crate::segments`]; this module only moves bytes.
//!
//! Memory: one segment is read from the origin at a time. The next is asked for when the
//! current one starts streaming (asked, not read: its bytes wait in the connection), and read
//! only once the client and the store have both taken every byte of the current one (the
//! store may still be finishing, but holds none of them for us). Each segment from the origin
//! is teed, one branch to the client and one to the edge cache, and the faster may run ahead
//! of the slower by at most that segment: a request holds about one segment whatever the
//! speed of its client or of the store, and the origin is read no faster than the slower of
//! the two plus that segment. (Passing the bytes through Wasm in steps instead, to both at
//! once, held more: 25 MiB against 11 above idle for a client at 2 MB/s on 4 MiB segments,
//! the runtime collecting the steps' buffers late.)
//!
//! Failure: a segment that fails or does not match is never stored (a store whose body errors
//! is dropped by the Cache API), the client's body is aborted, so the client sees a transfer
//! cut short of its `Content-Length`, never a short body that looks whole, and a version
//! mismatch drops the object's head entry so the next request starts afresh.
//!
//! Plain `async` Rust: a segmented answer is a few awaits per segment, not per request.

use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{
    Headers, ReadableStream, ReadableStreamDefaultReader, Response, ResponseInit,
    StreamPipeOptions, WritableStream,
};
use worker::worker_sys::Context as JsContext;
use worker::{console_error, console_log, console_warn};

use crate::nix::ObjectKind;
use crate::policy;
use crate::segments::{segment_key, ContentRange, Layout, Piece, Version};

use super::cache::{cancel, ranged, response_init};
use super::entries::{wait_until, EdgeCache};
use super::isolate::Isolate;
use super::{js, origin, EdgeError};

#[wasm_bindgen]
extern "C" {
    /// workerd's `FixedLengthStream`: an identity stream that gives its readable side a known
    /// length (so the response has a `Content-Length`) and errors if fewer bytes are written.
    type FixedLengthStream;

    #[wasm_bindgen(catch, constructor)]
    fn new(length: f64) -> Result<FixedLengthStream, JsValue>;

    #[wasm_bindgen(method, getter)]
    fn readable(this: &FixedLengthStream) -> ReadableStream;

    #[wasm_bindgen(method, getter)]
    fn writable(this: &FixedLengthStream) -> WritableStream;
}

/// `body` checked to be exactly `length` bytes: it errors if the body ends before (or runs
/// past) that, so a segment cut short is never stored. (workerd cannot pipe one such stream
/// into another, so the client's copy is checked by its own `FixedLengthStream` instead: a
/// segment that ends early leaves the answer short of its length, and it fails.)
///
/// With it, the promise that settles (either way) once all of `body` has been taken by the
/// checked stream's reader: the stream holds no bytes of its own, so from then on nothing of
/// `body` waits in memory for the store, though the store itself may not have settled.
fn exactly(body: &ReadableStream, length: u64) -> Result<(ReadableStream, Promise), EdgeError> {
    let fixed = FixedLengthStream::new(length as f64).map_err(js::failed("FixedLengthStream"))?;
    let piped = body.pipe_to(&fixed.writable());
    let taken = js::settled(&piped, |_| JsValue::UNDEFINED);
    Ok((fixed.readable(), taken))
}

/// Where the first piece's bytes come from.
pub(crate) enum Source {
    /// The origin's answer for the first piece's segment is in hand (a miss); later segments
    /// are asked of the origin directly.
    Cold(Response),
    /// The object's head entry was found: each segment is looked up at the edge first.
    Warm,
}

/// One object being streamed, and what fetching and storing its segments needs.
pub(crate) struct Stream {
    pub isolate: Rc<Isolate>,
    pub cache: Option<EdgeCache>,
    pub ctx: JsContext,
    /// The object's key in the bucket.
    pub object_key: String,
    /// The object's own edge cache key.
    pub cache_key: String,
    pub kind: ObjectKind,
    pub layout: Layout,
    pub version: Version,
    /// A small object served in part: the init of the whole entry to store under
    /// `cache_key` (instead of segments).
    pub whole_entry: Option<ResponseInit>,
}

/// The response whose body (`length` bytes) is `pieces` streamed in order; the streaming runs
/// after the response is returned, kept alive by `waitUntil`.
pub(crate) fn respond(
    stream: Stream,
    pieces: Vec<Piece>,
    source: Source,
    init: &ResponseInit,
    length: u64,
) -> Result<Response, EdgeError> {
    let fixed = FixedLengthStream::new(length as f64).map_err(js::failed("FixedLengthStream"))?;
    let response = js::response(Some(&fixed.readable()), init)?;
    let writable = fixed.writable();
    let ctx: JsContext = stream.ctx.clone().unchecked_into();
    let pumped = future_to_promise(async move {
        stream.pump(pieces, source, writable).await;
        Ok(JsValue::UNDEFINED)
    });
    wait_until(&ctx, &pumped);
    Ok(response)
}

impl Stream {
    async fn pump(self, pieces: Vec<Piece>, source: Source, writable: WritableStream) {
        let (mut first, warm) = match source {
            Source::Cold(found) => (Some(found), false),
            Source::Warm => (None, true),
        };
        let mut ahead: Option<Promise> = None;
        // The store of the segment before: the next segment is read only once the store has
        // taken all of it, so a store slower than the client holds back the origin instead of
        // piling segments up in memory.
        let mut storing: Option<Promise> = None;
        for (n, piece) in pieces.iter().enumerate() {
            if let Some(before) = storing.take() {
                // Settled either way: a failed store is logged where it fails.
                let _ = JsFuture::from(before).await;
            }
            let body = match first.take() {
                Some(found) => self.origin_segment(piece.index, found, false),
                None => self.segment(piece.index, warm, ahead.take()).await,
            };
            let (body, store) = match body {
                Ok(body) => body,
                Err(reason) => return self.fail(&writable, &reason).await,
            };
            if !warm {
                // Ask for the next segment now; its bytes wait in the connection until read.
                if let Some(next) = pieces.get(n + 1) {
                    ahead = self.fetch(next.index).ok();
                }
            }
            storing = store;
            if let Err(reason) = deliver(body, piece, &writable).await {
                self.drop_segment(piece.index, &reason);
                return self.fail(&writable, &reason).await;
            }
        }
        if let Err(err) = JsFuture::from(writable.close()).await {
            let err = worker::Error::from(err);
            console_warn!(
                "{}: closing the client's body failed: {err}",
                self.cache_key
            );
        }
    }

    /// A segment that failed on its way to the client is not kept: one read from the edge is
    /// dropped, and of one from the origin (whose store failed with it) whatever the Cache API
    /// may have kept.
    fn drop_segment(&self, index: u64, reason: &str) {
        if let Some(cache) = &self.cache {
            let why = format!("it failed on its way: {reason}");
            cache.forget(&self.ctx, &self.segment_key(index), &why);
        }
    }

    /// The body of segment `index` and the promise that its store has taken it: from the edge
    /// when `warm` and stored there (nothing to store), else from the origin (`ahead`, when it
    /// was already asked for).
    async fn segment(
        &self,
        index: u64,
        warm: bool,
        ahead: Option<Promise>,
    ) -> Result<(ReadableStream, Option<Promise>), String> {
        if warm {
            if let Some(body) = self.stored_segment(index).await {
                return Ok((body, None));
            }
        }
        let asked = match ahead {
            Some(asked) => asked,
            None => self.fetch(index).map_err(|err| err.message())?,
        };
        let found = JsFuture::from(asked)
            .await
            .map_err(|_| format!("segment {index}: origin unreachable"))?;
        self.origin_segment(index, found.unchecked_into(), true)
    }

    /// The signed ranged GET of segment `index`, only if the object still has this version.
    fn fetch(&self, index: u64) -> Result<Promise, EdgeError> {
        let range = self.layout.segment(index).header();
        origin::request(
            &self.isolate,
            &self.object_key,
            Some(&range),
            Some(&self.version.etag),
        )
    }

    /// Segment `index` as stored at the edge, if it is there and belongs to this version.
    async fn stored_segment(&self, index: u64) -> Option<ReadableStream> {
        let cache = self.cache.as_ref()?;
        let key = self.segment_key(index);
        // Asked as a Range of the whole segment, so the Cache API's `Content-Range` says how
        // many bytes it really holds: a segment stored short (Miniflare keeps what arrived of
        // a store whose body failed) is seen before any of it is sent.
        let whole = self.layout.segment(index);
        let request = ranged(&key, &format!("bytes=0-{}", whole.len() - 1)).ok()?;
        let asked = cache.find(&request, &key)?;
        let found = match JsFuture::from(asked).await {
            Ok(found) if found.is_object() => found.unchecked_into::<Response>(),
            Ok(_) => return None,
            Err(err) => {
                let err = worker::Error::from(err);
                console_warn!("edge cache: lookup of {key} failed: {err}; asking the origin");
                return None;
            }
        };
        let headers = found.headers();
        let etag = headers.get("etag").ok().flatten();
        let length = match found.status() {
            206 => headers
                .get("content-range")
                .ok()
                .flatten()
                .as_deref()
                .and_then(ContentRange::parse)
                .and_then(|range| range.total),
            200 => headers
                .get("content-length")
                .ok()
                .flatten()
                .and_then(|v| v.parse().ok()),
            _ => None,
        };
        if let Err(mismatch) =
            self.version
                .check_stored_segment(&self.layout, index, etag.as_deref(), length)
        {
            console_warn!("edge cache: {key} not used: {mismatch}");
            cancel(found.body());
            cache.forget(&self.ctx, &key, &mismatch.to_string());
            return None;
        }
        found.body()
    }

    /// The origin's answer for segment `index`, checked against the version when `check`,
    /// teed: one branch is stored, the other returned for the client, with a promise that
    /// settles (either way) once the store has taken the stored branch's every byte (none when
    /// nothing is stored).
    fn origin_segment(
        &self,
        index: u64,
        found: Response,
        check: bool,
    ) -> Result<(ReadableStream, Option<Promise>), String> {
        if check {
            let headers = found.headers();
            let etag = headers.get("etag").ok().flatten();
            let range = headers.get("content-range").ok().flatten();
            let checked = self.version.check_origin_segment(
                &self.layout,
                index,
                found.status(),
                etag.as_deref(),
                range.as_deref(),
            );
            if let Err(mismatch) = checked {
                cancel(found.body());
                // The object changed at the origin: start afresh next time.
                if let Some(cache) = &self.cache {
                    cache.forget(&self.ctx, &self.cache_key, &mismatch.to_string());
                }
                return Err(mismatch.to_string());
            }
        }
        let body = found
            .body()
            .ok_or_else(|| format!("segment {index}: the origin sent no body"))?;
        let Some(cache) = &self.cache else {
            return Ok((body, None));
        };
        let branches = body.tee();
        let (stored, client): (ReadableStream, ReadableStream) = (
            branches.get(0).unchecked_into(),
            branches.get(1).unchecked_into(),
        );
        let length = match &self.whole_entry {
            Some(_) => self.layout.total,
            None => self.layout.segment(index).len(),
        };
        let (key, done) = match &self.whole_entry {
            Some(_) => (self.cache_key.clone(), None),
            None => {
                let key = self.segment_key(index);
                let count = self.layout.count();
                let said = key.clone();
                let done: Box<dyn FnOnce()> = Box::new(move || {
                    console_log!("edge cache: stored segment {index} of {count}: {said}");
                });
                (key, Some(done))
            }
        };
        // The edge's copy must be exactly the segment's length, or its store fails.
        let entry = exactly(&stored, length).and_then(|(body, taken)| {
            let entry = self
                .entry_init(index)
                .and_then(|init| js::response(Some(&body), &init));
            if entry.is_err() {
                // Nobody will read the checked copy: let it, and the branch behind it, go.
                let _ = body.cancel();
            }
            Ok((entry?, taken))
        });
        match entry {
            // The store holds the next segment back until it has taken this one's bytes, not
            // until it settles: what it does after the last byte holds no memory of ours.
            Ok((entry, taken)) => Ok((
                client,
                cache.store(&self.ctx, key, &entry, done).map(|_| taken),
            )),
            Err(err) => {
                console_warn!("edge cache: not storing {key}: {}", err.message());
                // Still ours unless the checked copy took it (and was cancelled above).
                if !stored.locked() {
                    let _ = stored.cancel();
                }
                Ok((client, None))
            }
        }
    }

    /// The init of the entry stored for segment `index` (or the whole small object).
    fn entry_init(&self, index: u64) -> Result<ResponseInit, EdgeError> {
        if let Some(whole) = &self.whole_entry {
            return Ok(whole.clone());
        }
        let headers = Headers::new().map_err(js::failed("new Headers"))?;
        js::set(
            &headers,
            "content-length",
            &self.layout.segment(index).len().to_string(),
        )?;
        js::set(&headers, "etag", &self.version.etag)?;
        js::set(&headers, "content-type", "application/octet-stream")?;
        let ttls = &self.isolate.config.ttls;
        js::set(
            &headers,
            "cache-control",
            &policy::cache_control(self.kind, 200, ttls),
        )?;
        response_init(200, &headers)
    }

    fn segment_key(&self, index: u64) -> String {
        segment_key(
            &self.cache_key,
            &self.version.etag,
            self.layout.segment_bytes,
            index,
        )
    }

    /// Cuts the client's transfer short: its body is aborted, so it ends before the
    /// `Content-Length` it was promised.
    async fn fail(&self, writable: &WritableStream, reason: &str) {
        console_error!("{}: the answer is cut short: {reason}", self.cache_key);
        let _ = JsFuture::from(writable.abort_with_reason(&JsValue::from_str(reason))).await;
    }
}

/// Writes the wanted bytes of one segment's `body` to the client's `writable`: a whole segment
/// is piped by the runtime; part of one is cut from its chunks (without copying them into Wasm)
/// and counted.
async fn deliver(
    body: ReadableStream,
    piece: &Piece,
    writable: &WritableStream,
) -> Result<(), String> {
    let index = piece.index;
    if piece.whole() {
        let options = StreamPipeOptions::new();
        options.set_prevent_close(true);
        return JsFuture::from(body.pipe_to_with_options(writable, &options))
            .await
            .map(drop)
            .map_err(|err| format!("segment {index}: {}", worker::Error::from(err)));
    }
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let writer = writable
        .get_writer()
        .map_err(|err| format!("segment {index}: {}", worker::Error::from(err)))?;
    let wanted = piece.wanted;
    let copied = async {
        let mut offset = 0u64;
        while offset <= wanted.last {
            let chunk = JsFuture::from(reader.read()).await?;
            if js_sys::Reflect::get(&chunk, &"done".into())?.is_truthy() {
                break;
            }
            let value: Uint8Array = js_sys::Reflect::get(&chunk, &"value".into())?.unchecked_into();
            let len = u64::from(value.length());
            let from = offset.max(wanted.first);
            let to = (offset + len).min(wanted.last + 1);
            if from < to {
                let part = value.subarray((from - offset) as u32, (to - offset) as u32);
                JsFuture::from(writer.write_with_chunk(&part)).await?;
            }
            offset += len;
        }
        Ok::<u64, JsValue>(offset)
    }
    .await;
    let _ = reader.cancel();
    let result = match copied {
        Ok(offset) if offset > wanted.last => Ok(()),
        Ok(offset) => Err(format!(
            "segment {index}: the body ended after {offset} bytes"
        )),
        Err(err) => Err(format!("segment {index}: {}", worker::Error::from(err))),
    };
    if let Err(reason) = &result {
        let _ = writer.abort_with_reason(&JsValue::from_str(reason));
    }
    writer.release_lock();
    result
}
