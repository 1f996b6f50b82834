//! Provider APIs. Each call is a small value (method, path, query, body, response type) that
//! implements [`Call`]; each provider has one `send` that authenticates it, retries it when
//! that is safe, and turns the provider's error body into an [`ApiError`] carrying the
//! provider's own message.
//!
//! Retries: 429 always (the request was not performed), honouring `Retry-After` up to a cap;
//! 5xx and timeouts only for idempotent methods (GET, PUT, DELETE). A POST that failed in any
//! other way is not repeated blindly: apply looks for what it may have created instead.

pub mod cloudflare;
pub mod digitalocean;
pub mod spaces;

use std::time::Duration;

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

/// One API call as data.
pub trait Call {
    /// What a successful answer holds (inside the provider's envelope, if it has one).
    type Response: DeserializeOwned;
    fn method(&self) -> &'static str;
    /// Path below the base URL, with any ids already URL-safe.
    fn path(&self) -> String;
    fn query(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// A JSON body. It may hold a secret (a private key, a Worker secret), so it is wiped
    /// after sending.
    fn body(&self) -> Option<Zeroizing<String>> {
        None
    }
}

/// How a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The provider answered with an error status; `message` is the provider's own.
    #[error("{provider} answered {status} to {method} {path}: {message}")]
    Status {
        provider: &'static str,
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    /// No answer: connection refused, reset or timed out.
    #[error("{provider}: {method} {path}: no answer after {attempts} attempt(s): {reason}")]
    Transport {
        provider: &'static str,
        method: &'static str,
        path: String,
        attempts: u32,
        reason: String,
    },
    /// An answer provision cannot read.
    #[error("{provider} answered {method} {path} with a body provision cannot read: {reason}")]
    Malformed {
        provider: &'static str,
        method: &'static str,
        path: String,
        reason: String,
    },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the call may have been performed even though it failed (so a create should
    /// look for its result before trying again).
    pub fn may_have_happened(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500,
            Self::Transport { .. } | Self::Malformed { .. } => true,
        }
    }
}

/// Timeouts and retry pacing. Tests shorten them through the environment.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl HttpSettings {
    /// `PROVISION_HTTP_TIMEOUT_MS` (30000), `PROVISION_RETRY_ATTEMPTS` (5),
    /// `PROVISION_RETRY_BASE_MS` (500), `PROVISION_RETRY_MAX_MS` (30000, also the cap on
    /// `Retry-After`).
    pub fn from_env() -> Self {
        let ms = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        Self {
            timeout: Duration::from_millis(ms("PROVISION_HTTP_TIMEOUT_MS", 30_000)),
            attempts: ms("PROVISION_RETRY_ATTEMPTS", 5).clamp(1, 20) as u32,
            base_delay: Duration::from_millis(ms("PROVISION_RETRY_BASE_MS", 500)),
            max_delay: Duration::from_millis(ms("PROVISION_RETRY_MAX_MS", 30_000)),
        }
    }

    pub fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(self.timeout)
            .user_agent(concat!("provision/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The wait before attempt `attempt + 1`: `Retry-After` when given, else exponential.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)));
        retry_after.unwrap_or(backoff).min(self.max_delay)
    }
}

/// A raw answer: status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

/// One HTTP request, ready to send.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub url: &'a str,
    pub method: &'static str,
    /// The path alone, for messages.
    pub path: &'a str,
    pub query: &'a [(&'static str, String)],
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<&'a str>,
}

/// Sends `request`, retrying per the module rules. Returns the 2xx answer, or the last error
/// answer for the caller to turn into its provider's error.
pub(crate) fn exchange(
    provider: &'static str,
    agent: &ureq::Agent,
    settings: &HttpSettings,
    request: &Request<'_>,
) -> Result<Answer, ApiError> {
    let Request {
        url,
        method,
        path,
        query,
        headers,
        body,
    } = *request;
    let idempotent = matches!(method, "GET" | "HEAD" | "PUT" | "DELETE");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = agent.request(method, url);
        for (k, v) in query {
            request = request.query(k, v);
        }
        for (k, v) in headers {
            request = request.set(k, v);
        }
        let result = match body {
            Some(b) => request
                .set("Content-Type", "application/json")
                .send_string(b),
            None => request.call(),
        };
        let last = attempt >= settings.attempts;
        match result {
            Ok(response) => {
                let status = response.status();
                let body = response.into_string().map_err(|e| ApiError::Malformed {
                    provider,
                    method,
                    path: path.to_owned(),
                    reason: format!("reading the body: {e}"),
                })?;
                return Ok(Answer { status, body });
            }
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = response.into_string().unwrap_or_default();
                let retry = status == 429 || (status >= 500 && idempotent);
                if !retry || last {
                    return Ok(Answer { status, body });
                }
                let wait = settings.delay(attempt - 1, retry_after);
                eprintln!(
                    "  {provider} answered {status} to {method} {path}; retrying in {:.1}s",
                    wait.as_secs_f32()
                );
                std::thread::sleep(wait);
            }
            Err(ureq::Error::Transport(t)) => {
                let reason = t.to_string();
                if !idempotent || last {
                    return Err(ApiError::Transport {
                        provider,
                        method,
                        path: path.to_owned(),
                        attempts: attempt,
                        reason,
                    });
                }
                let wait = settings.delay(attempt - 1, None);
                eprintln!(
                    "  {provider}: {method} {path}: {reason}; retrying in {:.1}s",
                    wait.as_secs_f32()
                );
                std::thread::sleep(wait);
            }
        }
    }
}

/// Parses a JSON body, describing a failure without quoting the body (it may hold a secret).
pub(crate) fn parse_json<T: DeserializeOwned>(
    provider: &'static str,
    method: &'static str,
    path: &str,
    body: &str,
) -> Result<T, ApiError> {
    let text = if body.trim().is_empty() { "null" } else { body };
    serde_json::from_str(text).map_err(|e| ApiError::Malformed {
        provider,
        method,
        path: path.to_owned(),
        reason: format!(
            "{} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Io => "unreadable",
                serde_json::error::Category::Syntax => "not JSON",
                serde_json::error::Category::Data => "JSON of an unexpected shape",
                serde_json::error::Category::Eof => "truncated JSON",
            },
            e.line(),
            e.column()
        ),
    })
}

/// Percent-encodes one path segment.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_exponential_capped_and_honours_retry_after() {
        let s = HttpSettings {
            timeout: Duration::from_secs(1),
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        assert_eq!(s.delay(0, None), Duration::from_millis(100));
        assert_eq!(s.delay(3, None), Duration::from_millis(800));
        assert_eq!(s.delay(10, None), Duration::from_secs(2));
        assert_eq!(
            s.delay(0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            s.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn malformed_bodies_are_described_without_quoting_them() {
        #[derive(Debug, serde::Deserialize)]
        struct Key {
            #[allow(dead_code)]
            n: u32,
        }
        let err = parse_json::<Key>("DigitalOcean", "POST", "/v2/x", r#"{"n": "SECRETVALUE"}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRETVALUE"), "{err}");
        assert!(err.contains("unexpected shape"), "{err}");
        let err = parse_json::<Key>("DigitalOcean", "GET", "/v2/x", "<html>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("abc-1.2_~"), "abc-1.2_~");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
