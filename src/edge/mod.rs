//! The Workers glue (wasm32 only): turns a request into a [`Route`], answers what the Worker
//! knows itself, and fetches everything else from Spaces through the edge cache.
//!
//! What this layer owns: reading bindings, the Cache API, the signed subrequest and building
//! responses. What it must not do: decide policy (that is [`crate::policy`]), parse paths
//! (that is [`crate::nix`]) or sign anything itself (that is [`crate::sigv4`]).
//!
//! One request, start to finish:
//!
//! 1. route: [`Route::parse`] on the path; a refused path is a 4xx without any subrequest,
//!    unless it is for the S3 endpoint (`/<SPACES_BUCKET>/<key>`, or signed with SigV4), which
//!    [`s3`] answers with its own checks;
//! 2. bindings: [`crate::config::Config::from_lookup`], once per isolate; a missing one is a
//!    500 naming it;
//! 3. method: GET and HEAD, and PUT on object routes when `TOKEN_SECRET` is set; anything
//!    else is 405 with `Allow`;
//! 4. credentials: [`auth`] decides once (401/403 here, before any cache or origin);
//! 5. `/` and `/nix-cache-info` are answered from the bindings;
//! 6. a PUT is an upload ([`upload`]);
//! 7. every other route: the edge cache first (`x-cache: HIT`), else a SigV4-signed fetch to
//!    `SPACES_ENDPOINT/SPACES_BUCKET/key` (`x-cache: MISS`), stored when the policy says so.
//!
//! Steps 1 to 5 finish within the call from the runtime; steps 6 and 7 return a promise.

mod auth;
mod cache;
mod digest;
mod entries;
mod error;
mod isolate;
mod js;
mod origin;
mod s3;
mod segments;
mod steps;
mod upload;

use std::rc::Rc;
use std::sync::Once;

use wasm_bindgen::prelude::*;
use web_sys::Response;
use worker::Env;

use crate::landing;
use crate::nix::Route;
use crate::policy;
use crate::push;

pub(crate) use error::EdgeError;
use isolate::Isolate;

/// The Worker's fetch handler: the entry module (`src/edge/shim.js`) calls it with each request,
/// the bindings and the execution context, and hands what it returns to the runtime: a
/// `Response`, or a promise of one.
#[wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> JsValue {
    arm_panic_recovery();
    #[cfg(feature = "panic-route")]
    if let Some(answer) = panic_route(&req) {
        return answer;
    }
    match begin(&req, &env) {
        Ok(Begun::Answered(response)) => response.into(),
        Ok(Begun::Object(incoming, isolate)) => {
            let private = isolate.config.push.private;
            match cache::serve_object(incoming, isolate, ctx) {
                Ok(promise) if private => auth::private_answer(&promise).into(),
                Ok(promise) => promise.into(),
                Err(err) => answer(Err(err)),
            }
        }
        Ok(Begun::Upload(incoming, isolate, holder)) => {
            upload::serve(req, incoming, isolate, holder).into()
        }
        Ok(Begun::S3(isolate)) => s3::serve(req, isolate, ctx).into(),
        Err(err) => answer(Err(err)),
    }
}

/// How far [`begin`] got: an answer, or an object route for the edge cache and the origin.
enum Begun {
    Answered(Response),
    Object(Incoming, Rc<Isolate>),
    /// A PUT with a `write` grant, and who holds it.
    Upload(Incoming, Rc<Isolate>, String),
    /// A request for the S3 endpoint (`/<SPACES_BUCKET>/<key>`), which checks its own
    /// credentials.
    S3(Rc<Isolate>),
}

/// What the runtime is given: the response, or for an error its plain-text answer (see
/// [`EdgeError`]); only the runtime failing to make even that is passed on, as a rejection.
pub(crate) fn answer(result: Result<Response, EdgeError>) -> JsValue {
    match result.or_else(EdgeError::into_response) {
        Ok(response) => response.into(),
        Err(thrown) => js_sys::Promise::reject(&thrown).into(),
    }
}

/// A panic aborts the Wasm instance (`panic = "abort"`), so after one its memory cannot be
/// trusted: ask wasm-bindgen's glue for a fresh instance before the next call into Rust (see
/// `src/edge/shim.js`). This hook runs after the one `worker` installs, which logs the panic.
fn arm_panic_recovery() {
    static ARMED: Once = Once::new();
    ARMED.call_once(|| {
        let logged = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            logged(info);
            wasm_bindgen::handler::schedule_reinit();
        }));
    });
}

