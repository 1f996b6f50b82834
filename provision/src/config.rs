//! The desired shape of the cache's infrastructure: a small TOML file plus flags, with defaults
//! that match the seed's Terraform. Parsed and checked once, here; the rest of the program
//! trusts [`Config`].

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use serde::Deserialize;

use crate::certs::KeyType;

/// Validities Cloudflare's Origin CA accepts, in days.
pub const ORIGIN_CA_VALIDITIES: [u32; 7] = [7, 30, 90, 365, 730, 1095, 5475];
/// TTLs DigitalOcean's CDN accepts, in seconds.
pub const CDN_TTLS: [u32; 5] = [60, 600, 3600, 86400, 604800];

/// Which certificate the CDN endpoint serves on the custom domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CdnCertificate {
    /// Attach the origin certificate; when DigitalOcean refuses a Cloudflare Origin CA
    /// certificate, use its managed certificate instead and say so.
    Auto,
    /// Always the origin certificate; a refusal is an error.
    OriginCa,
    /// Always DigitalOcean's managed certificate (`needs-cloudflare-cert`).
    Managed,
}

impl CdnCertificate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::OriginCa => "origin-ca",
            Self::Managed => "managed",
        }
    }
}

/// The config file, every field optional (defaults apply).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub hostname: Option<String>,
    pub zone: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub versioning: Option<bool>,
    pub public_reads: Option<bool>,
    pub retention_days: Option<u32>,
    pub gc_grace_hours: Option<u32>,
    /// Only token holders read (the Worker's `PRIVATE = "1"`); the bucket must not be public.
    pub private: Option<bool>,
    #[serde(default)]
    pub lifecycle: FileLifecycle,
    #[serde(default)]
    pub cdn: FileCdn,
    #[serde(default)]
    pub certificate: FileCertificate,
    #[serde(default)]
    pub cache_info: FileCacheInfo,
    #[serde(default)]
    pub worker: FileWorker,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLifecycle {
    /// No longer honoured: refused with the reason (see [`Config::resolve`]).
    pub expiration_days: Option<u32>,
    pub noncurrent_days: Option<u32>,
    pub abort_multipart_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCdn {
    pub ttl: Option<u32>,
    pub certificate: Option<CdnCertificate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCertificate {
    pub key_type: Option<KeyType>,
    pub validity_days: Option<u32>,
    pub rotate_within_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCacheInfo {
    pub store_dir: Option<String>,
    pub want_mass_query: Option<bool>,
    pub priority: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWorker {
    pub name: Option<String>,
    pub secrets_file: Option<PathBuf>,
}

/// Flags that override the file, field by field (`cli::ConfigFlags` fills this).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub hostname: Option<String>,
    pub zone: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub versioning: Option<bool>,
    pub public_reads: Option<bool>,
    pub private: Option<bool>,
    pub retention_days: Option<u32>,
    pub gc_grace_hours: Option<u32>,
    pub noncurrent_days: Option<u32>,
    pub abort_multipart_days: Option<u32>,
    pub cdn_ttl: Option<u32>,
    pub cdn_certificate: Option<CdnCertificate>,
    pub key_type: Option<KeyType>,
    pub certificate_validity_days: Option<u32>,
    pub rotate_within_days: Option<u32>,
    pub store_dir: Option<String>,
    pub want_mass_query: Option<bool>,
    pub priority: Option<u32>,
    pub worker_name: Option<String>,
    pub worker_secrets_file: Option<PathBuf>,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The cache's public name, e.g. `cache.example.com`.
    pub hostname: String,
    /// The Cloudflare zone that holds `hostname`, e.g. `example.com`; when unset, the
    /// longest of the account's zones that is a suffix of the hostname.
    pub zone: Option<String>,
    pub region: String,
    pub bucket: String,
    pub versioning: bool,
    /// Grant anonymous `s3:GetObject` (as the seed); off for a Worker-only cache.
    pub public_reads: bool,
    /// A private cache: the Worker serves only token holders (`PRIVATE = "1"`), so the
    /// bucket may not be readable anonymously (`public_reads` off; it defaults to off) and
    /// has no CDN endpoint (`[cdn]` settings are refused).
    pub private: bool,
    /// `provision gc` keeps the narinfos written within this many days, with their closures.
    pub retention_days: u32,
    /// `provision gc` deletes what nothing kept refers to only once it is this many hours old.
    pub gc_grace_hours: u32,
    /// The lifecycle rule deletes versions this many days after they stopped being current.
    pub noncurrent_days: u32,
    pub abort_multipart_days: u32,
    pub cdn_ttl: u32,
    pub cdn_certificate: CdnCertificate,
    pub key_type: KeyType,
    pub certificate_validity_days: u32,
    pub rotate_within_days: u32,
    pub store_dir: String,
    pub want_mass_query: bool,
    pub priority: u32,
    /// The Worker's script name, for storing its Spaces key as Worker secrets.
    pub worker_name: Option<String>,
    /// Where the Worker's Spaces key goes when it cannot be stored through Cloudflare's API.
    pub worker_secrets_file: PathBuf,
}

impl Config {
    /// Reads `path` (a missing file is fine when it is the default path and flags give the
    /// rest) and applies `overrides`.
    pub fn load(path: &Path, path_given: bool, overrides: &Overrides) -> anyhow::Result<Self> {
        let file = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str::<FileConfig>(&text).with_context(|| {
                format!("config: {}: not a valid provision config", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path_given => {
                FileConfig::default()
            }
            Err(e) => return Err(e).with_context(|| format!("config: reading {}", path.display())),
        };
        Self::resolve(file, overrides)
    }

    /// Merges file and flags (flags win) over the defaults, then checks the result.
    pub fn resolve(file: FileConfig, o: &Overrides) -> anyhow::Result<Self> {
        let Some(hostname) = o.hostname.clone().or(file.hostname) else {
            bail!(
                "config: hostname is not set (e.g. hostname = \"cache.example.com\" or --hostname)"
            );
        };
        if let Some(days) = file.lifecycle.expiration_days {
            bail!(
                "config: lifecycle.expiration_days = {days} is no longer supported: expiring \
                 objects by age breaks closures (a narinfo can point at an older NAR). Remove it; \
                 set retention_days = {days} instead and run `provision gc` daily (see README)"
            );
        }
        let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
        let zone = o
            .zone
            .clone()
            .or(file.zone)
            .map(|z| z.trim_end_matches('.').to_ascii_lowercase());
        let private = o.private.or(file.private).unwrap_or(false);
        let public_reads = o.public_reads.or(file.public_reads);
        if private && public_reads == Some(true) {
            bail!(
                "config: private = true but public_reads = true: a private cache's bucket may \
                 not be readable anonymously (its objects would be public through the bucket \
                 and the CDN); set public_reads = false or leave it out"
            );
        }
        if private {
            refuse_cdn_settings(&file.cdn, o)?;
        }
        let config = Self {
            zone,
            private,
            region: o
                .region
                .clone()
                .or(file.region)
                .unwrap_or_else(|| "fra1".into()),
            bucket: o
                .bucket
                .clone()
                .or(file.bucket)
                .unwrap_or_else(|| "nix-store".into()),
            versioning: o.versioning.or(file.versioning).unwrap_or(true),
            public_reads: public_reads.unwrap_or(!private),
            retention_days: o.retention_days.or(file.retention_days).unwrap_or(30),
            gc_grace_hours: o.gc_grace_hours.or(file.gc_grace_hours).unwrap_or(24),
            noncurrent_days: o
                .noncurrent_days
                .or(file.lifecycle.noncurrent_days)
                .unwrap_or(7),
            abort_multipart_days: o
                .abort_multipart_days
                .or(file.lifecycle.abort_multipart_days)
                .unwrap_or(1),
            cdn_ttl: o.cdn_ttl.or(file.cdn.ttl).unwrap_or(3600),
            cdn_certificate: o
                .cdn_certificate
                .or(file.cdn.certificate)
                .unwrap_or(CdnCertificate::Auto),
            key_type: o
                .key_type
                .or(file.certificate.key_type)
                .unwrap_or(KeyType::EcdsaP256),
            certificate_validity_days: o
                .certificate_validity_days
                .or(file.certificate.validity_days)
                .unwrap_or(365),
            rotate_within_days: o
                .rotate_within_days
                .or(file.certificate.rotate_within_days)
                .unwrap_or(30),
            store_dir: o
                .store_dir
                .clone()
                .or(file.cache_info.store_dir)
                .unwrap_or_else(|| "/nix/store".into()),
            want_mass_query: o
                .want_mass_query
                .or(file.cache_info.want_mass_query)
                .unwrap_or(true),
            priority: o.priority.or(file.cache_info.priority).unwrap_or(40),
            worker_name: o
                .worker_name
                .clone()
                .or(file.worker.name)
                .filter(|n| !n.is_empty()),
            worker_secrets_file: o
                .worker_secrets_file
                .clone()
                .or(file.worker.secrets_file)
                .unwrap_or_else(|| PathBuf::from("worker-secrets.json")),
            hostname,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            is_hostname(&self.hostname) && self.hostname.contains('.'),
            "config: hostname {:?} is not a DNS name",
            self.hostname
        );
        if let Some(zone) = &self.zone {
            ensure!(
                self.hostname == *zone || self.hostname.ends_with(&format!(".{zone}")),
                "config: hostname {} is not inside zone {zone}",
                self.hostname,
            );
        }
        ensure!(
            !self.region.is_empty()
                && self
                    .region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "config: region {:?} is not a Spaces region slug such as fra1 or nyc3",
            self.region
        );
        ensure!(
            (3..=63).contains(&self.bucket.len())
                && self
                    .bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !self.bucket.starts_with('-')
                && !self.bucket.ends_with('-'),
            "config: bucket {:?} must be 3-63 lowercase letters, digits or dashes",
            self.bucket
        );
        ensure!(
            !nix_spaces_cache::s3::operation::ROUTE_SEGMENTS.contains(&self.bucket.as_str()),
            "config: bucket {:?} is named like a path of the cache ({}): the Worker's S3 endpoint \
             answers /<bucket>/<key>, which must not be a cache path; choose another name",
            self.bucket,
            nix_spaces_cache::s3::operation::ROUTE_SEGMENTS.join(", ")
        );
        ensure!(
            self.retention_days >= 1,
            "config: retention_days must be at least 1"
        );
        ensure!(
            self.gc_grace_hours >= 1,
            "config: gc_grace_hours must be at least 1 (a push in flight has its NAR before its narinfo)"
        );
        ensure!(
            self.noncurrent_days >= 1,
            "config: lifecycle.noncurrent_days must be at least 1"
        );
        ensure!(
            self.abort_multipart_days >= 1,
            "config: lifecycle.abort_multipart_days must be at least 1"
        );
        ensure!(
            CDN_TTLS.contains(&self.cdn_ttl),
            "config: cdn.ttl {} is not one DigitalOcean accepts: {CDN_TTLS:?}",
            self.cdn_ttl
        );
        ensure!(
            ORIGIN_CA_VALIDITIES.contains(&self.certificate_validity_days),
            "config: certificate.validity_days {} is not one Cloudflare's Origin CA issues: {ORIGIN_CA_VALIDITIES:?}",
            self.certificate_validity_days
        );
        ensure!(
            self.rotate_within_days < self.certificate_validity_days,
            "config: certificate.rotate_within_days ({}) must be shorter than validity_days ({})",
            self.rotate_within_days,
            self.certificate_validity_days
        );
        ensure!(
            self.store_dir.starts_with('/') && !self.store_dir.contains(char::is_whitespace),
            "config: cache_info.store_dir {:?} must be an absolute path",
            self.store_dir
        );
        if let Some(name) = &self.worker_name {
            ensure!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "config: worker.name {name:?} is not a Worker script name"
            );
        }
        Ok(())
    }

    /// The Spaces origin the CDN fronts: `<bucket>.<region>.digitaloceanspaces.com`.
    pub fn origin(&self) -> String {
        format!("{}.{}.digitaloceanspaces.com", self.bucket, self.region)
    }

    /// The CDN's own name for the origin: `<bucket>.<region>.cdn.digitaloceanspaces.com`.
    pub fn cdn_endpoint(&self) -> String {
        format!("{}.{}.cdn.digitaloceanspaces.com", self.bucket, self.region)
    }

    /// The `nix-cache-info` object's text, as the Worker renders it.
    pub fn cache_info_text(&self) -> String {
        nix_spaces_cache::nix::CacheInfo {
            store_dir: self.store_dir.clone(),
            want_mass_query: self.want_mass_query,
            priority: self.priority,
        }
        .render()
    }

    /// The name of the Worker's read-only Spaces key.
    pub fn worker_key_name(&self) -> String {
        format!("{}-worker-read", self.bucket)
    }

    /// Prefix of the DigitalOcean certificates that hold this hostname's origin certificates:
    /// the hostname with `-` doubled and `.` as `-`, so names that only look alike stay apart
    /// (`cache.example.com` → `cache-example-com-origin-`, `cache-example.com` →
    /// `cache--example-com-origin-`).
    pub fn do_certificate_prefix(&self) -> String {
        format!(
            "{}-origin-",
            self.hostname.replace('-', "--").replace('.', "-")
        )
    }
}

/// A private cache has no CDN endpoint (it would serve the bucket to anyone), so a `[cdn]`
/// setting given with `private = true`, in the file or as a flag, is a mistake to point out
/// rather than a value to ignore.
fn refuse_cdn_settings(file: &FileCdn, o: &Overrides) -> anyhow::Result<()> {
    let mut set = Vec::new();
    match (o.cdn_ttl, file.ttl) {
        (Some(ttl), _) => set.push(format!("--cdn-ttl {ttl}")),
        (None, Some(ttl)) => set.push(format!("cdn.ttl = {ttl}")),
        (None, None) => {}
    }
    match (o.cdn_certificate, file.certificate) {
        (Some(c), _) => set.push(format!("--cdn-certificate {}", c.as_str())),
        (None, Some(c)) => set.push(format!("cdn.certificate = \"{}\"", c.as_str())),
        (None, None) => {}
    }
    if set.is_empty() {
        return Ok(());
    }
    bail!(
        "config: private = true but {} is set: a private cache has no CDN endpoint (it would \
         serve the bucket to anyone; the Worker alone serves a private cache). Remove the [cdn] \
         section and the --cdn-* flags, or set private = false",
        set.join(" and ")
    )
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_cache_has_no_public_bucket() {
        let private = Overrides {
            private: Some(true),
            ..with_hostname()
        };
        let c = Config::resolve(FileConfig::default(), &private).unwrap();
        assert!(c.private);
        assert!(!c.public_reads, "public_reads defaults to off");
        let both = Overrides {
            public_reads: Some(true),
            ..private.clone()
        };
        let err = Config::resolve(FileConfig::default(), &both).unwrap_err();
        assert!(
            err.to_string()
                .contains("private = true but public_reads = true"),
            "{err}"
        );
        let file: FileConfig = toml::from_str("private = true\npublic_reads = true").unwrap();
        assert!(Config::resolve(file, &with_hostname()).is_err());
        let file: FileConfig = toml::from_str("private = true").unwrap();
        let c = Config::resolve(file, &with_hostname()).unwrap();
        assert!(c.private && !c.public_reads);
        let public = Config::resolve(FileConfig::default(), &with_hostname()).unwrap();
        assert!(!public.private && public.public_reads);
    }

    #[test]
    fn a_private_cache_refuses_cdn_settings() {
        let private = Overrides {
            private: Some(true),
            ..with_hostname()
        };
        // The defaults are fine: a private cache simply has no CDN.
        assert!(Config::resolve(FileConfig::default(), &private).is_ok());
        let cases: [(&str, Overrides, &str); 5] = [
            ("[cdn]\nttl = 3600", private.clone(), "cdn.ttl = 3600"),
            (
                "[cdn]\ncertificate = \"managed\"",
                private.clone(),
                "cdn.certificate = \"managed\"",
            ),
            (
                "[cdn]\nttl = 600\ncertificate = \"auto\"",
                private.clone(),
                "cdn.ttl = 600 and cdn.certificate = \"auto\"",
            ),
            (
                "",
                Overrides {
                    cdn_ttl: Some(60),
                    cdn_certificate: Some(CdnCertificate::OriginCa),
                    ..private.clone()
                },
                "--cdn-ttl 60 and --cdn-certificate origin-ca",
            ),
            (
                "private = true\n[cdn]\nttl = 86400",
                with_hostname(),
                "cdn.ttl = 86400",
            ),
        ];
        for (text, o, named) in cases {
            let file: FileConfig = toml::from_str(text).unwrap();
            let err = Config::resolve(file, &o).unwrap_err().to_string();
            assert!(
                err.starts_with("config: private = true but ")
                    && err.contains(&format!("{named} is set"))
                    && err.contains("Remove the [cdn] section and the --cdn-* flags")
                    && err.contains("or set private = false"),
                "{text}: {err}"
            );
        }
        // The same settings are fine for a public cache, and a flag turning private off wins.
        let file: FileConfig = toml::from_str("private = true\n[cdn]\nttl = 600").unwrap();
        let public = Overrides {
            private: Some(false),
            ..with_hostname()
        };
        assert_eq!(Config::resolve(file, &public).unwrap().cdn_ttl, 600);
    }

    fn with_hostname() -> Overrides {
        Overrides {
            hostname: Some("cache.example.com".into()),
            ..Overrides::default()
        }
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = Config::resolve(FileConfig::default(), &with_hostname()).unwrap();
        // Found from the account's zones at run time.
        assert_eq!(c.zone, None);
        assert_eq!(
            (c.region.as_str(), c.bucket.as_str()),
            ("fra1", "nix-store")
        );
        assert_eq!((c.noncurrent_days, c.abort_multipart_days), (7, 1));
        assert_eq!((c.retention_days, c.gc_grace_hours), (30, 24));
        assert!(c.versioning && c.public_reads);
        assert_eq!(c.cdn_ttl, 3600);
        assert_eq!(c.cdn_certificate, CdnCertificate::Auto);
        assert_eq!(c.key_type, KeyType::EcdsaP256);
        assert_eq!(
            (c.certificate_validity_days, c.rotate_within_days),
            (365, 30)
        );
        assert_eq!(
            c.cache_info_text(),
            "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
        );
        assert_eq!(c.origin(), "nix-store.fra1.digitaloceanspaces.com");
        assert_eq!(
            c.cdn_endpoint(),
            "nix-store.fra1.cdn.digitaloceanspaces.com"
        );
        assert_eq!(c.do_certificate_prefix(), "cache-example-com-origin-");
        let look_alike = Config::resolve(
            FileConfig::default(),
            &Overrides {
                hostname: Some("cache-example.com".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(
            look_alike.do_certificate_prefix(),
            "cache--example-com-origin-"
        );
        assert!(!look_alike
            .do_certificate_prefix()
            .starts_with(&c.do_certificate_prefix()));
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str(
            r#"
            hostname = "nix.example.org"
            region = "ams3"
            public_reads = false
            [lifecycle]
            noncurrent_days = 90
            [cdn]
            certificate = "managed"
            [certificate]
            key_type = "rsa-2048"
            [cache_info]
            priority = 10
            [worker]
            name = "nix-cache"
            "#,
        )
        .unwrap();
        let o = Overrides {
            region: Some("nyc3".into()),
            priority: Some(30),
            ..Overrides::default()
        };
        let c = Config::resolve(file, &o).unwrap();
        assert_eq!(c.hostname, "nix.example.org");
        assert_eq!(c.zone, None, "found from the account's zones at run time");
        assert_eq!(c.region, "nyc3");
        assert!(!c.public_reads);
        assert_eq!(c.noncurrent_days, 90);
        assert_eq!(c.cdn_certificate, CdnCertificate::Managed);
        assert_eq!(c.key_type, KeyType::Rsa2048);
        assert_eq!(c.priority, 30);
        assert_eq!(c.worker_name.as_deref(), Some("nix-cache"));
    }

    #[test]
    fn bad_values_are_refused_with_the_field_name() {
        let cases: [(&str, &str); 11] = [
            (
                "hostname = \"cache.example.com\"\nbucket = \"nar\"",
                "named like a path of the cache",
            ),
            (
                "hostname = \"cache.example.com\"\nbucket = \"build-trace-v2\"",
                "named like a path of the cache",
            ),
            (
                "hostname = \"cache.example.com\"\nzone = \"other.com\"",
                "not inside zone",
            ),
            (
                "hostname = \"cache.example.com\"\n[lifecycle]\nexpiration_days = 30",
                "lifecycle.expiration_days = 30 is no longer supported: expiring objects by age \
                 breaks closures",
            ),
            (
                "hostname = \"cache.example.com\"\nretention_days = 0",
                "retention_days must be at least 1",
            ),
            (
                "hostname = \"cache.example.com\"\ngc_grace_hours = 0",
                "gc_grace_hours must be at least 1",
            ),
            (
                "hostname = \"cache.example.com\"\n[cdn]\nttl = 5",
                "cdn.ttl",
            ),
            (
                "hostname = \"cache.example.com\"\n[certificate]\nvalidity_days = 100",
                "validity_days",
            ),
            (
                "hostname = \"cache.example.com\"\nbucket = \"Nix_Store\"",
                "bucket",
            ),
            ("hostname = \"cache example.com\"", "not a DNS name"),
            ("region = \"fra1\"", "hostname is not set"),
        ];
        for (text, expected) in cases {
            let file: FileConfig = toml::from_str(text).unwrap();
            let err = Config::resolve(file, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert!(toml::from_str::<FileConfig>("hostnme = \"x\"").is_err());
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../provision.example.toml");
        let file: FileConfig = toml::from_str(text).unwrap();
        let c = Config::resolve(file, &Overrides::default()).unwrap();
        let defaults = Config::resolve(FileConfig::default(), &with_hostname()).unwrap();
        assert_eq!(c, defaults, "the example file documents the defaults");
    }
}
