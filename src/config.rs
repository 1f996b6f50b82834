//! The Worker's bindings (vars and secrets), parsed and checked once at the edge into [`Config`].
//!
//! The names are fixed by the design (see [`names`]). [`Config::from_lookup`] takes a function
//! that returns a binding's value, so the same code reads `Env` in the Worker and a table in
//! tests. A value keeps the kind it arrived as ([`Binding`]): `wrangler.toml` writes
//! `PRIORITY = 10` as a number and `WANT_MASS_QUERY = true` as a boolean, and they are read as
//! such; a value of a kind the binding cannot take (`PRIORITY = true`, `SPACES_BUCKET = 5`) is
//! an error naming it, never a silent default. An empty (or all-whitespace) text counts as
//! missing. Errors name the binding and the problem, never the value: a misplaced secret cannot
//! end up in a log or a 500 body.

use crate::narinfo::SigningKey;
use crate::nix::CacheInfo;
use crate::policy::Ttls;
use crate::segments::DEFAULT_SEGMENT_BYTES;
use crate::sigv4::Credentials;
use crate::token::TokenSecret;

/// The largest upload by default: Cloudflare's request body limit on Free and Pro zones.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100_000_000;

/// The binding names, as in `wrangler.toml`, `.dev.vars` and `wrangler secret put`.
pub mod names {
    /// S3 endpoint, scheme + host [+ port]: `https://fra1.digitaloceanspaces.com`. Required.
    pub const SPACES_ENDPOINT: &str = "SPACES_ENDPOINT";
    /// Bucket name; objects are addressed path-style `ENDPOINT/BUCKET/KEY`. Required.
    pub const SPACES_BUCKET: &str = "SPACES_BUCKET";
    /// Region in the SigV4 credential scope: `fra1`. Required.
    pub const SPACES_REGION: &str = "SPACES_REGION";
    /// Spaces access key id (secret). Required.
    pub const SPACES_ACCESS_KEY_ID: &str = "SPACES_ACCESS_KEY_ID";
    /// Spaces secret key (secret). Required; never logged, never echoed.
    pub const SPACES_SECRET_ACCESS_KEY: &str = "SPACES_SECRET_ACCESS_KEY";
    /// `StoreDir` in nix-cache-info; default `/nix/store`.
    pub const STORE_DIR: &str = "STORE_DIR";
    /// `WantMassQuery` in nix-cache-info, `1` or `0`; default `1`.
    pub const WANT_MASS_QUERY: &str = "WANT_MASS_QUERY";
    /// `Priority` in nix-cache-info (lower wins); default `40`.
    pub const PRIORITY: &str = "PRIORITY";
    /// Edge TTL of NARs in seconds; default a year.
    pub const NAR_TTL: &str = "NAR_TTL";
    /// Edge TTL of narinfos and realisations in seconds; default a day.
    pub const NARINFO_TTL: &str = "NARINFO_TTL";
    /// Edge TTL of misses (404) in seconds; default a minute.
    pub const NEGATIVE_TTL: &str = "NEGATIVE_TTL";
    /// Optional: space-separated `name:base64` public keys, shown on the landing page.
    pub const PUBLIC_KEYS: &str = "PUBLIC_KEYS";
    /// Optional secret: the HMAC key of access tokens (JWT, HS256). Unset: read-only, public.
    pub const TOKEN_SECRET: &str = "TOKEN_SECRET";
    /// Optional secret: a Nix secret key (`name:base64`); uploaded narinfos get its `Sig`.
    pub const SIGNING_KEY: &str = "SIGNING_KEY";
    /// Optional: `1` makes every route but `/` need a token with `read`; default `0`.
    pub const PRIVATE: &str = "PRIVATE";
    /// Optional: largest PUT body in bytes; default 100 MB.
    pub const MAX_UPLOAD_BYTES: &str = "MAX_UPLOAD_BYTES";
    /// Optional: objects larger than this are kept at the edge as segments of this size, in
    /// bytes; default 32 MiB.
    pub const SEGMENT_BYTES: &str = "SEGMENT_BYTES";

    /// The bindings without which the Worker cannot reach Spaces.
    pub const REQUIRED: [&str; 5] = [
        SPACES_ENDPOINT,
        SPACES_BUCKET,
        SPACES_REGION,
        SPACES_ACCESS_KEY_ID,
        SPACES_SECRET_ACCESS_KEY,
    ];

