//! The `provision` binary end to end, on 127.0.0.1 only: DigitalOcean and Cloudflare as the
//! strict in-process fakes (`fakes`), Spaces as `moto_server` in auth mode (it does bucket
//! settings and objects, and rejects wrong keys).
//!
//! Every run's stdout and stderr, and every file a run leaves, is scanned for the secrets in
//! play (tokens, Spaces secrets, private keys).

mod fakes;
mod moto;
mod rig;

use fakes::{Fault, FaultKind};
use moto::start_moto;
use rig::{Rig, CF_TOKEN, SCRIPT};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn plan_apply_plan_destroy_against_the_test_servers() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store", false, "");
    let mut table = Vec::new();
    let mut calls = Vec::new();

    let before = rig.counts();
    let (plan, n) = rig.counted(&["plan"]);
    calls.push(("plan", rig.calls_since(before)));
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("+   create    bucket: nix-store in fra1, private ACL"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("10 to create, 0 to update"),
        "{plan:?}"
    );
    table.push(("plan", plan.code, n));

    let before = rig.counts();
    let (apply, n) = rig.counted(&["apply"]);
    calls.push(("apply", rig.calls_since(before)));
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("auto: switching the CDN to DigitalOcean's managed certificate"),
        "{apply:?}"
    );
    assert!(apply
        .stdout
        .contains("invalid certificate issued by Cloudflare origin CA"));
    assert!(apply.stdout.contains("wrangler secret bulk"), "{apply:?}");
    table.push(("apply", apply.code, n));
    rig.assert_converged();
    let cdn = rig.digitalocean.cdn_endpoints();
    assert_eq!(cdn[0]["certificate_id"], "needs-cloudflare-cert");

    let before = rig.counts();
    let (again, n) = rig.counted(&["plan"]);
    calls.push(("plan", rig.calls_since(before)));
    assert_eq!(again.code, 0, "the plan after apply is empty: {again:?}");
    assert!(again
        .stdout
        .contains("0 to create, 0 to update, 0 to replace, 0 to delete, 10 unchanged"));
    assert!(again
        .stdout
        .contains("auto: the CDN refused the Cloudflare Origin CA certificate"));
    table.push(("plan", again.code, n));

    let json = rig.expect(&["plan", "--json"], 0);
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["has_changes"], false);
    assert_eq!(json["changes"].as_array().unwrap().len(), 10);

    let (output, n) = rig.counted(&["output"]);
    assert_eq!(output.code, 0);
    assert!(output
        .stdout
        .contains("extra-substituters = https://cache.example.com"));
    assert!(output
        .stdout
        .contains(&format!("endpoint=127.0.0.1:{}", moto.port)));
    table.push(("output", output.code, n));

    let before = rig.counts();
    let (destroy, n) = rig.counted(&["destroy", "--yes"]);
    calls.push(("destroy --yes", rig.calls_since(before)));
    assert_eq!(destroy.code, 0, "{destroy:?}");
    table.push(("destroy", destroy.code, n));
    rig.assert_gone();
    let (after, n) = rig.counted(&["plan"]);
    assert_eq!(after.code, 2);
    table.push(("plan", after.code, n));

    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);

    println!("\nprovision against the test servers (fakes for DigitalOcean and Cloudflare, moto for Spaces):");
    println!(
        "{:<8} {:>4} {:>13} {:>11} {:>7}",
        "command", "exit", "DigitalOcean", "Cloudflare", "Spaces"
    );
    for (command, code, n) in &table {
        println!(
            "{command:<8} {code:>4} {:>13} {:>11} {:>7}",
            n.digitalocean, n.cloudflare, n.spaces
        );
    }
    println!("\n--- apply output ---\n{}", apply.stdout);
    for (command, lines) in &calls {
        println!(
            "--- API calls of `provision {command}` ({}) ---",
            lines.len()
        );
        for line in lines {
            println!("  {line}");
        }
    }
}

