//! The cache policy: which origin answers become which status, what the edge stores, for how
//! long, and which headers cross the Worker in each direction.
//!
//! Pure decisions on plain values (status codes, S3 error codes, header names); the Workers glue
//! applies them. The status mapping:
//!
//! | origin answer | Worker answers |
//! |---|---|
//! | 2xx (200, 206, …), 304, 416 | relayed as is |
//! | 404 (`NoSuchKey` or no code), 403 `AccessDenied` | 404: the object is not in the cache |
//! | 403 `SignatureDoesNotMatch`, `InvalidAccessKeyId`, `RequestTimeTooSkewed`, … | 502 naming the code |
//! | any other 403, with or without a code | 502 naming the code |
//! | `NoSuchBucket` (whatever the status) | 502: `SPACES_BUCKET` names no bucket |
//! | 5xx | 502 naming the status |
//! | any other status (400, 3xx, …) | 502 naming the status |
//! | no answer at all | 502 "origin unreachable" |
//!
//! A 502 is never stored. Only full 200s (objects up to `SEGMENT_BYTES` as one entry, larger
//! ones as segments: see [`crate::segments`]) and 404 misses are.
//!
//! A conditional request (`If-None-Match`, `If-Modified-Since`) for an object stored at the edge
//! is answered 304 when [`not_modified`] says so.

use crate::nix::ObjectKind;

/// The largest object Cloudflare's edge cache stores (512 MB on the plans most people use).
pub const EDGE_OBJECT_LIMIT: u64 = 512 * 1024 * 1024;

/// The methods the Worker answers; the value of `Allow` on a 405.
pub const ALLOW: &str = "GET, HEAD";

/// How long the edge (and clients) keep each kind of answer, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttls {
    /// NARs are named by their hash and never change: a year.
    pub nar: u32,
    /// narinfos and realisations change rarely (a re-push, a new signature): a day.
    pub narinfo: u32,
    /// Misses: short, so a fresh push shows up soon: a minute.
    pub negative: u32,
    /// Everything else (listings, logs, debug info, nix-cache-info): an hour.
    pub other: u32,
}

impl Default for Ttls {
    fn default() -> Self {
        Ttls {
            nar: 31_536_000,
            narinfo: 86_400,
            negative: 60,
            other: 3_600,
        }
    }
}

/// What the Worker makes of the origin's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// Relay the answer (2xx, 304, 416).
    Pass,
    /// The object is not there: the Worker answers 404.
    Missing,
    /// The origin failed or refused the Worker: 502, never stored.
    Fail(FailReason),
}

/// Why the origin failed; [`message`](Self::message) is the 502's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// A 403 that blames the signature or the key (the S3 error code).
    BadCredentials(&'static str),
    /// Any other 403: the S3 error code if the body had a plausible one.
    Forbidden(Option<String>),
    /// The bucket does not exist: `SPACES_BUCKET` or `SPACES_ENDPOINT` is wrong.
    NoSuchBucket,
    /// The origin answered 5xx.
    OriginError(u16),
    /// A status the Worker does not expect from S3 for a GET (400, 3xx, …).
    Unexpected(u16),
    /// No answer: connection refused, DNS, TLS, timeout.
    Unreachable,
    /// A ranged answer without a usable `Content-Range` or `ETag`, or for other bytes than
    /// asked: the object cannot be served in segments from it.
    BadSegment,
}

impl FailReason {
    /// Short plain text that names the cause and is safe to show.
    pub fn message(&self) -> String {
        match self {
            FailReason::BadCredentials(code) => {
                format!("origin rejected the Worker's credentials ({code})")
            }
            FailReason::Forbidden(Some(code)) => format!("origin refused access ({code})"),
            FailReason::Forbidden(None) => "origin refused access (403)".to_string(),
            FailReason::NoSuchBucket => {
                "origin has no such bucket (NoSuchBucket): check SPACES_BUCKET".to_string()
            }
            FailReason::OriginError(status) => format!("origin answered {status}"),
            FailReason::Unexpected(status) => format!("origin answered an unexpected {status}"),
            FailReason::Unreachable => "origin unreachable".to_string(),
            FailReason::BadSegment => {
                "origin answered a range without a usable Content-Range or ETag".to_string()
            }
        }
    }
}

/// S3 error codes that mean the Worker's credentials (or clock) are wrong.
const CREDENTIAL_CODES: [&str; 6] = [
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "RequestTimeTooSkewed",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
];

