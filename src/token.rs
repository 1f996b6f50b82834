//! Access tokens: JWTs (RFC 7519) signed with HS256 under `TOKEN_SECRET`; verify, mint, and
//! turn a request's `Authorization` header into one [`Grant`].
//!
//! Pure: the time is an argument, the secret is a [`TokenSecret`] (left out of `Debug`), and
//! nothing here logs. A token looks like
//!
//! ```text
//! eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9            {"alg":"HS256","typ":"JWT"}
//! .eyJzdWIiOiJjaSIsInNjb3BlIjoid3JpdGUiLCJleHAiOjE3OTk5OTk5OTl9
//!                                                  {"sub":"ci","scope":"write","exp":1799999999}
//! .<HMAC-SHA256 of the two parts above, base64url>
//! ```
//!
//! Claims: `exp` (required, seconds since the epoch), `sub` (a name, for logs), `scope`
//! (`read`, or `write`, which may also read; `read write` means `write`), optional `nbf` and
//! `iat`. Refused: any `alg` but `HS256` (`none` included), a bad signature (compared in
//! constant time by `hmac`'s `verify_slice`), `exp` not after now, `nbf` after now, an `iat`
//! more than [`IAT_LEEWAY`] in the future, an unknown scope word, and every malformed part.
//!
//! Clients send a token as the password of HTTP Basic auth (any user name: what Nix sends from
//! a `netrc-file`) or as `Authorization: Bearer <token>`.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use zeroize::Zeroizing;

/// A token issued "now" may carry an `iat` this many seconds ahead of the Worker's clock.
pub const IAT_LEEWAY: u64 = 300;

/// Longest token (and `Authorization` header) looked at; anything longer is malformed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The HMAC key of access tokens (`TOKEN_SECRET`). `Debug` shows no byte of it.
#[derive(Clone)]
pub struct TokenSecret(Zeroizing<Vec<u8>>);

impl TokenSecret {
    /// The secret's bytes as given (its UTF-8 text).
    pub fn new(secret: impl AsRef<[u8]>) -> TokenSecret {
        TokenSecret(Zeroizing::new(secret.as_ref().to_vec()))
    }

    /// An HMAC-SHA256 keyed with the secret (tokens, and the S3 credentials' derived secrets).
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// What a token lets its holder do. `Write` includes `Read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    /// Parses a `scope` claim: space-separated words, each `read` or `write`; the widest wins.
    pub fn parse(s: &str) -> Option<Scope> {
        let mut widest = None;
        for word in s.split(' ').filter(|w| !w.is_empty()) {
            let scope = match word {
                "read" => Scope::Read,
                "write" => Scope::Write,
                _ => return None,
            };
            widest = widest.max(Some(scope));
        }
        widest
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Scope, TokenError> {
        Scope::parse(s).ok_or(TokenError::Malformed("scope"))
    }
}

/// A verified token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Who holds it (for logs); may be empty.
    pub sub: String,
    pub scope: Scope,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

/// Why a token was refused. For logs only: a client is told 401 and nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token ({0})")]
    Malformed(&'static str),
    #[error("token algorithm is not HS256")]
    Algorithm,
    #[error("token signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawClaims {
    exp: Option<u64>,
    #[serde(default)]
    sub: Option<String>,
    scope: Option<String>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
}

/// Checks `token` under `secret` at `now` (seconds since the epoch) and returns its claims.
///
/// Order: shape, header (`alg` must be `HS256`, no `crit`), signature, then the claims. The
/// claims are not even parsed unless the signature verifies.
pub fn verify(token: &str, secret: &TokenSecret, now: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three parts"));
    };
    let header_json = decode_part(header, "header")?;
    let header: Header =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed("header"))?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") || header.crit.is_some() {
        return Err(TokenError::Malformed("header"));
    }
    let signature = decode_part(signature, "signature")?;
    let mut mac = secret.mac();
    mac.update(&token.as_bytes()[..header_len_with_payload(token)]);
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::Signature)?;

    let payload = decode_part(payload, "payload")?;
    let raw: RawClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed("claims"))?;
    let exp = raw.exp.ok_or(TokenError::Malformed("no exp"))?;
    let scope = raw
        .scope
        .as_deref()
        .and_then(Scope::parse)
        .ok_or(TokenError::Malformed("scope"))?;
    if exp <= now {
        return Err(TokenError::Expired);
    }
    if raw.nbf.is_some_and(|nbf| nbf > now) {
        return Err(TokenError::NotYetValid);
    }
    if raw
        .iat
        .is_some_and(|iat| iat > now.saturating_add(IAT_LEEWAY))
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(Claims {
        sub: raw.sub.unwrap_or_default(),
        scope,
        exp,
        nbf: raw.nbf,
        iat: raw.iat,
    })
}