#[test]
fn worker_key_goes_straight_into_the_workers_secrets() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-cf", true, "");
    let apply = rig.expect(&["apply"], 0);
    assert!(
        apply
            .stdout
            .contains("stored as Worker nix-cache's secrets"),
        "{apply:?}"
    );
    assert!(
        !rig.secrets_file().exists(),
        "no secrets file when Cloudflare holds them"
    );
    rig.assert_converged();
    rig.expect(&["plan"], 0);

    // A lost secret (deleted from the Worker) makes a new key, and the old one goes.
    let old_key = rig.digitalocean.spaces_keys()[0]["access_key"].clone();
    let account = rig.account.clone().unwrap();
    let deleted = ureq::delete(&format!(
        "{}/accounts/{account}/workers/scripts/{SCRIPT}/secrets/SPACES_SECRET_ACCESS_KEY",
        rig.cloudflare.url()
    ))
    .set("Authorization", &format!("Bearer {CF_TOKEN}"))
    .call();
    assert!(deleted.is_ok());
    let plan = rig.expect(&["plan"], 2);
    assert!(
        plan.stdout.contains("-/+ replace   worker spaces key"),
        "{plan:?}"
    );
    rig.expect(&["apply"], 0);
    rig.assert_converged();
    assert_ne!(rig.digitalocean.spaces_keys()[0]["access_key"], old_key);
    rig.expect(&["plan"], 0);

    rig.expect(&["destroy", "--yes"], 0);
    rig.assert_gone();
    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);
}