    /// Every binding the Worker reads.
    pub const ALL: [&str; 17] = [
        SPACES_ENDPOINT,
        SPACES_BUCKET,
        SPACES_REGION,
        SPACES_ACCESS_KEY_ID,
        SPACES_SECRET_ACCESS_KEY,
        STORE_DIR,
        WANT_MASS_QUERY,
        PRIORITY,
        NAR_TTL,
        NARINFO_TTL,
        NEGATIVE_TTL,
        PUBLIC_KEYS,
        TOKEN_SECRET,
        SIGNING_KEY,
        PRIVATE,
        MAX_UPLOAD_BYTES,
        SEGMENT_BYTES,
    ];
}

/// A binding's value as the runtime hands it over: `[vars]` written as TOML strings, numbers
/// and booleans arrive as such; secrets are always text.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    Text(String),
    Number(f64),
    Bool(bool),
    /// Anything else (an object, a list): never a valid value for these bindings.
    Other,
}

impl From<String> for Binding {
    fn from(text: String) -> Binding {
        Binding::Text(text)
    }
}

impl From<&str> for Binding {
    fn from(text: &str) -> Binding {
        Binding::Text(text.to_string())
    }
}

/// A binding that is missing or unusable. `Display` names the binding, never its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing binding {0}")]
    Missing(&'static str),
    #[error("invalid binding {name}: {reason}")]
    Invalid {
        name: &'static str,
        reason: &'static str,
    },
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> &'static str {
        match self {
            Scheme::Http => "80",
            Scheme::Https => "443",
        }
    }
}

/// Where Spaces is: a scheme and `host[:port]` exactly as it goes into the `Host` header (and
/// so into the signature): lowercase, without the scheme's default port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub host: String,
}

impl Endpoint {
    /// Parses `https://fra1.digitaloceanspaces.com` or `http://127.0.0.1:9000` (a trailing `/`
    /// is fine). Refused: other schemes, a path, a query or fragment, `user@`, an empty host
    /// or a bad port. The error names [`names::SPACES_ENDPOINT`].
    pub fn parse(s: &str) -> Result<Endpoint, ConfigError> {
        let invalid = |reason| ConfigError::Invalid {
            name: names::SPACES_ENDPOINT,
            reason,
        };
        let s = s.trim();
        let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(s, "https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(s, "http://") {
            (Scheme::Http, rest)
        } else {
            return Err(invalid("expected http:// or https:// and a host"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(invalid("expected scheme and host only, no path or query"));
        }
        if authority.contains('@') {
            return Err(invalid("user info is not allowed"));
        }
        let (host, port) = split_host_port(authority).ok_or(invalid("bad host"))?;
        let valid_host = if let Some(ip6) = host.strip_prefix('[') {
            ip6.strip_suffix(']').is_some_and(|inner| {
                !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            })
        } else {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !host.starts_with(['.', '-'])
        };
        if !valid_host {
            return Err(invalid("bad host"));
        }
        let mut host = host.to_ascii_lowercase();
        if let Some(port) = port {
            if port.is_empty()
                || !port.bytes().all(|b| b.is_ascii_digit())
                || !port.parse::<u16>().is_ok_and(|p| p != 0)
            {
                return Err(invalid("bad port"));
            }
            let port = port.trim_start_matches('0');
            if port != scheme.default_port() {
                host.push(':');
                host.push_str(port);
            }
        }
        Ok(Endpoint { scheme, host })
    }

    /// `scheme://host` followed by `path`, the request path exactly as signed: for an object,
    /// [`crate::sigv4::s3_object_path`] (`/bucket/key`, each key segment encoded once).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme.as_str(), self.host)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (host, rest) = authority.split_at(end);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// Everything the Worker needs from its bindings, checked.
#[derive(Clone, Debug)]
pub struct Config {
    pub endpoint: Endpoint,
    pub bucket: String,
    pub region: String,
    /// `Debug` leaves the secret out.
    pub credentials: Credentials,
    pub cache_info: CacheInfo,
    pub ttls: Ttls,
    /// `name:base64` public keys to show on the landing page; may be empty.
    pub public_keys: Vec<String>,
    /// Objects larger than this are kept at the edge as segments of this size.
    pub segment_bytes: u64,
    /// Uploads and private reads: who may push and read (see [`Push`]).
    pub push: Push,
}

/// The bindings of uploads and private caches: `TOKEN_SECRET`, `SIGNING_KEY`, `PRIVATE` and
/// `MAX_UPLOAD_BYTES`. `Debug` shows neither secret.
#[derive(Clone, Debug)]
pub struct Push {
    /// Unset: the Worker takes no uploads and serves everyone.
    pub token_secret: Option<TokenSecret>,
    /// Signs uploaded narinfos that lack its signature.
    pub signing_key: Option<SigningKey>,
    /// Every route but `/` needs a `read` token.
    pub private: bool,
    /// Largest PUT body, in bytes.
    pub max_upload_bytes: u64,
}

impl Push {
    /// Reads the four bindings. `PRIVATE` without `TOKEN_SECRET` is refused: nobody could read.
    pub fn from_lookup<B: Into<Binding>>(
        lookup: impl Fn(&str) -> Option<B>,
    ) -> Result<Push, ConfigError> {
        let token_secret = get(&lookup, names::TOKEN_SECRET)?.map(TokenSecret::new);
        let signing_key = match get(&lookup, names::SIGNING_KEY)? {
            None => None,
            Some(key) => Some(SigningKey::parse(&key).map_err(|_| ConfigError::Invalid {
                name: names::SIGNING_KEY,
                reason:
                    "expected a Nix secret key, name:base64, as nix key generate-secret prints it",
            })?),
        };
        let private = flag(&lookup, names::PRIVATE, false)?;
        if private && token_secret.is_none() {
            return Err(ConfigError::Invalid {
                name: names::PRIVATE,
                reason: "a private cache needs TOKEN_SECRET",
            });
        }
        let max_upload_bytes = number(&lookup, names::MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES)?;
        if max_upload_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: names::MAX_UPLOAD_BYTES,
                reason: "expected a size above zero",
            });
        }
        Ok(Push {
            token_secret,
            signing_key,
            private,
            max_upload_bytes,
        })
    }

