//! The DigitalOcean and Cloudflare fakes, driven with raw HTTP: valid requests are
//! answered on-schema, invalid ones are refused and recorded, state behaves like the real
//! services, and every fault kind does what it says.

mod fakes;

use fakes::{Call, FakeCloudflare, FakeDigitalOcean, Fault, FaultKind, MANAGED_CERTIFICATE_ID};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use x509_parser::prelude::GeneralName;

const DO_TOKEN: &str = "do-test-token-5f2a";
const CF_TOKEN: &str = "cf-test-token-9b1c";

#[derive(Debug)]
struct Reply {
    status: u16,
    text: String,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e})", self.status))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

/// Sends a request; `body` is sent as-is with `content-type: application/json`.
fn send_raw(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Result<Reply, String> {
    let mut request = agent.request(method, url);
    if let Some(auth) = auth {
        request = request.set("Authorization", auth);
    }
    let result = match body {
        Some(b) => request
            .set("Content-Type", "application/json")
            .send_string(b),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let text = response.into_string().unwrap_or_default();
    Ok(Reply {
        status,
        text,
        headers,
    })
}

fn send(agent: &ureq::Agent, method: &str, url: &str, token: &str, body: Option<Value>) -> Reply {
    let body = body.map(|b| b.to_string());
    send_raw(
        agent,
        method,
        url,
        Some(&format!("Bearer {token}")),
        body.as_deref(),
    )
    .unwrap_or_else(|e| panic!("{method} {url}: transport error {e}"))
}

fn assert_clean(violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "unexpected violations: {violations:#?}"
    );
}

fn assert_violation(violations: &[String], needle: &str) {
    assert!(
        violations.iter().any(|v| v.contains(needle)),
        "no violation mentions {needle:?}: {violations:#?}"
    );
}

/// A P-256 key and a self-signed certificate for `names`, both PEM.
fn self_signed(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (key.serialize_pem(), cert.pem())
}

/// A P-256 key and a CSR for `names`, both PEM.
fn csr(names: &[&str]) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let csr = rcgen::CertificateParams::new(names)
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    (key, csr)
}

fn custom_certificate(name: &str, key: &str, cert: &str) -> Value {
    json!({ "name": name, "type": "custom", "private_key": key, "leaf_certificate": cert })
}

// ---------------------------------------------------------------- DigitalOcean

#[test]
fn digitalocean_custom_certificate_is_checked_and_stored() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let agent = agent();
    let url = format!("{}/v2/certificates", fake.url());
    let (key, cert) = self_signed(&["cache.example.com"]);

    let created = send(
        &agent,
        "POST",
        &url,
        DO_TOKEN,
        Some(custom_certificate("origin", &key, &cert)),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let certificate = &created.json()["certificate"];
    assert_eq!(certificate["state"], "verified");
    assert_eq!(certificate["type"], "custom");
    assert_eq!(certificate["dns_names"], json!(["cache.example.com"]));
    assert_eq!(certificate["sha1_fingerprint"].as_str().unwrap().len(), 40);
    assert!(certificate["not_after"].as_str().unwrap().ends_with('Z'));
    assert!(
        !created.text.contains("PRIVATE KEY"),
        "the key must not be echoed"
    );
    assert!(created.header("ratelimit-remaining").is_some());

    // Names are unique.
    let duplicate = send(
        &agent,
        "POST",
        &url,
        DO_TOKEN,
        Some(custom_certificate("origin", &key, &cert)),
    );
    assert_eq!(duplicate.status, 422);
    assert_eq!(duplicate.json()["id"], "unprocessable_entity");

    // The private key must match the certificate.
    let (other_key, _) = self_signed(&["cache.example.com"]);
    let mismatch = send(
        &agent,
        "POST",
        &url,
        DO_TOKEN,
        Some(custom_certificate("other", &other_key, &cert)),
    );
    assert_eq!(mismatch.status, 422);
    assert!(mismatch.json()["message"]
        .as_str()
        .unwrap()
        .contains("does not match"));
    assert!(!mismatch.text.contains("PRIVATE KEY"));

    let listed = send(&agent, "GET", &url, DO_TOKEN, None).json();
    assert_eq!(listed["meta"]["total"], 1);
    assert_eq!(listed["certificates"][0]["name"], "origin");
    let id = certificate["id"].as_str().unwrap();
    let got = send(&agent, "GET", &format!("{url}/{id}"), DO_TOKEN, None);
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["certificate"]["id"], id);
    assert_eq!(fake.certificates().len(), 1);

    assert_eq!(
        send(&agent, "DELETE", &format!("{url}/{id}"), DO_TOKEN, None).status,
        204
    );
    assert_eq!(
        send(&agent, "GET", &format!("{url}/{id}"), DO_TOKEN, None).status,
        404
    );
    assert!(fake.certificates().is_empty());
    assert_clean(fake.violations());
}

