//! Performs a plan's changes, in order, printing each step as it happens.
//!
//! Creates are careful about answers that leave it unclear whether they happened (5xx, a
//! timeout, an unreadable body): before trying again they look for what they may have made,
//! by the same names `observe` uses, so an apply never makes duplicates. An apply that dies
//! anyway is finished by the next one: `plan` recognises what was left half-made.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use zeroize::Zeroizing;

use crate::api::{cloudflare as cf, digitalocean as dig, ApiError};
use crate::certs::{self, OriginKey};
use crate::config::CdnCertificate;
use crate::env::Secret;
use crate::observe::{self, Providers, World, CACHE_INFO_KEY, WORKER_SECRET_NAMES};
use crate::plan::{
    Action, Change, Desired, Resource, WorkerSecretsTarget, CACHE_INFO_CONTENT_TYPE,
    MANAGED_CERTIFICATE,
};

/// A new key with its freshly issued origin certificate, waiting for its upload.
#[derive(Debug)]
struct Issued {
    key: OriginKey,
    origin_id: String,
    certificate_pem: String,
}

/// Sends a create. When its answer leaves unclear whether it happened (5xx, timeout,
/// unreadable body), `find` looks for what it may have made; when nothing is there, the
/// create is tried again after a pause, within the retry budget (`PROVISION_RETRY_*`).
fn create_or_find<T>(
    mut create: impl FnMut() -> Result<T, ApiError>,
    mut find: impl FnMut() -> Option<Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let settings = crate::api::HttpSettings::from_env();
    let mut attempt = 0;
    loop {
        match create() {
            Ok(t) => return Ok(t),
            Err(e) if e.may_have_happened() => {
                if let Some(found) = find() {
                    println!("    {e}; the call had done its work all the same: found its result");
                    return found;
                }
                attempt += 1;
                if attempt >= settings.attempts {
                    return Err(e);
                }
                let wait = settings.delay(attempt - 1, None);
                println!(
                    "    {e}; nothing was made, trying again in {:.1}s",
                    wait.as_secs_f32()
                );
                std::thread::sleep(wait);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs one apply.
#[derive(Debug)]
pub struct Executor<'a> {
    p: &'a Providers,
    d: &'a Desired,
    world: &'a World,
    key_type: certs::KeyType,
    validity_days: u32,
    key_out: Option<PathBuf>,
    issued: Option<Issued>,
    /// The DigitalOcean certificate that holds the current origin certificate.
    current_do: Option<(String, String)>,
    /// The CNAME's target: the CDN endpoint's hostname, or the bucket's origin for a private
    /// cache.
    cname_target: String,
    /// `TOKEN_SECRET` and `SIGNING_KEY` from the environment, for the Worker's secrets.
    env_secrets: &'a [(&'static str, Secret)],
    /// Notes for the end of the run.
    pub notes: Vec<String>,
}

impl<'a> Executor<'a> {
    pub fn new(
        session: &'a crate::command::Session,
        world: &'a World,
        changes: &[Change],
        key_type: certs::KeyType,
        validity_days: u32,
        key_out: Option<PathBuf>,
    ) -> Self {
        let (p, d) = (&session.providers, &session.desired);
        let current_do = changes.iter().find_map(|c| match &c.resource {
            Resource::DoCertificate { id: Some(id) } => Some((id.clone(), c.reason.clone())),
            _ => None,
        });
        let cname_target = d.cname_target(world.observed.cdn.as_ref());
        Self {
            p,
            d,
            world,
            key_type,
            validity_days,
            key_out,
            issued: None,
            current_do,
            cname_target,
            env_secrets: &session.worker_env_secrets,
            notes: Vec::new(),
        }
    }

    /// Performs one change (an `Unchanged` or `Wait` one is a no-op).
    pub fn run(&mut self, change: &Change) -> anyhow::Result<()> {
        if !change.is_change() || change.action == Action::Wait {
            return Ok(());
        }
        let d = self.d;
        let bucket = d.bucket.as_str();
        let s3 = &self.p.spaces;
        match &change.resource {
            Resource::Bucket => s3
                .create_bucket(bucket)
                .with_context(|| format!("apply: bucket {bucket}: CreateBucket"))?,
            Resource::Lifecycle => s3.put_lifecycle(bucket, &d.lifecycle).with_context(|| {
                format!("apply: bucket {bucket}: lifecycle rule: PutBucketLifecycleConfiguration")
            })?,
            Resource::Versioning => s3.put_versioning(bucket, d.versioning).with_context(|| {
                format!("apply: bucket {bucket}: versioning: PutBucketVersioning")
            })?,
            Resource::Policy => match &d.policy {
                Some(policy) => s3
                    .put_policy(bucket, policy)
                    .with_context(|| format!("apply: bucket {bucket}: policy: PutBucketPolicy"))?,
                None => s3.delete_policy(bucket).with_context(|| {
                    format!("apply: bucket {bucket}: policy: DeleteBucketPolicy")
                })?,
            },
            Resource::CacheInfo => s3
                .put_object(
                    bucket,
                    CACHE_INFO_KEY,
                    d.cache_info.as_bytes(),
                    CACHE_INFO_CONTENT_TYPE,
                )
                .with_context(|| format!("apply: s3://{bucket}/{CACHE_INFO_KEY}: PutObject"))?,
            Resource::OriginCertificate { .. } => self.issue_origin_certificate()?,
            Resource::DoCertificate { .. } => self.upload_certificate()?,
            Resource::CdnEndpoint { id: Some(id) } if change.action == Action::Delete => {
                self.delete(
                    self.p.digitalocean.send(&dig::DeleteCdnEndpoint { id }),
                    format!("apply: cdn endpoint {id} for {}: delete", d.origin),
                )?;
            }
            Resource::CdnEndpoint { id } => self.converge_cdn(id.as_deref())?,
            Resource::DnsRecord { id } => self.converge_cname(id.as_deref())?,
            Resource::WorkerKey { .. } => self.make_worker_key()?,
            Resource::WorkerSecret { name } => self.put_env_secret(name)?,
            Resource::OldDoCertificate { id, name } => {
                self.delete(
                    self.p.digitalocean.send(&dig::DeleteCertificate { id }),
                    format!("apply: digitalocean certificate {id} ({name}): delete"),
                )?;
            }
            Resource::OldOriginCertificate { id } => {
                self.delete(
                    self.p.cloudflare.send(&cf::RevokeOriginCertificate { id }),
                    format!("apply: origin certificate {id}: revoke"),
                )?;
            }
            Resource::OldWorkerKey { access_key } => {
                self.delete(
                    self.p
                        .digitalocean
                        .send(&dig::DeleteSpacesKey { access_key }),
                    format!("apply: spaces key {access_key}: delete"),
                )?;
            }
        }
        Ok(())
    }

    fn delete<T>(&self, result: Result<T, ApiError>, what: String) -> anyhow::Result<()> {
        match result {
            Ok(_) => Ok(()),
            Err(e) if observe::already_gone(&e) => {
                println!("    already gone");
                Ok(())
            }
            Err(e) => Err(e).context(what),
        }
    }

    /// Step 6: a new key (memory only), its CSR, and an Origin CA certificate for it.
    fn issue_origin_certificate(&mut self) -> anyhow::Result<()> {
        let d = self.d;
        let key = OriginKey::generate(self.key_type)
            .with_context(|| format!("apply: origin certificate for {}: key", d.hostname))?;
        println!(
            "    generated a new {} key (kept in memory only)",
            self.key_type.as_str()
        );
        let csr = key.csr(&d.hostname)?;
        let hostnames = vec![d.hostname.clone()];
        let call = cf::CreateOriginCertificate {
            hostnames: &hostnames,
            request_type: self.key_type.origin_ca_request_type(),
            requested_validity: self.validity_days,
            csr: &csr,
        };
        let context = || {
            format!(
                "apply: origin certificate for {}: Origin CA create",
                d.hostname
            )
        };
        let zone_id = self.world.zone_id.as_str();
        let zone = self.world.observed.zone.as_str();
        let issued = create_or_find(
            || self.p.cloudflare.send(&call),
            || {
                // Issued although the answer was lost: the same CSR is listed.
                observe::list_origin_certificates(self.p, zone_id, zone)
                    .ok()?
                    .into_iter()
                    .find(|c| {
                        c.csr.as_deref().map(str::trim) == Some(csr.trim())
                            && c.certificate.is_some()
                    })
                    .map(Ok)
            },
        )
        .with_context(context)?;
        let certificate_pem = issued
            .certificate
            .ok_or_else(|| anyhow!("Cloudflare issued {} without a certificate", issued.id))
            .with_context(context)?;
        let facts = certs::certificate_facts(&certificate_pem)
            .with_context(|| format!("apply: origin certificate {}: reading it", issued.id))?;
        if !facts.dns_names.iter().any(|n| n == &d.hostname) {
            bail!(
                "apply: origin certificate {}: issued for {:?}, not {}",
                issued.id,
                facts.dns_names,
                d.hostname
            );
        }
        println!(
            "    issued {} for {}, expires {}",
            issued.id,
            d.hostname,
            certs::date(facts.not_after)
        );
        // Only now that its certificate exists is the key worth keeping.
        if let Some(path) = &self.key_out {
            certs::write_private_key(path, &key)?;
            println!(
                "    wrote the private key to {} (mode 0600)",
                path.display()
            );
        }
        self.issued = Some(Issued {
            key,
            origin_id: issued.id,
            certificate_pem,
        });
        Ok(())
    }

    /// Step 7: the new origin certificate and its key, uploaded as a custom certificate.
    fn upload_certificate(&mut self) -> anyhow::Result<()> {
        let Some(issued) = self.issued.take() else {
            bail!("apply: digitalocean certificate: no new origin certificate to upload");
        };
        let name = self.d.do_certificate_name(&issued.origin_id);
        let call = dig::CreateCustomCertificate {
            name: &name,
            private_key_pem: issued.key.private_key_pem(),
            leaf_certificate_pem: &issued.certificate_pem,
        };
        let context = || format!("apply: digitalocean certificate {name}: create");
        let id = create_or_find(
            || self.p.digitalocean.send(&call).map(|c| c.certificate.id),
            || {
                observe::list_do_certificates(self.p)
                    .ok()?
                    .into_iter()
                    .find(|c| c.name == name)
                    .map(|c| Ok(c.id))
            },
        )
        .with_context(context)?;
        println!("    uploaded as {name} ({id}); the key now leaves memory");
        self.current_do = Some((id, name));
        // `issued` drops here: the key's buffers are wiped.
        Ok(())
    }

    fn wanted_cdn_certificate(&self) -> anyhow::Result<String> {
        match self.d.cdn_certificate {
            CdnCertificate::Managed => Ok(MANAGED_CERTIFICATE.to_owned()),
            CdnCertificate::OriginCa | CdnCertificate::Auto => self
                .current_do
                .as_ref()
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    anyhow!("apply: cdn endpoint: no origin certificate in DigitalOcean")
                }),
        }
    }

    fn send_cdn(
        &self,
        id: Option<&str>,
        certificate_id: &str,
    ) -> Result<dig::CdnEndpoint, ApiError> {
        let d = self.d;
        match id {
            Some(id) => self
                .p
                .digitalocean
                .send(&dig::UpdateCdnEndpoint {
                    id,
                    ttl: d.cdn_ttl,
                    custom_domain: &d.hostname,
                    certificate_id,
                })
                .map(|r| r.endpoint),
            None => create_or_find(
                || {
                    self.p
                        .digitalocean
                        .send(&dig::CreateCdnEndpoint {
                            origin: &d.origin,
                            ttl: d.cdn_ttl,
                            custom_domain: &d.hostname,
                            certificate_id,
                        })
                        .map(|r| r.endpoint)
                },
                || {
                    let found = observe::find_cdn_endpoint(self.p, &d.origin).ok()??;
                    Some(self.send_cdn(Some(&found.id), certificate_id))
                },
            ),
        }
    }

    /// Step 8: the CDN endpoint, with the configured certificate (and auto's fallback).
    fn converge_cdn(&mut self, id: Option<&str>) -> anyhow::Result<()> {
        let d = self.d;
        let verb = if id.is_some() { "update" } else { "create" };
        let context = || {
            format!(
                "apply: cdn endpoint for {} on {}: {verb}",
                d.origin, d.hostname
            )
        };
        let wanted = self.wanted_cdn_certificate().with_context(context)?;
        let endpoint = match self.send_cdn(id, &wanted) {
            Ok(e) => e,
            Err(e)
                if dig::is_origin_ca_refusal(&e) && d.cdn_certificate == CdnCertificate::Auto =>
            {
                let stored = self
                    .current_do
                    .as_ref()
                    .map(|(_, n)| n.as_str())
                    .unwrap_or("");
                println!("    DigitalOcean's CDN refused the origin certificate: {e}");
                println!(
                    "    auto: switching the CDN to DigitalOcean's managed certificate \
                     ({MANAGED_CERTIFICATE}); the origin certificate stays stored as {stored}"
                );
                self.notes.push(format!(
                    "The CDN serves DigitalOcean's managed certificate: it refused the Cloudflare \
                     Origin CA certificate (cdn.certificate = auto). The origin certificate stays \
                     stored in DigitalOcean as {stored}."
                ));
                // The refused call made nothing; an update to find what exists is safe either way.
                let id = match id {
                    Some(id) => Some(id.to_owned()),
                    None => observe::find_cdn_endpoint(self.p, &d.origin)
                        .with_context(context)?
                        .map(|e| e.id),
                };
                self.send_cdn(id.as_deref(), MANAGED_CERTIFICATE)
                    .with_context(context)?
            }
            Err(e) if dig::is_origin_ca_refusal(&e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{}: cdn.certificate = \"origin-ca\" but DigitalOcean refuses Cloudflare \
                         Origin CA certificates; set it to \"auto\" or \"managed\"",
                        context()
                    )
                })
            }
            Err(e) => return Err(e).with_context(context),
        };
        println!(
            "    {} → {} (certificate {})",
            d.hostname,
            endpoint.endpoint,
            endpoint.certificate_id.as_deref().unwrap_or("none")
        );
        self.cname_target = endpoint.endpoint;
        Ok(())
    }

    /// Step 9: the proxied CNAME from the hostname to the CDN endpoint (the bucket's origin for
    /// a private cache).
    fn converge_cname(&mut self, id: Option<&str>) -> anyhow::Result<()> {
        let d = self.d;
        let zone_id = self.world.zone_id.as_str();
        let target = self.cname_target.as_str();
        let context = || format!("apply: dns record {} CNAME {target}", d.hostname);
        let update = |id: &str| {
            self.p.cloudflare.send(&cf::UpdateCname {
                zone_id,
                id,
                name: &d.hostname,
                target,
            })
        };
        let record = match id {
            Some(id) => update(id).with_context(context)?,
            None => create_or_find(
                || {
                    self.p.cloudflare.send(&cf::CreateCname {
                        zone_id,
                        name: &d.hostname,
                        target,
                    })
                },
                || {
                    // Made although the answer was lost: provision's comment is on it.
                    let found = observe::list_dns_records(self.p, zone_id, &d.hostname)
                        .ok()?
                        .into_iter()
                        .find(|r| {
                            r.record_type == "CNAME"
                                && r.comment.as_deref() == Some(observe::DNS_COMMENT)
                        })?;
                    Some(update(&found.id))
                },
            )
            .with_context(context)?,
        };
        println!(
            "    {} ({})",
            record.id,
            if record.proxied.unwrap_or(false) {
                "proxied"
            } else {
                "DNS only"
            }
        );
        Ok(())
    }

    /// Step 10: a new read-only key for the Worker, handed straight to where the Worker reads
    /// it. Made under the pending name; renamed to the confirmed name only once its secret is
    /// handed over; the keys it replaces are deleted by the steps after this one.
    fn make_worker_key(&mut self) -> anyhow::Result<()> {
        let d = self.d;
        let pending = d.worker_key_pending_name.as_str();
        let call = dig::CreateSpacesKey {
            name: pending,
            grants: vec![dig::Grant {
                bucket: d.bucket.clone(),
                permission: crate::plan::worker::worker_key_permission(d, &self.world.observed)
                    .into(),
            }],
        };
        let context = || format!("apply: spaces key {pending}: create");
        let known: Vec<&str> = self
            .world
            .observed
            .worker_keys
            .iter()
            .map(|k| k.access_key.as_str())
            .collect();
        let created = create_or_find(
            || self.p.digitalocean.send(&call).map(|k| k.key),
            || {
                // A key made by a lost call is useless (its secret is shown only once):
                // remove it, and let the create run again.
                for (_, k) in observe::list_worker_keys(self.p, d).ok()? {
                    if known.contains(&k.access_key.as_str()) {
                        continue;
                    }
                    println!(
                        "    removing {} (made by the lost call; its secret is gone)",
                        k.access_key
                    );
                    if let Err(e) = self.p.digitalocean.send(&dig::DeleteSpacesKey {
                        access_key: &k.access_key,
                    }) {
                        if !observe::already_gone(&e) {
                            return Some(Err(e));
                        }
                    }
                }
                None
            },
        )
        .with_context(context)?;
        println!(
            "    created {} as {pending} with read on {}",
            created.access_key, d.bucket
        );
        let access_key = Secret::new(created.access_key.clone());
        match &d.worker_secrets {
            WorkerSecretsTarget::Cloudflare { account_id, script } => {
                for (secret_name, text) in WORKER_SECRET_NAMES
                    .iter()
                    .zip([&access_key, &created.secret_key])
                {
                    self.put_worker_secret(account_id, script, secret_name, text)?;
                }
                println!(
                    "    stored as Worker {script}'s secrets {} and {} (never shown)",
                    WORKER_SECRET_NAMES[0], WORKER_SECRET_NAMES[1]
                );
            }
            WorkerSecretsTarget::File(path) => {
                let json = Zeroizing::new(
                    serde_json::json!({
                        WORKER_SECRET_NAMES[0]: access_key.expose(),
                        WORKER_SECRET_NAMES[1]: created.secret_key.expose(),
                    })
                    .to_string(),
                );
                certs::write_secret_file(path, &json)
                    .with_context(|| format!("apply: spaces key {pending}: secrets file"))?;
                println!("    wrote {} (mode 0600)", path.display());
                self.notes.push(format!(
                    "The Worker's read-only Spaces key is in {} (mode 0600): run \
                     `npx wrangler secret bulk {}`, then delete the file. It is a hand-over, \
                     not state: provision does not need it afterwards (set \
                     CLOUDFLARE_ACCOUNT_ID and worker.name to store the key straight into the \
                     Worker instead).",
                    path.display(),
                    path.display()
                ));
            }
        }
        let confirmed = d.worker_key_name.as_str();
        self.p
            .digitalocean
            .send(&dig::RenameSpacesKey {
                access_key: &created.access_key,
                name: confirmed,
            })
            .with_context(|| {
                format!(
                    "apply: spaces key {}: rename {pending} → {confirmed} (its secret is handed \
                     over)",
                    created.access_key
                )
            })?;
        println!("    renamed to {confirmed}: the Worker's key");
        Ok(())
    }

    fn put_worker_secret(
        &self,
        account_id: &str,
        script: &str,
        name: &str,
        text: &Secret,
    ) -> anyhow::Result<()> {
        self.p
            .cloudflare
            .send(&cf::PutWorkerSecret {
                account_id,
                script,
                name,
                text,
            })
            .map(drop)
            .with_context(|| {
                format!("apply: Worker {script}: secret {name}: put (is the Worker deployed?)")
            })
    }

    /// A secret from provision's environment, stored under its own name.
    fn put_env_secret(&mut self, name: &str) -> anyhow::Result<()> {
        let WorkerSecretsTarget::Cloudflare { account_id, script } = &self.d.worker_secrets else {
            bail!("apply: worker secret {name}: provision does not manage the Worker's secrets");
        };
        let Some((_, text)) = self.env_secrets.iter().find(|(n, _)| *n == name) else {
            bail!("apply: worker secret {name}: ${name} is not set");
        };
        self.put_worker_secret(account_id, script, name, text)?;
        println!("    stored ${name} as Worker {script}'s secret {name} (never shown)");
        Ok(())
    }

    /// Whether a step made a new key that `--key-out` wrote.
    pub fn finish(&self, changes: &[Change]) {
        let made_key = changes.iter().any(|c| {
            matches!(c.resource, Resource::OriginCertificate { .. })
                && matches!(c.action, Action::Create | Action::Replace)
        });
        if let (Some(path), false) = (&self.key_out, made_key) {
            println!(
                "--key-out: the origin certificate is current, so no new key was made; {} was not written",
                path.display()
            );
        }
    }
}
