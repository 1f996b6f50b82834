//! Certificates for the fakes: reading what clients upload (DigitalOcean custom
//! certificates) and issuing what Cloudflare's Origin CA would (a real certificate for the
//! CSR's public key, signed by a fake CA whose subject looks like Cloudflare's).

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha1::{Digest, Sha1};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub const ORIGIN_CA_ORGANIZATION: &str = "CloudFlare, Inc.";
pub const ORIGIN_CA_UNIT: &str = "CloudFlare Origin SSL Certificate Authority";

/// What DigitalOcean reads from an uploaded leaf certificate.
#[derive(Debug)]
pub struct Leaf {
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub not_after: OffsetDateTime,
    pub sha1_fingerprint: String,
    pub dns_names: Vec<String>,
    pub issued_by_origin_ca: bool,
}

fn pem_blocks(text: &str) -> Result<Vec<x509_parser::pem::Pem>, String> {
    let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not valid PEM ({e})"))?;
    if blocks.is_empty() {
        return Err("no PEM block found".into());
    }
    Ok(blocks)
}

/// Parses the first certificate of a PEM text.
pub fn parse_certificate(text: &str) -> Result<Leaf, String> {
    let blocks = pem_blocks(text)?;
    let block = &blocks[0];
    if block.label != "CERTIFICATE" {
        return Err(format!(
            "expected a CERTIFICATE PEM block, found {}",
            block.label
        ));
    }
    let (_, cert) = X509Certificate::from_der(&block.contents)
        .map_err(|e| format!("could not parse the certificate ({e})"))?;
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| format!("bad notAfter ({e})"))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                dns_names.push(n.to_string());
            }
        }
    }
    if dns_names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                dns_names.push(cn.to_string());
            }
        }
    }
    let issuer = cert.issuer();
    let issued_by_origin_ca = issuer
        .iter_organization()
        .any(|o| o.as_str() == Ok(ORIGIN_CA_ORGANIZATION))
        && issuer
            .iter_organizational_unit()
            .any(|u| u.as_str().is_ok_and(|u| u.starts_with("CloudFlare Origin")));
    let fingerprint: [u8; 20] = Sha1::digest(&block.contents).into();
    Ok(Leaf {
        spki: cert.public_key().raw.to_vec(),
        not_after,
        sha1_fingerprint: super::common::hex(&fingerprint),
        dns_names,
        issued_by_origin_ca,
    })
}

/// Checks that every block of a chain is a certificate.
pub fn parse_chain(text: &str) -> Result<(), String> {
    for block in pem_blocks(text)? {
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "expected CERTIFICATE blocks, found {}",
                block.label
            ));
        }
        X509Certificate::from_der(&block.contents)
            .map_err(|e| format!("could not parse a chain certificate ({e})"))?;
    }
    Ok(())
}

/// DER length prefix.
fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// PKCS#8 wrapping of a PKCS#1 RSA private key.
fn pkcs8_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    // rsaEncryption OID 1.2.840.113549.1.1.1 with NULL parameters
    let algorithm = der(
        0x30,
        &[
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ][..],
            &[0x05, 0x00][..],
        ]
        .concat(),
    );
    let version = [0x02, 0x01, 0x00];
    der(
        0x30,
        &[&version[..], &algorithm, &der(0x04, pkcs1)].concat(),
    )
}

/// PKCS#8 wrapping of a SEC1 P-256 private key.
fn pkcs8_from_sec1_p256(sec1: &[u8]) -> Vec<u8> {
    // id-ecPublicKey 1.2.840.10045.2.1, prime256v1 1.2.840.10045.3.1.7
    let algorithm = der(
        0x30,
        &[
            &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01][..],
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07][..],
        ]
        .concat(),
    );
    let version = [0x02, 0x01, 0x00];
    der(0x30, &[&version[..], &algorithm, &der(0x04, sec1)].concat())
}

/// The DER SubjectPublicKeyInfo of a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 P-256).
pub fn private_key_spki(text: &str) -> Result<Vec<u8>, String> {
    let blocks = pem_blocks(text).map_err(|_| "could not parse the private key".to_string())?;
    let block = &blocks[0];
    let pkcs8 = match block.label.as_str() {
        "PRIVATE KEY" => block.contents.clone(),
        "RSA PRIVATE KEY" => pkcs8_from_pkcs1(&block.contents),
        "EC PRIVATE KEY" => pkcs8_from_sec1_p256(&block.contents),
        other => return Err(format!("unsupported private key type {other}")),
    };
    let key = KeyPair::try_from(pkcs8.as_slice())
        .map_err(|_| "could not parse the private key".to_string())?;
    Ok(key.public_key_der())
}

/// Whether a certificate name (maybe `*.example.com`) covers a hostname.
pub fn name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// The key type a CSR carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrKey {
    Rsa,
    Ecdsa,
    Other,
}

/// A fake Cloudflare Origin CA.
pub struct OriginCa {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for OriginCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginCa").finish_non_exhaustive()
    }
}

impl OriginCa {
    pub fn new() -> OriginCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::OrganizationName, ORIGIN_CA_ORGANIZATION);
        dn.push(DnType::OrganizationalUnitName, ORIGIN_CA_UNIT);
        dn.push(DnType::LocalityName, "San Francisco");
        dn.push(DnType::StateOrProvinceName, "California");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(365 * 20);
        let certificate = params.self_signed(&key).expect("CA certificate");
        OriginCa { certificate, key }
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.certificate.pem()
    }

    /// Reads a CSR: its key type. Fails on a bad PEM, a bad DER or a bad signature.
    pub fn csr_key(csr_pem: &str) -> Result<CsrKey, String> {
        CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("could not parse the CSR ({e})"))?;
        let blocks = pem_blocks(csr_pem)?;
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(
            &blocks[0].contents,
        )
        .map_err(|e| format!("could not parse the CSR ({e})"))?;
        let oid = csr
            .certification_request_info
            .subject_pki
            .algorithm
            .algorithm
            .to_id_string();
        Ok(match oid.as_str() {
            "1.2.840.113549.1.1.1" => CsrKey::Rsa,
            "1.2.840.10045.2.1" => CsrKey::Ecdsa,
            _ => CsrKey::Other,
        })
    }

    /// Issues a certificate for the CSR's public key, valid for `days` from now, for
    /// `hostnames`. Returns the PEM and the expiry.
    pub fn issue(
        &self,
        csr_pem: &str,
        hostnames: &[String],
        days: i64,
        serial: &[u8],
    ) -> Result<(String, OffsetDateTime), String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("could not parse the CSR ({e})"))?;
        let mut names = Vec::new();
        for h in hostnames {
            let name = h
                .clone()
                .try_into()
                .map_err(|_| format!("hostname {h:?} is not a valid DNS name"))?;
            names.push(SanType::DnsName(name));
        }
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::now_utc());
        let not_after = now + time::Duration::days(days);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "CloudFlare, Inc.");
        dn.push(DnType::OrganizationalUnitName, "CloudFlare Origin CA");
        dn.push(DnType::CommonName, "CloudFlare Origin Certificate");
        csr.params.distinguished_name = dn;
        csr.params.subject_alt_names = names;
        csr.params.not_before = now - time::Duration::minutes(1);
        csr.params.not_after = not_after;
        csr.params.serial_number = Some(SerialNumber::from_slice(serial));
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        csr.params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        csr.params.use_authority_key_identifier_extension = true;
        let certificate = csr
            .signed_by(&self.certificate, &self.key)
            .map_err(|e| format!("could not sign ({e})"))?;
        Ok((certificate.pem(), not_after))
    }
}
