//! The pure core: `plan(desired, observed) -> Vec<Change>`, in apply order.
//!
//! No I/O here. [`Desired`] comes from the config (plus the clock, passed in as `now`);
//! [`Observed`] is what the providers answered. Apply executes the changes in the order
//! returned: bucket, lifecycle, versioning, policy, nix-cache-info, origin certificate,
//! DigitalOcean certificate, CDN endpoint, CNAME, the Worker's key, then the removal of
//! certificates and keys that are old or were left half-made by an interrupted apply.
//!
//! A private cache has no CDN endpoint, since one would serve the bucket to anyone: its CNAME
//! points at the bucket's origin (the Worker on the route answers every request), and a CDN
//! endpoint provision made for the bucket is deleted in the clean-up, once the CNAME has moved.
//!
//! A DigitalOcean certificate that holds an origin certificate is named
//! `<hostname-with-dashes>-origin-<last 12 characters of the origin certificate's id>`,
//! which is how an origin certificate and its upload find each other again.

use std::fmt;

use serde::Serialize;

use crate::config::{CdnCertificate, Config};

/// DigitalOcean's `certificate_id` for its managed certificate on a CDN custom domain.
pub const MANAGED_CERTIFICATE: &str = "needs-cloudflare-cert";
/// The `nix-cache-info` object's content type.
pub const CACHE_INFO_CONTENT_TYPE: &str = "text/x-nix-cache-info";
/// Seconds in a day.
const DAY: i64 = 86_400;

pub use crate::api::s3_xml::Lifecycle;

/// The id of the lifecycle rule provision writes.
pub const LIFECYCLE_RULE_ID: &str = "ttl";

/// Where the Worker's read-only key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerSecretsTarget {
    /// Straight into the Worker's secrets through Cloudflare's API.
    Cloudflare { account_id: String, script: String },
    /// A 0600 JSON file for `wrangler secret bulk`.
    File(std::path::PathBuf),
}

/// What the config asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub hostname: String,
    /// The zone when the config names it; otherwise found from the account's zones.
    pub zone: Option<String>,
    pub region: String,
    pub bucket: String,
    pub lifecycle: Lifecycle,
    pub versioning: bool,
    /// The policy document when anonymous reads are granted.
    pub policy: Option<serde_json::Value>,
    /// A private cache: no CDN endpoint (it would serve the bucket to anyone); the CNAME
    /// points at the bucket's origin and the Worker on the route answers every request.
    pub private: bool,
    pub cache_info: String,
    pub origin: String,
    pub cdn_endpoint: String,
    pub cdn_ttl: u32,
    pub cdn_certificate: CdnCertificate,
    pub do_certificate_prefix: String,
    pub rotate_within_days: u32,
    /// The Worker's key once its secret is handed over.
    pub worker_key_name: String,
    /// The Worker's key from its creation until its secret is handed over.
    pub worker_key_pending_name: String,
    pub worker_secrets: WorkerSecretsTarget,
    /// Names of the Worker secrets set in provision's environment (`TOKEN_SECRET`,
    /// `SIGNING_KEY`), stored as the Worker's secrets of the same names.
    pub env_worker_secrets: Vec<String>,
    /// The current time, Unix seconds.
    pub now: i64,
}

