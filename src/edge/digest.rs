//! A body passed on to a writable stream while the runtime hashes it (wasm32 only).
//!
//! A NAR's file name promises the SHA-256 of its bytes. The PUT to the origin is signed with
//! that hash, so Spaces and S3 refuse a body that does not match; an origin that does not
//! check (or, like s3s-fs, refuses it with a 500 that does not say why) still must not turn a
//! corrupt upload into a stored object or a 5xx. So the upload path hashes the bytes as they
//! pass: each step of about 1 MiB read from the client ([`Steps`]) is written to the runtime's
//! own `crypto.DigestStream` (native SHA-256, no copy into Wasm memory) and to the stream the
//! origin reads. A step goes on only once the origin has taken the one before, so at most
//! three steps are held however slow the origin is (unlike `tee`, which buffers for the slower
//! branch without bound).

use js_sys::{ArrayBuffer, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{ReadableStream, WritableStream};

use crate::sigv4;

use super::steps::Steps;

#[wasm_bindgen]
extern "C" {
    /// workerd's `crypto.DigestStream`: a writable stream whose `digest` promise gives the
    /// hash of everything written to it once it is closed.
    #[wasm_bindgen(extends = WritableStream, js_namespace = crypto, js_name = DigestStream)]
    type DigestStream;

    #[wasm_bindgen(catch, constructor, js_namespace = crypto, js_class = "DigestStream")]
    fn new(algorithm: &str) -> Result<DigestStream, JsValue>;

    #[wasm_bindgen(method, getter)]
    fn digest(this: &DigestStream) -> Promise;
}

/// Starts passing `body` on to `out` while hashing it; the promise gives the lowercase hex
/// SHA-256 of every byte passed once `body` has ended and `out` is closed. It is rejected
/// when the client's body fails (then `out` is aborted, so the origin's request fails too)
/// or when `out` refuses a write (then the client's body is cancelled).
pub(crate) fn pass_sha256(body: Option<ReadableStream>, out: WritableStream) -> Promise {
    future_to_promise(async move {
        let hasher = DigestStream::new("SHA-256")?;
        let digest = hasher.digest();
        let hash_writer = hasher.get_writer()?;
        let out_writer = out.get_writer()?;
        if let Some(body) = body {
            let mut steps = Steps::new(body)?;
            // While one step goes to the origin, the next is read from the client and hashed:
            // at most three steps are held.
            let mut sending: Option<(Promise, Uint8Array)> = None;
            loop {
                let chunk = match steps.next().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(err) => {
                        let _ = out_writer.abort_with_reason(&err);
                        return Err(err);
                    }
                };
                // Hashed first: the runtime hashes it within the call, before the stream the
                // origin reads takes the chunk over.
                let hashed = hash_writer.write_with_chunk(&chunk);
                if let Some((sent, before)) = sending.take() {
                    if let Err(err) = JsFuture::from(sent).await {
                        steps.cancel();
                        return Err(err);
                    }
                    steps.recycle(&before);
                }
                sending = Some((out_writer.write_with_chunk(&chunk), chunk));
                JsFuture::from(hashed).await?;
            }
            if let Some((sent, _)) = sending {
                JsFuture::from(sent).await?;
            }
        }
        JsFuture::from(hash_writer.close()).await?;
        let bytes = Uint8Array::new(
            &JsFuture::from(digest)
                .await?
                .unchecked_into::<ArrayBuffer>(),
        );
        JsFuture::from(out_writer.close()).await?;
        Ok(JsValue::from_str(&sigv4::hex_lower(&bytes.to_vec())))
    })
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, millis: i32) -> JsValue;

    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// What `promise` gives as a string, if it does so within `millis`; `None` when it fails, gives
/// something else or takes longer.
pub(crate) async fn string_within(promise: &Promise, millis: i32) -> Option<String> {
    let mut timer_id = JsValue::UNDEFINED;
    let timer = Promise::new(&mut |resolve, _reject| {
        timer_id = set_timeout(&resolve, millis);
    });
    let raced = JsFuture::from(Promise::race(&js_sys::Array::of2(promise, &timer))).await;
    clear_timeout(&timer_id);
    raced.ok().and_then(|value| value.as_string())
}
