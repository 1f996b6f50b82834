//! Who may do what: the request's credentials turned into one grant ([`Access`]), or a 401/403, decided
//! once, right after the route and the bindings and before the edge cache or the origin is
//! asked anything.
//!
//! The rules ([`crate::token::authorize`] applies them): a PUT needs a `write` token; with
//! `PRIVATE = "1"` every other route but `/` needs `read`; otherwise nothing is needed and no
//! credentials are looked at (Nix sends its netrc password everywhere, stale or not).

use web_sys::Request;

use crate::nix::Route;
use crate::token::{self, Access, Need};

use super::isolate::Isolate;
use super::{js, EdgeError};

/// What `route` needs for a read (`put == false`) or an upload.
pub(crate) fn need(isolate: &Isolate, route: &Route, put: bool) -> Need {
    if put {
        Need::Write
    } else if isolate.config.push.private && *route != Route::Landing {
        Need::Read
    } else {
        Need::Nothing
    }
}

/// The grant of `req` for what it needs; a refusal names `realm` (the Worker's host) for
/// `WWW-Authenticate`.
pub(crate) fn grant(
    req: &Request,
    isolate: &Isolate,
    need: Need,
    realm: &str,
) -> Result<Access, EdgeError> {
    let authorization = req
        .headers()
        .get("authorization")
        .map_err(js::failed("Headers.get"))?;
    let now = (js_sys::Date::now() / 1000.0) as u64;
    token::authorize(
        authorization.as_deref(),
        isolate.config.push.token_secret.as_ref(),
        need,
        now,
    )
    .map_err(|refusal| EdgeError::Refused {
        refusal,
        realm: realm.to_string(),
    })
}

/// `Cache-Control` of every answer a private cache gives a token holder: no shared cache on
/// the way (a proxy, a CDN in front of the client) may keep it and hand it to someone else.
/// The edge cache's own copy keeps its TTL; only what leaves the Worker says this.
pub(crate) const PRIVATE_CACHE_CONTROL: &str = "private, no-store";

/// Marks `response` as for its requester only.
pub(crate) fn keep_private(response: &web_sys::Response) -> Result<(), EdgeError> {
    js::set(&response.headers(), "cache-control", PRIVATE_CACHE_CONTROL)
}

/// The promise of `answer` with its response marked by [`keep_private`].
pub(crate) fn private_answer(answer: &js_sys::Promise) -> js_sys::Promise {
    use wasm_bindgen::JsCast;
    js::settled(answer, |settled| match settled {
        Ok(value) => {
            if let Some(response) = value.dyn_ref::<web_sys::Response>() {
                if let Err(err) = keep_private(response) {
                    return super::answer(Err(err));
                }
            }
            value
        }
        Err(reason) => js_sys::Promise::reject(&reason).into(),
    })
}
