//! The S3 endpoint (wasm32 only): requests from Nix's `s3://` store (and other S3 clients) on
//! `/<SPACES_BUCKET>/<key>`, verified with [`crate::s3::verify`], turned into one
//! [`Operation`] on one cache route, and carried out with the upload path's own checks
//! ([`super::upload`]) and the read path's edge cache ([`super::cache`]).
//!
//! - GET and HEAD: `nix-cache-info` from the bindings, every other key through the edge cache
//!   and the origin, as for the cache protocol; a missing object is `NoSuchKey`.
//! - PutObject: exactly the HTTPS upload (a narinfo parsed, its NAR checked, signed; a NAR
//!   checked against its name; `nix-cache-info` accepted and ignored).
//! - The multipart calls are passed to Spaces, re-signed with the Worker's key: parts stream
//!   with their `Content-Length` (each at most `MAX_UPLOAD_BYTES`), and a complete that
//!   Spaces answers 200 with an `<Error>` inside is an error for the client. A NAR uploaded in
//!   parts is checked by size when its narinfo arrives.
//!
//! Every refusal is S3's XML error with S3's status; nothing is sent to Spaces before the
//! signature, the credential's scope, the bucket and the key are checked.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{Request, Response};
use worker::worker_sys::Context as JsContext;
use worker::{console_log, console_warn};

use crate::narinfo;
use crate::nix::Route;
use crate::push;
use crate::s3::operation::{self, Operation, MAX_COMPLETE_BODY};
use crate::s3::verify::{self, Payload, Received};
use crate::s3::{ErrorCode, S3Error};
use crate::sigv4::{self, EMPTY_SHA256};
use crate::token::Scope;

use super::isolate::Isolate;
use super::origin;
use super::upload::{self, FixedLengthStream};
use super::{cache, js, EdgeError, Incoming};

/// Whether a request that is not a cache route is for the S3 endpoint: its path names the
/// bucket, or it is signed with SigV4 (then another bucket gets `NoSuchBucket`).
pub(crate) fn recognise(req: &Request, path: &str, bucket: &str) -> bool {
    let first = path.strip_prefix('/').unwrap_or(path);
    let first = first.split('/').next().unwrap_or_default();
    first == bucket || signed(req)
}

/// Whether the request carries a SigV4 `Authorization` header.
pub(crate) fn signed(req: &Request) -> bool {
    matches!(
        req.headers().get("authorization"),
        Ok(Some(value)) if value.starts_with(sigv4::ALGORITHM)
    )
}

/// Answers an S3 request: the promise of its response.
pub(crate) fn serve(req: Request, isolate: Rc<Isolate>, ctx: JsContext) -> Promise {
    future_to_promise(async move {
        let url = req.url();
        let head = req.method() == "HEAD";
        let at = Url::split(&url);
        let result = handle(&req, &at, &isolate, ctx).await;
        let response = match result {
            Ok(response) => Ok(response),
            Err(error) => {
                if let Some(body) = req.body() {
                    let _ = body.cancel();
                }
                console_warn!(
                    "s3 {} {} refused, {}: {}",
                    req.method(),
                    at.path,
                    error.code,
                    error.message
                );
                error_response(&error, at.path, head)
            }
        };
        Ok(super::answer(response))
    })
}

/// The request URL cut into what verification needs: raw path and raw query.
struct Url<'a> {
    host: &'a str,
    path: &'a str,
    query: &'a str,
}

