//! AWS Signature Version 4, as S3 and DigitalOcean Spaces check it.
//!
//! This module owns every step of the signature: the canonical request, the string to sign,
//! the signing key, the signature, and the `Authorization` header or presigned query that
//! carries it. It must not read a clock, touch the network or draw random numbers: the caller
//! passes the time ([`SigningTime`], from `Date.now()` on the Worker) and the credentials, and
//! applies the headers it gets back. That keeps it testable stage by stage against AWS's
//! published vectors (`tests/sigv4_vectors.rs`).
//!
//! A signed S3 `GET` of a NAR, as [`sign_s3`] builds it (path style, Spaces region `fra1`):
//!
//! ```text
//! GET
//! /nix-store/nar/0a4k8gq1z6jkkk0w3c6wcmdbqjbx3a5gbkhs1x4d6hqqy6wq5vbq.nar.xz
//!
//! host:fra1.digitaloceanspaces.com
//! x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
//! x-amz-date:20250101T000000Z
//!
//! host;x-amz-content-sha256;x-amz-date
//! e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
//! ```
//!
//! S3 differs from the generic AWS rules in one place that matters: the path is not normalised
//! (no `.`/`..` folding, no duplicate-slash collapsing) and is URI-encoded exactly once
//! ([`PathMode::S3`]). Object keys are turned into such a path by [`s3_object_path`].

use core::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Hex SHA-256 of the empty body: the payload hash of every `GET` and `HEAD`.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Payload hash for a body that is streamed without being hashed first.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The algorithm name that starts the string to sign and the `Authorization` value.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/// A secret access key: zeroized on drop, never printed.
///
/// `Debug` prints `SecretKey(<redacted>)`; there is no `Display`. The only way to the text is
/// [`SecretKey::expose`], which the signer uses to derive the signing key.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// Wraps a secret access key.
    pub fn new(s: impl Into<String>) -> Self {
        SecretKey(Zeroizing::new(s.into()))
    }

    /// The secret itself. Use it only to derive a key; never log or format it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// True when the secret is the empty string (an unset binding, usually).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// An access key id, its secret, and an optional session token (temporary credentials).
///
/// `Debug` shows the access key id only; the secret and the session token are redacted.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id, e.g. `AKIAIOSFODNN7EXAMPLE` (not secret: it is sent in every request).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretKey,
    /// A session token, sent as `x-amz-security-token`, for temporary credentials.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials: an access key id and its secret, no session token.
    pub fn new(access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: SecretKey::new(secret),
            session_token: None,
        }
    }

    /// The same credentials with a session token.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| Redacted),
            )
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// A UTC instant with second precision, given by the caller (the Worker passes `Date.now()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SigningTime {
    secs: u64,
}