impl Desired {
    pub fn from_config(
        config: &Config,
        cloudflare_account_id: Option<&str>,
        env_worker_secrets: Vec<String>,
        now: i64,
    ) -> Self {
        let worker_secrets = match (cloudflare_account_id, &config.worker_name) {
            (Some(account_id), Some(script)) => WorkerSecretsTarget::Cloudflare {
                account_id: account_id.to_owned(),
                script: script.clone(),
            },
            _ => WorkerSecretsTarget::File(config.worker_secrets_file.clone()),
        };
        Self {
            hostname: config.hostname.clone(),
            zone: config.zone.clone(),
            region: config.region.clone(),
            bucket: config.bucket.clone(),
            lifecycle: Lifecycle {
                id: LIFECYCLE_RULE_ID.to_owned(),
                enabled: true,
                // Nothing current expires: `provision gc` frees space by reachability, and an
                // age rule would break closures (a narinfo can point at an older NAR).
                expiration_days: None,
                expired_object_delete_marker: true,
                noncurrent_days: Some(config.noncurrent_days),
                abort_incomplete_multipart_days: Some(config.abort_multipart_days),
            },
            versioning: config.versioning,
            policy: config
                .public_reads
                .then(|| anonymous_read_policy(&config.bucket)),
            private: config.private,
            cache_info: config.cache_info_text(),
            origin: config.origin(),
            cdn_endpoint: config.cdn_endpoint(),
            cdn_ttl: config.cdn_ttl,
            cdn_certificate: config.cdn_certificate,
            do_certificate_prefix: config.do_certificate_prefix(),
            rotate_within_days: config.rotate_within_days,
            worker_key_name: config.worker_key_name(),
            worker_key_pending_name: format!("{}-pending", config.worker_key_name()),
            worker_secrets,
            env_worker_secrets,
            now,
        }
    }

    /// What the proxied CNAME points at: the bucket's origin for a private cache, otherwise
    /// the CDN endpoint (`cdn`, the one that exists, or the name the CDN will give it).
    pub fn cname_target(&self, cdn: Option<&CdnEndpoint>) -> String {
        match cdn {
            _ if self.private => self.origin.clone(),
            Some(cdn) => cdn.endpoint.clone(),
            None => self.cdn_endpoint.clone(),
        }
    }

    /// The DigitalOcean certificate name for an origin certificate id.
    pub fn do_certificate_name(&self, origin_certificate_id: &str) -> String {
        let tail: String = {
            let chars: Vec<char> = origin_certificate_id.chars().collect();
            chars[chars.len().saturating_sub(12)..].iter().collect()
        };
        format!(
            "{}{}",
            self.do_certificate_prefix,
            tail.to_ascii_lowercase()
        )
    }
}

pub use crate::bucket_policy::anonymous_read_policy;

/// A Cloudflare Origin CA certificate provision made for the hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginCertificate {
    pub id: String,
    pub expires_at: i64,
    /// SHA-1 of the certificate's DER, lower-case hex.
    pub sha1_fingerprint: Option<String>,
}

/// A DigitalOcean certificate that holds one of provision's origin certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoCertificate {
    pub id: String,
    pub name: String,
    pub not_after: i64,
}

/// The CDN endpoint whose origin is the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnEndpoint {
    pub id: String,
    pub endpoint: String,
    pub ttl: u32,
    pub custom_domain: Option<String>,
    pub certificate_id: Option<String>,
}

/// A DNS record named like the hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Whether it carries provision's comment (provision made it).
    pub ours: bool,
    pub id: String,
    pub record_type: String,
    pub content: String,
    pub proxied: bool,
}

/// Where a Worker key is in its life, recorded in its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Made; its secret may or may not have reached the Worker.
    Pending,
    /// Its secret was handed over (stored in the Worker, or written for `wrangler`).
    Confirmed,
}

/// What Cloudflare shows of the Worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WorkerObserved {
    /// provision does not store the Worker's secrets (no account id or script name).
    #[default]
    NotManaged,
    /// The script does not exist yet: Cloudflare answers 10007 `script_not_found`.
    NotDeployed,
    /// The script exists; the names of its secrets.
    Deployed { secrets: Vec<String> },
}

/// A Spaces key named like the Worker's key (confirmed or pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpacesKey {
    pub access_key: String,
    pub state: KeyState,
    /// Its grants as (bucket, permission).
    pub grants: Vec<(String, String)>,
}

