//! Which S3 operation a request to the endpoint is, what it may touch, and what the origin's
//! answers to it mean. Exactly the operations Nix's `s3://` store uses:
//!
//! | request | operation |
//! |---|---|
//! | `GET /<bucket>/<key>` | GetObject |
//! | `HEAD /<bucket>/<key>` | HeadObject |
//! | `PUT /<bucket>/<key>` | PutObject |
//! | `POST /<bucket>/<key>?uploads` | CreateMultipartUpload |
//! | `PUT /<bucket>/<key>?partNumber=N&uploadId=U` | UploadPart |
//! | `POST /<bucket>/<key>?uploadId=U` | CompleteMultipartUpload |
//! | `DELETE /<bucket>/<key>?uploadId=U` | AbortMultipartUpload |
//!
//! Anything else is `NotImplemented`. The key must be a path of the route table
//! ([`Route::parse`]); the bucket must be the Worker's `SPACES_BUCKET`.

use crate::nix::Route;
use crate::token::Scope;

use super::error::{element_text, ErrorCode, S3Error};

/// The first path segments of the cache's routes. A bucket named like one of them would make
/// `/<bucket>/…` ambiguous with the cache protocol, so provision's config refuses such names.
pub const ROUTE_SEGMENTS: [&str; 6] = [
    "nix-cache-info",
    "nar",
    "log",
    "debuginfo",
    "realisations",
    "build-trace-v2",
];

/// S3's highest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// Longest `CompleteMultipartUpload` body taken (10 000 parts of about 100 bytes each).
pub const MAX_COMPLETE_BODY: usize = 1024 * 1024;

/// Longest upload id taken.
const MAX_UPLOAD_ID: usize = 1024;

/// One S3 operation, its query parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    GetObject,
    HeadObject,
    PutObject,
    CreateMultipartUpload,
    UploadPart { part_number: u32, upload_id: String },
    CompleteMultipartUpload { upload_id: String },
    AbortMultipartUpload { upload_id: String },
}

impl Operation {
    /// The scope a credential needs for it: reads take `read` (or `write`), the rest `write`.
    pub fn needs(&self) -> Scope {
        match self {
            Operation::GetObject | Operation::HeadObject => Scope::Read,
            _ => Scope::Write,
        }
    }

    /// The query of the origin request: the same operation, re-encoded.
    pub fn origin_query(&self) -> String {
        use crate::sigv4::uri_encode;
        match self {
            Operation::GetObject | Operation::HeadObject | Operation::PutObject => String::new(),
            Operation::CreateMultipartUpload => "uploads=".to_string(),
            Operation::UploadPart {
                part_number,
                upload_id,
            } => format!(
                "partNumber={part_number}&uploadId={}",
                uri_encode(upload_id, false)
            ),
            Operation::CompleteMultipartUpload { upload_id }
            | Operation::AbortMultipartUpload { upload_id } => {
                format!("uploadId={}", uri_encode(upload_id, false))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::PutObject => "PutObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart { .. } => "UploadPart",
            Operation::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload { .. } => "AbortMultipartUpload",
        }
    }

    /// Which operation `method` with the raw `query` is.
    pub fn parse(method: &str, query: &str) -> Result<Operation, S3Error> {
        let mut uploads = false;
        let mut part_number = None;
        let mut upload_id = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)
                .ok_or_else(|| S3Error::new(ErrorCode::InvalidArgument, "bad query encoding"))?;
            let duplicate = match name {
                "uploads" => std::mem::replace(&mut uploads, true),
                "partNumber" => part_number.replace(value).is_some(),
                "uploadId" => upload_id.replace(value).is_some(),
                // Added by some SDKs to name the operation; says nothing else.
                "x-id" => false,
                _ => return Err(not_implemented(method, Some(name))),
            };
            if duplicate {
                return Err(S3Error::new(
                    ErrorCode::InvalidArgument,
                    format!("{name} given twice"),
                ));
            }
        }
        let upload_id = upload_id.map(check_upload_id).transpose()?;
        let op = match (method, uploads, part_number, upload_id) {
            ("GET", false, None, None) => Operation::GetObject,
            ("HEAD", false, None, None) => Operation::HeadObject,
            ("PUT", false, None, None) => Operation::PutObject,
            ("POST", true, None, None) => Operation::CreateMultipartUpload,
            ("PUT", false, Some(n), Some(upload_id)) => Operation::UploadPart {
                part_number: parse_part_number(&n)?,
                upload_id,
            },
            ("POST", false, None, Some(upload_id)) => {
                Operation::CompleteMultipartUpload { upload_id }
            }
            ("DELETE", false, None, Some(upload_id)) => {
                Operation::AbortMultipartUpload { upload_id }
            }
            _ => return Err(not_implemented(method, None)),
        };
        Ok(op)
    }
}