#[test]
fn digitalocean_cdn_refuses_origin_ca_certificates_and_accepts_managed_ones() {
    let digitalocean = FakeDigitalOcean::start(DO_TOKEN);
    let cloudflare = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();

    // A real Origin CA certificate from the Cloudflare fake, uploaded to DigitalOcean.
    let (key, request) = csr(&["cache.example.com"]);
    let issued = send(
        &agent,
        "POST",
        &format!("{}/certificates", cloudflare.url()),
        CF_TOKEN,
        Some(
            json!({ "hostnames": ["cache.example.com"], "request_type": "origin-ecc",
                     "requested_validity": 5475, "csr": request }),
        ),
    );
    assert_eq!(issued.status, 200, "{}", issued.text);
    let leaf = issued.json()["result"]["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    let uploaded = send(
        &agent,
        "POST",
        &format!("{}/v2/certificates", digitalocean.url()),
        DO_TOKEN,
        Some(custom_certificate(
            "cache-origin",
            &key.serialize_pem(),
            &leaf,
        )),
    );
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let certificate_id = uploaded.json()["certificate"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let endpoints = format!("{}/v2/cdn/endpoints", digitalocean.url());
    let origin = "nix-store.fra1.digitaloceanspaces.com";
    let refused = send(
        &agent,
        "POST",
        &endpoints,
        DO_TOKEN,
        Some(
            json!({ "origin": origin, "custom_domain": "cache.example.com",
                     "certificate_id": certificate_id, "ttl": 3600 }),
        ),
    );
    assert_eq!(refused.status, 422);
    let body = refused.json();
    assert_eq!(body["id"], "unprocessable_entity");
    assert_eq!(
        body["message"],
        "invalid certificate issued by Cloudflare origin CA"
    );
    // Every error carries a request id, as the live API's do.
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36);
    assert!(digitalocean.cdn_endpoints().is_empty(), "nothing half-made");

    // custom_domain needs a certificate.
    let no_cert = send(
        &agent,
        "POST",
        &endpoints,
        DO_TOKEN,
        Some(json!({ "origin": origin, "custom_domain": "cache.example.com" })),
    );
    assert_eq!(no_cert.status, 422);

    let managed = send(
        &agent,
        "POST",
        &endpoints,
        DO_TOKEN,
        Some(
            json!({ "origin": origin, "custom_domain": "cache.example.com",
                     "certificate_id": MANAGED_CERTIFICATE_ID, "ttl": 3600 }),
        ),
    );
    assert_eq!(managed.status, 201, "{}", managed.text);
    let endpoint = managed.json()["endpoint"].clone();
    assert_eq!(
        endpoint["endpoint"],
        "nix-store.fra1.cdn.digitaloceanspaces.com"
    );
    assert_eq!(endpoint["certificate_id"], MANAGED_CERTIFICATE_ID);
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();

    // One endpoint per origin.
    let again = send(
        &agent,
        "POST",
        &endpoints,
        DO_TOKEN,
        Some(json!({ "origin": origin })),
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["message"], "endpoint already exists");

    // With the refusal off, the origin certificate is accepted on update.
    digitalocean.set_refuse_origin_ca_on_cdn(false);
    let switched = send(
        &agent,
        "PUT",
        &format!("{endpoints}/{endpoint_id}"),
        DO_TOKEN,
        Some(
            json!({ "certificate_id": certificate_id, "custom_domain": "cache.example.com", "ttl": 86400 }),
        ),
    );
    assert_eq!(switched.status, 200, "{}", switched.text);
    assert_eq!(switched.json()["endpoint"]["ttl"], 86400);

    // A certificate in use cannot be deleted.
    let certificate_url = format!("{}/v2/certificates/{certificate_id}", digitalocean.url());
    let in_use = send(&agent, "DELETE", &certificate_url, DO_TOKEN, None);
    assert_eq!(in_use.status, 403);
    assert_eq!(digitalocean.certificates().len(), 1);

    assert_eq!(
        send(
            &agent,
            "DELETE",
            &format!("{endpoints}/{endpoint_id}"),
            DO_TOKEN,
            None
        )
        .status,
        204
    );
    assert_eq!(
        send(&agent, "DELETE", &certificate_url, DO_TOKEN, None).status,
        204
    );
    assert!(digitalocean.cdn_endpoints().is_empty());
    assert!(digitalocean.certificates().is_empty());
    assert_clean(digitalocean.violations());
    assert_clean(cloudflare.violations());
}

#[test]
fn digitalocean_spaces_key_secret_is_shown_once() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let agent = agent();
    let url = format!("{}/v2/spaces/keys", fake.url());
    let created = send(
        &agent,
        "POST",
        &url,
        DO_TOKEN,
        Some(
            json!({ "name": "worker-read", "grants": [{ "bucket": "nix-store", "permission": "read" }] }),
        ),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.json()["key"].clone();
    let access_key = key["access_key"].as_str().unwrap().to_string();
    let secret = key["secret_key"].as_str().unwrap().to_string();
    assert!(access_key.starts_with("DO"));
    assert!(secret.len() >= 40);

    let listed = send(&agent, "GET", &url, DO_TOKEN, None);
    assert_eq!(listed.json()["keys"][0]["access_key"], access_key.as_str());
    assert!(!listed.text.contains(&secret));
    let got = send(
        &agent,
        "GET",
        &format!("{url}/{access_key}"),
        DO_TOKEN,
        None,
    );
    assert_eq!(got.status, 200);
    assert!(!got.text.contains(&secret));
    assert!(fake
        .spaces_keys()
        .iter()
        .all(|k| k.get("secret_key").is_none()));
    let by_bucket = send(
        &agent,
        "GET",
        &format!("{url}?bucket=nix-store"),
        DO_TOKEN,
        None,
    )
    .json();
    assert_eq!(by_bucket["meta"]["total"], 1);
    let other_bucket = send(
        &agent,
        "GET",
        &format!("{url}?bucket=elsewhere"),
        DO_TOKEN,
        None,
    )
    .json();
    assert_eq!(other_bucket["meta"]["total"], 0);

    // fullaccess cannot be mixed with scoped grants (an API rule, not a schema one).
    let mixed = send(
        &agent,
        "POST",
        &url,
        DO_TOKEN,
        Some(json!({ "name": "mixed", "grants": [
            { "bucket": "", "permission": "fullaccess" },
            { "bucket": "nix-store", "permission": "read" } ] })),
    );
    assert_eq!(mixed.status, 400);
    assert_clean(fake.violations());

    // A permission outside read|readwrite|fullaccess|"" is a violation.
    let bad = send(
        &agent,
        "POST",
        &url,
        DO_TOKEN,
        Some(
            json!({ "name": "bad", "grants": [{ "bucket": "nix-store", "permission": "write" }] }),
        ),
    );
    assert_eq!(bad.status, 422);
    assert_violation(&fake.violations(), "/grants/0/permission");

    assert_eq!(
        send(
            &agent,
            "DELETE",
            &format!("{url}/{access_key}"),
            DO_TOKEN,
            None
        )
        .status,
        204
    );
    assert!(fake.spaces_keys().is_empty());
}