/// One fault per step, in turn: the failed apply is finished by the next one, and the fakes
/// then hold exactly one of each resource.
fn faults_converge(bucket_prefix: &str, faults: Vec<(&'static str, &'static str, bool)>) {
    let moto = start_moto();
    let kinds = [
        FaultKind::Status(500),
        FaultKind::RateLimited {
            retry_after_secs: 1,
        },
        FaultKind::Timeout,
        FaultKind::Malformed,
        FaultKind::AfterEffect(500),
    ];
    let mut report = Vec::new();
    for (i, (method, path, is_cloudflare)) in faults.iter().enumerate() {
        for (j, kind) in kinds.iter().enumerate() {
            let rig = Rig::new(
                &moto,
                &format!("{bucket_prefix}-{i}-{j}"),
                i % 2 == 0 || path.starts_with("/accounts/"),
                "",
            );
            let fault = Fault {
                method,
                path_prefix: path.to_string(),
                kind: kind.clone(),
                times: 1,
            };
            if *is_cloudflare {
                rig.cloudflare.inject(fault);
            } else {
                rig.digitalocean.inject(fault);
            }
            let first = rig.run(&["apply"]);
            assert!(
                first.code == 0 || first.code == 1,
                "{method} {path} {kind:?}: {first:?}"
            );
            let expected = match kind {
                FaultKind::Status(s) | FaultKind::AfterEffect(s) => *s,
                FaultKind::RateLimited { .. } => 429,
                FaultKind::Timeout => 0,
                FaultKind::Malformed => 200,
            };
            let calls = if *is_cloudflare {
                rig.cloudflare.calls()
            } else {
                rig.digitalocean.calls()
            };
            assert!(
                calls.iter().any(|c| c.method == *method
                    && c.path.starts_with(path)
                    && c.status == expected),
                "{method} {path} {kind:?}: the fault never fired: {calls:#?}"
            );
            if first.code == 0 {
                // Handled within the apply: retried, or found what the lost call made.
                rig.assert_converged();
            }
            if first.code == 1 {
                assert!(
                    first.stderr.contains("error: ")
                        && (first.stderr.contains(" answered ")
                            || first.stderr.contains("no answer")
                            || first.stderr.contains("cannot read")),
                    "{method} {path} {kind:?}: the error names the provider's answer: {first:?}"
                );
            }
            let second = rig.run(&["apply"]);
            assert_eq!(
                second.code, 0,
                "{method} {path} {kind:?}: second apply: {second:?}"
            );
            rig.assert_converged();
            let plan = rig.run(&["plan"]);
            assert_eq!(plan.code, 0, "{method} {path} {kind:?}: {plan:?}");
            rig.assert_no_violations();
            rig.assert_no_leaks(&[]);
            report.push(format!(
                "{method:<6} {path:<20} {:<40} first apply exit {}",
                format!("{kind:?}"),
                first.code
            ));
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn digitalocean_faults_converge() {
    faults_converge(
        "do-fault",
        vec![
            ("POST", "/v2/certificates", false),
            ("POST", "/v2/cdn/endpoints", false),
            ("POST", "/v2/spaces/keys", false),
            ("GET", "/v2/certificates", false),
        ],
    );
}

#[test]
fn cloudflare_faults_converge() {
    faults_converge(
        "cf-fault",
        vec![
            ("POST", "/certificates", true),
            ("POST", "/zones/", true),
            ("GET", "/zones", true),
            ("PUT", "/accounts/", true),
        ],
    );
}

#[test]
fn certificate_near_expiry_is_rotated() {
    let moto = start_moto();
    let rig = Rig::new(
        &moto,
        "nix-store-rotate",
        false,
        "[cdn]\ncertificate = \"origin-ca\"\n",
    );
    rig.digitalocean.set_refuse_origin_ca_on_cdn(false);
    rig.expect(&["apply"], 0);
    rig.assert_converged();
    let old_origin = rig.cloudflare.origin_certificates()[0]["id"].clone();
    let old_do = rig.digitalocean.certificates()[0]["id"].clone();
    assert_eq!(
        rig.digitalocean.cdn_endpoints()[0]["certificate_id"],
        old_do
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // 340 days on, the 365-day certificate expires within 30 days. The fake Origin CA dates
    // certificates by the real clock, so the new one is asked for 730 days.
    let later = (now + 340 * 86_400).to_string();
    let mut plan = rig.command(&["--certificate-validity-days", "730", "plan"]);
    plan.env("PROVISION_NOW", &later);
    let plan = rig.run_with(plan, "");
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("within 30 days: rotate with a new key"),
        "{plan:?}"
    );
    let mut apply = rig.command(&["--certificate-validity-days", "730", "apply"]);
    apply.env("PROVISION_NOW", &later);
    let apply = rig.run_with(apply, "");
    assert_eq!(apply.code, 0, "{apply:?}");
    rig.assert_converged();
    let new_do = rig.digitalocean.certificates()[0]["id"].clone();
    assert_ne!(rig.cloudflare.origin_certificates()[0]["id"], old_origin);
    assert_ne!(new_do, old_do);
    assert_eq!(
        rig.digitalocean.cdn_endpoints()[0]["certificate_id"],
        new_do
    );
    let mut plan = rig.command(&["--certificate-validity-days", "730", "plan"]);
    plan.env("PROVISION_NOW", &later);
    let plan = rig.run_with(plan, "");
    assert_eq!(plan.code, 0, "{plan:?}");
    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);
}

#[test]
fn origin_ca_mode_reports_the_refusal() {
    let moto = start_moto();
    let rig = Rig::new(
        &moto,
        "nix-store-strict",
        false,
        "[cdn]\ncertificate = \"origin-ca\"\n",
    );
    let apply = rig.expect(&["apply"], 1);
    assert!(
        apply
            .stderr
            .contains("invalid certificate issued by Cloudflare origin CA")
            && apply
                .stderr
                .contains("apply: cdn endpoint for nix-store-strict.fra1.digitaloceanspaces.com")
            && apply.stderr.contains("set it to \"auto\" or \"managed\""),
        "{apply:?}"
    );
    // The origin certificate stays stored; nothing half-made: no CDN endpoint.
    assert_eq!(rig.digitalocean.certificates().len(), 1);
    assert!(rig.digitalocean.cdn_endpoints().is_empty());
    // Switching to managed finishes the job.
    let run = rig.run(&["--cdn-certificate", "managed", "apply"]);
    assert_eq!(run.code, 0, "{run:?}");
    rig.assert_converged();
    assert_eq!(
        rig.digitalocean.cdn_endpoints()[0]["certificate_id"],
        "needs-cloudflare-cert"
    );
    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);
}

#[test]
fn key_out_writes_the_key_0600_and_nowhere_else() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-keyout", false, "");
    let apply = rig.expect(&["apply", "--key-out", "origin.key"], 0);
    assert!(apply
        .stdout
        .contains("wrote the private key to origin.key (mode 0600)"));
    let pem = std::fs::read_to_string(rig.dir.path().join("origin.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let body: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    // A second apply makes no key and leaves the file alone.
    let again = rig.expect(&["apply", "--key-out", "other.key"], 0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
    assert!(!rig.dir.path().join("other.key").exists());
    rig.assert_no_leaks(&body);
}

#[test]
fn destroy_asks_and_refuses_a_bucket_with_objects() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-full", false, "");
    rig.expect(&["apply"], 0);

    // Not confirmed: nothing deleted.
    let no = rig.run_with(rig.command(&["destroy"]), "no\n");
    assert_eq!(no.code, 1, "{no:?}");
    assert!(no.stdout.contains("Only 'yes' confirms"));
    assert!(no.stderr.contains("not confirmed; nothing was deleted"));
    rig.assert_converged();

    // A cache with contents is refused, with the count.
    let s3 = moto.s3();
    for name in ["a.narinfo", "nar/b.nar.xz"] {
        s3.put_object(&rig.bucket, name, b"x", "text/plain")
            .unwrap();
    }
    let refused = rig.run_with(rig.command(&["destroy"]), "yes\n");
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("still holds 2 object(s) besides nix-cache-info"),
        "{refused:?}"
    );
    rig.assert_converged();

    // Emptied (versions too), then confirmed: everything goes.
    for v in s3.list_object_versions(&rig.bucket, None).unwrap() {
        if v.key != "nix-cache-info" {
            s3.delete_object_version(&rig.bucket, &v.key, &v.version_id)
                .unwrap();
        }
    }
    let yes = rig.run_with(rig.command(&["destroy"]), "yes\n");
    assert_eq!(yes.code, 0, "{yes:?}");
    rig.assert_gone();
    rig.assert_no_violations();
    rig.assert_no_leaks(&[]);
}

#[test]
fn errors_name_the_variable_the_step_and_the_providers_words() {
    let moto = start_moto();
    let rig = Rig::new(&moto, "nix-store-errors", false, "");

    let mut missing = rig.command(&["plan"]);
    missing.env_remove("CLOUDFLARE_API_TOKEN");
    let run = rig.run_with(missing, "");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("CLOUDFLARE_API_TOKEN is not set") && run.stderr.contains("DNS:Edit"),
        "{run:?}"
    );

    let mut wrong = rig.command(&["plan"]);
    wrong.env(
        "SPACES_SECRET_ACCESS_KEY",
        "not-the-secret-0123456789abcdef",
    );
    let run = rig.run_with(wrong, "");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("observe: bucket nix-store-errors"),
        "moto rejects a wrong key: {run:?}"
    );

    rig.digitalocean.inject(Fault {
        method: "GET",
        path_prefix: "/v2/cdn/endpoints".into(),
        kind: FaultKind::Status(403),
        times: 1,
    });
    let run = rig.expect(&["plan"], 1);
    assert!(
        run.stderr
            .contains("observe: cdn endpoint for nix-store-errors.fra1.digitaloceanspaces.com: list: DigitalOcean answered HTTP 403 forbidden to GET /v2/cdn/endpoints"),
        "{run:?}"
    );

    let run = rig.run(&[
        "--zone",
        "example.org",
        "--hostname",
        "cache.example.org",
        "plan",
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("zone example.org"), "{run:?}");

    let run = rig.expect(&["--cdn-ttl", "5", "plan"], 1);
    assert!(run.stderr.contains("cdn.ttl 5"), "{run:?}");
    rig.assert_no_violations();
    rig.assert_no_leaks(&["not-the-secret-0123456789abcdef".to_owned()]);
}
