//! SigV4 header authentication of a request to the S3 endpoint, from the request exactly as
//! received: method, raw path, raw query and the signed headers only.
//!
//! The workspace's signer ([`crate::sigv4`]) rebuilds the canonical request and the string to
//! sign with the region and date of the request's own credential scope; the signing key comes
//! from the secret derived for the access key id ([`super::credentials`]). Checked, in order:
//!
//! 1. the `Authorization` header: `AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/s3/
//!    aws4_request, SignedHeaders=<names>, Signature=<64 hex>`; presigned URLs are refused;
//! 2. the payload hash `x-amz-content-sha256`: `UNSIGNED-PAYLOAD`, the empty body's hash or a
//!    hex SHA-256; the streaming forms (`STREAMING-…`, `Content-Encoding: aws-chunked`) are
//!    `NotImplemented`;
//! 3. the access key id names a credential of this cache (`InvalidAccessKeyId`);
//! 4. `x-amz-date` within [`MAX_SKEW`] seconds of `now` (`RequestTimeTooSkewed`), its day the
//!    scope's;
//! 5. the signature, compared in constant time (`SignatureDoesNotMatch`);
//! 6. the credential's expiry (`ExpiredToken`), told only to a request signed with the secret.
//!
//! Pure: `now` and `TOKEN_SECRET` are arguments.

use crate::sigv4::{
    self, PathMode, SecretKey, SignableRequest, SigningTime, EMPTY_SHA256, UNSIGNED_PAYLOAD,
};
use crate::token::TokenSecret;

use super::credentials::{derive_secret, S3Credential};
use super::error::{ErrorCode, S3Error};

/// How far `x-amz-date` may be from the Worker's clock, in seconds (S3's 15 minutes).
pub const MAX_SKEW: u64 = 900;

/// Which clients sign in a way this endpoint takes, for `NotImplemented` answers.
pub const CLIENTS_HINT: &str =
    "this endpoint takes SigV4 header signing with x-amz-content-sha256 \
     UNSIGNED-PAYLOAD or a hex SHA-256, as Nix 2.33 and later, curl --aws-sigv4 and boto3 (payload \
     signing off) send";

/// A request as the Worker received it.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    pub method: &'a str,
    /// The raw path, as on the wire (percent escapes kept).
    pub path: &'a str,
    /// The raw query without `?`; may be empty.
    pub query: &'a str,
    /// Every header, lowercase names (duplicates joined with `, ` as the runtime does).
    pub headers: &'a [(String, String)],
}

impl Received<'_> {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the client said about its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `UNSIGNED-PAYLOAD`: the bytes are not covered by the signature.
    Unsigned,
    /// The empty body's hash.
    Empty,
    /// A hex SHA-256 of the body, passed on so the origin checks the bytes.
    Sha256(String),
}

impl Payload {
    /// The `x-amz-content-sha256` value to sign the origin request with.
    pub fn origin_hash(&self) -> &str {
        match self {
            Payload::Unsigned => UNSIGNED_PAYLOAD,
            Payload::Empty => EMPTY_SHA256,
            Payload::Sha256(hex) => hex,
        }
    }
}

/// A request whose signature verified, with a valid credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub credential: S3Credential,
    pub payload: Payload,
}

fn err(code: ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::new(code, message)
}

fn malformed(message: &str) -> S3Error {
    err(ErrorCode::AuthorizationHeaderMalformed, message)
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, PartialEq, Eq)]
struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, S3Error> {
    let rest = value
        .strip_prefix(sigv4::ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            err(
                ErrorCode::InvalidRequest,
                format!(
                    "the authorization mechanism is not supported: use {}",
                    sigv4::ALGORITHM
                ),
            )
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| malformed("the Authorization header is malformed"))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(malformed("the Authorization header is malformed")),
        };
        if slot.replace(value).is_some() {
            return Err(malformed("the Authorization header is malformed"));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed(
            "the Authorization header needs Credential, SignedHeaders and Signature",
        ));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = parts[..] else {
        return Err(malformed(
            "the Credential is not <id>/<date>/<region>/s3/aws4_request",
        ));
    };
    if service != "s3" {
        return Err(malformed("the Credential's service must be s3"));
    }
    if region.is_empty()
        || region.len() > 64
        || !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(malformed("the Credential's region is malformed"));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    let sorted = signed_headers.windows(2).all(|w| w[0] < w[1]);
    if !sorted
        || signed_headers
            .iter()
            .any(|n| n.is_empty() || n.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(malformed(
            "SignedHeaders must be lowercase, sorted and unique",
        ));
    }
    for needed in ["host", "x-amz-date"] {
        if !signed_headers.contains(&needed) {
            return Err(err(
                ErrorCode::AccessDenied,
                format!("{needed} must be a signed header"),
            ));
        }
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(err(
            ErrorCode::SignatureDoesNotMatch,
            "the signature is not 64 lowercase hex digits",
        ));
    }
    Ok(AuthHeader {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The payload hash the client declared, or why it is not taken.
pub fn payload(req: &Received) -> Result<Payload, S3Error> {
    let chunked = req.header("content-encoding").is_some_and(|e| {
        e.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("aws-chunked"))
    });
    if chunked || req.header("x-amz-decoded-content-length").is_some() {
        return Err(err(
            ErrorCode::NotImplemented,
            format!("aws-chunked bodies are not taken: {CLIENTS_HINT}"),
        ));
    }
    let Some(value) = req.header("x-amz-content-sha256") else {
        return Err(err(
            ErrorCode::InvalidRequest,
            "Missing required header for this request: x-amz-content-sha256",
        ));
    };
    if value == UNSIGNED_PAYLOAD {
        return Ok(Payload::Unsigned);
    }
    if value.starts_with("STREAMING-") {
        return Err(err(
            ErrorCode::NotImplemented,
            format!("streaming payload signatures are not taken: {CLIENTS_HINT}"),
        ));
    }
    if value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(if value == EMPTY_SHA256 {
            Payload::Empty
        } else {
            Payload::Sha256(value.to_string())
        });
    }
    Err(err(
        ErrorCode::InvalidArgument,
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a lowercase hex SHA-256",
    ))
}

