//! What both fakes share: the request pipeline (route, authenticate, validate, inject
//! faults, act, validate the answer, record), the call journal, fault injection, ids and
//! timestamps.

use super::http::{Reply, Request};
use super::openapi::{Checked, Operation, Spec};
use jsonschema::Validator;
use serde_json::Value;
use sha1::{Digest, Sha1};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// API path and query, without the server prefix (`/client/v4` for Cloudflare), e.g.
    /// `/v2/cdn/endpoints?page=1` or `/zones?name=example.com`.
    pub path: String,
    /// The status answered; 0 when the connection was dropped without an answer.
    pub status: u16,
}

/// A failure to inject into the next matching requests. Faults apply to requests that
/// are authenticated and valid (a refused request does not use one up), in the order they
/// were injected.
#[derive(Clone, Debug)]
pub struct Fault {
    /// HTTP method to match (`"*"` matches any).
    pub method: &'static str,
    /// API path prefix to match, without the server prefix, e.g. `/v2/cdn/endpoints` or
    /// `/zones/` (a leading `/client/v4` is ignored).
    pub path_prefix: String,
    pub kind: FaultKind,
    /// How many matching requests get the fault.
    pub times: u32,
}

#[derive(Clone, Debug)]
pub enum FaultKind {
    /// This status with the provider's error body; the operation is not performed.
    Status(u16),
    /// 429 with `Retry-After` (and DigitalOcean's ratelimit headers); not performed.
    RateLimited { retry_after_secs: u32 },
    /// Hold the connection for [`TIMEOUT_HOLD`] without answering, then close it; not
    /// performed. The client's own timeout decides what the client sees.
    Timeout,
    /// 200 with a body that is not JSON; not performed.
    Malformed,
    /// Perform the operation, then answer this status with the provider's error body: the
    /// request died half way, from the client's point of view.
    AfterEffect(u16),
}

/// How long a [`FaultKind::Timeout`] holds the connection.
pub const TIMEOUT_HOLD: Duration = Duration::from_secs(3);

/// Calls, violations and pending faults of one fake.
#[derive(Debug, Default)]
pub struct Journal {
    pub calls: Vec<Call>,
    pub violations: Vec<String>,
    faults: Vec<Fault>,
}

impl Journal {
    pub fn inject(&mut self, mut fault: Fault, prefix: &str) {
        if let Some(rest) = fault.path_prefix.strip_prefix(prefix) {
            if !prefix.is_empty() {
                fault.path_prefix = rest.to_string();
            }
        }
        if fault.times > 0 {
            self.faults.push(fault);
        }
    }

    /// Drops every pending fault: the service answers again.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let index = self.faults.iter().position(|f| {
            (f.method == "*" || f.method.eq_ignore_ascii_case(method))
                && path.starts_with(&f.path_prefix)
        })?;
        let fault = &mut self.faults[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }
}

/// What a provider's handler answers.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// JSON body; `None` for an empty body (204).
    pub body: Option<Value>,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
        }
    }

    pub fn empty(status: u16) -> Answer {
        Answer { status, body: None }
    }
}

/// Why a request was refused before the handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownOperation,
    Unauthorized,
    InvalidParameters,
    InvalidBody,
}

/// The provider-specific half of a fake.
pub trait Provider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn spec(&self) -> &'static Spec;
    /// Path prefix of the API under the server root ("" or "/client/v4").
    fn prefix(&self) -> &'static str;
    fn token(&self) -> &str;
    fn journal(&self) -> &Mutex<Journal>;
    /// Validator for the provider's error bodies.
    fn error_validator(&self) -> &Validator;
    /// The provider's error body for this status and message.
    fn error_body(&self, status: u16, message: &str) -> Value;
    /// Status for a refusal.
    fn refusal_status(&self, refusal: Refusal) -> u16;
    /// Headers sent with every answer (rate-limit counters and the like).
    fn common_headers(&self, status: u16) -> Vec<(String, String)>;
    /// Header problems that the schema cannot see (e.g. retired auth headers).
    fn header_violations(&self, _request: &Request) -> Vec<String> {
        Vec::new()
    }
    /// Strings that must never appear in a recorded violation.
    fn sensitive_values(&self, body: &Value) -> Vec<String>;
    /// Rules the schema should state but does not (recorded as violations, like schema
    /// failures).
    fn extra_request_problems(&self, _op: &Operation, _checked: &Checked) -> Vec<String> {
        Vec::new()
    }
    /// Whether the fake implements this operation (others answer 501 and are recorded).
    fn implements(&self, _op: &Operation) -> bool {
        true
    }
    /// Performs the operation on the state.
    fn handle(&self, op: &Operation, checked: Checked) -> Answer;
}

