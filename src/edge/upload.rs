//! The upload path (wasm32 only): a PUT with a `write` grant, checked by [`crate::push`] and
//! [`crate::narinfo`], then written to Spaces with a signed PUT.
//!
//! - `/nix-cache-info`: the Worker serves it itself; a body whose `StoreDir` matches is
//!   answered 204 and ignored.
//! - a narinfo: read whole (at most 64 KiB, decoded when gzip or deflate), parsed strictly,
//!   its NAR checked with one HEAD (it must be there with exactly `FileSize` bytes), signed with
//!   `SIGNING_KEY` unless already signed by that key name, written, and then this location's
//!   edge entry for it (a remembered miss) is deleted.
//! - a NAR: skipped when the bucket has it already; otherwise passed chunk by chunk into a
//!   `FixedLengthStream` (so Spaces gets a `Content-Length`; at most one chunk is held) while
//!   the runtime hashes it ([`digest`]). The PUT is signed with the SHA-256 the NAR's name
//!   promises as `x-amz-content-sha256`, so Spaces and S3 refuse a body that does not match
//!   and keep nothing of it; the Worker's own hash makes that the client's 400 whatever the
//!   origin answered (s3s-fs answers 500), and deletes what an origin that did not check
//!   stored.
//! - listings, logs, debug info, realisations: streamed with `UNSIGNED-PAYLOAD`, keeping the
//!   client's `Content-Type` and `Content-Encoding`.
//!
//! Plain async Rust: one future per upload, awaited by the runtime as a promise.

use std::rc::Rc;

use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{
    Cache, ReadableStream, ReadableStreamDefaultReader, Request, Response, WritableStream,
};
use worker::worker_sys::ext::CacheStorageExt;
use worker::{console_log, console_warn};

use crate::narinfo::{self, NarInfo};
use crate::nix::Route;
use crate::policy::{self, FailReason};
use crate::push::{self, Refused, WriteVerdict};
use crate::sigv4::{self, EMPTY_SHA256, UNSIGNED_PAYLOAD};

use super::digest;
use super::isolate::Isolate;
use super::origin;
use super::{js, EdgeError, Incoming};

#[wasm_bindgen]
extern "C" {
    /// workerd's identity stream of a declared length: a body made from its readable side
    /// is sent with that `Content-Length`.
    #[wasm_bindgen(js_name = FixedLengthStream)]
    pub(crate) type FixedLengthStream;

    #[wasm_bindgen(catch, constructor, js_class = "FixedLengthStream")]
    pub(crate) fn new(length: f64) -> Result<FixedLengthStream, JsValue>;

    #[wasm_bindgen(method, getter)]
    pub(crate) fn readable(this: &FixedLengthStream) -> ReadableStream;

    #[wasm_bindgen(method, getter)]
    pub(crate) fn writable(this: &FixedLengthStream) -> WritableStream;

    /// The Compression Streams API's decoder (gzip, deflate).
    #[wasm_bindgen(js_name = DecompressionStream)]
    type DecompressionStream;

    #[wasm_bindgen(catch, constructor, js_class = "DecompressionStream")]
    fn new(format: &str) -> Result<DecompressionStream, JsValue>;

    #[wasm_bindgen(method, getter)]
    fn readable(this: &DecompressionStream) -> ReadableStream;

    #[wasm_bindgen(method, getter)]
    fn writable(this: &DecompressionStream) -> WritableStream;
}

/// What the origin's refusal of a body that does not match its signed SHA-256 becomes.
const DIGEST_MISMATCH: &str = "body does not match the SHA-256 it was sent with";

/// Answers a PUT: the promise of the response (an error becomes its plain-text answer).
pub(crate) fn serve(
    req: Request,
    incoming: Incoming,
    isolate: Rc<Isolate>,
    holder: String,
) -> Promise {
    future_to_promise(async move {
        let result = upload(&req, &incoming, &isolate).await;
        match &result {
            Ok(response) => console_log!(
                "PUT {} by {holder:?}: {}",
                incoming.route.path(),
                response.status()
            ),
            Err(err) => console_warn!(
                "PUT {} by {holder:?} refused: {}",
                incoming.route.path(),
                err.status()
            ),
        }
        if result.is_err() {
            if let Some(body) = req.body() {
                let _ = body.cancel();
            }
        }
        Ok(super::answer(result))
    })
}

fn refusal(refused: Refused) -> EdgeError {
    EdgeError::Upload {
        status: refused.status,
        reason: refused.reason,
    }
}

fn header(req: &Request, name: &str) -> Result<Option<String>, EdgeError> {
    req.headers().get(name).map_err(js::failed("Headers.get"))
}

