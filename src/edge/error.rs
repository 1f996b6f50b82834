//! The Worker's one error type, and the one place that turns it into a response.
//!
//! Client mistakes are 4xx, a misconfigured Worker is 500, a failing origin is 502. The body is
//! a short plain-text reason that is safe to show; details go to the log, never a secret.

use wasm_bindgen::JsValue;
use web_sys::{Headers, Response, ResponseInit};
use worker::{console_error, console_warn};

use crate::config::ConfigError;
use crate::nix::RouteError;
use crate::policy::FailReason;
use crate::token::Refusal;

#[derive(Debug)]
pub(crate) enum EdgeError {
    /// The method is not one this route answers; the value is the `Allow` header.
    Method(&'static str),
    /// The credentials do not allow the request: 401 (with `WWW-Authenticate: Basic
    /// realm="<host>"`) or 403. The reason stays in the log.
    Refused { refusal: Refusal, realm: String },
    /// An upload refused before anything was written: a 4xx and a reason safe to show.
    Upload { status: u16, reason: String },
    /// The path is not part of a Nix binary cache.
    Route(RouteError),
    /// A binding is missing or invalid.
    Config(ConfigError),
    /// Spaces failed, or refused the Worker's credentials.
    Origin(FailReason),
    /// The runtime failed us (a Cache API or Headers call); the detail is logged only.
    Internal(String),
}

impl EdgeError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            EdgeError::Method(_) => 405,
            EdgeError::Refused { refusal, .. } => refusal.status(),
            EdgeError::Upload { status, .. } => *status,
            EdgeError::Route(e) => e.status(),
            EdgeError::Config(_) | EdgeError::Internal(_) => 500,
            EdgeError::Origin(_) => 502,
        }
    }

    /// The body: short, plain, and safe to show to anyone.
    pub(crate) fn message(&self) -> String {
        match self {
            EdgeError::Method(allow) => format!("method not allowed: this path answers {allow}"),
            EdgeError::Refused { refusal, .. } => refusal.message().to_string(),
            EdgeError::Upload { reason, .. } => reason.clone(),
            EdgeError::Route(e) => e.message().to_string(),
            EdgeError::Config(e) => format!("Worker misconfigured: {e}"),
            EdgeError::Origin(reason) => reason.message(),
            EdgeError::Internal(_) => "internal error".to_string(),
        }
    }

    /// The plain-text answer; the runtime failing even here is thrown to it.
    pub(crate) fn into_response(self) -> Result<Response, JsValue> {
        let status = self.status();
        let message = self.message();
        match &self {
            EdgeError::Internal(detail) => console_error!("internal error: {detail}"),
            EdgeError::Config(_) | EdgeError::Origin(_) => console_error!("{status}: {message}"),
            EdgeError::Refused {
                refusal: Refusal::Unauthorized(Some(why)),
                ..
            } => console_warn!("{status}: {why}"),
            EdgeError::Upload { .. } => console_warn!("upload refused, {status}: {message}"),
            EdgeError::Method(_) | EdgeError::Route(_) | EdgeError::Refused { .. } => {}
        }
        let body = format!("{message}\n");
        let headers = Headers::new()?;
        headers.set("content-type", "text/plain; charset=utf-8")?;
        headers.set("cache-control", "no-store")?;
        match &self {
            EdgeError::Method(allow) => headers.set("allow", allow)?,
            EdgeError::Refused {
                refusal: Refusal::Unauthorized(_),
                realm,
            } => headers.set("www-authenticate", &format!("Basic realm=\"{realm}\""))?,
            _ => {}
        }
        let init = ResponseInit::new();
        init.set_status(status);
        init.set_headers(&headers);
        Response::new_with_opt_str_and_init(Some(&body), &init)
    }
}
