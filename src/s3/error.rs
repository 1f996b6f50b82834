//! S3's error answers: a code, the HTTP status S3 gives it, and the XML body clients parse
//! (`<Error><Code>…</Code><Message>…</Message></Error>`).
//!
//! ```text
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does
//! not match the signature you provided.</Message><Resource>/nix-store/nix-cache-info</Resource>
//! </Error>
//! ```
//!
//! Messages are safe to show: they never carry a key, a secret or a signature.

use std::fmt;

/// The S3 error codes this endpoint answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    AccessDenied,
    AuthorizationHeaderMalformed,
    BadDigest,
    EntityTooLarge,
    EntityTooSmall,
    ExpiredToken,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    MalformedXML,
    MissingContentLength,
    MissingSecurityHeader,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NotImplemented,
    RequestTimeTooSkewed,
    ServiceUnavailable,
    SignatureDoesNotMatch,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            ErrorCode::BadDigest => "BadDigest",
            ErrorCode::EntityTooLarge => "EntityTooLarge",
            ErrorCode::EntityTooSmall => "EntityTooSmall",
            ErrorCode::ExpiredToken => "ExpiredToken",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::InvalidAccessKeyId => "InvalidAccessKeyId",
            ErrorCode::InvalidArgument => "InvalidArgument",
            ErrorCode::InvalidPart => "InvalidPart",
            ErrorCode::InvalidPartOrder => "InvalidPartOrder",
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::MalformedXML => "MalformedXML",
            ErrorCode::MissingContentLength => "MissingContentLength",
            ErrorCode::MissingSecurityHeader => "MissingSecurityHeader",
            ErrorCode::NoSuchBucket => "NoSuchBucket",
            ErrorCode::NoSuchKey => "NoSuchKey",
            ErrorCode::NoSuchUpload => "NoSuchUpload",
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
            ErrorCode::SignatureDoesNotMatch => "SignatureDoesNotMatch",
        }
    }

    /// The code S3 names, when it is one of ours (for passing an origin's error on).
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The HTTP status S3 answers this code with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::AccessDenied
            | ErrorCode::InvalidAccessKeyId
            | ErrorCode::RequestTimeTooSkewed
            | ErrorCode::SignatureDoesNotMatch => 403,
            ErrorCode::AuthorizationHeaderMalformed
            | ErrorCode::BadDigest
            | ErrorCode::EntityTooLarge
            | ErrorCode::EntityTooSmall
            | ErrorCode::ExpiredToken
            | ErrorCode::InvalidArgument
            | ErrorCode::InvalidPart
            | ErrorCode::InvalidPartOrder
            | ErrorCode::InvalidRequest
            | ErrorCode::MalformedXML
            | ErrorCode::MissingSecurityHeader => 400,
            ErrorCode::MissingContentLength => 411,
            ErrorCode::NoSuchBucket | ErrorCode::NoSuchKey | ErrorCode::NoSuchUpload => 404,
            ErrorCode::NotImplemented => 501,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }
}

const ALL: [ErrorCode; 22] = [
    ErrorCode::AccessDenied,
    ErrorCode::AuthorizationHeaderMalformed,
    ErrorCode::BadDigest,
    ErrorCode::EntityTooLarge,
    ErrorCode::EntityTooSmall,
    ErrorCode::ExpiredToken,
    ErrorCode::InternalError,
    ErrorCode::InvalidAccessKeyId,
    ErrorCode::InvalidArgument,
    ErrorCode::InvalidPart,
    ErrorCode::InvalidPartOrder,
    ErrorCode::InvalidRequest,
    ErrorCode::MalformedXML,
    ErrorCode::MissingContentLength,
    ErrorCode::MissingSecurityHeader,
    ErrorCode::NoSuchBucket,
    ErrorCode::NoSuchKey,
    ErrorCode::NoSuchUpload,
    ErrorCode::NotImplemented,
    ErrorCode::RequestTimeTooSkewed,
    ErrorCode::ServiceUnavailable,
    ErrorCode::SignatureDoesNotMatch,
];

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An S3 error answer: its code (and so its status) and a message safe to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    pub code: ErrorCode,
    pub message: String,
}

impl S3Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> S3Error {
        S3Error {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The XML body for a request on `resource` (the request's path).
    pub fn xml(&self, resource: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource></Error>\n",
            self.code.as_str(),
            xml_escape(&self.message),
            xml_escape(resource)
        )
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

/// Text made safe for XML character data.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped for the five XML entities.
pub fn element_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml_unescape(&xml[start..end]))
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_s3_s() {
        for (code, status) in [
            (ErrorCode::SignatureDoesNotMatch, 403),
            (ErrorCode::AccessDenied, 403),
            (ErrorCode::ExpiredToken, 400),
            (ErrorCode::RequestTimeTooSkewed, 403),
            (ErrorCode::EntityTooLarge, 400),
            (ErrorCode::NotImplemented, 501),
            (ErrorCode::NoSuchBucket, 404),
            (ErrorCode::NoSuchKey, 404),
            (ErrorCode::MissingContentLength, 411),
        ] {
            assert_eq!(code.status(), status, "{code}");
        }
    }

    #[test]
    fn codes_round_trip() {
        for code in ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("SlowDown"), None);
    }

    #[test]
    fn xml_shape_and_escaping() {
        let e = S3Error::new(ErrorCode::AccessDenied, "a <b> & \"c\"");
        let xml = e.xml("/bucket/a&b");
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"));
        assert!(xml.contains("<Code>AccessDenied</Code>"));
        assert!(xml.contains("<Message>a &lt;b&gt; &amp; &quot;c&quot;</Message>"));
        assert!(xml.contains("<Resource>/bucket/a&amp;b</Resource>"));
        assert_eq!(element_text(&xml, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            element_text(&xml, "Message").as_deref(),
            Some("a <b> & \"c\"")
        );
        assert_eq!(element_text(&xml, "Nope"), None);
    }
}