#[test]
fn digitalocean_lists_are_paginated() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let agent = agent();
    let url = format!("{}/v2/spaces/keys", fake.url());
    for n in 0..3 {
        let r = send(
            &agent,
            "POST",
            &url,
            DO_TOKEN,
            Some(json!({ "name": format!("k{n}") })),
        );
        assert_eq!(r.status, 201);
    }
    let first = send(&agent, "GET", &format!("{url}?per_page=2"), DO_TOKEN, None).json();
    assert_eq!(first["keys"].as_array().unwrap().len(), 2);
    assert_eq!(first["meta"]["total"], 3);
    let next = first["links"]["pages"]["next"].as_str().unwrap();
    assert!(next.ends_with("page=2&per_page=2"), "{next}");
    let second = send(&agent, "GET", next, DO_TOKEN, None).json();
    assert_eq!(second["keys"].as_array().unwrap().len(), 1);
    assert_eq!(second["keys"][0]["name"], "k2");
    assert!(second["links"]["pages"]["prev"].is_string());
    assert!(second["links"]["pages"].get("next").is_none());
    let single = send(&agent, "GET", &url, DO_TOKEN, None).json();
    assert_eq!(single["links"], json!({}));
    // Quirk: a page holds at most the API's cap (200), whatever `per_page` asks; the
    // answer's `links.pages.next` is how a client knows more follow.
    fake.set_max_per_page(1);
    let capped = send(
        &agent,
        "GET",
        &format!("{url}?per_page=200"),
        DO_TOKEN,
        None,
    )
    .json();
    assert_eq!(capped["keys"].as_array().unwrap().len(), 1);
    assert_eq!(capped["meta"]["total"], 3);
    let next = capped["links"]["pages"]["next"].as_str().unwrap();
    assert!(next.ends_with("page=2&per_page=1"), "{next}");
    // An empty list: an empty array, `links` empty, `meta.total` 0.
    let empty = send(
        &agent,
        "GET",
        &format!("{}/v2/cdn/endpoints", fake.url()),
        DO_TOKEN,
        None,
    )
    .json();
    assert_eq!(
        empty,
        json!({"endpoints": [], "links": {}, "meta": {"total": 0}})
    );
    assert_clean(fake.violations());
}

#[test]
fn digitalocean_rejects_requests_off_the_schema() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let agent = agent();
    let endpoints = format!("{}/v2/cdn/endpoints", fake.url());

    // Wrong type.
    let r = send(
        &agent,
        "POST",
        &endpoints,
        DO_TOKEN,
        Some(json!({ "origin": "b.fra1.digitaloceanspaces.com", "ttl": "3600" })),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["id"], "unprocessable_entity");
    assert_violation(&fake.violations(), "at /ttl");
    // Value outside the enum.
    let r = send(
        &agent,
        "POST",
        &endpoints,
        DO_TOKEN,
        Some(json!({ "origin": "b.fra1.digitaloceanspaces.com", "ttl": 1234 })),
    );
    assert_eq!(r.status, 422);
    // Missing required field.
    let r = send(
        &agent,
        "POST",
        &endpoints,
        DO_TOKEN,
        Some(json!({ "ttl": 3600 })),
    );
    assert_eq!(r.status, 422);
    assert_violation(&fake.violations(), "origin");
    // Not JSON at all.
    let r = send_raw(
        &agent,
        "POST",
        &endpoints,
        Some(&format!("Bearer {DO_TOKEN}")),
        Some("{origin"),
    )
    .unwrap();
    assert_eq!(r.status, 422);
    assert_violation(&fake.violations(), "not JSON");
    // Custom certificate without its key.
    let r = send(
        &agent,
        "POST",
        &format!("{}/v2/certificates", fake.url()),
        DO_TOKEN,
        Some(json!({ "name": "x", "type": "custom", "leaf_certificate": "x" })),
    );
    assert_eq!(r.status, 422);
    // Query parameters.
    let r = send(
        &agent,
        "GET",
        &format!("{endpoints}?per_page=500"),
        DO_TOKEN,
        None,
    );
    assert_eq!(r.status, 400);
    assert_violation(&fake.violations(), "per_page");
    let r = send(
        &agent,
        "GET",
        &format!("{endpoints}?perpage=5"),
        DO_TOKEN,
        None,
    );
    assert_eq!(r.status, 400);
    assert_violation(&fake.violations(), "unknown query parameter `perpage`");
    // Unknown operation.
    let r = send(
        &agent,
        "GET",
        &format!("{}/v2/droplets", fake.url()),
        DO_TOKEN,
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["id"], "not_found");
    assert_violation(&fake.violations(), "GET /v2/droplets");
    let before = fake.violations().len();
    assert!(fake.cdn_endpoints().is_empty());

    // A wrong token is the client's honest mistake: 401, not a violation.
    let r = send(&agent, "GET", &endpoints, "not-the-token", None);
    assert_eq!(r.status, 401);
    let mut body = r.json();
    assert!(body["request_id"].is_string());
    body.as_object_mut().unwrap().remove("request_id");
    assert_eq!(
        body,
        json!({ "id": "unauthorized", "message": "Unable to authenticate you" })
    );
    assert_eq!(fake.violations().len(), before);
    // No header, or a malformed one, is a violation.
    let r = send_raw(&agent, "GET", &endpoints, None, None).unwrap();
    assert_eq!(r.status, 401);
    let r = send_raw(
        &agent,
        "GET",
        &endpoints,
        Some(&format!("Token {DO_TOKEN}")),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let violations = fake.violations();
    assert_eq!(violations.len(), before + 2, "{violations:#?}");
    assert_violation(&violations, "no Authorization header");
    assert_violation(&violations, "malformed Authorization header");
    assert!(
        violations.iter().all(|v| !v.contains(DO_TOKEN)),
        "the token leaked: {violations:#?}"
    );
}

