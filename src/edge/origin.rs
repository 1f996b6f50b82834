//! The subrequest to Spaces: path-style URL, SigV4 headers from [`crate::sigv4::sign_s3_keyed`], and
//! the origin's answer judged by [`crate::policy::classify_origin`].
//!
//! Only `Range` travels from the client to the origin; the client's own headers (its
//! `Authorization` above all) never do. The answer's body is taken as the bucket holds it: an
//! object stored with a `Content-Encoding` is not decoded on the way
//! (`encodeResponseBody: "manual"`).

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{
    Headers, ReadableStream, ReadableStreamDefaultReader, RequestInit, RequestRedirect, Response,
};

use crate::policy::{self, OriginVerdict};
use crate::sigv4::{self, S3Request, SigningTime, EMPTY_SHA256};

use super::isolate::Isolate;
use super::{js, EdgeError};

/// At most this much of an error body is read to find the S3 error code.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// What Spaces answered, already judged.
pub(crate) enum OriginAnswer {
    /// An answer to relay (200, 206, 304, 416: the policy decides).
    Pass(Response),
    /// The object is not there (404, or 403 AccessDenied).
    Missing,
}

/// The signed GET of `key` from the bucket: the promise of the origin's `Response`, which
/// rejects only when the origin cannot be reached. `range` is the Range header to send, if any;
/// `if_match` an `ETag` the object must still have (S3 answers 412 otherwise).
pub(crate) fn request(
    isolate: &Isolate,
    key: &str,
    range: Option<&str>,
    if_match: Option<&str>,
) -> Result<Promise, EdgeError> {
    let mut extra: Vec<(String, String)> = Vec::new();
    if let Some(tag) = if_match {
        extra.push(("if-match".to_string(), tag.to_string()));
    }
    if let Some(range) = range {
        extra.push(("range".to_string(), range.to_string()));
    }
    signed(isolate, "GET", key, "", &extra, EMPTY_SHA256, None)
}

/// One request for `key` in the bucket, path-style and SigV4-signed with the Worker's own key:
/// `query` encoded and without `?` (`partNumber=1&uploadId=…`), `extra` the headers to sign
/// and send besides the signer's, `payload_hash` what the body is signed as. The promise of
/// the origin's `Response`, which rejects only when the origin cannot be reached; redirects
/// are not followed, and the answer's body is taken as the bucket holds it.
pub(crate) fn signed(
    isolate: &Isolate,
    method: &str,
    key: &str,
    query: &str,
    extra: &[(String, String)],
    payload_hash: &str,
    body: Option<&JsValue>,
) -> Result<Promise, EdgeError> {
    let config = &isolate.config;
    let path = sigv4::s3_object_path(&config.bucket, key);
    let time = SigningTime::from_unix_millis(js_sys::Date::now());
    let signed = sigv4::sign_s3_keyed(
        &S3Request {
            method,
            host: &config.endpoint.host,
            path: &path,
            query,
            extra_headers: extra,
            payload_hash,
        },
        &config.credentials,
        &config.region,
        time,
        &mut isolate.signing_keys.borrow_mut(),
    );
    let headers = Headers::new().map_err(js::failed("new Headers"))?;
    for (name, value) in extra.iter().chain(signed.iter()) {
        js::set(&headers, name, value)?;
    }
    let init = RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers);
    init.set_redirect(RequestRedirect::Manual);
    js::manual_encoding(&init, "encodeResponseBody")?;
    if let Some(body) = body {
        init.set_body(body);
    }
    let mut url = config.endpoint.url(&path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(global.fetch_with_str_and_init(&url, &init))
}

/// Judges the origin's answer and hands the verdict to `then`. Returns what `then` returns,
/// or, when the verdict needs S3's error code, the promise of it.
///
/// The error body is read only for the statuses whose verdict depends on the code in it
/// ([`policy::needs_error_code`]); any other answer keeps its body for the client.
pub(crate) fn judge(
    found: Response,
    then: impl FnOnce(Result<OriginAnswer, EdgeError>) -> JsValue + 'static,
) -> JsValue {
    let status = found.status();
    if !policy::needs_error_code(status) {
        return then(verdict(status, None, found));
    }
    let Some(text) = error_body(&found) else {
        return then(verdict(status, None, found));
    };
    js::settled(&text, move |text| {
        let text = text.ok().and_then(|t| t.as_string());
        then(verdict(status, text.as_deref(), found))
    })
    .into()
}

fn verdict(status: u16, body: Option<&str>, found: Response) -> Result<OriginAnswer, EdgeError> {
    match policy::classify_origin(status, body.and_then(policy::s3_error_code)) {
        OriginVerdict::Pass => Ok(OriginAnswer::Pass(found)),
        OriginVerdict::Missing => Ok(OriginAnswer::Missing),
        OriginVerdict::Fail(reason) => Err(EdgeError::Origin(reason)),
    }
}

/// The promise of the first [`ERROR_BODY_LIMIT`] bytes of an error body as text (null when it
/// cannot be read); `None` when there is no body.
///
/// A body that says it is small (S3's XML errors are) is read in one call; one of unknown or
/// larger size is read chunk by chunk and cut at the limit, so garbage cannot fill memory.
fn error_body(found: &Response) -> Option<Promise> {
    let stream = found.body()?;
    let declared = found
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len <= ERROR_BODY_LIMIT) {
        return found.text().ok();
    }
    Some(future_to_promise(async move {
        Ok(read_capped(stream)
            .await
            .map_or(JsValue::NULL, JsValue::from))
    }))
}

async fn read_capped(stream: ReadableStream) -> Option<String> {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        let chunk = JsFuture::from(reader.read()).await.ok()?;
        let done = js_sys::Reflect::get(&chunk, &"done".into()).ok()?;
        if done.is_truthy() {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).ok()?;
        let bytes = js_sys::Uint8Array::new(&value).to_vec();
        let room = ERROR_BODY_LIMIT - body.len();
        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    let _ = reader.cancel();
    Some(String::from_utf8_lossy(&body).into_owned())
}
