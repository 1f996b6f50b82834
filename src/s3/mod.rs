//! The Worker as an S3 endpoint for Nix's own `s3://` store: pure decisions only (no clock, no
//! network, no randomness); the Workers glue (`edge::s3`) applies them.
//!
//! - [`credentials`]: stateless S3 credentials: an access key id that carries a name, a scope
//!   and an expiry in letters and digits, and a secret derived from it under `TOKEN_SECRET`.
//! - [`verify`]: SigV4 header authentication of a request as received, with the workspace's
//!   signer ([`crate::sigv4`]).
//! - [`operation`]: which S3 operation a request is (object GET/HEAD/PUT and the multipart
//!   calls Nix makes), its key checked against the route table, and what the origin's answers
//!   mean.
//! - [`error`]: S3's XML error bodies and their statuses.
//!
//! The endpoint is path-style, `/<SPACES_BUCKET>/<key>`: the Worker's bucket is the origin's,
//! so the origin's answers (an `UploadId`, a part's `ETag`) pass through unchanged.

pub mod credentials;
pub mod error;
pub mod operation;
pub mod verify;

pub use credentials::S3Credential;
pub use error::{ErrorCode, S3Error};
pub use operation::Operation;