fn not_implemented(method: &str, parameter: Option<&str>) -> S3Error {
    let what = match parameter {
        Some(p) => format!("{method} with ?{p}"),
        None => method.to_string(),
    };
    S3Error::new(
        ErrorCode::NotImplemented,
        format!(
            "{what} is not implemented: this endpoint takes GetObject, HeadObject, PutObject and \
             the multipart upload calls (create, upload part, complete, abort) on cache files"
        ),
    )
}

fn parse_part_number(s: &str) -> Result<u32, S3Error> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n) && !s.starts_with('0'))
        .ok_or_else(|| {
            S3Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
                ),
            )
        })
}

fn check_upload_id(id: String) -> Result<String, S3Error> {
    if id.is_empty() || id.len() > MAX_UPLOAD_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(S3Error::new(
            ErrorCode::NoSuchUpload,
            "The specified upload does not exist.",
        ));
    }
    Ok(id)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// `%XX` decoded, strictly (a bad escape or non-UTF-8 is `None`); `+` stays `+`.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (h, l) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The cache route a request's raw `path` names under the Worker's `bucket`.
///
/// Another bucket is `NoSuchBucket`; no key (a bucket operation) is `NotImplemented`; a key
/// outside the route table is `NoSuchKey` for a read and `AccessDenied` for anything else.
pub fn target(path: &str, bucket: &str, read: bool) -> Result<Route, S3Error> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, key) = rest.split_once('/').unwrap_or((rest, ""));
    if percent_decode(first).as_deref() != Some(bucket) {
        return Err(S3Error::new(
            ErrorCode::NoSuchBucket,
            "The specified bucket does not exist",
        ));
    }
    if key.is_empty() {
        return Err(S3Error::new(
            ErrorCode::NotImplemented,
            "bucket operations are not implemented: name an object, /<bucket>/<key>",
        ));
    }
    let route = percent_decode(key)
        .and_then(|key| Route::parse(&format!("/{key}")).ok())
        .filter(|r| !matches!(r, Route::Landing));
    route.ok_or_else(|| {
        if read {
            S3Error::new(ErrorCode::NoSuchKey, "The specified key does not exist.")
        } else {
            S3Error::new(
                ErrorCode::AccessDenied,
                "keys of this bucket are the files of a Nix binary cache (nix-cache-info, \
                 <hash>.narinfo, nar/…, <hash>.ls, log/…, debuginfo/…, realisations/…, \
                 build-trace-v2/…)",
            )
        }
    })
}

/// Whether a file may be uploaded in parts. A narinfo (read, checked and signed by the
/// Worker), `nix-cache-info` and realisations are small and go in one PUT.
pub fn multipart_allowed(route: &Route) -> bool {
    matches!(
        route,
        Route::Nar { .. } | Route::Listing(_) | Route::Log(_) | Route::DebugInfo(_)
    )
}

/// The error for the client when the origin answered an upload call with `status` and `body`
/// (S3's XML). Codes that are the client's to fix pass on; the rest (the Worker's own
/// credentials, the origin failing) become `ServiceUnavailable`, without the origin's detail.
pub fn origin_error(status: u16, body: &str) -> S3Error {
    let code = element_text(body, "Code");
    let passed = match code.as_deref() {
        Some("XAmzContentSHA256Mismatch") => Some(ErrorCode::BadDigest),
        Some(c) => ErrorCode::parse(c).filter(|c| {
            matches!(
                c,
                ErrorCode::NoSuchUpload
                    | ErrorCode::InvalidPart
                    | ErrorCode::InvalidPartOrder
                    | ErrorCode::EntityTooSmall
                    | ErrorCode::EntityTooLarge
                    | ErrorCode::BadDigest
                    | ErrorCode::MalformedXML
                    | ErrorCode::NoSuchKey
            )
        }),
        None => None,
    };
    if code.as_deref() == Some("AccessDenied") {
        // An upload id that is not (or no longer) there, as some S3 servers say it, or a
        // Spaces key of the Worker's that may not write: refused either way, not worth a retry.
        return S3Error::new(
            ErrorCode::AccessDenied,
            "the cache's storage refused this (AccessDenied): the upload may not exist, or the \
             Worker's Spaces key may not write",
        );
    }
    match passed {
        Some(code) => S3Error::new(
            code,
            element_text(body, "Message").unwrap_or_else(|| code.as_str().to_string()),
        ),
        None => S3Error::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "the cache's storage answered {status}{}",
                code.map(|c| format!(" {c}")).unwrap_or_default()
            ),
        ),
    }
}