/// What the providers hold now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The zone that holds the hostname.
    pub zone: String,
    pub bucket_exists: bool,
    /// The bucket's lifecycle rules; `None` when it has no lifecycle configuration.
    pub lifecycle: Option<Vec<Lifecycle>>,
    /// `Some(true)` enabled, `Some(false)` suspended, `None` never set.
    pub versioning: Option<bool>,
    pub policy: Option<serde_json::Value>,
    /// The object's body and content type.
    pub cache_info: Option<(String, Option<String>)>,
    pub origin_certificates: Vec<OriginCertificate>,
    pub do_certificates: Vec<DoCertificate>,
    pub cdn: Option<CdnEndpoint>,
    pub dns: Vec<DnsRecord>,
    pub worker_keys: Vec<SpacesKey>,
    pub worker: WorkerObserved,
}

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Delete,
    Replace,
    /// Cannot happen yet: it waits on something outside provision (the reason says what to
    /// run). `apply` does not fail on it; `plan` counts it as a change.
    Wait,
}

impl Action {
    /// `+`, `~`, `=`, `-`, `-/+`, as Terraform prints them.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Create => "+",
            Self::Update => "~",
            Self::Unchanged => "=",
            Self::Delete => "-",
            Self::Replace => "-/+",
            Self::Wait => "..",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Unchanged => "unchanged",
            Self::Delete => "delete",
            Self::Replace => "replace",
            Self::Wait => "waiting",
        }
    }
}

/// Which resource a change is about. `id`s name an existing resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    Bucket,
    Lifecycle,
    Versioning,
    Policy,
    CacheInfo,
    /// The current origin certificate (Cloudflare Origin CA) and its key.
    OriginCertificate {
        id: Option<String>,
    },
    /// The current origin certificate's upload to DigitalOcean.
    DoCertificate {
        id: Option<String>,
    },
    CdnEndpoint {
        id: Option<String>,
    },
    DnsRecord {
        id: Option<String>,
    },
    /// The Worker's read-only Spaces key and where its secret is stored.
    WorkerKey {
        access_key: Option<String>,
    },
    /// A secret from provision's environment (`TOKEN_SECRET`, `SIGNING_KEY`) in the Worker.
    WorkerSecret {
        name: String,
    },
    /// A DigitalOcean certificate that is no longer needed.
    OldDoCertificate {
        id: String,
        name: String,
    },
    /// An origin certificate that is no longer needed (revoked when removed).
    OldOriginCertificate {
        id: String,
    },
    /// A Spaces key with the Worker key's name that is not the one kept.
    OldWorkerKey {
        access_key: String,
    },
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub resource: Resource,
    pub action: Action,
    /// Why, for people.
    pub reason: String,
}

impl Change {
    fn new(resource: Resource, action: Action, reason: impl Into<String>) -> Self {
        Self {
            resource,
            action,
            reason: reason.into(),
        }
    }

    pub fn is_change(&self) -> bool {
        self.action != Action::Unchanged
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = |id: &Option<String>| id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
        match self {
            Self::Bucket => f.write_str("bucket"),
            Self::Lifecycle => f.write_str("lifecycle rule"),
            Self::Versioning => f.write_str("versioning"),
            Self::Policy => f.write_str("bucket policy"),
            Self::CacheInfo => f.write_str("nix-cache-info object"),
            Self::OriginCertificate { id: i } => write!(f, "origin certificate{}", id(i)),
            Self::DoCertificate { id: i } => write!(f, "digitalocean certificate{}", id(i)),
            Self::CdnEndpoint { id: i } => write!(f, "cdn endpoint{}", id(i)),
            Self::DnsRecord { id: i } => write!(f, "dns record{}", id(i)),
            Self::WorkerKey { access_key } => write!(f, "worker spaces key{}", id(access_key)),
            Self::WorkerSecret { name } => write!(f, "worker secret {name}"),
            Self::OldDoCertificate { id, name } => {
                write!(f, "digitalocean certificate {id} ({name})")
            }
            Self::OldOriginCertificate { id } => write!(f, "origin certificate {id}"),
            Self::OldWorkerKey { access_key } => write!(f, "worker spaces key {access_key}"),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<3} {:<9} {}: {}",
            self.action.symbol(),
            self.action.word(),
            self.resource,
            self.reason
        )
    }
}