    /// Whether the Worker takes uploads (`TOKEN_SECRET` is set).
    pub fn uploads(&self) -> bool {
        self.token_secret.is_some()
    }
}

/// A text binding's value, trimmed; `None` when unset or blank; an error when the binding holds
/// a number, a boolean or anything else.
fn get<B: Into<Binding>>(
    lookup: &impl Fn(&str) -> Option<B>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match lookup(name).map(Into::into) {
        None => Ok(None),
        Some(Binding::Text(v)) => Ok(Some(v.trim().to_string()).filter(|v| !v.is_empty())),
        Some(_) => Err(ConfigError::Invalid {
            name,
            reason: "expected a string",
        }),
    }
}

fn required<B: Into<Binding>>(
    lookup: &impl Fn(&str) -> Option<B>,
    name: &'static str,
) -> Result<String, ConfigError> {
    get(lookup, name)?.ok_or(ConfigError::Missing(name))
}

/// A whole number of at least 0: a TOML number, or text of ASCII digits.
fn number<T: TryFrom<u64> + std::str::FromStr, B: Into<Binding>>(
    lookup: &impl Fn(&str) -> Option<B>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    let not_a_number = ConfigError::Invalid {
        name,
        reason: "not a number",
    };
    let out_of_range = ConfigError::Invalid {
        name,
        reason: "number out of range",
    };
    match lookup(name).map(Into::into) {
        None => Ok(default),
        Some(Binding::Number(n)) => {
            // Integers up to 2^53 are exact in a JS number; past that, or negative, refuse.
            if !n.is_finite() || n.fract() != 0.0 {
                Err(not_a_number)
            } else if !(0.0..=9_007_199_254_740_992.0).contains(&n) {
                Err(if n < 0.0 { not_a_number } else { out_of_range })
            } else {
                T::try_from(n as u64).map_err(|_| out_of_range)
            }
        }
        Some(Binding::Text(v)) => match v.trim() {
            "" => Ok(default),
            v if v.bytes().all(|b| b.is_ascii_digit()) => v.parse().map_err(|_| out_of_range),
            _ => Err(not_a_number),
        },
        Some(_) => Err(not_a_number),
    }
}

