//! Secrets and base URLs from the environment, by the names DigitalOcean's and Cloudflare's own
//! Terraform providers use. Secrets become [`Secret`] at once: its `Debug` is redacted and its
//! memory is wiped on drop, so a token cannot reach a log line, an error or a panic by accident.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string: never printed, zeroed when dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself, for the one place that sends it (an auth header, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `DIGITALOCEAN_TOKEN` and the scopes a custom-scoped token needs.
pub const DIGITALOCEAN_TOKEN: (&str, &str) = (
    "DIGITALOCEAN_TOKEN",
    "a DigitalOcean API token with the scopes certificate:create, certificate:read, \
     certificate:delete, cdn:create, cdn:read, cdn:update, cdn:delete, \
     spaces_key:create_credentials, spaces_key:read, spaces_key:delete \
     (Control Panel > API > Generate New Token > Custom Scopes)",
);
/// `SPACES_ACCESS_KEY_ID`.
pub const SPACES_ACCESS_KEY_ID: (&str, &str) = (
    "SPACES_ACCESS_KEY_ID",
    "the access key id of a Spaces key with full access to the bucket (or all buckets \
     while the bucket does not exist yet) (Control Panel > Spaces Object Storage > Access Keys)",
);
/// `SPACES_SECRET_ACCESS_KEY`.
pub const SPACES_SECRET_ACCESS_KEY: (&str, &str) = (
    "SPACES_SECRET_ACCESS_KEY",
    "the secret of the Spaces key named by SPACES_ACCESS_KEY_ID",
);
/// `CLOUDFLARE_API_TOKEN`.
pub const CLOUDFLARE_API_TOKEN: (&str, &str) = (
    "CLOUDFLARE_API_TOKEN",
    "a Cloudflare API token with Zone:Read, DNS:Edit and SSL and Certificates:Edit on the zone, \
     plus Account > Workers Scripts:Edit when CLOUDFLARE_ACCOUNT_ID is set \
     (My Profile > API Tokens > Create Token)",
);

pub const DEFAULT_DIGITALOCEAN_API_URL: &str = "https://api.digitalocean.com";
pub const DEFAULT_CLOUDFLARE_API_URL: &str = "https://api.cloudflare.com/client/v4";

/// Everything provision reads from the environment.
#[derive(Debug, Clone)]
pub struct Env {
    pub digitalocean_token: Secret,
    pub spaces_access_key_id: String,
    pub spaces_secret_access_key: Secret,
    pub cloudflare_token: Secret,
    pub digitalocean_api_url: String,
    pub cloudflare_api_url: String,
    /// `SPACES_ENDPOINT`, when set; otherwise the region's endpoint.
    pub spaces_endpoint: Option<String>,
    pub cloudflare_account_id: Option<String>,
}

/// A required variable is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("{name} is not set: provision needs {needs}")]
pub struct MissingVariable {
    pub name: &'static str,
    pub needs: &'static str,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Result<Self, MissingVariable> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (the process environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MissingVariable> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |(name, needs): (&'static str, &'static str)| {
            get(name).ok_or(MissingVariable { name, needs })
        };
        let url = |name: &str, default: &str| {
            get(name)
                .unwrap_or_else(|| default.to_owned())
                .trim_end_matches('/')
                .to_owned()
        };
        Ok(Self {
            digitalocean_token: Secret::new(required(DIGITALOCEAN_TOKEN)?),
            spaces_access_key_id: required(SPACES_ACCESS_KEY_ID)?,
            spaces_secret_access_key: Secret::new(required(SPACES_SECRET_ACCESS_KEY)?),
            cloudflare_token: Secret::new(required(CLOUDFLARE_API_TOKEN)?),
            digitalocean_api_url: url("DIGITALOCEAN_API_URL", DEFAULT_DIGITALOCEAN_API_URL),
            cloudflare_api_url: url("CLOUDFLARE_API_URL", DEFAULT_CLOUDFLARE_API_URL),
            spaces_endpoint: get("SPACES_ENDPOINT").map(|v| v.trim_end_matches('/').to_owned()),
            cloudflare_account_id: get("CLOUDFLARE_ACCOUNT_ID"),
        })
    }

    /// The S3 endpoint for `region`: `SPACES_ENDPOINT` or `https://<region>.digitaloceanspaces.com`.
    pub fn spaces_endpoint_for(&self, region: &str) -> String {
        self.spaces_endpoint
            .clone()
            .unwrap_or_else(|| default_spaces_endpoint(region))
    }
}

