//! Plan tables: desired × observed → changes.

use super::*;
use crate::config::{Config, FileConfig, Overrides};

const NOW: i64 = 1_800_000_000;

fn config(o: Overrides) -> Config {
    Config::resolve(
        FileConfig::default(),
        &Overrides {
            hostname: Some("cache.example.com".into()),
            ..o
        },
    )
    .unwrap()
}

fn desired() -> Desired {
    Desired::from_config(&config(Overrides::default()), None, Vec::new(), NOW)
}

fn desired_with(o: Overrides) -> Desired {
    Desired::from_config(&config(o), Some("acc"), Vec::new(), NOW)
}

const ORIGIN_ID: &str = "393687095301390512233355428385723004522017";

/// The state a complete apply leaves behind.
fn converged(d: &Desired) -> Observed {
    let do_id = "0b9c3b5e-9d1a-4a54-8b0e-5e0b1c2f3a4d".to_owned();
    Observed {
        bucket_exists: true,
        lifecycle: Some(vec![d.lifecycle.clone()]),
        versioning: d.versioning.then_some(true),
        policy: d.policy.clone(),
        cache_info: Some((d.cache_info.clone(), Some(CACHE_INFO_CONTENT_TYPE.into()))),
        origin_certificates: vec![OriginCertificate {
            id: ORIGIN_ID.into(),
            expires_at: NOW + 300 * DAY,
            sha1_fingerprint: None,
        }],
        do_certificates: vec![DoCertificate {
            id: do_id.clone(),
            name: d.do_certificate_name(ORIGIN_ID),
            not_after: NOW + 300 * DAY,
        }],
        // A private cache has none.
        cdn: (!d.private).then(|| CdnEndpoint {
            id: "cdn-1".into(),
            endpoint: d.cdn_endpoint.clone(),
            ttl: d.cdn_ttl,
            custom_domain: Some(d.hostname.clone()),
            certificate_id: Some(match d.cdn_certificate {
                CdnCertificate::Managed => MANAGED_CERTIFICATE.into(),
                _ => do_id,
            }),
        }),
        dns: vec![DnsRecord {
            ours: true,
            id: "dns-1".into(),
            record_type: "CNAME".into(),
            content: d.cname_target(None),
            proxied: true,
        }],
        worker_keys: vec![SpacesKey {
            access_key: "DOWORKERKEY".into(),
            state: KeyState::Confirmed,
            grants: vec![(d.bucket.clone(), key_permission(d).into())],
        }],
        zone: "example.com".into(),
        worker: worker_with_secrets(d),
    }
}

/// What the Worker's key may do once apply has run: write too when it takes uploads.
fn key_permission(d: &Desired) -> &'static str {
    worker::worker_key_permission(
        d,
        &Observed {
            worker: worker_with_secrets(d),
            ..Observed::default()
        },
    )
}

/// The Worker as a complete apply leaves it.
fn worker_with_secrets(d: &Desired) -> WorkerObserved {
    match d.worker_secrets {
        WorkerSecretsTarget::File(_) => WorkerObserved::NotManaged,
        WorkerSecretsTarget::Cloudflare { .. } => WorkerObserved::Deployed {
            secrets: crate::observe::WORKER_SECRET_NAMES
                .iter()
                .map(|n| n.to_string())
                .chain(d.env_worker_secrets.iter().cloned())
                .collect(),
        },
    }
}

