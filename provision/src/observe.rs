//! Asks the providers what exists, read-only, and describes it as an [`Observed`].
//!
//! Resources are found by what the APIs show, never by a remembered id (there is no state
//! file), and only what provision can prove it made counts as its own:
//! - the zone: the longest of the account's zones that is a suffix of the hostname;
//! - an Origin CA certificate: issued for exactly the hostname, from a CSR whose subject
//!   carries provision's mark ([`crate::certs::OWNER_MARK`]);
//! - a DigitalOcean certificate: named with the hostname's prefix, and holding one of those
//!   origin certificates (its SHA-1 fingerprint is theirs);
//! - the CNAME: the hostname's CNAME whose comment is provision's mark;
//! - the Worker's Spaces key: by its name, which also records its state (pending until its
//!   secret is handed over, then confirmed).
//!
//! Every list is read to its last page.

use anyhow::{bail, Context};
use nix_spaces_cache::sigv4::Credentials;

use crate::api::{cloudflare as cf, digitalocean as dig, spaces, ApiError, HttpSettings};
use crate::certs;
use crate::env::Env;
use crate::plan::{
    CdnEndpoint, Desired, DnsRecord, DoCertificate, KeyState, Observed, OriginCertificate,
    SpacesKey, WorkerObserved, WorkerSecretsTarget,
};

/// The Worker's two secrets, by the names the Worker reads.
pub const WORKER_SECRET_NAMES: [&str; 2] = ["SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY"];
/// Cloudflare's error code for a Worker script that does not exist (never deployed).
pub const SCRIPT_NOT_FOUND: i64 = 10007;
/// The comment provision puts on the DNS record it makes.
pub const DNS_COMMENT: &str = "managed by provision (nix-spaces-cache)";
/// The object Nix reads first.
pub const CACHE_INFO_KEY: &str = "nix-cache-info";

/// The three API clients.
#[derive(Debug)]
pub struct Providers {
    pub digitalocean: dig::Client,
    pub cloudflare: cf::Client,
    pub spaces: spaces::SpacesClient,
}

impl Providers {
    pub fn new(env: &Env, region: &str) -> anyhow::Result<Self> {
        let settings = HttpSettings::from_env();
        let endpoint = env.spaces_endpoint_for(region);
        let spaces = spaces::SpacesClient::with_settings(
            &endpoint,
            region,
            Credentials::new(
                env.spaces_access_key_id.clone(),
                env.spaces_secret_access_key.expose(),
            ),
            settings.clone(),
        )
        .context("SPACES_ENDPOINT")?;
        Ok(Self {
            digitalocean: dig::Client::new(
                &env.digitalocean_api_url,
                env.digitalocean_token.clone(),
                settings.clone(),
            )
            .context("DIGITALOCEAN_API_URL")?,
            cloudflare: cf::Client::new(
                &env.cloudflare_api_url,
                env.cloudflare_token.clone(),
                settings,
            )
            .context("CLOUDFLARE_API_URL")?,
            spaces,
        })
    }
}

/// What was observed, plus the ids later steps need.
#[derive(Debug, Clone)]
pub struct World {
    pub observed: Observed,
    pub zone_id: String,
}