/// A yes/no binding: a TOML boolean, the number 1 or 0, or the text `1`, `0`, `true`, `false`.
fn flag<B: Into<Binding>>(
    lookup: &impl Fn(&str) -> Option<B>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    let invalid = ConfigError::Invalid {
        name,
        reason: "expected true, false, 1 or 0",
    };
    match lookup(name).map(Into::into) {
        None => Ok(default),
        Some(Binding::Bool(b)) => Ok(b),
        Some(Binding::Number(1.0)) => Ok(true),
        Some(Binding::Number(0.0)) => Ok(false),
        Some(Binding::Text(v)) => match v.trim() {
            "" => Ok(default),
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(invalid),
        },
        Some(_) => Err(invalid),
    }
}

/// S3 bucket naming rules: 3 to 63 chars of `a-z0-9.-`, starting and ending with a letter or
/// digit.
fn is_valid_bucket(s: &str) -> bool {
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(s.bytes().next())
        && edge_ok(s.bytes().last())
}

/// A `name:base64` key as `nix key convert-secret-to-public` prints it.
fn is_valid_public_key(s: &str) -> bool {
    match s.split_once(':') {
        Some((name, key)) => {
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                && !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        }
        None => false,
    }
}

impl CacheInfo {
    /// The nix-cache-info fields from `STORE_DIR`, `WANT_MASS_QUERY` and `PRIORITY`, with
    /// defaults `/nix/store`, `true` and `40`. Needs none of the Spaces bindings.
    pub fn from_lookup<B: Into<Binding>>(
        lookup: impl Fn(&str) -> Option<B>,
    ) -> Result<CacheInfo, ConfigError> {
        let defaults = CacheInfo::default();
        let store_dir = match get(&lookup, names::STORE_DIR)? {
            None => defaults.store_dir,
            Some(dir) => {
                let ok = dir.len() > 1
                    && dir.len() <= 256
                    && dir.starts_with('/')
                    && !dir.ends_with('/')
                    && dir.bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    return Err(ConfigError::Invalid {
                        name: names::STORE_DIR,
                        reason: "expected an absolute path like /nix/store",
                    });
                }
                dir
            }
        };
        let want_mass_query = flag(&lookup, names::WANT_MASS_QUERY, defaults.want_mass_query)?;
        let priority = number(&lookup, names::PRIORITY, defaults.priority)?;
        Ok(CacheInfo {
            store_dir,
            want_mass_query,
            priority,
        })
    }
}