/// `https://<region>.digitaloceanspaces.com`.
/// The Worker's own secrets that provision passes on from its environment when set
/// (DESIGN.md): `TOKEN_SECRET` (access tokens) and `SIGNING_KEY` (narinfo signing).
pub const WORKER_SECRETS_FROM_ENV: [&str; 2] = ["TOKEN_SECRET", "SIGNING_KEY"];

/// Those of [`WORKER_SECRETS_FROM_ENV`] that are set (and not empty), with their values.
pub fn worker_secrets_from_env(
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, Secret)> {
    WORKER_SECRETS_FROM_ENV
        .iter()
        .filter_map(|name| {
            let value = lookup(name).filter(|v| !v.trim().is_empty())?;
            Some((*name, Secret::new(value)))
        })
        .collect()
}

pub fn default_spaces_endpoint(region: &str) -> String {
    format!("https://{region}.digitaloceanspaces.com")
}

/// `SPACES_ENDPOINT` from the process environment without a trailing `/`; `None` when unset
/// or blank (then [`default_spaces_endpoint`] applies).
pub fn spaces_endpoint_var() -> Option<String> {
    std::env::var("SPACES_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("DIGITALOCEAN_TOKEN", "do-token-value"),
            ("SPACES_ACCESS_KEY_ID", "AKID"),
            ("SPACES_SECRET_ACCESS_KEY", "spaces-secret-value"),
            ("CLOUDFLARE_API_TOKEN", "cf-token-value"),
        ])
    }

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Env, MissingVariable> {
        Env::from_lookup(|n| vars.get(n).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_and_debug_redaction() {
        let env = load(&full()).unwrap();
        assert_eq!(env.digitalocean_api_url, "https://api.digitalocean.com");
        assert_eq!(
            env.cloudflare_api_url,
            "https://api.cloudflare.com/client/v4"
        );
        assert_eq!(
            env.spaces_endpoint_for("fra1"),
            "https://fra1.digitaloceanspaces.com"
        );
        let debug = format!("{env:?}");
        for secret in ["do-token-value", "spaces-secret-value", "cf-token-value"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
        assert!(debug.contains("AKID"));
    }

    #[test]
    fn missing_variable_names_itself_and_the_permission() {
        for name in [
            "DIGITALOCEAN_TOKEN",
            "SPACES_ACCESS_KEY_ID",
            "SPACES_SECRET_ACCESS_KEY",
            "CLOUDFLARE_API_TOKEN",
        ] {
            let mut vars = full();
            vars.insert(name, " ");
            let err = load(&vars).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name} is not set")), "{err}");
        }
        let mut vars = full();
        vars.remove("DIGITALOCEAN_TOKEN");
        let err = load(&vars).unwrap_err().to_string();
        assert!(
            err.contains("certificate:create") && err.contains("cdn:update"),
            "{err}"
        );
        let mut vars = full();
        vars.remove("CLOUDFLARE_API_TOKEN");
        let err = load(&vars).unwrap_err().to_string();
        assert!(
            err.contains("DNS:Edit") && err.contains("Workers Scripts:Edit"),
            "{err}"
        );
    }

    #[test]
    fn base_urls_are_overridable_and_trimmed() {
        let mut vars = full();
        vars.insert("DIGITALOCEAN_API_URL", "http://127.0.0.1:1/");
        vars.insert("SPACES_ENDPOINT", "http://127.0.0.1:2");
        vars.insert("CLOUDFLARE_ACCOUNT_ID", "acc");
        let env = load(&vars).unwrap();
        assert_eq!(env.digitalocean_api_url, "http://127.0.0.1:1");
        assert_eq!(env.spaces_endpoint_for("fra1"), "http://127.0.0.1:2");
        assert_eq!(env.cloudflare_account_id.as_deref(), Some("acc"));
    }
}