/// Runs one request through the pipeline.
pub fn dispatch<P: Provider>(provider: &P, request: Request) -> Reply {
    let prefix = provider.prefix();
    let method = request.method.clone();
    let api_path = request.path.strip_prefix(prefix).map(str::to_string);
    let recorded_path = match &api_path {
        Some(p) if request.query.is_empty() => p.clone(),
        Some(p) => format!("{p}?{}", request.query),
        None => request.path_and_query(),
    };
    let mut secrets: Vec<String> = vec![provider.token().to_string()];
    if let Some(auth) = request.header("authorization") {
        secrets.push(auth.to_string());
        if let Some((_, t)) = auth.split_once(' ') {
            secrets.push(t.trim().to_string());
        }
    }
    if let Ok(body) = serde_json::from_slice::<Value>(&request.body) {
        secrets.extend(provider.sensitive_values(&body));
    }
    let mut violations: Vec<String> = Vec::new();
    let context = format!("{method} {recorded_path}");

    let (status, headers, body, hang) = 'answer: {
        let found = api_path
            .as_deref()
            .and_then(|p| provider.spec().find(&method, p));
        let Some((op, path_params)) = found else {
            let message = if api_path
                .as_deref()
                .is_some_and(|p| provider.spec().has_path(p))
            {
                format!("method {method} is not allowed on this path")
            } else {
                "no such operation in the API description".to_string()
            };
            violations.push(format!("{context}: {message}"));
            let status = provider.refusal_status(Refusal::UnknownOperation);
            break 'answer error_reply(provider, status, &message);
        };

        if !provider.implements(op) {
            let message = format!("operation {} is not implemented by the fake", op.id);
            violations.push(format!("{context}: {message}"));
            break 'answer error_reply(provider, 501, &message);
        }
        for v in provider.header_violations(&request) {
            violations.push(format!("{context}: {v}"));
        }
        match request.header("authorization") {
            None => {
                violations.push(format!("{context}: no Authorization header"));
                break 'answer unauthorized(provider);
            }
            Some(value) => match value.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer")
                        && !token.is_empty()
                        && !token.contains(char::is_whitespace) =>
                {
                    if token != provider.token() {
                        break 'answer unauthorized(provider);
                    }
                }
                _ => {
                    violations.push(format!(
                        "{context}: malformed Authorization header (expected `Bearer <token>`)"
                    ));
                    break 'answer unauthorized(provider);
                }
            },
        }

        let checked = match op.check_request(
            path_params,
            &request.query,
            request.header("content-type"),
            &request.body,
        ) {
            Ok(c) => c,
            Err(problems) => {
                let body_problem = problems.iter().any(|p| {
                    !p.starts_with("parameter")
                        && !p.starts_with("missing required parameter")
                        && !p.starts_with("unknown query")
                });
                for p in &problems {
                    violations.push(format!("{context} ({}): {p}", op.id));
                }
                let refusal = if body_problem {
                    Refusal::InvalidBody
                } else {
                    Refusal::InvalidParameters
                };
                let message = format!(
                    "request does not match the API description: {}",
                    problems[0]
                );
                break 'answer error_reply(
                    provider,
                    provider.refusal_status(refusal),
                    &redact(&message, &secrets),
                );
            }
        };

        let extra = provider.extra_request_problems(op, &checked);
        if !extra.is_empty() {
            for p in &extra {
                violations.push(format!("{context} ({}): {p}", op.id));
            }
            let message = format!("request does not match the API description: {}", extra[0]);
            break 'answer error_reply(
                provider,
                provider.refusal_status(Refusal::InvalidBody),
                &redact(&message, &secrets),
            );
        }

        let fault = provider
            .journal()
            .lock()
            .unwrap()
            .take_fault(&method, api_path.as_deref().unwrap_or(""));
        match fault {
            Some(FaultKind::Status(status)) => {
                break 'answer error_reply(provider, status, &fault_message(status));
            }
            Some(FaultKind::RateLimited { retry_after_secs }) => {
                let (status, mut headers, body, _) =
                    error_reply(provider, 429, "API rate limit exceeded.");
                headers.retain(|(n, _)| n != "ratelimit-remaining");
                headers.push(("ratelimit-remaining".into(), "0".into()));
                headers.push(("retry-after".into(), retry_after_secs.to_string()));
                break 'answer (status, headers, body, None);
            }
            Some(FaultKind::Timeout) => {
                break 'answer (0, Vec::new(), Vec::new(), Some(TIMEOUT_HOLD));
            }
            Some(FaultKind::Malformed) => {
                let mut headers = provider.common_headers(200);
                headers.push(("content-type".into(), "application/json".into()));
                let body = b"<html><body>502 upstream hiccup, not JSON {\"result\":".to_vec();
                break 'answer (200, headers, body, None);
            }
            Some(FaultKind::AfterEffect(status)) => {
                let _ = provider.handle(op, checked);
                break 'answer error_reply(provider, status, &fault_message(status));
            }
            None => {}
        }

        let answer = provider.handle(op, checked);
        let body = answer
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).expect("JSON serialises"))
            .unwrap_or_default();
        if (200..300).contains(&answer.status) {
            for p in op.check_response(answer.status, &body) {
                violations.push(format!(
                    "{context} ({}): the fake answered off-schema: {p}",
                    op.id
                ));
            }
        } else {
            check_error_body(provider, &context, answer.body.as_ref(), &mut violations);
        }
        let mut headers = provider.common_headers(answer.status);
        if answer.body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        (answer.status, headers, body, None)
    };

    let mut journal = provider.journal().lock().unwrap();
    journal.calls.push(Call {
        method: method.clone(),
        path: recorded_path,
        status,
    });
    for v in violations {
        let mut v = redact(&v, &secrets);
        if v.len() > 600 {
            let mut cut = 600;
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            v.truncate(cut);
            v.push_str(" …");
        }
        journal.violations.push(format!("{}: {v}", provider.name()));
    }
    drop(journal);
    match hang {
        Some(duration) => Reply::Hang(duration),
        None => Reply::Full {
            status,
            headers,
            body,
        },
    }
}

