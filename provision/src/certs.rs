//! The origin key, its certificate signing request, and certificate expiry.
//!
//! The private key lives in memory only, inside [`Zeroizing`] buffers that are wiped on drop.
//! It reaches disk only through [`write_private_key`], which creates the file with mode 0600
//! (never a chmod after the fact) and refuses to overwrite an existing file.

use std::fmt;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use zeroize::Zeroizing;

/// The origin key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (Cloudflare request type `origin-ecc`).
    #[serde(rename = "ecdsa-p256")]
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// RSA 2048 with SHA-256, as the seed (Cloudflare request type `origin-rsa`).
    #[serde(rename = "rsa-2048")]
    #[value(name = "rsa-2048")]
    Rsa2048,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
        }
    }

    /// Cloudflare Origin CA's `request_type` for a CSR with this key.
    pub fn origin_ca_request_type(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "origin-ecc",
            Self::Rsa2048 => "origin-rsa",
        }
    }
}

/// A freshly generated origin key. `Debug` never shows it.
pub struct OriginKey {
    key_type: KeyType,
    pkcs8_pem: Zeroizing<String>,
    key_pair: rcgen::KeyPair,
}

impl fmt::Debug for OriginKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginKey")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl OriginKey {
    /// Generates a new key from the operating system's random source.
    pub fn generate(key_type: KeyType) -> anyhow::Result<Self> {
        match key_type {
            KeyType::EcdsaP256 => {
                let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .context("generating an ECDSA P-256 key")?;
                let pkcs8_pem = Zeroizing::new(key_pair.serialize_pem());
                Ok(Self {
                    key_type,
                    pkcs8_pem,
                    key_pair,
                })
            }
            KeyType::Rsa2048 => {
                use rsa::pkcs8::{EncodePrivateKey, LineEnding};
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                    .context("generating an RSA 2048 key")?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .context("encoding the RSA key as PKCS#8")?;
                let pkcs8_pem = Zeroizing::new(pem.as_str().to_owned());
                let key_pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(
                    &pkcs8_pem,
                    &rcgen::PKCS_RSA_SHA256,
                )
                .context("loading the RSA key for signing")?;
                Ok(Self {
                    key_type,
                    pkcs8_pem,
                    key_pair,
                })
            }
        }
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The PKCS#8 PEM, for the one request that uploads it to DigitalOcean and for `--key-out`.
    pub fn private_key_pem(&self) -> &str {
        &self.pkcs8_pem
    }

    /// A PEM certificate signing request for `hostname` (subject CN and the only SAN), with
    /// provision's mark as the subject's organization: Cloudflare lists each Origin CA
    /// certificate with its CSR, which is how provision tells its own certificates from
    /// others for the same hostname.
    pub fn csr(&self, hostname: &str) -> anyhow::Result<String> {
        let mut params = rcgen::CertificateParams::new(vec![hostname.to_owned()])
            .with_context(|| format!("building a CSR for {hostname}"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, hostname);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, OWNER_MARK);
        let csr = params
            .serialize_request(&self.key_pair)
            .with_context(|| format!("signing the CSR for {hostname}"))?;
        csr.pem().context("encoding the CSR as PEM")
    }
}

/// The subject organization of every CSR provision makes.
pub const OWNER_MARK: &str = "nix-spaces-cache provision";

/// Whether a PEM CSR's subject carries [`OWNER_MARK`] as its organization. Anything that is
/// not a readable CSR is not provision's.
pub fn csr_has_owner_mark(pem: &str) -> bool {
    use x509_parser::prelude::FromDer;
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(pem.trim().as_bytes()) else {
        return false;
    };
    let Ok((_, csr)) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
    else {
        return false;
    };
    let subject = &csr.certification_request_info.subject;
    let marked = subject
        .iter_organization()
        .any(|o| o.as_str() == Ok(OWNER_MARK));
    marked
}

/// The SHA-1 fingerprint of a PEM certificate's DER, lower-case hex (DigitalOcean's
/// `sha1_fingerprint`).
pub fn sha1_fingerprint(pem: &str) -> anyhow::Result<String> {
    use sha1::Digest;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let digest = sha1::Sha1::digest(&block.contents);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes the private key to `path`, created with mode 0600; an existing file is not touched.
pub fn write_private_key(path: &Path, key: &OriginKey) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "--key-out: creating {} (it must not exist yet)",
            path.display()
        )
    })?;
    file.write_all(key.private_key_pem().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("--key-out: writing {}", path.display()))
}