/// A model of apply: what the providers hold after executing `changes` on `observed`.
fn simulate_apply(d: &Desired, observed: &Observed, changes: &[Change]) -> Observed {
    let mut o = observed.clone();
    let mut new_origin = None;
    for c in changes.iter().filter(|c| c.is_change()) {
        match (&c.resource, c.action) {
            (Resource::Bucket, _) => o.bucket_exists = true,
            (Resource::Lifecycle, _) => o.lifecycle = Some(vec![d.lifecycle.clone()]),
            (Resource::Versioning, _) => o.versioning = Some(d.versioning),
            (Resource::Policy, Action::Delete) => o.policy = None,
            (Resource::Policy, _) => o.policy = d.policy.clone(),
            (Resource::CacheInfo, _) => {
                o.cache_info = Some((d.cache_info.clone(), Some(CACHE_INFO_CONTENT_TYPE.into())))
            }
            (Resource::OriginCertificate { .. }, _) => {
                let id = format!("77{}", o.origin_certificates.len() + 1000);
                o.origin_certificates.push(OriginCertificate {
                    id: id.clone(),
                    expires_at: d.now + 365 * DAY,
                    sha1_fingerprint: None,
                });
                new_origin = Some(id);
            }
            (Resource::DoCertificate { .. }, _) => {
                let origin = new_origin.clone().unwrap();
                o.do_certificates.push(DoCertificate {
                    id: format!("do-{origin}"),
                    name: d.do_certificate_name(&origin),
                    not_after: d.now + 365 * DAY,
                });
            }
            (Resource::CdnEndpoint { .. }, Action::Delete) => o.cdn = None,
            (Resource::CdnEndpoint { .. }, _) => {
                let current_do = o.do_certificates.last().map(|c| c.id.clone());
                let certificate_id = match d.cdn_certificate {
                    CdnCertificate::Managed => Some(MANAGED_CERTIFICATE.into()),
                    // The CDN refuses Cloudflare Origin CA certificates today.
                    CdnCertificate::Auto => Some(MANAGED_CERTIFICATE.into()),
                    CdnCertificate::OriginCa => current_do,
                };
                o.cdn = Some(CdnEndpoint {
                    id: "cdn-1".into(),
                    endpoint: d.cdn_endpoint.clone(),
                    ttl: d.cdn_ttl,
                    custom_domain: Some(d.hostname.clone()),
                    certificate_id,
                });
            }
            (Resource::DnsRecord { .. }, _) => {
                o.dns = vec![DnsRecord {
                    ours: true,
                    id: "dns-1".into(),
                    record_type: "CNAME".into(),
                    content: d.cname_target(o.cdn.as_ref()),
                    proxied: true,
                }]
            }
            (Resource::WorkerKey { .. }, _) => {
                o.worker_keys.push(SpacesKey {
                    access_key: format!("NEWKEY{}", o.worker_keys.len()),
                    state: KeyState::Confirmed,
                    grants: vec![(d.bucket.clone(), key_permission(d).into())],
                });
                if let WorkerObserved::Deployed { secrets } = &mut o.worker {
                    for n in crate::observe::WORKER_SECRET_NAMES {
                        if !secrets.iter().any(|s| s == n) {
                            secrets.push(n.to_owned());
                        }
                    }
                }
            }
            (Resource::WorkerSecret { name }, _) => {
                if let WorkerObserved::Deployed { secrets } = &mut o.worker {
                    secrets.push(name.clone());
                }
            }
            (Resource::OldDoCertificate { id, .. }, _) => o.do_certificates.retain(|c| &c.id != id),
            (Resource::OldOriginCertificate { id }, _) => {
                o.origin_certificates.retain(|c| &c.id != id)
            }
            (Resource::OldWorkerKey { access_key }, _) => {
                o.worker_keys.retain(|k| &k.access_key != access_key)
            }
        }
    }
    o
}

fn only_changes(changes: &[Change]) -> Vec<&Change> {
    changes.iter().filter(|c| c.is_change()).collect()
}

/// Each change (no no-ops) as its resource and action.
fn changed_actions(changes: &[Change]) -> Vec<(String, Action)> {
    only_changes(changes)
        .into_iter()
        .map(|c| (c.resource.to_string(), c.action))
        .collect()
}

#[test]
fn nothing_exists_everything_is_created_in_order() {
    let d = desired();
    let changes = plan(&d, &Observed::default());
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| match c.resource {
            Resource::Bucket => "bucket",
            Resource::Lifecycle => "lifecycle",
            Resource::Versioning => "versioning",
            Resource::Policy => "policy",
            Resource::CacheInfo => "cache-info",
            Resource::OriginCertificate { .. } => "origin",
            Resource::DoCertificate { .. } => "do-cert",
            Resource::CdnEndpoint { .. } => "cdn",
            Resource::DnsRecord { .. } => "dns",
            Resource::WorkerKey { .. } => "worker-key",
            _ => "cleanup",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "bucket",
            "lifecycle",
            "versioning",
            "policy",
            "cache-info",
            "origin",
            "do-cert",
            "cdn",
            "dns",
            "worker-key"
        ]
    );
    assert!(
        changes.iter().all(|c| c.action == Action::Create),
        "{changes:#?}"
    );
    let cdn = &changes[7];
    assert!(
        cdn.reason
            .contains("auto: DigitalOcean's managed certificate"),
        "{}",
        cdn.reason
    );
    assert!(changes[8]
        .reason
        .contains("nix-store.fra1.cdn.digitaloceanspaces.com"));
    assert!(changes[9].reason.contains("worker-secrets.json"));
}

#[test]
fn converged_state_plans_nothing() {
    for o in [
        Overrides::default(),
        Overrides {
            cdn_certificate: Some(CdnCertificate::Managed),
            ..Overrides::default()
        },
        Overrides {
            cdn_certificate: Some(CdnCertificate::OriginCa),
            ..Overrides::default()
        },
        Overrides {
            public_reads: Some(false),
            versioning: Some(false),
            ..Overrides::default()
        },
        Overrides {
            worker_name: Some("nix-cache".into()),
            ..Overrides::default()
        },
        private(),
    ] {
        let d = desired_with(o);
        let changes = plan(&d, &converged(&d));
        assert!(!has_changes(&changes), "{changes:#?}");
    }
}