/// The origin's answer to `CompleteMultipartUpload`: S3 may answer 200 and put an `<Error>` in
/// the body (after its headers were sent). Nix ignores that body and would think the upload
/// worked, so such an answer becomes an error for the client.
pub fn completed(status: u16, body: &str) -> Result<(), S3Error> {
    if !(200..300).contains(&status) {
        return Err(origin_error(status, body));
    }
    if body.contains("<Error>") || body.contains("<Error ") {
        let error = origin_error(status, body);
        // A 200 is no code of its own: an unknown one is still a failure to report.
        return Err(if error.code == ErrorCode::ServiceUnavailable {
            S3Error::new(
                ErrorCode::InternalError,
                "the cache's storage could not complete the upload; send it again",
            )
        } else {
            error
        });
    }
    if !body.contains("CompleteMultipartUploadResult") {
        return Err(S3Error::new(
            ErrorCode::InternalError,
            "the cache's storage did not confirm the upload; send it again",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAR: &str = "nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar";

    fn op(method: &str, query: &str) -> Result<Operation, ErrorCode> {
        Operation::parse(method, query).map_err(|e| e.code)
    }

    #[test]
    fn operations_nix_uses() {
        assert_eq!(op("GET", ""), Ok(Operation::GetObject));
        assert_eq!(op("HEAD", ""), Ok(Operation::HeadObject));
        assert_eq!(op("PUT", ""), Ok(Operation::PutObject));
        assert_eq!(op("PUT", "x-id=PutObject"), Ok(Operation::PutObject));
        assert_eq!(op("POST", "uploads"), Ok(Operation::CreateMultipartUpload));
        assert_eq!(op("POST", "uploads="), Ok(Operation::CreateMultipartUpload));
        assert_eq!(
            op("PUT", "partNumber=3&uploadId=a%2Fb"),
            Ok(Operation::UploadPart {
                part_number: 3,
                upload_id: "a/b".into()
            })
        );
        assert_eq!(
            op("POST", "uploadId=xyz"),
            Ok(Operation::CompleteMultipartUpload {
                upload_id: "xyz".into()
            })
        );
        assert_eq!(
            op("DELETE", "uploadId=xyz"),
            Ok(Operation::AbortMultipartUpload {
                upload_id: "xyz".into()
            })
        );
        assert_eq!(
            Operation::UploadPart {
                part_number: 3,
                upload_id: "a/b+c".into()
            }
            .origin_query(),
            "partNumber=3&uploadId=a%2Fb%2Bc"
        );
        assert_eq!(Operation::GetObject.needs(), Scope::Read);
        assert_eq!(Operation::PutObject.needs(), Scope::Write);
        assert_eq!(Operation::CreateMultipartUpload.needs(), Scope::Write);
    }

    #[test]
    fn everything_else_is_not_implemented() {
        for (method, query) in [
            ("DELETE", ""),
            ("POST", ""),
            ("GET", "acl"),
            ("GET", "uploadId=x"),
            ("GET", "list-type=2"),
            ("PUT", "tagging"),
            ("OPTIONS", ""),
            ("PATCH", ""),
            ("PUT", "partNumber=1"),
            ("POST", "uploads&uploadId=x"),
        ] {
            assert_eq!(
                op(method, query),
                Err(ErrorCode::NotImplemented),
                "{method} ?{query}"
            );
        }
        for bad in ["0", "10001", "01", "x", "-1", ""] {
            assert_eq!(
                op("PUT", &format!("partNumber={bad}&uploadId=u")),
                Err(ErrorCode::InvalidArgument),
                "{bad}"
            );
        }
        assert_eq!(
            op("PUT", "partNumber=1&uploadId="),
            Err(ErrorCode::NoSuchUpload)
        );
        assert_eq!(
            op("PUT", "partNumber=1&partNumber=2&uploadId=u"),
            Err(ErrorCode::InvalidArgument)
        );
        assert_eq!(
            op("PUT", "partNumber=1&uploadId=%zz"),
            Err(ErrorCode::InvalidArgument)
        );
    }

    #[test]
    fn targets() {
        let t = |p: &str, read| target(p, "nix-store", read).map_err(|e| e.code);
        assert!(matches!(
            t(&format!("/nix-store/{NAR}"), false),
            Ok(Route::Nar { .. })
        ));
        assert_eq!(t("/nix-store/nix-cache-info", true), Ok(Route::CacheInfo));
        assert!(matches!(
            t("/nix-store/realisations/sha256:0000000000000000000000000000000000000000000000000000000000000000%21out.doi", false),
            Ok(Route::Realisation { .. })
        ));
        assert_eq!(
            t(&format!("/other/{NAR}"), false),
            Err(ErrorCode::NoSuchBucket)
        );
        assert_eq!(t("/nar/x", false), Err(ErrorCode::NoSuchBucket));
        assert_eq!(t("/nix-store", true), Err(ErrorCode::NotImplemented));
        assert_eq!(t("/nix-store/", true), Err(ErrorCode::NotImplemented));
        assert_eq!(
            t("/nix-store/secrets.txt", false),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(t("/nix-store/secrets.txt", true), Err(ErrorCode::NoSuchKey));
        assert_eq!(
            t("/nix-store/nar/../x", false),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(t("/nix-store/%ff", false), Err(ErrorCode::AccessDenied));
    }

    #[test]
    fn route_segments_are_the_route_table_s() {
        let examples = [
            "/nix-cache-info",
            "/nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar",
            "/log/0wplwx3f43xqwv17x8n1z5qk64ll860d-a.drv",
            "/debuginfo/00ff",
            "/realisations/sha256:0000000000000000000000000000000000000000000000000000000000000000!out.doi",
            "/build-trace-v2/0wplwx3f43xqwv17x8n1z5qk64ll860d-a.drv/out.doi",
        ];
        for (segment, path) in ROUTE_SEGMENTS.iter().zip(examples) {
            assert!(Route::parse(path).is_ok(), "{path}");
            assert_eq!(path[1..].split('/').next(), Some(*segment));
        }
    }

    #[test]
    fn multipart_only_for_big_files() {
        let r = |p: &str| Route::parse(p).unwrap();
        assert!(multipart_allowed(&r(&format!("/{NAR}"))));
        assert!(multipart_allowed(&r(
            "/log/0wplwx3f43xqwv17x8n1z5qk64ll860d-a.drv"
        )));
        assert!(!multipart_allowed(&r(
            "/jn6wiy4rxkfv62gas26kiggypxrnc1p4.narinfo"
        )));
        assert!(!multipart_allowed(&r("/nix-cache-info")));
    }

    #[test]
    fn completes_answered_200_with_an_error_are_errors() {
        let ok = "<?xml version=\"1.0\"?><CompleteMultipartUploadResult><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>";
        assert_eq!(completed(200, ok), Ok(()));
        let inside = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>";
        let e = completed(200, inside).unwrap_err();
        assert_eq!(e.code, ErrorCode::InternalError);
        let slow = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        assert_eq!(
            completed(200, slow).unwrap_err().code,
            ErrorCode::InternalError
        );
        let part = "<Error><Code>InvalidPart</Code><Message>One or more of the specified parts could not be found.</Message></Error>";
        assert_eq!(
            completed(400, part).unwrap_err().code,
            ErrorCode::InvalidPart
        );
        assert_eq!(
            completed(200, "").unwrap_err().code,
            ErrorCode::InternalError
        );
        let denied = "<Error><Code>AccessDenied</Code><Message>detail</Message></Error>";
        assert_eq!(
            completed(403, denied).unwrap_err().code,
            ErrorCode::AccessDenied
        );
        let gone = "<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>";
        assert_eq!(origin_error(404, gone).code, ErrorCode::NoSuchUpload);
        let creds =
            "<Error><Code>SignatureDoesNotMatch</Code><Message>secret detail</Message></Error>";
        let e = completed(403, creds).unwrap_err();
        assert_eq!(e.code, ErrorCode::ServiceUnavailable);
        assert!(!e.message.contains("secret detail"));
    }
}