/// A UTC calendar date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (`civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl SigningTime {
    /// Seconds since the Unix epoch.
    pub fn from_unix_seconds(secs: u64) -> Self {
        SigningTime { secs }
    }

    /// Milliseconds since the Unix epoch, as JavaScript's `Date.now()` gives them. Fractions
    /// are dropped; negative, NaN and infinite values clamp to the nearest representable time.
    pub fn from_unix_millis(ms: f64) -> Self {
        let secs = (ms / 1000.0).floor();
        // `as` saturates: NaN becomes 0, negatives 0, too large u64::MAX.
        SigningTime { secs: secs as u64 }
    }

    /// Parses the `x-amz-date` form, `20150830T123600Z`.
    pub fn parse_amz(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let num = |range: core::ops::Range<usize>| -> Option<u32> {
            let digits = &b[range];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(
                digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')),
            )
        };
        let year = i64::from(num(0..4)?);
        let month = num(4..6)?;
        let day = num(6..8)?;
        let hour = num(9..11)?;
        let minute = num(11..13)?;
        let second = num(13..15)?;
        if year < 1970
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let secs =
            days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
        u64::try_from(secs).ok().map(Self::from_unix_seconds)
    }

    fn civil(&self) -> Civil {
        let days = (self.secs / 86_400) as i64;
        let rem = self.secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3_600) as u32,
            minute: (rem % 3_600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// The `x-amz-date` form: `20150830T123600Z`.
    pub fn amz_date(&self) -> String {
        let c = self.civil();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// The date in the credential scope: `20150830`.
    pub fn date_stamp(&self) -> String {
        let c = self.civil();
        format!("{:04}{:02}{:02}", c.year, c.month, c.day)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> u64 {
        self.secs
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn encode_bytes_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
}

/// URI-encodes per AWS rules: the unreserved characters `A-Za-z0-9-_.~` are kept, every other
/// byte of the UTF-8 text becomes `%XX` (uppercase hex); `/` is kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    encode_bytes_into(&mut out, s.as_bytes(), keep_slash);
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` sequences; anything else (including `+` and malformed escapes) is kept as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_value(b[i + 1]), hex_value(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The path of an object in path-style S3 addressing: `/{bucket}/{key}`, with the bucket and
/// each segment of the (decoded) key URI-encoded once. Nothing is normalised: `..`, `.` and
/// empty segments stay as they are, because S3 keys are opaque strings.
pub fn s3_object_path(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 2);
    out.push('/');
    encode_bytes_into(&mut out, bucket.as_bytes(), false);
    out.push('/');
    encode_bytes_into(&mut out, key.as_bytes(), true);
    out
}

/// Lowercase hex SHA-256 of `bytes` (the payload hash of a body, for instance).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0x0f)]));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Canonical request
// ---------------------------------------------------------------------------------------------

/// Credential scope parts.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// Region, e.g. `us-east-1`, or a Spaces region slug such as `fra1`.
    pub region: &'a str,
    /// Service name, `s3` for S3 and Spaces.
    pub service: &'a str,
}

impl Scope<'_> {
    /// `20150830/us-east-1/service/aws4_request`.
    pub fn credential_scope(&self, time: SigningTime) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            time.date_stamp(),
            self.region,
            self.service
        )
    }
}

/// How the canonical URI is made.
///
/// `S3`: the path is used exactly as given (it must already be URI-encoded once per segment; no
/// dot-segment removal, no double encoding). `Normalized`: the generic AWS rules (remove dot
/// segments, collapse duplicate slashes, then URI-encode the path as given once more, so a `%`
/// in it becomes `%25`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathMode {
    /// S3 and Spaces: the encoded path, verbatim.
    S3,
    /// Every other AWS service: normalised, then encoded again.
    Normalized,
}

/// Whether a session token is part of the signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionTokenMode {
    /// The token is signed (`x-amz-security-token` is a signed header or, when presigning, a
    /// signed query parameter). S3 and Spaces need this.
    #[default]
    Include,
    /// The token is added to the request after signing and is not covered by the signature.
    Exclude,
}

/// One request to sign, as it will go on the wire.
#[derive(Clone, Debug)]
pub struct SignableRequest<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// Raw path as on the wire, e.g. `/bucket/nar/abc.nar.xz`.
    pub path: &'a str,
    /// Raw query without `?`; may be empty.
    pub query: &'a str,
    /// Every header to sign (name in any case), including `host` and `x-amz-date`.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// The canonical request and the signed-headers list that goes with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// The full canonical request text (hashed into the string to sign).
    pub text: String,
    /// `host;x-amz-date`: the lowercase names of the signed headers, sorted, `;`-separated.
    pub signed_headers: String,
}

/// The canonical URI of `path` under `mode`.
pub fn canonical_uri(path: &str, mode: PathMode) -> String {
    match mode {
        PathMode::S3 => {
            if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            }
        }
        PathMode::Normalized => uri_encode(&normalize_path(path), true),
    }
}

/// Removes `.` and `..` segments and empty segments (duplicate slashes). A trailing slash is
/// kept, as is one implied by a final `.` or `..` (RFC 3986, section 5.2.4).
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/') {
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if segments.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// The canonical query string of a raw query: split on `&`, each name and value decoded and
/// encoded again with [`uri_encode`], pairs sorted by name then value; a parameter without `=`
/// (S3's `?lifecycle`) becomes `lifecycle=`. Empty parts (`a=1&&b=2`) are dropped.
pub fn canonical_query(query: &str) -> String {
    let pairs = query.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(name), percent_decode(value))
    });
    canonical_query_from_decoded(pairs)
}

fn canonical_query_from_decoded(pairs: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .map(|(n, v)| {
            let mut name = String::new();
            encode_bytes_into(&mut name, &n, false);
            let mut value = String::new();
            encode_bytes_into(&mut value, &v, false);
            (name, value)
        })
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (n, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(n);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Trims a header value and collapses inner runs of whitespace (including the line breaks of
/// folded header lines) into one space.
fn canonical_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Lowercase names, canonical values, duplicates joined with `,` in order, sorted by name.
fn canonical_headers<'h>(
    headers: impl Iterator<Item = (&'h str, &'h str)>,
) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = headers
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), canonical_header_value(v)))
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0)); // stable: duplicates keep their order
    let mut merged: Vec<(String, String)> = Vec::with_capacity(list.len());
    for (name, value) in list {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    merged
}

fn build_canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> CanonicalRequest {
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut text = String::with_capacity(256);
    text.push_str(method);
    text.push('\n');
    text.push_str(uri);
    text.push('\n');
    text.push_str(query);
    text.push('\n');
    for (n, v) in headers {
        text.push_str(n);
        text.push(':');
        text.push_str(v);
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&signed_headers);
    text.push('\n');
    text.push_str(payload_hash);
    CanonicalRequest {
        text,
        signed_headers,
    }
}

/// The canonical request of `req` (header signing: the query is the request's own).
pub fn canonical_request(req: &SignableRequest, mode: PathMode) -> CanonicalRequest {
    let headers = canonical_headers(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    build_canonical_request(
        req.method,
        &canonical_uri(req.path, mode),
        &canonical_query(req.query),
        &headers,
        req.payload_hash,
    )
}

// ---------------------------------------------------------------------------------------------
// String to sign, key, signature
// ---------------------------------------------------------------------------------------------

/// The string to sign: algorithm, time, credential scope and the hash of the canonical request.
pub fn string_to_sign(canonical_request_text: &str, time: SigningTime, scope: Scope) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        time.amz_date(),
        scope.credential_scope(time),
        sha256_hex(canonical_request_text.as_bytes())
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key for one day, region and service:
/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &SecretKey, time: SigningTime, scope: Scope) -> [u8; 32] {
    let mut k_secret = Zeroizing::new(format!("AWS4{}", secret.expose()).into_bytes());
    let mut k_date = hmac(&k_secret, time.date_stamp().as_bytes());
    k_secret.zeroize();
    let mut k_region = hmac(&k_date, scope.region.as_bytes());
    k_date.zeroize();
    let mut k_service = hmac(&k_region, scope.service.as_bytes());
    k_region.zeroize();
    let key = hmac(&k_service, b"aws4_request");
    k_service.zeroize();
    key
}

/// The signature: lowercase hex `HMAC(signing_key, string_to_sign)`.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex_lower(&hmac(signing_key, string_to_sign.as_bytes()))
}

fn signing_key_zeroized(
    creds: &Credentials,
    time: SigningTime,
    scope: Scope,
) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(signing_key(&creds.secret_access_key, time, scope))
}

/// Signing keys kept between requests. A key depends only on the secret, the day, the region
/// and the service, so a signer of many requests with one secret derives it once a day
/// instead of with four HMACs a request. Keep one per secret: the secret is not part of what
/// is compared. The key is zeroed when replaced or dropped, and `Debug` does not show it.
#[derive(Default)]
pub struct SigningKeys {
    last: Option<KeptKey>,
}

struct KeptKey {
    date: String,
    region: String,
    service: String,
    key: Zeroizing<[u8; 32]>,
}

impl SigningKeys {
    /// The signing key for `time`'s day and `scope`: the kept one when they match, else a new
    /// one, which is kept.
    pub fn key(
        &mut self,
        secret: &SecretKey,
        time: SigningTime,
        scope: Scope,
    ) -> Zeroizing<[u8; 32]> {
        let date = time.date_stamp();
        if let Some(kept) = &self.last {
            if kept.date == date && kept.region == scope.region && kept.service == scope.service {
                return kept.key.clone();
            }
        }
        let key = Zeroizing::new(signing_key(secret, time, scope));
        self.last = Some(KeptKey {
            date,
            region: scope.region.to_owned(),
            service: scope.service.to_owned(),
            key: key.clone(),
        });
        key
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self
            .last
            .as_ref()
            .map(|k| format!("{}/{}/{}", k.date, k.region, k.service));
        f.debug_struct("SigningKeys")
            .field("kept_for", &kept)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Header signing
// ---------------------------------------------------------------------------------------------

/// The result of header signing: each stage, and the headers to add to the request.
///
/// `Debug` redacts the session token in [`Signed::headers`].
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    /// The canonical request text.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// The signature, lowercase hex.
    pub signature: String,
    /// The value of the `Authorization` header.
    pub authorization: String,
    /// Headers the caller must add to the request, lowercase names: `x-amz-security-token` when
    /// the credentials carry a token the request did not already have, then `authorization`.
    pub headers: Vec<(String, String)>,
}

/// `text` (a canonical request or a query) with any session token replaced by `<redacted>`.
fn redact_token(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            if line.starts_with("x-amz-security-token:") {
                "x-amz-security-token:<redacted>".to_owned()
            } else {
                line.split('&')
                    .map(|p| {
                        if p.starts_with("X-Amz-Security-Token=") {
                            "X-Amz-Security-Token=<redacted>"
                        } else {
                            p
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("&")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                if n.eq_ignore_ascii_case("x-amz-security-token") {
                    (n.as_str(), "<redacted>")
                } else {
                    (n.as_str(), v.as_str())
                }
            })
            .collect();
        f.debug_struct("Signed")
            .field("canonical_request", &redact_token(&self.canonical_request))
            .field("string_to_sign", &self.string_to_sign)
            .field("signature", &self.signature)
            .field("authorization", &self.authorization)
            .field("headers", &headers)
            .finish()
    }
}

/// Signs `req` for the `Authorization` header. A session token in `creds` is signed (added as
/// `x-amz-security-token` unless the request already has it) and returned in
/// [`Signed::headers`].
pub fn sign(
    req: &SignableRequest,
    creds: &Credentials,
    time: SigningTime,
    scope: Scope,
    mode: PathMode,
) -> Signed {
    sign_with(req, creds, time, scope, mode, SessionTokenMode::Include)
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers
        .iter()
        .any(|(n, _)| n.trim().eq_ignore_ascii_case(name))
}

/// [`sign`], choosing whether the session token is covered by the signature.
pub fn sign_with(
    req: &SignableRequest,
    creds: &Credentials,
    time: SigningTime,
    scope: Scope,
    mode: PathMode,
    token_mode: SessionTokenMode,
) -> Signed {
    sign_keyed(
        req,
        creds,
        time,
        scope,
        mode,
        token_mode,
        &mut SigningKeys::default(),
    )
}

/// [`sign_with`], taking the signing key from `keys`.
fn sign_keyed(
    req: &SignableRequest,
    creds: &Credentials,
    time: SigningTime,
    scope: Scope,
    mode: PathMode,
    token_mode: SessionTokenMode,
    keys: &mut SigningKeys,
) -> Signed {
    let token = creds
        .session_token
        .as_deref()
        .filter(|_| !has_header(req.headers, "x-amz-security-token"));
    let mut raw: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if let (Some(t), SessionTokenMode::Include) = (token, token_mode) {
        raw.push(("x-amz-security-token", t));
    }
    let headers = canonical_headers(raw.into_iter());
    let creq = build_canonical_request(
        req.method,
        &canonical_uri(req.path, mode),
        &canonical_query(req.query),
        &headers,
        req.payload_hash,
    );
    let sts = string_to_sign(&creq.text, time, scope);
    let sig = signature(&keys.key(&creds.secret_access_key, time, scope), &sts);
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
        creds.access_key_id,
        scope.credential_scope(time),
        creq.signed_headers,
        sig
    );
    let mut out_headers = Vec::with_capacity(2);
    if let Some(t) = token {
        out_headers.push(("x-amz-security-token".to_owned(), t.to_owned()));
    }
    out_headers.push(("authorization".to_owned(), authorization.clone()));
    Signed {
        canonical_request: creq.text,
        string_to_sign: sts,
        signature: sig,
        authorization,
        headers: out_headers,
    }
}

// ---------------------------------------------------------------------------------------------
// Presigning (query-string authentication)
// ---------------------------------------------------------------------------------------------

/// Options for [`presign`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresignOptions {
    /// `X-Amz-Expires`: how long the URL stays valid, in seconds (S3 allows up to 604800).
    pub expires_in: u64,
    /// Whether `X-Amz-Security-Token` is signed or appended after signing.
    pub session_token: SessionTokenMode,
}

impl PresignOptions {
    /// Valid for `expires_in` seconds, session token signed.
    pub fn expires_in(expires_in: u64) -> Self {
        PresignOptions {
            expires_in,
            session_token: SessionTokenMode::Include,
        }
    }
}

/// The result of presigning: each stage, and the query string to send.
///
/// `Debug` redacts a session token in [`Presigned::query`].
#[derive(Clone, PartialEq, Eq)]
pub struct Presigned {
    /// The canonical request text.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// The signature, lowercase hex.
    pub signature: String,
    /// The whole query to send, without `?`: the request's own query, then `X-Amz-Algorithm`,
    /// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-SignedHeaders`, `X-Amz-Expires`, (when there is
    /// a token) `X-Amz-Security-Token`, and last `X-Amz-Signature`.
    pub query: String,
}

impl fmt::Debug for Presigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presigned")
            .field("canonical_request", &redact_token(&self.canonical_request))
            .field("string_to_sign", &self.string_to_sign)
            .field("signature", &self.signature)
            .field("query", &redact_token(&self.query))
            .finish()
    }
}

/// Presigns `req`: the signature goes in the query string instead of a header. The request's
/// headers (at least `host`) are signed and must be sent as they are; `x-amz-date` is not a
/// header here but `X-Amz-Date` in the query, so leave it out of `req.headers`.
pub fn presign(
    req: &SignableRequest,
    creds: &Credentials,
    time: SigningTime,
    scope: Scope,
    mode: PathMode,
    options: PresignOptions,
) -> Presigned {
    let headers = canonical_headers(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let credential = format!("{}/{}", creds.access_key_id, scope.credential_scope(time));
    let amz_date = time.amz_date();
    let expires = options.expires_in.to_string();
    let token = creds.session_token.as_deref();

    let mut auth: Vec<(&str, &str)> = vec![
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &amz_date),
        ("X-Amz-SignedHeaders", &signed_headers),
        ("X-Amz-Expires", &expires),
    ];
    let signed_token = token.filter(|_| options.session_token == SessionTokenMode::Include);
    if let Some(t) = signed_token {
        auth.push(("X-Amz-Security-Token", t));
    }

    let own = req.query.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(n), percent_decode(v))
    });
    let all = own.chain(
        auth.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    let creq = build_canonical_request(
        req.method,
        &canonical_uri(req.path, mode),
        &canonical_query_from_decoded(all),
        &headers,
        req.payload_hash,
    );
    let sts = string_to_sign(&creq.text, time, scope);
    let sig = signature(&signing_key_zeroized(creds, time, scope), &sts);

    if signed_token.is_none() {
        if let Some(t) = token {
            auth.push(("X-Amz-Security-Token", t));
        }
    }
    let mut query = String::with_capacity(req.query.len() + 256);
    query.push_str(req.query);
    for (n, v) in auth
        .iter()
        .chain([("X-Amz-Signature", sig.as_str())].iter())
    {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(n);
        query.push('=');
        encode_bytes_into(&mut query, v.as_bytes(), false);
    }
    Presigned {
        canonical_request: creq.text,
        string_to_sign: sts,
        signature: sig,
        query,
    }
}