#[test]
fn after_apply_plan_is_empty() {
    let d = desired();
    let mut expiring = converged(&d);
    expiring.origin_certificates[0].expires_at = NOW + 5 * DAY;
    let mut drifted = converged(&d);
    drifted.lifecycle = Some(vec![Lifecycle {
        expiration_days: Some(7),
        ..d.lifecycle.clone()
    }]);
    drifted.versioning = Some(false);
    drifted.policy = Some(serde_json::json!({"Statement": []}));
    drifted.cache_info = Some(("StoreDir: /gnu/store\n".into(), Some("text/html".into())));
    drifted.cdn.as_mut().unwrap().ttl = 60;
    drifted.dns[0].proxied = false;
    let mut half_made = Observed {
        bucket_exists: true,
        origin_certificates: vec![OriginCertificate {
            id: "123456".into(),
            expires_at: NOW + 365 * DAY,
            sha1_fingerprint: None,
        }],
        worker_keys: vec![SpacesKey {
            access_key: "LOST".into(),
            state: KeyState::Confirmed,
            grants: vec![("nix-store".into(), "read".into())],
        }],
        ..Observed::default()
    };
    // Made by an apply that died before its secret was handed over.
    half_made.worker_keys[0].state = KeyState::Pending;
    for (name, start) in [
        ("empty", Observed::default()),
        ("converged", converged(&d)),
        ("expiring", expiring),
        ("drifted", drifted),
        ("half made", half_made),
    ] {
        let changes = plan(&d, &start);
        let after = simulate_apply(&d, &start, &changes);
        let again = plan(&d, &after);
        assert!(!has_changes(&again), "{name}: {again:#?}");
        assert_eq!(after.origin_certificates.len(), 1, "{name}");
        assert_eq!(after.do_certificates.len(), 1, "{name}");
        assert_eq!(after.worker_keys.len(), 1, "{name}");
    }
}

#[test]
fn each_setting_that_differs_is_one_update() {
    let d = desired();
    type Edit = fn(&mut Observed);
    let cases: [(Edit, &str, Action); 9] = [
        (
            |o| {
                o.lifecycle = Some(vec![Lifecycle {
                    id: "someone-elses".into(),
                    enabled: true,
                    expiration_days: None,
                    expired_object_delete_marker: true,
                    noncurrent_days: Some(30),
                    abort_incomplete_multipart_days: Some(1),
                }])
            },
            "lifecycle rule",
            Action::Update,
        ),
        (|o| o.lifecycle = None, "lifecycle rule", Action::Create),
        (|o| o.versioning = Some(false), "versioning", Action::Update),
        (|o| o.versioning = None, "versioning", Action::Create),
        (
            |o| o.policy = Some(serde_json::json!({})),
            "bucket policy",
            Action::Update,
        ),
        (|o| o.policy = None, "bucket policy", Action::Create),
        (
            |o| o.cache_info = Some(("x".into(), Some(CACHE_INFO_CONTENT_TYPE.into()))),
            "nix-cache-info object",
            Action::Update,
        ),
        (
            |o| o.cache_info.as_mut().unwrap().1 = Some("text/html".into()),
            "nix-cache-info object",
            Action::Update,
        ),
        (
            |o| o.cache_info = None,
            "nix-cache-info object",
            Action::Create,
        ),
    ];
    for (edit, resource, action) in cases {
        let mut o = converged(&d);
        edit(&mut o);
        let changes = plan(&d, &o);
        assert_eq!(
            changed_actions(&changes),
            vec![(resource.to_owned(), action)]
        );
    }
}

#[test]
fn cdn_and_dns_drift() {
    let d = desired();
    let mut o = converged(&d);
    o.cdn.as_mut().unwrap().ttl = 60;
    o.cdn.as_mut().unwrap().custom_domain = None;
    let changes = plan(&d, &o);
    let c = only_changes(&changes);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].action, Action::Update);
    assert!(
        c[0].reason.contains("ttl 60 → 3600")
            && c[0]
                .reason
                .contains("custom domain none → cache.example.com")
    );

    let mut o = converged(&d);
    o.dns[0].content = "elsewhere.example.net".into();
    let changes = plan(&d, &o);
    assert_eq!(
        changed_actions(&changes),
        vec![("dns record dns-1".to_owned(), Action::Update)]
    );

    let mut o = converged(&d);
    o.dns[0].proxied = false;
    assert!(has_changes(&plan(&d, &o)));

    let mut o = converged(&d);
    o.dns = vec![DnsRecord {
        ours: true,
        id: "txt".into(),
        record_type: "TXT".into(),
        content: "x".into(),
        proxied: false,
    }];
    let changes = plan(&d, &o);
    assert_eq!(
        only_changes(&changes)[0].resource,
        Resource::DnsRecord { id: None }
    );
}