/// Why a 403 other than a missing key refused the Worker: its credentials (or clock) when
/// S3's code says so, else the code as given, if any.
pub fn forbidden(s3_code: Option<&str>) -> FailReason {
    match s3_code {
        Some(code) => match CREDENTIAL_CODES.into_iter().find(|known| *known == code) {
            Some(known) => FailReason::BadCredentials(known),
            None => FailReason::Forbidden(Some(code.to_string())),
        },
        None => FailReason::Forbidden(None),
    }
}

/// Judges the origin's answer. `status` is the origin's status; `s3_code` the `<Code>` of its
/// S3 XML error body, if any (see [`s3_error_code`]).
pub fn classify_origin(status: u16, s3_code: Option<&str>) -> OriginVerdict {
    if s3_code == Some("NoSuchBucket") && status >= 400 {
        return OriginVerdict::Fail(FailReason::NoSuchBucket);
    }
    match status {
        200..=299 | 304 | 416 => OriginVerdict::Pass,
        404 => OriginVerdict::Missing,
        403 => match s3_code {
            Some("AccessDenied" | "NoSuchKey") => OriginVerdict::Missing,
            code => OriginVerdict::Fail(forbidden(code)),
        },
        500..=599 => OriginVerdict::Fail(FailReason::OriginError(status)),
        _ => OriginVerdict::Fail(FailReason::Unexpected(status)),
    }
}

/// The `<Code>…</Code>` of an S3 XML error body. Tolerant of whatever surrounds it, strict about
/// the code itself: 1 to 64 ASCII letters and digits (every S3 code is), else `None`, so a
/// garbage body never ends up in a response.
pub fn s3_error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    let code = body[start..start + len].trim();
    ((1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(code)
}

/// Whether [`classify_origin`] needs S3's error code for this status, so the error body must
/// be read: every error but 416, whose body is relayed to the client as it is.
pub fn needs_error_code(status: u16) -> bool {
    status >= 400 && status != 416
}

/// `Cache-Control` for an answer of this kind and status.
///
/// NAR 200 (and 206, 304): `public, max-age=<nar>, immutable`; narinfo and realisation:
/// `<narinfo>`; listing, log, debug info and nix-cache-info: `<other>`; the landing page:
/// 300 s; a 404: `<negative>`; anything else (5xx, 502, 416, …): `no-store`.
pub fn cache_control(kind: ObjectKind, status: u16, ttls: &Ttls) -> String {
    let max_age = match status {
        200 | 206 | 304 => match kind {
            ObjectKind::Nar => return format!("public, max-age={}, immutable", ttls.nar),
            ObjectKind::NarInfo | ObjectKind::Realisation => ttls.narinfo,
            ObjectKind::Listing | ObjectKind::Log | ObjectKind::DebugInfo => ttls.other,
            ObjectKind::CacheInfo => ttls.other,
            ObjectKind::Landing => 300,
        },
        404 => ttls.negative,
        _ => return "no-store".to_string(),
    };
    format!("public, max-age={max_age}")
}

/// Whether the edge stores this answer as one entry: a full 200 with a known `Content-Length`
/// of at most `limit` bytes (`SEGMENT_BYTES`; a larger object is stored as segments, never a
/// 206), or a 404 miss (a short negative entry). The Worker's own pages (landing,
/// nix-cache-info) are made on every request and never stored.
pub fn storable(kind: ObjectKind, status: u16, content_length: Option<u64>, limit: u64) -> bool {
    if matches!(kind, ObjectKind::Landing | ObjectKind::CacheInfo) {
        return false;
    }
    match status {
        200 => content_length.is_some_and(|len| len <= limit),
        404 => true,
        _ => false,
    }
}

/// The response headers relayed from the origin to the client, in lower case. Everything else
/// (`x-amz-*`, `set-cookie`, `server`, …) stays behind. `content-encoding` is the one an object
/// was uploaded with (Nix's `narinfo-compression`, `ls-compression`, `log-compression`): the
/// bytes are relayed as stored, so the client needs it to read them.
pub const PASSED_RESPONSE_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "accept-ranges",
    "content-range",
    "content-encoding",
];

/// Whether a response header is relayed from the origin to the client (case-insensitive):
/// one of [`PASSED_RESPONSE_HEADERS`].
pub fn pass_response_header(name: &str) -> bool {
    PASSED_RESPONSE_HEADERS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

/// Request headers forwarded from the client to the origin (case-insensitive): `range` only.
///
/// Conditional headers (`if-none-match`, `if-modified-since`) stay behind on purpose: the edge
/// cache answers them from a stored object, and a 304 from the origin could not fill the cache.
/// The client's `authorization` and cookies never leave the Worker.
pub fn pass_request_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("range")
}