/// Whether any change is more than `Unchanged`.
pub fn has_changes(changes: &[Change]) -> bool {
    changes.iter().any(Change::is_change)
}

/// The lifecycle rule's change: one enabled rule that expires no current object, removes
/// noncurrent versions and expired delete markers, and aborts unfinished uploads.
fn plan_lifecycle(want: &Lifecycle, have: Option<&[Lifecycle]>) -> Change {
    let days = |d: Option<u32>| d.map_or_else(|| "no".to_owned(), |d| d.to_string());
    let rule = format!(
        "abort multipart uploads after {} days, expire noncurrent versions after {} days, \
         remove expired delete markers; current objects never expire (provision gc keeps closures whole)",
        days(want.abort_incomplete_multipart_days),
        days(want.noncurrent_days),
    );
    // One enabled rule with the same settings is what provision wants, whatever its id.
    let same = |have: &Lifecycle| {
        have.enabled == want.enabled
            && have.expiration_days == want.expiration_days
            && have.expired_object_delete_marker == want.expired_object_delete_marker
            && have.noncurrent_days == want.noncurrent_days
            && have.abort_incomplete_multipart_days == want.abort_incomplete_multipart_days
    };
    let now = match have {
        None => return Change::new(Resource::Lifecycle, Action::Create, rule),
        Some([have]) if same(have) => {
            return Change::new(Resource::Lifecycle, Action::Unchanged, rule)
        }
        Some([have]) => match have.expiration_days {
            Some(d) if have.enabled => format!(
                "now it expires every object {d} days after it was written, which breaks \
                 closures (a narinfo written today can point at a NAR written {} days ago) and \
                 frees nothing while old versions are kept",
                d.saturating_sub(1)
            ),
            _ => format!(
                "now {}{} days for uploads, {} for noncurrent versions{}",
                if have.enabled { "" } else { "disabled, " },
                days(have.abort_incomplete_multipart_days),
                days(have.noncurrent_days),
                if have.expired_object_delete_marker {
                    ""
                } else {
                    ", delete markers kept"
                }
            ),
        },
        Some(rules) => format!("now {} rules", rules.len()),
    };
    Change::new(
        Resource::Lifecycle,
        Action::Update,
        format!("{rule} ({now})"),
    )
}