#[test]
fn violations_never_show_private_keys() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let agent = agent();
    let (key, _) = self_signed(&["cache.example.com"]);
    // leaf_certificate has the wrong type, so the whole body is quoted by the validator.
    let r = send(
        &agent,
        "POST",
        &format!("{}/v2/certificates", fake.url()),
        DO_TOKEN,
        Some(json!({ "name": "x", "type": "custom", "private_key": key, "leaf_certificate": 5 })),
    );
    assert_eq!(r.status, 422);
    let violations = fake.violations();
    assert!(!violations.is_empty());
    let base64_line = key.lines().nth(1).unwrap();
    for v in &violations {
        assert!(!v.contains(base64_line), "private key in a violation: {v}");
        assert!(
            !v.contains("BEGIN PRIVATE KEY"),
            "private key in a violation: {v}"
        );
    }
    assert!(!r.text.contains(base64_line));
}

// ---------------------------------------------------------------- Cloudflare

#[test]
fn cloudflare_zone_lookup_and_dns_records() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com", "example.org"]);
    let agent = agent();
    let zones = send(
        &agent,
        "GET",
        &format!("{}/zones?name=example.com", fake.url()),
        CF_TOKEN,
        None,
    );
    assert_eq!(zones.status, 200, "{}", zones.text);
    let zones = zones.json();
    assert_eq!(zones["success"], true);
    assert_eq!(zones["result"].as_array().unwrap().len(), 1);
    assert_eq!(zones["result_info"]["total_count"], 1);
    let zone_id = zones["result"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(Some(zone_id.clone()), fake.zone_id("example.com"));
    let none = send(
        &agent,
        "GET",
        &format!("{}/zones?name=missing.net", fake.url()),
        CF_TOKEN,
        None,
    )
    .json();
    assert_eq!(none["result"], json!([]));

    let records = format!("{}/zones/{zone_id}/dns_records", fake.url());
    let cname = json!({ "type": "CNAME", "name": "cache", "content": "nix-store.fra1.cdn.digitaloceanspaces.com",
                        "proxied": true, "ttl": 1 });
    let created = send(&agent, "POST", &records, CF_TOKEN, Some(cname.clone()));
    assert_eq!(created.status, 200, "{}", created.text);
    let record = created.json()["result"].clone();
    assert_eq!(record["name"], "cache.example.com");
    assert_eq!(record["proxied"], true);
    assert_eq!(record["proxiable"], true);
    let record_id = record["id"].as_str().unwrap().to_string();

    let found = send(
        &agent,
        "GET",
        &format!("{records}?type=CNAME&name=cache.example.com"),
        CF_TOKEN,
        None,
    )
    .json();
    assert_eq!(found["result"].as_array().unwrap().len(), 1);
    let other = send(
        &agent,
        "GET",
        &format!("{records}?type=A&name=cache.example.com"),
        CF_TOKEN,
        None,
    )
    .json();
    assert_eq!(other["result"], json!([]));

    // The same record twice, and a CNAME beside another record, are refused.
    let twice = send(&agent, "POST", &records, CF_TOKEN, Some(cname));
    assert_eq!(twice.status, 400);
    assert_eq!(twice.json()["errors"][0]["code"], 81058);
    let beside = send(
        &agent,
        "POST",
        &records,
        CF_TOKEN,
        Some(json!({ "type": "A", "name": "cache.example.com", "content": "192.0.2.1" })),
    );
    assert_eq!(beside.status, 400);
    assert_eq!(beside.json()["errors"][0]["code"], 81053);

    let record_url = format!("{records}/{record_id}");
    let patched = send(
        &agent,
        "PATCH",
        &record_url,
        CF_TOKEN,
        Some(json!({ "proxied": false, "ttl": 300 })),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["result"]["ttl"], 300);
    let put = send(
        &agent,
        "PUT",
        &record_url,
        CF_TOKEN,
        Some(json!({ "type": "CNAME", "name": "cache.example.com",
        "content": "other.fra1.cdn.digitaloceanspaces.com", "proxied": true })),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(
        fake.dns_records()[0]["content"],
        "other.fra1.cdn.digitaloceanspaces.com"
    );
    assert_clean(fake.violations());

    // TTL out of range, and a bad record type, are schema violations.
    let r = send(
        &agent,
        "POST",
        &records,
        CF_TOKEN,
        Some(json!({ "type": "CNAME", "name": "x", "content": "y.example.net", "ttl": 5 })),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["success"], false);
    let r = send(
        &agent,
        "POST",
        &records,
        CF_TOKEN,
        Some(json!({ "type": "CNAMEX", "name": "x", "content": "y" })),
    );
    assert_eq!(r.status, 400);
    assert_eq!(fake.violations().len(), 2, "{:#?}", fake.violations());
    assert_eq!(fake.dns_records().len(), 1);

    let deleted = send(&agent, "DELETE", &record_url, CF_TOKEN, None);
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["result"]["id"], record_id.as_str());
    assert!(fake.dns_records().is_empty());
    assert_eq!(send(&agent, "GET", &record_url, CF_TOKEN, None).status, 404);
}