impl<'a> Url<'a> {
    fn split(url: &'a str) -> Url<'a> {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let rest = &rest[..rest.find('#').unwrap_or(rest.len())];
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        Url { host, path, query }
    }
}

/// S3's XML error answer; no body for HEAD.
fn error_response(error: &S3Error, resource: &str, head: bool) -> Result<Response, EdgeError> {
    let body = error.xml(resource);
    let init = js::init(
        error.status(),
        &[
            ("content-type", "application/xml"),
            ("cache-control", "no-store"),
        ],
    )?;
    js::text_response((!head).then_some(body.as_str()), &init)
}

/// An S3 answer without a body (or with a small XML one).
fn s3_response(
    status: u16,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Response, S3Error> {
    let mut all = vec![("cache-control", "no-store")];
    all.extend_from_slice(headers);
    if body.is_some() {
        all.push(("content-type", "application/xml"));
    }
    let init = js::init(status, &all).map_err(from_edge)?;
    js::text_response(body, &init).map_err(from_edge)
}

/// An error of the glue or the upload path, as S3 says it.
fn from_edge(error: EdgeError) -> S3Error {
    match error {
        EdgeError::Upload { status, reason } => {
            let code = match status {
                413 => ErrorCode::EntityTooLarge,
                411 => ErrorCode::MissingContentLength,
                400 if reason.contains("hash") || reason.contains("SHA-256") => {
                    ErrorCode::BadDigest
                }
                _ => ErrorCode::InvalidRequest,
            };
            S3Error::new(code, reason)
        }
        EdgeError::Origin(reason) => S3Error::new(
            ErrorCode::ServiceUnavailable,
            format!("the cache's storage failed: {}", reason.message()),
        ),
        EdgeError::Config(e) => S3Error::new(
            ErrorCode::InternalError,
            format!("Worker misconfigured: {e}"),
        ),
        other => {
            console_warn!("s3: {:?}", other);
            S3Error::new(ErrorCode::InternalError, "internal error")
        }
    }
}

/// Every header of the request, names lowercase (as the runtime gives them).
fn headers_of(req: &Request, host: &str) -> Result<Vec<(String, String)>, S3Error> {
    let mut out = Vec::new();
    let iter = js_sys::try_iter(&req.headers())
        .ok()
        .flatten()
        .ok_or_else(|| S3Error::new(ErrorCode::InternalError, "headers not iterable"))?;
    for entry in iter {
        let entry = entry.map_err(|_| S3Error::new(ErrorCode::InternalError, "headers"))?;
        let pair: js_sys::Array = entry.unchecked_into();
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            continue;
        };
        out.push((name.to_ascii_lowercase(), value));
    }
    if !out.iter().any(|(n, _)| n == "host") {
        out.push(("host".to_string(), host.to_string()));
    }
    Ok(out)
}

async fn handle(
    req: &Request,
    at: &Url<'_>,
    isolate: &Rc<Isolate>,
    ctx: JsContext,
) -> Result<Response, S3Error> {
    let config = &isolate.config;
    let Some(secret) = config.push.token_secret.as_ref() else {
        return Err(S3Error::new(
            ErrorCode::AccessDenied,
            "this cache takes no S3 requests (TOKEN_SECRET is not set)",
        ));
    };
    let method = req.method();
    let headers = headers_of(req, at.host)?;
    let received = Received {
        method: &method,
        path: at.path,
        query: at.query,
        headers: &headers,
    };
    let now = (js_sys::Date::now() / 1000.0) as u64;
    let verified = verify::verify(&received, secret, now)?;
    let op = Operation::parse(&method, at.query)?;
    if op.needs() == Scope::Write && verified.credential.scope < Scope::Write {
        return Err(S3Error::new(
            ErrorCode::AccessDenied,
            "this credential may only read (scope read)",
        ));
    }
    let read = op.needs() == Scope::Read;
    let route = operation::target(at.path, &config.bucket, read)?;
    let incoming = Incoming {
        route,
        head: op == Operation::HeadObject,
        range: None,
        host: at.host.to_string(),
        if_none_match: None,
        if_modified_since: None,
    };
    console_log!(
        "s3 {} {} by {}",
        op.name(),
        incoming.route.path(),
        verified.credential.name
    );
    match op {
        Operation::GetObject | Operation::HeadObject => {
            get_object(req, incoming, isolate.clone(), ctx).await
        }
        Operation::PutObject => put_object(req, &incoming, isolate, &verified.payload).await,
        Operation::CreateMultipartUpload => create(&incoming, isolate, &op).await,
        Operation::UploadPart { .. } => {
            upload_part(req, &incoming, isolate, &op, &verified.payload).await
        }
        Operation::CompleteMultipartUpload { .. } => complete(req, &incoming, isolate, &op).await,
        Operation::AbortMultipartUpload { .. } => abort(&incoming, isolate, &op).await,
    }
}

async fn get_object(
    req: &Request,
    mut incoming: Incoming,
    isolate: Rc<Isolate>,
    ctx: JsContext,
) -> Result<Response, S3Error> {
    if incoming.route == Route::CacheInfo {
        return isolate.cache_info(incoming.head).map_err(from_edge);
    }
    incoming.range = req.headers().get("range").ok().flatten();
    let head = incoming.head;
    let promise = cache::serve_object(incoming, isolate, ctx).map_err(from_edge)?;
    let answer: Response = JsFuture::from(promise)
        .await
        .map_err(|_| S3Error::new(ErrorCode::InternalError, "the read failed"))?
        .unchecked_into();
    match answer.status() {
        404 => {
            if let Some(body) = answer.body() {
                let _ = body.cancel();
            }
            let error = S3Error::new(ErrorCode::NoSuchKey, "The specified key does not exist.");
            let url = req.url();
            error_response(&error, Url::split(&url).path, head).map_err(from_edge)
        }
        status if status >= 500 => Err(S3Error::new(
            ErrorCode::ServiceUnavailable,
            "the cache's storage failed",
        )),
        _ => Ok(answer),
    }
}

async fn put_object(
    req: &Request,
    incoming: &Incoming,
    isolate: &Isolate,
    payload: &Payload,
) -> Result<Response, S3Error> {
    match &incoming.route {
        Route::CacheInfo => {
            // The Worker serves nix-cache-info itself: accepted and ignored.
            if let Some(body) = req.body() {
                let _ = body.cancel();
            }
            return s3_response(200, &[], None);
        }
        Route::Nar { hash, .. } => {
            if let Payload::Sha256(claimed) = payload {
                if *claimed != narinfo::nar_file_sha256_hex(hash) {
                    return Err(S3Error::new(
                        ErrorCode::BadDigest,
                        "the body's SHA-256 is not the one the NAR's name promises",
                    ));
                }
            }
        }
        _ => {}
    }
    let answer = upload::upload_with(req, incoming, isolate, payload.origin_hash())
        .await
        .map_err(from_edge)?;
    if let Some(body) = answer.body() {
        let _ = body.cancel();
    }
    s3_response(200, &[], None)
}

fn multipart_only_for_big_files(route: &Route) -> Result<(), S3Error> {
    if operation::multipart_allowed(route) {
        return Ok(());
    }
    Err(S3Error::new(
        ErrorCode::InvalidRequest,
        "this file goes in one PUT (narinfo, nix-cache-info and realisations are read and \
         checked whole); multipart uploads are for NARs, listings, logs and debug info",
    ))
}

fn key_of(route: &Route) -> Result<String, S3Error> {
    route
        .object_key()
        .ok_or_else(|| S3Error::new(ErrorCode::InternalError, "route without a key"))
}

/// The origin's answer as status, headers wanted, and its (small) body text.
async fn small_answer(answer: Response) -> (u16, Option<String>, String) {
    let status = answer.status();
    let etag = answer.headers().get("etag").ok().flatten();
    let body = upload::read_all(answer.body(), None, MAX_COMPLETE_BODY)
        .await
        .unwrap_or_default();
    (status, etag, String::from_utf8_lossy(&body).into_owned())
}

async fn sent(promise: Promise) -> Result<Response, S3Error> {
    JsFuture::from(promise)
        .await
        .map(JsCast::unchecked_into)
        .map_err(|_| {
            S3Error::new(
                ErrorCode::ServiceUnavailable,
                "the cache's storage is unreachable",
            )
        })
}

async fn create(
    incoming: &Incoming,
    isolate: &Isolate,
    op: &Operation,
) -> Result<Response, S3Error> {
    multipart_only_for_big_files(&incoming.route)?;
    let key = key_of(&incoming.route)?;
    let extra = vec![(
        "content-type".to_string(),
        incoming.route.content_type().to_string(),
    )];
    let promise = origin::signed(
        isolate,
        "POST",
        &key,
        &op.origin_query(),
        &extra,
        EMPTY_SHA256,
        None,
    )
    .map_err(from_edge)?;
    let (status, _, body) = small_answer(sent(promise).await?).await;
    if status != 200 || !body.contains("<UploadId>") {
        return Err(operation::origin_error(status, &body));
    }
    s3_response(200, &[], Some(&body))
}

async fn upload_part(
    req: &Request,
    incoming: &Incoming,
    isolate: &Isolate,
    op: &Operation,
    payload: &Payload,
) -> Result<Response, S3Error> {
    multipart_only_for_big_files(&incoming.route)?;
    let length = push::body_length(
        req.headers()
            .get("content-length")
            .ok()
            .flatten()
            .as_deref(),
        &incoming.route,
        isolate.config.push.max_upload_bytes,
    )
    .map_err(|refused| {
        from_edge(EdgeError::Upload {
            status: refused.status,
            reason: refused.reason.replace("body of", "part of"),
        })
    })?;
    let key = key_of(&incoming.route)?;
    let stream = FixedLengthStream::new(length as f64)
        .map_err(|_| S3Error::new(ErrorCode::InternalError, "FixedLengthStream"))?;
    let piped = match req.body() {
        Some(body) => body.pipe_to(&stream.writable()),
        None => stream
            .writable()
            .get_writer()
            .map_err(|_| S3Error::new(ErrorCode::InternalError, "getWriter"))?
            .close(),
    };
    let promise = origin::signed(
        isolate,
        "PUT",
        &key,
        &op.origin_query(),
        &[],
        payload.origin_hash(),
        Some(&stream.readable()),
    )
    .map_err(from_edge)?;
    let answer = sent(promise).await;
    let body_ok = JsFuture::from(piped).await.is_ok();
    let answer = answer?;
    if !(200..300).contains(&answer.status()) {
        let (status, _, body) = small_answer(answer).await;
        return Err(operation::origin_error(status, &body));
    }
    if !body_ok {
        return Err(S3Error::new(
            ErrorCode::InvalidRequest,
            format!("the part ended before its Content-Length of {length} bytes"),
        ));
    }
    let etag = answer.headers().get("etag").ok().flatten();
    if let Some(body) = answer.body() {
        let _ = body.cancel();
    }
    let Some(etag) = etag else {
        return Err(S3Error::new(
            ErrorCode::ServiceUnavailable,
            "the cache's storage gave the part no ETag",
        ));
    };
    s3_response(200, &[("etag", &etag)], None)
}

async fn complete(
    req: &Request,
    incoming: &Incoming,
    isolate: &Isolate,
    op: &Operation,
) -> Result<Response, S3Error> {
    multipart_only_for_big_files(&incoming.route)?;
    let key = key_of(&incoming.route)?;
    let body = upload::read_all(req.body(), None, MAX_COMPLETE_BODY)
        .await
        .map_err(from_edge)?;
    let text = String::from_utf8(body)
        .map_err(|_| S3Error::new(ErrorCode::MalformedXML, "the body is not UTF-8"))?;
    if !text.contains("<CompleteMultipartUpload") {
        return Err(S3Error::new(
            ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema.",
        ));
    }
    let promise = origin::signed(
        isolate,
        "POST",
        &key,
        &op.origin_query(),
        &[("content-type".to_string(), "application/xml".to_string())],
        &sigv4::sha256_hex(text.as_bytes()),
        Some(&JsValue::from_str(&text)),
    )
    .map_err(from_edge)?;
    let (status, _, answer) = small_answer(sent(promise).await?).await;
    operation::completed(status, &answer)?;
    upload::forget_at_edge(incoming).await;
    console_log!("s3 completed {key}");
    s3_response(200, &[], Some(&answer))
}

async fn abort(
    incoming: &Incoming,
    isolate: &Isolate,
    op: &Operation,
) -> Result<Response, S3Error> {
    let key = key_of(&incoming.route)?;
    let promise = origin::signed(
        isolate,
        "DELETE",
        &key,
        &op.origin_query(),
        &[],
        EMPTY_SHA256,
        None,
    )
    .map_err(from_edge)?;
    let (status, _, body) = small_answer(sent(promise).await?).await;
    if !(200..300).contains(&status) {
        return Err(operation::origin_error(status, &body));
    }
    s3_response(204, &[], None)
}