/// The length of `header.payload` (the signed part) in a token with three parts.
fn header_len_with_payload(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// base64url without padding, strictly (no `=`, no whitespace, canonical trailing bits).
fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    if part.is_empty() {
        return Err(TokenError::Malformed(what));
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))
}

/// A signed token for `claims` (header `{"alg":"HS256","typ":"JWT"}`).
pub fn mint(claims: &Claims, secret: &TokenSecret) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut body = serde_json::Map::new();
    if !claims.sub.is_empty() {
        body.insert("sub".into(), claims.sub.clone().into());
    }
    body.insert("scope".into(), claims.scope.as_str().into());
    body.insert("exp".into(), claims.exp.into());
    if let Some(nbf) = claims.nbf {
        body.insert("nbf".into(), nbf.into());
    }
    if let Some(iat) = claims.iat {
        body.insert("iat".into(), iat.into());
    }
    let payload = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(body).to_string());
    let signed = format!("{header}.{payload}");
    let mut mac = secret.mac();
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// What a request may do, decided once from its credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// No token (or none needed and none checked).
    Anonymous,
    Read,
    Write,
}

impl From<Scope> for Grant {
    fn from(scope: Scope) -> Grant {
        match scope {
            Scope::Read => Grant::Read,
            Scope::Write => Grant::Write,
        }
    }
}

/// A request's grant and who holds it (the token's `sub`, printable and at most 64
/// characters, for logs; empty for anonymous requests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub grant: Grant,
    pub holder: String,
}

impl Access {
    fn anonymous() -> Access {
        Access {
            grant: Grant::Anonymous,
            holder: String::new(),
        }
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Nothing,
    Read,
    Write,
}

/// Why a request was refused: 401 (no usable token) or 403 (a good token without the scope).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or credentials that are not a valid token; the reason is for logs.
    Unauthorized(Option<TokenError>),
    Forbidden,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthorized(_) => 401,
            Refusal::Forbidden => 403,
        }
    }

    /// The body: the same for every reason of a kind, so it tells nothing about the token.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unauthorized(_) => {
                "authentication required: send an access token (as the netrc password)"
            }
            Refusal::Forbidden => "this access token does not allow that",
        }
    }
}

/// The token in an `Authorization` header: the password of `Basic` (any user name) or the
/// value of `Bearer`. `None` when the header is absent; `Err` when it is there but unusable.
pub fn credentials(authorization: Option<&str>) -> Result<Option<Zeroizing<String>>, TokenError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    if value.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or(TokenError::Malformed("authorization"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(Zeroizing::new(rest.to_string())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(rest)
                .map_err(|_| TokenError::Malformed("basic"))?,
        );
        let text = std::str::from_utf8(&decoded).map_err(|_| TokenError::Malformed("basic"))?;
        let (_, password) = text.split_once(':').ok_or(TokenError::Malformed("basic"))?;
        return Ok(Some(Zeroizing::new(password.to_string())));
    }
    Err(TokenError::Malformed("authorization scheme"))
}

