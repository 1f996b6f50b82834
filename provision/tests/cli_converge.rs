//! provision against fakes that answer like the live APIs, in the situations a real account
//! brings: the README's order from empty accounts (the Worker deployed after the first
//! apply), resources provision did not make beside its own, lists that span pages, a zone
//! below a public suffix, a private cache (no CDN endpoint), and an apply that dies at any step.

mod fakes;
mod moto;
mod rig;

use fakes::{Fault, FaultKind};
use moto::start_moto;
use rig::{Rig, CF_TOKEN, DO_TOKEN, HOSTNAME, SCRIPT};
use serde_json::{json, Value};

const TOKEN_SECRET: &str = "token-secret-for-tests-7d3f0a9c2b1e4d5f";
const SIGNING_KEY: &str =
    "cache.example.com-1:dGVzdC1zaWduaW5nLWtleS1ub3QtcmVhbC0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==";

/// Runs provision with `TOKEN_SECRET` and `SIGNING_KEY` set.
fn with_worker_secrets(rig: &Rig, args: &[&str]) -> rig::Run {
    let mut c = rig.command(args);
    c.env("TOKEN_SECRET", TOKEN_SECRET)
        .env("SIGNING_KEY", SIGNING_KEY);
    rig.run_with(c, "")
}

fn api(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let request = ureq::request(method, url).set("Authorization", &format!("Bearer {token}"));
    let result = match body {
        Some(b) => request.send_json(b),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn the_readmes_sequence_from_empty_accounts() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-readme", true, "");
    // Empty accounts: the Worker was never deployed.
    rig.cloudflare.delete_script(SCRIPT);

    // 1. plan: everything to create, the Worker's key waiting for the Worker.
    let plan = with_worker_secrets(&rig, &["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("..  waiting   worker spaces key")
            && plan.stdout.contains("npx wrangler deploy")
            && plan
                .stdout
                .contains("..  waiting   worker secret TOKEN_SECRET")
            && plan.stdout.contains("3 waiting."),
        "{plan:?}"
    );

    // 2. apply: no failed step, no stray key; it says what to run next.
    let apply = with_worker_secrets(&rig, &["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(!apply.stderr.contains("error"), "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("Waiting: 3 step(s) could not run yet")
            && apply
                .stdout
                .contains("run `npx wrangler deploy`, then `cargo run -p provision -- apply`"),
        "{apply:?}"
    );
    assert!(rig.digitalocean.spaces_keys().is_empty(), "no stray key");
    assert_eq!(rig.cloudflare.dns_records().len(), 1);
    assert_eq!(rig.digitalocean.cdn_endpoints().len(), 1);

    // 3. plan: still waiting, so not "nothing to do".
    let plan = with_worker_secrets(&rig, &["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains("0 to create"), "{plan:?}");

    // 4. `npx wrangler deploy`; 5. apply finishes the job.
    rig.cloudflare.deploy_script(SCRIPT);
    let apply = with_worker_secrets(&rig, &["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(!apply.stdout.contains("Waiting"), "{apply:?}");
    rig.assert_converged_taking_uploads();
    let account = rig.account.clone().unwrap();
    for (name, value) in [("TOKEN_SECRET", TOKEN_SECRET), ("SIGNING_KEY", SIGNING_KEY)] {
        assert_eq!(
            rig.cloudflare
                .secret_value(&account, SCRIPT, name)
                .as_deref(),
            Some(value),
            "{name}"
        );
    }

    // 6. plan: nothing to do.
    let plan = with_worker_secrets(&rig, &["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    rig.assert_no_violations();
    rig.assert_no_leaks(&[TOKEN_SECRET.to_owned(), SIGNING_KEY.to_owned()]);
}

#[test]
fn without_cloudflare_the_worker_secret_commands_are_printed_not_the_values() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-unmanaged", false, "");
    let apply = with_worker_secrets(&rig, &["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("printf %s \"$TOKEN_SECRET\" | npx wrangler secret put TOKEN_SECRET")
            && apply
                .stdout
                .contains("printf %s \"$SIGNING_KEY\" | npx wrangler secret put SIGNING_KEY"),
        "{apply:?}"
    );
    rig.assert_converged_taking_uploads();
    // The secrets file is a hand-over: once it is gone (`wrangler secret bulk` ran), the key
    // stays and no new one is made.
    let key = rig.digitalocean.spaces_keys()[0]["access_key"].clone();
    std::fs::remove_file(rig.secrets_file()).unwrap();
    let plan = rig.run(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let again = rig.run(&["apply"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
    assert_eq!(rig.digitalocean.spaces_keys().len(), 1);
    assert_eq!(rig.digitalocean.spaces_keys()[0]["access_key"], key);
    rig.assert_no_violations();
    rig.assert_no_leaks(&[TOKEN_SECRET.to_owned(), SIGNING_KEY.to_owned()]);
}

/// What someone else made in the same accounts.
struct Foreign {
    origin_certificate: String,
    do_certificates: Vec<String>,
    dns_record: String,
    spaces_key: String,
}

fn place_foreign_resources(rig: &Rig) -> Foreign {
    // An Origin CA certificate for the same hostname, from someone else's CSR.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(vec![HOSTNAME.to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let (status, body) = api(
        "POST",
        &format!("{}/certificates", rig.cloudflare.url()),
        CF_TOKEN,
        Some(
            json!({"hostnames": [HOSTNAME], "request_type": "origin-ecc",
                    "requested_validity": 365, "csr": csr}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let origin_certificate = body["result"]["id"].as_str().unwrap().to_owned();
    // DigitalOcean certificates named like provision's: one for the same hostname, one for
    // a look-alike (`cache-example.com`) under the name the old scheme gave both.
    let mut do_certificates = Vec::new();
    for (name, host) in [
        ("cache-example-com-origin-000000000001", HOSTNAME),
        ("cache-example-com-origin-000000000002", "cache-example.com"),
    ] {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (status, body) = api(
            "POST",
            &format!("{}/v2/certificates", rig.digitalocean.url()),
            DO_TOKEN,
            Some(
                json!({"name": name, "type": "custom", "private_key": key.serialize_pem(),
                        "leaf_certificate": cert.pem()}),
            ),
        );
        assert_eq!(status, 201, "{body}");
        do_certificates.push(body["certificate"]["id"].as_str().unwrap().to_owned());
    }
    // Another record in the zone.
    let zone_id = rig.cloudflare.zone_id("example.com").unwrap();
    let (status, body) = api(
        "POST",
        &format!("{}/zones/{zone_id}/dns_records", rig.cloudflare.url()),
        CF_TOKEN,
        Some(json!({"type": "A", "name": "www.example.com", "content": "192.0.2.10", "ttl": 300})),
    );
    assert_eq!(status, 200, "{body}");
    let dns_record = body["result"]["id"].as_str().unwrap().to_owned();
    // Another Spaces key on the same bucket.
    let (status, body) = api(
        "POST",
        &format!("{}/v2/spaces/keys", rig.digitalocean.url()),
        DO_TOKEN,
        Some(
            json!({"name": "ci-pusher", "grants": [{"bucket": rig.bucket, "permission": "readwrite"}]}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let spaces_key = body["key"]["access_key"].as_str().unwrap().to_owned();
    Foreign {
        origin_certificate,
        do_certificates,
        dns_record,
        spaces_key,
    }
}

fn ids(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_foreign_untouched(rig: &Rig, f: &Foreign, when: &str) {
    assert!(
        ids(&rig.cloudflare.origin_certificates(), "id").contains(&f.origin_certificate),
        "{when}: the foreign origin certificate was revoked"
    );
    let certs = ids(&rig.digitalocean.certificates(), "id");
    for id in &f.do_certificates {
        assert!(
            certs.contains(id),
            "{when}: DigitalOcean certificate {id} was deleted"
        );
    }
    assert!(
        ids(&rig.cloudflare.dns_records(), "id").contains(&f.dns_record),
        "{when}: the foreign DNS record was deleted"
    );
    assert!(
        ids(&rig.digitalocean.spaces_keys(), "access_key").contains(&f.spaces_key),
        "{when}: the foreign Spaces key was deleted"
    );
}

/// Foreign resources, placed first, are untouched by apply, rotation and destroy; every list
/// spans pages (one item a page), so provision must read each to its end.
#[test]
fn what_provision_did_not_make_is_left_alone() {
    let moto = start_moto();
    let rig = Rig::new(
        &moto,
        "nix-store-foreign",
        true,
        "[cdn]\ncertificate = \"origin-ca\"\n",
    );
    rig.digitalocean.set_refuse_origin_ca_on_cdn(false);
    let foreign = place_foreign_resources(&rig);
    rig.digitalocean.set_max_per_page(1);
    rig.cloudflare.set_max_per_page(1);

    let apply = rig.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_foreign_untouched(&rig, &foreign, "apply");
    assert_eq!(rig.cloudflare.origin_certificates().len(), 2);
    assert_eq!(rig.digitalocean.certificates().len(), 3);
    let plan = rig.run(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    // Lists were followed past their first page.
    assert!(rig
        .digitalocean
        .calls()
        .iter()
        .any(|c| c.path.starts_with("/v2/certificates?") && c.path.contains("page=3")));

    // Rotation, 340 days on.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let later = (now + 340 * 86_400).to_string();
    let mut rotate = rig.command(&["--certificate-validity-days", "730", "apply"]);
    rotate.env("PROVISION_NOW", &later);
    let rotate = rig.run_with(rotate, "");
    assert_eq!(rotate.code, 0, "{rotate:?}");
    assert!(
        rotate.stdout.contains("rotate with a new key"),
        "{rotate:?}"
    );
    assert_foreign_untouched(&rig, &foreign, "rotation");
    assert_eq!(rig.cloudflare.origin_certificates().len(), 2);

    let destroy = rig.run(&["destroy", "--yes"]);
    assert_eq!(destroy.code, 0, "{destroy:?}");
    assert_foreign_untouched(&rig, &foreign, "destroy");
    assert_eq!(rig.cloudflare.origin_certificates().len(), 1);
    assert_eq!(rig.digitalocean.certificates().len(), 2);
    assert_eq!(rig.cloudflare.dns_records().len(), 1);
    assert_eq!(rig.digitalocean.spaces_keys().len(), 1);
    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);
}

/// A CNAME provision did not make at the hostname: the step waits, naming the record and
/// what to do; nothing is overwritten.
#[test]
fn a_cname_someone_else_made_is_not_taken_over() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-cname", false, "");
    let zone_id = rig.cloudflare.zone_id("example.com").unwrap();
    let (status, body) = api(
        "POST",
        &format!("{}/zones/{zone_id}/dns_records", rig.cloudflare.url()),
        CF_TOKEN,
        Some(
            json!({"type": "CNAME", "name": HOSTNAME, "content": "elsewhere.example.net", "ttl": 300}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let apply = rig.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply.stdout.contains("provision did not make")
            && apply.stdout.contains("elsewhere.example.net"),
        "{apply:?}"
    );
    let dns = rig.cloudflare.dns_records();
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0]["content"], "elsewhere.example.net");
    assert_eq!(rig.run(&["plan"]).code, 2);
    let destroy = rig.run(&["destroy", "--yes"]);
    assert_eq!(destroy.code, 0, "{destroy:?}");
    assert_eq!(rig.cloudflare.dns_records().len(), 1, "destroy leaves it");
    rig.assert_no_violations();
}

/// `cache.example.co.uk` is in `example.co.uk`, not `co.uk` (nor a zone named by the last
/// two labels): the zone is the longest of the account's zones that is a suffix.
#[test]
fn the_zone_is_the_longest_account_zone_that_holds_the_hostname() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-couk", false, "");
    rig.cloudflare.add_zone("co.uk");
    rig.cloudflare.add_zone("example.co.uk");
    rig.cloudflare.set_max_per_page(1);
    std::fs::write(
        rig.dir.path().join("provision.toml"),
        format!(
            "hostname = \"cache.example.co.uk\"\nregion = \"fra1\"\nbucket = \"{}\"\n",
            rig.bucket
        ),
    )
    .unwrap();
    let apply = rig.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let dns = rig.cloudflare.dns_records();
    assert_eq!(dns.len(), 1, "{dns:#?}");
    assert_eq!(dns[0]["zone_name"], "example.co.uk");
    assert_eq!(dns[0]["name"], "cache.example.co.uk");
    assert_eq!(rig.run(&["plan"]).code, 0);

    // A list longer than the page limit is an error, not a cut list.
    let mut short = rig.command(&["plan"]);
    short.env("PROVISION_MAX_PAGES", "2");
    let run = rig.run_with(short, "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("the list goes on past 2 pages"),
        "{run:?}"
    );
    rig.assert_no_violations();
}

/// The fake stops answering at one step (every call there fails until the test clears the
/// fault), or performs it and loses the answer; the next apply converges to exactly one of
/// each resource, and the key that exists is the one the Worker holds.
#[test]
fn an_apply_that_dies_at_any_step_is_finished_by_the_next() {
    let moto = start_moto();
    let dead = FaultKind::Status(503);
    let lost = FaultKind::AfterEffect(502);
    // (provider, method, path, fault, rotate first)
    let steps: Vec<(&str, &str, &str, FaultKind, bool)> = vec![
        ("cf", "POST", "/certificates", dead.clone(), false),
        ("do", "POST", "/v2/certificates", dead.clone(), false),
        ("do", "POST", "/v2/cdn/endpoints", dead.clone(), false),
        ("cf", "POST", "/zones/", dead.clone(), false),
        ("do", "POST", "/v2/spaces/keys", dead.clone(), false),
        ("do", "POST", "/v2/spaces/keys", lost.clone(), false),
        ("cf", "PUT", "/accounts/", dead.clone(), false),
        ("cf", "PUT", "/accounts/", lost.clone(), false),
        ("do", "PATCH", "/v2/spaces/keys/", dead.clone(), false),
        ("do", "PATCH", "/v2/spaces/keys/", lost.clone(), false),
        // While the Worker's key is replaced (its secret was lost).
        ("do", "POST", "/v2/spaces/keys", dead.clone(), true),
        ("cf", "PUT", "/accounts/", dead.clone(), true),
        ("do", "PATCH", "/v2/spaces/keys/", dead.clone(), true),
        ("do", "DELETE", "/v2/spaces/keys/", dead.clone(), true),
        ("do", "DELETE", "/v2/spaces/keys/", lost.clone(), true),
    ];
    let mut report = Vec::new();
    for (i, (provider, method, path, kind, rotate)) in steps.into_iter().enumerate() {
        let rig = Rig::new(&moto, &format!("nix-store-died-{i}"), true, "");
        let what = format!(
            "{method} {path} {kind:?}{}",
            if rotate { " (rotating)" } else { "" }
        );
        if rotate {
            assert_eq!(rig.run(&["apply"]).code, 0, "{what}: first apply");
            let account = rig.account.clone().unwrap();
            let (status, _) = api(
                "DELETE",
                &format!(
                    "{}/accounts/{account}/workers/scripts/{SCRIPT}/secrets/SPACES_SECRET_ACCESS_KEY",
                    rig.cloudflare.url()
                ),
                CF_TOKEN,
                None,
            );
            assert_eq!(status, 200);
        }
        let fault = Fault {
            method,
            path_prefix: path.to_owned(),
            kind: kind.clone(),
            times: if matches!(kind, FaultKind::AfterEffect(_)) {
                1
            } else {
                1000
            },
        };
        if provider == "cf" {
            rig.cloudflare.inject(fault);
        } else {
            rig.digitalocean.inject(fault);
        }
        let first = rig.run(&["apply"]);
        let fired = if provider == "cf" {
            rig.cloudflare.calls()
        } else {
            rig.digitalocean.calls()
        }
        .iter()
        .any(|c| c.method == method && c.path.starts_with(path) && c.status >= 500);
        assert!(fired, "{what}: the fault never fired: {first:?}");
        rig.cloudflare.clear_faults();
        rig.digitalocean.clear_faults();
        // `plan` never says "nothing to do" while the Worker's key is not settled.
        let keys = rig.digitalocean.spaces_keys();
        let account = rig.account.clone().unwrap();
        let held = rig
            .cloudflare
            .secret_value(&account, SCRIPT, "SPACES_ACCESS_KEY_ID");
        let settled = keys.len() == 1
            && keys[0]["name"] == format!("{}-worker-read", rig.bucket)
            && held.as_deref() == keys[0]["access_key"].as_str()
            && rig
                .cloudflare
                .worker_secrets(&account, SCRIPT)
                .contains(&"SPACES_SECRET_ACCESS_KEY".to_owned());
        let plan = rig.run(&["plan"]);
        if !settled {
            assert_eq!(plan.code, 2, "{what}: the key is not settled: {plan:?}");
        }
        let second = rig.run(&["apply"]);
        assert_eq!(second.code, 0, "{what}: second apply: {second:?}");
        rig.assert_converged();
        let plan = rig.run(&["plan"]);
        assert_eq!(plan.code, 0, "{what}: {plan:?}");
        rig.assert_no_violations();
        rig.assert_no_leaks(&[]);
        report.push(format!("{what:<60} first apply exit {}", first.code));
    }
    println!("{}", report.join("\n"));
}

/// `--key-out` writes the key only once its certificate exists: an apply that stops at the
/// Origin CA leaves no key file behind, and the next one writes it.
#[test]
fn key_out_waits_for_the_certificate() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-keywait", false, "");
    rig.cloudflare.inject(Fault {
        method: "POST",
        path_prefix: "/certificates".into(),
        kind: FaultKind::Status(503),
        times: 1000,
    });
    let first = rig.run(&["apply", "--key-out", "origin.key"]);
    assert_eq!(first.code, 1, "{first:?}");
    assert!(
        first
            .stderr
            .contains("apply: origin certificate for cache.example.com"),
        "{first:?}"
    );
    assert!(!rig.dir.path().join("origin.key").exists());
    rig.cloudflare.clear_faults();
    let second = rig.run(&["apply", "--key-out", "origin.key"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(rig.dir.path().join("origin.key").exists());
    rig.assert_converged();
    let pem = std::fs::read_to_string(rig.dir.path().join("origin.key")).unwrap();
    let body: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    rig.assert_no_violations();
    rig.assert_no_leaks(&body);
}

/// What a converged private cache holds at the fakes: no CDN endpoint of its own, the proxied
/// CNAME on the bucket's origin, no anonymous-read policy.
fn assert_private(rig: &Rig) {
    let origin = format!("{}.{}.digitaloceanspaces.com", rig.bucket, rig::REGION);
    assert!(
        !rig.digitalocean
            .cdn_endpoints()
            .iter()
            .any(|e| e["origin"] == origin.as_str()),
        "a private cache has no CDN endpoint: {:#?}",
        rig.digitalocean.cdn_endpoints()
    );
    let dns = rig.cloudflare.dns_records();
    assert_eq!(dns.len(), 1, "{dns:#?}");
    assert_eq!(dns[0]["type"], "CNAME");
    assert_eq!(dns[0]["name"], HOSTNAME);
    assert_eq!(dns[0]["content"], origin.as_str());
    assert_eq!(dns[0]["proxied"], true);
    assert_eq!(rig.moto.s3().get_policy(&rig.bucket).unwrap(), None);
    assert_eq!(rig.digitalocean.spaces_keys().len(), 1);
}

/// `private = true` from empty accounts: no CDN endpoint is made, the CNAME targets the
/// bucket's origin, a second plan has nothing to do, and destroy removes everything.
#[test]
fn a_private_cache_from_empty_accounts() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-private", true, "private = true\n");
    let apply = rig.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply.stdout.contains(
            "cdn endpoint: none: a private cache is served only through the Worker: a CDN \
             endpoint would serve the bucket to anyone"
        ),
        "{apply:?}"
    );
    assert!(
        !rig.digitalocean
            .calls()
            .iter()
            .any(|c| c.method != "GET" && c.path.starts_with("/v2/cdn/endpoints")),
        "no CDN call but reads"
    );
    assert!(rig.digitalocean.cdn_endpoints().is_empty());
    assert_private(&rig);

    let plan = rig.run(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("=   unchanged dns record")
            && plan.stdout.contains(
                "CNAME cache.example.com → nix-store-private.fra1.digitaloceanspaces.com, \
                 proxied (the bucket's origin"
            ),
        "{plan:?}"
    );
    let output = rig.run(&["output"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(output.stdout.contains("PRIVATE = \"1\""), "{output:?}");
    assert!(!output.stdout.contains(".cdn."), "{output:?}");

    let destroy = rig.run(&["destroy", "--yes"]);
    assert_eq!(destroy.code, 0, "{destroy:?}");
    rig.assert_gone();
    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);
}

/// A public cache switched to `private = true`: the CNAME moves to the bucket's origin first,
/// then provision's CDN endpoint is deleted; a CDN endpoint on another origin is left alone,
/// by apply and by destroy.
#[test]
fn a_public_cache_made_private_moves_its_cname_then_deletes_its_cdn_endpoint() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-goprivate", false, "");
    let (status, body) = api(
        "POST",
        &format!("{}/v2/cdn/endpoints", rig.digitalocean.url()),
        DO_TOKEN,
        Some(json!({"origin": "someone-else.fra1.digitaloceanspaces.com", "ttl": 600})),
    );
    assert_eq!(status, 201, "{body}");
    let foreign = body["endpoint"]["id"].as_str().unwrap().to_owned();

    let apply = rig.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let ours: Vec<String> = ids(&rig.digitalocean.cdn_endpoints(), "id")
        .into_iter()
        .filter(|id| *id != foreign)
        .collect();
    assert_eq!(ours.len(), 1);
    let ours = ours[0].clone();
    assert_eq!(rig.run(&["plan"]).code, 0);

    // The operator turns the cache private.
    let config = rig.dir.path().join("provision.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("private = true\n{text}")).unwrap();
    let plan = rig.run(&["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains(&format!("-   delete    cdn endpoint {ours}: "))
            && plan
                .stdout
                .contains("a CDN endpoint would serve the bucket to anyone"),
        "{plan:?}"
    );
    let before = rig.counts();
    let apply = rig.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    // Apply prints each step as it performs it: the CNAME moves before the CDN goes.
    let cname_at = apply.stdout.find("~   update    dns record").unwrap();
    let cdn_at = apply
        .stdout
        .find(&format!("-   delete    cdn endpoint {ours}"))
        .unwrap();
    assert!(cname_at < cdn_at, "{apply:?}");
    let calls = rig.calls_since(before);
    assert!(
        calls
            .iter()
            .any(|c| c.contains(&format!("DELETE /v2/cdn/endpoints/{ours} 204"))),
        "{calls:#?}"
    );
    assert!(!calls.iter().any(|c| c.contains(&foreign)), "{calls:#?}");
    assert_eq!(
        ids(&rig.digitalocean.cdn_endpoints(), "id"),
        std::slice::from_ref(&foreign)
    );
    assert_private(&rig);
    let plan = rig.run(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");

    let destroy = rig.run(&["destroy", "--yes"]);
    assert_eq!(destroy.code, 0, "{destroy:?}");
    assert_eq!(ids(&rig.digitalocean.cdn_endpoints(), "id"), [foreign]);
    assert!(rig.cloudflare.dns_records().is_empty());
    assert!(rig.digitalocean.certificates().is_empty());
    assert!(rig.digitalocean.spaces_keys().is_empty());
    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);
}

/// `[cdn]` settings with `private = true`, in the file or as flags, are refused before any
/// call: nothing changes at the fakes.
#[test]
fn cdn_settings_with_a_private_cache_are_refused_and_nothing_changes() {
    let moto = start_moto();
    let rig = Rig::new(
        &moto,
        "nix-store-privcdn",
        false,
        "private = true\n[cdn]\nttl = 600\n",
    );
    let moto_before = moto.requests();
    for args in [&["plan"][..], &["apply"]] {
        let run = rig.run(args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(
            run.stderr
                .contains("config: private = true but cdn.ttl = 600 is set")
                && run.stderr.contains(
                    "Remove the [cdn] section and the --cdn-* flags, or set private = false"
                ),
            "{run:?}"
        );
    }
    let config = rig.dir.path().join("provision.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[cdn]\nttl = 600\n", "")).unwrap();
    let run = rig.run(&["--cdn-certificate", "managed", "apply"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("private = true but --cdn-certificate managed is set"),
        "{run:?}"
    );
    assert!(rig.digitalocean.calls().is_empty());
    assert!(rig.cloudflare.calls().is_empty());
    assert_eq!(moto.requests(), moto_before);
    assert_eq!(
        moto.s3().head_bucket(&rig.bucket).unwrap(),
        provision::api::spaces::BucketStatus::Missing
    );
    rig.assert_no_violations();
}