/// The changes that take `observed` to `desired`, in apply order.
pub fn plan(desired: &Desired, observed: &Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    let bucket = &desired.bucket;

    // 1. Bucket.
    changes.push(if observed.bucket_exists {
        Change::new(
            Resource::Bucket,
            Action::Unchanged,
            format!("{bucket} exists in {}", desired.region),
        )
    } else {
        Change::new(
            Resource::Bucket,
            Action::Create,
            format!("{bucket} in {}, private ACL", desired.region),
        )
    });

    // 2. Lifecycle.
    changes.push(plan_lifecycle(
        &desired.lifecycle,
        observed.lifecycle.as_deref(),
    ));

    // 3. Versioning.
    changes.push(match (desired.versioning, observed.versioning) {
        (true, Some(true)) => Change::new(Resource::Versioning, Action::Unchanged, "enabled"),
        (true, Some(false)) => {
            Change::new(Resource::Versioning, Action::Update, "suspended → enabled")
        }
        (true, None) => Change::new(Resource::Versioning, Action::Create, "enable"),
        (false, Some(true)) => {
            Change::new(Resource::Versioning, Action::Update, "enabled → suspended")
        }
        (false, _) => Change::new(Resource::Versioning, Action::Unchanged, "not enabled"),
    });

    // 4. Policy.
    changes.push(match (&desired.policy, &observed.policy) {
        (Some(want), Some(have)) if crate::bucket_policy::policy_equivalent(want, have) => {
            Change::new(
                Resource::Policy,
                Action::Unchanged,
                "anonymous s3:GetObject on the bucket's objects",
            )
        }
        (Some(_), Some(_)) => Change::new(
            Resource::Policy,
            Action::Update,
            "replace the policy with anonymous s3:GetObject on the bucket's objects",
        ),
        (Some(_), None) => Change::new(
            Resource::Policy,
            Action::Create,
            "grant anonymous s3:GetObject on the bucket's objects",
        ),
        (None, Some(_)) => Change::new(
            Resource::Policy,
            Action::Delete,
            "public_reads = false: remove the policy, only signed reads remain",
        ),
        (None, None) => Change::new(
            Resource::Policy,
            Action::Unchanged,
            "none (public_reads = false)",
        ),
    });

    // 5. nix-cache-info.
    changes.push(match &observed.cache_info {
        Some((body, content_type))
            if *body == desired.cache_info
                && content_type.as_deref() == Some(CACHE_INFO_CONTENT_TYPE) =>
        {
            Change::new(
                Resource::CacheInfo,
                Action::Unchanged,
                one_line(&desired.cache_info),
            )
        }
        Some((body, _)) if *body == desired.cache_info => Change::new(
            Resource::CacheInfo,
            Action::Update,
            format!("content type → {}", CACHE_INFO_CONTENT_TYPE),
        ),
        Some(_) => Change::new(
            Resource::CacheInfo,
            Action::Update,
            one_line(&desired.cache_info),
        ),
        None => Change::new(
            Resource::CacheInfo,
            Action::Create,
            one_line(&desired.cache_info),
        ),
    });

    // 6, 7. The origin certificate and its DigitalOcean upload, as a pair.
    let (kept_origin, kept_do) = plan_certificates(desired, observed, &mut changes);

    // 8. CDN endpoint; for a private cache, none (the one provision made goes in the clean-up).
    let (cdn_change, cdn_delete) = plan_cdn(desired, observed, kept_do.as_deref());
    changes.extend(cdn_change);

    // 9. Proxied CNAME.
    changes.push(plan_cname(desired, observed));

    // 10. The Worker's read-only key, and the secrets from provision's environment.
    let (key_change, stale_keys) = worker_key(desired, observed);
    changes.push(key_change);
    changes.extend(worker_env_secrets(desired, observed));

    // 11. Clean-up, after the CDN and the CNAME point at the current resources. A private
    // cache's CDN endpoint goes first: the CNAME has moved off it, and it may hold a
    // certificate deleted below.
    changes.extend(cdn_delete);
    changes.extend(old_certificates(
        desired,
        observed,
        kept_origin.as_deref(),
        kept_do.as_deref(),
    ));
    for access_key in stale_keys {
        changes.push(Change::new(
            Resource::OldWorkerKey { access_key },
            Action::Delete,
            "not the Worker's key: deleted once the new key is handed over",
        ));
    }
    changes
}