async fn upload(
    req: &Request,
    incoming: &Incoming,
    isolate: &Isolate,
) -> Result<Response, EdgeError> {
    upload_with(req, incoming, isolate, UNSIGNED_PAYLOAD).await
}

/// [`upload`], with the payload hash the client declared for the body (a hex SHA-256 is passed
/// on for objects streamed as they are, so the origin checks the bytes; a NAR is always signed
/// with the hash its name promises, a narinfo with the hash of the signed text).
pub(crate) async fn upload_with(
    req: &Request,
    incoming: &Incoming,
    isolate: &Isolate,
    payload_hash: &str,
) -> Result<Response, EdgeError> {
    let config = &isolate.config;
    let length = push::body_length(
        header(req, "content-length")?.as_deref(),
        &incoming.route,
        config.push.max_upload_bytes,
    )
    .map_err(refusal)?;
    match &incoming.route {
        Route::CacheInfo => {
            let body = read_all(req.body(), None, push::MAX_CACHE_INFO_BYTES as usize).await?;
            let text = String::from_utf8_lossy(&body);
            push::check_cache_info(&text, &config.cache_info.store_dir).map_err(refusal)?;
            done(204, "")
        }
        Route::NarInfo(hash) => {
            let decoding = push::narinfo_decoding(header(req, "content-encoding")?.as_deref())
                .map_err(refusal)?;
            let body = read_all(req.body(), decoding, narinfo::MAX_NARINFO_BYTES).await?;
            // A SHA-256 the client signed the body with (the S3 endpoint's PutObject) is
            // checked here: the narinfo itself never reaches the origin, its signed text does.
            if decoding.is_none()
                && payload_hash.len() == 64
                && sigv4::sha256_hex(&body) != payload_hash
            {
                return Err(EdgeError::Upload {
                    status: 400,
                    reason: "body does not match the SHA-256 it was sent with".into(),
                });
            }
            let info = NarInfo::parse(&body, hash, &config.cache_info.store_dir).map_err(|e| {
                EdgeError::Upload {
                    status: 400,
                    reason: e.to_string(),
                }
            })?;
            put_narinfo(incoming, isolate, &info).await
        }
        Route::Nar { hash, .. } => {
            let key = object_key(&incoming.route)?;
            if stored_size(isolate, &key).await? == Some(length) {
                if let Some(body) = req.body() {
                    let _ = body.cancel();
                }
                forget_at_edge(incoming).await;
                return done(200, "already in this cache\n");
            }
            let expected = narinfo::nar_file_sha256_hex(hash);
            let answer = put_nar(
                req,
                isolate,
                &key,
                length,
                &expected,
                incoming.route.content_type(),
            )
            .await?;
            // Nix asks for the NAR (a HEAD) before pushing it: forget that miss.
            forget_at_edge(incoming).await;
            Ok(answer)
        }
        Route::Landing => Err(EdgeError::Method(policy::ALLOW)),
        route => {
            let key = object_key(route)?;
            let content_type =
                push::kept_header("Content-Type", header(req, "content-type")?.as_deref())
                    .map_err(refusal)?
                    .unwrap_or_else(|| route.content_type().to_string());
            let encoding = push::kept_header(
                "Content-Encoding",
                header(req, "content-encoding")?.as_deref(),
            )
            .map_err(refusal)?;
            let mut extra = vec![("content-type".to_string(), content_type)];
            if let Some(encoding) = encoding {
                extra.push(("content-encoding".to_string(), encoding));
            }
            stream_put(req, isolate, &key, length, extra, payload_hash).await?;
            forget_at_edge(incoming).await;
            done(200, "stored\n")
        }
    }
}

fn object_key(route: &Route) -> Result<String, EdgeError> {
    route
        .object_key()
        .ok_or_else(|| EdgeError::Internal("object route without a key".into()))
}

/// A short plain-text success answer.
fn done(status: u16, body: &str) -> Result<Response, EdgeError> {
    let init = js::init(
        status,
        &[
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
        ],
    )?;
    js::text_response((status != 204).then_some(body), &init)
}