/// Reads everything `plan` compares.
pub fn observe(p: &Providers, d: &Desired) -> anyhow::Result<World> {
    let bucket = &d.bucket;
    let mut o = Observed::default();

    let status = p
        .spaces
        .head_bucket(bucket)
        .with_context(|| format!("observe: bucket {bucket}: HeadBucket"))?;
    match status {
        spaces::BucketStatus::Owned => o.bucket_exists = true,
        spaces::BucketStatus::Missing => {}
        spaces::BucketStatus::Forbidden => bail!(
            "observe: bucket {bucket}: the name is taken by another account, or the Spaces key \
             in SPACES_ACCESS_KEY_ID may not use it (HeadBucket answered 403)"
        ),
    }
    if o.bucket_exists {
        let rules = p.spaces.get_lifecycle_rules(bucket).with_context(|| {
            format!("observe: bucket {bucket}: GetBucketLifecycleConfiguration")
        })?;
        o.lifecycle = rules;
        o.versioning = match p
            .spaces
            .get_versioning(bucket)
            .with_context(|| format!("observe: bucket {bucket}: GetBucketVersioning"))?
        {
            spaces::Versioning::Never => None,
            spaces::Versioning::Enabled => Some(true),
            spaces::Versioning::Suspended => Some(false),
        };
        o.policy = p
            .spaces
            .get_policy(bucket)
            .with_context(|| format!("observe: bucket {bucket}: GetBucketPolicy"))?;
        o.cache_info = p
            .spaces
            .get_object(bucket, CACHE_INFO_KEY)
            .with_context(|| format!("observe: s3://{bucket}/{CACHE_INFO_KEY}: GetObject"))?
            .map(|obj| {
                (
                    String::from_utf8_lossy(&obj.body).into_owned(),
                    obj.content_type,
                )
            });
    }

    let (zone_id, zone) = find_zone(p, &d.hostname, d.zone.as_deref())?;
    o.zone = zone.clone();

    for c in list_origin_certificates(p, &zone_id, &zone)? {
        if c.hostnames.len() != 1 || !c.hostnames[0].eq_ignore_ascii_case(&d.hostname) {
            continue;
        }
        // Only a certificate from provision's own CSR is provision's.
        if !c.csr.as_deref().is_some_and(certs::csr_has_owner_mark) {
            continue;
        }
        let expires_at = match (&c.expires_on, &c.certificate) {
            (Some(t), _) => certs::parse_origin_ca_time(t),
            (None, Some(pem)) => certs::certificate_facts(pem).map(|f| f.not_after),
            (None, None) => Err(anyhow::anyhow!("no expires_on and no certificate")),
        }
        .with_context(|| format!("observe: origin certificate {}: expiry", c.id))?;
        let sha1_fingerprint = c
            .certificate
            .as_deref()
            .map(certs::sha1_fingerprint)
            .transpose()
            .with_context(|| format!("observe: origin certificate {}: certificate", c.id))?;
        o.origin_certificates.push(OriginCertificate {
            id: c.id,
            expires_at,
            sha1_fingerprint,
        });
    }

    o.do_certificates = list_do_certificates(p)?
        .into_iter()
        .filter(|c| c.name.starts_with(&d.do_certificate_prefix))
        // Only an upload of one of provision's origin certificates is provision's.
        .filter(|c| {
            c.sha1_fingerprint.as_deref().is_some_and(|f| {
                o.origin_certificates
                    .iter()
                    .any(|oc| oc.sha1_fingerprint.as_deref() == Some(&f.to_ascii_lowercase()))
            })
        })
        .map(|c| {
            let not_after = c
                .not_after
                .as_deref()
                .map(certs::parse_rfc3339)
                .transpose()
                .with_context(|| format!("observe: digitalocean certificate {}: not_after", c.id))?
                // No date (not verified yet): judged by the origin certificate's expiry alone.
                .unwrap_or(i64::MAX);
            Ok(DoCertificate {
                id: c.id,
                name: c.name,
                not_after,
            })
        })
        .collect::<anyhow::Result<_>>()?;

    o.cdn = find_cdn_endpoint(p, &d.origin)?.map(|e| CdnEndpoint {
        id: e.id,
        endpoint: e.endpoint,
        ttl: e.ttl.unwrap_or(3600),
        custom_domain: e.custom_domain.filter(|s| !s.is_empty()),
        certificate_id: e.certificate_id.filter(|s| !s.is_empty()),
    });

    o.dns = list_dns_records(p, &zone_id, &d.hostname)?
        .into_iter()
        .map(|r| DnsRecord {
            ours: r.comment.as_deref() == Some(DNS_COMMENT),
            id: r.id,
            record_type: r.record_type,
            content: r.content,
            proxied: r.proxied.unwrap_or(false),
        })
        .collect();

    o.worker_keys = list_worker_keys(p, d)?
        .into_iter()
        .map(|(state, k)| SpacesKey {
            access_key: k.access_key,
            state,
            grants: k
                .grants
                .into_iter()
                .map(|g| (g.bucket, g.permission))
                .collect(),
        })
        .collect();

    o.worker = match &d.worker_secrets {
        WorkerSecretsTarget::File(_) => WorkerObserved::NotManaged,
        WorkerSecretsTarget::Cloudflare { account_id, script } => {
            match p
                .cloudflare
                .send(&cf::ListWorkerSecrets { account_id, script })
            {
                Ok(secrets) => WorkerObserved::Deployed {
                    secrets: secrets.into_iter().map(|s| s.name).collect(),
                },
                Err(e) if e.has_code(SCRIPT_NOT_FOUND) => WorkerObserved::NotDeployed,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("observe: Worker {script}: list secrets"))
                }
            }
        }
    };

    Ok(World {
        observed: o,
        zone_id,
    })
}

