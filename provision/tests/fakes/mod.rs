//! Strict, stateful fakes of the DigitalOcean and Cloudflare APIs for provision's tests.
//!
//! Each fake listens on its own 127.0.0.1 port, checks every request against the
//! providers' official OpenAPI descriptions (`tests/apis/`), keeps state like the real
//! service, records calls and violations, and can inject faults. Use it from a test with
//! `mod fakes;` and, e.g.:
//!
//! ```ignore
//! let digitalocean = fakes::FakeDigitalOcean::start("do-token");
//! let cloudflare = fakes::FakeCloudflare::start("cf-token", &["example.com"]);
//! // DIGITALOCEAN_API_URL = digitalocean.url(), CLOUDFLARE_API_URL = cloudflare.url()
//! // ... run provision ...
//! assert!(digitalocean.violations().is_empty(), "{:#?}", digitalocean.violations());
//! ```
#![allow(dead_code, unused_imports)]

mod cloudflare;
mod common;
mod digitalocean;
mod http;
mod openapi;
mod pki;

pub use cloudflare::FakeCloudflare;
pub use common::{Call, Fault, FaultKind, TIMEOUT_HOLD};
pub use digitalocean::{FakeDigitalOcean, MANAGED_CERTIFICATE_ID};
pub use openapi::Spec;
