//! A Nix binary cache front for Cloudflare Workers, backed by a private DigitalOcean Spaces bucket.
//!
//! Module map. Everything but `edge` is pure (no clock, no network, no randomness): it builds
//! and tests natively, and `provision` reuses it.
//!
//! - [`sigv4`]: AWS Signature Version 4, with the S3 rules (no path normalisation).
//! - [`nix`]: the cache's URL space as one [`nix::Route`] type, Nix base32 hashes, and the
//!   `nix-cache-info` text.
//! - [`policy`]: what the edge stores, for how long, and which status an origin answer becomes.
//! - [`segments`]: objects kept at the edge as fixed-size segments: which segments a Range
//!   touches, their keys, and the checks that keep versions apart.
//! - [`config`]: the Worker's bindings, parsed and checked (once per isolate, by `edge`).
//! - [`landing`]: the page at `/` for people.
//! - [`token`]: access tokens (JWT, HS256): verify, mint, and the one [`token::Grant`] of a
//!   request.
//! - [`push`]: the rules of an upload: methods, body length and encoding, the origin's verdict.
//! - [`narinfo`]: uploaded narinfos: strict parse, Nix's fingerprint, ed25519 signatures.
//! - [`s3`]: the S3 endpoint for Nix's `s3://` store: credentials, SigV4 verification,
//!   operations, S3 error bodies.
//! - `edge` (wasm32 only): the Workers glue: signed fetch to Spaces, Cache API, responses.

pub mod config;
pub mod landing;
pub mod narinfo;
pub mod nix;
pub mod policy;
pub mod push;
pub mod s3;
pub mod segments;
pub mod sigv4;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod edge;
