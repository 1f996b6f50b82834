//! Stateless S3 credentials, minted by `provision token --s3` and recomputed by the Worker.
//!
//! The access key id carries everything the Worker needs, in letters and digits only (what S3
//! clients accept in a SigV4 credential):
//!
//! ```text
//! NSC1 W 001807776000 ci
//! │    │ │            └ the holder's name (1 to 32 letters and digits, for logs)
//! │    │ └ expiry, Unix seconds, 12 digits
//! │    └ scope: R (read) or W (write, which may also read)
//! └ format tag and version
//! ```
//!
//! written without the spaces: `NSC1W001807776000ci`. The secret access key is the lowercase
//! hex HMAC-SHA256 of [`SECRET_LABEL`] and the id under `TOKEN_SECRET`, so nothing is stored:
//! the Worker derives the secret of the id a request names and checks its signature with it.
//! A changed letter of the id changes the secret, so the id cannot be edited to widen its scope
//! or stretch its expiry.
//!
//! Pure: the time is an argument and nothing here logs.

use std::fmt;

use hmac::Mac;

use crate::sigv4::SecretKey;
use crate::token::{Scope, TokenSecret};

/// The id's format tag.
pub const PREFIX: &str = "NSC1";

/// What is MACed before the id, so a derived secret is never a token's signature.
pub const SECRET_LABEL: &str = "nix-spaces-cache s3 secret\n";

/// Longest name carried by an id.
pub const MAX_NAME_LEN: usize = 32;

const EXP_DIGITS: usize = 12;

/// What an access key id says: who, what, until when.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credential {
    pub name: String,
    pub scope: Scope,
    /// Expiry, Unix seconds: valid while `now < expires`.
    pub expires: u64,
}

/// Why an access key id or credential was refused (for logs; a client gets an S3 error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("not an access key id of this cache")]
    Malformed,
    #[error("the name must be 1 to 32 letters and digits")]
    BadName,
    #[error("the expiry does not fit in 12 digits")]
    TooLate,
}

impl fmt::Debug for S3Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credential")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("expires", &self.expires)
            .finish()
    }
}

impl S3Credential {
    /// A credential for `name` (letters and digits), `scope`, valid until `expires`.
    pub fn new(name: &str, scope: Scope, expires: u64) -> Result<S3Credential, CredentialError> {
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || !name.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(CredentialError::BadName);
        }
        if expires >= 10u64.pow(EXP_DIGITS as u32) {
            return Err(CredentialError::TooLate);
        }
        Ok(S3Credential {
            name: name.to_string(),
            scope,
            expires,
        })
    }

    /// The access key id: `NSC1`, `R` or `W`, the expiry in 12 digits, the name.
    pub fn access_key_id(&self) -> String {
        let scope = match self.scope {
            Scope::Read => 'R',
            Scope::Write => 'W',
        };
        format!(
            "{PREFIX}{scope}{:0width$}{}",
            self.expires,
            self.name,
            width = EXP_DIGITS
        )
    }

    /// Parses an access key id, strictly: exactly the shape [`access_key_id`] writes.
    ///
    /// [`access_key_id`]: S3Credential::access_key_id
    pub fn parse(id: &str) -> Result<S3Credential, CredentialError> {
        let rest = id.strip_prefix(PREFIX).ok_or(CredentialError::Malformed)?;
        let scope = match rest.as_bytes().first() {
            Some(b'R') => Scope::Read,
            Some(b'W') => Scope::Write,
            _ => return Err(CredentialError::Malformed),
        };
        let rest = &rest[1..];
        if rest.len() <= EXP_DIGITS {
            return Err(CredentialError::Malformed);
        }
        let (digits, name) = rest.split_at(EXP_DIGITS);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CredentialError::Malformed);
        }
        let expires = digits.parse().map_err(|_| CredentialError::Malformed)?;
        S3Credential::new(name, scope, expires).map_err(|_| CredentialError::Malformed)
    }

    /// True while the credential is valid at `now` (Unix seconds).
    pub fn valid_at(&self, now: u64) -> bool {
        now < self.expires
    }

    /// The secret access key of this credential under `secret`.
    pub fn secret(&self, secret: &TokenSecret) -> SecretKey {
        derive_secret(&self.access_key_id(), secret)
    }
}