/// The one decision: what the request with this `Authorization` header may do, given what it
/// needs. Credentials are checked only when something is needed, so a public cache serves a
/// client that sends a stale netrc password.
pub fn authorize(
    authorization: Option<&str>,
    secret: Option<&TokenSecret>,
    need: Need,
    now: u64,
) -> Result<Access, Refusal> {
    if need == Need::Nothing {
        return Ok(Access::anonymous());
    }
    let Some(secret) = secret else {
        // Without TOKEN_SECRET nothing can be granted.
        return Err(Refusal::Unauthorized(None));
    };
    let token = credentials(authorization)
        .map_err(|e| Refusal::Unauthorized(Some(e)))?
        .ok_or(Refusal::Unauthorized(None))?;
    let claims = verify(&token, secret, now).map_err(|e| Refusal::Unauthorized(Some(e)))?;
    let grant = Grant::from(claims.scope);
    let enough = match need {
        Need::Nothing => true,
        Need::Read => grant >= Grant::Read,
        Need::Write => grant >= Grant::Write,
    };
    if enough {
        let holder = claims
            .sub
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        Ok(Access { grant, holder })
    } else {
        Err(Refusal::Forbidden)
    }
}

/// Parses a duration like `90d`, `12h`, `30m`, `45s` or `2w` into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(unit_at);
    let n: u64 = number.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(factor).filter(|&secs| secs > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn secret() -> TokenSecret {
        TokenSecret::new("a test secret of reasonable length")
    }

    fn claims(scope: Scope) -> Claims {
        Claims {
            sub: "ci".into(),
            scope,
            exp: NOW + 3600,
            nbf: None,
            iat: Some(NOW),
        }
    }

    /// A token with this header and payload JSON, signed under `secret()`.
    fn forge(header: &str, payload: &str) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = secret().mac();
        mac.update(signed.as_bytes());
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn minted_tokens_verify() {
        for scope in [Scope::Read, Scope::Write] {
            let token = mint(&claims(scope), &secret());
            assert_eq!(verify(&token, &secret(), NOW), Ok(claims(scope)));
        }
    }

    /// A token made by another JWT implementation (jwt.io's HS256 example layout, our secret).
    #[test]
    fn a_token_from_elsewhere_verifies() {
        // Header and claims as PyJWT writes them: `{"alg": "HS256", "typ": "JWT"}` with spaces.
        let token = forge(
            r#"{"typ": "JWT", "alg": "HS256"}"#,
            r#"{"sub": "laptop", "scope": "read write", "exp": 1800003600, "jti": "x"}"#,
        );
        let c = verify(&token, &secret(), NOW).unwrap();
        assert_eq!(c.scope, Scope::Write);
        assert_eq!(c.sub, "laptop");
    }

    #[test]
    fn refusals() {
        let good = mint(&claims(Scope::Write), &secret());
        let (head, rest) = good.split_once('.').unwrap();
        let (payload, sig) = rest.split_once('.').unwrap();
        let mut flipped = sig.to_string();
        flipped.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
        );
        let none_signed = format!(
            "{}.{payload}.{sig}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)
        );
        let cases: Vec<(&str, String, TokenError)> = vec![
            (
                "empty",
                String::new(),
                TokenError::Malformed("expected three parts"),
            ),
            (
                "two parts",
                format!("{head}.{payload}"),
                TokenError::Malformed("expected three parts"),
            ),
            (
                "four parts",
                format!("{good}.x"),
                TokenError::Malformed("expected three parts"),
            ),
            ("alg none, no signature", none, TokenError::Algorithm),
            (
                "alg none, signature kept",
                none_signed,
                TokenError::Algorithm,
            ),
            (
                "alg HS512",
                forge(r#"{"alg":"HS512"}"#, r#"{"scope":"read","exp":1900000000}"#),
                TokenError::Algorithm,
            ),
            (
                "alg RS256",
                forge(r#"{"alg":"RS256"}"#, r#"{"scope":"read","exp":1900000000}"#),
                TokenError::Algorithm,
            ),
            (
                "alg hs256 lower case",
                forge(r#"{"alg":"hs256"}"#, r#"{"scope":"read","exp":1900000000}"#),
                TokenError::Algorithm,
            ),
            (
                "crit header",
                forge(
                    r#"{"alg":"HS256","crit":["x"]}"#,
                    r#"{"scope":"read","exp":1900000000}"#,
                ),
                TokenError::Malformed("header"),
            ),
            (
                "typ not JWT",
                forge(
                    r#"{"alg":"HS256","typ":"x"}"#,
                    r#"{"scope":"read","exp":1900000000}"#,
                ),
                TokenError::Malformed("header"),
            ),
            (
                "header not JSON",
                forge("alg", r#"{"scope":"read","exp":1900000000}"#),
                TokenError::Malformed("header"),
            ),
            (
                "bad signature",
                format!("{head}.{payload}.{flipped}"),
                TokenError::Signature,
            ),
            (
                "other secret",
                mint(&claims(Scope::Write), &TokenSecret::new("other")),
                TokenError::Signature,
            ),
            (
                "padded signature",
                format!("{good}="),
                TokenError::Malformed("signature"),
            ),
            (
                "empty signature",
                format!("{head}.{payload}."),
                TokenError::Malformed("signature"),
            ),
            (
                "not base64",
                format!("{head}.{payload}.!!!!"),
                TokenError::Malformed("signature"),
            ),
            (
                "payload changed",
                format!(
                    "{head}.{}.{sig}",
                    URL_SAFE_NO_PAD.encode(r#"{"scope":"write","exp":1999999999}"#)
                ),
                TokenError::Signature,
            ),
            (
                "expired",
                forge(HS256, r#"{"scope":"read","exp":1800000000}"#),
                TokenError::Expired,
            ),
            (
                "no exp",
                forge(HS256, r#"{"scope":"read"}"#),
                TokenError::Malformed("no exp"),
            ),
            (
                "exp a string",
                forge(HS256, r#"{"scope":"read","exp":"1900000000"}"#),
                TokenError::Malformed("claims"),
            ),
            (
                "exp negative",
                forge(HS256, r#"{"scope":"read","exp":-1}"#),
                TokenError::Malformed("claims"),
            ),
            (
                "exp a float",
                forge(HS256, r#"{"scope":"read","exp":1900000000.5}"#),
                TokenError::Malformed("claims"),
            ),
            (
                "nbf in the future",
                forge(
                    HS256,
                    r#"{"scope":"read","exp":1900000000,"nbf":1800000001}"#,
                ),
                TokenError::NotYetValid,
            ),
            (
                "iat far in the future",
                forge(
                    HS256,
                    r#"{"scope":"read","exp":1900000000,"iat":1800000301}"#,
                ),
                TokenError::NotYetValid,
            ),
            (
                "no scope",
                forge(HS256, r#"{"exp":1900000000}"#),
                TokenError::Malformed("scope"),
            ),
            (
                "unknown scope",
                forge(HS256, r#"{"scope":"admin","exp":1900000000}"#),
                TokenError::Malformed("scope"),
            ),
            (
                "read and unknown",
                forge(HS256, r#"{"scope":"read admin","exp":1900000000}"#),
                TokenError::Malformed("scope"),
            ),
            (
                "claims not an object",
                forge(HS256, "[1]"),
                TokenError::Malformed("claims"),
            ),
            (
                "too long",
                "a".repeat(MAX_TOKEN_LEN + 1),
                TokenError::Malformed("too long"),
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(verify(&token, &secret(), NOW), Err(want), "{name}");
        }
    }

    #[test]
    fn time_edges() {
        let at = |payload: &str, now| verify(&forge(HS256, payload), &secret(), now);
        let p = r#"{"scope":"read","exp":1800000100,"nbf":1800000000}"#;
        assert!(at(p, 1_800_000_000).is_ok(), "nbf == now is valid");
        assert_eq!(at(p, 1_799_999_999), Err(TokenError::NotYetValid));
        assert!(at(p, 1_800_000_099).is_ok());
        assert_eq!(
            at(p, 1_800_000_100),
            Err(TokenError::Expired),
            "exp == now is expired"
        );
        let iat = r#"{"scope":"read","exp":1900000000,"iat":1800000300}"#;
        assert!(at(iat, NOW).is_ok(), "iat within the leeway");
    }

    #[test]
    fn scopes() {
        for (s, want) in [
            ("read", Some(Scope::Read)),
            ("write", Some(Scope::Write)),
            ("read write", Some(Scope::Write)),
            ("write read", Some(Scope::Write)),
            ("", None),
            ("Read", None),
            ("read,write", None),
        ] {
            assert_eq!(Scope::parse(s), want, "{s:?}");
        }
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn credentials_from_basic_and_bearer() {
        let t = mint(&claims(Scope::Read), &secret());
        let got = |h: &str| credentials(Some(h)).map(|o| o.map(|z| z.to_string()));
        assert_eq!(got(&basic("nix", &t)), Ok(Some(t.clone())));
        assert_eq!(got(&basic("", &t)), Ok(Some(t.clone())));
        assert_eq!(got(&format!("Bearer {t}")), Ok(Some(t.clone())));
        assert_eq!(got(&format!("bearer  {t} ")), Ok(Some(t.clone())));
        assert_eq!(credentials(None), Ok(None));
        assert!(got("Basic !!!").is_err());
        assert!(got(&format!("Basic {}", STANDARD.encode("no colon"))).is_err());
        assert!(got("Digest x").is_err());
        assert!(got("Bearer").is_err());
    }

    #[test]
    fn authorize_table() {
        let s = secret();
        let read = format!("Bearer {}", mint(&claims(Scope::Read), &s));
        let write = basic("ci", &mint(&claims(Scope::Write), &s));
        let bad = format!(
            "Bearer {}",
            mint(&claims(Scope::Write), &TokenSecret::new("x"))
        );
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a TokenSecret>,
            Need,
            Result<Grant, u16>,
        );
        let cases: Vec<Case> = vec![
            (None, Some(&s), Need::Nothing, Ok(Grant::Anonymous)),
            (
                Some(bad.as_str()),
                Some(&s),
                Need::Nothing,
                Ok(Grant::Anonymous),
            ),
            (None, None, Need::Nothing, Ok(Grant::Anonymous)),
            (None, Some(&s), Need::Read, Err(401)),
            (Some(bad.as_str()), Some(&s), Need::Read, Err(401)),
            (Some(read.as_str()), None, Need::Read, Err(401)),
            (Some(read.as_str()), Some(&s), Need::Read, Ok(Grant::Read)),
            (Some(read.as_str()), Some(&s), Need::Write, Err(403)),
            (Some(write.as_str()), Some(&s), Need::Read, Ok(Grant::Write)),
            (
                Some(write.as_str()),
                Some(&s),
                Need::Write,
                Ok(Grant::Write),
            ),
            (Some("Basic"), Some(&s), Need::Write, Err(401)),
        ];
        for (i, (header, secret, need, want)) in cases.into_iter().enumerate() {
            let got = authorize(header, secret, need, NOW)
                .map(|a| a.grant)
                .map_err(Refusal::status);
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn the_holder_is_the_sub_made_safe_for_logs() {
        let s = secret();
        let mut c = claims(Scope::Write);
        c.sub = "ci\nforged log line".into();
        let t = format!("Bearer {}", mint(&c, &s));
        let access = authorize(Some(&t), Some(&s), Need::Write, NOW).unwrap();
        assert_eq!(access.holder, "ciforgedlogline");
        let anonymous = authorize(None, Some(&s), Need::Nothing, NOW).unwrap();
        assert_eq!(anonymous.holder, "");
    }

    #[test]
    fn refusal_messages_do_not_say_why() {
        let reasons = [
            Refusal::Unauthorized(None),
            Refusal::Unauthorized(Some(TokenError::Expired)),
            Refusal::Unauthorized(Some(TokenError::Signature)),
        ];
        for r in reasons {
            assert_eq!(r.message(), reasons[0].message());
            assert_eq!(r.status(), 401);
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let s = TokenSecret::new("hunter2hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Some(90 * 86_400));
        assert_eq!(parse_duration("12h"), Some(43_200));
        assert_eq!(parse_duration("30m"), Some(1_800));
        assert_eq!(parse_duration("45s"), Some(45));
        assert_eq!(parse_duration("2w"), Some(1_209_600));
        for bad in [
            "",
            "d",
            "90",
            "0d",
            "-1d",
            "1y",
            "1.5d",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
