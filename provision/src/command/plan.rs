//! `provision plan [--json]`: what would change, per resource. Read-only. Exit code 0 when
//! nothing would change, 2 when something would (like `terraform plan -detailed-exitcode`).

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::observe::observe;
use crate::plan::{has_changes, plan, Change};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &PlanArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let session = super::Session::open(config)?;
    let world = observe(&session.providers, &session.desired)?;
    let changes = plan(&session.desired, &world.observed);
    let changed = has_changes(&changes);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(&changes))?);
    } else {
        print_plan(config, &changes);
        for note in crate::plan::unmanaged_secret_notes(&session.desired) {
            println!("Note: {note}");
        }
    }
    Ok(if changed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn print_plan(config: &Config, changes: &[Change]) {
    println!(
        "provision plan for {} (bucket {} in {}):",
        config.hostname, config.bucket, config.region
    );
    for c in changes {
        println!("  {c}");
    }
    let count = |a| changes.iter().filter(|c| c.action == a).count();
    use crate::plan::Action::*;
    let waiting = match count(Wait) {
        0 => String::new(),
        n => format!(", {n} waiting"),
    };
    println!(
        "{} to create, {} to update, {} to replace, {} to delete, {} unchanged{waiting}.",
        count(Create),
        count(Update),
        count(Replace),
        count(Delete),
        count(Unchanged)
    );
}

fn json(changes: &[Change]) -> serde_json::Value {
    serde_json::json!({
        "changes": changes.iter().map(|c| serde_json::json!({
            "resource": c.resource.to_string(),
            "detail": c.resource,
            "action": c.action,
            "symbol": c.action.symbol(),
            "reason": c.reason,
        })).collect::<Vec<_>>(),
        "has_changes": has_changes(changes),
    })
}