impl Config {
    /// Reads and checks every binding. `lookup(name)` returns a var's or secret's value, or
    /// `None`. The five `SPACES_*` bindings are required; the others have defaults
    /// (`STORE_DIR=/nix/store`, `WANT_MASS_QUERY=1`, `PRIORITY=40`, TTLs from
    /// [`Ttls::default`], no public keys, [`DEFAULT_SEGMENT_BYTES`]).
    pub fn from_lookup<B: Into<Binding>>(
        lookup: impl Fn(&str) -> Option<B>,
    ) -> Result<Config, ConfigError> {
        let endpoint = Endpoint::parse(&required(&lookup, names::SPACES_ENDPOINT)?)?;
        let bucket = required(&lookup, names::SPACES_BUCKET)?;
        if !is_valid_bucket(&bucket) {
            return Err(ConfigError::Invalid {
                name: names::SPACES_BUCKET,
                reason: "expected 3 to 63 chars of a-z, 0-9, '.' and '-'",
            });
        }
        let region = required(&lookup, names::SPACES_REGION)?;
        if region.len() > 64
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::Invalid {
                name: names::SPACES_REGION,
                reason: "expected a region slug like fra1",
            });
        }
        let access_key_id = required(&lookup, names::SPACES_ACCESS_KEY_ID)?;
        if access_key_id.len() > 128 || !access_key_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                name: names::SPACES_ACCESS_KEY_ID,
                reason: "expected printable ASCII without spaces",
            });
        }
        let secret = required(&lookup, names::SPACES_SECRET_ACCESS_KEY)?;
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                name: names::SPACES_SECRET_ACCESS_KEY,
                reason: "expected printable ASCII without spaces",
            });
        }
        let credentials = Credentials::new(access_key_id, secret);

        let cache_info = CacheInfo::from_lookup(&lookup)?;
        let defaults = Ttls::default();
        let ttls = Ttls {
            nar: number(&lookup, names::NAR_TTL, defaults.nar)?,
            narinfo: number(&lookup, names::NARINFO_TTL, defaults.narinfo)?,
            negative: number(&lookup, names::NEGATIVE_TTL, defaults.negative)?,
            other: defaults.other,
        };
        let public_keys: Vec<String> = get(&lookup, names::PUBLIC_KEYS)?
            .map(|v| v.split_ascii_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        if !public_keys.iter().all(|k| is_valid_public_key(k)) {
            return Err(ConfigError::Invalid {
                name: names::PUBLIC_KEYS,
                reason: "expected space-separated name:base64 keys",
            });
        }
        let segment_bytes = number(&lookup, names::SEGMENT_BYTES, DEFAULT_SEGMENT_BYTES)?;
        if !(crate::segments::MIN_SEGMENT_BYTES..=crate::segments::MAX_SEGMENT_BYTES)
            .contains(&segment_bytes)
        {
            return Err(ConfigError::Invalid {
                name: names::SEGMENT_BYTES,
                reason: "expected 1 MiB to 128 MiB",
            });
        }
        let push = Push::from_lookup(&lookup)?;
        Ok(Config {
            endpoint,
            bucket,
            region,
            credentials,
            cache_info,
            ttls,
            public_keys,
            segment_bytes,
            push,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn base() -> HashMap<&'static str, String> {
        HashMap::from([
            (
                names::SPACES_ENDPOINT,
                "https://fra1.digitaloceanspaces.com".to_string(),
            ),
            (names::SPACES_BUCKET, "nix-store".to_string()),
            (names::SPACES_REGION, "fra1".to_string()),
            (names::SPACES_ACCESS_KEY_ID, "DO00EXAMPLEKEYID".to_string()),
            (names::SPACES_SECRET_ACCESS_KEY, SECRET.to_string()),
        ])
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    fn with(name: &'static str, value: &str) -> Result<Config, ConfigError> {
        let mut vars = base();
        vars.insert(name, value.to_string());
        load(&vars)
    }

    #[test]
    fn defaults() {
        let c = load(&base()).unwrap();
        assert_eq!(
            c.endpoint,
            Endpoint {
                scheme: Scheme::Https,
                host: "fra1.digitaloceanspaces.com".into()
            }
        );
        assert_eq!(c.bucket, "nix-store");
        assert_eq!(c.region, "fra1");
        assert_eq!(c.credentials.access_key_id, "DO00EXAMPLEKEYID");
        assert_eq!(c.credentials.secret_access_key.expose(), SECRET);
        assert_eq!(c.cache_info, CacheInfo::default());
        assert_eq!(c.ttls, Ttls::default());
        assert!(c.public_keys.is_empty());
        assert_eq!(c.segment_bytes, DEFAULT_SEGMENT_BYTES);
    }

    #[test]
    fn every_required_binding_is_named_when_missing_or_empty() {
        for name in names::REQUIRED {
            for value in [None, Some(""), Some("  ")] {
                let mut vars = base();
                match value {
                    None => vars.remove(name),
                    Some(v) => vars.insert(name, v.to_string()),
                };
                let err = load(&vars).unwrap_err();
                assert_eq!(err, ConfigError::Missing(name));
                assert_eq!(err.to_string(), format!("missing binding {name}"));
            }
        }
    }

    #[test]
    fn optional_bindings() {
        let mut vars = base();
        for (k, v) in [
            (names::STORE_DIR, "/gnu/store"),
            (names::WANT_MASS_QUERY, "0"),
            (names::PRIORITY, " 30 "),
            (names::NAR_TTL, "1000"),
            (names::NARINFO_TTL, "100"),
            (names::NEGATIVE_TTL, "0"),
            (names::PUBLIC_KEYS, "cache-1:AAAA+/=  other:BBBB\n"),
            (names::SEGMENT_BYTES, "4194304"),
        ] {
            vars.insert(k, v.to_string());
        }
        let c = load(&vars).unwrap();
        assert_eq!(
            c.cache_info,
            CacheInfo {
                store_dir: "/gnu/store".into(),
                want_mass_query: false,
                priority: 30
            }
        );
        assert_eq!(
            c.ttls,
            Ttls {
                nar: 1000,
                narinfo: 100,
                negative: 0,
                other: Ttls::default().other
            }
        );
        assert_eq!(c.public_keys, ["cache-1:AAAA+/=", "other:BBBB"]);
        assert_eq!(c.segment_bytes, 4_194_304);
    }

    #[test]
    fn invalid_values_name_the_binding_and_never_the_value() {
        let cases: &[(&'static str, &str, &str)] = &[
            (
                names::PRIORITY,
                "forty",
                "invalid binding PRIORITY: not a number",
            ),
            (
                names::PRIORITY,
                "-1",
                "invalid binding PRIORITY: not a number",
            ),
            (
                names::PRIORITY,
                "99999999999",
                "invalid binding PRIORITY: number out of range",
            ),
            (
                names::NAR_TTL,
                "1y",
                "invalid binding NAR_TTL: not a number",
            ),
            (
                names::NARINFO_TTL,
                "1.5",
                "invalid binding NARINFO_TTL: not a number",
            ),
            (
                names::NEGATIVE_TTL,
                "xyz",
                "invalid binding NEGATIVE_TTL: not a number",
            ),
            (
                names::SEGMENT_BYTES,
                "1e9",
                "invalid binding SEGMENT_BYTES: not a number",
            ),
            (
                names::SEGMENT_BYTES,
                "1000",
                "invalid binding SEGMENT_BYTES: expected 1 MiB to 128 MiB",
            ),
            (
                names::SEGMENT_BYTES,
                "1073741824",
                "invalid binding SEGMENT_BYTES: expected 1 MiB to 128 MiB",
            ),
            (
                names::WANT_MASS_QUERY,
                "yes",
                "invalid binding WANT_MASS_QUERY: expected true, false, 1 or 0",
            ),
            (
                names::STORE_DIR,
                "relative/dir",
                "invalid binding STORE_DIR: expected an absolute path like /nix/store",
            ),
            (
                names::STORE_DIR,
                "/gnu/store/",
                "invalid binding STORE_DIR: expected an absolute path like /nix/store",
            ),
            (
                names::STORE_DIR,
                "/gnu/st ore",
                "invalid binding STORE_DIR: expected an absolute path like /nix/store",
            ),
            (
                names::SPACES_BUCKET,
                "Nix_Store",
                "invalid binding SPACES_BUCKET: expected 3 to 63 chars of a-z, 0-9, '.' and '-'",
            ),
            (
                names::SPACES_BUCKET,
                "-nix",
                "invalid binding SPACES_BUCKET: expected 3 to 63 chars of a-z, 0-9, '.' and '-'",
            ),
            (
                names::SPACES_BUCKET,
                "ab",
                "invalid binding SPACES_BUCKET: expected 3 to 63 chars of a-z, 0-9, '.' and '-'",
            ),
            (
                names::SPACES_REGION,
                "fra 1",
                "invalid binding SPACES_REGION: expected a region slug like fra1",
            ),
            (
                names::SPACES_ACCESS_KEY_ID,
                "DO00 KEY",
                "invalid binding SPACES_ACCESS_KEY_ID: expected printable ASCII without spaces",
            ),
            (
                names::SPACES_SECRET_ACCESS_KEY,
                "sec ret-value",
                "invalid binding SPACES_SECRET_ACCESS_KEY: expected printable ASCII without spaces",
            ),
            (
                names::PUBLIC_KEYS,
                "nocolon",
                "invalid binding PUBLIC_KEYS: expected space-separated name:base64 keys",
            ),
            (
                names::PUBLIC_KEYS,
                "k:not base64!",
                "invalid binding PUBLIC_KEYS: expected space-separated name:base64 keys",
            ),
            (
                names::SPACES_ENDPOINT,
                "ftp://x",
                "invalid binding SPACES_ENDPOINT: expected http:// or https:// and a host",
            ),
        ];
        for (name, value, message) in cases {
            let err = with(name, value).unwrap_err();
            assert_eq!(err.to_string(), *message, "{name}={value}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(value.trim()), "{shown} shows {value}");
        }
    }

    /// A table of typed bindings over the base one.
    fn typed(extra: &[(&'static str, Binding)]) -> Result<Config, ConfigError> {
        let mut vars: HashMap<&'static str, Binding> = base()
            .into_iter()
            .map(|(k, v)| (k, Binding::Text(v)))
            .collect();
        vars.extend(extra.iter().cloned());
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn toml_numbers_and_booleans_are_read_as_such() {
        let c = typed(&[
            (names::PRIORITY, Binding::Number(10.0)),
            (names::WANT_MASS_QUERY, Binding::Bool(false)),
            (names::NAR_TTL, Binding::Number(600.0)),
            (names::SEGMENT_BYTES, Binding::Number(8_388_608.0)),
        ])
        .unwrap();
        assert_eq!(c.cache_info.priority, 10);
        assert!(!c.cache_info.want_mass_query);
        assert_eq!(c.ttls.nar, 600);
        assert_eq!(c.segment_bytes, 8 * 1024 * 1024);
        let c = typed(&[
            (names::WANT_MASS_QUERY, Binding::Bool(true)),
            (names::PRIORITY, Binding::Number(0.0)),
        ])
        .unwrap();
        assert!(c.cache_info.want_mass_query);
        assert_eq!(c.cache_info.priority, 0);
        for (value, want) in [("true", true), ("false", false), ("1", true), ("0", false)] {
            let c = typed(&[(names::WANT_MASS_QUERY, Binding::Text(value.into()))]).unwrap();
            assert_eq!(c.cache_info.want_mass_query, want, "{value}");
        }
        for (n, want) in [(1.0, true), (0.0, false)] {
            let c = typed(&[(names::WANT_MASS_QUERY, Binding::Number(n))]).unwrap();
            assert_eq!(c.cache_info.want_mass_query, want, "{n}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_kind_names_the_binding() {
        let cases: Vec<(&'static str, Binding, &str)> = vec![
            (
                names::PRIORITY,
                Binding::Bool(true),
                "invalid binding PRIORITY: not a number",
            ),
            (
                names::PRIORITY,
                Binding::Number(10.5),
                "invalid binding PRIORITY: not a number",
            ),
            (
                names::PRIORITY,
                Binding::Number(-1.0),
                "invalid binding PRIORITY: not a number",
            ),
            (
                names::PRIORITY,
                Binding::Number(f64::NAN),
                "invalid binding PRIORITY: not a number",
            ),
            (
                names::PRIORITY,
                Binding::Number(5e9),
                "invalid binding PRIORITY: number out of range",
            ),
            (
                names::PRIORITY,
                Binding::Other,
                "invalid binding PRIORITY: not a number",
            ),
            (
                names::WANT_MASS_QUERY,
                Binding::Number(2.0),
                "invalid binding WANT_MASS_QUERY: expected true, false, 1 or 0",
            ),
            (
                names::WANT_MASS_QUERY,
                Binding::Other,
                "invalid binding WANT_MASS_QUERY: expected true, false, 1 or 0",
            ),
            (
                names::SPACES_BUCKET,
                Binding::Number(123.0),
                "invalid binding SPACES_BUCKET: expected a string",
            ),
            (
                names::STORE_DIR,
                Binding::Bool(true),
                "invalid binding STORE_DIR: expected a string",
            ),
            (
                names::SPACES_SECRET_ACCESS_KEY,
                Binding::Number(42.0),
                "invalid binding SPACES_SECRET_ACCESS_KEY: expected a string",
            ),
            (
                names::PUBLIC_KEYS,
                Binding::Other,
                "invalid binding PUBLIC_KEYS: expected a string",
            ),
        ];
        for (name, value, message) in cases {
            let err = typed(&[(name, value.clone())]).unwrap_err();
            assert_eq!(err.to_string(), message, "{name}={value:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = load(&base()).unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains(SECRET));
        assert!(shown.contains("DO00EXAMPLEKEYID"));
    }

    #[test]
    fn cache_info_alone_needs_no_spaces_bindings() {
        let info = CacheInfo::from_lookup(|name| {
            (name == names::PRIORITY).then_some(Binding::Number(10.0))
        })
        .unwrap();
        assert_eq!(info.priority, 10);
        assert_eq!(info.store_dir, "/nix/store");
        assert!(info.want_mass_query);
    }

    #[test]
    fn endpoints() {
        let ok: &[(&str, Scheme, &str)] = &[
            (
                "https://fra1.digitaloceanspaces.com",
                Scheme::Https,
                "fra1.digitaloceanspaces.com",
            ),
            (
                "https://fra1.digitaloceanspaces.com/",
                Scheme::Https,
                "fra1.digitaloceanspaces.com",
            ),
            (
                "HTTPS://FRA1.DigitalOceanSpaces.com",
                Scheme::Https,
                "fra1.digitaloceanspaces.com",
            ),
            ("http://127.0.0.1:9000", Scheme::Http, "127.0.0.1:9000"),
            ("http://localhost:9000/", Scheme::Http, "localhost:9000"),
            (
                "https://s3.example.com:443",
                Scheme::Https,
                "s3.example.com",
            ),
            ("http://s3.example.com:80", Scheme::Http, "s3.example.com"),
            (
                "https://s3.example.com:80",
                Scheme::Https,
                "s3.example.com:80",
            ),
            ("http://[::1]:9000", Scheme::Http, "[::1]:9000"),
            ("http://[::1]", Scheme::Http, "[::1]"),
        ];
        for (input, scheme, host) in ok {
            let e = Endpoint::parse(input).unwrap_or_else(|err| panic!("{input}: {err}"));
            assert_eq!((e.scheme, e.host.as_str()), (*scheme, *host), "{input}");
        }
        let bad = [
            "",
            "fra1.digitaloceanspaces.com",
            "ftp://host",
            "https://",
            "https:///",
            "https://host/bucket",
            "https://host/?x=1",
            "https://host?x=1",
            "https://host#frag",
            "https://user:pw@host",
            "https://user@host",
            "https://host:",
            "https://host:0",
            "https://host:65536",
            "https://host:9x",
            "https://ho st",
            "https://host_name",
            "https://.host",
            "http://[::1",
            "http://[]:80",
            "http://[::1]x",
        ];
        for input in bad {
            let err = Endpoint::parse(input).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: names::SPACES_ENDPOINT,
                        ..
                    }
                ),
                "{input}: {err:?}"
            );
        }
    }

    #[test]
    fn object_urls() {
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            e.url(&crate::sigv4::s3_object_path("nix-store", "nar/abc.nar.xz")),
            "http://127.0.0.1:9000/nix-store/nar/abc.nar.xz"
        );
        assert_eq!(
            e.url(&crate::sigv4::s3_object_path(
                "nix-store",
                "realisations/sha256:ab!out.doi"
            )),
            "http://127.0.0.1:9000/nix-store/realisations/sha256%3Aab%21out.doi"
        );
        let e = Endpoint::parse("https://fra1.digitaloceanspaces.com").unwrap();
        assert_eq!(e.url("/b/k"), "https://fra1.digitaloceanspaces.com/b/k");
    }

    #[test]
    fn names_are_unique_and_screaming() {
        let mut all = names::ALL.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), names::ALL.len());
        assert!(names::ALL
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
        assert!(names::REQUIRED.iter().all(|n| names::ALL.contains(n)));
    }

    #[test]
    fn push_bindings() {
        let c = load(&base()).unwrap();
        assert!(c.push.token_secret.is_none() && !c.push.uploads());
        assert!(c.push.signing_key.is_none());
        assert!(!c.push.private);
        assert_eq!(c.push.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);

        // `nix key generate-secret` format: name:base64 of seed and public key.
        let pair = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]).to_keypair_bytes();
        use base64::Engine;
        let key = format!(
            "cache-1:{}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        let mut vars = base();
        vars.insert(names::TOKEN_SECRET, "a-token-secret-of-some-length".into());
        vars.insert(names::SIGNING_KEY, key.clone());
        vars.insert(names::PRIVATE, "1".into());
        vars.insert(names::MAX_UPLOAD_BYTES, "5000".into());
        let c = load(&vars).unwrap();
        assert!(c.push.uploads() && c.push.private);
        assert_eq!(c.push.signing_key.as_ref().unwrap().name, "cache-1");
        assert_eq!(c.push.max_upload_bytes, 5000);
        let shown = format!("{c:?}");
        assert!(!shown.contains("a-token-secret-of-some-length"), "{shown}");
        assert!(!shown.contains(&key[8..]), "{shown}");

        let refused = |name: &'static str, value: &str, also: &[(&'static str, &str)]| {
            let mut vars = base();
            for (k, v) in also {
                vars.insert(k, v.to_string());
            }
            vars.insert(name, value.to_string());
            let err = load(&vars).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{name}={value}: {err}"
            );
            assert!(!err.to_string().contains(value) || value.len() < 3);
        };
        refused(names::PRIVATE, "1", &[]);
        refused(names::PRIVATE, "yes", &[(names::TOKEN_SECRET, "s")]);
        refused(names::SIGNING_KEY, "cache-1:not-a-key", &[]);
        refused(names::MAX_UPLOAD_BYTES, "0", &[]);
        refused(names::MAX_UPLOAD_BYTES, "100MB", &[]);
    }
}