// ---------------------------------------------------------------------------------------------
// S3 convenience
// ---------------------------------------------------------------------------------------------

/// A path-style S3 request, as [`sign_s3`] takes it.
#[derive(Clone, Debug)]
pub struct S3Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// `host[:port]` exactly as the `Host` header will be sent.
    pub host: &'a str,
    /// The encoded path, e.g. from [`s3_object_path`].
    pub path: &'a str,
    /// Raw query without `?`; may be empty.
    pub query: &'a str,
    /// More headers to sign and send, e.g. `("range", "bytes=0-9")`, `("content-md5", ..)`.
    pub extra_headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, [`EMPTY_SHA256`] for none, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// Headers that [`sign_s3`] sets itself; extra headers with these names are ignored.
const S3_SIGNER_HEADERS: [&str; 5] = [
    "host",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "authorization",
];

/// Signs a path-style S3 request (service `s3`, [`PathMode::S3`]).
///
/// Returns the headers the caller must add, lowercase: `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` (with a session token), `authorization`. `host` is signed but not
/// returned (the HTTP client sets it from the URL). Extra headers named like one of those are
/// ignored: the signer's own values win.
pub fn sign_s3(
    req: &S3Request,
    creds: &Credentials,
    region: &str,
    time: SigningTime,
) -> Vec<(String, String)> {
    sign_s3_keyed(req, creds, region, time, &mut SigningKeys::default())
}

