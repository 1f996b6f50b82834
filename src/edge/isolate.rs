//! What one isolate keeps between requests: the parsed bindings (they cannot change while it
//! lives), the answers made from them alone, and the SigV4 signing key of the day.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use web_sys::{Response, ResponseInit};
use worker::Env;

use crate::config::{Binding, Config};
use crate::nix::{ObjectKind, Route};
use crate::policy;
use crate::sigv4::SigningKeys;

use super::{js, EdgeError};

/// The body of a 404 for an object the bucket does not have.
const MISSING_BODY: &str = "not in this cache\n";

thread_local! {
    static ISOLATE: RefCell<Option<Rc<Isolate>>> = const { RefCell::new(None) };
}

/// This isolate's state, made on first use; an error (never kept) names the binding at fault.
pub(crate) fn get(env: &Env) -> Result<Rc<Isolate>, EdgeError> {
    if let Some(isolate) = ISOLATE.with(|i| i.borrow().clone()) {
        return Ok(isolate);
    }
    let config = Config::from_lookup(|name| binding(env, name)).map_err(EdgeError::Config)?;
    let isolate = Rc::new(Isolate::new(config)?);
    ISOLATE.with(|i| *i.borrow_mut() = Some(isolate.clone()));
    Ok(isolate)
}

/// A binding's value, var or secret alike, of the kind it arrived as: `[vars]` written as TOML
/// numbers and booleans are JS numbers and booleans. Unset (or undefined) is `None`.
fn binding(env: &Env, name: &str) -> Option<Binding> {
    let value = js_sys::Reflect::get(env, &JsValue::from_str(name)).ok()?;
    if value.is_undefined() || value.is_null() {
        None
    } else if let Some(text) = value.as_string() {
        Some(Binding::Text(text))
    } else if let Some(number) = value.as_f64() {
        Some(Binding::Number(number))
    } else if let Some(flag) = value.as_bool() {
        Some(Binding::Bool(flag))
    } else {
        Some(Binding::Other)
    }
}

/// The parsed bindings, and the status and headers of the answers that depend on nothing
/// else. The runtime copies an init's headers into each response made with it, so one init
/// serves every request.
pub(crate) struct Isolate {
    pub config: Config,
    /// The SigV4 signing key of the day, for the one secret in `config`.
    pub signing_keys: RefCell<SigningKeys>,
    cache_info_body: JsValue,
    cache_info: ResponseInit,
    missing: ResponseInit,
}

impl Isolate {
    fn new(config: Config) -> Result<Isolate, EdgeError> {
        let cache_info_body = config.cache_info.render();
        let info = Route::CacheInfo;
        let cache_info = js::init(
            200,
            &[
                ("content-type", info.content_type()),
                ("content-length", &cache_info_body.len().to_string()),
                (
                    "cache-control",
                    &policy::cache_control(info.kind(), 200, &config.ttls),
                ),
            ],
        )?;
        // The negative TTL is the same for every kind of object.
        let missing = js::init(
            404,
            &[
                ("content-type", "text/plain; charset=utf-8"),
                ("content-length", &MISSING_BODY.len().to_string()),
                (
                    "cache-control",
                    &policy::cache_control(ObjectKind::NarInfo, 404, &config.ttls),
                ),
                ("x-cache", "MISS"),
            ],
        )?;
        Ok(Isolate {
            config,
            signing_keys: RefCell::new(SigningKeys::default()),
            cache_info_body: cache_info_body.into(),
            cache_info,
            missing,
        })
    }

    /// The `/nix-cache-info` answer; no body for HEAD.
    pub fn cache_info(&self, head: bool) -> Result<Response, EdgeError> {
        js::kept_response((!head).then_some(&self.cache_info_body), &self.cache_info)
    }

    /// The 404 for an object the bucket does not have (also what the edge remembers briefly);
    /// no body for HEAD.
    pub fn missing(&self, head: bool) -> Result<Response, EdgeError> {
        js::text_response((!head).then_some(MISSING_BODY), &self.missing)
    }
}
