//! The rules of an upload (`PUT` with a `write` token), as pure decisions the Workers glue
//! (`edge::upload`) applies: which methods a route takes, the body's length and encoding,
//! what a `PUT /nix-cache-info` must say, and what the origin's answer to a write means.
//!
//! Every refusal is a [`Refused`]: a 4xx and a reason safe to show, given before anything is
//! written.

use crate::nix::{ObjectKind, Route};
use crate::policy::{FailReason, ALLOW};

/// `Allow` for an object route of a Worker that takes uploads.
pub const ALLOW_PUT: &str = "GET, HEAD, PUT";

/// The README section on pushing objects over the upload limit.
pub const BIG_OBJECTS_HINT: &str =
    "push objects this large straight to the bucket with `nix copy --to s3://...` (README.md, \"Pushing\")";

/// Longest `nix-cache-info` body taken by `PUT /nix-cache-info`.
pub const MAX_CACHE_INFO_BYTES: u64 = 4096;

/// Longest `Content-Type` or `Content-Encoding` value kept on an object.
const MAX_HEADER_VALUE: usize = 256;

/// An upload refused before anything was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: String,
}

fn refused(status: u16, reason: impl Into<String>) -> Refused {
    Refused {
        status,
        reason: reason.into(),
    }
}

/// The methods `route` answers: PUT too on the routes that take uploads, when uploads are on.
pub fn allow(route: &Route, uploads: bool) -> &'static str {
    if uploads && *route != Route::Landing {
        ALLOW_PUT
    } else {
        ALLOW
    }
}

/// The body's length from `Content-Length`: required (411), a plain decimal (400), at most
/// `max` bytes (413, with how to push bigger objects), and at most the route's own limit.
pub fn body_length(content_length: Option<&str>, route: &Route, max: u64) -> Result<u64, Refused> {
    let Some(value) = content_length else {
        return Err(refused(
            411,
            "Content-Length required: uploads are not taken in chunked encoding",
        ));
    };
    let value = value.trim();
    let length: u64 = value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| refused(400, "Content-Length is not a number"))?;
    let own = match route.kind() {
        ObjectKind::NarInfo => Some(crate::narinfo::MAX_NARINFO_BYTES as u64),
        ObjectKind::CacheInfo => Some(MAX_CACHE_INFO_BYTES),
        _ => None,
    };
    if let Some(own) = own.filter(|&own| length > own) {
        return Err(refused(
            413,
            format!("body of {length} bytes is over the {own} bytes this file may have"),
        ));
    }
    if length > max {
        return Err(refused(
            413,
            format!(
                "body of {length} bytes is over this cache's upload limit of {max} bytes \
                 (MAX_UPLOAD_BYTES): {BIG_OBJECTS_HINT}"
            ),
        ));
    }
    Ok(length)
}

/// How a narinfo body is decoded before it is parsed: `None` for none (or `identity`), or the
/// `DecompressionStream` format for `gzip` and `deflate`. Anything else is 415.
pub fn narinfo_decoding(content_encoding: Option<&str>) -> Result<Option<&'static str>, Refused> {
    match content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => Ok(None),
        Some("gzip") | Some("x-gzip") => Ok(Some("gzip")),
        Some("deflate") => Ok(Some("deflate")),
        Some(_) => Err(refused(
            415,
            "narinfo Content-Encoding not supported: send it uncompressed, gzip or deflate \
             (the Worker must read it to check and sign it)",
        )),
    }
}

/// A client's `Content-Type` or `Content-Encoding` kept on the object: printable ASCII, short;
/// `Ok(None)` when absent.
pub fn kept_header(name: &str, value: Option<&str>) -> Result<Option<String>, Refused> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() <= MAX_HEADER_VALUE && v.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(refused(
            400,
            format!("{name} is not a short printable value"),
        )),
    }
}

/// Checks a `PUT /nix-cache-info` body against this cache's store dir: the Worker serves that
/// file itself, so a matching one is ignored (204) and any other refused (400).
pub fn check_cache_info(body: &str, store_dir: &str) -> Result<(), Refused> {
    let theirs = body
        .lines()
        .find_map(|line| line.strip_prefix("StoreDir:"))
        .map(str::trim);
    match theirs {
        Some(dir) if dir == store_dir => Ok(()),
        Some(_) => Err(refused(
            400,
            format!("StoreDir does not match this cache's {store_dir}"),
        )),
        None => Err(refused(400, "nix-cache-info without StoreDir")),
    }
}

/// What the origin's answer to a write (PUT or DELETE) means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteVerdict {
    Done,
    /// S3 refused the body: its SHA-256 is not the one signed (`XAmzContentSHA256Mismatch`,
    /// `BadDigest`).
    DigestMismatch,
    Fail(FailReason),
}

