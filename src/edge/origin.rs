//! The subrequest to Spaces: path-style URL, SigV4 headers from [`crate::sigv4::sign_s3`], and
//! the origin's answer judged by [`crate::policy::classify_origin`].
//!
//! Only `Range` travels from the client to the origin; the client's own headers (its
//! `Authorization` above all) never do.

use futures_util::StreamExt;
use worker::{
    Date, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response, ResponseBody,
};

use crate::config::Config;
use crate::policy::{self, FailReason, OriginVerdict};
use crate::sigv4::{self, S3Request, SigningTime, EMPTY_SHA256};

use super::EdgeError;

/// At most this much of an error body is read to find the S3 error code.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// What Spaces answered, already judged.
pub(crate) enum OriginAnswer {
    /// An answer to relay (200, 206, 304, 416: the policy decides).
    Pass(Response),
    /// The object is not there (404, or 403 AccessDenied).
    Missing,
}

/// GET `key` from the bucket, signed; `range` is the client's Range header, if any.
pub(crate) async fn get(
    config: &Config,
    key: &str,
    range: Option<&str>,
) -> Result<OriginAnswer, EdgeError> {
    let path = sigv4::s3_object_path(&config.bucket, key);
    let extra: Vec<(String, String)> = range
        .map(|r| vec![("range".to_string(), r.to_string())])
        .unwrap_or_default();
    let time = SigningTime::from_unix_millis(Date::now().as_millis() as f64);
    let signed = sigv4::sign_s3(
        &S3Request {
            method: "GET",
            host: &config.endpoint.host,
            path: &path,
            query: "",
            extra_headers: &extra,
            payload_hash: EMPTY_SHA256,
        },
        &config.credentials,
        &config.region,
        time,
    );

    let headers = Headers::new();
    for (name, value) in extra.iter().chain(signed.iter()) {
        headers.set(name, value)?;
    }
    let url = config.endpoint.url(&path);
    let mut init = RequestInit::new();
    init.with_method(Method::Get)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    let request = Request::new_with_init(&url, &init)?;

    let mut response = Fetch::Request(request)
        .send()
        .await
        .map_err(|_| EdgeError::Origin(FailReason::Unreachable))?;
    let status = response.status_code();
    let body = if status >= 400 {
        read_error_body(&mut response).await
    } else {
        None
    };
    match policy::classify_origin(status, body.as_deref().and_then(policy::s3_error_code)) {
        OriginVerdict::Pass => Ok(OriginAnswer::Pass(response)),
        OriginVerdict::Missing => Ok(OriginAnswer::Missing),
        OriginVerdict::Fail(reason) => Err(EdgeError::Origin(reason)),
    }
}

/// The first [`ERROR_BODY_LIMIT`] bytes of an error body, as text; the rest is dropped.
///
/// A body that says it is small (S3's XML errors are) is read in one call; one of unknown or
/// larger size is read chunk by chunk and cut at the limit, so garbage cannot fill memory.
async fn read_error_body(response: &mut Response) -> Option<String> {
    if matches!(response.body(), ResponseBody::Empty) {
        return None;
    }
    let declared = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len <= ERROR_BODY_LIMIT) {
        return response.text().await.ok();
    }
    let mut stream = response.stream().ok()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        let room = ERROR_BODY_LIMIT - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    Some(String::from_utf8_lossy(&body).into_owned())
}