/// Writes `contents` (a secret) to `path` with mode 0600, replacing any earlier file. The file
/// is created fresh so it never exists with looser permissions, even briefly.
pub fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// A certificate's facts that provision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    /// The subject's DNS names (SAN, or CN when there is no SAN).
    pub dns_names: Vec<String>,
    pub issuer: String,
}

/// Reads `notAfter`, names and issuer from a PEM certificate (the first one in the text).
pub fn certificate_facts(pem: &str) -> anyhow::Result<CertificateFacts> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                dns_names.push((*n).to_owned());
            }
        }
    }
    if dns_names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                dns_names.push(cn.to_owned());
            }
        }
    }
    Ok(CertificateFacts {
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
        issuer: cert.issuer().to_string(),
    })
}

/// Parses an RFC 3339 time as DigitalOcean and Cloudflare write them, to Unix seconds.
pub fn parse_rfc3339(text: &str) -> anyhow::Result<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    Ok(t.unix_timestamp())
}

/// Parses Cloudflare Origin CA's `expires_on`, to Unix seconds.
///
/// The live API writes Go's `time.Time.String()` layout,
/// `2006-01-02 15:04:05.999999999 -0700 MST` (e.g. `2039-03-24 01:48:00 +0000 UTC`:
/// fractional seconds only when not zero, then the numeric offset, then the zone's
/// abbreviation, which Go prints as `+03` for a zone without one). cloudflare-go's
/// `OriginCACertificate.UnmarshalJSON` reads that layout first and RFC 3339 as a fallback;
/// so does this. The offset decides the instant; the abbreviation is only checked for shape.
pub fn parse_origin_ca_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = parse_go_time(text) {
        return Ok(t);
    }
    parse_rfc3339(text).map_err(|_| {
        anyhow::anyhow!(
            "{text:?} is neither Go's time layout (2006-01-02 15:04:05.999999999 -0700 MST) \
             nor an RFC 3339 time"
        )
    })
}

fn parse_go_time(text: &str) -> Result<i64, ()> {
    let tokens: Vec<&str> = text.split(' ').collect();
    let (date, clock, offset) = match tokens.as_slice() {
        [date, clock, offset] => (*date, *clock, *offset),
        [date, clock, offset, zone] if is_zone_abbreviation(zone) => (*date, *clock, *offset),
        _ => return Err(()),
    };
    let format = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]] [offset_hour sign:mandatory][offset_minute]"
    );
    let joined = format!("{date} {clock} {offset}");
    time::OffsetDateTime::parse(&joined, format)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| ())
}

/// `UTC`, `CEST`, or Go's numeric stand-in for a zone without a name (`+03`, `-0930`).
fn is_zone_abbreviation(zone: &str) -> bool {
    let letters =
        zone.len() >= 2 && zone.len() <= 6 && zone.bytes().all(|b| b.is_ascii_uppercase());
    let numeric = matches!(zone.as_bytes().first(), Some(b'+' | b'-'))
        && matches!(zone.len(), 3 | 5)
        && zone[1..].bytes().all(|b| b.is_ascii_digit());
    letters || numeric
}