#[test]
fn certificate_within_the_rotation_window_is_replaced() {
    let d = desired();
    let mut o = converged(&d);
    o.origin_certificates[0].expires_at = NOW + 29 * DAY;
    o.do_certificates[0].not_after = NOW + 29 * DAY;
    let changes = plan(&d, &o);
    let c = only_changes(&changes);
    let summary: Vec<(String, Action)> = c
        .iter()
        .map(|c| (c.resource.to_string(), c.action))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("origin certificate".to_owned(), Action::Replace),
            ("digitalocean certificate".to_owned(), Action::Replace),
            ("cdn endpoint cdn-1".to_owned(), Action::Update),
            (
                format!(
                    "digitalocean certificate 0b9c3b5e-9d1a-4a54-8b0e-5e0b1c2f3a4d ({})",
                    d.do_certificate_name(ORIGIN_ID)
                ),
                Action::Delete
            ),
            (format!("origin certificate {ORIGIN_ID}"), Action::Delete),
        ]
    );
    assert!(c[0].reason.contains("within 30 days"), "{}", c[0].reason);
    assert!(c[3].reason.contains("CDN switches"), "{}", c[3].reason);

    // 31 days left: kept.
    let mut o = converged(&d);
    o.origin_certificates[0].expires_at = NOW + 31 * DAY;
    assert!(!has_changes(&plan(&d, &o)));

    // A wider window from the config rotates it.
    let wide = desired_with(Overrides {
        rotate_within_days: Some(60),
        worker_name: None,
        ..Overrides::default()
    });
    let mut o = converged(&wide);
    o.origin_certificates[0].expires_at = NOW + 45 * DAY;
    assert_eq!(
        plan(&wide, &o)
            .iter()
            .filter(|c| c.action == Action::Replace)
            .count(),
        2
    );
}

#[test]
fn orphans_of_an_interrupted_apply_are_removed() {
    let d = desired();
    // An origin certificate was issued, but the upload never happened: its key is gone.
    let mut o = converged(&d);
    o.origin_certificates.push(OriginCertificate {
        id: "999".into(),
        expires_at: NOW + 365 * DAY,
        sha1_fingerprint: None,
    });
    o.do_certificates.push(DoCertificate {
        id: "stray".into(),
        name: d.do_certificate_name("888"),
        not_after: NOW + 365 * DAY,
    });
    let changes = plan(&d, &o);
    let c = only_changes(&changes);
    assert_eq!(c.len(), 2, "{c:#?}");
    assert!(c.iter().any(
        |c| c.resource == Resource::OldOriginCertificate { id: "999".into() }
            && c.reason.contains("key is gone")
    ));
    assert!(c
        .iter()
        .any(|c| matches!(&c.resource, Resource::OldDoCertificate { id, .. } if id == "stray")));

    // Only an orphan: a new pair is made, the orphan revoked.
    let o = Observed {
        origin_certificates: vec![OriginCertificate {
            id: "999".into(),
            expires_at: NOW + 365 * DAY,
            sha1_fingerprint: None,
        }],
        ..converged(&d)
    };
    let o = Observed {
        do_certificates: vec![],
        ..o
    };
    let changes = plan(&d, &o);
    assert_eq!(changes[5].action, Action::Create);
    assert!(changes[5].reason.contains("no DigitalOcean upload"));
}

#[test]
fn cdn_certificate_modes() {
    // auto, already on the managed certificate: unchanged, and the plan says why.
    let d = desired();
    let mut o = converged(&d);
    o.cdn.as_mut().unwrap().certificate_id = Some(MANAGED_CERTIFICATE.into());
    let changes = plan(&d, &o);
    assert!(!has_changes(&changes));
    let cdn = changes
        .iter()
        .find(|c| matches!(c.resource, Resource::CdnEndpoint { .. }))
        .unwrap();
    assert!(
        cdn.reason
            .contains("refused the Cloudflare Origin CA certificate"),
        "{}",
        cdn.reason
    );

    // managed, on the origin certificate: switch.
    let managed = desired_with(Overrides {
        cdn_certificate: Some(CdnCertificate::Managed),
        ..Overrides::default()
    });
    let mut o = converged(&managed);
    o.cdn.as_mut().unwrap().certificate_id = Some("0b9c3b5e-9d1a-4a54-8b0e-5e0b1c2f3a4d".into());
    let c = plan(&managed, &o);
    let c = only_changes(&c);
    assert_eq!(c.len(), 1);
    assert!(c[0]
        .reason
        .contains("certificate → DigitalOcean's managed certificate"));

    // origin-ca, on the managed certificate: switch back.
    let origin_ca = desired_with(Overrides {
        cdn_certificate: Some(CdnCertificate::OriginCa),
        ..Overrides::default()
    });
    let mut o = converged(&origin_ca);
    o.cdn.as_mut().unwrap().certificate_id = Some(MANAGED_CERTIFICATE.into());
    let c = plan(&origin_ca, &o);
    assert_eq!(only_changes(&c).len(), 1);
    assert!(only_changes(&c)[0]
        .reason
        .contains("certificate → the origin certificate"));
}

