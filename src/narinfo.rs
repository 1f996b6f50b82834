//! Uploaded narinfos: a strict parse, the checks against the URL they are put at, Nix's
//! fingerprint, and ed25519 signatures with a Nix secret key (`SIGNING_KEY`).
//!
//! Pure: bytes in, a value or a reason out; the key is an argument. A real narinfo, as Nix 2.8
//! uploads it with `nix copy --to http://…` (from `scripts/seed-cache.sh`):
//!
//! ```text
//! StorePath: /nix/store/nzpi9m84lghhlm4xwgvls1pi36axvx11-nix-spaces-cache-seed-top
//! URL: nar/0syzjx510fxfh6iyfsw53z29ag72kr9jgg91pa5h8j1a93a00b13.nar.xz
//! Compression: xz
//! FileHash: sha256:0syzjx510fxfh6iyfsw53z29ag72kr9jgg91pa5h8j1a93a00b13
//! FileSize: 308
//! NarHash: sha256:0v13zs5ksa8qvdm9i71i5ch11kkri7b2ikhsnmf2v6si21y2zdns
//! NarSize: 640
//! References: gnwriw8dnp33mxhqqmx3vbwgqv4p75nl-busybox s6ahqjngxxpcmiww3mhys49187q2gzcl-nix-spaces-cache-seed-mid
//! Deriver: 76bhaw794s3bzzkgzjhvp75h4qxzq1rx-nix-spaces-cache-seed-top.drv
//! ```
//!
//! and the `Sig` line Nix added when it signed it with a throwaway key (the Worker adds its
//! own the same way with `SIGNING_KEY`: ed25519 over the fingerprint below):
//!
//! ```text
//! Sig: nix-spaces-cache-local-1:bRbv5OAvSKtiiWdk5tnG8NeUPFJMeaGeOilfrENrESSHpWIxpVrMxfqlMJU43mqGisbxR5vXgFd0+9a5/gjoBw==
//! ```
//!
//! What is accepted: `Key: value` lines, each key once (`Sig` may repeat), no other keys;
//! `StorePath` in the cache's store dir with the hash of the URL it is put at; `URL` a NAR
//! route named by `FileHash`, with the suffix `Compression` calls for; SHA-256 hashes in Nix
//! base32; sizes above zero; `References` bare store path names; `Deriver` a `.drv` name;
//! `CA`; `Sig` as `name:base64` of 64 bytes; at most [`MAX_NARINFO_BYTES`].
//!
//! A signature covers Nix's fingerprint of the path,
//! `1;<store path>;<nar hash>;<nar size>;<sorted full reference paths, comma-separated>`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use zeroize::Zeroizing;

use crate::nix::{
    Compression, NarFileHash, Route, StorePathHash, StorePathName, NIX_BASE32_ALPHABET,
};

/// The largest narinfo the Worker takes.
pub const MAX_NARINFO_BYTES: usize = 64 * 1024;

/// Length of a SHA-256 in Nix base32.
const SHA256_BASE32_LEN: usize = 52;

/// Why a narinfo was refused; `Display` is the reason given to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NarInfoError {
    #[error("narinfo larger than {MAX_NARINFO_BYTES} bytes")]
    TooLarge,
    #[error("narinfo is not UTF-8 text")]
    NotText,
    #[error("narinfo line {0} is not `Key: value`")]
    BadLine(usize),
    #[error("narinfo field {0} appears twice")]
    Duplicate(String),
    #[error("narinfo field {0} is not one this cache takes")]
    UnknownField(String),
    #[error("narinfo field {0} is missing")]
    Missing(&'static str),
    #[error("narinfo field {field} is invalid: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

fn invalid(field: &'static str, reason: &'static str) -> NarInfoError {
    NarInfoError::Invalid { field, reason }
}

/// A narinfo that passed [`NarInfo::parse`]; `text` is exactly what was uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfo {
    pub text: String,
    /// The full store path, e.g. `/nix/store/<hash>-<name>`.
    pub store_path: String,
    /// The NAR's route, from `URL`.
    pub nar: Route,
    pub compression: Compression,
    pub file_size: u64,
    /// `sha256:<base32>`, as in the fingerprint.
    pub nar_hash: String,
    pub nar_size: u64,
    /// Bare store path names.
    pub references: Vec<String>,
    /// `(key name, base64 signature)` of each `Sig`.
    pub sigs: Vec<(String, String)>,
    store_dir: String,
}

