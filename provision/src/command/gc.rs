//! `provision gc [--dry-run]`: closure-aware garbage collection of the cache's bucket (see
//! [`crate::gc`]). Keeps every narinfo written within `retention_days` and everything in its
//! closure; deletes the rest once past `gc_grace_hours`; never touches keys outside the cache's
//! route table.
//!
//! It needs only a Spaces key that can list, read and delete in the bucket
//! (`SPACES_ACCESS_KEY_ID`, `SPACES_SECRET_ACCESS_KEY`; `SPACES_ENDPOINT` to point elsewhere):
//! no DigitalOcean or Cloudflare token, so a scheduled job holds nothing else.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nix_spaces_cache::sigv4::Credentials;

use crate::api::spaces::SpacesClient;
use crate::config::Config;
use crate::env::{
    default_spaces_endpoint, spaces_endpoint_var, SPACES_ACCESS_KEY_ID, SPACES_SECRET_ACCESS_KEY,
};
use crate::gc::bucket::SpacesBucket;
use crate::gc::plan::{Keep, Kind, Policy};
use crate::gc::run::{run as collect, Options, Progress, Report};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would go and what stays, with counts and bytes; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Requests in flight at once when reading narinfos and deleting.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

pub fn run(args: &GcArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let bucket = SpacesBucket {
        client: spaces_client(config)?,
        bucket: config.bucket.clone(),
    };
    let options = Options {
        policy: Policy::from_days_and_hours(config.retention_days, config.gc_grace_hours),
        now: super::now()?,
        dry_run: args.dry_run,
        concurrency: usize::from(args.concurrency),
        cache_info: config.cache_info_text(),
    };
    eprintln!(
        "gc of s3://{} ({}): keeping narinfos written in the last {} days and their closures; \
         unreferenced files go after {} hours{}",
        config.bucket,
        bucket.client.endpoint(),
        config.retention_days,
        config.gc_grace_hours,
        if args.dry_run {
            " (dry run: nothing is changed)"
        } else {
            ""
        }
    );
    let report = collect(&bucket, &options, &|p| match p {
        Progress::Listed(n) => eprintln!("  listed {n} objects"),
        Progress::Read { done, of } => eprintln!("  read {done} of {of} narinfos"),
        Progress::Deleted { done, of } => eprintln!("  deleted {done} of {of}"),
    })
    .with_context(|| format!("gc of s3://{}", config.bucket))?;
    print_report(&report, args.dry_run);
    Ok(ExitCode::SUCCESS)
}

/// A client with only the Spaces key of the environment.
fn spaces_client(config: &Config) -> anyhow::Result<SpacesClient> {
    let var = |name: &'static str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .with_context(|| {
                format!(
                    "{name} is not set: gc needs a Spaces key that may list, read, write and \
                     delete objects in bucket {} (SPACES_ACCESS_KEY_ID and \
                     SPACES_SECRET_ACCESS_KEY)",
                    config.bucket
                )
            })
    };
    let key_id = var(SPACES_ACCESS_KEY_ID.0)?;
    let secret = var(SPACES_SECRET_ACCESS_KEY.0)?;
    let endpoint = spaces_endpoint_var().unwrap_or_else(|| default_spaces_endpoint(&config.region));
    SpacesClient::new(&endpoint, &config.region, Credentials::new(key_id, secret))
        .context("SPACES_ENDPOINT")
}

/// Bytes as people read them: `512 B`, `3.4 KiB`, `1.2 MiB`, `5.0 GiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn print_report(report: &Report, dry_run: bool) {
    let plan = &report.plan;
    let closure = &plan.closure;
    let rate = |n: u64, t: std::time::Duration| n as f64 / t.as_secs_f64().max(1e-6);
    println!(
        "listed {} objects in {:.1} s ({:.0}/s), read {} narinfos in {:.1} s ({:.0}/s)",
        report.listed,
        report.listing_time.as_secs_f64(),
        rate(report.listed, report.listing_time),
        report.narinfos_read,
        report.reading_time.as_secs_f64(),
        rate(report.narinfos_read, report.reading_time),
    );
    println!(
        "narinfos: {} written within the retention period, {} kept in all",
        closure.roots,
        closure.kept.len()
    );
    println!(
        "dangling narinfos (their NAR is missing; they break clients): {} found",
        closure.dangling.len()
    );
    if !closure.broken.is_empty() {
        println!(
            "kept paths that refer to a path the cache lacks: {} (push them again to mend: \
             `nix copy --to …` uploads what is missing)",
            closure.broken.len()
        );
        for (path, missing) in closure.broken.iter().take(10) {
            println!("  {path} -> {missing}");
        }
    }
    if !closure.unreadable.is_empty() {
        println!(
            "narinfos that could not be read (kept): {}",
            closure.unreadable.len()
        );
        for (hash, why) in closure.unreadable.iter().take(10) {
            println!("  {hash}.narinfo: {why}");
        }
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    let gone = if dry_run {
        &plan.deleted
    } else {
        &report.deleted
    };
    for kind in Kind::ALL {
        let stays = plan.kept.get(&kind).copied().unwrap_or_default();
        let goes = gone.get(&kind).copied().unwrap_or_default();
        if stays.count + goes.count == 0 {
            continue;
        }
        println!(
            "  {:<13} {verb} {:>8} ({:>12}), keep {:>8} ({:>12})",
            kind.name(),
            goes.count,
            human(goes.bytes),
            stays.count,
            human(stays.bytes)
        );
    }
    let why = |k: Keep| plan.kept_why.get(&k).copied().unwrap_or(0);
    println!(
        "kept: {} in the closure of recent paths, {} referenced by them, {} younger than the grace period, \
         {} unreadable, {} outside the cache's paths",
        why(Keep::Kept),
        why(Keep::Referenced),
        why(Keep::Young),
        why(Keep::Unreadable),
        why(Keep::Foreign)
    );
    if report.dangling_spared > 0 {
        println!(
            "spared {} narinfos whose NAR arrived during the run",
            report.dangling_spared
        );
    }
    if report.cache_info_written {
        println!("nix-cache-info was missing: written again");
    } else if plan.cache_info_missing {
        println!("nix-cache-info is missing: a real run writes it again");
    }
    let bytes: u64 = gone.values().map(|t| t.bytes).sum();
    let count: u64 = gone.values().map(|t| t.count).sum();
    println!(
        "summary: {verb} {count} objects, {} {}",
        human(bytes),
        if dry_run { "would be freed" } else { "freed" }
    );
    if !dry_run {
        println!("deleting took {:.1} s", report.deleting_time.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_are_written_for_people() {
        assert_eq!(super::human(0), "0 B");
        assert_eq!(super::human(1023), "1023 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(877_684), "857.1 KiB");
        assert_eq!(super::human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
