//! `provision output [--json]`: what a person needs next, from the config alone (no API
//! calls): the substituter URL, `nix.conf` lines, the `wrangler.toml` route and vars, the
//! `wrangler secret` commands, and the commands that push (through the Worker, or straight to
//! the bucket).

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::env::default_spaces_endpoint;
use crate::observe::WORKER_SECRET_NAMES;

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Everything `output` prints.
#[derive(Debug, serde::Serialize)]
pub struct Output {
    pub substituter: String,
    pub nix_conf: Vec<String>,
    pub wrangler_toml: String,
    pub wrangler_secret_commands: Vec<String>,
    /// How to push: through the Worker (HTTPS with a token; its S3 endpoint for big NARs),
    /// or straight to the bucket.
    pub push_commands: Vec<String>,
}

impl Output {
    pub fn new(config: &Config, spaces_endpoint: Option<&str>) -> Self {
        let substituter = format!("https://{}", config.hostname);
        let endpoint = spaces_endpoint
            .map(str::to_owned)
            .unwrap_or_else(|| default_spaces_endpoint(&config.region));
        let host = endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_owned();
        // Without a configured zone, wrangler finds the route's zone from its pattern.
        let route = match &config.zone {
            Some(zone) => format!(
                "{{ pattern = \"{}/*\", zone_name = \"{zone}\" }}",
                config.hostname
            ),
            None => format!("\"{}/*\"", config.hostname),
        };
        let wrangler_toml = format!(
            "routes = [{route}]\n\
             \n\
             [vars]\n\
             SPACES_ENDPOINT = \"{endpoint}\"\n\
             SPACES_BUCKET = \"{bucket}\"\n\
             SPACES_REGION = \"{region}\"\n\
             STORE_DIR = \"{store_dir}\"\n\
             WANT_MASS_QUERY = \"{wmq}\"\n\
             PRIORITY = \"{priority}\"\n{private}",
            bucket = config.bucket,
            region = config.region,
            store_dir = config.store_dir,
            wmq = u8::from(config.want_mass_query),
            priority = config.priority,
            private = if config.private {
                "PRIVATE = \"1\"\n"
            } else {
                ""
            },
        );
        let name = config
            .worker_name
            .as_deref()
            .map(|n| format!(" --name {n}"))
            .unwrap_or_default();
        let mut wrangler_secret_commands: Vec<String> = WORKER_SECRET_NAMES
            .iter()
            .map(|s| format!("npx wrangler secret put {s}{name}"))
            .collect();
        wrangler_secret_commands.push(format!(
            "npx wrangler secret bulk {}{name}",
            config.worker_secrets_file.display()
        ));
        Self {
            nix_conf: vec![
                format!("extra-substituters = {substituter}"),
                "extra-trusted-public-keys = <your cache's public signing key, e.g. \
                 cache.example.com-1:...>"
                    .to_owned(),
            ],
            substituter,
            wrangler_toml,
            wrangler_secret_commands,
            push_commands: vec![
                "cargo run -p provision -- token --name ci --scope write --expires-in 90d   \
                 # with TOKEN_SECRET set; put the netrc line it prints in the file nix.conf's \
                 netrc-file names"
                    .to_owned(),
                format!("nix copy --to https://{} ./result", config.hostname),
                "cargo run -p provision -- token --s3 --name ci --scope write --expires-in 90d   \
                 # NARs over the zone's body limit: export the two lines it prints (Nix 2.33 and later)"
                    .to_owned(),
                format!(
                    "nix copy --to 's3://{bucket}?endpoint=https://{hostname}&multipart-upload=true\
                     &multipart-chunk-size=67108864&multipart-threshold=67108864' ./result",
                    bucket = config.bucket,
                    hostname = config.hostname
                ),
                format!(
                    "nix copy --to 's3://{bucket}?endpoint={host}&region={region}&secret-key=cache.secret' \
                     ./result   # or straight to the bucket, with a read-write Spaces key as \
                     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
                    bucket = config.bucket,
                    region = config.region
                ),
            ],
        }
    }
}

pub fn run(args: &OutputArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let endpoint = crate::env::spaces_endpoint_var();
    let out = Output::new(config, endpoint.as_deref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Substituter URL: {}\n", out.substituter);
    println!("nix.conf (or nix.settings in NixOS):");
    for line in &out.nix_conf {
        println!("  {line}");
    }
    println!("\nwrangler.toml (the Worker answers on the proxied hostname):");
    for line in out.wrangler_toml.lines() {
        println!("  {line}");
    }
    println!("\nThe Worker's secrets (provision apply stores them itself when CLOUDFLARE_ACCOUNT_ID and worker.name are set; otherwise it writes {}):", config.worker_secrets_file.display());
    for c in &out.wrangler_secret_commands {
        println!("  {c}");
    }
    println!("\nPush build results through the Worker (README, Pushing):");
    for c in &out.push_commands {
        println!("  {c}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};

    #[test]
    fn output_for_the_defaults() {
        let config = Config::resolve(
            FileConfig::default(),
            &Overrides {
                hostname: Some("cache.example.com".into()),
                worker_name: Some("nix-cache".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        let out = Output::new(&config, None);
        assert_eq!(out.substituter, "https://cache.example.com");
        assert_eq!(
            out.nix_conf[0],
            "extra-substituters = https://cache.example.com"
        );
        assert!(out
            .wrangler_toml
            .contains("routes = [\"cache.example.com/*\"]"));
        let zoned = Config::resolve(
            FileConfig::default(),
            &Overrides {
                hostname: Some("cache.example.co.uk".into()),
                zone: Some("example.co.uk".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(Output::new(&zoned, None)
            .wrangler_toml
            .contains("pattern = \"cache.example.co.uk/*\", zone_name = \"example.co.uk\""));
        assert!(out
            .wrangler_toml
            .contains("SPACES_ENDPOINT = \"https://fra1.digitaloceanspaces.com\""));
        assert_eq!(
            out.wrangler_secret_commands[1],
            "npx wrangler secret put SPACES_SECRET_ACCESS_KEY --name nix-cache"
        );
        assert_eq!(
            out.push_commands[1],
            "nix copy --to https://cache.example.com ./result"
        );
        assert_eq!(
            out.push_commands[3],
            "nix copy --to 's3://nix-store?endpoint=https://cache.example.com&multipart-upload=true\
             &multipart-chunk-size=67108864&multipart-threshold=67108864' ./result"
        );
        assert!(out.push_commands[4].starts_with(
            "nix copy --to 's3://nix-store?endpoint=fra1.digitaloceanspaces.com&region=fra1&secret-key=cache.secret' ./result"
        ));
        assert!(!out.wrangler_toml.contains("PRIVATE"));
    }

    #[test]
    fn a_private_cache_sets_private_among_the_vars() {
        let config = Config::resolve(
            FileConfig::default(),
            &Overrides {
                hostname: Some("cache.example.com".into()),
                private: Some(true),
                ..Overrides::default()
            },
        )
        .unwrap();
        let out = Output::new(&config, None);
        let vars = out.wrangler_toml.split("[vars]").nth(1).unwrap();
        assert!(vars.contains("\nPRIVATE = \"1\"\n"), "{vars}");
        // A private cache has no CDN endpoint, so nothing names one.
        let all = serde_json::to_string(&out).unwrap();
        assert!(!all.contains(".cdn.digitaloceanspaces.com"), "{all}");
    }
}