impl NarInfo {
    /// Parses `bytes` put at `/<hash>.narinfo` in a cache for `store_dir`.
    pub fn parse(
        bytes: &[u8],
        hash: &StorePathHash,
        store_dir: &str,
    ) -> Result<NarInfo, NarInfoError> {
        if bytes.len() > MAX_NARINFO_BYTES {
            return Err(NarInfoError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| NarInfoError::NotText)?;
        let mut fields: Vec<(&str, &str)> = Vec::new();
        let mut sigs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
                .ok_or(NarInfoError::BadLine(i + 1))?;
            if value.bytes().any(|b| b.is_ascii_control()) {
                return Err(NarInfoError::BadLine(i + 1));
            }
            match key {
                "StorePath" | "URL" | "Compression" | "FileHash" | "FileSize" | "NarHash"
                | "NarSize" | "References" | "Deriver" | "CA" => {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(NarInfoError::Duplicate(key.to_string()));
                    }
                    fields.push((key, value));
                }
                "Sig" => sigs.push(parse_sig(value)?),
                other => {
                    let shown: String = other.chars().take(40).collect();
                    return Err(NarInfoError::UnknownField(shown));
                }
            }
        }
        let field = |name: &'static str| {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or(NarInfoError::Missing(name))
        };

        let store_path = field("StorePath")?;
        let base = store_path
            .strip_prefix(store_dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or(invalid("StorePath", "not in this cache's store dir"))?;
        let name = StorePathName::parse(base).ok_or(invalid("StorePath", "not a store path"))?;
        if name.hash() != hash.as_str() {
            return Err(invalid(
                "StorePath",
                "its hash is not the one in the URL it was put at",
            ));
        }

        let url = field("URL")?;
        let nar = Route::parse(&format!("/{url}")).map_err(|_| invalid("URL", "not a NAR path"))?;
        let Route::Nar {
            hash: ref nar_file_hash,
            compression: url_compression,
        } = nar
        else {
            return Err(invalid("URL", "not a NAR path"));
        };
        let compression = Compression::ALL
            .into_iter()
            .find(|c| c.name() == field("Compression").unwrap_or("\0"))
            .ok_or_else(|| match field("Compression") {
                Err(e) => e,
                Ok(_) => invalid("Compression", "unknown compression"),
            })?;
        if compression != url_compression {
            return Err(invalid("Compression", "does not match the URL's suffix"));
        }
        let file_hash = sha256_field(field("FileHash")?, "FileHash")?;
        if file_hash != nar_file_hash.as_str() {
            return Err(invalid("FileHash", "does not match the URL"));
        }
        let file_size = size_field(field("FileSize")?, "FileSize")?;
        let nar_hash = sha256_field(field("NarHash")?, "NarHash")?;
        let nar_size = size_field(field("NarSize")?, "NarSize")?;
        let references: Vec<String> = field("References")?
            .split(' ')
            .filter(|r| !r.is_empty())
            .map(|r| {
                StorePathName::parse(r)
                    .map(|n| n.as_str().to_string())
                    .ok_or(invalid("References", "not bare store path names"))
            })
            .collect::<Result<_, _>>()?;
        if let Ok(deriver) = field("Deriver") {
            StorePathName::parse_drv(deriver)
                .ok_or(invalid("Deriver", "not a derivation's store path name"))?;
        }
        if let Ok(ca) = field("CA") {
            if ca.is_empty() || !ca.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("CA", "not a content address"));
            }
        }
        Ok(NarInfo {
            text: text.to_string(),
            store_path: store_path.to_string(),
            nar: nar.clone(),
            compression,
            file_size,
            nar_hash: format!("sha256:{nar_hash}"),
            nar_size,
            references,
            sigs,
            store_dir: store_dir.to_string(),
        })
    }

    /// Nix's fingerprint: what a `Sig` signs.
    pub fn fingerprint(&self) -> String {
        let mut refs: Vec<String> = self
            .references
            .iter()
            .map(|r| format!("{}/{r}", self.store_dir))
            .collect();
        refs.sort();
        format!(
            "1;{};{};{};{}",
            self.store_path,
            self.nar_hash,
            self.nar_size,
            refs.join(",")
        )
    }

    /// Whether a `Sig` by the key named `name` is there.
    pub fn signed_by(&self, name: &str) -> bool {
        self.sigs.iter().any(|(n, _)| n == name)
    }

    /// The narinfo with `key`'s signature added, unless one by that key name is there already
    /// (then it is returned unchanged). Other signatures are kept.
    pub fn with_signature(&self, key: &SigningKey) -> String {
        if self.signed_by(&key.name) {
            return self.text.clone();
        }
        let mut text = self.text.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("Sig: {}\n", key.sign(&self.fingerprint())));
        text
    }

    /// Whether a `Sig` by `key` verifies over this narinfo's fingerprint.
    pub fn verify(&self, key: &PublicKey) -> bool {
        self.sigs
            .iter()
            .filter(|(name, _)| *name == key.name)
            .any(|(_, sig)| key.verify(&self.fingerprint(), sig))
    }
}

