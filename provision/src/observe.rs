//! Asks the providers what exists, read-only, and describes it as an [`Observed`].
//!
//! Resources are found by name, never by a remembered id (there is no state file): the bucket
//! by name, Origin CA certificates by zone and hostname, DigitalOcean certificates by name
//! prefix, the CDN endpoint by origin, the CNAME by name and type, the Worker's Spaces key by
//! name.

use anyhow::{bail, Context};
use nix_spaces_cache::sigv4::Credentials;

use crate::api::{cloudflare as cf, digitalocean as dig, spaces, ApiError, HttpSettings};
use crate::certs;
use crate::env::Env;
use crate::plan::{
    CdnEndpoint, Desired, DnsRecord, DoCertificate, Lifecycle, Observed, OriginCertificate,
    SpacesKey, WorkerSecretsTarget,
};

/// The Worker's two secrets, by the names the Worker reads.
pub const WORKER_SECRET_NAMES: [&str; 2] = ["SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY"];
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
        let spaces = spaces::SpacesClient::new(
            &endpoint,
            region,
            Credentials::new(
                env.spaces_access_key_id.clone(),
                env.spaces_secret_access_key.expose(),
            ),
        )
        .context("SPACES_ENDPOINT")?
        .with_retry(settings.base_delay, settings.attempts);
        Ok(Self {
            digitalocean: dig::Client::new(
                &env.digitalocean_api_url,
                env.digitalocean_token.clone(),
                settings.clone(),
            ),
            cloudflare: cf::Client::new(
                &env.cloudflare_api_url,
                env.cloudflare_token.clone(),
                settings,
            ),
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
        o.lifecycle = rules.map(|rules| match rules.as_slice() {
            [rule] if rule.enabled => Lifecycle {
                expiration_days: rule.expiration_days.unwrap_or(0),
                abort_multipart_days: rule.abort_incomplete_multipart_days.unwrap_or(0),
            },
            // Disabled or several rules: never what provision wants.
            _ => Lifecycle {
                expiration_days: 0,
                abort_multipart_days: 0,
            },
        });
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

    let zone_id = find_zone(p, &d.zone)?;

    for c in list_origin_certificates(p, &zone_id, &d.zone)? {
        if c.hostnames.len() != 1 || c.hostnames[0] != d.hostname {
            continue;
        }
        let expires_at = match (&c.expires_on, &c.certificate) {
            (Some(t), _) => certs::parse_origin_ca_time(t),
            (None, Some(pem)) => certs::certificate_facts(pem).map(|f| f.not_after),
            (None, None) => Err(anyhow::anyhow!("no expires_on and no certificate")),
        }
        .with_context(|| format!("observe: origin certificate {}: expiry", c.id))?;
        o.origin_certificates.push(OriginCertificate {
            id: c.id,
            expires_at,
        });
    }

    o.do_certificates = list_do_certificates(p)?
        .into_iter()
        .filter(|c| c.name.starts_with(&d.do_certificate_prefix))
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

    o.dns = p
        .cloudflare
        .send(&cf::ListDnsRecords {
            zone_id: &zone_id,
            name: &d.hostname,
        })
        .with_context(|| format!("observe: dns records for {}: list", d.hostname))?
        .into_iter()
        .filter(|r| {
            r.name
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&d.hostname)
        })
        .map(|r| DnsRecord {
            id: r.id,
            record_type: r.record_type,
            content: r.content,
            proxied: r.proxied.unwrap_or(false),
        })
        .collect();

    o.worker_keys = list_worker_keys(p, &d.worker_key_name)?
        .into_iter()
        .map(|k| SpacesKey {
            access_key: k.access_key,
            grants: k
                .grants
                .into_iter()
                .map(|g| (g.bucket, g.permission))
                .collect(),
        })
        .collect();

    o.worker_secrets_present = match &d.worker_secrets {
        WorkerSecretsTarget::File(path) => path.exists(),
        WorkerSecretsTarget::Cloudflare { account_id, script } => {
            match p
                .cloudflare
                .send(&cf::ListWorkerSecrets { account_id, script })
            {
                Ok(secrets) => WORKER_SECRET_NAMES
                    .iter()
                    .all(|n| secrets.iter().any(|s| s.name == *n)),
                Err(e) if e.status() == Some(404) => false,
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

/// The zone's id, by name.
pub fn find_zone(p: &Providers, zone: &str) -> anyhow::Result<String> {
    let zones = p
        .cloudflare
        .send(&cf::ListZones { name: zone })
        .with_context(|| format!("observe: zone {zone}: lookup"))?;
    match zones
        .into_iter()
        .find(|z| z.name.eq_ignore_ascii_case(zone))
    {
        Some(z) => Ok(z.id),
        None => bail!(
            "observe: zone {zone}: Cloudflare has no such zone for this token (is the zone \
             name right, and does CLOUDFLARE_API_TOKEN have Zone:Read on it?)"
        ),
    }
}

/// Every Origin CA certificate of the zone (all pages).
pub fn list_origin_certificates(
    p: &Providers,
    zone_id: &str,
    zone: &str,
) -> anyhow::Result<Vec<cf::OriginCertificate>> {
    let mut all = Vec::new();
    for page in 1.. {
        let list = p
            .cloudflare
            .send(&cf::ListOriginCertificates { zone_id, page })
            .with_context(|| format!("observe: origin certificates of zone {zone}: list"))?;
        let n = list.len();
        all.extend(list);
        if n < cf::ListOriginCertificates::PER_PAGE || page >= 50 {
            break;
        }
    }
    Ok(all)
}

/// Every DigitalOcean certificate (all pages).
pub fn list_do_certificates(p: &Providers) -> anyhow::Result<Vec<dig::Certificate>> {
    let mut all = Vec::new();
    for page in 1.. {
        let list = p
            .digitalocean
            .send(&dig::ListCertificates { page })
            .context("observe: digitalocean certificates: list")?;
        let n = list.certificates.len();
        all.extend(list.certificates);
        if n < 200 || page >= 50 {
            break;
        }
    }
    Ok(all)
}

/// The CDN endpoint in front of `origin`, if any.
pub fn find_cdn_endpoint(p: &Providers, origin: &str) -> anyhow::Result<Option<dig::CdnEndpoint>> {
    for page in 1.. {
        let list = p
            .digitalocean
            .send(&dig::ListCdnEndpoints { page })
            .with_context(|| format!("observe: cdn endpoint for {origin}: list"))?;
        let n = list.endpoints.len();
        if let Some(e) = list.endpoints.into_iter().find(|e| e.origin == origin) {
            return Ok(Some(e));
        }
        if n < 200 || page >= 50 {
            break;
        }
    }
    Ok(None)
}

/// The Spaces keys named `name`.
pub fn list_worker_keys(p: &Providers, name: &str) -> anyhow::Result<Vec<dig::SpacesKey>> {
    let mut all = Vec::new();
    for page in 1.. {
        let list = p
            .digitalocean
            .send(&dig::ListSpacesKeys { name, page })
            .with_context(|| format!("observe: spaces key {name}: list"))?;
        let n = list.keys.len();
        all.extend(list.keys.into_iter().filter(|k| k.name == name));
        if n < 200 || page >= 50 {
            break;
        }
    }
    Ok(all)
}

/// Whether an error from a delete means the thing is already gone.
pub fn already_gone(e: &ApiError) -> bool {
    e.status() == Some(404)
}