#[test]
fn public_reads_off_deletes_the_policy() {
    let d = desired_with(Overrides {
        public_reads: Some(false),
        ..Overrides::default()
    });
    let mut o = converged(&d);
    o.policy = Some(anonymous_read_policy("nix-store"));
    let changes = plan(&d, &o);
    let c = only_changes(&changes);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].resource.clone(), c[0].action),
        (Resource::Policy, Action::Delete)
    );
    assert!(c[0].reason.contains("public_reads = false"));
}

#[test]
fn versioning_off_suspends_an_enabled_bucket() {
    let d = desired_with(Overrides {
        versioning: Some(false),
        ..Overrides::default()
    });
    let mut o = converged(&d);
    o.versioning = Some(true);
    let changes = plan(&d, &o);
    assert_eq!(only_changes(&changes)[0].reason, "enabled → suspended");
}

#[test]
fn worker_key_without_stored_secret_is_replaced() {
    let d = desired_with(Overrides {
        worker_name: Some("nix-cache".into()),
        ..Overrides::default()
    });
    let mut o = converged(&d);
    o.worker = WorkerObserved::Deployed {
        secrets: vec!["SPACES_ACCESS_KEY_ID".into()],
    };
    let changes = plan(&d, &o);
    let c = only_changes(&changes);
    assert_eq!(c.len(), 2, "{c:#?}");
    assert_eq!(
        (c[0].resource.clone(), c[0].action),
        (Resource::WorkerKey { access_key: None }, Action::Replace)
    );
    assert!(
        c[0].reason.contains("Worker nix-cache's secrets"),
        "{}",
        c[0].reason
    );
    assert_eq!(
        c[1].resource,
        Resource::OldWorkerKey {
            access_key: "DOWORKERKEY".into()
        }
    );

    // A key with wider grants is not the Worker's key.
    let mut o = converged(&d);
    o.worker_keys[0].grants = vec![("nix-store".into(), "fullaccess".into())];
    let changes = plan(&d, &o);
    assert_eq!(only_changes(&changes).len(), 2);
}

#[test]
fn destroy_removes_in_reverse_order() {
    let d = desired();
    let o = converged(&d);
    let kinds: Vec<String> = destroy_plan(&d, &o)
        .iter()
        .map(|c| c.resource.to_string())
        .collect();
    assert_eq!(kinds.len(), 7, "{kinds:#?}");
    assert!(kinds[0].starts_with("worker spaces key"));
    assert!(kinds[1].starts_with("dns record"));
    assert!(kinds[2].starts_with("cdn endpoint"));
    assert!(kinds[3].starts_with("digitalocean certificate"));
    assert!(kinds[4].starts_with("origin certificate"));
    assert_eq!(kinds[5], "nix-cache-info object");
    assert_eq!(kinds[6], "bucket");
    assert!(destroy_plan(&d, &Observed::default()).is_empty());
    assert!(destroy_plan(&d, &o)
        .iter()
        .all(|c| c.action == Action::Delete));
}

#[test]
fn lines_read_like_terraform() {
    let d = desired();
    let changes = plan(&d, &Observed::default());
    assert_eq!(
        changes[0].to_string(),
        "+   create    bucket: nix-store in fra1, private ACL"
    );
    let changes = plan(&d, &converged(&d));
    assert!(changes[2]
        .to_string()
        .starts_with("=   unchanged versioning"));
}

fn in_cloudflare(env_secrets: &[&str]) -> Desired {
    let mut d = desired_with(Overrides {
        worker_name: Some("nix-cache".into()),
        ..Overrides::default()
    });
    d.env_worker_secrets = env_secrets.iter().map(|s| s.to_string()).collect();
    d
}

fn key(access_key: &str, state: KeyState) -> SpacesKey {
    SpacesKey {
        access_key: access_key.into(),
        state,
        grants: vec![("nix-store".into(), "read".into())],
    }
}

#[test]
fn a_worker_not_deployed_yet_waits_and_makes_no_key() {
    let d = in_cloudflare(&["TOKEN_SECRET", "SIGNING_KEY"]);
    let o = Observed {
        worker: WorkerObserved::NotDeployed,
        ..Observed::default()
    };
    let changes = plan(&d, &o);
    let waiting: Vec<&Change> = changes
        .iter()
        .filter(|c| c.action == Action::Wait)
        .collect();
    assert_eq!(waiting.len(), 3, "{waiting:#?}");
    assert_eq!(
        waiting[0].resource,
        Resource::WorkerKey { access_key: None }
    );
    assert!(
        waiting[0]
            .reason
            .contains("run `npx wrangler deploy`, then `cargo run -p provision -- apply`"),
        "{}",
        waiting[0].reason
    );
    assert_eq!(
        waiting[1].resource,
        Resource::WorkerSecret {
            name: "TOKEN_SECRET".into()
        }
    );
    // Waiting is a change for `plan` (exit 2)...
    assert!(has_changes(&changes));
    // ...and no key is made or deleted while it waits, even one left from before.
    let mut with_key = converged(&d);
    with_key.worker = WorkerObserved::NotDeployed;
    let changes = plan(&d, &with_key);
    assert_eq!(
        only_changes(&changes)
            .iter()
            .map(|c| (c.resource.to_string(), c.action))
            .collect::<Vec<_>>(),
        [
            ("worker spaces key".to_owned(), Action::Wait),
            ("worker secret TOKEN_SECRET".to_owned(), Action::Wait),
            ("worker secret SIGNING_KEY".to_owned(), Action::Wait),
        ]
    );
}