/// `sha256:<52 chars of Nix base32>`; returns the base32 part.
fn sha256_field<'a>(value: &'a str, field: &'static str) -> Result<&'a str, NarInfoError> {
    let hash = value
        .strip_prefix("sha256:")
        .ok_or(invalid(field, "expected sha256:<Nix base32>"))?;
    if NarFileHash::parse(hash).is_none() || decode_base32(hash, 32).is_none() {
        return Err(invalid(field, "expected sha256:<Nix base32>"));
    }
    debug_assert_eq!(hash.len(), SHA256_BASE32_LEN);
    Ok(hash)
}

fn size_field(value: &str, field: &'static str) -> Result<u64, NarInfoError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || value.starts_with('0') {
        return Err(invalid(field, "expected a size above zero"));
    }
    value
        .parse()
        .map_err(|_| invalid(field, "expected a size above zero"))
}

fn parse_sig(value: &str) -> Result<(String, String), NarInfoError> {
    let bad = || invalid("Sig", "expected name:base64 of 64 bytes");
    let (name, sig) = value.split_once(':').ok_or_else(bad)?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let bytes = STANDARD.decode(sig).map_err(|_| bad())?;
    if bytes.len() != 64 {
        return Err(bad());
    }
    Ok((name.to_string(), sig.to_string()))
}

/// Decodes Nix base32 (Nix's own order: the last character holds the lowest bits) into
/// `len` bytes; `None` for a wrong length, letter or overflowing high bits.
pub fn decode_base32(s: &str, len: usize) -> Option<Vec<u8>> {
    if s.len() != (len * 8 - 1) / 5 + 1 {
        return None;
    }
    let mut out = vec![0u8; len];
    for (n, c) in s.bytes().rev().enumerate() {
        let digit = NIX_BASE32_ALPHABET.bytes().position(|a| a == c)? as u16;
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < len {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// Encodes bytes in Nix base32.
pub fn encode_base32(bytes: &[u8]) -> String {
    let len = (bytes.len() * 8 - 1) / 5 + 1;
    let alphabet = NIX_BASE32_ALPHABET.as_bytes();
    (0..len)
        .rev()
        .map(|n| {
            let b = n * 5;
            let (i, j) = (b / 8, b % 8);
            let low = bytes[i] >> j;
            let high = if i + 1 < bytes.len() {
                bytes[i + 1].checked_shl(8 - j as u32).unwrap_or(0)
            } else {
                0
            };
            alphabet[((low | high) & 0x1f) as usize] as char
        })
        .collect()
}

/// The hex SHA-256 a NAR file must hash to: its file name's Nix base32, decoded.
pub fn nar_file_sha256_hex(hash: &NarFileHash) -> String {
    let bytes = decode_base32(hash.as_str(), 32).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a key was refused; never shows the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected name:base64 as `nix key generate-secret` prints it")]
    Format,
    #[error("the key's public half does not match its secret half")]
    Mismatch,
}

/// A Nix secret key (`name:base64` of 64 bytes: the ed25519 seed, then the public key).
/// `Debug` shows only the name.
pub struct SigningKey {
    pub name: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}:<redacted>)", self.name)
    }
}

impl Clone for SigningKey {
    fn clone(&self) -> SigningKey {
        SigningKey {
            name: self.name.clone(),
            key: self.key.clone(),
        }
    }
}

impl SigningKey {
    /// Parses `name:base64` as `nix key generate-secret` makes it.
    pub fn parse(s: &str) -> Result<SigningKey, KeyError> {
        let (name, key) = s.trim().split_once(':').ok_or(KeyError::Format)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::Format);
        }
        let bytes = Zeroizing::new(STANDARD.decode(key).map_err(|_| KeyError::Format)?);
        let pair: &[u8; 64] = bytes.as_slice().try_into().map_err(|_| KeyError::Format)?;
        let key =
            ed25519_dalek::SigningKey::from_keypair_bytes(pair).map_err(|_| KeyError::Mismatch)?;
        Ok(SigningKey {
            name: name.to_string(),
            key,
        })
    }

    /// `name:base64(signature)`, the value of a `Sig` line.
    pub fn sign(&self, fingerprint: &str) -> String {
        let sig = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, STANDARD.encode(sig.to_bytes()))
    }

    /// The matching public key, as `nix key convert-secret-to-public` prints it.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }
}

/// A Nix public key, `name:base64` of 32 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    pub fn parse(s: &str) -> Result<PublicKey, KeyError> {
        let (name, key) = s.trim().split_once(':').ok_or(KeyError::Format)?;
        let bytes = STANDARD.decode(key).map_err(|_| KeyError::Format)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Format)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Format)?;
        Ok(PublicKey {
            name: name.to_string(),
            key,
        })
    }

    /// Whether `sig` (base64) is this key's signature of `fingerprint`.
    pub fn verify(&self, fingerprint: &str, sig: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(sig) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verify(fingerprint.as_bytes(), &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, STANDARD.encode(self.key.as_bytes()))
    }
}

#[cfg(test)]
mod tests;