/// Steps 6 and 7: the origin certificate and its DigitalOcean upload, kept as a pair while
/// both are valid beyond the rotation window, otherwise made anew. Returns the ids of the pair
/// kept (origin, DigitalOcean), if any.
fn plan_certificates(
    desired: &Desired,
    observed: &Observed,
    changes: &mut Vec<Change>,
) -> (Option<String>, Option<String>) {
    let rotate_before = desired.now + i64::from(desired.rotate_within_days) * DAY;
    let pair_of = |origin: &OriginCertificate| {
        let name = desired.do_certificate_name(&origin.id);
        observed.do_certificates.iter().find(|c| c.name == name)
    };
    let mut pairs: Vec<(&OriginCertificate, &DoCertificate)> = observed
        .origin_certificates
        .iter()
        .filter_map(|o| pair_of(o).map(|d| (o, d)))
        .collect();
    pairs.sort_by_key(|(o, d)| std::cmp::Reverse(o.expires_at.min(d.not_after)));
    let current = pairs
        .first()
        .copied()
        .filter(|(o, d)| o.expires_at.min(d.not_after) > rotate_before);
    let kept_origin = current.map(|(o, _)| o.id.clone());
    let kept_do = current.map(|(_, d)| d.id.clone());
    match current {
        Some((o, d)) => {
            changes.push(Change::new(
                Resource::OriginCertificate {
                    id: Some(o.id.clone()),
                },
                Action::Unchanged,
                format!(
                    "for {}, expires {}",
                    desired.hostname,
                    crate::certs::date(o.expires_at)
                ),
            ));
            changes.push(Change::new(
                Resource::DoCertificate {
                    id: Some(d.id.clone()),
                },
                Action::Unchanged,
                d.name.clone(),
            ));
        }
        None => {
            let (action, why) = match pairs.first() {
                Some((o, _)) => (
                    Action::Replace,
                    format!(
                        "{} expires {}, within {} days: rotate with a new key",
                        o.id,
                        crate::certs::date(o.expires_at),
                        desired.rotate_within_days
                    ),
                ),
                None if !observed.origin_certificates.is_empty() => (
                    Action::Create,
                    "new key and CSR; the existing origin certificates have no DigitalOcean \
                     upload and their keys are gone"
                        .to_owned(),
                ),
                None => (
                    Action::Create,
                    "new key and CSR, issued by Cloudflare's Origin CA".to_owned(),
                ),
            };
            changes.push(Change::new(
                Resource::OriginCertificate { id: None },
                action,
                format!("for {}: {why}", desired.hostname),
            ));
            changes.push(Change::new(
                Resource::DoCertificate { id: None },
                action,
                "upload the new origin certificate and key as a custom certificate",
            ));
        }
    }
    (kept_origin, kept_do)
}

/// Part of step 11: the certificates that are not the kept pair (replaced, or left half-made
/// by an interrupted apply), DigitalOcean's uploads first, then the origin certificates.
fn old_certificates(
    desired: &Desired,
    observed: &Observed,
    kept_origin: Option<&str>,
    kept_do: Option<&str>,
) -> Vec<Change> {
    let mut old = Vec::new();
    for d in &observed.do_certificates {
        if Some(d.id.as_str()) != kept_do {
            let why = if observed
                .cdn
                .as_ref()
                .and_then(|c| c.certificate_id.as_ref())
                == Some(&d.id)
            {
                if desired.private {
                    "replaced; the CDN endpoint that holds it is deleted first"
                } else {
                    "replaced; the CDN switches to the new certificate first"
                }
            } else {
                "not the current origin certificate"
            };
            old.push(Change::new(
                Resource::OldDoCertificate {
                    id: d.id.clone(),
                    name: d.name.clone(),
                },
                Action::Delete,
                why,
            ));
        }
    }
    for o in &observed.origin_certificates {
        if Some(o.id.as_str()) != kept_origin {
            let uploaded = observed
                .do_certificates
                .iter()
                .any(|c| c.name == desired.do_certificate_name(&o.id));
            let why = if uploaded {
                "replaced: revoke"
            } else {
                "never uploaded to DigitalOcean and its key is gone: revoke"
            };
            old.push(Change::new(
                Resource::OldOriginCertificate { id: o.id.clone() },
                Action::Delete,
                why,
            ));
        }
    }
    old
}

/// Why a private cache has no CDN endpoint.
const PRIVATE_NO_CDN: &str =
    "a private cache is served only through the Worker: a CDN endpoint would serve the bucket \
     to anyone";

