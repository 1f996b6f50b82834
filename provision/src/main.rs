//! `provision`: stands up the bucket, policy, certificates, CDN and CNAME around the Worker.
//!
//! Exit codes: 0 success (for `plan`: nothing would change), 2 `plan` found changes, 1 error.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = provision::cli::Cli::parse();
    match provision::command::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