#[test]
fn no_proof_of_the_workers_key_makes_a_fresh_one_before_deleting_any() {
    let d = in_cloudflare(&[]);
    let cases = [
        (
            "pending beside confirmed (died before or after storing)",
            vec![
                key("OLD", KeyState::Confirmed),
                key("NEW", KeyState::Pending),
            ],
            "left pending by an interrupted apply",
        ),
        (
            "pending alone (died before the rename)",
            vec![key("NEW", KeyState::Pending)],
            "left pending by an interrupted apply",
        ),
        (
            "two confirmed (died before deleting the old one)",
            vec![
                key("OLD", KeyState::Confirmed),
                key("NEW", KeyState::Confirmed),
            ],
            "2 keys by this name",
        ),
    ];
    for (name, keys, why) in cases {
        let mut o = converged(&d);
        o.worker_keys = keys.clone();
        let changes = plan(&d, &o);
        let c = only_changes(&changes);
        assert_eq!(c[0].action, Action::Replace, "{name}: {c:#?}");
        assert!(c[0].reason.contains(why), "{name}: {}", c[0].reason);
        // Every old key is deleted, and only after the new one (a later step).
        let deleted: Vec<&Resource> = c[1..].iter().map(|c| &c.resource).collect();
        assert_eq!(deleted.len(), keys.len(), "{name}: {c:#?}");
        for k in &keys {
            assert!(deleted.contains(&&Resource::OldWorkerKey {
                access_key: k.access_key.clone()
            }));
        }
        let after = simulate_apply(&d, &o, &changes);
        assert_eq!(after.worker_keys.len(), 1, "{name}");
        assert!(!has_changes(&plan(&d, &after)), "{name}");
    }
}

#[test]
fn the_secrets_file_is_a_hand_over_not_state() {
    // Without Cloudflare, one confirmed key is the Worker's key whether or not the file
    // written for `wrangler secret bulk` is still there.
    let d = desired();
    let o = converged(&d);
    assert_eq!(o.worker, WorkerObserved::NotManaged);
    assert!(!has_changes(&plan(&d, &o)));
}

#[test]
fn secrets_from_the_environment_are_stored_when_missing() {
    let d = in_cloudflare(&["TOKEN_SECRET"]);
    let mut o = converged(&d);
    o.worker = WorkerObserved::Deployed {
        secrets: crate::observe::WORKER_SECRET_NAMES
            .iter()
            .map(|n| n.to_string())
            .collect(),
    };
    let changes = plan(&d, &o);
    assert_eq!(
        only_changes(&changes)
            .iter()
            .map(|c| (c.resource.to_string(), c.action))
            .collect::<Vec<_>>(),
        [("worker secret TOKEN_SECRET".to_owned(), Action::Create)]
    );
    let after = simulate_apply(&d, &o, &changes);
    let again = plan(&d, &after);
    assert!(!has_changes(&again), "{again:#?}");
    assert!(again
        .iter()
        .any(|c| c.reason.contains("npx wrangler secret put TOKEN_SECRET")));
    // Without Cloudflare, the commands to run are printed, naming the variable only.
    let mut file = desired();
    file.env_worker_secrets = vec!["SIGNING_KEY".into()];
    let notes = unmanaged_secret_notes(&file);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("printf %s \"$SIGNING_KEY\" | npx wrangler secret put SIGNING_KEY"));
    assert!(unmanaged_secret_notes(&d).is_empty());
}

#[test]
fn dns_records_provision_did_not_make_are_left_alone() {
    let d = desired();
    for record_type in ["CNAME", "A", "AAAA"] {
        let mut o = converged(&d);
        o.dns = vec![DnsRecord {
            ours: false,
            id: "foreign".into(),
            record_type: record_type.into(),
            content: "elsewhere.example.net".into(),
            proxied: false,
        }];
        let changes = plan(&d, &o);
        let c = only_changes(&changes);
        assert_eq!(
            (c[0].resource.clone(), c[0].action),
            (Resource::DnsRecord { id: None }, Action::Wait),
            "{record_type}"
        );
        assert!(
            c[0].reason.contains("provision did not make"),
            "{}",
            c[0].reason
        );
        assert!(
            !destroy_plan(&d, &o)
                .iter()
                .any(|c| matches!(c.resource, Resource::DnsRecord { .. })),
            "destroy leaves it"
        );
    }
    // A TXT record beside it is no obstacle.
    let mut o = converged(&d);
    o.dns.push(DnsRecord {
        ours: false,
        id: "txt".into(),
        record_type: "TXT".into(),
        content: "v=spf1 -all".into(),
        proxied: false,
    });
    assert!(!has_changes(&plan(&d, &o)));
}

