//! One file per subcommand, each with its args struct and `run()`.

pub mod apply;
pub mod destroy;
pub mod gc;
pub mod output;
pub mod plan;
pub mod token;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::{Config, Overrides};
use crate::env::Env;
use crate::observe::Providers;
use crate::plan::Desired;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Token(args) = &cli.command {
        // A token needs no config; the hostname (for the netrc line) comes from it if it has one.
        let hostname = Config::load(
            &cli.config,
            cli.config_given(),
            &Overrides::from(&cli.flags),
        )
        .ok()
        .map(|c| c.hostname)
        .or_else(|| cli.flags.hostname.clone());
        return token::run(args, hostname.as_deref());
    }
    let config = Config::load(
        &cli.config,
        cli.config_given(),
        &Overrides::from(&cli.flags),
    )?;
    match cli.command {
        Command::Plan(args) => plan::run(&args, &config),
        Command::Apply(args) => apply::run(&args, &config),
        Command::Destroy(args) => destroy::run(&args, &config),
        Command::Output(args) => output::run(&args, &config),
        Command::Gc(args) => gc::run(&args, &config),
        Command::Token(_) => unreachable!("answered above"),
    }
}

/// What `plan`, `apply` and `destroy` share: the environment, the clients, the desired state.
#[derive(Debug)]
pub struct Session {
    pub env: Env,
    pub providers: Providers,
    pub desired: Desired,
    /// `TOKEN_SECRET` and `SIGNING_KEY` when set, for the Worker's secrets.
    pub worker_env_secrets: Vec<(&'static str, crate::env::Secret)>,
}

impl Session {
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let env = Env::from_process()?;
        let providers = Providers::new(&env, &config.region)?;
        let worker_env_secrets = crate::env::worker_secrets_from_env(|n| std::env::var(n).ok());
        let names = worker_env_secrets
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect();
        let desired =
            Desired::from_config(config, env.cloudflare_account_id.as_deref(), names, now()?);
        Ok(Self {
            env,
            providers,
            desired,
            worker_env_secrets,
        })
    }
}

/// The current time, Unix seconds. `PROVISION_NOW` replaces the clock for certificate
/// rotation decisions (to rehearse a rotation); signing always uses the real clock.
pub fn now() -> anyhow::Result<i64> {
    if let Ok(v) = std::env::var("PROVISION_NOW") {
        return v
            .trim()
            .parse()
            .with_context(|| format!("PROVISION_NOW={v:?} is not Unix seconds"));
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(since.as_secs() as i64)
}