/// Step 8: the CDN endpoint's change, and for a private cache the deletion of the endpoint
/// provision made for the bucket, which belongs to the clean-up (after the CNAME has moved).
fn plan_cdn(
    desired: &Desired,
    observed: &Observed,
    kept_do: Option<&str>,
) -> (Option<Change>, Option<Change>) {
    if desired.private {
        return match &observed.cdn {
            None => (
                Some(Change::new(
                    Resource::CdnEndpoint { id: None },
                    Action::Unchanged,
                    format!("none: {PRIVATE_NO_CDN}"),
                )),
                None,
            ),
            Some(cdn) => (
                None,
                Some(Change::new(
                    Resource::CdnEndpoint {
                        id: Some(cdn.id.clone()),
                    },
                    Action::Delete,
                    format!(
                        "{} for {}: {PRIVATE_NO_CDN}; deleted once the CNAME points at the \
                         bucket's origin",
                        cdn.endpoint, desired.origin
                    ),
                )),
            ),
        };
    }
    let cdn_certificate_ok = |have: Option<&str>| -> bool {
        match desired.cdn_certificate {
            CdnCertificate::Managed => have == Some(MANAGED_CERTIFICATE),
            CdnCertificate::OriginCa => kept_do.is_some() && have == kept_do,
            CdnCertificate::Auto => {
                have == Some(MANAGED_CERTIFICATE) || (kept_do.is_some() && have == kept_do)
            }
        }
    };
    let certificate_words = match desired.cdn_certificate {
        CdnCertificate::Managed => "DigitalOcean's managed certificate".to_owned(),
        CdnCertificate::OriginCa => "the origin certificate".to_owned(),
        CdnCertificate::Auto => "the origin certificate (auto: DigitalOcean's managed certificate \
                                 if the CDN refuses a Cloudflare Origin CA certificate)"
            .to_owned(),
    };
    let change = match &observed.cdn {
        Some(cdn) => {
            let mut diffs = Vec::new();
            if cdn.ttl != desired.cdn_ttl {
                diffs.push(format!("ttl {} → {}", cdn.ttl, desired.cdn_ttl));
            }
            if cdn.custom_domain.as_deref() != Some(desired.hostname.as_str()) {
                diffs.push(format!(
                    "custom domain {} → {}",
                    cdn.custom_domain.as_deref().unwrap_or("none"),
                    desired.hostname
                ));
            }
            if !cdn_certificate_ok(cdn.certificate_id.as_deref()) {
                diffs.push(format!("certificate → {certificate_words}"));
            }
            if diffs.is_empty() {
                let serving = if cdn.certificate_id.as_deref() == Some(MANAGED_CERTIFICATE) {
                    if desired.cdn_certificate == CdnCertificate::Auto {
                        "DigitalOcean's managed certificate (auto: the CDN refused the Cloudflare \
                         Origin CA certificate)"
                    } else {
                        "DigitalOcean's managed certificate"
                    }
                } else {
                    "the origin certificate"
                };
                Change::new(
                    Resource::CdnEndpoint {
                        id: Some(cdn.id.clone()),
                    },
                    Action::Unchanged,
                    format!("{} on {} with {serving}", cdn.endpoint, desired.hostname),
                )
            } else {
                Change::new(
                    Resource::CdnEndpoint {
                        id: Some(cdn.id.clone()),
                    },
                    Action::Update,
                    diffs.join(", "),
                )
            }
        }
        None => Change::new(
            Resource::CdnEndpoint { id: None },
            Action::Create,
            format!(
                "for {} on {}, ttl {}, with {certificate_words}",
                desired.origin, desired.hostname, desired.cdn_ttl
            ),
        ),
    };
    (Some(change), None)
}