/// Test builds only (`--features panic-route`, never deployed): `/__panic` panics within the
/// call from the runtime and `/__panic/later` after an await, so the tests can show that a
/// panic costs that one request and the Worker answers again afterwards; `/__panic/instance`
/// answers with the number of Wasm instances made so far (counted by `worker`'s start
/// function), which shows that a fresh one took over.
#[cfg(feature = "panic-route")]
fn panic_route(req: &web_sys::Request) -> Option<JsValue> {
    fn boom(at: &str) -> Result<JsValue, JsValue> {
        panic!("a panic asked for at {at}")
    }
    let url = req.url();
    match UrlParts::split(&url).path {
        "/__panic" => Some(boom("/__panic").unwrap_or_default()),
        "/__panic/instance" => {
            let global = js_sys::global();
            let state = js_sys::Reflect::get(&global, &"__worker_init_state".into()).ok()?;
            let id = js_sys::Reflect::get(&state, &"instanceId".into()).ok()?;
            let text = format!("{}\n", id.as_f64()?);
            Response::new_with_opt_str(Some(&text)).ok().map(Into::into)
        }
        "/__panic/later" => Some(
            wasm_bindgen_futures::future_to_promise(async {
                let tick = js_sys::Promise::resolve(&JsValue::NULL);
                wasm_bindgen_futures::JsFuture::from(tick).await?;
                boom("/__panic/later")
            })
            .into(),
        ),
        _ => None,
    }
}

/// The request as the rest of the glue needs it, read once.
pub(crate) struct Incoming {
    pub route: Route,
    pub head: bool,
    pub range: Option<String>,
    /// `If-None-Match` and `If-Modified-Since`, for a 304 from the edge.
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    /// The Worker's `host[:port]`, as the client addressed it.
    pub host: String,
}

impl Incoming {
    /// The edge cache key: the Worker's own URL for the route, without any query, and always
    /// `https`, so that a client asking over `http` shares the one entry per object.
    pub fn cache_key(&self) -> String {
        format!("https://{}{}", self.host, self.route.path())
    }
}

/// The part of a request that needs no subrequest: method, route, bindings, the credentials,
/// and the answers the Worker makes itself.
fn begin(req: &web_sys::Request, env: &Env) -> Result<Begun, EdgeError> {
    let method = js::method(req);
    // The runtime hands the URL over absolute: `scheme://host[:port]/path[?query]`.
    let url = req.url();
    let parts = UrlParts::split(&url);
    let route = match Route::parse(parts.path) {
        Ok(route) => route,
        Err(refused) => {
            // Not a cache route: the S3 endpoint's, when it names the bucket or is SigV4-signed.
            // A path that is neither stays a 4xx, whatever the bindings.
            return match isolate::get(env) {
                Ok(isolate) if s3::recognise(req, parts.path, &isolate.config.bucket) => {
                    Ok(Begun::S3(isolate))
                }
                Err(config) if s3::signed(req) => Err(config),
                _ => Err(EdgeError::Route(refused)),
            };
        }
    };
    let isolate = isolate::get(env)?;
    let allow = push::allow(&route, isolate.config.push.uploads());
    let (head, put) = match method {
        js::Method::Get => (false, false),
        js::Method::Head => (true, false),
        js::Method::Put if allow == push::ALLOW_PUT => (false, true),
        js::Method::Put | js::Method::Other => return Err(EdgeError::Method(allow)),
    };
    // Decided once, before the edge cache or the origin is asked anything.
    let access = auth::grant(req, &isolate, auth::need(&isolate, &route, put), parts.host)?;
    if put {
        let incoming = Incoming {
            route,
            head,
            range: None,
            host: parts.host.to_string(),
            if_none_match: None,
            if_modified_since: None,
        };
        return Ok(Begun::Upload(incoming, isolate, access.holder));
    }
    match route {
        Route::CacheInfo => {
            let info = isolate.cache_info(head)?;
            if isolate.config.push.private {
                auth::keep_private(&info)?;
            }
            Ok(Begun::Answered(info))
        }
        Route::Landing => {
            let config = &isolate.config;
            let page = landing::render_with(
                parts.host,
                parts.scheme,
                &config.cache_info,
                &config.public_keys,
                &landing::Push {
                    private: config.push.private,
                    uploads: config.push.uploads(),
                    signing_key: config
                        .push
                        .signing_key
                        .as_ref()
                        .map(|k| k.public().to_string()),
                },
            );
            Ok(Begun::Answered(landing_page(head, &config.ttls, page)?))
        }
        route => {
            let headers = req.headers();
            let get = |name| headers.get(name).map_err(js::failed("Headers.get"));
            let incoming = Incoming {
                route,
                head,
                range: get("range")?,
                if_none_match: get("if-none-match")?,
                if_modified_since: get("if-modified-since")?,
                host: parts.host.to_string(),
            };
            Ok(Begun::Object(incoming, isolate))
        }
    }
}

/// An absolute URL cut at its scheme, authority and path (the query and fragment dropped).
struct UrlParts<'a> {
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> UrlParts<'a> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        UrlParts { scheme, host, path }
    }
}

/// The landing page, made for the host it was asked at.
fn landing_page(head: bool, ttls: &policy::Ttls, page: String) -> Result<Response, EdgeError> {
    let route = Route::Landing;
    let init = js::init(
        200,
        &[
            ("content-type", route.content_type()),
            ("content-length", &page.len().to_string()),
            (
                "cache-control",
                &policy::cache_control(route.kind(), 200, ttls),
            ),
        ],
    )?;
    js::text_response((!head).then_some(page.as_str()), &init)
}