/// The secret access key of the access key id `id` under `TOKEN_SECRET`: lowercase hex of
/// HMAC-SHA256(`SECRET_LABEL` + id).
pub fn derive_secret(id: &str, secret: &TokenSecret) -> SecretKey {
    let mut mac = secret.mac();
    mac.update(SECRET_LABEL.as_bytes());
    mac.update(id.as_bytes());
    let bytes: zeroize::Zeroizing<[u8; 32]> =
        zeroize::Zeroizing::new(mac.finalize().into_bytes().into());
    let mut hex = String::with_capacity(64);
    for b in bytes.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    SecretKey::new(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> TokenSecret {
        TokenSecret::new("a test secret of reasonable length, 32+")
    }

    #[test]
    fn ids_round_trip_in_letters_and_digits() {
        let c = S3Credential::new("ci", Scope::Write, 1_807_776_000).unwrap();
        let id = c.access_key_id();
        assert_eq!(id, "NSC1W001807776000ci");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(S3Credential::parse(&id), Ok(c));
        let r = S3Credential::new("Laptop2", Scope::Read, 5).unwrap();
        assert_eq!(r.access_key_id(), "NSC1R000000000005Laptop2");
        assert_eq!(S3Credential::parse(&r.access_key_id()), Ok(r));
        let digits = S3Credential::new("1234", Scope::Read, 99).unwrap();
        assert_eq!(S3Credential::parse(&digits.access_key_id()), Ok(digits));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for id in [
            "",
            "AKIAIOSFODNN7EXAMPLE",
            "NSC1",
            "NSC1W",
            "NSC1W001807776000",
            "NSC1X001807776000ci",
            "NSC2W001807776000ci",
            "NSC1W00180777600Aci",
            "NSC1W001807776000c-i",
            "NSC1W001807776000c i",
            "nsc1W001807776000ci",
            &format!("NSC1W001807776000{}", "a".repeat(33)),
        ] {
            assert_eq!(
                S3Credential::parse(id),
                Err(CredentialError::Malformed),
                "{id:?}"
            );
        }
    }

    #[test]
    fn names_and_expiry_are_checked() {
        assert_eq!(
            S3Credential::new("", Scope::Read, 1),
            Err(CredentialError::BadName)
        );
        assert_eq!(
            S3Credential::new("c-i", Scope::Read, 1),
            Err(CredentialError::BadName)
        );
        assert_eq!(
            S3Credential::new("ci", Scope::Read, 1_000_000_000_000),
            Err(CredentialError::TooLate)
        );
        let c = S3Credential::new("ci", Scope::Read, 100).unwrap();
        assert!(c.valid_at(99));
        assert!(!c.valid_at(100), "expires == now is expired");
    }

    #[test]
    fn secrets_depend_on_every_letter_of_the_id_and_on_token_secret() {
        let c = S3Credential::new("ci", Scope::Read, 1_807_776_000).unwrap();
        let s = c.secret(&secret());
        assert_eq!(s.expose().len(), 64);
        assert!(s.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            s.expose(),
            derive_secret("NSC1R001807776000ci", &secret()).expose()
        );
        let wider = S3Credential::new("ci", Scope::Write, 1_807_776_000).unwrap();
        assert_ne!(wider.secret(&secret()).expose(), s.expose());
        let later = S3Credential::new("ci", Scope::Read, 1_807_776_001).unwrap();
        assert_ne!(later.secret(&secret()).expose(), s.expose());
        assert_ne!(
            c.secret(&TokenSecret::new("another secret of reasonable length"))
                .expose(),
            s.expose()
        );
        assert!(!format!("{s:?}").contains(s.expose()));
    }
}