#[test]
fn the_seeds_age_rule_is_replaced_and_the_plan_says_why() {
    let d = desired();
    assert_eq!(d.lifecycle.expiration_days, None, "nothing current expires");
    assert!(d.lifecycle.expired_object_delete_marker);
    assert_eq!(d.lifecycle.noncurrent_days, Some(7));
    let mut o = converged(&d);
    o.lifecycle = Some(vec![Lifecycle {
        id: "nix-cache-expiry".into(),
        enabled: true,
        expiration_days: Some(30),
        expired_object_delete_marker: false,
        noncurrent_days: None,
        abort_incomplete_multipart_days: Some(1),
    }]);
    let changes = plan(&d, &o);
    let lifecycle: Vec<&Change> = changes
        .iter()
        .filter(|c| c.resource == Resource::Lifecycle)
        .collect();
    assert_eq!(lifecycle.len(), 1);
    assert_eq!(lifecycle[0].action, Action::Update);
    let reason = &lifecycle[0].reason;
    assert!(
        reason.contains("current objects never expire")
            && reason.contains(
                "now it expires every object 30 days after it was written, which breaks closures"
            ),
        "{reason}"
    );
    // Once applied, the next plan leaves it alone.
    o.lifecycle = Some(vec![d.lifecycle.clone()]);
    assert!(plan(&d, &o)
        .iter()
        .any(|c| c.resource == Resource::Lifecycle && c.action == Action::Unchanged));
}

#[test]
fn a_worker_that_takes_uploads_gets_a_key_that_may_write() {
    // Serving needs read alone.
    let d = in_cloudflare(&["SIGNING_KEY"]);
    assert_eq!(key_permission(&d), "read");
    // TOKEN_SECRET in provision's environment: the Worker takes uploads, its key must write.
    let d = in_cloudflare(&["TOKEN_SECRET"]);
    assert_eq!(key_permission(&d), "readwrite");
    let mut o = converged(&d);
    assert!(
        only_changes(&plan(&d, &o)).is_empty(),
        "a readwrite key is the Worker's key"
    );
    // A read-only key is replaced by one that may write, and deleted after the hand-over.
    o.worker_keys[0].grants = vec![("nix-store".into(), "read".into())];
    let changes = plan(&d, &o);
    let key = changes
        .iter()
        .find(|c| matches!(c.resource, Resource::WorkerKey { .. }))
        .unwrap();
    assert_eq!(key.action, Action::Replace);
    assert!(
        key.reason.contains("readwrite on nix-store"),
        "{}",
        key.reason
    );
    // TOKEN_SECRET already among the Worker's secrets (a later apply without it in the
    // environment) keeps the key that may write.
    let d = in_cloudflare(&[]);
    let o = Observed {
        worker: WorkerObserved::Deployed {
            secrets: vec!["TOKEN_SECRET".into()],
        },
        ..Observed::default()
    };
    assert_eq!(worker::worker_key_permission(&d, &o), "readwrite");
    // Without a view of the Worker's secrets, a key that may write is not taken away.
    let d = desired();
    let mut o = converged(&d);
    o.worker_keys[0].grants = vec![("nix-store".into(), "readwrite".into())];
    assert!(only_changes(&plan(&d, &o)).is_empty());
}

fn private() -> Overrides {
    Overrides {
        private: Some(true),
        ..Overrides::default()
    }
}

fn cdn_change(changes: &[Change]) -> Option<&Change> {
    changes
        .iter()
        .find(|c| matches!(c.resource, Resource::CdnEndpoint { .. }))
}

fn position(changes: &[Change], wanted: impl Fn(&Resource) -> bool) -> usize {
    changes
        .iter()
        .position(|c| c.is_change() && wanted(&c.resource))
        .unwrap_or_else(|| panic!("no such change: {changes:#?}"))
}