/// Whether a conditional GET or HEAD is answered 304 from a stored object with this `ETag` and
/// `Last-Modified` (RFC 9110, section 13.2.2): `If-None-Match` decides when present (weak
/// comparison, `*` matches any stored object); else `If-Modified-Since` does, when both dates
/// parse and the object is not newer. A date that does not parse means "modified".
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> bool {
    if let Some(tags) = if_none_match {
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
        return tags.split(',').any(|tag| {
            let tag = tag.trim();
            tag == "*" || etag.is_some_and(|etag| weak(etag) == weak(tag))
        });
    }
    let (Some(since), Some(modified)) = (if_modified_since, last_modified) else {
        return false;
    };
    match (
        since.trim().parse::<httpdate::HttpDate>(),
        modified.trim().parse::<httpdate::HttpDate>(),
    ) {
        (Ok(since), Ok(modified)) => modified <= since,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_requests() {
        let etag = Some("\"abc\"");
        let lm = Some("Wed, 02 Dec 2026 06:00:00 GMT");
        assert!(not_modified(Some("\"abc\""), None, etag, lm));
        assert!(not_modified(Some("\"x\", W/\"abc\""), None, etag, lm));
        assert!(not_modified(Some("*"), None, etag, lm));
        assert!(!not_modified(Some("\"abd\""), None, etag, lm));
        assert!(!not_modified(Some("\"abc\""), None, None, lm));
        // If-None-Match wins over If-Modified-Since.
        assert!(!not_modified(
            Some("\"zzz\""),
            Some("Wed, 02 Dec 2026 07:00:00 GMT"),
            etag,
            lm
        ));
        assert!(not_modified(
            None,
            Some("Wed, 02 Dec 2026 06:00:00 GMT"),
            etag,
            lm
        ));
        assert!(not_modified(
            None,
            Some("Thu, 03 Dec 2026 00:00:00 GMT"),
            etag,
            lm
        ));
        assert!(!not_modified(
            None,
            Some("Wed, 02 Dec 2026 05:59:59 GMT"),
            etag,
            lm
        ));
        assert!(!not_modified(None, Some("yesterday"), etag, lm));
        assert!(!not_modified(
            None,
            Some("Wed, 02 Dec 2026 06:00:00 GMT"),
            etag,
            None
        ));
        assert!(!not_modified(None, None, etag, lm));
    }

    #[test]
    fn default_ttls() {
        let t = Ttls::default();
        assert_eq!(
            (t.nar, t.narinfo, t.negative, t.other),
            (31_536_000, 86_400, 60, 3_600)
        );
    }

    #[test]
    fn s3_codes_are_found_and_checked() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
                    <Message>The specified key does not exist.</Message></Error>";
        assert_eq!(s3_error_code(body), Some("NoSuchKey"));
        assert_eq!(
            s3_error_code("<Code> AccessDenied </Code>"),
            Some("AccessDenied")
        );
        assert_eq!(s3_error_code("<Code></Code>"), None);
        assert_eq!(s3_error_code("<Code>a<b>c</Code>"), None);
        assert_eq!(s3_error_code("<Code>NoEnd"), None);
        assert_eq!(s3_error_code("</Code><Code>"), None);
        assert_eq!(s3_error_code("not xml"), None);
        assert_eq!(s3_error_code(""), None);
        assert_eq!(
            s3_error_code(&format!("<Code>{}</Code>", "A".repeat(65))),
            None
        );
    }

    #[test]
    fn error_bodies_are_read_except_for_416() {
        for status in [400, 403, 404, 500, 503, 599] {
            assert!(needs_error_code(status), "{status}");
        }
        for status in [200, 206, 304, 399, 416] {
            assert!(!needs_error_code(status), "{status}");
        }
    }

    #[test]
    fn messages_name_the_cause() {
        let m = FailReason::BadCredentials("SignatureDoesNotMatch").message();
        assert_eq!(
            m,
            "origin rejected the Worker's credentials (SignatureDoesNotMatch)"
        );
        assert_eq!(
            FailReason::OriginError(503).message(),
            "origin answered 503"
        );
        assert_eq!(FailReason::Unreachable.message(), "origin unreachable");
        assert!(FailReason::NoSuchBucket.message().contains("SPACES_BUCKET"));
        assert!(FailReason::Forbidden(Some("AllAccessDisabled".into()))
            .message()
            .contains("AllAccessDisabled"));
    }
}