/// The hostname's zone (id and name): the longest of the account's zones that is a suffix
/// of the hostname (`cache.example.co.uk` is in `example.co.uk`, not `co.uk`). `configured`,
/// when set, must be that zone or another zone holding the hostname.
pub fn find_zone(
    p: &Providers,
    hostname: &str,
    configured: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let zones = p
        .cloudflare
        .list(&cf::ListZones { page: 1 })
        .with_context(|| format!("observe: zone of {hostname}: list zones"))?;
    let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
    let chosen = match configured {
        Some(zone) => names.iter().position(|n| n.eq_ignore_ascii_case(zone)),
        None => zone_for(hostname, &names),
    };
    match chosen {
        Some(i) => Ok((zones[i].id.clone(), zones[i].name.to_ascii_lowercase())),
        None => bail!(
            "observe: zone {}: Cloudflare has no such zone for this token ({} zone(s) visible; \
             is the zone right, and does CLOUDFLARE_API_TOKEN have Zone:Read on it?)",
            configured.unwrap_or(hostname),
            zones.len()
        ),
    }
}

/// Which of `zones` holds `hostname`: the longest that is the hostname or a parent of it.
pub fn zone_for(hostname: &str, zones: &[&str]) -> Option<usize> {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    zones
        .iter()
        .enumerate()
        .filter(|(_, z)| {
            let z = z.trim_end_matches('.').to_ascii_lowercase();
            !z.is_empty() && (host == z || host.ends_with(&format!(".{z}")))
        })
        .max_by_key(|(_, z)| z.len())
        .map(|(i, _)| i)
}

/// Every Origin CA certificate of the zone (all pages).
pub fn list_origin_certificates(
    p: &Providers,
    zone_id: &str,
    zone: &str,
) -> anyhow::Result<Vec<cf::OriginCertificate>> {
    p.cloudflare
        .list(&cf::ListOriginCertificates { zone_id, page: 1 })
        .with_context(|| format!("observe: origin certificates of zone {zone}: list"))
}

/// The DNS records named like the hostname (all pages).
pub fn list_dns_records(
    p: &Providers,
    zone_id: &str,
    hostname: &str,
) -> anyhow::Result<Vec<cf::DnsRecord>> {
    Ok(p.cloudflare
        .list(&cf::ListDnsRecords {
            zone_id,
            name: hostname,
            page: 1,
        })
        .with_context(|| format!("observe: dns records for {hostname}: list"))?
        .into_iter()
        .filter(|r| r.name.trim_end_matches('.').eq_ignore_ascii_case(hostname))
        .collect())
}

/// Every DigitalOcean certificate (all pages).
pub fn list_do_certificates(p: &Providers) -> anyhow::Result<Vec<dig::Certificate>> {
    p.digitalocean
        .list(&dig::ListCertificates { page: 1 })
        .context("observe: digitalocean certificates: list")
}

/// The CDN endpoint in front of `origin`, if any (all pages are read).
pub fn find_cdn_endpoint(p: &Providers, origin: &str) -> anyhow::Result<Option<dig::CdnEndpoint>> {
    Ok(p.digitalocean
        .list(&dig::ListCdnEndpoints { page: 1 })
        .with_context(|| format!("observe: cdn endpoint for {origin}: list"))?
        .into_iter()
        .find(|e| e.origin == origin))
}

/// The Worker's Spaces keys, confirmed and pending, by name (all pages).
pub fn list_worker_keys(
    p: &Providers,
    d: &Desired,
) -> anyhow::Result<Vec<(KeyState, dig::SpacesKey)>> {
    let mut all = Vec::new();
    for (state, name) in [
        (KeyState::Confirmed, d.worker_key_name.as_str()),
        (KeyState::Pending, d.worker_key_pending_name.as_str()),
    ] {
        let keys = p
            .digitalocean
            .list(&dig::ListSpacesKeys { name, page: 1 })
            .with_context(|| format!("observe: spaces key {name}: list"))?;
        all.extend(
            keys.into_iter()
                .filter(|k| k.name == name)
                .map(|k| (state, k)),
        );
    }
    Ok(all)
}

/// Whether an error from a delete means the thing is already gone.
pub fn already_gone(e: &ApiError) -> bool {
    e.status() == Some(404)
}
