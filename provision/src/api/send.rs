//! The one place provision talks HTTP: every call to every provider, S3 included, is a
//! [`Request`] that [`Sender::send`] authenticates (the provider's [`Auth`]: a bearer token,
//! or AWS SigV4 with the workspace's signer), sends, and retries under the one policy in
//! [`HttpSettings`]:
//!
//! - 429 always (the request was not performed), honouring `Retry-After` up to a cap;
//! - 5xx (but 501 and 505, which will not change) and a lost answer (refused, reset, timed
//!   out) only when the request is idempotent: S3 calls, and GET, HEAD, PUT and DELETE on
//!   the JSON APIs. A POST or PATCH that failed that way is not repeated blindly: apply
//!   looks for what it may have made instead.
//!
//! Any answer that is not retried is returned, error statuses included: each provider's
//! module reads its own error body. This module never prints a header or a body, so no
//! token, signature or secret leaves it; the retry notices name only provider, call and
//! status.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix_spaces_cache::sigv4::{self, Credentials, S3Request, SigningTime};
use zeroize::Zeroizing;

use super::{ApiError, HttpSettings};
use crate::env::Secret;

/// The largest answer body read into memory (a listing page is far smaller).
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// How a provider authenticates each request.
pub enum Auth {
    /// `Authorization: Bearer <token>` (DigitalOcean, Cloudflare).
    Bearer(Secret),
    /// AWS Signature Version 4 for S3, path-style, signed afresh for every attempt.
    SigV4 {
        credentials: Credentials,
        region: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::SigV4 { region, .. } => write!(f, "SigV4 {{ region: {region:?}, .. }}"),
        }
    }
}

