//! `provision apply [--key-out PATH]`: observe, plan, then perform each change in order,
//! printing it as it happens. Running it again changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::execute::Executor;
use crate::observe::observe;
use crate::plan::{has_changes, plan, Action};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Also write a newly generated origin private key to PATH (created with mode 0600; it
    /// must not exist). Without it the key exists in memory only.
    #[arg(long, value_name = "PATH")]
    pub key_out: Option<PathBuf>,
}

pub fn run(args: &ApplyArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let session = super::Session::open(config)?;
    let world = observe(&session.providers, &session.desired)?;
    let changes = plan(&session.desired, &world.observed);
    if !has_changes(&changes) {
        println!(
            "provision apply for {}: nothing to do, everything is in shape.",
            config.hostname
        );
        super::plan::print_plan(config, &changes);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "provision apply for {} (bucket {} in {}):",
        config.hostname, config.bucket, config.region
    );
    let mut executor = Executor::new(
        &session,
        &world,
        &changes,
        config.key_type,
        config.certificate_validity_days,
        args.key_out.clone(),
    );
    let mut done = 0;
    let mut waiting = Vec::new();
    for change in &changes {
        println!("  {change}");
        if change.action == Action::Wait {
            waiting.push(change);
        } else if change.is_change() {
            if let Err(e) = executor.run(change) {
                eprintln!(
                    "apply stopped after {done} change(s); run `provision apply` again to finish \
                     (it picks up what is already there)"
                );
                return Err(e);
            }
            done += 1;
        }
    }
    executor.finish(&changes);
    println!("Apply complete: {done} change(s) made.");
    for note in executor
        .notes
        .iter()
        .chain(&crate::plan::unmanaged_secret_notes(&session.desired))
    {
        println!("Note: {note}");
    }
    if !waiting.is_empty() {
        println!(
            "Waiting: {} step(s) could not run yet and were skipped, not failed:",
            waiting.len()
        );
        for change in &waiting {
            println!("  {}: {}", change.resource, change.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}