/// Judges the origin's answer to a write from its status and S3 error code.
pub fn judge_write(status: u16, s3_code: Option<&str>) -> WriteVerdict {
    if (200..300).contains(&status) {
        return WriteVerdict::Done;
    }
    match s3_code {
        Some("XAmzContentSHA256Mismatch" | "BadDigest") => WriteVerdict::DigestMismatch,
        Some("NoSuchBucket") => WriteVerdict::Fail(FailReason::NoSuchBucket),
        code if status == 403 => WriteVerdict::Fail(crate::policy::forbidden(code)),
        _ if status >= 500 => WriteVerdict::Fail(FailReason::OriginError(status)),
        _ => WriteVerdict::Fail(FailReason::Unexpected(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route::parse(path).unwrap()
    }

    const NAR: &str = "/nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz";
    const NARINFO: &str = "/jn6wiy4rxkfv62gas26kiggypxrnc1p4.narinfo";

    #[test]
    fn methods() {
        assert_eq!(allow(&route(NAR), true), "GET, HEAD, PUT");
        assert_eq!(allow(&route("/nix-cache-info"), true), "GET, HEAD, PUT");
        assert_eq!(allow(&route("/"), true), "GET, HEAD");
        assert_eq!(allow(&route(NAR), false), "GET, HEAD");
    }

    #[test]
    fn lengths() {
        let nar = route(NAR);
        assert_eq!(body_length(Some("10"), &nar, 100), Ok(10));
        assert_eq!(body_length(Some("0"), &nar, 100), Ok(0));
        assert_eq!(body_length(Some("100"), &nar, 100), Ok(100));
        assert_eq!(body_length(None, &nar, 100).unwrap_err().status, 411);
        for bad in ["", "-1", "1e3", "0x10", "99999999999999999999999"] {
            assert_eq!(
                body_length(Some(bad), &nar, 100).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        let over = body_length(Some("101"), &nar, 100).unwrap_err();
        assert_eq!(over.status, 413);
        assert!(
            over.reason.contains("nix copy --to s3://"),
            "{}",
            over.reason
        );
        assert!(over.reason.contains("MAX_UPLOAD_BYTES"));
        let narinfo = body_length(Some("65537"), &route(NARINFO), u64::MAX).unwrap_err();
        assert_eq!(narinfo.status, 413);
        assert_eq!(
            body_length(Some("65536"), &route(NARINFO), u64::MAX),
            Ok(65536)
        );
        assert_eq!(
            body_length(Some("4097"), &route("/nix-cache-info"), u64::MAX)
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn narinfo_encodings() {
        assert_eq!(narinfo_decoding(None), Ok(None));
        assert_eq!(narinfo_decoding(Some("identity")), Ok(None));
        assert_eq!(narinfo_decoding(Some("GZIP")), Ok(Some("gzip")));
        assert_eq!(narinfo_decoding(Some("deflate")), Ok(Some("deflate")));
        for other in ["xz", "br", "zstd", "bzip2"] {
            assert_eq!(
                narinfo_decoding(Some(other)).unwrap_err().status,
                415,
                "{other}"
            );
        }
    }

    #[test]
    fn kept_headers() {
        assert_eq!(
            kept_header("Content-Encoding", Some("br")),
            Ok(Some("br".into()))
        );
        assert_eq!(kept_header("Content-Encoding", None), Ok(None));
        assert_eq!(
            kept_header("Content-Type", Some("a\u{1}b"))
                .unwrap_err()
                .status,
            400
        );
        assert!(kept_header("Content-Type", Some(&"a".repeat(300))).is_err());
    }

    #[test]
    fn cache_info_puts() {
        let nix_sends = "StoreDir: /nix/store\n";
        assert_eq!(check_cache_info(nix_sends, "/nix/store"), Ok(()));
        assert_eq!(
            check_cache_info("StoreDir: /gnu/store\n", "/nix/store")
                .unwrap_err()
                .status,
            400
        );
        assert!(check_cache_info("WantMassQuery: 1\n", "/nix/store").is_err());
    }

    #[test]
    fn write_verdicts() {
        assert_eq!(judge_write(200, None), WriteVerdict::Done);
        assert_eq!(judge_write(204, None), WriteVerdict::Done);
        assert_eq!(
            judge_write(400, Some("XAmzContentSHA256Mismatch")),
            WriteVerdict::DigestMismatch
        );
        assert_eq!(
            judge_write(400, Some("BadDigest")),
            WriteVerdict::DigestMismatch
        );
        assert_eq!(
            judge_write(403, Some("AccessDenied")),
            WriteVerdict::Fail(FailReason::Forbidden(Some("AccessDenied".into())))
        );
        assert_eq!(
            judge_write(403, Some("SignatureDoesNotMatch")),
            WriteVerdict::Fail(FailReason::BadCredentials("SignatureDoesNotMatch"))
        );
        assert_eq!(
            judge_write(404, Some("NoSuchBucket")),
            WriteVerdict::Fail(FailReason::NoSuchBucket)
        );
        assert_eq!(
            judge_write(503, None),
            WriteVerdict::Fail(FailReason::OriginError(503))
        );
        assert_eq!(
            judge_write(301, None),
            WriteVerdict::Fail(FailReason::Unexpected(301))
        );
    }
}