#[test]
fn cloudflare_origin_ca_issues_real_certificates() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();
    let url = format!("{}/certificates", fake.url());
    let (key, request) = csr(&["cache.example.com"]);
    let created = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({
        "hostnames": ["cache.example.com"], "request_type": "origin-ecc",
        "requested_validity": 7, "csr": request })),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let result = created.json()["result"].clone();
    let id = result["id"].as_str().unwrap().to_string();
    assert!(id.len() <= 32);

    let pem = result["certificate"].as_str().unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let issuer = cert.issuer().to_string();
    assert!(issuer.contains("O=CloudFlare, Inc."), "{issuer}");
    assert!(
        issuer.contains("OU=CloudFlare Origin SSL Certificate Authority"),
        "{issuer}"
    );
    assert_eq!(
        cert.public_key().raw,
        key.public_key_der().as_slice(),
        "issued for the CSR's key"
    );
    let days = (cert.validity().not_after.timestamp()
        - time::OffsetDateTime::now_utc().unix_timestamp())
        / 86400;
    assert!((6..=7).contains(&days), "{days} days");
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(matches!(
        &san.value.general_names[..],
        [GeneralName::DNSName("cache.example.com")]
    ));
    // Go's time.Time.String() layout, as the live API answers, not RFC 3339.
    let expires_on = result["expires_on"].as_str().unwrap();
    assert!(
        expires_on.ends_with(" +0000 UTC") && expires_on.as_bytes()[10] == b' ',
        "{expires_on}"
    );
    assert!(time::OffsetDateTime::parse(
        expires_on,
        &time::format_description::well_known::Rfc3339
    )
    .is_err());
    assert_eq!(
        provision::certs::parse_origin_ca_time(expires_on).unwrap(),
        cert.validity().not_after.timestamp()
    );
    // Signed by the fake CA.
    let (_, ca_block) =
        x509_parser::pem::parse_x509_pem(fake.origin_ca_certificate().as_bytes()).unwrap();
    let ca = ca_block.parse_x509().unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the Origin CA");

    let zone_id = fake.zone_id("example.com").unwrap();
    let listed = send(
        &agent,
        "GET",
        &format!("{url}?zone_id={zone_id}"),
        CF_TOKEN,
        None,
    )
    .json();
    assert_eq!(listed["result"].as_array().unwrap().len(), 1);
    assert_eq!(fake.origin_certificates().len(), 1);

    // Hostnames outside the account's zones are refused (not a schema matter).
    let (_, foreign) = csr(&["cache.example.net"]);
    let r = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({
        "hostnames": ["cache.example.net"], "request_type": "origin-ecc", "csr": foreign })),
    );
    assert_eq!(r.status, 400);
    // The key type must match request_type.
    let (_, ecc) = csr(&["cache.example.com"]);
    let r = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({
        "hostnames": ["cache.example.com"], "request_type": "origin-rsa", "csr": ecc })),
    );
    assert_eq!(r.status, 400);
    assert_clean(fake.violations());

    // Schema violations: unknown request_type, missing hostnames, validity not offered,
    // list without zone_id.
    let r = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({
        "hostnames": ["cache.example.com"], "request_type": "origin-dsa", "csr": ecc })),
    );
    assert_eq!(r.status, 400);
    assert_violation(&fake.violations(), "request_type");
    let r = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({ "request_type": "origin-ecc", "csr": ecc })),
    );
    assert_eq!(r.status, 400);
    assert_violation(&fake.violations(), "hostnames");
    let r = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({
        "hostnames": ["cache.example.com"], "request_type": "origin-ecc", "csr": ecc, "requested_validity": 10 })),
    );
    assert_eq!(r.status, 400);
    let r = send(&agent, "GET", &url, CF_TOKEN, None);
    assert_eq!(r.status, 400);
    assert_violation(&fake.violations(), "zone_id");
    assert_eq!(fake.violations().len(), 4, "{:#?}", fake.violations());
    assert_eq!(fake.origin_certificates().len(), 1);

    // Revoking hides it.
    let revoked = send(&agent, "DELETE", &format!("{url}/{id}"), CF_TOKEN, None);
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.json()["result"]["id"], id.as_str());
    assert!(fake.origin_certificates().is_empty());
    let listed = send(
        &agent,
        "GET",
        &format!("{url}?zone_id={zone_id}"),
        CF_TOKEN,
        None,
    )
    .json();
    assert_eq!(listed["result"], json!([]));
    assert_eq!(fake.violations().len(), 4);
}

#[test]
fn cloudflare_origin_ca_takes_rsa_requests() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();
    let url = format!("{}/certificates", fake.url());
    // A CSR made by `openssl req -newkey rsa:2048`; its key was thrown away.
    let rsa_csr = include_str!("fakes/testdata/rsa2048-cache.example.com.csr");
    let wrong_type = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({
        "hostnames": ["cache.example.com"], "request_type": "origin-ecc", "csr": rsa_csr })),
    );
    assert_eq!(wrong_type.status, 400);
    let issued = send(
        &agent,
        "POST",
        &url,
        CF_TOKEN,
        Some(json!({
        "hostnames": ["cache.example.com", "*.example.com"], "request_type": "origin-rsa",
        "requested_validity": 90, "csr": rsa_csr })),
    );
    assert_eq!(issued.status, 200, "{}", issued.text);
    let result = issued.json()["result"].clone();
    assert_eq!(result["request_type"], "origin-rsa");
    assert_eq!(
        result["hostnames"],
        json!(["cache.example.com", "*.example.com"])
    );
    let pem = result["certificate"].as_str().unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let (_, csr_block) = x509_parser::pem::parse_x509_pem(rsa_csr.as_bytes()).unwrap();
    let (_, request) = <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(&csr_block.contents).unwrap();
    assert_eq!(
        cert.public_key().raw,
        request.certification_request_info.subject_pki.raw
    );
    assert_clean(fake.violations());
}

