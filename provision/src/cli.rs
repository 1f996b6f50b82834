//! The command line: `provision [--config FILE] [FLAGS] <plan|apply|destroy|output>`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::certs::KeyType;
use crate::config::{CdnCertificate, Overrides};

/// Stands up and keeps in shape the Spaces bucket, certificates, CDN and DNS around the Nix
/// cache Worker. Secrets come from the environment: DIGITALOCEAN_TOKEN, SPACES_ACCESS_KEY_ID,
/// SPACES_SECRET_ACCESS_KEY, CLOUDFLARE_API_TOKEN (and optionally CLOUDFLARE_ACCOUNT_ID).
#[derive(Debug, Parser)]
#[command(name = "provision", version)]
pub struct Cli {
    /// The config file (see provision.example.toml).
    #[arg(long, global = true, default_value = "provision.toml")]
    pub config: PathBuf,
    #[command(flatten)]
    pub flags: ConfigFlags,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether `--config` was given explicitly (then the file must exist).
    pub fn config_given(&self) -> bool {
        self.config != std::path::Path::new("provision.toml")
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what would change; exit 0 when nothing would, 2 when something would.
    Plan(crate::command::plan::PlanArgs),
    /// Converge: create or update what differs, printing each step.
    Apply(crate::command::apply::ApplyArgs),
    /// Remove everything provision made, in reverse order.
    Destroy(crate::command::destroy::DestroyArgs),
    /// Print what to do next: nix.conf lines, wrangler.toml route, push command.
    Output(crate::command::output::OutputArgs),
    /// Delete what no recent path needs: closure-aware garbage collection of the bucket.
    Gc(crate::command::gc::GcArgs),
    /// Mint an access token for the Worker from TOKEN_SECRET in the environment.
    Token(crate::command::token::TokenArgs),
}

/// Flags that override the config file, one per field.
#[derive(Debug, Args, Default, Clone)]
pub struct ConfigFlags {
    /// The cache's hostname, e.g. cache.example.com.
    #[arg(long, global = true)]
    pub hostname: Option<String>,
    /// The Cloudflare zone holding the hostname.
    #[arg(long, global = true)]
    pub zone: Option<String>,
    /// Spaces region slug (default fra1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Bucket name (default nix-store).
    #[arg(long, global = true)]
    pub bucket: Option<String>,
    /// Bucket versioning (default true).
    #[arg(long, global = true)]
    pub versioning: Option<bool>,
    /// Grant anonymous reads (default true; false for a private cache).
    #[arg(long, global = true)]
    pub public_reads: Option<bool>,
    /// A private cache: only token holders read (the Worker's PRIVATE = "1"); no CDN endpoint.
    #[arg(long, global = true)]
    pub private: Option<bool>,
    /// gc keeps narinfos written within this many days, with their closures (default 30).
    #[arg(long, global = true)]
    pub retention_days: Option<u32>,
    /// gc deletes unreferenced objects only once this many hours old (default 24).
    #[arg(long, global = true)]
    pub gc_grace_hours: Option<u32>,
    /// Days until a version that is no longer current is deleted (default 7).
    #[arg(long, global = true)]
    pub noncurrent_days: Option<u32>,
    /// Days until unfinished multipart uploads are aborted (default 1).
    #[arg(long, global = true)]
    pub abort_multipart_days: Option<u32>,
    /// CDN TTL in seconds (default 3600; refused with --private true: no CDN).
    #[arg(long, global = true)]
    pub cdn_ttl: Option<u32>,
    /// The CDN's certificate (default auto; refused with --private true: no CDN).
    #[arg(long, global = true, value_enum)]
    pub cdn_certificate: Option<CdnCertificate>,
    /// Origin key type (default ecdsa-p256).
    #[arg(long, global = true, value_enum)]
    pub key_type: Option<KeyType>,
    /// Origin certificate validity in days (default 365).
    #[arg(long, global = true)]
    pub certificate_validity_days: Option<u32>,
    /// Rotate the certificate when it expires within this many days (default 30).
    #[arg(long, global = true)]
    pub rotate_within_days: Option<u32>,
    /// nix-cache-info StoreDir (default /nix/store).
    #[arg(long, global = true)]
    pub store_dir: Option<String>,
    /// nix-cache-info WantMassQuery (default true).
    #[arg(long, global = true)]
    pub want_mass_query: Option<bool>,
    /// nix-cache-info Priority (default 40).
    #[arg(long, global = true)]
    pub priority: Option<u32>,
    /// The Worker's script name.
    #[arg(long, global = true)]
    pub worker_name: Option<String>,
    /// Where to write the Worker's key when not storing it through Cloudflare's API.
    #[arg(long, global = true)]
    pub worker_secrets_file: Option<PathBuf>,
}

impl From<&ConfigFlags> for Overrides {
    fn from(f: &ConfigFlags) -> Self {
        Overrides {
            hostname: f.hostname.clone(),
            zone: f.zone.clone(),
            region: f.region.clone(),
            bucket: f.bucket.clone(),
            versioning: f.versioning,
            public_reads: f.public_reads,
            retention_days: f.retention_days,
            gc_grace_hours: f.gc_grace_hours,
            noncurrent_days: f.noncurrent_days,
            private: f.private,
            abort_multipart_days: f.abort_multipart_days,
            cdn_ttl: f.cdn_ttl,
            cdn_certificate: f.cdn_certificate,
            key_type: f.key_type,
            certificate_validity_days: f.certificate_validity_days,
            rotate_within_days: f.rotate_within_days,
            store_dir: f.store_dir.clone(),
            want_mass_query: f.want_mass_query,
            priority: f.priority,
            worker_name: f.worker_name.clone(),
            worker_secrets_file: f.worker_secrets_file.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        Cli::command_for_tests().debug_assert();
        let cli = Cli::try_parse_from([
            "provision",
            "--config",
            "x.toml",
            "plan",
            "--json",
            "--hostname",
            "cache.example.com",
            "--versioning",
            "false",
            "--key-type",
            "rsa-2048",
            "--cdn-certificate",
            "origin-ca",
        ])
        .unwrap();
        assert!(cli.config_given());
        assert_eq!(cli.flags.versioning, Some(false));
        assert_eq!(cli.flags.key_type, Some(KeyType::Rsa2048));
        assert_eq!(cli.flags.cdn_certificate, Some(CdnCertificate::OriginCa));
        assert!(matches!(cli.command, Command::Plan(ref a) if a.json));
        let cli = Cli::try_parse_from(["provision", "apply", "--key-out", "k.pem"]).unwrap();
        assert!(!cli.config_given());
        assert!(matches!(cli.command, Command::Apply(ref a) if a.key_out.is_some()));
        assert!(Cli::try_parse_from(["provision", "destroy", "--yes"]).is_ok());
        let cli =
            Cli::try_parse_from(["provision", "gc", "--dry-run", "--retention-days", "7"]).unwrap();
        assert!(matches!(cli.command, Command::Gc(ref a) if a.dry_run && a.concurrency == 16));
        assert_eq!(cli.flags.retention_days, Some(7));
        assert!(Cli::try_parse_from(["provision", "gc", "--concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["provision", "frobnicate"]).is_err());
    }

    impl Cli {
        fn command_for_tests() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
