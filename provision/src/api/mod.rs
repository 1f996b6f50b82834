//! Provider APIs: DigitalOcean ([`digitalocean`]), Cloudflare ([`cloudflare`]) and Spaces
//! over S3 ([`spaces`]), each call a small value (method, path, query, body, what it
//! answers), all of them sent by the one [`send::Sender`] with the provider's
//! authentication and the one retry policy ([`HttpSettings`]); every failure is one
//! [`ApiError`] that says which provider, which call and which resource.

pub mod cloudflare;
pub mod digitalocean;
pub mod s3_xml;
pub mod send;
pub mod spaces;

use std::time::Duration;

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

/// One JSON API call as data (DigitalOcean, Cloudflare).
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
    /// Whether sending it twice does no more than sending it once (so a 5xx or a lost answer
    /// may be retried): by default, GET, HEAD, PUT and DELETE.
    fn idempotent(&self) -> bool {
        matches!(self.method(), "GET" | "HEAD" | "PUT" | "DELETE")
    }
}

/// A JSON call as a request for the sender: `Accept` and `Content-Type` JSON.
pub(crate) fn json_request<C: Call>(call: &C) -> send::Request {
    let method = call.method();
    let path = call.path();
    let query = call
        .query()
        .iter()
        .map(|(k, v)| format!("{}={}", segment(k), segment(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = vec![("accept".to_owned(), "application/json".to_owned())];
    let body = match call.body() {
        Some(text) => {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            Zeroizing::new(text.as_bytes().to_vec())
        }
        None => Zeroizing::new(Vec::new()),
    };
    send::Request {
        call: method.to_owned(),
        resource: path.clone(),
        method,
        path,
        query,
        headers,
        body,
        idempotent: call.idempotent(),
    }
}

/// How a call failed, and where: provider, call (`GET`, or the S3 operation) and resource
/// (the API path, or `s3://bucket/key`).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The provider answered with an error status, in its own words: `codes` holds S3's
    /// `Code`, DigitalOcean's `id`, or Cloudflare's integer `errors[].code`s.
    #[error(
        "{provider} answered HTTP {status}{} to {call} {resource}: {message}{}",
        codes.first().filter(|c| !c.bytes().all(|b| b.is_ascii_digit())).map(|c| format!(" {c}")).unwrap_or_default(),
        hint(*status, codes.first().map(String::as_str))
    )]
    Status {
        provider: &'static str,
        call: String,
        resource: String,
        status: u16,
        codes: Vec<String>,
        message: String,
    },
    /// No answer: connection refused, reset or timed out.
    #[error("{provider}: {call} {resource}: no answer after {attempts} attempt(s): {reason}")]
    Transport {
        provider: &'static str,
        call: String,
        resource: String,
        attempts: u32,
        reason: String,
    },
    /// An answer provision cannot read (described, never quoted: it may hold a secret).
    #[error(
        "{provider} answered {call} {resource} with a body provision cannot read (unexpected \
         answer): {reason}"
    )]
    Malformed {
        provider: &'static str,
        call: String,
        resource: String,
        reason: String,
    },
    /// A list longer than provision reads: acting on part of it could touch the wrong thing.
    #[error(
        "{provider}: {call} {resource}: the list goes on past {pages} pages; provision does \
         not act on a list it has not read to the end (raise PROVISION_MAX_PAGES to read more)"
    )]
    TooManyPages {
        provider: &'static str,
        call: String,
        resource: String,
        pages: u32,
    },
    /// A base URL provision cannot use.
    #[error("{provider}: base URL {url:?} is not usable: {reason}")]
    Endpoint {
        provider: &'static str,
        url: String,
        reason: String,
    },
}

