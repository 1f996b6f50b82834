//! `provision destroy [--yes]`: removes what provision made, in reverse order: the Worker's
//! key (and its stored secrets), the CNAME, the CDN endpoint, the certificates, the
//! `nix-cache-info` object and the bucket. It asks first unless `--yes`, and refuses to touch
//! anything while the bucket holds objects other than `nix-cache-info`.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::api::{cloudflare as cf, digitalocean as dig, spaces, ApiError};
use crate::config::Config;
use crate::observe::{self, observe, CACHE_INFO_KEY, WORKER_SECRET_NAMES};
use crate::plan::{destroy_plan, Desired, Resource, WorkerSecretsTarget};

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(args: &DestroyArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let session = super::Session::open(config)?;
    let (p, d) = (&session.providers, &session.desired);
    let world = observe(p, d)?;
    let bucket = &d.bucket;

    let cache_info_versions = if world.observed.bucket_exists {
        let versions = cache_info_versions(&p.spaces, bucket)?;
        let objects = p
            .spaces
            .count_objects(bucket)
            .with_context(|| format!("destroy: bucket {bucket}: ListObjectsV2"))?;
        let others = objects - u64::from(world.observed.cache_info.is_some()).min(objects);
        if others > 0 {
            bail!(
                "destroy: bucket {bucket} still holds {others} object(s) besides {CACHE_INFO_KEY}; \
                 provision does not delete a cache's contents. Empty the bucket first, then run \
                 destroy again. Nothing was deleted."
            );
        }
        let all_versions = p
            .spaces
            .count_object_versions(bucket)
            .with_context(|| format!("destroy: bucket {bucket}: ListObjectVersions"))?;
        let others = all_versions.saturating_sub(versions.len() as u64);
        if others > 0 {
            bail!(
                "destroy: bucket {bucket} still holds {others} old object version(s) or delete \
                 marker(s) besides {CACHE_INFO_KEY}'s (versioning keeps them); remove them first. \
                 Nothing was deleted."
            );
        }
        versions
    } else {
        Vec::new()
    };

    let changes = destroy_plan(d, &world.observed);
    if changes.is_empty() {
        println!(
            "provision destroy for {}: nothing to destroy.",
            config.hostname
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "provision destroy for {} (bucket {bucket} in {}):",
        config.hostname, config.region
    );
    for c in &changes {
        println!("  {c}");
    }
    if !args.yes && !confirm(changes.len())? {
        bail!("destroy: not confirmed; nothing was deleted");
    }
    for c in &changes {
        println!("  deleting {}", c.resource);
        match &c.resource {
            Resource::OldWorkerKey { access_key } => {
                gone(
                    p.digitalocean.send(&dig::DeleteSpacesKey { access_key }),
                    || format!("destroy: spaces key {access_key}: delete"),
                )?;
                remove_worker_secrets(p, d)?;
            }
            Resource::DnsRecord { id: Some(id) } => gone(
                p.cloudflare.send(&cf::DeleteDnsRecord {
                    zone_id: &world.zone_id,
                    id,
                }),
                || format!("destroy: dns record {id}: delete"),
            )?,
            Resource::CdnEndpoint { id: Some(id) } => {
                gone(p.digitalocean.send(&dig::DeleteCdnEndpoint { id }), || {
                    format!("destroy: cdn endpoint {id}: delete")
                })?
            }
            Resource::OldDoCertificate { id, name } => {
                gone(p.digitalocean.send(&dig::DeleteCertificate { id }), || {
                    format!("destroy: digitalocean certificate {id} ({name}): delete")
                })?
            }
            Resource::OldOriginCertificate { id } => gone(
                p.cloudflare.send(&cf::RevokeOriginCertificate { id }),
                || format!("destroy: origin certificate {id}: revoke"),
            )?,
            Resource::CacheInfo => {
                delete_cache_info(&p.spaces, bucket, &cache_info_versions)?;
            }
            Resource::Bucket => p
                .spaces
                .delete_bucket(bucket)
                .with_context(|| format!("destroy: bucket {bucket}: DeleteBucket"))?,
            other => bail!("destroy: {other}: not something destroy removes"),
        }
    }
    println!("Destroy complete: {} resource(s) removed.", changes.len());
    Ok(ExitCode::SUCCESS)
}

fn confirm(n: usize) -> anyhow::Result<bool> {
    println!("Delete these {n} resource(s)? Only 'yes' confirms:");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("destroy: reading the confirmation")?;
    Ok(line.trim() == "yes")
}

fn gone<T>(result: Result<T, ApiError>, what: impl FnOnce() -> String) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if observe::already_gone(&e) => {
            println!("    already gone");
            Ok(())
        }
        Err(e) => Err(e).with_context(what),
    }
}

fn remove_worker_secrets(p: &observe::Providers, d: &Desired) -> anyhow::Result<()> {
    match &d.worker_secrets {
        WorkerSecretsTarget::Cloudflare { account_id, script } => {
            for name in WORKER_SECRET_NAMES {
                gone(
                    p.cloudflare.send(&cf::DeleteWorkerSecret {
                        account_id,
                        script,
                        name,
                    }),
                    || format!("destroy: Worker {script}: secret {name}: delete"),
                )?;
            }
            println!(
                "    removed Worker {script}'s secrets {}",
                WORKER_SECRET_NAMES.join(" and ")
            );
        }
        WorkerSecretsTarget::File(path) => match std::fs::remove_file(path) {
            Ok(()) => println!("    removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("destroy: removing {}", path.display()))
            }
        },
    }
    Ok(())
}

/// Every version and delete marker of `nix-cache-info` (a versioned bucket keeps them all).
fn cache_info_versions(s3: &spaces::SpacesClient, bucket: &str) -> anyhow::Result<Vec<String>> {
    Ok(s3
        .list_object_versions(bucket, Some(CACHE_INFO_KEY))
        .with_context(|| format!("destroy: s3://{bucket}/{CACHE_INFO_KEY}: ListObjectVersions"))?
        .into_iter()
        .filter(|v| v.key == CACHE_INFO_KEY)
        .map(|v| v.version_id)
        .collect())
}

fn delete_cache_info(
    s3: &spaces::SpacesClient,
    bucket: &str,
    versions: &[String],
) -> anyhow::Result<()> {
    let context = || format!("destroy: s3://{bucket}/{CACHE_INFO_KEY}: DeleteObject");
    s3.delete_object(bucket, CACHE_INFO_KEY)
        .with_context(context)?;
    // In a versioned bucket the delete above adds a marker; remove every version and marker.
    let mut all: Vec<String> = versions.to_vec();
    for id in cache_info_versions(s3, bucket)? {
        if !all.contains(&id) {
            all.push(id);
        }
    }
    for id in all.iter().filter(|id| id.as_str() != "null") {
        s3.delete_object_version(bucket, CACHE_INFO_KEY, id)
            .with_context(context)?;
    }
    Ok(())
}