/// The narinfo's NAR must be in the bucket with exactly `FileSize` bytes; then the narinfo
/// (signed) is written and the edge forgets what it remembered for it.
async fn put_narinfo(
    incoming: &Incoming,
    isolate: &Isolate,
    info: &NarInfo,
) -> Result<Response, EdgeError> {
    let nar_key = object_key(&info.nar)?;
    match stored_size(isolate, &nar_key).await? {
        None => {
            return Err(EdgeError::Upload {
                status: 409,
                reason: format!("its NAR {nar_key} is not in this cache: upload the NAR first"),
            })
        }
        Some(size) if size != info.file_size => {
            return Err(EdgeError::Upload {
                status: 409,
                reason: format!(
                    "its NAR {nar_key} has {size} bytes, FileSize says {}",
                    info.file_size
                ),
            })
        }
        Some(_) => {}
    }
    let text = match &isolate.config.push.signing_key {
        Some(key) => info.with_signature(key),
        None => info.text.clone(),
    };
    let key = object_key(&incoming.route)?;
    let hash = sigv4::sha256_hex(text.as_bytes());
    let extra = vec![(
        "content-type".to_string(),
        incoming.route.content_type().to_string(),
    )];
    let sent = origin::signed(
        isolate,
        "PUT",
        &key,
        "",
        &extra,
        &hash,
        Some(&JsValue::from_str(&text)),
    )?;
    let answer = JsFuture::from(sent)
        .await
        .map_err(|_| EdgeError::Origin(FailReason::Unreachable))?;
    written(answer.unchecked_into()).await?;
    forget_at_edge(incoming).await;
    done(200, "stored\n")
}

/// A signed PUT of `key` whose body is the readable side of the `FixedLengthStream` returned
/// (so the origin gets a `Content-Length` of `length`): what is written to its writable side
/// is sent. The promise is the origin's answer.
fn put_stream(
    isolate: &Isolate,
    key: &str,
    length: u64,
    extra: &[(String, String)],
    payload_hash: &str,
) -> Result<(FixedLengthStream, Promise), EdgeError> {
    let stream = FixedLengthStream::new(length as f64).map_err(js::failed("FixedLengthStream"))?;
    let sent = origin::signed(
        isolate,
        "PUT",
        key,
        "",
        extra,
        payload_hash,
        Some(&stream.readable()),
    )?;
    Ok((stream, sent))
}

/// Streams the request body to `key` at the origin, signed with `payload_hash` ([`put_stream`]);
/// the runtime pipes it, nothing is buffered.
async fn stream_put(
    req: &Request,
    isolate: &Isolate,
    key: &str,
    length: u64,
    extra: Vec<(String, String)>,
    payload_hash: &str,
) -> Result<(), EdgeError> {
    let (stream, sent) = put_stream(isolate, key, length, &extra, payload_hash)?;
    let piped = match req.body() {
        Some(body) => body.pipe_to(&stream.writable()),
        None => stream
            .writable()
            .get_writer()
            .map_err(js::failed("getWriter"))?
            .close(),
    };
    // The pipe's own outcome is the origin's to tell: a body that ends early or an origin
    // that goes away both fail the PUT. Its rejection is handled here so none goes unseen.
    let _ = js::settled(&piped, |_| JsValue::UNDEFINED);
    let answer = JsFuture::from(sent)
        .await
        .map_err(|_| EdgeError::Origin(FailReason::Unreachable))?;
    written(answer.unchecked_into()).await
}

/// Streams a NAR to the origin, signed with the SHA-256 its name promises, while the runtime
/// hashes the bytes as they pass ([`digest`]). Spaces and S3 refuse a body that does not match
/// and keep nothing of it; whatever the origin answered, a body whose hash is not its name is
/// the client's 400, and an origin that stored it anyway has it deleted again.
async fn put_nar(
    req: &Request,
    isolate: &Isolate,
    key: &str,
    length: u64,
    expected_hex: &str,
    content_type: &str,
) -> Result<Response, EdgeError> {
    let extra = [("content-type".to_string(), content_type.to_string())];
    let (stream, sent) = put_stream(isolate, key, length, &extra, expected_hex)?;
    let hashed = digest::pass_sha256(req.body(), stream.writable());
    let answer: Option<Response> = JsFuture::from(sent).await.ok().map(JsCast::unchecked_into);
    let stored = answer
        .as_ref()
        .is_some_and(|a| (200..300).contains(&a.status()));
    // An origin that answers before the body's end (a refusal, most often) may never read the
    // rest: the hash is waited for a little while only. One that read it all (s3s-fs reads the
    // whole body before it refuses a mismatch) gets it at once.
    let hash = digest::string_within(&hashed, HASH_WAIT_MS).await;
    if hash.as_deref().is_some_and(|h| h != expected_hex) {
        if let Some(body) = answer.as_ref().and_then(Response::body) {
            let _ = body.cancel();
        }
        if stored {
            remove(isolate, key).await?;
        }
        return Err(nar_mismatch());
    }
    let Some(answer) = answer else {
        return Err(EdgeError::Origin(FailReason::Unreachable));
    };
    match written(answer).await {
        Ok(()) => done(200, "stored\n"),
        Err(EdgeError::Upload { reason, .. }) if reason == DIGEST_MISMATCH => Err(nar_mismatch()),
        Err(e) => Err(e),
    }
}