/// One HTTP request, ready to authenticate and send.
pub struct Request {
    /// What the call is, for messages: `GET` (JSON APIs) or the S3 operation name
    /// (`PutBucketPolicy`).
    pub call: String,
    /// What it is about, for messages: the API path, or `s3://bucket/key`.
    pub resource: String,
    pub method: &'static str,
    /// The path below the provider's base URL, encoded, exactly as signed.
    pub path: String,
    /// The encoded query string without `?` (S3: sorted, as signed); may be empty.
    pub query: String,
    /// Headers to send (and, for S3, to sign) besides the authentication.
    pub headers: Vec<(String, String)>,
    /// The body; it may hold a secret (a private key, a Worker secret), so it is wiped.
    pub body: Zeroizing<Vec<u8>>,
    /// Whether repeating it after a 5xx or a lost answer is safe.
    pub idempotent: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("call", &self.call)
            .field("resource", &self.resource)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Whether an answer with this status is worth another try: 429 always (nothing was done);
/// 5xx but 501 and 505 (which will not change) when repeating the request is safe.
fn retryable(status: u16, idempotent: bool) -> bool {
    status == 429 || (idempotent && status >= 500 && !matches!(status, 501 | 505))
}

/// Sends requests to one provider: its base URL, its authentication, the retry policy.
pub struct Sender {
    provider: &'static str,
    /// `scheme://host[:port][/prefix]`, no trailing `/`.
    base_url: String,
    /// `host[:port]` as sent in the `Host` header (and signed, for SigV4).
    host: String,
    /// The base URL's path (`/client/v4`), signed as part of the path.
    prefix: String,
    auth: Auth,
    agent: ureq::Agent,
    settings: HttpSettings,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender for `base_url` (`https://api.cloudflare.com/client/v4`,
    /// `https://fra1.digitaloceanspaces.com`); an unusable URL is an [`ApiError::Endpoint`].
    pub fn new(
        provider: &'static str,
        base_url: &str,
        auth: Auth,
        settings: HttpSettings,
    ) -> Result<Self, ApiError> {
        let invalid = |reason: &str| ApiError::Endpoint {
            provider,
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = base_url.trim().trim_end_matches('/');
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| invalid("expected http:// or https:// and a host"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // The workspace's own parser decides what a host[:port] is, as the Worker does.
        let endpoint =
            nix_spaces_cache::config::Endpoint::parse(&format!("{scheme}://{authority}"))
                .map_err(|e| invalid(&e.to_string()))?;
        if prefix.contains(['?', '#']) {
            return Err(invalid("expected no query or fragment"));
        }
        if matches!(auth, Auth::SigV4 { .. }) && !prefix.is_empty() {
            return Err(invalid(
                "only scheme, host and port are allowed (buckets are addressed path-style)",
            ));
        }
        Ok(Self {
            provider,
            base_url: format!("{}://{}{prefix}", endpoint.scheme.as_str(), endpoint.host),
            host: endpoint.host,
            prefix: prefix.to_owned(),
            agent: settings.agent(),
            auth,
            settings,
        })
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// `scheme://host[:port][/prefix]`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// The same sender under another retry policy.
    pub fn with_settings(mut self, settings: HttpSettings) -> Self {
        self.agent = settings.agent();
        self.settings = settings;
        self
    }

    /// Authenticates and sends `request`, retrying per the module rules. Returns the answer
    /// that ends the exchange, whatever its status; only a lost answer is an error.
    pub fn send(&self, request: &Request) -> Result<Response, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.settings.attempts;
            match self.send_once(request) {
                Ok(response) => {
                    if !retryable(response.status, request.idempotent) || last {
                        return Ok(response);
                    }
                    let retry_after = response
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let wait = self.settings.delay(attempt - 1, retry_after);
                    eprintln!(
                        "  {} answered {} to {} {}; retrying in {:.1}s",
                        self.provider,
                        response.status,
                        request.call,
                        request.resource,
                        wait.as_secs_f32()
                    );
                    std::thread::sleep(wait);
                }
                Err(reason) => {
                    if !request.idempotent || last {
                        return Err(ApiError::Transport {
                            provider: self.provider,
                            call: request.call.clone(),
                            resource: request.resource.clone(),
                            attempts: attempt,
                            reason,
                        });
                    }
                    let wait = self.settings.delay(attempt - 1, None);
                    eprintln!(
                        "  {}: {} {}: {reason}; retrying in {:.1}s",
                        self.provider,
                        request.call,
                        request.resource,
                        wait.as_secs_f32()
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// One attempt: the answer, or why there was none.
    fn send_once(&self, request: &Request) -> Result<Response, String> {
        let mut url = format!("{}{}", self.base_url, request.path);
        if !request.query.is_empty() {
            url.push('?');
            url.push_str(&request.query);
        }
        let mut http = self.agent.request(request.method, &url);
        for (name, value) in &request.headers {
            http = http.set(name, value);
        }
        match &self.auth {
            Auth::Bearer(token) => {
                let value = Zeroizing::new(format!("Bearer {}", token.expose()));
                http = http.set("authorization", &value);
            }
            Auth::SigV4 {
                credentials,
                region,
            } => {
                let path = format!("{}{}", self.prefix, request.path);
                let payload_hash = sigv4::sha256_hex(&request.body);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let signed = sigv4::sign_s3(
                    &S3Request {
                        method: request.method,
                        host: &self.host,
                        path: &path,
                        query: &request.query,
                        extra_headers: &request.headers,
                        payload_hash: &payload_hash,
                    },
                    credentials,
                    region,
                    SigningTime::from_unix_seconds(now),
                );
                http = http.set("host", &self.host);
                for (name, value) in &signed {
                    http = http.set(name, value);
                }
            }
        }
        let sends_body =
            matches!(request.method, "PUT" | "POST" | "PATCH") || !request.body.is_empty();
        let result = if sends_body {
            http.send_bytes(&request.body)
        } else {
            http.call()
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(transport)) => return Err(transport.to_string()),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                let value = response.header(&name)?.to_owned();
                Some((name.to_ascii_lowercase(), value))
            })
            .collect();
        let mut body = Vec::new();
        if request.method != "HEAD" {
            response
                .into_reader()
                .take(MAX_BODY_BYTES)
                .read_to_end(&mut body)
                .map_err(|e| format!("reading the answer: {e}"))?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HttpSettings {
        HttpSettings {
            timeout: Duration::from_secs(1),
            attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_pages: 10,
        }
    }

    #[test]
    fn what_is_retried() {
        for idempotent in [true, false] {
            assert!(retryable(429, idempotent));
            assert!(!retryable(404, idempotent) && !retryable(403, idempotent));
            assert!(!retryable(501, idempotent) && !retryable(505, idempotent));
            assert_eq!(retryable(500, idempotent), idempotent);
            assert_eq!(retryable(503, idempotent), idempotent);
        }
    }

    #[test]
    fn base_urls_are_checked_with_the_workspaces_endpoint_parser() {
        let bearer = || Auth::Bearer(Secret::new("t0ken-value"));
        let s = Sender::new(
            "Cloudflare",
            "https://api.cloudflare.com/client/v4/",
            bearer(),
            settings(),
        )
        .unwrap();
        assert_eq!(s.base_url(), "https://api.cloudflare.com/client/v4");
        assert_eq!(s.prefix, "/client/v4");
        let s = Sender::new(
            "DigitalOcean",
            "HTTPS://API.digitalocean.com:443",
            bearer(),
            settings(),
        )
        .unwrap();
        assert_eq!(s.base_url(), "https://api.digitalocean.com");
        let sigv4 = || Auth::SigV4 {
            credentials: Credentials::new("AKID", "secret-value"),
            region: "fra1".into(),
        };
        let s = Sender::new("Spaces", "http://127.0.0.1:9000", sigv4(), settings()).unwrap();
        assert_eq!((s.host.as_str(), s.prefix.as_str()), ("127.0.0.1:9000", ""));
        for bad in [
            "fra1.digitaloceanspaces.com",
            "ftp://x",
            "https://",
            "https://a b",
            "https://h:99999",
            "http://h:port",
        ] {
            assert!(
                Sender::new("Spaces", bad, sigv4(), settings()).is_err(),
                "{bad}"
            );
        }
        let err = Sender::new(
            "Spaces",
            "https://fra1.digitaloceanspaces.com/nix-store",
            sigv4(),
            settings(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("path-style"), "{err}");
        // Neither the token nor the secret shows in Debug.
        let s = Sender::new("Spaces", "http://127.0.0.1:9000", sigv4(), settings()).unwrap();
        assert!(!format!("{s:?}").contains("secret-value"));
        let s = Sender::new(
            "Cloudflare",
            "https://api.cloudflare.com/client/v4",
            bearer(),
            settings(),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("t0ken-value"));
    }
}