#[test]
fn cloudflare_worker_secrets_are_stored_but_never_listed() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();
    let account = fake.account_id();
    let url = format!(
        "{}/accounts/{account}/workers/scripts/nix-cache/secrets",
        fake.url()
    );
    let value = "read-only-secret-value-0123456789";
    fake.deploy_script("nix-cache");
    for name in ["SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY"] {
        let r = send(
            &agent,
            "PUT",
            &url,
            CF_TOKEN,
            Some(json!({ "name": name, "text": value, "type": "secret_text" })),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(!r.text.contains(value), "the secret must not be echoed");
    }
    // Upsert by name.
    let r = send(
        &agent,
        "PUT",
        &url,
        CF_TOKEN,
        Some(json!({ "name": "SPACES_ACCESS_KEY_ID", "text": "DOKEY", "type": "secret_text" })),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        fake.worker_secrets(&account, "nix-cache"),
        vec!["SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY"]
    );
    assert_eq!(
        fake.secret_value(&account, "nix-cache", "SPACES_ACCESS_KEY_ID")
            .as_deref(),
        Some("DOKEY")
    );
    assert_eq!(
        fake.secret_value(&account, "nix-cache", "SPACES_SECRET_ACCESS_KEY")
            .as_deref(),
        Some(value)
    );

    let listed = send(&agent, "GET", &url, CF_TOKEN, None);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["result"].as_array().unwrap().len(), 2);
    assert!(!listed.text.contains(value));

    // Missing `text` is a violation.
    let r = send(
        &agent,
        "PUT",
        &url,
        CF_TOKEN,
        Some(json!({ "name": "X", "type": "secret_text" })),
    );
    assert_eq!(r.status, 400);
    assert_eq!(fake.violations().len(), 1);

    let r = send(
        &agent,
        "DELETE",
        &format!("{url}/SPACES_ACCESS_KEY_ID"),
        CF_TOKEN,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        fake.worker_secrets(&account, "nix-cache"),
        vec!["SPACES_SECRET_ACCESS_KEY"]
    );
    assert_eq!(
        send(
            &agent,
            "DELETE",
            &format!("{url}/SPACES_ACCESS_KEY_ID"),
            CF_TOKEN,
            None
        )
        .status,
        404
    );
    assert_eq!(fake.violations().len(), 1);
}

/// Quirk: the secrets API answers 404 with code 10007 `workers.api.error.script_not_found`
/// for a script that was never deployed, on list, put, get and delete alike, and stores
/// nothing; once the script is deployed the same calls work.
#[test]
fn cloudflare_worker_secrets_of_a_script_never_deployed_are_refused() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();
    let account = fake.account_id();
    let url = format!(
        "{}/accounts/{account}/workers/scripts/nix-cache/secrets",
        fake.url()
    );
    let put =
        json!({ "name": "TOKEN_SECRET", "text": "never-stored-0123456789", "type": "secret_text" });
    for (method, path, body) in [
        ("GET", url.clone(), None),
        ("PUT", url.clone(), Some(put.clone())),
        ("GET", format!("{url}/TOKEN_SECRET"), None),
        ("DELETE", format!("{url}/TOKEN_SECRET"), None),
    ] {
        let r = send(&agent, method, &path, CF_TOKEN, body);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        let body = r.json();
        assert_eq!(body["success"], false);
        assert_eq!(body["errors"][0]["code"], 10007, "an integer code");
        assert_eq!(
            body["errors"][0]["message"],
            "workers.api.error.script_not_found"
        );
        assert!(body["result"].is_null());
    }
    assert!(fake.worker_secrets(&account, "nix-cache").is_empty());
    fake.deploy_script("nix-cache");
    let listed = send(&agent, "GET", &url, CF_TOKEN, None);
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        listed.json()["result"],
        json!([]),
        "an empty list, not null"
    );
    assert_eq!(send(&agent, "PUT", &url, CF_TOKEN, Some(put)).status, 200);
    assert_eq!(fake.worker_secrets(&account, "nix-cache"), ["TOKEN_SECRET"]);
    assert_clean(fake.violations());
}

/// Quirk: list pages hold at most the API's cap, whatever `per_page` asks, and say so in
/// `result_info`; the pages beyond the last are empty, not an error.
#[test]
fn cloudflare_lists_are_paginated_with_result_info() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com", "example.org", "example.net"]);
    fake.set_max_per_page(2);
    let agent = agent();
    let page = |n: u32| {
        send(
            &agent,
            "GET",
            &format!("{}/zones?per_page=50&page={n}", fake.url()),
            CF_TOKEN,
            None,
        )
        .json()
    };
    let first = page(1);
    assert_eq!(first["result"].as_array().unwrap().len(), 2);
    assert_eq!(
        first["result_info"],
        json!({"page": 1, "per_page": 2, "count": 2, "total_count": 3, "total_pages": 2})
    );
    let second = page(2);
    assert_eq!(second["result"].as_array().unwrap().len(), 1);
    assert_eq!(second["result_info"]["page"], 2);
    let past = page(3);
    assert_eq!(past["result"], json!([]));
    assert_eq!(past["result_info"]["count"], 0);
    assert_clean(fake.violations());
}