/// [`sign_s3`], reusing the signing key kept in `keys` (one [`SigningKeys`] per secret).
pub fn sign_s3_keyed(
    req: &S3Request,
    creds: &Credentials,
    region: &str,
    time: SigningTime,
    keys: &mut SigningKeys,
) -> Vec<(String, String)> {
    let amz_date = time.amz_date();
    let mut headers: Vec<(String, String)> = Vec::with_capacity(req.extra_headers.len() + 4);
    headers.push(("host".to_owned(), req.host.to_owned()));
    headers.extend(
        req.extra_headers
            .iter()
            .filter(|(n, _)| {
                !S3_SIGNER_HEADERS
                    .iter()
                    .any(|s| n.trim().eq_ignore_ascii_case(s))
            })
            .cloned(),
    );
    headers.push((
        "x-amz-content-sha256".to_owned(),
        req.payload_hash.to_owned(),
    ));
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    let signable = SignableRequest {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: &headers,
        payload_hash: req.payload_hash,
    };
    let scope = Scope {
        region,
        service: "s3",
    };
    let signed = sign_keyed(
        &signable,
        creds,
        time,
        scope,
        PathMode::S3,
        SessionTokenMode::Include,
        keys,
    );
    let mut out = Vec::with_capacity(4);
    out.push(("x-amz-date".to_owned(), amz_date));
    out.push((
        "x-amz-content-sha256".to_owned(),
        req.payload_hash.to_owned(),
    ));
    out.extend(signed.headers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn kept_signing_keys_sign_like_fresh_ones_and_follow_the_day() {
        let creds = Credentials::new("AKIDEXAMPLE", SECRET);
        let extra = vec![("range".to_owned(), "bytes=0-9".to_owned())];
        let req = S3Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: "",
            extra_headers: &extra,
            payload_hash: EMPTY_SHA256,
        };
        let day1 = 1_369_353_600; // 2013-05-24T00:00:00Z
        let mut keys = SigningKeys::default();
        for (secs, region) in [
            (day1, "us-east-1"),
            (day1 + 86_399, "us-east-1"),
            (day1 + 86_400, "us-east-1"),
            (day1 + 86_400, "eu-west-1"),
            (day1, "us-east-1"),
        ] {
            let time = SigningTime::from_unix_seconds(secs);
            assert_eq!(
                sign_s3_keyed(&req, &creds, region, time, &mut keys),
                sign_s3(&req, &creds, region, time),
                "{secs} {region}"
            );
        }
        let shown = format!("{keys:?}");
        assert!(shown.contains("20130524/us-east-1/s3"), "{shown}");
        let key = signing_key(
            &creds.secret_access_key,
            SigningTime::from_unix_seconds(day1),
            Scope {
                region: "us-east-1",
                service: "s3",
            },
        );
        assert!(
            !shown.contains(SECRET) && !shown.contains(&hex_lower(&key)),
            "{shown}"
        );
    }

    #[test]
    fn epoch_is_1970() {
        let t = SigningTime::from_unix_seconds(0);
        assert_eq!(t.amz_date(), "19700101T000000Z");
        assert_eq!(t.date_stamp(), "19700101");
        assert_eq!(SigningTime::parse_amz("19700101T000000Z"), Some(t));
    }

    #[test]
    fn known_instants() {
        let cases: &[(u64, &str)] = &[
            (1_440_938_160, "20150830T123600Z"),
            (1_369_353_600, "20130524T000000Z"),
            (951_782_400, "20000229T000000Z"), // 2000 is a leap year (divisible by 400)
            (951_868_799, "20000229T235959Z"),
            (951_868_800, "20000301T000000Z"),
            (4_107_456_000, "21000228T000000Z"), // 2100 is not a leap year
            (4_107_542_400, "21000301T000000Z"),
            (1_709_164_800, "20240229T000000Z"),
            (2_147_483_647, "20380119T031407Z"), // i32 overflow second
            (2_147_483_648, "20380119T031408Z"),
            (4_102_444_799, "20991231T235959Z"),
            (253_402_300_799, "99991231T235959Z"),
            (1_704_067_199, "20231231T235959Z"),
        ];
        for &(secs, amz) in cases {
            let t = SigningTime::from_unix_seconds(secs);
            assert_eq!(t.amz_date(), amz, "{secs}");
            assert_eq!(t.date_stamp(), &amz[..8], "{secs}");
            assert_eq!(SigningTime::parse_amz(amz), Some(t), "{amz}");
            assert_eq!(t.unix_seconds(), secs);
        }
    }

    #[test]
    fn every_day_round_trips() {
        // Every day from 1970 to 2200 converts back to the same count, and dates are
        // consecutive.
        let mut prev: Option<(i64, u32, u32)> = None;
        for days in 0..84_000i64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d >= 1 && d <= days_in_month(y, m));
            if let Some((py, pm, pd)) = prev {
                let next = if pd < days_in_month(py, pm) {
                    (py, pm, pd + 1)
                } else if pm < 12 {
                    (py, pm + 1, 1)
                } else {
                    (py + 1, 1, 1)
                };
                assert_eq!((y, m, d), next);
            }
            prev = Some((y, m, d));
        }
    }

    #[test]
    fn parse_amz_rejects_malformed() {
        for bad in [
            "",
            "20150830T123600",
            "20150830 123600Z",
            "2015083OT123600Z",
            "20151330T123600Z",
            "20150832T123600Z",
            "20150229T000000Z",
            "19000229T000000Z",
            "21000229T000000Z",
            "20150830T243600Z",
            "20150830T126000Z",
            "20150830T123660Z",
            "19691231T235959Z",
            "+0150830T123600Z",
            "20150830T123600Z ",
        ] {
            assert_eq!(SigningTime::parse_amz(bad), None, "{bad:?}");
        }
        assert!(SigningTime::parse_amz("20000229T000000Z").is_some());
        assert!(SigningTime::parse_amz("20240229T235959Z").is_some());
    }

    #[test]
    fn from_unix_millis_floors_and_clamps() {
        assert_eq!(
            SigningTime::from_unix_millis(1_440_938_160_999.0).amz_date(),
            "20150830T123600Z"
        );
        assert_eq!(
            SigningTime::from_unix_millis(1_440_938_161_000.0).unix_seconds(),
            1_440_938_161
        );
        assert_eq!(SigningTime::from_unix_millis(0.5).unix_seconds(), 0);
        assert_eq!(SigningTime::from_unix_millis(-5.0).unix_seconds(), 0);
        assert_eq!(SigningTime::from_unix_millis(f64::NAN).unix_seconds(), 0);
        assert_eq!(
            SigningTime::from_unix_millis(f64::INFINITY).unix_seconds(),
            u64::MAX
        );
        // A 2038+ instant as Date.now() gives it.
        assert_eq!(
            SigningTime::from_unix_millis(2_147_483_648_123.0).amz_date(),
            "20380119T031408Z"
        );
    }

    #[test]
    fn far_future_does_not_panic() {
        let t = SigningTime::from_unix_seconds(u64::MAX);
        assert!(t.amz_date().ends_with('Z'));
        assert_eq!(t.date_stamp().len() + 8, t.amz_date().len());
    }

    #[test]
    fn uri_encode_rules() {
        assert_eq!(
            uri_encode("AZaz09-_.~", false),
            "AZaz09-_.~",
            "unreserved characters stay"
        );
        assert_eq!(uri_encode("a b", false), "a%20b");
        assert_eq!(uri_encode("a+b=c&d", false), "a%2Bb%3Dc%26d");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("a/b", true), "a/b");
        assert_eq!(uri_encode("%20", true), "%2520");
        assert_eq!(uri_encode("ሴ", false), "%E1%88%B4");
        assert_eq!(
            uri_encode("é*'()!$,;:@", false),
            "%C3%A9%2A%27%28%29%21%24%2C%3B%3A%40"
        );
        assert_eq!(uri_encode("", true), "");
    }

    #[test]
    fn s3_object_paths() {
        assert_eq!(
            s3_object_path("nix-store", "nar/abc.nar.xz"),
            "/nix-store/nar/abc.nar.xz"
        );
        assert_eq!(s3_object_path("b", "a b"), "/b/a%20b");
        assert_eq!(s3_object_path("b", "a+b=c"), "/b/a%2Bb%3Dc");
        assert_eq!(s3_object_path("b", "ሴ/é"), "/b/%E1%88%B4/%C3%A9");
        assert_eq!(s3_object_path("b", "../x/./y"), "/b/../x/./y");
        assert_eq!(s3_object_path("b", "a//b"), "/b/a//b");
        assert_eq!(s3_object_path("b", "100%"), "/b/100%25");
        assert_eq!(s3_object_path("b", ""), "/b/");
        assert_eq!(s3_object_path("b", "nix-cache-info"), "/b/nix-cache-info");
    }

    #[test]
    fn canonical_uri_modes() {
        assert_eq!(
            canonical_uri("/a/../b/./c//d/", PathMode::S3),
            "/a/../b/./c//d/"
        );
        assert_eq!(canonical_uri("", PathMode::S3), "/");
        assert_eq!(
            canonical_uri("/a/../b/./c//d/", PathMode::Normalized),
            "/b/c/d/"
        );
        assert_eq!(canonical_uri("/a/b/..", PathMode::Normalized), "/a/");
        assert_eq!(canonical_uri("/a/b/.", PathMode::Normalized), "/a/b/");
        assert_eq!(canonical_uri("/../..", PathMode::Normalized), "/");
        assert_eq!(canonical_uri("", PathMode::Normalized), "/");
        assert_eq!(canonical_uri("/a%2Fb", PathMode::Normalized), "/a%252Fb");
    }

    #[test]
    fn canonical_query_rules() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("lifecycle"), "lifecycle=");
        assert_eq!(
            canonical_query("prefix=J&max-keys=2"),
            "max-keys=2&prefix=J"
        );
        assert_eq!(canonical_query("a=2&a=1&b"), "a=1&a=2&b=");
        assert_eq!(canonical_query("k=a%20b"), "k=a%20b");
        assert_eq!(canonical_query("k=a+b"), "k=a%2Bb");
        assert_eq!(canonical_query("k=%2f"), "k=%2F");
        assert_eq!(canonical_query("k=%zz&x=%4"), "k=%25zz&x=%254");
        assert_eq!(canonical_query("a=1&&b=2"), "a=1&b=2");
        assert_eq!(canonical_query("k=a=b"), "k=a%3Db");
    }

    #[test]
    fn canonical_header_rules() {
        let h = canonical_headers(
            [
                ("X-B", "  two   words \t here "),
                ("x-a", "1"),
                ("X-A", "2"),
                ("Host", "h"),
                ("x-fold", "v1\n   v2"),
            ]
            .into_iter(),
        );
        assert_eq!(
            h,
            vec![
                ("host".to_owned(), "h".to_owned()),
                ("x-a".to_owned(), "1,2".to_owned()),
                ("x-b".to_owned(), "two words here".to_owned()),
                ("x-fold".to_owned(), "v1 v2".to_owned()),
            ]
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let creds = Credentials::new("AKIDEXAMPLE", SECRET).with_session_token("TOKEN-SECRET-123");
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains(SECRET), "{dbg}");
        assert!(!dbg.contains("wJalr"), "{dbg}");
        assert!(!dbg.contains("TOKEN-SECRET-123"), "{dbg}");
        assert!(dbg.contains("AKIDEXAMPLE"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        let pretty = format!("{creds:#?}");
        assert!(!pretty.contains(SECRET) && !pretty.contains("TOKEN-SECRET-123"));
        let headers = vec![("host".to_owned(), "h".to_owned())];
        let req = SignableRequest {
            method: "GET",
            path: "/",
            query: "a=1",
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let time = SigningTime::from_unix_seconds(0);
        let scope = Scope {
            region: "fra1",
            service: "s3",
        };
        let signed = sign(&req, &creds, time, scope, PathMode::S3);
        assert_eq!(signed.headers[0].1, "TOKEN-SECRET-123");
        let dbg = format!("{signed:?}");
        assert!(
            !dbg.contains("TOKEN-SECRET-123") && !dbg.contains("wJalr"),
            "{dbg}"
        );
        assert!(dbg.contains(&signed.signature), "{dbg}");
        let presigned = presign(
            &req,
            &creds,
            time,
            scope,
            PathMode::S3,
            PresignOptions::expires_in(60),
        );
        assert!(presigned
            .query
            .contains("X-Amz-Security-Token=TOKEN-SECRET-123&"));
        let dbg = format!("{presigned:?}");
        assert!(
            !dbg.contains("TOKEN-SECRET-123") && !dbg.contains("wJalr"),
            "{dbg}"
        );
        assert!(
            dbg.contains("a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256"),
            "{dbg}"
        );
        let key = SecretKey::new(SECRET);
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        assert_eq!(key.clone().expose(), SECRET);
        assert!(!key.is_empty());
        assert!(SecretKey::new("").is_empty());
    }

    #[test]
    fn sign_s3_returns_the_headers_to_send() {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        let time = SigningTime::parse_amz("20130524T000000Z").unwrap();
        let extra = vec![("Range".to_owned(), "bytes=0-9".to_owned())];
        let headers = sign_s3(
            &S3Request {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                query: "",
                extra_headers: &extra,
                payload_hash: EMPTY_SHA256,
            },
            &creds,
            "us-east-1",
            time,
        );
        // S3's worked example "GET Object" (with a Range header).
        assert_eq!(
            headers,
            vec![
                ("x-amz-date".to_owned(), "20130524T000000Z".to_owned()),
                ("x-amz-content-sha256".to_owned(), EMPTY_SHA256.to_owned()),
                (
                    "authorization".to_owned(),
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
                     SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
                     Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                        .to_owned()
                ),
            ]
        );

        // A session token is signed and returned; a caller-supplied date is ignored.
        let extra = vec![("X-Amz-Date".to_owned(), "19990101T000000Z".to_owned())];
        let with_token = creds.clone().with_session_token("tok");
        let headers = sign_s3(
            &S3Request {
                method: "HEAD",
                host: "127.0.0.1:9000",
                path: "/b/k",
                query: "",
                extra_headers: &extra,
                payload_hash: UNSIGNED_PAYLOAD,
            },
            &with_token,
            "fra1",
            time,
        );
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-amz-date",
                "x-amz-content-sha256",
                "x-amz-security-token",
                "authorization"
            ]
        );
        assert_eq!(headers[0].1, "20130524T000000Z");
        assert_eq!(headers[1].1, UNSIGNED_PAYLOAD);
        assert_eq!(headers[2].1, "tok");
        assert!(headers[3].1.contains(
            "/20130524/fra1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
        ));
    }

    #[test]
    fn signing_key_matches_aws_example() {
        // AWS's "Deriving a signing key" example (iam, us-east-1, 20150830).
        let key = signing_key(
            &SecretKey::new(SECRET),
            SigningTime::parse_amz("20150830T123600Z").unwrap(),
            Scope {
                region: "us-east-1",
                service: "iam",
            },
        );
        assert_eq!(
            hex_lower(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    fn header_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec((any::<String>(), any::<String>()), 0..6)
    }

    proptest! {
        #[test]
        fn sign_never_panics_and_is_deterministic(
            method in any::<String>(),
            path in any::<String>(),
            query in any::<String>(),
            headers in header_strategy(),
            payload in any::<String>(),
            secs in any::<u64>(),
            region in any::<String>(),
            secret in any::<String>(),
            token in proptest::option::of(any::<String>()),
            normalized in any::<bool>(),
        ) {
            let mut creds = Credentials::new("AKID", secret);
            creds.session_token = token;
            let req = SignableRequest {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                payload_hash: &payload,
            };
            let time = SigningTime::from_unix_seconds(secs);
            let scope = Scope { region: &region, service: "s3" };
            let mode = if normalized { PathMode::Normalized } else { PathMode::S3 };
            let a = sign(&req, &creds, time, scope, mode);
            let b = sign(&req, &creds, time, scope, mode);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.signature.len(), 64);
            prop_assert!(a.signature.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            prop_assert!(a.authorization.ends_with(&a.signature));
            let p = presign(&req, &creds, time, scope, mode, PresignOptions::expires_in(60));
            let p2 = presign(&req, &creds, time, scope, mode, PresignOptions::expires_in(60));
            prop_assert_eq!(&p, &p2);
            let s3 = sign_s3(
                &S3Request { method: &method, host: &region, path: &path, query: &query, extra_headers: &headers, payload_hash: &payload },
                &creds, &region, time,
            );
            prop_assert_eq!(s3.last().map(|(n, _)| n.as_str()), Some("authorization"));
        }

        #[test]
        fn canonical_query_is_idempotent(query in any::<String>()) {
            let once = canonical_query(&query);
            prop_assert_eq!(canonical_query(&once), once.clone());
        }

        #[test]
        fn amz_date_round_trips(secs in 0u64..253_402_300_800) {
            let t = SigningTime::from_unix_seconds(secs);
            prop_assert_eq!(SigningTime::parse_amz(&t.amz_date()), Some(t));
        }

        #[test]
        fn changing_any_input_changes_the_signature(secs in 0u64..4_000_000_000, extra in "[a-z]{1,8}") {
            let creds = Credentials::new("AKID", SECRET);
            let headers = vec![("host".to_owned(), "h".to_owned())];
            let base = SignableRequest { method: "GET", path: "/a", query: "", headers: &headers, payload_hash: EMPTY_SHA256 };
            let time = SigningTime::from_unix_seconds(secs);
            let scope = Scope { region: "fra1", service: "s3" };
            let sig = sign(&base, &creds, time, scope, PathMode::S3).signature;
            let path = format!("/a{extra}");
            let other = SignableRequest { path: &path, ..base.clone() };
            prop_assert_ne!(&sig, &sign(&other, &creds, time, scope, PathMode::S3).signature);
            let later = SigningTime::from_unix_seconds(secs + 1);
            prop_assert_ne!(&sig, &sign(&base, &creds, later, scope, PathMode::S3).signature);
        }
    }
}