/// What to check, for the errors whose cause is usually on this side.
fn hint(status: u16, code: Option<&str>) -> &'static str {
    match (status, code) {
        (_, Some("SignatureDoesNotMatch" | "InvalidAccessKeyId")) => {
            " (check SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY)"
        }
        (_, Some("RequestTimeTooSkewed")) => " (check this machine's clock)",
        (_, Some("BucketNotEmpty")) => " (the bucket still holds objects; delete them first)",
        (501, _) => " (this server does not implement this call)",
        _ => "",
    }
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The provider's (first) error code (S3 `Code`, DigitalOcean `id`, Cloudflare's
    /// number), when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status { codes, .. } => codes.first().map(String::as_str),
            _ => None,
        }
    }

    /// Whether the provider answered with this error code (Cloudflare's `errors[].code`).
    pub fn has_code(&self, code: i64) -> bool {
        let code = code.to_string();
        matches!(self, Self::Status { codes, .. } if codes.contains(&code))
    }

    /// Whether the call may have been performed even though it failed (so a create should
    /// look for its result before trying again).
    pub fn may_have_happened(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500,
            Self::Transport { .. } | Self::Malformed { .. } => true,
            Self::TooManyPages { .. } | Self::Endpoint { .. } => false,
        }
    }

    /// True when S3 refused the credentials themselves (wrong key or secret, clock).
    pub fn is_credentials(&self) -> bool {
        matches!(
            self.code(),
            Some("SignatureDoesNotMatch" | "InvalidAccessKeyId" | "RequestTimeTooSkewed")
        )
    }

    /// True when a bucket could not be deleted because objects remain in it.
    pub fn is_bucket_not_empty(&self) -> bool {
        self.code() == Some("BucketNotEmpty")
    }

    /// True when the server does not implement the call (`501`, e.g. bucket settings on s3s-fs).
    pub fn is_not_implemented(&self) -> bool {
        self.status() == Some(501)
    }
}

/// The one retry policy and its timeouts, for every provider. Tests shorten them through
/// the environment.
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

    /// The HTTP agent: one attempt's timeouts, no redirects (an answer is the provider's own).
    pub fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(self.timeout.min(Duration::from_secs(10)))
            .timeout_read(self.timeout)
            .timeout_write(self.timeout)
            .redirects(0)
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
        call: "GET".to_owned(),
        resource: path.to_owned(),
        pages: max_pages,
    })
}

/// Parses a JSON body, describing a failure without quoting the body (it may hold a secret).
pub(crate) fn parse_json<T: DeserializeOwned>(
    provider: &'static str,
    request: &send::Request,
    body: &[u8],
) -> Result<T, ApiError> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        &b"null"[..]
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|e| ApiError::Malformed {
        provider,
        call: request.call.clone(),
        resource: request.resource.clone(),
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
        let request = |method| json_request(&Probe(method));
        let err = parse_json::<Key>("DigitalOcean", &request("POST"), br#"{"n": "SECRETVALUE"}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRETVALUE"), "{err}");
        assert!(err.contains("unexpected shape"), "{err}");
        assert!(err.contains("DigitalOcean answered POST /v2/x"), "{err}");
        let err = parse_json::<Key>("DigitalOcean", &request("GET"), b"<html>")
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
                    call: "GET".into(),
                    resource: "/x".into(),
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

    struct Probe(&'static str);
    impl Call for Probe {
        type Response = serde::de::IgnoredAny;
        fn method(&self) -> &'static str {
            self.0
        }
        fn path(&self) -> String {
            "/v2/x".into()
        }
        fn query(&self) -> Vec<(&'static str, String)> {
            vec![("name", "a b&c".into()), ("page", "2".into())]
        }
    }

    #[test]
    fn json_calls_become_requests() {
        let get = json_request(&Probe("GET"));
        assert_eq!(get.query, "name=a%20b%26c&page=2");
        assert!(get.idempotent && get.body.is_empty());
        assert!(!json_request(&Probe("POST")).idempotent);
        assert!(!json_request(&Probe("PATCH")).idempotent);
        assert!(json_request(&Probe("DELETE")).idempotent);
    }

    #[test]
    fn errors_name_provider_call_and_resource() {
        let e = ApiError::Status {
            provider: "Spaces",
            call: "GetBucketVersioning".into(),
            resource: "s3://nix-store".into(),
            status: 403,
            codes: vec!["SignatureDoesNotMatch".into()],
            message: "The request signature we calculated does not match".into(),
        };
        assert_eq!(
            e.to_string(),
            "Spaces answered HTTP 403 SignatureDoesNotMatch to GetBucketVersioning \
             s3://nix-store: The request signature we calculated does not match (check \
             SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY)"
        );
        assert!(e.is_credentials() && !e.may_have_happened());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("abc-1.2_~"), "abc-1.2_~");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
