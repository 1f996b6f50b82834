//! `provision`: stands up and keeps in shape everything around the Nix cache Worker: the
//! Spaces bucket and its settings, the `nix-cache-info` object, the origin certificate, the
//! DigitalOcean CDN endpoint and the proxied Cloudflare CNAME.
//!
//! Module map:
//! - [`config`]: the TOML file and flags, checked once; [`env`]: secrets and base URLs.
//! - [`plan`]: the pure `plan(desired, observed) -> Vec<Change>`.
//! - [`observe`]: asks the providers what exists; [`execute`]: performs a plan's changes.
//! - [`api`]: one module per provider, each call a value, all sent by one sender.
//! - [`certs`]: origin key, CSR, certificate expiry; keys live in memory only.
//! - [`bucket_policy`]: the bucket policy provision writes, compared by meaning.
//! - [`gc`]: closure-aware garbage collection of the bucket: pure decisions, then a thin loop.
//! - [`cli`] and [`command`]: one file per subcommand.

pub mod api;
pub mod bucket_policy;
pub mod certs;
pub mod cli;
pub mod command;
pub mod config;
pub mod env;
pub mod execute;
pub mod gc;
pub mod observe;
pub mod plan;