type Parts = (u16, Vec<(String, String)>, Vec<u8>, Option<Duration>);

fn error_reply<P: Provider>(provider: &P, status: u16, message: &str) -> Parts {
    let body = provider.error_body(status, message);
    let mut headers = provider.common_headers(status);
    headers.push(("content-type".into(), "application/json".into()));
    (
        status,
        headers,
        serde_json::to_vec(&body).expect("JSON serialises"),
        None,
    )
}

fn unauthorized<P: Provider>(provider: &P) -> Parts {
    error_reply(provider, 401, "")
}

fn check_error_body<P: Provider>(
    provider: &P,
    context: &str,
    body: Option<&Value>,
    violations: &mut Vec<String>,
) {
    match body {
        None => violations.push(format!(
            "{context}: the fake answered an error without a body"
        )),
        Some(body) => {
            for e in provider.error_validator().iter_errors(body) {
                violations.push(format!(
                    "{context}: the fake's error body is off-schema: {e}"
                ));
            }
        }
    }
}

fn fault_message(status: u16) -> String {
    match status {
        500 => "Server was unable to give you a response.".into(),
        502 | 503 => "Service temporarily unavailable, please retry.".into(),
        504 => "Gateway timeout, please retry.".into(),
        _ => format!("injected failure with status {status}"),
    }
}

/// Replaces every sensitive value in `text` by `[redacted]`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if secret.len() >= 4 {
            out = out.replace(secret.as_str(), "[redacted]");
            // JSON-escaped copies (PEM newlines become `\n`).
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if escaped.len() >= 4 {
                out = out.replace(escaped, "[redacted]");
            }
        }
    }
    out
}

/// Every string value under one of `keys`, anywhere in `value`.
pub fn strings_under(value: &Value, keys: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, keys: &[&str], out: &mut Vec<String>, hit: bool) {
        match v {
            Value::String(s) if hit => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| walk(i, keys, out, hit)),
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, keys, out, hit || keys.contains(&k.as_str()));
                }
            }
            _ => {}
        }
    }
    walk(value, keys, &mut out, false);
    out
}

/// Unique-enough ids without a random number generator: a per-process seed and a counter,
/// hashed.
pub fn fresh_bytes() -> [u8; 20] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut hasher = Sha1::new();
    hasher.update(n.to_le_bytes());
    hasher.update(nanos.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A version-4-shaped UUID, as DigitalOcean uses.
pub fn uuid() -> String {
    let mut b = fresh_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A 32-hex-digit identifier, as Cloudflare uses.
pub fn cf_id() -> String {
    hex(&fresh_bytes()[..16])
}

/// RFC 3339 timestamp, whole seconds, UTC.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Go's `time.Time.String()` layout, `2006-01-02 15:04:05.999999999 -0700 MST`, in UTC:
/// what Cloudflare's Origin CA API answers for `expires_on` (e.g.
/// `2039-03-24 01:48:00 +0000 UTC`; fractional seconds only when not zero, trailing zeros
/// dropped).
pub fn go_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fraction = match t.nanosecond() {
        0 => String::new(),
        n => format!(".{}", format!("{n:09}").trim_end_matches('0')),
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{fraction} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