#[test]
fn cloudflare_auth_and_unknown_routes() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();
    let r = send(
        &agent,
        "GET",
        &format!("{}/zones", fake.url()),
        "wrong",
        None,
    );
    assert_eq!(r.status, 401);
    let body = r.json();
    assert_eq!(body["success"], false);
    assert_eq!(body["errors"][0]["code"], 10000);
    assert_eq!(body["errors"][0]["message"], "Authentication error");
    assert_clean(fake.violations());

    // The retired service-key header is a violation even with a good token.
    let r = agent
        .get(&format!("{}/zones", fake.url()))
        .set("Authorization", &format!("Bearer {CF_TOKEN}"))
        .set("X-Auth-User-Service-Key", "v1.0-legacy")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_violation(&fake.violations(), "x-auth-user-service-key");

    let r = send(
        &agent,
        "GET",
        &format!("{}/zones/abc/firewall/rules", fake.url()),
        CF_TOKEN,
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], 7000);
    // Without the /client/v4 prefix nothing is found either.
    let root = fake.url().replace("/client/v4", "");
    let r = send(&agent, "GET", &format!("{root}/zones"), CF_TOKEN, None);
    assert_eq!(r.status, 404);
    assert_eq!(fake.violations().len(), 3, "{:#?}", fake.violations());
}

// ---------------------------------------------------------------- faults

fn statuses(calls: &[Call]) -> Vec<u16> {
    calls.iter().map(|c| c.status).collect()
}

#[test]
fn faults_status_rate_limit_and_malformed() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let agent = agent();
    let url = format!("{}/v2/certificates", fake.url());
    fake.inject(Fault {
        method: "GET",
        path_prefix: "/v2/certificates".into(),
        kind: FaultKind::Status(500),
        times: 2,
    });
    let r = send(&agent, "GET", &url, DO_TOKEN, None);
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["id"], "server_error");
    assert_eq!(send(&agent, "GET", &url, DO_TOKEN, None).status, 500);
    assert_eq!(send(&agent, "GET", &url, DO_TOKEN, None).status, 200);

    fake.inject(Fault {
        method: "*",
        path_prefix: "/v2/".into(),
        kind: FaultKind::RateLimited {
            retry_after_secs: 7,
        },
        times: 1,
    });
    let r = send(&agent, "GET", &url, DO_TOKEN, None);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.json()["id"], "too_many_requests");

    // A fault for another path does not fire.
    fake.inject(Fault {
        method: "GET",
        path_prefix: "/v2/cdn".into(),
        kind: FaultKind::Malformed,
        times: 1,
    });
    assert_eq!(send(&agent, "GET", &url, DO_TOKEN, None).status, 200);
    let r = send(
        &agent,
        "GET",
        &format!("{}/v2/cdn/endpoints", fake.url()),
        DO_TOKEN,
        None,
    );
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<Value>(&r.text).is_err(),
        "malformed body parsed: {}",
        r.text
    );

    assert_eq!(statuses(&fake.calls()), vec![500, 500, 200, 429, 200, 200]);
    assert_eq!(fake.calls()[5].path, "/v2/cdn/endpoints");
    assert_clean(fake.violations());

    let cf = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    cf.inject(Fault {
        method: "GET",
        path_prefix: "/client/v4/zones".into(),
        kind: FaultKind::Status(503),
        times: 1,
    });
    let r = send(
        &agent,
        "GET",
        &format!("{}/zones?name=example.com", cf.url()),
        CF_TOKEN,
        None,
    );
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["success"], false);
    cf.inject(Fault {
        method: "GET",
        path_prefix: "/zones".into(),
        kind: FaultKind::RateLimited {
            retry_after_secs: 2,
        },
        times: 1,
    });
    let r = send(
        &agent,
        "GET",
        &format!("{}/zones?name=example.com", cf.url()),
        CF_TOKEN,
        None,
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(
        send(
            &agent,
            "GET",
            &format!("{}/zones?name=example.com", cf.url()),
            CF_TOKEN,
            None
        )
        .status,
        200
    );
    assert_clean(cf.violations());
}

#[test]
fn fault_timeout_drops_the_connection_without_an_answer() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let url = format!("{}/v2/cdn/endpoints", fake.url());
    fake.inject(Fault {
        method: "GET",
        path_prefix: "/v2/cdn".into(),
        kind: FaultKind::Timeout,
        times: 1,
    });
    let impatient = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(500))
        .build();
    let started = Instant::now();
    let result = send_raw(
        &impatient,
        "GET",
        &url,
        Some(&format!("Bearer {DO_TOKEN}")),
        None,
    );
    assert!(
        result.is_err(),
        "a timed-out request got an answer: {result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // A patient client sees the connection closed without a response.
    fake.inject(Fault {
        method: "GET",
        path_prefix: "/v2/cdn".into(),
        kind: FaultKind::Timeout,
        times: 1,
    });
    let patient = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let started = Instant::now();
    let result = send_raw(
        &patient,
        "GET",
        &url,
        Some(&format!("Bearer {DO_TOKEN}")),
        None,
    );
    assert!(result.is_err(), "got an answer: {result:?}");
    assert!(started.elapsed() >= Duration::from_millis(2500));

    // Then the fake answers again.
    let r = send(&patient, "GET", &url, DO_TOKEN, None);
    assert_eq!(r.status, 200);
    assert_eq!(statuses(&fake.calls()), vec![0, 0, 200]);
}

