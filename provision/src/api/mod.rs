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
        /// The provider's error codes (Cloudflare's integer `errors[].code`).
        codes: Vec<i64>,
    },
    /// A list longer than provision reads: acting on part of it could touch the wrong thing.
    #[error(
        "{provider}: {method} {path}: the list goes on past {pages} pages; provision does not \
         act on a list it has not read to the end (raise PROVISION_MAX_PAGES to read more)"
    )]
    TooManyPages {
        provider: &'static str,
        method: &'static str,
        path: String,
        pages: u32,
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

    /// Whether the provider answered with this error code (Cloudflare's `errors[].code`).
    pub fn has_code(&self, code: i64) -> bool {
        matches!(self, Self::Status { codes, .. } if codes.contains(&code))
    }

    /// Whether the call may have been performed even though it failed (so a create should
    /// look for its result before trying again).
    pub fn may_have_happened(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500,
            Self::Transport { .. } | Self::Malformed { .. } => true,
            Self::TooManyPages { .. } => false,
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
    /// The most pages of one list provision reads before it refuses the list.
    pub max_pages: u32,
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
            max_pages: ms("PROVISION_MAX_PAGES", 100).clamp(1, 10_000) as u32,
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

/// One page of a list, and whether the provider says another follows.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// Reads a list to its last page: `fetch(n)` asks for page `n` (from 1). A list that goes on
/// past `max_pages` is an error, never silently cut.
pub fn all_pages<T>(
    provider: &'static str,
    path: &str,
    max_pages: u32,
    mut fetch: impl FnMut(u32) -> Result<Page<T>, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let mut all = Vec::new();
    for page in 1..=max_pages {
        let Page { items, more } = fetch(page)?;
        let empty = items.is_empty();
        all.extend(items);
        if !more || empty {
            return Ok(all);
        }
    }
    Err(ApiError::TooManyPages {
        provider,
        method: "GET",
        path: path.to_owned(),
        pages: max_pages,
    })
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
            max_pages: 100,
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
    fn lists_are_read_to_the_end_or_refused() {
        let pages = |n: u32| {
            move |page: u32| {
                Ok(Page {
                    items: vec![page],
                    more: page < n,
                })
            }
        };
        assert_eq!(all_pages("P", "/x", 5, pages(3)).unwrap(), [1, 2, 3]);
        assert_eq!(all_pages("P", "/x", 3, pages(3)).unwrap(), [1, 2, 3]);
        let err = all_pages("P", "/x", 3, pages(4)).unwrap_err();
        assert!(
            matches!(err, ApiError::TooManyPages { pages: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("past 3 pages"), "{err}");
        // A provider that says "more" but answers an empty page ends the list.
        let empty = |page: u32| {
            Ok(Page {
                items: if page == 1 { vec![1] } else { vec![] },
                more: true,
            })
        };
        assert_eq!(all_pages("P", "/x", 10, empty).unwrap(), [1]);
        // An error on any page is the list's error.
        let failing = |page: u32| {
            if page == 2 {
                Err(ApiError::Transport {
                    provider: "P",
                    method: "GET",
                    path: "/x".into(),
                    attempts: 1,
                    reason: "reset".into(),
                })
            } else {
                Ok(Page {
                    items: vec![page],
                    more: true,
                })
            }
        };
        assert!(all_pages("P", "/x", 10, failing).is_err());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("abc-1.2_~"), "abc-1.2_~");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
