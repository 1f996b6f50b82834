//! The Workers glue (wasm32 only): turns a request into a [`Route`], answers what the Worker
//! knows itself, and fetches everything else from Spaces through the edge cache.
//!
//! What this layer owns: reading bindings, the Cache API, the signed subrequest and building
//! responses. What it must not do: decide policy (that is [`crate::policy`]), parse paths
//! (that is [`crate::nix`]) or sign anything itself (that is [`crate::sigv4`]).
//!
//! One request, start to finish:
//!
//! 1. method: GET and HEAD only, anything else is 405 with `Allow`;
//! 2. route: [`Route::parse`] on the path; a refused path is a 4xx without any subrequest;
//! 3. bindings: [`Config::from_lookup`]; a missing one is a 500 naming it;
//! 4. `/` and `/nix-cache-info` are answered from the bindings;
//! 5. every other route: the edge cache first (`x-cache: HIT`), else a SigV4-signed fetch to
//!    `SPACES_ENDPOINT/SPACES_BUCKET/key` (`x-cache: MISS`), stored when the policy says so.

mod cache;
mod error;
mod origin;

use std::cell::RefCell;
use std::rc::Rc;

use worker::{event, Context, Env, Headers, Method, Request, Response};

use crate::config::Config;
use crate::nix::Route;
use crate::{landing, policy};

pub(crate) use error::EdgeError;

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    match serve(req, &env, &ctx).await {
        Ok(response) => Ok(response),
        Err(err) => err.into_response(),
    }
}

/// The request as the rest of the glue needs it, read once.
pub(crate) struct Incoming {
    pub route: Route,
    pub head: bool,
    pub range: Option<String>,
    /// The Worker's `host[:port]` and scheme, as the client addressed it.
    pub host: String,
    pub scheme: String,
}

impl Incoming {
    /// The edge cache key: the Worker's own URL for the route, without any query.
    pub fn cache_key(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.route.path())
    }
}

async fn serve(req: Request, env: &Env, ctx: &Context) -> Result<Response, EdgeError> {
    let head = match req.method() {
        Method::Get => false,
        Method::Head => true,
        _ => return Err(EdgeError::Method),
    };
    let route = Route::parse(&req.path()).map_err(EdgeError::Route)?;
    let config = config(env)?;
    if route == Route::CacheInfo {
        return local(&route, head, &config, config.cache_info.render());
    }

    // `scheme://host[:port]` of the request URL, which the runtime hands over absolute.
    let url = req.inner().url();
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let origin_end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let incoming = Incoming {
        route,
        head,
        range: req.headers().get("range")?,
        host: url[after_scheme..origin_end].to_string(),
        scheme: url[..after_scheme.saturating_sub(3)].to_string(),
    };

    match &incoming.route {
        Route::Landing => {
            let page = landing::render(
                &incoming.host,
                &incoming.scheme,
                &config.cache_info,
                &config.public_keys,
            );
            local(&incoming.route, head, &config, page)
        }
        _ => cache::serve_object(&incoming, &config, ctx).await,
    }
}

thread_local! {
    /// The bindings, parsed once per isolate: they cannot change while it lives.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// The parsed bindings; an error (never cached) names the binding at fault.
fn config(env: &Env) -> Result<Rc<Config>, EdgeError> {
    if let Some(config) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(config);
    }
    let config =
        Rc::new(Config::from_lookup(|name| binding(env, name)).map_err(EdgeError::Config)?);
    CONFIG.with(|c| *c.borrow_mut() = Some(config.clone()));
    Ok(config)
}

/// A binding's value, var or secret alike; an empty string counts as missing.
fn binding(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A response the Worker makes itself (landing page, nix-cache-info).
fn local(route: &Route, head: bool, config: &Config, body: String) -> Result<Response, EdgeError> {
    let kind = route.kind();
    let headers = Headers::new();
    headers.set("content-type", route.content_type())?;
    headers.set("content-length", &body.len().to_string())?;
    headers.set(
        "cache-control",
        &policy::cache_control(kind, 200, &config.ttls),
    )?;
    let builder = Response::builder().with_status(200).with_headers(headers);
    Ok(if head {
        builder.empty()
    } else {
        builder.fixed(body.into_bytes())
    })
}