/// Equal lengths and bytes, in time that depends on the length only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies `req`'s SigV4 header signature under the secret derived from `TOKEN_SECRET` for
/// the access key id it names, then that credential's expiry.
pub fn verify(req: &Received, secret: &TokenSecret, now: u64) -> Result<Verified, S3Error> {
    let (id, payload) = verify_signature(req, now, |id| {
        S3Credential::parse(id)
            .ok()
            .map(|_| derive_secret(id, secret))
    })?;
    let credential = S3Credential::parse(&id).map_err(|_| unknown_key())?;
    if !credential.valid_at(now) {
        return Err(err(
            ErrorCode::ExpiredToken,
            "The provided token has expired.",
        ));
    }
    Ok(Verified {
        credential,
        payload,
    })
}

fn unknown_key() -> S3Error {
    err(
        ErrorCode::InvalidAccessKeyId,
        "The AWS Access Key Id you provided does not exist in our records.",
    )
}

/// Steps 1 to 5 of the module docs with any secret store: `secret_for` gives the secret of an
/// access key id, `None` for an unknown one. Returns the id and the payload hash.
pub fn verify_signature(
    req: &Received,
    now: u64,
    secret_for: impl Fn(&str) -> Option<SecretKey>,
) -> Result<(String, Payload), S3Error> {
    if req
        .query
        .split('&')
        .any(|p| p.starts_with("X-Amz-Signature=") || p.starts_with("X-Amz-Credential="))
    {
        return Err(err(
            ErrorCode::NotImplemented,
            format!("presigned URLs are not taken: {CLIENTS_HINT}"),
        ));
    }
    let Some(authorization) = req.header("authorization") else {
        return Err(err(
            ErrorCode::AccessDenied,
            "Anonymous access is not allowed",
        ));
    };
    let auth = parse_authorization(authorization)?;
    let payload = payload(req)?;
    let secret = secret_for(auth.access_key_id).ok_or_else(unknown_key)?;
    let amz_date = req
        .header("x-amz-date")
        .ok_or_else(|| err(ErrorCode::AccessDenied, "x-amz-date is required"))?;
    let time = SigningTime::parse_amz(amz_date)
        .ok_or_else(|| err(ErrorCode::AccessDenied, "x-amz-date is not a date"))?;
    if now.abs_diff(time.unix_seconds()) > MAX_SKEW {
        return Err(err(
            ErrorCode::RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large.",
        ));
    }
    if auth.date != time.date_stamp() {
        return Err(malformed(
            "the Credential's date is not the day of x-amz-date",
        ));
    }
    let mut signed: Vec<(String, String)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = req.header(name).ok_or_else(|| {
            err(
                ErrorCode::AccessDenied,
                format!("signed header {name} is not in the request"),
            )
        })?;
        signed.push((name.to_string(), value.to_string()));
    }
    let declared = req.header("x-amz-content-sha256").unwrap_or_default();
    let canonical = sigv4::canonical_request(
        &SignableRequest {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: &signed,
            payload_hash: declared,
        },
        PathMode::S3,
    );
    let scope = sigv4::Scope {
        region: auth.region,
        service: auth.service,
    };
    let to_sign = sigv4::string_to_sign(&canonical.text, time, scope);
    let key = zeroize::Zeroizing::new(sigv4::signing_key(&secret, time, scope));
    let expected = sigv4::signature(&key, &to_sign);
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(err(
            ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method.",
        ));
    }
    Ok((auth.access_key_id.to_string(), payload))
}

#[cfg(test)]
mod tests;
