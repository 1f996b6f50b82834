//! The few runtime calls the glue makes through `web_sys`, each failure named for the log.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Headers, ReadableStream, Response, ResponseInit};

use super::EdgeError;

/// Turns a failed runtime call into an [`EdgeError::Internal`] naming the call.
pub(crate) fn failed(call: &'static str) -> impl Fn(JsValue) -> EdgeError {
    move |err| EdgeError::Internal(format!("{call}: {}", worker::Error::from(err)))
}

pub(crate) fn set(headers: &Headers, name: &str, value: &str) -> Result<(), EdgeError> {
    headers.set(name, value).map_err(failed("Headers.set"))
}

/// A response init with this status and these headers.
pub(crate) fn init(status: u16, headers: &[(&str, &str)]) -> Result<ResponseInit, EdgeError> {
    let all = Headers::new().map_err(failed("new Headers"))?;
    for (name, value) in headers {
        set(&all, name, value)?;
    }
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&all);
    Ok(init)
}

/// Sets `field` (`encodeBody` on a response init, `encodeResponseBody` on a request init) to
/// `"manual"`: the runtime passes the body's bytes as they are, whatever `Content-Encoding`
/// says, instead of decoding an answer or encoding a response.
pub(crate) fn manual_encoding(init: &JsValue, field: &str) -> Result<(), EdgeError> {
    js_sys::Reflect::set(
        init,
        &JsValue::from_str(field),
        &JsValue::from_str("manual"),
    )
    .map(drop)
    .map_err(failed("Reflect.set"))
}

/// `new Response(body, init)`; no body for `None`.
pub(crate) fn response(
    body: Option<&ReadableStream>,
    init: &ResponseInit,
) -> Result<Response, EdgeError> {
    Response::new_with_opt_readable_stream_and_init(body, init).map_err(failed("new Response"))
}

/// `new Response(text, init)`; no body for `None`.
pub(crate) fn text_response(
    body: Option<&str>,
    init: &ResponseInit,
) -> Result<Response, EdgeError> {
    Response::new_with_opt_str_and_init(body, init).map_err(failed("new Response"))
}

#[wasm_bindgen]
extern "C" {
    /// A `Response` made from a body that is already a JS value.
    #[wasm_bindgen(extends = Response, js_name = Response)]
    type KeptResponse;

    #[wasm_bindgen(catch, constructor, js_class = "Response")]
    fn new(body: &JsValue, init: &ResponseInit) -> Result<KeptResponse, JsValue>;
}

/// `new Response(body, init)` for a body kept as a JS string between requests, so it is not
/// copied out of Wasm memory each time; no body for `None`.
pub(crate) fn kept_response(
    body: Option<&JsValue>,
    init: &ResponseInit,
) -> Result<Response, EdgeError> {
    KeptResponse::new(body.unwrap_or(&JsValue::NULL), init)
        .map(Into::into)
        .map_err(failed("new Response"))
}

/// The methods this Worker tells apart.
pub(crate) enum Method {
    Get,
    Head,
    Put,
    Other,
}

#[wasm_bindgen]
extern "C" {
    /// A `Request`, for the getter below.
    #[wasm_bindgen(js_name = Request)]
    type MethodOf;

    /// `request.method`, left a JS string.
    #[wasm_bindgen(method, getter, js_name = method)]
    fn method_value(this: &MethodOf) -> JsValue;
}

thread_local! {
    static GET: JsValue = JsValue::from_str("GET");
    static HEAD: JsValue = JsValue::from_str("HEAD");
    static PUT: JsValue = JsValue::from_str("PUT");
}

/// The request's method, compared with JS strings made once per isolate instead of being
/// copied into Wasm memory for every request. The runtime gives standard methods in upper
/// case.
pub(crate) fn method(req: &web_sys::Request) -> Method {
    let method = req.unchecked_ref::<MethodOf>().method_value();
    if GET.with(|get| *get == method) {
        Method::Get
    } else if HEAD.with(|head| *head == method) {
        Method::Head
    } else if PUT.with(|put| *put == method) {
        Method::Put
    } else {
        Method::Other
    }
}

#[wasm_bindgen]
extern "C" {
    /// A promise, for `then` with plain JS functions.
    #[wasm_bindgen(js_name = Promise)]
    type Thenable;

    #[wasm_bindgen(method, js_name = then)]
    fn then(this: &Thenable, on_fulfilled: &JsValue, on_rejected: &JsValue) -> js_sys::Promise;
}

/// `promise.then(…)` with one Rust callback for either outcome: `Ok` with the value, `Err` with
/// the reason. What it returns settles the promise this gives back (a promise is followed).
///
/// Cheaper than awaiting in a future: no executor, no task queued, one call back into Wasm.
/// The two JS functions share the callback; the one not called is freed when the runtime
/// collects it.
pub(crate) fn settled(
    promise: &js_sys::Promise,
    callback: impl FnOnce(Result<JsValue, JsValue>) -> JsValue + 'static,
) -> js_sys::Promise {
    let on_fulfilled = Rc::new(Cell::new(Some(callback)));
    let on_rejected = on_fulfilled.clone();
    let fulfilled = Closure::once(move |value: JsValue| match on_fulfilled.take() {
        Some(callback) => callback(Ok(value)),
        None => JsValue::UNDEFINED,
    });
    let rejected = Closure::once(move |reason: JsValue| match on_rejected.take() {
        Some(callback) => callback(Err(reason)),
        None => JsValue::UNDEFINED,
    });
    promise
        .unchecked_ref::<Thenable>()
        .then(&fulfilled.into_js_value(), &rejected.into_js_value())
}