#[test]
fn a_private_cache_creates_no_cdn_endpoint_and_its_cname_targets_the_origin() {
    let d = desired_with(private());
    let changes = plan(&d, &Observed::default());
    let cdn = cdn_change(&changes).unwrap();
    assert_eq!(
        (cdn.resource.clone(), cdn.action),
        (Resource::CdnEndpoint { id: None }, Action::Unchanged)
    );
    assert!(
        cdn.reason.contains(
            "a private cache is served only through the Worker: a CDN endpoint would serve the \
             bucket to anyone"
        ),
        "{}",
        cdn.reason
    );
    let dns = &changes[position(&changes, |r| matches!(r, Resource::DnsRecord { .. }))];
    assert_eq!(dns.action, Action::Create);
    assert!(
        dns.reason
            .contains("cache.example.com → nix-store.fra1.digitaloceanspaces.com, proxied"),
        "{}",
        dns.reason
    );
    assert!(!dns.reason.contains(".cdn."), "{}", dns.reason);
    // After apply: no CDN endpoint, the CNAME on the origin, and nothing left to do.
    let after = simulate_apply(&d, &Observed::default(), &changes);
    assert_eq!(after.cdn, None);
    assert_eq!(
        after.dns[0].content,
        "nix-store.fra1.digitaloceanspaces.com"
    );
    assert_eq!(after.policy, None, "no anonymous reads");
    let again = plan(&d, &after);
    assert!(!has_changes(&again), "{again:#?}");
    // A CNAME left on a CDN hostname is moved to the origin.
    let mut o = converged(&d);
    o.dns[0].content = d.cdn_endpoint.clone();
    let changes = plan(&d, &o);
    assert_eq!(
        changed_actions(&changes),
        vec![("dns record dns-1".to_owned(), Action::Update)]
    );
}

#[test]
fn a_public_cache_made_private_moves_the_cname_then_deletes_its_cdn_endpoint() {
    let public = desired();
    let d = desired_with(private());
    let start = converged(&public);
    let changes = plan(&d, &start);
    let cname = position(&changes, |r| matches!(r, Resource::DnsRecord { .. }));
    let cdn = position(&changes, |r| matches!(r, Resource::CdnEndpoint { .. }));
    assert_eq!(changes[cname].action, Action::Update);
    assert!(
        changes[cname]
            .reason
            .contains("→ nix-store.fra1.digitaloceanspaces.com, proxied"),
        "{}",
        changes[cname].reason
    );
    assert_eq!(
        (changes[cdn].resource.clone(), changes[cdn].action),
        (
            Resource::CdnEndpoint {
                id: Some("cdn-1".into())
            },
            Action::Delete
        )
    );
    assert!(
        cname < cdn,
        "the CNAME leaves the CDN endpoint before it is deleted"
    );
    assert!(
        changes[cdn]
            .reason
            .contains("a CDN endpoint would serve the bucket to anyone"),
        "{}",
        changes[cdn].reason
    );
    // Only the CDN line in the clean-up, and no other CDN line before it.
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c.resource, Resource::CdnEndpoint { .. }))
            .count(),
        1
    );
    // The policy goes too (public_reads defaults to off); nothing else changes.
    assert_eq!(
        changed_actions(&changes),
        vec![
            ("bucket policy".to_owned(), Action::Delete),
            ("dns record dns-1".to_owned(), Action::Update),
            ("cdn endpoint cdn-1".to_owned(), Action::Delete),
        ]
    );
    let after = simulate_apply(&d, &start, &changes);
    assert_eq!(after.cdn, None);
    assert!(!has_changes(&plan(&d, &after)));

    // Rotating at the same time: the CDN endpoint holds the old DigitalOcean certificate, so
    // it is deleted before that certificate is.
    let mut rotating = converged(&public);
    rotating.origin_certificates[0].expires_at = NOW + 5 * DAY;
    rotating.do_certificates[0].not_after = NOW + 5 * DAY;
    let changes = plan(&d, &rotating);
    let cdn = position(&changes, |r| matches!(r, Resource::CdnEndpoint { .. }));
    let old_do = position(&changes, |r| matches!(r, Resource::OldDoCertificate { .. }));
    assert!(cdn < old_do, "{changes:#?}");
    assert!(
        changes[old_do]
            .reason
            .contains("the CDN endpoint that holds it is deleted first"),
        "{}",
        changes[old_do].reason
    );
    let after = simulate_apply(&d, &rotating, &changes);
    assert!(!has_changes(&plan(&d, &after)));
}

#[test]
fn destroy_removes_the_cdn_endpoint_private_or_not() {
    // A cache made private after it had a CDN endpoint, destroyed before the next apply.
    let d = desired_with(private());
    let o = converged(&desired());
    let kinds: Vec<String> = destroy_plan(&d, &o)
        .iter()
        .map(|c| c.resource.to_string())
        .collect();
    assert!(
        kinds.contains(&"cdn endpoint cdn-1".to_owned()),
        "{kinds:#?}"
    );
    // A private cache without one: everything else, and no CDN line.
    let kinds: Vec<String> = destroy_plan(&d, &converged(&d))
        .iter()
        .map(|c| c.resource.to_string())
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:#?}");
    assert!(!kinds.iter().any(|k| k.starts_with("cdn endpoint")));
    assert!(kinds[1].starts_with("dns record"));
}