/// Step 9: the proxied CNAME, provision's own record (its comment says so); a record provision
/// did not make that holds the name is left alone, and the step waits for it to go.
fn plan_cname(desired: &Desired, observed: &Observed) -> Change {
    let cname = observed
        .dns
        .iter()
        .find(|r| r.ours && r.record_type == "CNAME");
    let blocking = observed
        .dns
        .iter()
        .find(|r| !r.ours && matches!(r.record_type.as_str(), "CNAME" | "A" | "AAAA"));
    let target_host = desired.cname_target(observed.cdn.as_ref());
    let target = if desired.private {
        format!(
            "{} → {target_host}, proxied (the bucket's origin: a private cache is served only \
             through the Worker on the route)",
            desired.hostname
        )
    } else {
        format!("{} → {target_host}, proxied", desired.hostname)
    };
    match (cname, blocking) {
        (Some(r), _) if r.content.trim_end_matches('.') == target_host && r.proxied => Change::new(
            Resource::DnsRecord {
                id: Some(r.id.clone()),
            },
            Action::Unchanged,
            format!("CNAME {target}"),
        ),
        (Some(r), _) => Change::new(
            Resource::DnsRecord {
                id: Some(r.id.clone()),
            },
            Action::Update,
            format!(
                "CNAME {target} (now → {}{})",
                r.content,
                if r.proxied { ", proxied" } else { ", DNS only" }
            ),
        ),
        (None, Some(r)) => Change::new(
            Resource::DnsRecord { id: None },
            Action::Wait,
            format!(
                "CNAME {target}: {} already holds the name with a {} record → {} that \
                 provision did not make; provision leaves it alone. Remove it (or choose \
                 another hostname), then run `cargo run -p provision -- apply`",
                desired.hostname, r.record_type, r.content
            ),
        ),
        (None, None) => Change::new(
            Resource::DnsRecord { id: None },
            Action::Create,
            format!("CNAME {target} in zone {}", observed.zone),
        ),
    }
}

fn one_line(text: &str) -> String {
    text.trim_end().replace('\n', ", ")
}

/// What `destroy` removes, in reverse apply order (only what exists).
pub fn destroy_plan(desired: &Desired, observed: &Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    for k in &observed.worker_keys {
        changes.push(Change::new(
            Resource::OldWorkerKey {
                access_key: k.access_key.clone(),
            },
            Action::Delete,
            format!("{} (the Worker's read-only key)", desired.worker_key_name),
        ));
    }
    for r in observed
        .dns
        .iter()
        .filter(|r| r.ours && r.record_type == "CNAME")
    {
        changes.push(Change::new(
            Resource::DnsRecord {
                id: Some(r.id.clone()),
            },
            Action::Delete,
            format!("CNAME {} → {}", desired.hostname, r.content),
        ));
    }
    if let Some(cdn) = &observed.cdn {
        changes.push(Change::new(
            Resource::CdnEndpoint {
                id: Some(cdn.id.clone()),
            },
            Action::Delete,
            format!("{} for {}", cdn.endpoint, desired.origin),
        ));
    }
    for d in &observed.do_certificates {
        changes.push(Change::new(
            Resource::OldDoCertificate {
                id: d.id.clone(),
                name: d.name.clone(),
            },
            Action::Delete,
            "custom certificate",
        ));
    }
    for o in &observed.origin_certificates {
        changes.push(Change::new(
            Resource::OldOriginCertificate { id: o.id.clone() },
            Action::Delete,
            format!("revoke, for {}", desired.hostname),
        ));
    }
    if observed.bucket_exists {
        if observed.cache_info.is_some() {
            changes.push(Change::new(
                Resource::CacheInfo,
                Action::Delete,
                "nix-cache-info",
            ));
        }
        changes.push(Change::new(
            Resource::Bucket,
            Action::Delete,
            format!(
                "{} in {} (with its policy, lifecycle rule and versioning)",
                desired.bucket, desired.region
            ),
        ));
    }
    changes
}

pub mod worker;

pub use worker::{unmanaged_secret_notes, DEPLOY_THEN_APPLY};
use worker::{worker_env_secrets, worker_key};

#[cfg(test)]
mod tests;