/// How long a NAR upload waits, after the origin's answer, for the hash of what was sent.
const HASH_WAIT_MS: i32 = 2_000;

fn nar_mismatch() -> EdgeError {
    EdgeError::Upload {
        status: 400,
        reason: "NAR body does not hash to its file name: nothing stored".into(),
    }
}

/// Deletes `key` at the origin (one signed DELETE): what an origin that does not check the
/// payload hash stored of a corrupt NAR.
async fn remove(isolate: &Isolate, key: &str) -> Result<(), EdgeError> {
    let sent = origin::signed(isolate, "DELETE", key, "", &[], EMPTY_SHA256, None)?;
    let answer = JsFuture::from(sent)
        .await
        .map_err(|_| EdgeError::Origin(FailReason::Unreachable))?;
    written(answer.unchecked_into()).await
}

/// The next chunk of a body as bytes, `None` at its end.
async fn next_chunk(reader: &ReadableStreamDefaultReader) -> Result<Option<Uint8Array>, JsValue> {
    let result = JsFuture::from(reader.read()).await?;
    if Reflect::get(&result, &"done".into())?.is_truthy() {
        return Ok(None);
    }
    let value = Reflect::get(&result, &"value".into())?;
    Ok(Some(value.dyn_into::<Uint8Array>()?))
}

/// Reads a whole small body (decoded with `decoding`), refusing one over `limit` bytes.
pub(crate) async fn read_all(
    body: Option<ReadableStream>,
    decoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, EdgeError> {
    let Some(mut body) = body else {
        return Ok(Vec::new());
    };
    if let Some(format) = decoding {
        let decoder =
            DecompressionStream::new(format).map_err(js::failed("DecompressionStream"))?;
        let _ = body.pipe_to(&decoder.writable());
        body = decoder.readable();
    }
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut out = Vec::new();
    loop {
        let chunk = next_chunk(&reader).await.map_err(|_| EdgeError::Upload {
            status: 400,
            reason: "body could not be read (or decoded)".into(),
        })?;
        let Some(chunk) = chunk else { break };
        if out.len() + chunk.length() as usize > limit {
            let _ = reader.cancel();
            return Err(EdgeError::Upload {
                status: 413,
                reason: format!("body is over the {limit} bytes this file may have"),
            });
        }
        out.extend_from_slice(&chunk.to_vec());
    }
    Ok(out)
}

/// The size of `key` in the bucket (one signed HEAD), `None` when it is not there.
async fn stored_size(isolate: &Isolate, key: &str) -> Result<Option<u64>, EdgeError> {
    let sent = origin::signed(isolate, "HEAD", key, "", &[], EMPTY_SHA256, None)?;
    let answer: Response = JsFuture::from(sent)
        .await
        .map_err(|_| EdgeError::Origin(FailReason::Unreachable))?
        .unchecked_into();
    // A HEAD has no body to name an S3 error code.
    match policy::classify_origin(answer.status(), None) {
        policy::OriginVerdict::Missing => Ok(None),
        policy::OriginVerdict::Pass if answer.status() == 200 => Ok(answer
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())),
        policy::OriginVerdict::Pass => {
            Err(EdgeError::Origin(FailReason::Unexpected(answer.status())))
        }
        policy::OriginVerdict::Fail(reason) => Err(EdgeError::Origin(reason)),
    }
}

/// Judges the origin's answer to a write; its error body (small) names the S3 code.
async fn written(answer: Response) -> Result<(), EdgeError> {
    let status = answer.status();
    let code = if (200..300).contains(&status) {
        if let Some(body) = answer.body() {
            let _ = body.cancel();
        }
        None
    } else {
        let text = read_all(answer.body(), None, 16 * 1024)
            .await
            .unwrap_or_default();
        policy::s3_error_code(&String::from_utf8_lossy(&text)).map(str::to_string)
    };
    match push::judge_write(status, code.as_deref()) {
        WriteVerdict::Done => Ok(()),
        WriteVerdict::DigestMismatch => Err(EdgeError::Upload {
            status: 400,
            reason: DIGEST_MISMATCH.into(),
        }),
        WriteVerdict::Fail(reason) => Err(EdgeError::Origin(reason)),
    }
}

/// Deletes this location's edge entry for the uploaded object (a remembered miss, most
/// often), so the next read asks the origin.
pub(crate) async fn forget_at_edge(incoming: &Incoming) {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let cache: Option<Cache> = global.caches().ok().map(|c| c.default());
    if let Some(cache) = cache {
        if JsFuture::from(cache.delete_with_str(&incoming.cache_key()))
            .await
            .is_err()
        {
            console_warn!(
                "could not delete the edge entry of {}",
                incoming.route.path()
            );
        }
    }
}