/// Formats Unix seconds as a date for people, e.g. `2026-03-01`.
pub fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(key: &OriginKey, hostname: &str, days: i64) -> String {
        let mut params = rcgen::CertificateParams::new(vec![hostname.to_owned()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        params.not_after =
            time::OffsetDateTime::from_unix_timestamp(1_700_000_000 + days * 86_400).unwrap();
        params.self_signed(&key.key_pair).unwrap().pem()
    }

    #[test]
    fn ecdsa_key_csr_and_expiry() {
        let key = OriginKey::generate(KeyType::EcdsaP256).unwrap();
        assert!(key
            .private_key_pem()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!format!("{key:?}").contains("PRIVATE"));
        let csr = key.csr("cache.example.com").unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap();
        let (_, req) =
            <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<x509_parser::error::X509Error>>::from_der(&pem.contents)
                .unwrap();
        req.verify_signature().unwrap();
        assert!(req
            .certification_request_info
            .subject
            .to_string()
            .contains("CN=cache.example.com"));

        let cert = self_signed(&key, "cache.example.com", 365);
        let facts = certificate_facts(&cert).unwrap();
        assert_eq!(facts.not_after, 1_700_000_000 + 365 * 86_400);
        assert_eq!(facts.dns_names, vec!["cache.example.com".to_owned()]);
    }

    #[test]
    fn two_keys_differ() {
        let a = OriginKey::generate(KeyType::EcdsaP256).unwrap();
        let b = OriginKey::generate(KeyType::EcdsaP256).unwrap();
        assert_ne!(a.private_key_pem(), b.private_key_pem());
    }

    #[test]
    fn csrs_carry_the_owner_mark() {
        let key = OriginKey::generate(KeyType::EcdsaP256).unwrap();
        let csr = key.csr("cache.example.com").unwrap();
        assert!(csr_has_owner_mark(&csr));
        // Someone else's CSR for the same hostname is not provision's.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["cache.example.com".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Ltd");
        let foreign = params.serialize_request(&other).unwrap().pem().unwrap();
        assert!(!csr_has_owner_mark(&foreign));
        assert!(!csr_has_owner_mark("not a csr"));
        assert!(!csr_has_owner_mark(""));
    }

    #[test]
    fn rsa_key_makes_a_valid_csr() {
        let key = OriginKey::generate(KeyType::Rsa2048).unwrap();
        assert_eq!(key.key_type().origin_ca_request_type(), "origin-rsa");
        let csr = key.csr("cache.example.com").unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap();
        let (_, req) =
            <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<x509_parser::error::X509Error>>::from_der(&pem.contents)
                .unwrap();
        req.verify_signature().unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn key_out_is_0600_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("origin.key");
        let key = OriginKey::generate(KeyType::EcdsaP256).unwrap();
        write_private_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            key.private_key_pem()
        );
        assert!(write_private_key(&path, &key).is_err());

        let secrets = dir.path().join("secrets.json");
        write_secret_file(&secrets, "{}").unwrap();
        write_secret_file(&secrets, "{\"a\":1}").unwrap();
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(
            parse_rfc3339("2017-02-22T00:23:00Z").unwrap(),
            1_487_722_980
        );
        assert_eq!(
            parse_rfc3339("2014-01-01T05:20:00.12345Z").unwrap(),
            1_388_553_600
        );
        assert!(parse_rfc3339("yesterday").is_err());
        assert_eq!(date(1_487_722_980), "2017-02-22");
    }

    #[test]
    fn origin_ca_expiry_in_gos_layout_as_the_live_api_writes_it() {
        // 2039-03-24T01:48:00Z
        assert_eq!(
            parse_origin_ca_time("2039-03-24 01:48:00 +0000 UTC").unwrap(),
            2_184_544_080
        );
        // The text from the live API that stopped every run after the first.
        assert_eq!(
            parse_origin_ca_time("2027-12-02 05:48:22 +0000 UTC").unwrap(),
            parse_rfc3339("2027-12-02T05:48:22Z").unwrap()
        );
        // Fractional seconds (Go prints up to nine digits, none when zero).
        assert_eq!(
            parse_origin_ca_time("2039-03-24 01:48:00.123456789 +0000 UTC").unwrap(),
            2_184_544_080
        );
        // Another offset and its abbreviation; Go's numeric stand-in for a nameless zone.
        assert_eq!(
            parse_origin_ca_time("2039-03-24 03:48:00 +0200 CEST").unwrap(),
            2_184_544_080
        );
        assert_eq!(
            parse_origin_ca_time("2039-03-24 04:48:00 +0300 +03").unwrap(),
            2_184_544_080
        );
        // Without the abbreviation.
        assert_eq!(
            parse_origin_ca_time("2039-03-23 20:48:00 -0500").unwrap(),
            2_184_544_080
        );
    }

    #[test]
    fn origin_ca_expiry_in_rfc3339() {
        assert_eq!(
            parse_origin_ca_time("2039-03-24T01:48:00Z").unwrap(),
            2_184_544_080
        );
        assert_eq!(
            parse_origin_ca_time("2014-01-01T05:20:00.12345Z").unwrap(),
            1_388_553_600
        );
        assert_eq!(
            parse_origin_ca_time("2039-03-24T03:48:00+02:00").unwrap(),
            2_184_544_080
        );
    }

    #[test]
    fn origin_ca_expiry_refuses_other_text() {
        for bad in [
            "",
            "yesterday",
            "2039-03-24 01:48:00",
            "2039-03-24 01:48:00 UTC",
            "2039-03-24 01:48:00 +0000 UTC extra",
            "2039-03-24 01:48:00 +0000 utc",
            "2039-03-24  01:48:00 +0000 UTC",
            "2039-13-24 01:48:00 +0000 UTC",
            "1712345678",
        ] {
            let err = parse_origin_ca_time(bad).unwrap_err().to_string();
            assert!(err.contains("neither Go's time layout"), "{bad:?}: {err}");
        }
    }
}