#[test]
fn fault_after_effect_performs_the_operation_then_fails() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let agent = agent();
    let endpoints = format!("{}/v2/cdn/endpoints", fake.url());
    fake.inject(Fault {
        method: "POST",
        path_prefix: "/v2/cdn/endpoints".into(),
        kind: FaultKind::AfterEffect(502),
        times: 1,
    });
    let body = json!({ "origin": "nix-store.fra1.digitaloceanspaces.com", "ttl": 3600 });
    let r = send(&agent, "POST", &endpoints, DO_TOKEN, Some(body.clone()));
    assert_eq!(r.status, 502);
    assert_eq!(fake.cdn_endpoints().len(), 1, "the operation happened");
    // A blind retry now meets the real API's duplicate rule.
    let r = send(&agent, "POST", &endpoints, DO_TOKEN, Some(body));
    assert_eq!(r.status, 409);
    assert_eq!(fake.cdn_endpoints().len(), 1);

    let cf = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let zone_id = cf.zone_id("example.com").unwrap();
    cf.inject(Fault {
        method: "POST",
        path_prefix: format!("/zones/{zone_id}/dns_records"),
        kind: FaultKind::AfterEffect(500),
        times: 1,
    });
    let records = format!("{}/zones/{zone_id}/dns_records", cf.url());
    let cname = json!({ "type": "CNAME", "name": "cache", "content": "nix-store.fra1.cdn.digitaloceanspaces.com", "proxied": true });
    assert_eq!(
        send(&agent, "POST", &records, CF_TOKEN, Some(cname.clone())).status,
        500
    );
    assert_eq!(cf.dns_records().len(), 1);
    assert_eq!(
        send(&agent, "POST", &records, CF_TOKEN, Some(cname)).status,
        400
    );
    assert_eq!(cf.dns_records().len(), 1);
    assert_clean(fake.violations());
    assert_clean(cf.violations());
}

#[test]
fn dropping_a_fake_stops_its_server() {
    let fake = FakeDigitalOcean::start(DO_TOKEN);
    let url = fake.url();
    let address = url.trim_start_matches("http://").to_string();
    let agent = agent();
    assert_eq!(
        send(
            &agent,
            "GET",
            &format!("{url}/v2/certificates"),
            DO_TOKEN,
            None
        )
        .status,
        200
    );
    drop(fake);
    let refused =
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(1));
    assert!(refused.is_err(), "still listening on {address}");
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();
    for _ in 0..20 {
        assert_eq!(
            send(
                &agent,
                "GET",
                &format!("{}/zones", fake.url()),
                CF_TOKEN,
                None
            )
            .status,
            200
        );
    }
    assert_eq!(fake.calls().len(), 20);
    assert_clean(fake.violations());
}

// ---------------------------------------------------------------- the schemas themselves

#[test]
fn response_validation_catches_off_schema_answers() {
    let digitalocean = fakes::Spec::load(include_str!("apis/digitalocean.openapi.yaml"));
    let (create, _) = digitalocean.find("POST", "/v2/cdn/endpoints").unwrap();
    let good = json!({ "endpoint": { "id": "19f06b6a-3ace-4315-b086-499a0e521b76",
        "origin": "b.fra1.digitaloceanspaces.com", "endpoint": "b.fra1.cdn.digitaloceanspaces.com",
        "ttl": 3600, "created_at": "2026-01-01T00:00:00Z" } });
    assert!(create
        .check_response(201, good.to_string().as_bytes())
        .is_empty());
    let bad_ttl = json!({ "endpoint": { "origin": "b.fra1.digitaloceanspaces.com", "ttl": 5 } });
    assert!(!create
        .check_response(201, bad_ttl.to_string().as_bytes())
        .is_empty());
    // `origin` is required in answers too; `id` (readOnly) is not required in requests.
    let no_origin = json!({ "endpoint": { "ttl": 3600 } });
    assert!(!create
        .check_response(201, no_origin.to_string().as_bytes())
        .is_empty());
    assert!(
        !create
            .check_response(200, good.to_string().as_bytes())
            .is_empty(),
        "undeclared status"
    );
    let (delete, _) = digitalocean
        .find(
            "DELETE",
            "/v2/cdn/endpoints/19f06b6a-3ace-4315-b086-499a0e521b76",
        )
        .unwrap();
    assert!(delete.check_response(204, b"").is_empty());
    assert!(
        !delete.check_response(204, b"{}").is_empty(),
        "204 has no body"
    );
    let (list, _) = digitalocean.find("GET", "/v2/certificates").unwrap();
    let no_meta = json!({ "certificates": [], "links": {} });
    assert!(
        !list
            .check_response(200, no_meta.to_string().as_bytes())
            .is_empty(),
        "meta.total is required"
    );

    let cloudflare = fakes::Spec::load(include_str!("apis/cloudflare.openapi.yaml"));
    let (put, _) = cloudflare
        .find("PUT", "/accounts/a/workers/scripts/s/secrets")
        .unwrap();
    let ok = json!({ "success": true, "errors": [], "messages": [], "result": { "name": "X", "type": "secret_text" } });
    assert!(put
        .check_response(200, ok.to_string().as_bytes())
        .is_empty());
    // `text` is writeOnly: an answer that carries it is off-schema.
    let leaky = json!({ "success": true, "errors": [], "messages": [],
        "result": { "name": "X", "type": "secret_text", "text": "s3cr3t" } });
    assert!(!put
        .check_response(200, leaky.to_string().as_bytes())
        .is_empty());
    let (zones, _) = cloudflare.find("GET", "/zones").unwrap();
    let failure = json!({ "success": false, "errors": [], "messages": [], "result": null });
    assert!(!zones
        .check_response(200, failure.to_string().as_bytes())
        .is_empty());
    // Literal segments win over parameters; unknown paths find nothing.
    assert_eq!(
        digitalocean
            .find("DELETE", "/v2/cdn/endpoints/x/cache")
            .unwrap()
            .0
            .id,
        "cdn_purge_cache"
    );
    assert!(cloudflare
        .find("GET", "/zones/z/dns_records/r/extra")
        .is_none());
    assert!(cloudflare.find("POST", "/zones").is_none());
}

#[test]
fn unimplemented_operations_are_refused_and_recorded() {
    let fake = FakeCloudflare::start(CF_TOKEN, &["example.com"]);
    let agent = agent();
    let zone_id = fake.zone_id("example.com").unwrap();
    let r = send(
        &agent,
        "GET",
        &format!("{}/zones/{zone_id}/workers/routes", fake.url()),
        CF_TOKEN,
        None,
    );
    assert_eq!(r.status, 501);
    assert_violation(&fake.violations(), "worker-routes-list-routes");
}
